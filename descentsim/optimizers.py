"""Optimisers, separate from models: how θ moves given ∇L(θ)."""

from __future__ import annotations

import numpy as np

from .errors import SpecError
from .knobs import Knob
from .models.base import KnobValues, per_point


class Optimizer:
    """An update rule θ ← step(θ, ∇L(θ)) with per-point hyperparameters.

    ``hyper`` turns knob values into the (n, H) float64 array the engines take; ``step`` is the
    NumPy reference update. Parameters outside the trainable set never move.
    """

    name: str
    kernel: str
    knobs: tuple[Knob, ...]

    def hyper(self, values: KnobValues, n: int) -> np.ndarray:
        return np.stack([per_point(values[k.name], n) for k in self.knobs], axis=1)

    def step(self, theta: np.ndarray, grad: np.ndarray, hyper: np.ndarray, trainable: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class GradientDescent(Optimizer):
    """Full-batch gradient descent: θ ← θ − lr·∇L(θ).

    Knobs: lr (learning rate, default 0.1).
    """

    name = "gd"
    kernel = "gd"
    knobs = (Knob("lr", 0.1, "learning rate of θ ← θ − lr·∇L(θ)"),)

    def step(self, theta, grad, hyper, trainable):
        lr = hyper[:, 0:1].astype(theta.dtype)
        return np.where(trainable, theta - lr * grad, theta)


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (GradientDescent(),)}


def get_optimizer(name: str) -> Optimizer:
    """The optimiser called ``name``; a SpecError lists the valid names otherwise."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}") from None
