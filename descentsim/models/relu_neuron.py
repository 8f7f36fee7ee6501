"""A single ReLU neuron learning relu(x): the dead-neuron failure."""

from __future__ import annotations

import numpy as np

from ..knobs import MAX_SEED, Knob
from ..outcome import Outcome
from .base import KnobValues, Model, Problem, per_point

TRAINABLE_SETS = {"w": (1, 0, 0, 0), "wb": (1, 1, 0, 0), "wbac": (1, 1, 1, 1)}


def relu_neuron_data(samples: int, data_seed: int) -> np.ndarray:
    """The map's shared data: rows x = default_rng(data_seed).standard_normal(samples), y = relu(x)."""
    x = np.random.default_rng(data_seed).standard_normal(samples)
    return np.stack([x, np.maximum(x, 0.0)])


class ReluNeuron(Model):
    """ŷ = a·relu(w·x + b) + c fitted to y = relu(x), L = ½·mean((ŷ − y)²), relu'(0) = 0.

    θ = (w, b, a, c); with z = w·x + b and e = ŷ − y, the gradient is
    ∂L/∂w = mean(e·a·[z>0]·x), ∂L/∂b = mean(e·a·[z>0]), ∂L/∂a = mean(e·relu(z)), ∂L/∂c = mean(e);
    only the ``trainable`` set (``w``, ``wb`` or ``wbac``) is updated, the rest stays at its start.

    With ``w`` alone (b = c = 0, a = 1), L(w) is piecewise quadratic: for w > 0 the gradient is
    (w − 1)·mean(x²·[x>0]), for w < 0 it is w·mean(x²·[x<0]). A negative start is a dead neuron: it
    decays towards w = 0 where the gradient vanishes, and never learns unless the learning rate is
    large enough to jump over to w > 0.

    Data: x = numpy.random.default_rng(data_seed).standard_normal(samples), shared by every
    trajectory of the map (the full batch, or the pool minibatches draw from).

    Knobs: w0 (default 0.5), b0 (0), a0 (1), c0 (0), trainable ("w"), samples (64), data_seed (0).
    """

    name = "relu-neuron"
    kernel = "relu_neuron"
    knobs = (
        Knob("w0", 0.5, "initial input weight w"),
        Knob("b0", 0.0, "initial bias b"),
        Knob("a0", 1.0, "initial output weight a"),
        Knob("c0", 0.0, "initial output bias c"),
        Knob("trainable", "w", "parameters that learn: w, wb or wbac", kind=str, choices=tuple(TRAINABLE_SETS)),
        Knob("samples", 64, "number of training inputs", kind=int, minimum=1, maximum=2**24),
        Knob("data_seed", 0, "seed of the training inputs", kind=int, minimum=0, maximum=MAX_SEED),
    )
    shape_knobs = frozenset({"trainable", "samples", "data_seed"})
    minibatches = True
    outcome_words = {Outcome.STUCK: "dead neuron"}

    def problem(self, values: KnobValues, n: int) -> Problem:
        theta0 = np.stack([per_point(values[k], n) for k in ("w0", "b0", "a0", "c0")], axis=1)
        return Problem(
            theta0=theta0,
            consts=np.zeros((n, 1)),
            data=relu_neuron_data(int(values["samples"]), int(values["data_seed"])),
            trainable=np.array(TRAINABLE_SETS[values["trainable"]], dtype=bool),
        )

    def parameter_count(self, values: KnobValues) -> int:
        return 4

    def data_size(self, values: KnobValues) -> int:
        """x and y."""
        return 2 * int(np.max(values["samples"]))

    def loss_grad(self, theta, consts, data, batch=None):
        # Sums run in sample order (or minibatch order), as in the compiled kernel: bit for bit alike.
        w, b, a, c = theta.T
        zero = np.zeros_like(w)
        loss, gw, gb, ga, gc = zero, zero, zero, zero, zero
        samples = data.shape[1] if batch is None else batch.shape[1]
        for i in range(samples):
            xi, yi = (data[0, i], data[1, i]) if batch is None else (data[0, batch[:, i]], data[1, batch[:, i]])
            z = w * xi + b
            active = z > 0
            h = np.where(active, z, zero)
            e = a * h + c - yi
            ea = np.where(active, e * a, zero)
            loss = loss + e * e
            gw = gw + ea * xi
            gb = gb + ea
            ga = ga + e * h
            gc = gc + e
        grad = np.stack([gw / samples, gb / samples, ga / samples, gc / samples], axis=1)
        return 0.5 * (loss / samples), grad
