"""The two-layer linear "catapult" model of Lewkowycz et al. (2020)."""

from __future__ import annotations

import numpy as np

from ..knobs import MAX_SEED, Knob
from .base import KnobValues, Model, Problem, per_point


class UV(Model):
    """Width-m two-layer linear model on one example: f = vᵀu/√m, L = ½·(f − target)².

    θ = (u, v) ∈ R^(2m). ∇_u L = (f − target)·v/√m, ∇_v L = (f − target)·u/√m.
    Initialisation: ``rng = numpy.random.default_rng(seed)``; u = rng.standard_normal(m), then
    v = rng.standard_normal(m), both multiplied by init_scale.

    With the tangent kernel λ₀ = (|u|² + |v|²)/m at initialisation, for large m gradient descent
    converges monotonically for lr < 2/λ₀, rises then converges (the catapult) for
    2/λ₀ < lr < 4/λ₀, and diverges above 4/λ₀.

    Knobs: m (width, default 256), target (default 1), init_scale (default 1), seed (default 0).
    """

    name = "uv"
    kernel = "uv"
    knobs = (
        Knob("m", 256, "width: number of hidden units", kind=int, minimum=1, maximum=2**24),
        Knob("target", 1.0, "the single training target y"),
        Knob("init_scale", 1.0, "multiplies the N(0,1) initial u and v"),
        Knob("seed", 0, "seed of the initial u, v", kind=int, minimum=0, maximum=MAX_SEED),
    )
    shape_knobs = frozenset({"m"})

    def problem(self, values: KnobValues, n: int) -> Problem:
        m = int(values["m"])
        seeds = per_point(values["seed"], n).astype(np.int64)
        base = np.empty((n, 2 * m))
        for seed in np.unique(seeds):
            rng = np.random.default_rng(int(seed))
            u = rng.standard_normal(m)
            v = rng.standard_normal(m)
            base[seeds == seed] = np.concatenate([u, v])
        consts = np.empty((n, 2))
        consts[:, 0] = per_point(values["target"], n)
        consts[:, 1] = 1 / np.sqrt(m)
        return Problem(
            theta0=per_point(values["init_scale"], n)[:, None] * base,
            consts=consts,
            data=np.zeros((1, 1)),
            trainable=np.ones(2 * m, dtype=bool),
        )

    def parameter_count(self, values: KnobValues) -> int:
        return 2 * int(np.max(values["m"]))

    def loss_grad(self, theta, consts, data, batch=None):
        m = theta.shape[1] // 2
        u, v = theta[:, :m], theta[:, m:]
        target, inv_sqrt_m = consts[:, 0], consts[:, 1]
        dot = np.zeros(len(theta), dtype=theta.dtype)
        for i in range(m):  # in index order, as in the compiled kernel, so the engines agree bit for bit
            dot = dot + u[:, i] * v[:, i]
        r = dot * inv_sqrt_m - target
        s = (r * inv_sqrt_m)[:, None]
        return 0.5 * r * r, np.concatenate([s * v, s * u], axis=1)
