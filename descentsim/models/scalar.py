"""One-parameter losses that show the mechanisms in their plainest form."""

from __future__ import annotations

import numpy as np

from ..knobs import Knob
from .base import KnobValues, Model, Problem, per_point


class Quadratic(Model):
    """L(w) = ½·a·w², ∇L = a·w.

    Gradient descent gives w ← (1 − lr·a)·w: it converges iff |1 − lr·a| < 1, so for a > 0 and
    w0 ≠ 0 it diverges iff lr > 2/a, and at lr = 2/a exactly it flips sign forever (a 2-cycle).

    Knobs: a (curvature, default 1), w0 (initial weight, default 1).
    """

    name = "quadratic"
    kernel = "quadratic"
    knobs = (
        Knob("a", 1.0, "curvature of L(w) = ½·a·w² (>= 0: the loss has a minimum)", minimum=0.0),
        Knob("w0", 1.0, "initial weight"),
    )

    def problem(self, values: KnobValues, n: int) -> Problem:
        return Problem(
            theta0=per_point(values["w0"], n)[:, None],
            consts=per_point(values["a"], n)[:, None],
            data=np.zeros((1, 1)),
            trainable=np.ones(1, dtype=bool),
        )

    def parameter_count(self, values: KnobValues) -> int:
        return 1

    def loss_grad(self, theta, consts, data, batch=None):
        w, a = theta[:, 0], consts[:, 0]
        return 0.5 * a * w * w, (a * w)[:, None]


class DoubleWell(Model):
    """L(w) = ¼·(w² − 1)², ∇L = w·(w² − 1); minima at w = ±1 (attractor 0 is −1, attractor 1 is +1).

    At a minimum L'' = 2, so the fixed points lose stability at lr = 1 (first period doubling),
    followed by a period-doubling cascade into chaos as lr grows. w0 = 0 is a maximum where the
    gradient vanishes: gradient descent stays there (STUCK).

    Knobs: w0 (initial weight, default 0.5).
    """

    name = "double-well"
    kernel = "double_well"
    knobs = (Knob("w0", 0.5, "initial weight"),)
    value_words = {"attractor": {0: "w = −1", 1: "w = +1"}}

    def problem(self, values: KnobValues, n: int) -> Problem:
        return Problem(
            theta0=per_point(values["w0"], n)[:, None],
            consts=np.zeros((n, 1)),
            data=np.zeros((1, 1)),
            trainable=np.ones(1, dtype=bool),
        )

    def parameter_count(self, values: KnobValues) -> int:
        return 1

    def loss_grad(self, theta, consts, data, batch=None):
        w = theta[:, 0]
        q = w * w - 1
        return 0.25 * q * q, (w * q)[:, None]

    def attractor(self, theta):
        return (theta[:, 0] > 0).astype(np.int32)
