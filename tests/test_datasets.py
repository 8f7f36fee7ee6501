"""The data sets: every generator's draws against its documented recipe, re-implemented here; scikit-learn's
bundled sets; the user's files, good and bad (each refusal one line); subsets, standardisation, the hash."""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from descentsim import datasets
from descentsim.datasets import DATA_KNOBS, DATA_SHAPE_KNOBS, DataError, load_data
from descentsim.errors import SpecError
from descentsim.models.softmax_mlp import softmax_mlp_arrays
from descentsim.numerics import tanh


def one_line_error(values, *phrases, error=DataError) -> str:
    """The message of the error ``load_data(values)`` raises: one line holding every phrase."""
    with pytest.raises(error) as caught:
        load_data(values)
    message = str(caught.value)
    assert "\n" not in message and message
    for phrase in phrases:
        assert phrase in message, message
    return message


def assert_bytes_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------------- knobs


def test_every_data_knob_is_a_shape_knob_with_words():
    names = [knob.name for knob in DATA_KNOBS]
    assert len(names) == len(set(names)) and DATA_SHAPE_KNOBS == set(names)
    assert all(knob.doc for knob in DATA_KNOBS)


def test_defaults_knob_checks_and_numpy_scalars():
    assert load_data({}).name == "xor"
    same = load_data({"data": "linear", "samples": np.int64(7), "noise": np.float64(0.5), "lr": 3.0})
    assert same.content_hash == load_data({"data": "linear", "samples": 7, "noise": 0.5}).content_hash
    one_line_error({"noise": -1.0}, "'noise'", error=SpecError)
    one_line_error({"data": "mnist"}, "'data'", "digits", error=SpecError)
    one_line_error({"data": "linear", "input_low": 2.0, "input_high": 1.0}, "input_high", error=SpecError)
    one_line_error({"data": "circles", "inner_radius": 1.0}, "inner_radius", error=SpecError)


# ------------------------------------------------------------------------------------------ generators


def test_xor_without_noise_is_the_textbook_table():
    ds = load_data({"data": "xor", "samples": 6})
    assert ds.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 0], [0, 1]]
    assert ds.y.tolist() == [0, 1, 1, 0, 0, 1] and ds.y.dtype == np.int64
    assert (ds.classes, ds.task, ds.name) == (2, "classification", "xor")


def test_xor_draws():
    ds = load_data({"data": "xor", "samples": 10, "noise": 0.3, "data_seed": 5})
    eps = np.random.default_rng(5).standard_normal((10, 2))
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 3)[:10]
    assert_bytes_equal(ds.X, corners + 0.3 * eps)
    assert ds.y.tolist() == [0, 1, 1, 0] * 2 + [0, 1]


@pytest.mark.parametrize("values", [
    dict(classes=6, d=16, per_class=50, separation=1.0, cluster_std=1.0, seed=0),
    dict(classes=3, d=2, per_class=7, separation=2.5, cluster_std=0.25, seed=123),
    dict(classes=10, d=64, per_class=1, separation=0.0, cluster_std=3.0, seed=2**40),
])
def test_clusters_are_the_softmax_mlps_data_byte_for_byte(values):
    arrays = softmax_mlp_arrays({**values, "width1": 3, "width2": 3})
    ds = load_data({"data": "clusters", "classes": values["classes"], "features": values["d"],
                    "per_class": values["per_class"], "separation": values["separation"],
                    "cluster_std": values["cluster_std"], "data_seed": values["seed"]})
    assert_bytes_equal(ds.X, arrays["X"])
    assert_bytes_equal(ds.y, arrays["labels"].astype(np.int64))
    assert ds.classes == values["classes"]


def test_linear_draws():
    values = {"data": "linear", "samples": 9, "features": 3, "input_low": -2.0, "input_high": 100.0,
              "slope": 5.0, "intercept": 3.0, "noise": 0.1, "data_seed": 11}
    ds = load_data(values)
    rng = np.random.default_rng(11)
    x = -2.0 + 102.0 * rng.random((9, 3))
    eps = rng.standard_normal(9)
    y = [((5.0 * row[0] + 5.0 * row[1]) + 5.0 * row[2] + 3.0) + 0.1 * e for row, e in zip(x.tolist(), eps.tolist())]
    assert_bytes_equal(ds.X, x)
    assert ds.y.tolist() == y
    assert (ds.classes, ds.task, ds.y.dtype) == (0, "regression", np.float64)


def test_linear_with_whole_targets_stays_a_regression():
    ds = load_data({"data": "linear", "slope": 0.0, "intercept": 3.0})
    assert ds.task == "regression" and set(ds.y.tolist()) == {3.0}


def _curves_reference(n: int, seed: int, noise: float, outer, inner):
    """Points of class 0 then class 1 (outer(t), inner(t) give (x, y) lists), noise, shuffle, as documented."""
    points = [*outer(n // 2), *inner(n - n // 2)]
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2))
    rng = np.random.default_rng(seed)
    x = np.array(points) + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order], labels[order]


def test_moons_draws():
    def outer(k):
        return [(math.cos(t), math.sin(t)) for t in np.linspace(0, np.pi, k).tolist()]

    def inner(k):
        return [(1 - math.cos(t), 1 - math.sin(t) - 0.5) for t in np.linspace(0, np.pi, k).tolist()]

    x, y = _curves_reference(11, 4, 0.2, outer, inner)
    ds = load_data({"data": "moons", "samples": 11, "noise": 0.2, "data_seed": 4})
    assert_bytes_equal(ds.X, x)
    assert_bytes_equal(ds.y, y)


def test_circles_draws():
    def outer(k):
        return [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * np.pi, k, endpoint=False).tolist()]

    def inner(k):
        return [(0.3 * math.cos(t), 0.3 * math.sin(t)) for t in np.linspace(0, 2 * np.pi, k, endpoint=False).tolist()]

    x, y = _curves_reference(13, 8, 0.05, outer, inner)
    ds = load_data({"data": "circles", "samples": 13, "noise": 0.05, "inner_radius": 0.3, "data_seed": 8})
    assert_bytes_equal(ds.X, x)
    assert_bytes_equal(ds.y, y)


@pytest.mark.parametrize("name, maker, extra", [("moons", "make_moons", {}),
                                                ("circles", "make_circles", {"factor": 0.5})])
def test_moons_and_circles_have_scikit_learns_geometry(name, maker, extra):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = load_data({"data": name, "samples": 101, "inner_radius": extra.get("factor", 0.8)})
    x, y = getattr(sklearn_datasets, maker)(n_samples=101, shuffle=False, noise=None, **extra)
    ours = np.lexsort((ds.X[:, 1], ds.X[:, 0], ds.y))
    theirs = np.lexsort((x[:, 1], x[:, 0], y))
    np.testing.assert_allclose(ds.X[ours], x[theirs], rtol=0, atol=1e-15)
    assert ds.y[ours].tolist() == y[theirs].tolist()


def _teacher_reference(n, features, width, k, seed, noise, phi):
    """The teacher's outputs with plain Python sums, in the documented order of draws and of additions."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    w1, b1 = rng.standard_normal((features, width)), rng.standard_normal(width)
    w2, eps = rng.standard_normal((width, k)), rng.standard_normal((n, k))
    out = np.empty((n, k))
    for s in range(n):
        pre = np.empty(width)
        for h in range(width):
            acc = x[s, 0] * w1[0, h]
            for i in range(1, features):
                acc = acc + x[s, i] * w1[i, h]
            pre[h] = acc / math.sqrt(features) + b1[h]
        hidden = phi(pre)
        for c in range(k):
            acc = hidden[0] * w2[0, c]
            for h in range(1, width):
                acc = acc + hidden[h] * w2[h, c]
            out[s, c] = acc / math.sqrt(width) + noise * eps[s, c]
    return x, out


@pytest.mark.parametrize("activation, phi", [
    ("tanh", tanh), ("relu", lambda z: np.maximum(z, 0.0)), ("sigmoid", lambda z: 0.5 + 0.5 * tanh(z / 2)),
    ("identity", lambda z: z)])
def test_teacher_draws(activation, phi):
    common = {"data": "teacher", "samples": 12, "features": 3, "teacher_width": 5, "noise": 0.1,
              "teacher_activation": activation, "data_seed": 9}
    x, out = _teacher_reference(12, 3, 5, 4, 9, 0.1, phi)
    ds = load_data({**common, "classes": 4})
    assert_bytes_equal(ds.X, x)
    assert ds.y.tolist() == np.argmax(out, axis=1).tolist() and ds.classes == 4
    x, out = _teacher_reference(12, 3, 5, 1, 9, 0.1, phi)
    ds = load_data({**common, "task": "regression"})
    assert_bytes_equal(ds.y, out[:, 0])
    assert (ds.classes, ds.task) == (0, "regression")


def test_teacher_sigmoid_is_close_to_numpys():
    x, out = _teacher_reference(50, 4, 6, 1, 2, 0.0, lambda z: 1 / (1 + np.exp(-z)))
    ds = load_data({"data": "teacher", "samples": 50, "features": 4, "teacher_width": 6, "task": "regression",
                    "teacher_activation": "sigmoid", "data_seed": 2})
    np.testing.assert_allclose(ds.y, out[:, 0], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", datasets.GENERATED)
def test_generators_are_determined_by_their_seed(name):
    first, again = load_data({"data": name, "data_seed": 3}), load_data({"data": name, "data_seed": 3})
    assert first.content_hash == again.content_hash and first.X.tobytes() == again.X.tobytes()
    noisy = {"data": name, "noise": 0.1}  # xor's corners without noise are the same for every seed
    assert load_data({**noisy, "data_seed": 4}).content_hash != load_data({**noisy, "data_seed": 3}).content_hash


def test_a_fixed_task_must_be_the_data_sets_own():
    one_line_error({"data": "xor", "task": "regression"}, "classification", error=SpecError)
    one_line_error({"data": "linear", "task": "classification"}, "regression", error=SpecError)
    assert load_data({"data": "xor", "task": "classification"}).task == "classification"


# ------------------------------------------------------------------------------------------ scikit-learn


@pytest.mark.parametrize("name, shape, classes", [("digits", (1797, 64), 10), ("iris", (150, 4), 3),
                                                   ("wine", (178, 13), 3), ("breast_cancer", (569, 30), 2)])
def test_scikit_learns_sets(name, shape, classes):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = load_data({"data": name})
    assert (ds.X.shape, ds.classes, ds.task) == (shape, classes, "classification")
    assert sorted(set(ds.y.tolist())) == list(range(classes))
    x, y = getattr(sklearn_datasets, f"load_{name}")(return_X_y=True)
    assert_bytes_equal(ds.X, x.astype(np.float64))
    assert ds.content_hash == datasets.content_hash(x.astype(np.float64), y.astype(np.int64))
    assert load_data({"data": name}).content_hash == ds.content_hash


def test_without_scikit_learn_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    one_line_error({"data": "iris"}, 'pip install "descentsim[datasets]"', "scikit-learn")


# ---------------------------------------------------------------------------------------------- files


def file_values(path, **more):
    return {"data": "file", "data_file": str(path), **more}


def test_npz_file(tmp_path):
    x, y = np.arange(12.0).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "mine.npz", X=x, y=y)
    ds = load_data(file_values(tmp_path / "mine.npz"))
    assert_bytes_equal(ds.X, x)
    assert (ds.y.tolist(), ds.classes, ds.name) == (y.tolist(), 3, "mine.npz")
    assert ds.description.startswith("file mine.npz; 6 samples × 2 features, 3 classes")


def test_npy_pair_and_regression_targets(tmp_path):
    x, y = np.arange(8, dtype=np.int32).reshape(4, 2), np.array([0.5, 1.5, -2.0, 7.25])
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "targets.npy", y[:, None])
    ds = load_data(file_values(tmp_path / "X.npy", labels_file=str(tmp_path / "targets.npy")))
    assert ds.X.dtype == np.float64 and ds.X.tolist() == x.tolist()
    assert (ds.y.tolist(), ds.task, ds.classes) == (y.tolist(), "regression", 0)


def test_whole_labels_as_floats_are_classes_unless_told(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 1)), y=np.array([0.0, 1.0, 1.0, 2.0]))
    assert load_data(file_values(tmp_path / "d.npz")).classes == 3
    assert load_data(file_values(tmp_path / "d.npz", task="regression")).task == "regression"


def test_csv_file_label_column_named_or_last(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a, label ,b\n1,1,2\n3,0,4\n\n5.5,1,-6e-1\n")
    ds = load_data(file_values(path, label_column="label"))
    assert ds.X.tolist() == [[1, 2], [3, 4], [5.5, -0.6]] and ds.y.tolist() == [1, 0, 1]
    ds = load_data(file_values(path))
    assert ds.X.tolist() == [[1, 1], [3, 0], [5.5, 1]] and ds.task == "regression"


def test_csv_text_labels_are_numbered_in_sorted_order(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text('length,species\n1.0,"virginica"\n2.0,setosa\n3.0,versicolor\n4.0,setosa\n')
    ds = load_data(file_values(path))
    assert ds.y.tolist() == [2, 0, 1, 0] and ds.classes == 3
    one_line_error(file_values(path, task="regression"), "text", "classification")


BAD_FILES = {
    "missing.npz": (None, "does not exist"),
    "empty.npz": (b"", "is empty"),
    "junk.npz": (b"not a zip file at all", "not a .npz file"),
    "text.npy": (b"1 2 3", "not a .npy file"),
    "junk.npy": (b"\x93NUMPY garbage", "cannot read"),
    "junk.csv": (b"\xff\xfe\x00bad", "cannot read"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_unreadable_files(tmp_path, name):
    content, phrase = BAD_FILES[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    extra = {"labels_file": str(path)} if name.endswith(".npy") else {}
    one_line_error(file_values(path, **extra), phrase)


def test_a_directory_and_an_unknown_extension(tmp_path):
    (tmp_path / "folder.npz").mkdir()
    one_line_error(file_values(tmp_path / "folder.npz"), "is not a file", "check the path")
    (tmp_path / "d.txt").write_text("1,2\n")
    one_line_error(file_values(tmp_path / "d.txt"), "unknown extension", ".npz", ".csv")


def test_pickled_objects_are_refused(tmp_path):
    np.save(tmp_path / "X.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    one_line_error(file_values(tmp_path / "X.npy", labels_file=str(tmp_path / "y.npy")), "cannot read", "numpy.save")


def test_file_knob_mistakes(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 1)), y=np.array([0, 1]))
    one_line_error({"data": "file"}, "needs data_file", error=SpecError)
    one_line_error({"data": "xor", "data_file": "d.npz"}, 'data = "file"', error=SpecError)
    one_line_error(file_values(tmp_path / "X.npy"), "labels_file", error=SpecError)
    one_line_error(file_values(tmp_path / "d.npz", labels_file="y.npy"), "leave labels_file out", error=SpecError)
    one_line_error(file_values(tmp_path / "d.npz", label_column="y"), "label_column", error=SpecError)
    np.save(tmp_path / "X.npy", np.zeros((2, 1)))
    one_line_error(file_values(tmp_path / "X.npy", labels_file=str(tmp_path / "nope.npy")), "labels_file",
                   "does not exist")


BAD_ARRAYS = {
    "X not 2-D": (np.zeros(4), np.array([0, 1, 0, 1]), "reshape"),
    "y not 1-D": (np.zeros((4, 1)), np.zeros((4, 2)), "one label per sample"),
    "length": (np.zeros((4, 1)), np.array([0, 1, 0]), "4 samples in X but 3 labels"),
    "no samples": (np.zeros((0, 3)), np.zeros(0), "no data"),
    "text X": (np.array([["a"], ["b"]]), np.array([0, 1]), "not numbers"),
    "NaN": (np.array([[0.0], [np.nan]]), np.array([0, 1]), "nan (row 1, feature 0)"),
    "inf": (np.array([[np.inf], [0.0]]), np.array([0, 1]), "inf (row 0"),
    "NaN target": (np.zeros((2, 1)), np.array([0.5, np.nan]), "target 1"),
    "negative": (np.zeros((3, 1)), np.array([0, -1, 1]), "label -1"),
    "from 1": (np.zeros((3, 1)), np.array([1, 2, 2]), "no sample of class 0", "subtract 1"),
    "one class": (np.zeros((3, 1)), np.array([0, 0, 0]), "one class only"),
}


@pytest.mark.parametrize("case", BAD_ARRAYS)
def test_bad_arrays_get_one_line(tmp_path, case):
    x, y, *phrases = BAD_ARRAYS[case]
    np.savez(tmp_path / "bad.npz", X=x, y=y)
    one_line_error(file_values(tmp_path / "bad.npz"), "'", *phrases)


def test_labels_that_are_not_whole_numbers_when_classes_are_asked(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 1)), y=np.array([0.0, 0.5]))
    one_line_error(file_values(tmp_path / "d.npz", task="classification"), "label 1", "not a class number")


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((2, 1)), labels=np.array([0, 1]))
    one_line_error(file_values(tmp_path / "d.npz"), "no array 'y'", "labels", "numpy.savez")


BAD_CSV = {
    "header only": ("a,b\n", "no data rows"),
    "missing column": ("a,b\n1,0\n", "no column 'label'", "a, b"),
    "ragged": ("a,label\n1,0\n2\n", "row 3", "1 values but the header 2 columns"),
    "text feature": ("a,label\n1,0\nx,1\n", "row 3, column 'a'", "'x', not a number"),
    "empty cell": ("a,label\n1,0\n,1\n", "row 3, column 'a'", "empty"),
    "labels only": ("label\n0\n1\n", "label column only"),
}


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_gets_one_line(tmp_path, case):
    text, *phrases = BAD_CSV[case]
    (tmp_path / "bad.csv").write_text(text)
    one_line_error(file_values(tmp_path / "bad.csv", label_column="label"), *phrases)


# ------------------------------------------------------------------------------- subsets, scaling, hash


def test_train_subset_is_the_documented_rows(tmp_path):
    full = load_data({"data": "moons", "samples": 50, "data_seed": 6})
    part = load_data({"data": "moons", "samples": 50, "data_seed": 6, "train_samples": 20})
    rows = np.sort(np.random.default_rng([6, 1]).permutation(50)[:20])
    assert_bytes_equal(part.X, full.X[rows])
    assert_bytes_equal(part.y, full.y[rows])
    assert "subset" in part.description
    every = load_data({"data": "moons", "samples": 50, "data_seed": 6, "train_samples": 50})
    assert every.content_hash == full.content_hash
    one_line_error({"data": "moons", "samples": 50, "train_samples": 51}, "at most 50", error=SpecError)


def test_a_subset_of_one_class_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((40, 1)), y=np.array([0] * 39 + [1]))
    one_line_error(file_values(tmp_path / "d.npz", train_samples=2, data_seed=0), "one class only",
                   "train_samples")


def test_standardisation_over_the_training_samples():
    values = {"data": "linear", "samples": 40, "features": 3, "input_low": 0.0, "input_high": 100.0,
              "train_samples": 25}
    raw, scaled = load_data(values), load_data({**values, "standardize": 1})
    np.testing.assert_allclose(scaled.X.mean(axis=0), 0, atol=1e-13)
    np.testing.assert_allclose(scaled.X.std(axis=0), 1, rtol=1e-13)
    expected = (raw.X - raw.X.mean(axis=0)) / raw.X.std(axis=0)
    np.testing.assert_allclose(scaled.X, expected, rtol=1e-12, atol=1e-12)
    assert_bytes_equal(scaled.y, raw.y)
    assert "standardised" in scaled.description


def test_a_constant_feature_is_only_centred(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.array([[3.0, 1.0], [3.0, 3.0]]), y=np.array([0, 1]))
    ds = load_data(file_values(tmp_path / "d.npz", standardize=1))
    assert ds.X.tolist() == [[0.0, -1.0], [0.0, 1.0]]


def test_the_hash_follows_its_recipe_and_every_value():
    ds = load_data({"data": "xor", "samples": 4})
    recipe = hashlib.sha256(b"X <f8 (4, 2)\n" + ds.X.tobytes() + b"y <i8 (4,)\n" + ds.y.tobytes())
    assert ds.content_hash == recipe.hexdigest()
    hashes = {load_data(v).content_hash for v in (
        {"data": "xor", "samples": 4}, {"data": "xor", "samples": 5}, {"data": "xor", "samples": 4, "noise": 1e-9},
        {"data": "linear", "samples": 4}, {"data": "linear", "samples": 4, "intercept": 1e-12},
        {"data": "xor", "samples": 4, "standardize": 1})}
    assert len(hashes) == 6


def test_data_sets_are_read_only_and_describe_themselves():
    ds = load_data({"data": "circles", "samples": 10})
    with pytest.raises(ValueError):
        ds.X[0, 0] = 1.0
    with pytest.raises(ValueError):
        ds.y[0] = 1
    assert (ds.samples, ds.features, ds.nbytes) == (10, 2, 10 * 2 * 8 + 10 * 8)
    assert "\n" not in ds.description and ds.description.startswith("two circles")


def test_provenance_and_the_size_that_fits_in_a_map_file(monkeypatch):
    ds = load_data({"data": "xor", "samples": 8})
    assert datasets.data_provenance(ds) == {
        "data_name": "xor", "data_sha256": ds.content_hash, "data_samples": 8, "data_features": 2,
        "data_task": "classification", "data_classes": 2, "data_description": ds.description}
    assert datasets.fits_in_map_file(ds)
    monkeypatch.setattr(datasets, "EMBED_LIMIT_BYTES", ds.nbytes - 1)
    assert not datasets.fits_in_map_file(ds)


def test_the_readme_names_every_data_set_and_knob():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Data\n", 1)[1].split("\n## ", 1)[0]
    for name in (*datasets.DATA_NAMES, *DATA_SHAPE_KNOBS):
        assert f"`{name}`" in section, name
