"""The network of "The boundary of neural network trainability is fractal" (Sohl-Dickstein, 2024)."""

from __future__ import annotations

import numpy as np

from ..knobs import MAX_SEED, Knob, learning_rate_knob
from .base import KnobValues, Problem, per_point
from .network import OFFSET_MODES, DenseNetwork, dense_consts

#: The mlp's nonlinearities as the network's activations: tanh(√2·z), √2·relu(z), z.
NONLINEARITIES = {"tanh": "tanh_sqrt2", "relu": "relu_sqrt2", "identity": "identity"}


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


class MLP(DenseNetwork):
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

    A preset of the ``network`` model (issue 12), the same maps bit for bit as before it: the network with
    widths width × (depth − 1), activation tanh_sqrt2, relu_sqrt2 or identity, no biases, the mse loss and the
    mean-field parameterisation (``DenseNetwork``: the same kernel and reference), on the mlp's own draws, with
    w1_offset as its init_offset (every_step: its offset_mode) and the rates tied layer by layer as above.

    Knobs: width (16), d (0: = width), n_data (0: the default above), depth (2), nonlinearity (tanh),
    seed (0), init_scale (1), w1_offset (0), w1_offset_mode (init), lr1 (1), lr2 (1).
    """

    name = "mlp"
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
        consts = dense_consts(n, [d, *[width] * (depth - 1), 1], NONLINEARITIES[values["nonlinearity"]], "mse", 0,
                              "mean_field", False, drift=offset[:, 0],
                              every_step=values["w1_offset_mode"] == "every_step")
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
