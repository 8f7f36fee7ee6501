"""The network of "The boundary of neural network trainability is fractal" (Sohl-Dickstein, 2024)."""

from __future__ import annotations

import math

import numpy as np

from ..knobs import MAX_SEED, Knob, learning_rate_knob
from ..numerics import tanh
from .base import KnobValues, Model, Problem, per_point

NONLINEARITIES = {"tanh": 0, "relu": 1, "identity": 2}  # the kernel's codes (DS_TANH, DS_RELU, DS_IDENTITY)
#: How w1_offset enters: once at initialisation, or before every step as the notebook's paraminit_vs_lr.
OFFSET_MODES = ("init", "every_step")
SQRT2 = math.sqrt(2.0)
#: The columns of an mlp problem's consts: 1/√d, √width, φ's code, width, depth, the offset added to W1
#: after every update, 1/√width, and 1 where w1_offset_mode is every_step (a shape knob: alike in every row).
CONSTS = ("inv_sqrt_d", "sqrt_width", "phi", "width", "depth", "drift", "inv_sqrt_width", "every_step")


def mlp_shape(values: KnobValues) -> tuple[int, int, int]:
    """(width, d, n_data) with the defaults resolved: d = width; n_data = the number of parameters for
    tanh and relu, width for identity."""
    width, depth = int(values["width"]), int(values["depth"])
    d = int(values["d"]) or width
    parameters = layer_sizes(d, width, depth)[-1]
    n_data = int(values["n_data"]) or (width if values["nonlinearity"] == "identity" else parameters)
    return width, d, n_data


def layer_sizes(d: int, width: int, depth: int) -> list[int]:
    """Where each layer's weights start in θ, and (last) the number of parameters: W1 (d × width), depth − 2
    middle layers (width × width), then the output layer (width)."""
    starts = [0, d * width]
    for _ in range(depth - 2):
        starts.append(starts[-1] + width * width)
    return [*starts, starts[-1] + width]


def mlp_problem_arrays(values: KnobValues) -> dict[str, np.ndarray]:
    """The data and initial weights of an mlp map (without offset and scale), as drawn from its seed.

    ``rng = numpy.random.default_rng(seed)``; then, in this order, X = rng.standard_normal((n_data, d)),
    y = rng.standard_normal(n_data), W1 = rng.standard_normal((d, width)), the middle layers'
    rng.standard_normal((width, width)) one after another ("hidden", (depth − 2, width, width)), and
    W2 = rng.standard_normal(width), the output layer.
    """
    width, d, n_data = mlp_shape(values)
    rng = np.random.default_rng(int(values["seed"]))
    x = rng.standard_normal((n_data, d))
    y = rng.standard_normal(n_data)
    w1 = rng.standard_normal((d, width))
    hidden = np.stack([rng.standard_normal((width, width)) for _ in range(int(values["depth"]) - 2)]) \
        if int(values["depth"]) > 2 else np.zeros((0, width, width))
    w2 = rng.standard_normal(width)
    return {"X": x, "y": y, "W1": w1, "hidden": hidden, "W2": w2}


def _phi(z, phi: int, sqrt2):
    if phi == 0:
        return tanh(sqrt2 * z)
    if phi == 1:
        return sqrt2 * np.where(z > 0, z, z.dtype.type(0))
    return z


def _phi_backward(dh, z, h, phi: int, sqrt2):
    """∂L/∂z from ∂L/∂h at pre-activation z with h = φ(z), as the kernel."""
    if phi == 0:
        return dh * (sqrt2 * (1 - h * h))
    if phi == 1:
        return np.where(z > 0, dh * sqrt2, z.dtype.type(0))
    return dh


class MLP(Model):
    """A deep network without biases in the mean-field parameterisation (Sohl-Dickstein 2024):

    h_1 = φ(X·W1·(1/√d)),  h_i = φ(h_{i−1}·W_i·(1/√width)) for i = 2 … depth − 1,
    out = (h_{depth−1}·W_out)/√width/√width,  L = mean over data of (out − y)²  (no ½),

    as the notebook's ``net`` stacks ``depth`` layers (the last to one output); depth 2 (the default) is
    one hidden layer. φ(z) = tanh(√2·z), √2·relu(z) (relu'(0) = 0) or z (``nonlinearity``); tanh is
    ``descentsim.numerics.tanh`` (within 4 ulp of libm's, the same in every engine).
    θ = (W1 row-major (d × width), the middle layers row-major, W_out (width)). Initial weights:
    W1 = init_scale·W1₀ + w1_offset, the others init_scale·W₀, with the draws of ``mlp_problem_arrays``.
    Layer i (from 1) learns at lr·lr1 when i is odd, lr·lr2 when even — the notebook's hparams[i mod 2] —
    so W1 at lr·lr1 and, at depth 2, W_out at lr·lr2 (sweep lr1 × lr2 with lr = 1 for the paper's
    picture).

    ``w1_offset_mode = "every_step"`` is the notebook's ``paraminit_vs_lr``: the offset c = w1_offset is
    added to every entry of W1 before every step, loss and gradient taken at the shifted weights, so W1
    drifts by +c a step: u_0 = W1₀ + c, u_{t+1} = (u_t − lr·lr1·∂L/∂W1) + c. ``"init"`` (the default) adds
    it once, to the initial weights.

    Gradient (sums in index order, as the kernel): with e_n = out_n − y_n and g_n = 2·e_n/n_data/√width/√width,
    ∂L/∂W_out_j = Σ_n g_n·h_nj; back-propagated δ = g_n·W_out ⊙ φ'(z), layer by layer; ∂L/∂W_i,jk =
    Σ_n h_{i−1},nj·(δ_i,nk·(1/√width)) and ∂L/∂W1_ij = Σ_n X_ni·(δ_1,nj·(1/√d)). (1/√d and 1/√width are
    rounded once, so that the kernel multiplies instead of dividing in its inner loops.)

    Knobs: width (16), d (0: = width), n_data (0: the default above), depth (2), nonlinearity (tanh),
    seed (0), init_scale (1), w1_offset (0), w1_offset_mode (init), lr1 (1), lr2 (1).
    """

    name = "mlp"
    kernel = "mlp"
    knobs = (
        Knob("width", 16, "hidden units", kind=int, minimum=1, maximum=4096),
        Knob("d", 0, "input dimension (0: the width)", kind=int, minimum=0, maximum=4096),
        Knob("n_data", 0, "training points (0: parameters for tanh/relu, width for identity)", kind=int,
             minimum=0, maximum=2**20),
        Knob("depth", 2, "layers of weights (2: one hidden layer)", kind=int, minimum=2, maximum=64),
        Knob("nonlinearity", "tanh", "φ: tanh (tanh(√2·z)), relu (√2·relu(z)) or identity", kind=str,
             choices=tuple(NONLINEARITIES)),
        Knob("seed", 0, "seed of the data and the initial weights", kind=int, minimum=0, maximum=MAX_SEED),
        Knob("init_scale", 1.0, "multiplies the N(0,1) initial weights"),
        Knob("w1_offset", 0.0, "added to every input-layer weight: once (w1_offset_mode init) or every step"),
        Knob("w1_offset_mode", "init", "init: the offset is added to the initial W1 once; every_step: before "
             "every step, as the fractal notebook's paraminit_vs_lr (W1 drifts by w1_offset a step)", kind=str,
             choices=OFFSET_MODES),
        learning_rate_knob("lr1", 1.0, "multiplies lr for the odd layers: the input layer W1 (> 0)"),
        learning_rate_knob("lr2", 1.0, "multiplies lr for the even layers: the output layer at depth 2 (> 0)"),
    )
    shape_knobs = frozenset({"width", "d", "n_data", "depth", "nonlinearity", "seed", "w1_offset_mode"})
    minibatches = True

    def parameter_count(self, values: KnobValues) -> int:
        width = int(np.max(values["width"]))
        d = int(np.max(values["d"])) or width  # as mlp_shape; n_data may be swept, so not through it
        return layer_sizes(d, width, int(np.max(values["depth"])))[-1]

    def data_size(self, values: KnobValues) -> int:
        """X and y (and X again as the data's rows), and the initial weights."""
        width = int(np.max(values["width"]))
        d = int(np.max(values["d"])) or width
        p = self.parameter_count(values)
        return 2 * (d + 1) * max(int(np.max(values["n_data"])), p) + p

    def problem(self, values: KnobValues, n: int) -> Problem:
        width, d, n_data = mlp_shape(values)
        depth = int(values["depth"])
        arrays = mlp_problem_arrays(values)
        scale, offset = per_point(values["init_scale"], n)[:, None], per_point(values["w1_offset"], n)[:, None]
        theta0 = np.concatenate([scale * arrays["W1"].ravel() + offset, scale * arrays["hidden"].reshape(1, -1),
                                 scale * arrays["W2"]], axis=1)
        columns = {
            "inv_sqrt_d": 1 / math.sqrt(d), "sqrt_width": math.sqrt(width), "phi": NONLINEARITIES[values["nonlinearity"]],
            "width": width, "depth": depth, "drift": offset[:, 0], "inv_sqrt_width": 1 / math.sqrt(width),
            "every_step": float(values["w1_offset_mode"] == "every_step"),
        }
        consts = np.stack([np.broadcast_to(np.asarray(columns[name], dtype=np.float64), (n,)) for name in CONSTS],
                          axis=1)
        starts = layer_sizes(d, width, depth)
        lr_scale = np.empty((n, starts[-1]))
        for layer in range(depth):  # layer i (from 0) takes the notebook's hparams[i mod 2]
            lr_scale[:, starts[layer] : starts[layer + 1]] = per_point(values["lr1" if layer % 2 == 0 else "lr2"], n)[:, None]
        return Problem(
            theta0=theta0,
            consts=consts,
            data=np.concatenate([arrays["X"].T, arrays["y"][None, :]]),  # rows: X's columns, then y
            trainable=np.ones(starts[-1], dtype=bool),
            lr_scale=lr_scale,
        )

    def after_update(self, theta: np.ndarray, consts: np.ndarray, data: np.ndarray) -> np.ndarray:
        """w1_offset_mode every_step: W1 (its first d·width entries) moves by the offset after every update."""
        if len(theta) == 0 or not consts[0, 7]:
            return theta
        d, width = data.shape[0] - 1, int(consts[0, 3])
        theta = theta.copy()
        theta[:, : d * width] = theta[:, : d * width] + consts[:, 5:6]
        return theta

    def loss_grad(self, theta, consts, data, batch=None):
        dtype = theta.dtype
        m = len(theta)
        d = data.shape[0] - 1
        n_data = data.shape[1] if batch is None else batch.shape[1]  # terms of the mean
        width, depth = int(consts[0, 3]), int(consts[0, 4])
        starts = layer_sizes(d, width, depth)
        x, y = data[:d], data[d]
        w1 = theta[:, : starts[1]].reshape(m, d, width)
        hidden = [theta[:, starts[i] : starts[i + 1]].reshape(m, width, width) for i in range(1, depth - 1)]
        w2 = theta[:, starts[-2] : starts[-1]]
        inv_sqrt_d, sqrt_width, inv_sqrt_width = consts[:, 0:1], consts[:, 1:2], consts[:, 6:7]
        phi = int(consts[0, 2])
        sqrt2 = dtype.type(SQRT2)
        zero = np.zeros((m, 1), dtype=dtype)
        loss = zero[:, 0]
        g1 = np.zeros_like(w1)
        g_hidden = [np.zeros_like(w) for w in hidden]
        g2 = np.zeros_like(w2)
        for n in range(n_data):
            column = n if batch is None else batch[:, n]  # the sample of each row
            xn = x[:, column] if batch is None else x[:, column][:, :, None]  # (d,) or (d, m, 1)
            acc = np.zeros((m, width), dtype=dtype)
            for i in range(d):
                acc = acc + xn[i] * w1[:, i, :]
            zs = [acc * inv_sqrt_d]
            hs = [_phi(zs[0], phi, sqrt2)]
            for w in hidden:
                acc = np.zeros((m, width), dtype=dtype)
                for i in range(width):
                    acc = acc + hs[-1][:, i : i + 1] * w[:, i, :]
                zs.append(acc * inv_sqrt_width)
                hs.append(_phi(zs[-1], phi, sqrt2))
            h = hs[-1]
            s = zero[:, 0]
            for j in range(width):
                s = s + h[:, j] * w2[:, j]
            e = s / sqrt_width[:, 0] / sqrt_width[:, 0] - y[column]
            loss = loss + e * e
            gs = ((2 * e) / dtype.type(n_data) / sqrt_width[:, 0] / sqrt_width[:, 0])[:, None]
            g2 = g2 + gs * h
            dpre = _phi_backward(gs * w2, zs[-1], h, phi, sqrt2)
            for layer in range(len(hidden) - 1, -1, -1):  # middle layers, from the top
                dz = dpre * inv_sqrt_width
                below = hs[layer]
                g_hidden[layer] = g_hidden[layer] + below[:, :, None] * dz[:, None, :]
                dh = np.zeros((m, width), dtype=dtype)
                for k in range(width):
                    dh = dh + hidden[layer][:, :, k] * dz[:, k : k + 1]
                dpre = _phi_backward(dh, zs[layer], below, phi, sqrt2)
            dz = dpre * inv_sqrt_d
            for i in range(d):
                g1[:, i, :] = g1[:, i, :] + xn[i] * dz
        grads = [g1.reshape(m, d * width), *(g.reshape(m, width * width) for g in g_hidden), g2]
        return loss / dtype.type(n_data), np.concatenate(grads, axis=1)
