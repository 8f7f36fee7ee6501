"""A tiny fully connected network described in the config, on any data set (``descentsim.datasets``)."""

from __future__ import annotations

import functools
import math
import zipfile
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import numpy as np

from ..datasets import DATA_KNOBS, DATA_SHAPE_KNOBS, DataSet, data_settings, load_data
from ..errors import SpecError
from ..knobs import MAX_SEED, Knob, learning_rate_knob
from ..numerics import exp, exp_nonpositive, log_at_least_one, tanh
from .base import KnobValues, Model, Problem, per_point

#: Hidden activations, by the code the consts carry (and the kernel will read).
ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "tanh_sqrt2", "relu_sqrt2")
#: Losses, by code; ``loss = "auto"`` takes softmax_ce for classification and mse for regression.
LOSSES = ("mse", "softmax_ce", "sigmoid_bce")
INITS = ("normal", "uniform", "he", "glorot", "lecun", "file")
PARAMETERIZATIONS = ("standard", "mean_field")
#: How init_offset enters: once, into the initial W1, or also after every update (the fractal notebook's
#: paraminit_vs_lr, the mlp's w1_offset_mode).
OFFSET_MODES = ("init", "every_step")
#: Most weight layers a network may have (hidden layers + 1).
MAX_LAYERS = 64
MAX_WIDTH = 4096
SQRT2 = math.sqrt(2.0)
#: Elements (rows × samples × units) the reference holds at once: samples are taken in blocks of this size.
BLOCK_ELEMENTS = 1 << 22

NETWORK_KNOBS = (
    Knob("widths", "16", "hidden layer widths as text, input first: \"25,12\"; \"\" for none (a linear model); "
         "the input width is the data's, the output width the task's (classes for softmax_ce, else 1)", kind=str),
    Knob("width", 0, "every hidden layer's width in place of the widths' values (0: the widths as given); a "
         "whole number, so it can be swept on an axis", kind=int, minimum=0, maximum=MAX_WIDTH),
    Knob("activation", "relu", "hidden activation: relu, leaky_relu (leaky_slope), tanh, sigmoid, identity, "
         "tanh_sqrt2 (tanh(√2·z)) or relu_sqrt2 (√2·relu(z)), the fractal paper's (mlp's tanh and relu)",
         kind=str, choices=ACTIVATIONS),
    Knob("leaky_slope", 0.01, "slope of leaky_relu below 0"),
    Knob("bias", 1, "1: every layer has biases; 0: none", kind=int, minimum=0, maximum=1),
    Knob("loss", "auto", "mse (1 output, no ½), softmax_ce (one output a class) or sigmoid_bce (1 output, "
         "2 classes); auto: softmax_ce for classification, mse for regression", kind=str, choices=("auto", *LOSSES)),
    Knob("init", "he", "initial weights: normal N(0,1), uniform U(init_low, init_high), he, glorot, lecun "
         "(normal, scaled by fan-in) or file (init_file)", kind=str, choices=INITS),
    Knob("init_low", -1.0, "low end of the uniform initial weights (init = uniform)"),
    Knob("init_high", 1.0, "high end of the uniform initial weights (init = uniform)"),
    Knob("init_file", "", "a .npz of the initial W1, b1, W2, b2, ... (init = file; b's only with bias = 1)",
         kind=str),
    Knob("init_scale", 1.0, "multiplies every initial weight and bias"),
    Knob("init_offset", 0.0, "added to every initial weight of the first layer (W1), as the mlp's w1_offset"),
    Knob("offset_mode", "init", "init: init_offset is added to the initial W1 once; every_step: also after every "
         "update, as the fractal notebook's paraminit_vs_lr (W1 drifts by init_offset a step)", kind=str,
         choices=OFFSET_MODES),
    Knob("seed", 0, "seed of the initial weights", kind=int, minimum=0, maximum=MAX_SEED),
    Knob("parameterization", "standard", "standard: z = a·W + b; mean_field: z = (a·W)·(1/√fan_in) + b, and "
         "the output (a·W)/√fan_in/√fan_in + b, the fractal paper's forward pass", kind=str,
         choices=PARAMETERIZATIONS),
    Knob("lr_layers", "", "per-layer learning-rate multipliers as text, \"1,1,0\" (0 freezes a layer); "
         "\"\": all 1", kind=str),
)
#: Knobs that fix the shapes, the initial draws or the code paths; the data knobs fix the data.
NETWORK_SHAPE_KNOBS = frozenset({"widths", "width", "activation", "bias", "loss", "init", "init_file", "seed",
                                 "parameterization", "lr_layers", "offset_mode"}) | DATA_SHAPE_KNOBS
_DEFAULTS = {knob.name: knob.default for knob in (*NETWORK_KNOBS, *DATA_KNOBS)}
DATA_KNOB_NAMES = frozenset(knob.name for knob in DATA_KNOBS)

# The columns of a network problem's consts (the same in every row but leaky_slope and the drift, which may be
# swept): activation code, loss code, bias (0/1), parameterization code, classifier (1: the data are classes, and
# the accuracy fields are computed), leaky_slope, the drift (init_offset), every_step (1: the drift is added to
# W1 after every update), L (weight layers), then the L + 1 widths n_0 (input) ... n_L (output), then L values
# 1/√fan_in, then L values √fan_in (float64, rounded once). The compiled kernel reads them by these positions
# (ext/kernels.h: DS_NET_ACTIVATION ... DS_NET_WIDTHS).
C_ACTIVATION, C_LOSS, C_BIAS, C_PARAM, C_CLASSIFIER, C_SLOPE, C_DRIFT, C_EVERY_STEP, C_LAYERS, C_WIDTHS = range(10)


def _text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SpecError(f"knob {name!r} of model 'network' must be text such as \"1,1,0\"; got {value!r}")
    return str(value)


def parse_list(name: str, value: object, kind: type, minimum: float, maximum: float) -> list:
    """``"25, 12"`` as [25, 12] (``kind`` int or float); "" as []; SpecError (one line) otherwise."""
    text = _text(name, value).strip()
    if not text:
        return []
    items = []
    for item in text.split(","):
        try:
            number = kind(item.strip())
        except ValueError:
            raise SpecError(f"knob {name!r} must be {'whole ' if kind is int else ''}numbers separated by commas, "
                            f"such as \"{'25,12' if kind is int else '1,1,0'}\"; got {text!r}") from None
        if not (minimum <= number <= maximum) or (kind is float and not math.isfinite(number)):
            raise SpecError(f"knob {name!r}: every value must be from {minimum:g} to {maximum:g}; got {text!r}")
        items.append(number)
    return items


def task_needs_data(values: Mapping[str, object]) -> bool:
    """Whether the task is known only from the data themselves: a data file with task = "auto"."""
    return str(values.get("task", "auto")) == "auto" and str(values.get("data", _DEFAULTS["data"])) == "file"


def data_task(values: Mapping[str, object], load: Callable[[Mapping[str, object]], DataSet] = load_data) -> str:
    """"classification" or "regression": the task knob, or the data set's own (a file's, read by ``load``)."""
    asked, name = str(values.get("task", "auto")), str(values.get("data", _DEFAULTS["data"]))
    if asked != "auto":
        return asked
    if name == "linear":
        return "regression"
    if name != "file":
        return "classification"
    return load(values).task


class Architecture:
    """What the fixed knobs say of a network: hidden widths, activation, bias, loss, init, parameterization and
    per-layer rates (checked; SpecError in one line). The task, and so an automatic loss, comes from the data
    (read by ``load``) only when asked for, where only the data file can tell it: a stored map opens without the
    file it was trained on."""

    def __init__(self, params: Mapping[str, object], load: Callable[[Mapping[str, object]], DataSet] = load_data):
        self._params, self._load = params, load
        get = lambda name: params.get(name, _DEFAULTS[name])  # noqa: E731
        self.hidden = parse_list("widths", get("widths"), int, 1, MAX_WIDTH)
        width = int(get("width"))
        if width:  # one width for every hidden layer: the knob that can be swept
            if not self.hidden:
                raise SpecError("knob 'width' sets the hidden layers' width, and widths gives none; give widths "
                                "(\"16\" for one hidden layer, \"16,16\" for two) or leave width out")
            self.hidden = [width] * len(self.hidden)
        if len(self.hidden) + 1 > MAX_LAYERS:
            raise SpecError(f"knob 'widths' gives {len(self.hidden)} hidden layers; at most {MAX_LAYERS - 1}")
        for name, choices in (("activation", ACTIVATIONS), ("loss", ("auto", *LOSSES)), ("init", INITS),
                              ("parameterization", PARAMETERIZATIONS)):
            if _text(name, get(name)) not in choices:
                raise SpecError(f"knob {name!r} of model 'network' must be one of {', '.join(choices)}; "
                                f"got {get(name)!r}")
        self.activation, self.init = str(get("activation")), str(get("init"))
        self.parameterization = str(get("parameterization"))
        bias = get("bias")
        if bias not in (0, 1) or isinstance(bias, str):
            raise SpecError(f"knob 'bias' of model 'network' must be 0 or 1; got {bias!r}")
        self.bias = int(bias)
        self.lr_layers = parse_list("lr_layers", get("lr_layers"), float, 0.0, math.inf) or [1.0] * self.layers
        if len(self.lr_layers) != self.layers:
            raise SpecError(f"knob 'lr_layers' needs one multiplier per weight layer, {self.layers} for widths "
                            f"{get('widths')!r}; got {len(self.lr_layers)}")
        if not any(self.lr_layers):
            raise SpecError("knob 'lr_layers' freezes every layer (all 0): nothing would train")
        self.init_file = str(get("init_file"))
        if self.init == "file" and not self.init_file:
            raise SpecError("init = \"file\" needs init_file, a .npz of W1, b1, W2, ...")
        if not task_needs_data(params):
            _ = self.loss  # checked at once where no file need be read

    @functools.cached_property
    def task(self) -> str:
        """"classification" or "regression" (``data_task``)."""
        return data_task(self._params, self._load)

    @functools.cached_property
    def loss(self) -> str:
        """The loss, "auto" resolved by the task; SpecError where it cannot fit the task."""
        loss = str(self._params.get("loss", _DEFAULTS["loss"]))
        loss = loss if loss != "auto" else ("softmax_ce" if self.task == "classification" else "mse")
        if loss == "softmax_ce" and self.task != "classification":
            raise SpecError("loss 'softmax_ce' needs class labels, and the data are regression targets; "
                            "use loss = \"mse\"")
        if loss == "sigmoid_bce" and self.task != "classification":
            raise SpecError("loss 'sigmoid_bce' needs two classes (labels 0 and 1); use loss = \"softmax_ce\" for "
                            "more, or \"mse\" for regression targets")
        return loss

    @property
    def layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.hidden) + 1

    def widths(self, features: int, classes: int) -> list[int]:
        """n_0 ... n_L: the input width (the data's features), the hidden widths, the output width."""
        return [features, *self.hidden, classes if self.loss == "softmax_ce" else 1]

    def rate_knobs(self) -> tuple[Knob, ...]:
        """lr1 ... lrL: per-layer learning-rate multipliers on top of lr_layers (sweepable)."""
        return tuple(learning_rate_knob(f"lr{i + 1}", 1.0, f"multiplies lr for layer {i + 1} (W{i + 1}, b{i + 1})"
                                        f"{' on top of lr_layers' if i == 0 else ''} (> 0)") for i in range(self.layers))


def layer_shapes(widths: list[int], bias: int) -> list[tuple[int, ...]]:
    """The shapes of θ's pieces in order: for each layer l, W_l (n_{l−1} × n_l), then b_l (n_l) when bias."""
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        shapes += [(fan_in, fan_out), (fan_out,)] if bias else [(fan_in, fan_out)]
    return shapes


def parameter_total(widths: list[int], bias: int) -> int:
    return sum(int(np.prod(shape)) for shape in layer_shapes(widths, bias))


def initial_layers(arch: Architecture, widths: list[int], values: KnobValues, n: int) -> list[np.ndarray]:
    """θ₀'s pieces (n, size) in θ's order (``Network``'s docstring gives the draws)."""
    if arch.init == "file":
        drawn = read_init_file(arch.init_file, widths, arch.bias)
    else:
        drawn = initial_draws(arch.init, widths, arch.bias, int(values["seed"]))
    scale = per_point(values["init_scale"], n)[:, None]
    low, high = per_point(values["init_low"], n)[:, None], per_point(values["init_high"], n)[:, None]
    offset = per_point(values["init_offset"], n)[:, None]
    pieces = []
    for k, piece in enumerate(drawn):
        flat = piece.ravel()[None, :]
        if arch.init == "uniform":
            flat = low + (high - low) * flat  # numpy's Generator.uniform: low + (high − low)·U
        flat = scale * flat
        pieces.append(flat + offset if k == 0 else np.broadcast_to(flat, (n, flat.shape[1])))
    return pieces


def initial_draws(init: str, widths: list[int], bias: int, seed: int) -> list[np.ndarray]:
    """The seeded pieces before init_scale and init_offset (uniform: the U(0, 1) draws U before low + (high − low)·U)."""
    rng = np.random.default_rng(seed)
    pieces = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        if init == "uniform":
            pieces.append(rng.random((fan_in, fan_out)))
            if bias:
                pieces.append(rng.random(fan_out))
            continue
        w = rng.standard_normal((fan_in, fan_out))
        if init == "normal":
            pieces.append(w)
            if bias:
                pieces.append(rng.standard_normal(fan_out))
            continue
        if init == "lecun":
            w = w / np.sqrt(fan_in)
        elif init == "he":
            w = SQRT2 * (w / np.sqrt(fan_in))
        else:  # glorot
            w = w / np.sqrt((fan_in + fan_out) / 2)
        pieces += [w, np.zeros(fan_out)] if bias else [w]
    return pieces


def read_init_file(path_text: str, widths: list[int], bias: int) -> list[np.ndarray]:
    """The pieces W1, b1, W2, ... of an init_file (.npz), checked against the network's shapes; one line
    (SpecError) for a missing, unreadable or mismatched file."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise SpecError(f"init_file {path_text!r} does not exist; give the path of a .npz of W1, b1, W2, ...")
    names = [f"{kind}{layer + 1}" for layer in range(len(widths) - 1) for kind in ("Wb" if bias else "W")]
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [name for name in names if name not in npz.files]
            if missing:
                raise SpecError(f"init_file {path_text!r} lacks {', '.join(missing)}; it needs {', '.join(names)}")
            arrays = {name: np.asarray(npz[name]) for name in names}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"init_file {path_text!r} cannot be read as a .npz ({exc}); save it with numpy.savez") from None
    pieces = []
    for name, shape in zip(names, layer_shapes(widths, bias)):
        a = arrays[name]
        if a.shape != shape or a.dtype.kind not in "fiu":
            raise SpecError(f"init_file {path_text!r}: {name} must be numbers shaped {shape} for widths "
                            f"{widths}; got {a.dtype} {a.shape}")
        if not np.all(np.isfinite(a)):
            raise SpecError(f"init_file {path_text!r}: {name} holds NaN or infinity")
        pieces.append(a.astype(np.float64))
    return pieces


class Layout(NamedTuple):
    """What a network problem's consts say (row 0 but the per-point columns): codes, L, widths n_0 … n_L, and per
    layer 1/√fan_in and √fan_in, with leaky_slope, as (m, 1, 1) columns of every row."""

    activation: int
    loss: int
    bias: int
    mean_field: int
    layers: int
    widths: list[int]
    scales: list[np.ndarray]
    roots: list[np.ndarray]
    slope: np.ndarray


def _layout(consts: np.ndarray) -> Layout:
    row = consts[0]
    layers = int(row[C_LAYERS])
    column = lambda at: consts[:, at][:, None, None]  # noqa: E731
    return Layout(int(row[C_ACTIVATION]), int(row[C_LOSS]), int(row[C_BIAS]), int(row[C_PARAM]), layers,
                  [int(w) for w in row[C_WIDTHS : C_WIDTHS + layers + 1]],
                  [column(C_WIDTHS + layers + 1 + l) for l in range(layers)],
                  [column(C_WIDTHS + 2 * layers + 1 + l) for l in range(layers)], column(C_SLOPE))


def _unpack(theta: np.ndarray, widths: list[int], bias: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """θ (m, P) as the weights [(m, fan_in, fan_out)] and biases [(m, fan_out) or None] of each layer (views)."""
    weights, biases, start = [], [], 0
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        weights.append(theta[:, start : start + fan_in * fan_out].reshape(len(theta), fan_in, fan_out))
        start += fan_in * fan_out
        biases.append(theta[:, start : start + fan_out] if bias else None)
        start += fan_out if bias else 0
    return weights, biases


def activation(z: np.ndarray, code: int, slope: np.ndarray) -> np.ndarray:
    """φ(z); ``slope`` (m, 1, 1) is leaky_relu's. tanh and exp are ``descentsim.numerics``'s."""
    name, zero, sqrt2 = ACTIVATIONS[code], z.dtype.type(0), z.dtype.type(SQRT2)
    if name == "relu":
        return np.where(z > 0, z, zero)
    if name == "leaky_relu":
        return np.where(z > 0, z, slope * z)
    if name == "tanh":
        return tanh(z)
    if name == "sigmoid":
        return 1 / (1 + exp(-z))
    if name == "tanh_sqrt2":
        return tanh(sqrt2 * z)
    if name == "relu_sqrt2":
        return sqrt2 * np.where(z > 0, z, zero)
    return z


def activation_backward(dh: np.ndarray, z: np.ndarray, h: np.ndarray, code: int, slope: np.ndarray) -> np.ndarray:
    """∂L/∂z from ∂L/∂h, at pre-activation z with h = φ(z) (relu'(0) = 0)."""
    name, zero, sqrt2 = ACTIVATIONS[code], z.dtype.type(0), z.dtype.type(SQRT2)
    if name == "relu":
        return np.where(z > 0, dh, zero)
    if name == "leaky_relu":
        return np.where(z > 0, dh, dh * slope)
    if name == "tanh":
        return dh * (1 - h * h)
    if name == "sigmoid":
        return dh * (h * (1 - h))
    if name == "tanh_sqrt2":
        return dh * (sqrt2 * (1 - h * h))
    if name == "relu_sqrt2":
        return np.where(z > 0, dh * sqrt2, zero)
    return dh


def first_argmax(z: np.ndarray) -> np.ndarray:
    """Index of the first largest entry along the last axis (by strict >, from entry 0)."""
    best, value = np.zeros(z.shape[:-1], dtype=np.int64), z[..., 0]
    for c in range(1, z.shape[-1]):
        better = z[..., c] > value
        best = np.where(better, c, best)
        value = np.where(better, z[..., c], value)
    return best


def softmax_cross_entropy(z: np.ndarray, labels: np.ndarray, count) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's ℓ (m, B) and ∂ℓ/∂z divided by ``count`` (m, B, classes), at logits z (m, B, classes) and
    int labels (m, B): μ = the first largest logit, s = Σ_c exp(z_c − μ) in class order, ℓ = (μ + log s) − z_y,
    ∂ℓ/∂z_c = (exp(z_c − μ)/s − [c = y])/count."""
    with np.errstate(invalid="ignore"):
        top = np.take_along_axis(z, first_argmax(z)[..., None], axis=-1)[..., 0]
        e = exp_nonpositive(z - top[..., None])
    s = np.zeros_like(top)
    for c in range(z.shape[-1]):
        s = s + e[..., c]
    picked = np.take_along_axis(z, labels[..., None], axis=-1)[..., 0]
    onehot = labels[..., None] == np.arange(z.shape[-1])
    return (top + log_at_least_one(s)) - picked, (e / s[..., None] - onehot.astype(z.dtype)) / count


#: What the classifiers' collapsed field's values mean.
COLLAPSE_WORDS = {"collapsed": {0: "more than one class (or not finite)", 1: "one class for every input"}}


def dense_consts(n: int, widths: list[int], activation: str, loss: str, bias: int, parameterization: str,
                 classifier: bool, slope: KnobValues | float = 0.0, drift: KnobValues | float = 0.0,
                 every_step: bool = False) -> np.ndarray:
    """The consts (n, C) of a fully connected network's problem (the columns C_ACTIVATION ... above) with layer
    widths n_0 … n_L; ``slope`` (leaky_relu) and ``drift`` (the W1 offset) a value or one per point."""
    fans = widths[:-1]
    head = [ACTIVATIONS.index(activation), LOSSES.index(loss), bias, PARAMETERIZATIONS.index(parameterization),
            int(classifier), 0.0, 0.0, float(every_step), len(fans)]
    row = np.array([*head, *widths, *(1 / math.sqrt(f) for f in fans), *(math.sqrt(f) for f in fans)])
    consts = np.tile(row, (n, 1))
    consts[:, C_SLOPE], consts[:, C_DRIFT] = per_point(slope, n), per_point(drift, n)
    return consts


class DenseNetwork(Model):
    """What every fully connected network shares: the compiled kernel ``network`` and its NumPy reference (the
    forward pass, losses and back-propagation ``Network`` documents), the classifier's evaluation and the
    every-step W1 offset. ``network`` and its presets ``mlp`` and ``softmax-mlp`` are its models; each makes its
    problem (``dense_consts``) from its own knobs."""

    kernel = "network"
    minibatches = True

    def loss_grad(self, theta, consts, data, batch=None):
        dtype = theta.dtype
        m = len(theta)
        code, loss_code, bias, mean_field, layers, widths, scales, roots, slope = _layout(consts)
        weights, biases = _unpack(theta, widths, bias)
        d = widths[0]
        count = data.shape[1] if batch is None else batch.shape[1]
        loss = np.zeros(m, dtype=dtype)
        grads_w = [np.zeros_like(w) for w in weights]
        grads_b = [None if b is None else np.zeros_like(b) for b in biases]
        block = max(1, BLOCK_ELEMENTS // max(1, m * max(widths)))
        for first in range(0, count, block):
            columns = np.arange(first, min(count, first + block))
            picked = np.broadcast_to(columns, (m, len(columns))) if batch is None else batch[:, columns]
            x = np.moveaxis(data[:d][:, picked], 0, -1)  # (m, B, d)
            y = data[d][picked]  # (m, B)
            zs, acts = self._forward(weights, biases, x, code, mean_field, scales, roots, slope)
            terms, delta = _loss_terms(zs[-1], y, loss_code, dtype.type(count))
            for n in range(len(columns)):
                loss = loss + terms[:, n]
            for l in range(layers - 1, -1, -1):
                if mean_field:
                    dacc = delta / roots[l] / roots[l] if l == layers - 1 else delta * scales[l]
                else:
                    dacc = delta
                inputs = acts[l]
                for n in range(len(columns)):
                    grads_w[l] = grads_w[l] + inputs[:, n, :, None] * dacc[:, n, None, :]
                    if bias:
                        grads_b[l] = grads_b[l] + delta[:, n]
                if l == 0:
                    break
                da = np.zeros_like(inputs)
                for j in range(widths[l + 1]):
                    da = da + weights[l][:, None, :, j] * dacc[..., j : j + 1]
                delta = activation_backward(da, zs[l - 1], inputs, code, slope)
        pieces = []
        for gw, gb in zip(grads_w, grads_b):
            pieces += [gw.reshape(m, -1)] + ([gb] if gb is not None else [])
        return loss / dtype.type(count), np.concatenate(pieces, axis=1)

    @staticmethod
    def _forward(weights, biases, x, code, mean_field, scales, roots, slope):
        """(z_1 … z_L, a_0 … a_{L−1}) of every row's network at inputs x (m, B, d), sums in index order."""
        zs, acts = [], [x]
        last = len(weights) - 1
        for l, (w, b) in enumerate(zip(weights, biases)):
            inputs = acts[-1]
            acc = np.zeros((*inputs.shape[:2], w.shape[2]), dtype=w.dtype)
            for i in range(w.shape[1]):
                acc = acc + inputs[:, :, i : i + 1] * w[:, None, i, :]
            if mean_field:
                acc = acc / roots[l] / roots[l] if l == last else acc * scales[l]
            z = acc if b is None else acc + b[:, None, :]
            zs.append(z)
            if l < last:
                acts.append(activation(z, code, slope))
        return zs, acts

    def evaluate(self, theta, consts, data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy, collapsed, classes predicted) of each row's network on the whole training set.

        The prediction: the first largest logit (softmax_ce), z > 0 (sigmoid_bce), z > 0.5 (mse on two classes).
        accuracy = fraction of inputs predicted right; collapsed = 1 when every input gets the same class;
        classes predicted = the number of distinct classes predicted. Where an output is not finite: accuracy
        NaN, collapsed 0, classes predicted 0 (as the softmax-mlp).
        """
        code, loss_code, bias, mean_field, layers, widths, scales, roots, slope = _layout(consts)
        weights, biases = _unpack(theta, widths, bias)
        d = widths[0]
        x = np.broadcast_to(data[:d].T, (len(theta), data.shape[1], d))
        with np.errstate(all="ignore"):
            z = self._forward(weights, biases, x, code, mean_field, scales, roots, slope)[0][-1]
        if LOSSES[loss_code] == "softmax_ce":
            predicted, classes = first_argmax(z), z.shape[-1]
        else:
            predicted, classes = (z[..., 0] > (0 if LOSSES[loss_code] == "sigmoid_bce" else 0.5)).astype(np.int64), 2
        finite = np.all(np.isfinite(z), axis=(1, 2))
        accuracy = np.mean(predicted == data[d].astype(np.int64), axis=1)
        collapsed = np.all(predicted == predicted[:, :1], axis=1)
        seen = np.zeros((len(theta), classes), dtype=bool)
        np.put_along_axis(seen, predicted, True, axis=1)
        distinct = np.where(finite, seen.sum(axis=1), 0).astype(np.int16)
        return np.where(finite, accuracy, np.nan), (finite & collapsed).astype(np.int8), distinct

    def after_update(self, theta: np.ndarray, consts: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Every-step offset (consts' every_step column): the drift is added to every entry of W1, θ's first
        n_0·n_1 values, after each update."""
        if len(theta) == 0 or not consts[0, C_EVERY_STEP]:
            return theta
        count = int(consts[0, C_WIDTHS]) * int(consts[0, C_WIDTHS + 1])
        theta = theta.copy()
        theta[:, :count] = theta[:, :count] + consts[:, C_DRIFT : C_DRIFT + 1]
        return theta


class Network(DenseNetwork):
    """A fully connected network given in the config, trained on a data set (``descentsim.datasets``).

    Layers l = 1 … L (L = hidden layers + 1) of widths n_0 (the data's features), the ``widths`` knob's
    hidden widths (every one ``width`` where that knob is not 0), and n_L: the class count for softmax_ce,
    else 1. Per input a_0 = x:

        acc_l = Σ_i a_{l−1,i}·W_l,i:   (a sum from 0 in index order i = 0 … n_{l−1} − 1)
        z_l   = acc_l (standard), acc_l·(1/√n_{l−1}) (mean_field, hidden layers l < L),
                acc_l/√n_{L−1}/√n_{L−1} (mean_field, the output layer: the mean-field readout 1/fan_in);
                then + b_l where bias = 1;
        a_l   = φ(z_l) for l < L; the output is z_L.

    1/√n and √n are rounded once in float64 (the consts), then to the map's precision. φ (``activation``):
    relu (relu'(0) = 0), leaky_relu (leaky_slope·z below 0), tanh, sigmoid 1/(1 + exp(−z)), identity,
    tanh_sqrt2 = tanh(√2·z) and relu_sqrt2 = √2·relu(z) (the mlp's "tanh" and "relu"); tanh and exp are
    ``descentsim.numerics``'s.

    Losses, per sample, with c the samples of the mean (the data's, or the minibatch's); L = (Σ ℓ in sample
    order)/c and each sample's ∂ℓ/∂z_L is divided by c before it is back-propagated and summed in sample order:

    * mse: e = z − y, ℓ = e·e (no ½), ∂ℓ/∂z = (2·e)/c;
    * softmax_ce: μ = the first largest logit, s = Σ_k exp(z_k − μ) in class order, ℓ = (μ + log s) − z_y,
      ∂ℓ/∂z_k = (exp(z_k − μ)/s − [k = y])/c (exp, log: ``exp_nonpositive``, ``log_at_least_one``), as the
      softmax-mlp;
    * sigmoid_bce: a = exp(−|z|), ℓ = (relu(z) − z·y) + log(1 + a), σ = 1/(1 + a) for z >= 0, else a/(1 + a),
      ∂ℓ/∂z = (σ − y)/c.

    Back-propagation, layer L down to 1, from δ_L = ∂ℓ/∂z_L: ∂b_l = δ_l; ∂acc_l = δ_l (standard), δ_l·(1/√n)
    or δ_l/√n/√n (mean_field, as the forward); ∂W_l,ij += a_{l−1,i}·∂acc_l,j; ∂a_{l−1,i} = Σ_j W_l,ij·∂acc_l,j
    (from 0, in index order j), δ_{l−1} = φ'(∂a_{l−1}) (``activation_backward``). Gradients are sums from 0
    over the samples in order.

    θ: for each layer, W_l (n_{l−1} × n_l, row-major) then b_l (bias = 1 only). Initial parameters, with
    ``rng = numpy.random.default_rng(seed)`` and the layers taken in order 1 … L:

    * normal: W = rng.standard_normal((n_{l−1}, n_l)), then (bias) b = rng.standard_normal(n_l);
    * uniform: U = rng.random((n_{l−1}, n_l)), then (bias) rng.random(n_l); each entry init_low + (init_high −
      init_low)·U (the bits of ``rng.uniform(init_low, init_high, shape)``);
    * lecun, he, glorot: G = rng.standard_normal((n_{l−1}, n_l)), W = G/√n_{l−1} (lecun), √2·(G/√n_{l−1})
      (he), G/√((n_{l−1} + n_l)/2) (glorot, normal); b = 0, nothing drawn for it;
    * file: W1, b1, W2, ... from init_file (a .npz; shapes exactly as θ's pieces; b's only with bias = 1).

    Then every piece is multiplied by init_scale, and init_offset c is added to every entry of W1. With
    offset_mode = every_step, c is added again after every update, W1 drifting by c a step: u_{t+1} =
    (u_t − lr·∂L/∂W1) + c (the fractal notebook's ``paraminit_vs_lr``; ``DenseNetwork.after_update``).

    Per-layer learning rates: layer l's W_l and b_l learn at lr·(lr_layers_l·lr<l>) (``lr_layers`` is fixed
    text, 0 freezing a layer; the knobs lr1 … lrL may be swept). Data rows: X's columns, then y (the labels
    as numbers for classification).

    Knobs: widths ("16"), width (0: as widths), activation (relu), leaky_slope (0.01), bias (1), loss (auto), init (he), init_low (−1),
    init_high (1), init_file, init_scale (1), init_offset (0), offset_mode (init), seed (0), parameterization
    (standard), lr_layers (""), lr1 … lrL (1), and the data knobs (``descentsim.datasets``).
    """

    name = "network"
    knobs = (*NETWORK_KNOBS, *DATA_KNOBS)
    shape_knobs = NETWORK_SHAPE_KNOBS
    value_words = COLLAPSE_WORDS

    def for_params(self, params: Mapping[str, object], reserved: frozenset[str] = frozenset()) -> Model:
        return NetworkFor(params)

    def problem(self, values: KnobValues, n: int) -> Problem:
        return self.for_params(values).problem(values, n)

    def parameter_count(self, values: KnobValues) -> int:
        return self.for_params(_largest(values)).parameter_count(values)

    def class_counts(self, values: KnobValues) -> tuple[int, int]:
        return self.for_params(values).class_counts(values)

    def data_size(self, values: KnobValues) -> int:
        return self.for_params(_largest(values)).data_size(values)


def _largest(values: KnobValues) -> dict[str, object]:
    """Knob values with every swept one at its largest (shapes grow with every data size knob)."""
    return {k: (v.max().item() if isinstance(v, np.ndarray) else v) for k, v in values.items()}


def _data_key(values: Mapping[str, object]) -> tuple:
    """What tells data sets apart: every data knob's value (``datasets.data_settings``)."""
    return tuple(sorted((name, repr(value)) for name, value in data_settings(values).items()))


class NetworkFor(Network):
    """The network of one spec's fixed knobs ``params`` (``Architecture``): its knobs (with lr1 … lrL), problem and
    reference. Each data set it trains on is loaded once (``_data``), however many tiles and groups ask."""

    #: Data sets kept at once (one per distinct value of the swept data knobs); the oldest is dropped first.
    KEPT_DATA = 8

    def __init__(self, params: Mapping[str, object]):
        self.params = dict(params)
        self._loaded: dict[tuple, DataSet] = {}
        self.arch = Architecture(self.params, self._data)
        self.knobs = (*NETWORK_KNOBS, *self.arch.rate_knobs(), *DATA_KNOBS)

    @property
    def classifier(self) -> bool:
        return self.arch.task == "classification"

    @property
    def converge_loss(self) -> float:
        return 1e-8 if self.arch.loss == "mse" else 1e-3

    def _data(self, values: Mapping[str, object]) -> DataSet:
        """The data set of the data knobs in ``values`` (``datasets.load_data``), loaded once."""
        key = _data_key(values)
        if key not in self._loaded:
            if len(self._loaded) >= self.KEPT_DATA:
                del self._loaded[next(iter(self._loaded))]
            self._loaded[key] = load_data(values)
        return self._loaded[key]

    def use_training_data(self, data: DataSet) -> None:
        """Train on (and read the task from) ``data``, a stored map's kept data, instead of loading the fixed data
        knobs' again: the map's data file may be gone."""
        self._loaded[_data_key(self.params)] = data

    def class_counts(self, values: KnobValues) -> tuple[int, int]:
        """The data's class count and samples (the training subset's)."""
        data = self._data(values)
        return data.classes, data.samples

    def _widths(self, values: KnobValues) -> tuple[list[int], DataSet]:
        """The layer widths n_0 … n_L and the data, for ``values`` (a group's, or each swept knob's largest)."""
        largest = _largest(values)
        data = self._data(largest)
        arch = self._arch(largest)
        if arch.loss == "sigmoid_bce" and data.classes != 2:
            raise SpecError(f"loss 'sigmoid_bce' needs two classes; the data have {data.classes}: use "
                            "loss = \"softmax_ce\"")
        if arch.loss == "mse" and data.classes > 2:
            raise SpecError(f"loss 'mse' fits one output to the label, and the data have {data.classes} classes; "
                            "use loss = \"softmax_ce\"")
        return arch.widths(data.features, data.classes), data

    def training_data(self, swept: frozenset[str]) -> DataSet | None:
        """The data of the fixed knobs, unless a data knob is swept."""
        return None if swept & DATA_KNOB_NAMES else self._data(self.params)

    def _arch(self, values: KnobValues) -> Architecture:
        """The architecture at ``values``: the fixed knobs' with the swept shape knobs' values (bias, width) in
        place; the loss and task are the fixed knobs'."""
        fixed = {name: int(self.params.get(name, _DEFAULTS[name])) for name in ("bias", "width")}
        if all(int(values.get(name, value)) == value for name, value in fixed.items()):
            return self.arch
        return Architecture({**values, "loss": self.arch.loss, "task": self.arch.task}, self._data)

    def parameter_count(self, values: KnobValues) -> int:
        return parameter_total(self._widths(values)[0], self._arch(_largest(values)).bias)

    def data_size(self, values: KnobValues) -> int:
        """X and y (and again as the data's rows), and the initial weights."""
        widths, data = self._widths(values)
        return 2 * (data.features + 1) * data.samples + parameter_total(widths, self._arch(_largest(values)).bias)

    def problem(self, values: KnobValues, n: int) -> Problem:
        arch = self._arch(values)
        widths, data = self._widths(values)
        theta0 = np.concatenate(initial_layers(arch, widths, values, n), axis=1)
        consts = dense_consts(n, widths, arch.activation, arch.loss, arch.bias, arch.parameterization,
                              self.classifier, values["leaky_slope"], values["init_offset"],
                              values["offset_mode"] == "every_step")
        lr_scale = np.empty((n, theta0.shape[1]))
        trainable = np.ones(theta0.shape[1], dtype=bool)
        start = 0
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            size = fan_in * fan_out + (fan_out if arch.bias else 0)
            lr_scale[:, start : start + size] = (arch.lr_layers[layer] * per_point(values[f"lr{layer + 1}"], n))[:, None]
            trainable[start : start + size] = arch.lr_layers[layer] != 0
            start += size
        rows = np.concatenate([data.X.T, data.y[None, :].astype(np.float64)])
        return Problem(theta0=theta0, consts=consts, data=np.ascontiguousarray(rows), trainable=trainable,
                       lr_scale=lr_scale)


def _loss_terms(z: np.ndarray, y: np.ndarray, loss_code: int, count) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's ℓ (m, B) and ∂ℓ/∂z/c (m, B, n_L) at outputs z (m, B, n_L), targets y (m, B)."""
    loss = LOSSES[loss_code]
    if loss == "mse":
        e = z[..., 0] - y
        return e * e, ((2 * e) / count)[..., None]
    if loss == "sigmoid_bce":
        v = z[..., 0]
        with np.errstate(invalid="ignore"):
            a = exp_nonpositive(-np.abs(v))
        terms = (np.where(v > 0, v, v.dtype.type(0)) - v * y) + log_at_least_one(1 + a)
        sigma = np.where(v >= 0, 1 / (1 + a), a / (1 + a))
        return terms, ((sigma - y) / count)[..., None]
    return softmax_cross_entropy(z, y.astype(np.int64), count)
