"""The network of "The boundary of neural network trainability is fractal" (Sohl-Dickstein, 2024)."""

from __future__ import annotations

import math

import numpy as np

from ..knobs import MAX_SEED, Knob, learning_rate_knob
from ..numerics import tanh
from .base import KnobValues, Model, Problem, per_point

NONLINEARITIES = {"tanh": 0, "relu": 1, "identity": 2}  # the kernel's codes (DS_TANH, DS_RELU, DS_IDENTITY)
SQRT2 = math.sqrt(2.0)


def mlp_shape(values: KnobValues) -> tuple[int, int, int]:
    """(width, d, n_data) with the defaults resolved: d = width; n_data = the number of parameters
    (d·width + width) for tanh and relu, width for identity."""
    width = int(values["width"])
    d = int(values["d"]) or width
    n_data = int(values["n_data"]) or (width if values["nonlinearity"] == "identity" else d * width + width)
    return width, d, n_data


def mlp_problem_arrays(values: KnobValues) -> dict[str, np.ndarray]:
    """The data and initial weights of an mlp map (without offset and scale), as drawn from its seed.

    ``rng = numpy.random.default_rng(seed)``; then, in this order, X = rng.standard_normal((n_data, d)),
    y = rng.standard_normal(n_data), W1 = rng.standard_normal((d, width)), W2 = rng.standard_normal(width).
    """
    width, d, n_data = mlp_shape(values)
    rng = np.random.default_rng(int(values["seed"]))
    x = rng.standard_normal((n_data, d))
    y = rng.standard_normal(n_data)
    w1 = rng.standard_normal((d, width))
    w2 = rng.standard_normal(width)
    return {"X": x, "y": y, "W1": w1, "W2": w2}


class MLP(Model):
    """One hidden layer, no biases, mean-field parameterisation (Sohl-Dickstein 2024):

    h = φ(X·W1·(1/√d)),  out = (h·W2)/√width/√width,  L = mean over data of (out − y)²  (no ½),

    with φ(z) = tanh(√2·z), √2·relu(z) (relu'(0) = 0) or z (``nonlinearity``); tanh is
    ``descentsim.numerics.tanh`` (within 4 ulp of libm's, the same in every engine).
    θ = (W1 row-major, W2): d·width + width parameters. Initial weights: W1 = init_scale·W1₀ + w1_offset,
    W2 = init_scale·W2₀, with the draws of ``mlp_problem_arrays``. W1 learns at lr·lr1, W2 at lr·lr2
    (sweep lr1 × lr2 with lr = 1 for the paper's picture); like lr, both multipliers must be > 0.

    Gradient (sums in index order, as the kernel): with e_n = out_n − y_n and g_n = 2·e_n/n_data/√width/√width,
    ∂L/∂W2_j = Σ_n g_n·h_nj, ∂L/∂W1_ij = Σ_n X_ni·(g_n·W2_j·φ'(z_nj))·(1/√d). (1/√d is rounded once, so
    that the kernel multiplies instead of dividing in its inner loops.)

    Knobs: width (16), d (0: = width), n_data (0: the default above), nonlinearity (tanh), seed (0),
    init_scale (1), w1_offset (0), lr1 (1), lr2 (1).
    """

    name = "mlp"
    kernel = "mlp"
    knobs = (
        Knob("width", 16, "hidden units", kind=int, minimum=1, maximum=4096),
        Knob("d", 0, "input dimension (0: the width)", kind=int, minimum=0, maximum=4096),
        Knob("n_data", 0, "training points (0: parameters for tanh/relu, width for identity)", kind=int,
             minimum=0, maximum=2**20),
        Knob("nonlinearity", "tanh", "φ: tanh (tanh(√2·z)), relu (√2·relu(z)) or identity", kind=str,
             choices=tuple(NONLINEARITIES)),
        Knob("seed", 0, "seed of the data and the initial weights", kind=int, minimum=0, maximum=MAX_SEED),
        Knob("init_scale", 1.0, "multiplies the N(0,1) initial weights"),
        Knob("w1_offset", 0.0, "added to every initial input-layer weight"),
        learning_rate_knob("lr1", 1.0, "multiplies lr for the input layer W1 (> 0)"),
        learning_rate_knob("lr2", 1.0, "multiplies lr for the output layer W2 (> 0)"),
    )
    shape_knobs = frozenset({"width", "d", "n_data", "nonlinearity", "seed"})
    minibatches = True

    def parameter_count(self, values: KnobValues) -> int:
        width = int(np.max(values["width"]))
        d = int(np.max(values["d"])) or width  # as mlp_shape; n_data may be swept, so not through it
        return d * width + width

    def problem(self, values: KnobValues, n: int) -> Problem:
        width, d, n_data = mlp_shape(values)
        arrays = mlp_problem_arrays(values)
        scale, offset = per_point(values["init_scale"], n)[:, None], per_point(values["w1_offset"], n)[:, None]
        theta0 = np.concatenate([scale * arrays["W1"].ravel() + offset, scale * arrays["W2"]], axis=1)
        consts = np.empty((n, 3))
        consts[:, 0] = 1 / math.sqrt(d)
        consts[:, 1] = math.sqrt(width)
        consts[:, 2] = NONLINEARITIES[values["nonlinearity"]]
        lr_scale = np.empty((n, d * width + width))
        lr_scale[:, : d * width] = per_point(values["lr1"], n)[:, None]
        lr_scale[:, d * width :] = per_point(values["lr2"], n)[:, None]
        return Problem(
            theta0=theta0,
            consts=consts,
            data=np.concatenate([arrays["X"].T, arrays["y"][None, :]]),  # rows: X's columns, then y
            trainable=np.ones(d * width + width, dtype=bool),
            lr_scale=lr_scale,
        )

    def loss_grad(self, theta, consts, data, batch=None):
        dtype = theta.dtype
        m = len(theta)
        d = data.shape[0] - 1
        n_data = data.shape[1] if batch is None else batch.shape[1]  # terms of the mean
        width = theta.shape[1] // (d + 1)
        x, y = data[:d], data[d]
        w1 = theta[:, : d * width].reshape(m, d, width)
        w2 = theta[:, d * width :]
        inv_sqrt_d, sqrt_width = consts[:, 0:1], consts[:, 1:2]
        phi = int(consts[0, 2])
        sqrt2 = dtype.type(SQRT2)
        zero = np.zeros((m, 1), dtype=dtype)
        loss = zero[:, 0]
        g1 = np.zeros_like(w1)
        g2 = np.zeros_like(w2)
        for n in range(n_data):
            column = n if batch is None else batch[:, n]  # the sample of each row
            xn = x[:, column] if batch is None else x[:, column][:, :, None]  # (d,) or (d, m, 1)
            acc = np.zeros((m, width), dtype=dtype)
            for i in range(d):
                acc = acc + xn[i] * w1[:, i, :]
            z = acc * inv_sqrt_d
            if phi == 0:
                h = tanh(sqrt2 * z)
            elif phi == 1:
                h = sqrt2 * np.where(z > 0, z, dtype.type(0))
            else:
                h = z
            s = zero[:, 0]
            for j in range(width):
                s = s + h[:, j] * w2[:, j]
            e = s / sqrt_width[:, 0] / sqrt_width[:, 0] - y[column]
            loss = loss + e * e
            gs = ((2 * e) / dtype.type(n_data) / sqrt_width[:, 0] / sqrt_width[:, 0])[:, None]
            g2 = g2 + gs * h
            dh = gs * w2
            if phi == 0:
                dpre = dh * (sqrt2 * (1 - h * h))
            elif phi == 1:
                dpre = np.where(z > 0, dh * sqrt2, dtype.type(0))
            else:
                dpre = dh
            dz = dpre * inv_sqrt_d
            for i in range(d):
                g1[:, i, :] = g1[:, i, :] + xn[i] * dz
        return loss / dtype.type(n_data), np.concatenate([g1.reshape(m, d * width), g2], axis=1)
