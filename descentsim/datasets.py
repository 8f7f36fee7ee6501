"""Data sets a network trains on: built-in generators, scikit-learn's bundled sets, and the user's own files.

One place turns knob values into a data set: ``load_data(values)`` returns a ``DataSet`` (X, y, the class
count, the task, a content hash and a one-line description). The knobs are ``DATA_KNOBS``; every one of them
fixes the data, so all are shape knobs (``DATA_SHAPE_KNOBS``): one problem has one value of each.

``data`` names the set:

* generators (NumPy only): ``xor``, ``clusters``, ``linear``, ``moons``, ``circles``, ``teacher``; each
  draws from ``numpy.random.default_rng(data_seed)`` in the order its docstring gives;
* scikit-learn's bundled sets, read from the package, never downloaded: ``digits``, ``iris``, ``wine``,
  ``breast_cancer`` (the optional extra ``pip install "descentsim[datasets]"``);
* ``file``: the user's ``data_file``, a ``.npz`` (arrays ``X`` and ``y``), a ``.npy`` of X with its labels
  in the ``.npy`` named by ``labels_file``, a ``.csv`` (a header row; ``label_column`` names the labels,
  the other columns are the features), or a map file ``.h5``: the training data a map of a network keeps
  (``write_embedded``), so a map's data can be trained on again without the file they came from. A relative
  path is taken from the working directory, as every path on the command line.

Then, for every set and in this order: the labels are checked (``DataError``, one line, on bad data), the
training subset is taken (``train_samples``), the features are standardised (``standardize``), and the
content hash is computed over the arrays a network trains on.

Every computation is made of operations whose bits do not depend on the machine (+ − × ÷ and √, sums in a
stated order, ``math.fsum``; tanh from ``descentsim.numerics``; cos and sin from Python's ``math``, not
NumPy's SIMD versions, whose last bits vary with the CPU), so the same knobs give the same bytes on every
rank of a job.
"""

from __future__ import annotations

import csv
import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np

from .errors import SpecError
from .knobs import MAX_SEED, Knob, KnobValue
from .numerics import tanh

#: The generators' names, scikit-learn's bundled sets' names, and "file" (the user's own).
GENERATED = ("xor", "clusters", "linear", "moons", "circles", "teacher")
BUNDLED = ("digits", "iris", "wine", "breast_cancer")
DATA_NAMES = (*GENERATED, *BUNDLED, "file")
TEACHER_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
TASKS = ("auto", "classification", "regression")
#: Largest sample count a generator draws (and largest subset): 16 M samples.
MAX_SAMPLES = 2**24
#: Data up to this many bytes (X and y together) are small enough to store in the map file.
EMBED_LIMIT_BYTES = 16 * 2**20
INSTALL_HINT = 'pip install "descentsim[datasets]"'

DATA_KNOBS: tuple[Knob, ...] = (
    Knob("data", "xor", "the data set: a generator, a scikit-learn set, or file (data_file)", kind=str,
         choices=DATA_NAMES),
    Knob("data_seed", 0, "seed of the generated data and of the train_samples subset", kind=int, minimum=0,
         maximum=MAX_SEED),
    Knob("samples", 200, "samples drawn (xor, linear, moons, circles, teacher)", kind=int, minimum=1,
         maximum=MAX_SAMPLES),
    Knob("per_class", 50, "samples per class (clusters)", kind=int, minimum=1, maximum=2**20),
    Knob("features", 2, "input features (clusters, linear, teacher)", kind=int, minimum=1, maximum=4096),
    Knob("classes", 2, "classes (clusters, teacher)", kind=int, minimum=2, maximum=1024),
    Knob("noise", 0.0, "standard deviation of the Gaussian noise: on the inputs (xor, moons, circles), "
         "on the target (linear) or on the teacher's outputs (teacher)", minimum=0.0),
    Knob("separation", 1.0, "standard deviation of the cluster centres (clusters)", minimum=0.0),
    Knob("cluster_std", 1.0, "standard deviation of the points about their centre (clusters)", minimum=0.0),
    Knob("input_low", 0.0, "inputs are uniform in [input_low, input_high] (linear)"),
    Knob("input_high", 1.0, "inputs are uniform in [input_low, input_high] (linear)"),
    Knob("slope", 1.0, "a of the target y = a·(x₁ + … + x_features) + b (linear)"),
    Knob("intercept", 0.0, "b of the target y = a·(x₁ + … + x_features) + b (linear)"),
    Knob("inner_radius", 0.8, "radius of the inner circle, the outer one's being 1 (circles)", minimum=0.0,
         below=1.0, why="the inner circle must lie inside the outer one"),
    Knob("teacher_width", 4, "hidden units of the teacher network (teacher)", kind=int, minimum=1, maximum=4096),
    Knob("teacher_activation", "tanh", "hidden activation of the teacher network (teacher)", kind=str,
         choices=TEACHER_ACTIVATIONS),
    Knob("task", "auto", "classification or regression; auto: the data set's own (file: inferred from the "
         "labels; teacher: classification)", kind=str, choices=TASKS),
    Knob("data_file", "", "the data file (data = file): .npz (X, y), .npy (X; labels in labels_file), .csv, or a "
         "map file .h5 (the data it trained on)",
         kind=str),
    Knob("labels_file", "", "the .npy file of the labels, with a .npy data_file", kind=str),
    Knob("label_column", "", "the label column of a .csv data_file (empty: the last column)", kind=str),
    Knob("standardize", 0, "1: each feature scaled to mean 0 and variance 1 over the training samples",
         kind=int, minimum=0, maximum=1),
    Knob("train_samples", 0, "train on this many samples, drawn by data_seed (0: all)", kind=int, minimum=0,
         maximum=MAX_SAMPLES),
)
#: Every data knob fixes the data (their arrays' sizes or their values): all are shape knobs.
DATA_SHAPE_KNOBS: frozenset[str] = frozenset(knob.name for knob in DATA_KNOBS)
_KNOBS = {knob.name: knob for knob in DATA_KNOBS}


class DataError(SpecError):
    """Data that cannot be trained on: a missing or unreadable file, wrong shapes, bad values or labels."""


@dataclass(frozen=True, eq=False)
class DataSet:
    """A data set, ready to train on; its arrays are read-only.

    X            : (samples, features) float64 inputs.
    y            : (samples,) int64 class labels 0..classes−1 (classification) or float64 targets (regression).
    classes      : the class count (0 for regression).
    task         : "classification" or "regression".
    content_hash : sha256 (hex) of X and y: of b"X <f8 (n, f)\\n", X's bytes (C order), b"y <i8 (n,)\\n"
                   (<f8 for regression), y's bytes; the header is f"{name} {array.dtype.str} {array.shape}\\n".
    description  : one line saying what the data are, for pictures and ``descentsim-info``.
    name         : the data set's name ("xor", "digits", …), or the data file's name.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: int
    task: str
    content_hash: str
    description: str

    @property
    def samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def features(self) -> int:
        return int(self.X.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of X and y together."""
        return int(self.X.nbytes + self.y.nbytes)


class Drawn(NamedTuple):
    """What a generator or a loader gives: X (n, f), y (n,), the class count (0: regression), its own words."""

    X: np.ndarray
    y: np.ndarray
    classes: int
    what: str


Settings = Mapping[str, KnobValue]


def data_settings(values: Mapping[str, object]) -> dict[str, KnobValue]:
    """Every data knob's value: those in ``values`` checked (``Knob.coerce``), the others their defaults.

    Keys of ``values`` that are not data knobs (a model's own knobs) are left alone. NumPy scalars are taken
    as the Python numbers they hold.
    """
    settings = {}
    for name, knob in _KNOBS.items():
        value = values.get(name, knob.default)
        settings[name] = knob.coerce(value.item() if isinstance(value, np.generic) else value)
    return settings


def load_data(values: Mapping[str, object]) -> DataSet:
    """The data set the data knobs in ``values`` describe (see the module docstring; missing knobs take their
    defaults, other keys are ignored).

    Raises SpecError for a knob value out of range, DataError (a SpecError) for data that cannot be used; each
    is one line naming the problem and the fix.

    Examples
    --------
    >>> ds = load_data({"data": "xor", "samples": 4})
    >>> ds.X.tolist(), ds.y.tolist(), ds.classes, ds.task
    ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 1, 1, 0], 2, 'classification')
    """
    settings = data_settings(values)
    name = str(settings["data"])
    _check_file_knobs(settings)
    _check_task(settings)
    if name == "file":
        drawn, source, name = _read_file(settings), f"data file {settings['data_file']!r}", _file_name(settings)
        task = str(settings["task"])
        if task == "auto" and Path(str(settings["data_file"])).suffix.lower() == ".h5":  # the map's own task
            task = "classification" if drawn.classes else "regression"
    else:
        drawn, source = (BUNDLED_LOADERS[name] if name in BUNDLED else GENERATORS[name])(settings), f"data {name!r}"
        task = "classification" if drawn.classes else "regression"
    x, y, classes = checked_arrays(drawn.X, drawn.y, task, source, drawn.classes)
    rows = subset_rows(len(x), int(settings["train_samples"]), int(settings["data_seed"]), source)
    x, y = x[rows], y[rows]
    if classes and len(np.unique(y)) < 2:
        raise DataError(f"the {len(y)} training samples of {source} hold one class only; "
                        "use more samples (train_samples) or another data_seed")
    if settings["standardize"]:
        x = standardized(x)
    return _data_set(name, x, y, classes, _description(drawn.what, x, classes, settings))


def _data_set(name: str, x: np.ndarray, y: np.ndarray, classes: int, description: str) -> DataSet:
    x, y = np.ascontiguousarray(x, dtype="<f8"), np.ascontiguousarray(y, dtype="<i8" if classes else "<f8")
    x.setflags(write=False)
    y.setflags(write=False)
    return DataSet(name, x, y, classes, "classification" if classes else "regression", content_hash(x, y),
                   description)


def content_hash(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 (hex) of X and y with their dtypes and shapes (the recipe: ``DataSet.content_hash``).

    Examples
    --------
    >>> import hashlib
    >>> x, y = np.zeros((2, 1)), np.array([0, 1])
    >>> reference = hashlib.sha256(b"X <f8 (2, 1)\\n" + x.tobytes() + b"y <i8 (2,)\\n" + y.tobytes()).hexdigest()
    >>> content_hash(x, y) == reference
    True
    """
    digest = hashlib.sha256()
    for label, array in (("X", x), ("y", y)):
        array = np.ascontiguousarray(array)
        digest.update(f"{label} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def data_provenance(ds: DataSet) -> dict[str, str | int]:
    """What a map file records of its data: name, sha256, samples, features, task, classes, description."""
    return {"data_name": ds.name, "data_sha256": ds.content_hash, "data_samples": ds.samples,
            "data_features": ds.features, "data_task": ds.task, "data_classes": ds.classes,
            "data_description": ds.description}


def fits_in_map_file(ds: DataSet) -> bool:
    """Whether the data (X and y) are small enough, at most EMBED_LIMIT_BYTES, to store in the map file."""
    return ds.nbytes <= EMBED_LIMIT_BYTES


#: The group of a map file that holds its training data (``write_embedded``).
EMBEDDED_GROUP = "training_data"


def write_embedded(parent, ds: DataSet) -> None:
    """Store ``ds`` in the HDF5 group ``parent`` (an ``h5py.Group``: a map file's root) as the group
    ``training_data``: datasets ``X`` (samples × features, float64) and ``y`` (int64 labels or float64 targets),
    gzip-compressed with Fletcher-32 checksums, and the attributes name, classes, task, content_hash (sha256,
    ``content_hash``) and description."""
    group = parent.create_group(EMBEDDED_GROUP)
    for label, array in (("X", ds.X), ("y", ds.y)):
        group.create_dataset(label, data=array, compression="gzip", compression_opts=4, shuffle=True,
                             fletcher32=True)
    for key in ("name", "classes", "task", "content_hash", "description"):
        group.attrs[key] = getattr(ds, key)


def read_embedded(parent, shown: str) -> DataSet:
    """The data set ``write_embedded`` stored in ``parent`` (an ``h5py.Group``), checked against its sha256;
    DataError (one line naming ``shown``, the file as messages show it) when it is missing or damaged."""
    if EMBEDDED_GROUP not in parent:
        raise DataError(f"{shown} holds no training data (a map of a model without data, a map whose data "
                        "were larger than 16 MiB, or one made before descentsim kept them); set data_file to the "
                        "data themselves")
    group = parent[EMBEDDED_GROUP]
    try:
        x, y = np.asarray(group["X"][...]), np.asarray(group["y"][...])
        classes, stored = int(group.attrs["classes"]), str(group.attrs["content_hash"])
        name, description = str(group.attrs["name"]), str(group.attrs["description"])
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise DataError(f"the training data in {shown} are damaged ({exc}); recompute the map") from None
    if x.dtype != np.dtype("<f8") or x.ndim != 2 or y.shape != (len(x),) or \
            y.dtype != np.dtype("<i8" if classes else "<f8") or content_hash(x, y) != stored:
        raise DataError(f"the training data in {shown} do not match their sha256; the file is damaged: "
                        "recompute the map")
    return _data_set(name, x, y, classes, description)


# ---------------------------------------------------------------------------------------------- generators


def _rng(settings: Settings) -> np.random.Generator:
    return np.random.default_rng(int(settings["data_seed"]))


#: XOR's corners and their labels, in row order.
XOR_CORNERS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_LABELS = np.array([0, 1, 1, 0])


def xor_data(settings: Settings) -> Drawn:
    """XOR: the corners of the unit square, repeated, with Gaussian noise on the inputs.

    Row i is corner i mod 4 of (0, 0), (0, 1), (1, 0), (1, 1), labelled 0, 1, 1, 0 (unshuffled: ``samples =
    4`` with ``noise = 0`` is the textbook table). ``rng = numpy.random.default_rng(data_seed)``, then X =
    corners + noise · rng.standard_normal((samples, 2)). Knobs: samples, noise, data_seed.
    """
    n, noise = int(settings["samples"]), float(settings["noise"])
    corner = np.arange(n) % 4
    x = XOR_CORNERS[corner] + noise * _rng(settings).standard_normal((n, 2))
    return Drawn(x, XOR_LABELS[corner], 2, f"XOR corners, noise {noise:g}")


def draw_clusters(rng: np.random.Generator, classes: int, features: int, per_class: int, separation: float,
                  cluster_std: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, features), labels (n,), centres (classes, features)) of Gaussian clusters drawn from ``rng``, in
    this order: centres = separation · rng.standard_normal((classes, features)); labels = 0..classes−1, each
    per_class times (class by class); X = centres[labels] + cluster_std · rng.standard_normal((n, features));
    both shuffled by rng.permutation(n), n = classes · per_class. The softmax-mlp then draws its initial
    weights from the same ``rng``."""
    centres = separation * rng.standard_normal((classes, features))
    labels = np.repeat(np.arange(classes), per_class)
    x = centres[labels] + cluster_std * rng.standard_normal((len(labels), features))
    order = rng.permutation(len(labels))
    return x[order], labels[order], centres


def clusters_data(settings: Settings) -> Drawn:
    """Gaussian clusters, one a class: the softmax-mlp's data, drawn the same way (byte for byte alike).

    ``rng = numpy.random.default_rng(data_seed)``; then, in this order: centres = separation ·
    rng.standard_normal((classes, features)); labels = 0..classes−1, each per_class times (class by class);
    X = centres[labels] + cluster_std · rng.standard_normal((n, features)); both shuffled by
    rng.permutation(n), n = classes · per_class. This is ``softmax_mlp_arrays`` with d = features and seed =
    data_seed (which then goes on to draw the initial weights). Knobs: classes, features, per_class,
    separation, cluster_std, data_seed.
    """
    classes, features, per_class = int(settings["classes"]), int(settings["features"]), int(settings["per_class"])
    x, labels, _ = draw_clusters(_rng(settings), classes, features, per_class, float(settings["separation"]),
                                 float(settings["cluster_std"]))
    what = f"Gaussian clusters, separation {settings['separation']:g}, spread {settings['cluster_std']:g}"
    return Drawn(x, labels, classes, what)


def linear_data(settings: Settings) -> Drawn:
    """Linear regression: y = slope·(x₁ + … + x_f) + intercept + noise·ε, inputs uniform in [input_low, input_high].

    ``rng = numpy.random.default_rng(data_seed)``; then X = input_low + (input_high − input_low) ·
    rng.random((samples, features)), then ε = rng.standard_normal(samples). y is computed left to right:
    ((slope·x₁ + slope·x₂) + … + slope·x_f) + intercept, then + noise·ε. Knobs: samples, features,
    input_low, input_high, slope, intercept, noise, data_seed.
    """
    n, features = int(settings["samples"]), int(settings["features"])
    low, high = float(settings["input_low"]), float(settings["input_high"])
    if high < low:
        raise SpecError(f"input_high ({high:g}) is below input_low ({low:g}); give the input range low to high")
    slope, intercept, noise = float(settings["slope"]), float(settings["intercept"]), float(settings["noise"])
    rng = _rng(settings)
    x = low + (high - low) * rng.random((n, features))
    eps = rng.standard_normal(n)
    y = slope * x[:, 0]
    for j in range(1, features):
        y = y + slope * x[:, j]
    y = (y + intercept) + noise * eps
    what = f"y = {slope:g}·Σx + {intercept:g} + noise {noise:g}, x in [{low:g}, {high:g}]"
    return Drawn(x, y, 0, what)


def _cos_sin(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos t and sin t from Python's math (the C library), element by element."""
    return np.array([math.cos(v) for v in t.tolist()]), np.array([math.sin(v) for v in t.tolist()])


def _noisy_shuffled(points: np.ndarray, labels: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """points + noise · rng.standard_normal((n, 2)), then rows shuffled by rng.permutation(n), one rng."""
    rng = _rng(settings)
    x = points + float(settings["noise"]) * rng.standard_normal(points.shape)
    order = rng.permutation(len(x))
    return x[order], labels[order]


def moons_data(settings: Settings) -> Drawn:
    """Two interleaving half circles (scikit-learn's ``make_moons`` geometry, drawn with NumPy's Generator).

    n_out = samples // 2 points of class 0 on (cos t, sin t), t = numpy.linspace(0, π, n_out), then n_in =
    samples − n_out of class 1 on (1 − cos t, 1 − sin t − ½), t = numpy.linspace(0, π, n_in); cos and sin
    from ``math``. ``rng = numpy.random.default_rng(data_seed)``; X = points + noise ·
    rng.standard_normal((samples, 2)); rows shuffled by rng.permutation(samples). Knobs: samples, noise,
    data_seed.
    """
    n = int(settings["samples"])
    n_out, n_in = n // 2, n - n // 2
    cos_out, sin_out = _cos_sin(np.linspace(0, np.pi, n_out))
    cos_in, sin_in = _cos_sin(np.linspace(0, np.pi, n_in))
    points = np.column_stack([np.concatenate([cos_out, 1 - cos_in]), np.concatenate([sin_out, 1 - sin_in - 0.5])])
    x, y = _noisy_shuffled(points, np.repeat([0, 1], [n_out, n_in]), settings)
    return Drawn(x, y, 2, f"two moons, noise {settings['noise']:g}")


def circles_data(settings: Settings) -> Drawn:
    """Two concentric circles (scikit-learn's ``make_circles`` geometry, drawn with NumPy's Generator).

    n_out = samples // 2 points of class 0 on (cos t, sin t), t = numpy.linspace(0, 2π, n_out,
    endpoint=False), then n_in = samples − n_out of class 1 on inner_radius·(cos t, sin t), t =
    numpy.linspace(0, 2π, n_in, endpoint=False); cos and sin from ``math``. ``rng =
    numpy.random.default_rng(data_seed)``; X = points + noise · rng.standard_normal((samples, 2)); rows
    shuffled by rng.permutation(samples). Knobs: samples, inner_radius, noise, data_seed.
    """
    n, radius = int(settings["samples"]), float(settings["inner_radius"])
    n_out, n_in = n // 2, n - n // 2
    cos_out, sin_out = _cos_sin(np.linspace(0, 2 * np.pi, n_out, endpoint=False))
    cos_in, sin_in = _cos_sin(np.linspace(0, 2 * np.pi, n_in, endpoint=False))
    points = np.column_stack([np.concatenate([cos_out, radius * cos_in]), np.concatenate([sin_out, radius * sin_in])])
    x, y = _noisy_shuffled(points, np.repeat([0, 1], [n_out, n_in]), settings)
    return Drawn(x, y, 2, f"two circles, inner radius {radius:g}, noise {settings['noise']:g}")


def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (n, a) times w (a, b), each sum in index order: ((x₁w₁ + x₂w₂) + …), not BLAS (whose order varies)."""
    acc = x[:, 0:1] * w[0]
    for i in range(1, w.shape[0]):
        acc = acc + x[:, i : i + 1] * w[i]
    return acc


#: The teacher's hidden activations; sigmoid z = ½ + ½·tanh(z/2), with descentsim.numerics.tanh.
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": tanh,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "sigmoid": lambda z: 0.5 + 0.5 * tanh(z / 2),
    "identity": lambda z: z,
}


def teacher_data(settings: Settings) -> Drawn:
    """A random one-hidden-layer teacher network labels random inputs.

    ``rng = numpy.random.default_rng(data_seed)``; then, in this order: X = rng.standard_normal((samples,
    features)); W1 = rng.standard_normal((features, teacher_width)); b1 = rng.standard_normal(teacher_width);
    W2 = rng.standard_normal((teacher_width, k)); ε = rng.standard_normal((samples, k)); k = classes, or 1
    for ``task = "regression"``. The teacher's outputs are out = dense(φ(dense(X, W1)/√features + b1),
    W2)/√teacher_width + noise·ε (``dense``: sums in index order; φ = teacher_activation, tanh from
    ``descentsim.numerics``). Classification: y = the first largest output of each row (a class no input
    gets stays counted in ``classes``); regression: y = out[:, 0]. Knobs: samples, features, classes,
    teacher_width, teacher_activation, noise, task, data_seed.
    """
    n, features, width = int(settings["samples"]), int(settings["features"]), int(settings["teacher_width"])
    classes = 0 if settings["task"] == "regression" else int(settings["classes"])
    k = max(classes, 1)
    rng = _rng(settings)
    x = rng.standard_normal((n, features))
    w1, b1 = rng.standard_normal((features, width)), rng.standard_normal(width)
    w2, eps = rng.standard_normal((width, k)), rng.standard_normal((n, k))
    hidden = ACTIVATIONS[str(settings["teacher_activation"])](dense(x, w1) / math.sqrt(features) + b1)
    out = dense(hidden, w2) / math.sqrt(width) + float(settings["noise"]) * eps
    y = np.argmax(out, axis=1) if classes else out[:, 0]
    what = (f"{settings['teacher_activation']} teacher of {width} hidden units, noise {settings['noise']:g}")
    return Drawn(x, y, classes, what)


GENERATORS: dict[str, Callable[[Settings], Drawn]] = {
    "xor": xor_data, "clusters": clusters_data, "linear": linear_data, "moons": moons_data,
    "circles": circles_data, "teacher": teacher_data,
}


# ------------------------------------------------------------------------------------------ scikit-learn


def _bundled(loader_name: str, what: str) -> Callable[[Settings], Drawn]:
    def load(settings: Settings) -> Drawn:
        try:
            import sklearn.datasets
        except ImportError:
            raise DataError(f"data {settings['data']!r} comes with scikit-learn, which is not installed: "
                            f"{INSTALL_HINT}") from None
        x, y = getattr(sklearn.datasets, loader_name)(return_X_y=True)
        classes = int(np.max(y)) + 1
        return Drawn(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64), classes, f"scikit-learn's {what}")

    load.__doc__ = f"scikit-learn's {what} (``sklearn.datasets.{loader_name}``, shipped with it: no download)."
    return load


BUNDLED_LOADERS: dict[str, Callable[[Settings], Drawn]] = {
    "digits": _bundled("load_digits", "8×8 handwritten digits"),
    "iris": _bundled("load_iris", "iris flowers"),
    "wine": _bundled("load_wine", "wine cultivars"),
    "breast_cancer": _bundled("load_breast_cancer", "Wisconsin breast cancer diagnoses"),
}


# ----------------------------------------------------------------------------------------------- files

SUFFIXES = (".npz", ".npy", ".csv", ".h5")
#: The first bytes of every .npy file (NumPy's format, ``numpy.lib.format.MAGIC_PREFIX``).
NPY_MAGIC = b"\x93NUMPY"


def _file_name(settings: Settings) -> str:
    return Path(str(settings["data_file"])).name


def _check_file_knobs(settings: Settings) -> None:
    """The file knobs agree with ``data``: data_file exactly with data = "file", labels_file with .npy only."""
    data_file, labels_file = str(settings["data_file"]), str(settings["labels_file"])
    if settings["data"] != "file":
        if data_file or labels_file:
            raise SpecError(f"data_file and labels_file are read with data = \"file\", not {settings['data']!r}; "
                            "set data = \"file\" or leave them out")
        return
    if not data_file:
        raise SpecError('data = "file" needs data_file: a .npz, .npy (with labels_file), .csv or map (.h5) file')
    suffix = Path(data_file).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"data file {data_file!r} has an unknown extension; use .npz (arrays X and y), "
                        ".npy (X, with labels_file), .csv (a header row) or a map file .h5 (its training data)")
    if suffix == ".npy" and not labels_file:
        raise SpecError(f"data file {data_file!r} holds X only: name the .npy file of its labels in labels_file")
    if suffix != ".npy" and labels_file:
        raise SpecError(f"labels_file is for a .npy data_file; {data_file!r} holds its own labels, "
                        "so leave labels_file out")
    if settings["label_column"] and suffix != ".csv":
        raise SpecError(f"label_column is for a .csv data_file, not {data_file!r}; leave it out")


def _check_task(settings: Settings) -> None:
    """A task asked of a set whose task is fixed (all but file and teacher) must be its own."""
    asked, name = str(settings["task"]), str(settings["data"])
    own = "regression" if name == "linear" else "classification"
    if name not in ("file", "teacher") and asked not in ("auto", own):
        raise SpecError(f"data {name!r} is {own}, not {asked}; leave task out (or set it to \"auto\")")


def _existing(path_text: str, knob: str) -> Path:
    path = Path(path_text)
    if not path.is_file():
        where = "is not a file" if path.exists() else "does not exist"
        raise DataError(f"{knob} {path_text!r} {where}; check the path (relative to the working directory)")
    if path.stat().st_size == 0:
        raise DataError(f"{knob} {path_text!r} is empty; give a file that holds the data")
    return path


def _unreadable(path: Path, exc: BaseException, hint: str) -> DataError:
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return DataError(f"cannot read {str(path)!r} ({reason}); {hint}")


def _load_npy(path: Path) -> np.ndarray:
    with path.open("rb") as stream:
        if stream.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise DataError(f"{str(path)!r} is not a .npy file; save the array with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _unreadable(path, exc, "save it with numpy.save (numbers, no Python objects)") from None


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{str(path)!r} is not a .npz file (a zip of .npy arrays); save it with "
                        "numpy.savez(path, X=X, y=y)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ("X", "y") if name not in archive.files]
            if missing:
                raise DataError(f"data file {str(path)!r} has no array {missing[0]!r} (it holds "
                                f"{', '.join(archive.files) or 'none'}); save it with numpy.savez(path, X=X, y=y)")
            return archive["X"], archive["y"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, exc, "save it with numpy.savez(path, X=X, y=y)") from None


def _read_csv(path: Path, label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (float64) and labels (float64 where every label is a number, else the label texts) of a .csv.

    The first row names the columns; ``label_column`` (empty: the last column) holds the labels, every other
    column is a feature. Blank lines are skipped; fields may be quoted (the ``csv`` module's default dialect).
    """
    hint = "save it as text: a header row, then comma-separated values"
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            rows = [row for row in csv.reader(stream) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _unreadable(path, exc, hint) from None
    where = f"data file {str(path)!r}"
    if len(rows) < 2:
        raise DataError(f"{where} has {'a header row but ' if rows else ''}no data rows; {hint}")
    header = [name.strip() for name in rows[0]]
    label_column = label_column or header[-1]
    if label_column not in header:
        raise DataError(f"{where} has no column {label_column!r}; its columns: {', '.join(header)} "
                        "(set label_column to one of them)")
    if len(header) < 2:
        raise DataError(f"{where} has a label column only; add at least one feature column")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"row {line} of {where} has {len(row)} values but the header {len(header)} columns; "
                            "give every row a value in every column")
    table = np.array(rows[1:], dtype=str)
    empty = np.argwhere(np.char.strip(table) == "")
    if len(empty):
        line, column = empty[0]
        raise DataError(f"row {line + 2}, column {header[column]!r} of {where} is empty; fill in every value")
    label = header.index(label_column)
    features = [j for j in range(len(header)) if j != label]
    x = _numbers(table[:, features], [header[j] for j in features], where)
    try:
        y = table[:, label].astype(np.float64)
    except ValueError:
        y = np.char.strip(table[:, label])
    return x, y


def _numbers(cells: np.ndarray, names: list[str], where: str) -> np.ndarray:
    """The text cells as float64; a DataError names the first that is not a number."""
    try:
        return cells.astype(np.float64)
    except ValueError:
        for (line, column), text in np.ndenumerate(cells):
            try:
                float(text)
            except ValueError:
                raise DataError(f"row {line + 2}, column {names[column]!r} of {where} is {str(text)!r}, not a number; "
                                "features must be numbers (name the label column in label_column)") from None
        raise DataError(f"{where} holds a feature that is not a number; features must be numbers") from None


def _read_map_data(path: Path) -> DataSet:
    """The training data a map file keeps (``read_embedded``); DataError for a file that is not HDF5."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return read_embedded(f, repr(str(path)))
    except OSError as exc:
        raise DataError(f"data file {str(path)!r} cannot be read as a map file ({exc}); give a map file (.h5) "
                        "written by descentsim-map") from None


def _read_file(settings: Settings) -> Drawn:
    """X and y of the user's data_file (and labels_file); the class count is inferred later (0 here)."""
    path = _existing(str(settings["data_file"]), "data_file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y = _load_npz(path)
    elif suffix == ".npy":
        x, y = _load_npy(path), _load_npy(_existing(str(settings["labels_file"]), "labels_file"))
    elif suffix == ".h5":
        embedded = _read_map_data(path)
        what = embedded.description.split(";")[0]  # the rest (sizes) the description says again
        return Drawn(embedded.X, embedded.y, embedded.classes, f"file {path.name}: {what}")
    else:
        x, y = _read_csv(path, str(settings["label_column"]))
    return Drawn(x, y, 0, f"file {path.name}")


# ------------------------------------------------------------------------------------- checks and shaping


def checked_arrays(x: np.ndarray, y: np.ndarray, task: str, source: str, classes: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """(X float64 (n, f), y, classes) after checking shapes, values and labels; DataError (one line) otherwise.

    ``task``: "classification", "regression" or "auto" (classification where every label is a whole number
    or any is text, regression otherwise). ``classes``: the class count a generator or scikit-learn states;
    0 infers it from the labels, which must then be 0..K−1 with every class present (K = the largest + 1):
    labels like {1, 2} are refused (number classes from 0), text labels (a CSV's "setosa") are numbered
    0..K−1 in sorted order.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2:
        raise DataError(f"X of {source} has shape {x.shape}, not (samples, features); reshape it "
                        "(one feature: X.reshape(-1, 1))")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y of {source} has shape {y.shape}, not (samples,); give one label per sample")
    if len(y) != len(x):
        raise DataError(f"{source} has {len(x)} samples in X but {len(y)} labels in y; give one label per row of X")
    if x.size == 0:
        raise DataError(f"{source} has no data (X has shape {x.shape}); give at least one sample and one feature")
    if x.dtype.kind not in "biuf":
        raise DataError(f"X of {source} holds {x.dtype} values, not numbers; convert it to floats")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        row, column = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"X of {source} holds {x[row, column]} (row {row}, feature {column}); "
                        "remove or fill in the samples that are not finite")
    text = y.dtype.kind in "USO"
    if task == "auto":
        task = "classification" if classes or text or _whole(y) else "regression"
    if task == "regression":
        if text:
            raise DataError(f"the labels of {source} are text, which a regression cannot fit; "
                            "give numbers (or set task = \"classification\")")
        return x, _finite_targets(y, source), 0
    if text:
        names, y = np.unique(y.astype(str), return_inverse=True)
        classes = len(names)
    else:
        y = _class_labels(y, source, inferred=not classes)
        classes = classes or int(y.max()) + 1
    if len(np.unique(y)) < 2:
        raise DataError(f"{source} holds one class only; a classifier needs two or more")
    return x, y, classes


def _whole(y: np.ndarray) -> bool:
    return y.dtype.kind in "biu" or bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))


def _finite_targets(y: np.ndarray, source: str) -> np.ndarray:
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        row = int(np.argwhere(~np.isfinite(y))[0, 0])
        raise DataError(f"target {row} of {source} is {y[row]}; remove or fill in the samples that are not finite")
    return y


def _class_labels(y: np.ndarray, source: str, inferred: bool) -> np.ndarray:
    """Labels as int64 0..K−1; where K is inferred, every class must appear (labels from 1 are a mistake)."""
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(np.where(np.isfinite(y), y, 0)))
        if np.any(bad):
            row = int(np.argwhere(bad)[0, 0])
            raise DataError(f"label {row} of {source} is {y[row]}, not a class number; classes are whole "
                            "numbers 0..K−1 (or set task = \"regression\")")
    labels = y.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{source} has the label {labels.min()}; classes are numbered 0..K−1")
    if inferred:
        missing = np.setdiff1d(np.arange(labels.max() + 1), labels)
        if len(missing):
            raise DataError(f"{source} has labels up to {labels.max()} but no sample of class {missing[0]}; "
                            "classes are numbered 0..K−1 with every class present (subtract 1 from labels "
                            "that start at 1)")
    return labels


def subset_rows(samples: int, train_samples: int, data_seed: int, source: str) -> np.ndarray:
    """Rows kept for training: all (train_samples 0 or = samples), else the first train_samples of
    numpy.random.default_rng([data_seed, 1]).permutation(samples), sorted back into the data's order.

    Examples
    --------
    >>> subset_rows(5, 0, 0, "data 'xor'").tolist()
    [0, 1, 2, 3, 4]
    """
    if train_samples == 0 or train_samples == samples:
        return np.arange(samples)
    if train_samples > samples:
        raise SpecError(f"train_samples = {train_samples} but {source} has {samples} samples; "
                        f"use at most {samples} (0: all)")
    return np.sort(np.random.default_rng([data_seed, 1]).permutation(samples)[:train_samples])


def standardized(x: np.ndarray) -> np.ndarray:
    """Each feature minus its mean, over its standard deviation (population: ÷ n), both from ``math.fsum``
    (exactly rounded sums, the same on every machine); a constant feature is only centred (÷ 1), as
    scikit-learn's StandardScaler does."""
    out = np.empty_like(x)
    n = len(x)
    for j in range(x.shape[1]):
        column = x[:, j]
        deviation = column - math.fsum(column.tolist()) / n
        spread = math.sqrt(math.fsum((deviation * deviation).tolist()) / n)
        out[:, j] = deviation / spread if spread > 0 else deviation
    return out


def _description(what: str, x: np.ndarray, classes: int, settings: Settings) -> str:
    target = f"{classes} classes" if classes else "regression"
    extras = [f"seed {settings['data_seed']}"] if settings["data"] in GENERATED else []
    if settings["train_samples"]:
        extras.append(f"a subset by seed {settings['data_seed']}")
    if settings["standardize"]:
        extras.append("standardised")
    return f"{what}; {len(x)} samples × {x.shape[1]} features, {target}" + "".join(f", {e}" for e in extras)

