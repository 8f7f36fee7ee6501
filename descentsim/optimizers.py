"""Optimisers, separate from models: how θ moves given ∇L(θ), and how the learning rate changes.

Every optimiser takes ``lr`` and the schedule knobs; at update t (t = 0, 1, ...) it uses the learning
rate ``lr_t = lr · f(t)`` with the schedule factor

    f(t) = w(t) · d(t),   w(t) = min(1, (t + 1)/warmup_steps)  (1 without warm-up),
    d(t) = 1                                           constant
           decay_rate^floor(t / decay_steps)           step
           decay_rate^(t / decay_steps)                exponential
           r + (1 − r)·½·(1 + cos(π·min(t, decay_steps)/decay_steps)), r = lr_min_ratio   cosine

The factors are computed once per map in float64 (``schedule_factors``) and used by every engine, so
the engines agree bit for bit. Updates (g = ∇L(θ_t), on the trainable parameters only):

* ``gd``:        θ ← θ − lr_t·g
* ``momentum``:  v ← β·v + g;  θ ← θ − lr_t·v                      (heavy ball; v₀ = 0)
* ``nesterov``:  v ← β·v + g;  θ ← θ − lr_t·(g + β·v)              (as PyTorch's SGD)
* ``adam``:      m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  c₁ ← c₁·β₁;  c₂ ← c₂·β₂ (c = 1 at first);
                 θ ← θ − lr_t·(m/(1 − c₁)) / (√(v/(1 − c₂)) + ε)
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SpecError
from .knobs import Knob, learning_rate_knob
from .models.base import KnobValues, per_point

SCHEDULES = ("constant", "step", "exponential", "cosine")
SCHEDULE_KNOBS = (
    Knob("schedule", "constant", "learning-rate schedule: constant, step, exponential or cosine", kind=str,
         choices=SCHEDULES),
    Knob("decay_rate", 0.1, "step/exponential schedules: factor per decay_steps", above=0.0,
         why="a rate of 0 stops training once the decay starts"),
    Knob("decay_steps", 100, "step/exponential: steps per decay_rate; cosine: steps to the floor", kind=int,
         minimum=1, maximum=2**31 - 1),
    Knob("lr_min_ratio", 0.0, "cosine schedule: floor as a fraction of lr", minimum=0.0, maximum=1.0),
    Knob("warmup_steps", 0, "linear warm-up over this many steps (0: none)", kind=int, minimum=0,
         maximum=2**31 - 1),
)
BATCH_KNOBS = (
    Knob("batch_size", 0, "samples per minibatch (0: the full batch); random ones are drawn with replacement", kind=int,
         minimum=0, maximum=2**24),
    Knob("batch_seed", 0, "seed of the minibatch sequence", kind=int, minimum=0, maximum=2**53),
    Knob("batch_per_point", 0, "1: every grid point its own minibatch sequence; 0: all the same", kind=int,
         minimum=0, maximum=1),
    Knob("batch_order", "random", "random: drawn by a hash of (batch_seed, step, point); sequential: update t takes "
         "samples t·batch_size ... (t+1)·batch_size − 1 (mod samples), each once per pass", kind=str,
         choices=("random", "sequential")),
    Knob("eval_samples", 0, "minibatches: the outcome rules judge the loss on the first eval_samples samples "
         "(0: all of them, the full-data loss)", kind=int, minimum=0, maximum=2**31 - 1),
)
#: Most steps for which a schedule's factors are tabulated (8 bytes each).
MAX_SCHEDULED_STEPS = 2**26


def scheduled(values: KnobValues) -> bool:
    """Whether any point of ``values`` (scalars, or one value per point) has a learning-rate schedule or a
    warm-up, whose factors are tabulated per step."""
    return values["schedule"] != "constant" or bool(np.any(np.asarray(values["warmup_steps"]) > 0))


def check_schedule_steps(values: KnobValues, steps: int) -> None:
    """SpecError if a schedule of ``values`` would be tabulated over more than ``MAX_SCHEDULED_STEPS`` steps."""
    if scheduled(values) and steps > MAX_SCHEDULED_STEPS:
        raise SpecError(f"a learning-rate schedule is tabulated per step: at most {MAX_SCHEDULED_STEPS} steps, "
                        f"got steps = {steps}; use fewer steps, or the constant schedule without warm-up")


def schedule_factors(values: KnobValues, steps: int) -> np.ndarray | None:
    """f(t) for t = 0..steps−1 (float64), or None for the constant schedule without warm-up."""
    if not scheduled(values):
        return None
    check_schedule_steps(values, steps)
    kind, warmup = values["schedule"], int(values["warmup_steps"])
    t = np.arange(steps, dtype=np.float64)
    rate, period = float(values["decay_rate"]), int(values["decay_steps"])
    if kind == "step":
        decay = rate ** np.floor(t / period)
    elif kind == "exponential":
        decay = rate ** (t / period)
    elif kind == "cosine":
        floor = float(values["lr_min_ratio"])
        decay = floor + (1 - floor) * 0.5 * (1 + np.cos(math.pi * np.minimum(t, period) / period))
    else:
        decay = np.ones(steps)
    warm = np.minimum(1.0, (t + 1) / warmup) if warmup > 0 else 1.0
    return warm * decay


class Optimizer:
    """An update rule θ ← step(θ, ∇L(θ)) with per-point hyperparameters and per-trajectory state.

    ``hyper`` gives the (n, H) float64 array the engines take: ``lr`` first, then the optimiser's own
    knobs. ``state_names`` are the per-parameter state arrays (zero at the start); ``step`` is the
    NumPy reference update, given the learning rate of this step and the state, for the rows updated.
    """

    name: str
    kernel: str
    own_knobs: tuple[Knob, ...] = ()
    state_names: tuple[str, ...] = ()

    @property
    def knobs(self) -> tuple[Knob, ...]:
        return (learning_rate_knob("lr", 0.1, "learning rate"), *self.own_knobs, *SCHEDULE_KNOBS, *BATCH_KNOBS)

    #: Knobs that must be the same for every point of one engine call (schedule table, minibatches).
    shape_knobs = frozenset(k.name for k in (*SCHEDULE_KNOBS, *BATCH_KNOBS))

    def hyper(self, values: KnobValues, n: int) -> np.ndarray:
        names = ("lr", *(k.name for k in self.own_knobs))
        return np.stack([per_point(values[name], n) for name in names], axis=1)

    def initial_state(self, n: int, p: int, dtype) -> dict[str, np.ndarray]:
        return {name: np.zeros((n, p), dtype=dtype) for name in self.state_names}

    def step(self, theta, grad, lr, hyper, state):
        """(θ', state') for rows θ (m, p) with gradient g, learning rate lr (m, 1) and hyper (m, H)."""
        raise NotImplementedError


def _column(hyper: np.ndarray, k: int, dtype) -> np.ndarray:
    return hyper[:, k : k + 1].astype(dtype, copy=False)


class GradientDescent(Optimizer):
    """Gradient descent: θ ← θ − lr_t·∇L(θ) (stochastic with a ``batch_size``)."""

    name = "gd"
    kernel = "gd"

    def step(self, theta, grad, lr, hyper, state):
        return theta - lr * grad, state


class Momentum(Optimizer):
    """Heavy-ball momentum: v ← β·v + g; θ ← θ − lr_t·v. Knobs: lr, momentum β (0.9), schedule."""

    name = "momentum"
    kernel = "momentum"
    own_knobs = (Knob("momentum", 0.9, "momentum coefficient β"),)
    state_names = ("velocity",)

    def step(self, theta, grad, lr, hyper, state):
        velocity = _column(hyper, 1, theta.dtype) * state["velocity"] + grad
        return theta - lr * velocity, {"velocity": velocity}


class Nesterov(Momentum):
    """Nesterov momentum (as PyTorch): v ← β·v + g; θ ← θ − lr_t·(g + β·v)."""

    name = "nesterov"
    kernel = "nesterov"

    def step(self, theta, grad, lr, hyper, state):
        beta = _column(hyper, 1, theta.dtype)
        velocity = beta * state["velocity"] + grad
        return theta - lr * (grad + beta * velocity), {"velocity": velocity}


#: Why Adam's β₁ and β₂ stay below 1.
MOMENT_AT_ONE = "at 1 the moment never moves and its bias correction divides 0 by 0"


class Adam(Optimizer):
    """Adam (Kingma & Ba): bias-corrected moments, see the module docstring.

    Knobs: lr, beta1 (0.9), beta2 (0.999), eps (1e-8), schedule.
    """

    name = "adam"
    kernel = "adam"
    own_knobs = (
        Knob("beta1", 0.9, "decay of the first moment", minimum=0.0, below=1.0, why=MOMENT_AT_ONE),
        Knob("beta2", 0.999, "decay of the second moment", minimum=0.0, below=1.0, why=MOMENT_AT_ONE),
        Knob("eps", 1e-8, "added to √v̂", above=0.0, why="at 0 a vanishing gradient gives 0/0"),
    )
    state_names = ("m", "v", "c1", "c2")

    def initial_state(self, n, p, dtype):
        state = super().initial_state(n, p, dtype)
        state["c1"] = np.ones((n, 1), dtype=dtype)
        state["c2"] = np.ones((n, 1), dtype=dtype)
        return state

    def step(self, theta, grad, lr, hyper, state):
        dtype = theta.dtype
        beta1, beta2, eps = (_column(hyper, k, dtype) for k in (1, 2, 3))
        m = beta1 * state["m"] + (1 - beta1) * grad
        v = beta2 * state["v"] + (1 - beta2) * (grad * grad)
        c1 = state["c1"] * beta1
        c2 = state["c2"] * beta2
        update = (m / (1 - c1)) / (np.sqrt(v / (1 - c2)) + eps)
        return theta - lr * update, {"m": m, "v": v, "c1": c1, "c2": c2}


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (GradientDescent(), Momentum(), Nesterov(), Adam())}


def knob_owners(name: str) -> list[str]:
    """The optimisers with a knob called ``name`` of their own (``momentum``: momentum and nesterov)."""
    return [o.name for o in OPTIMIZERS.values() if any(k.name == name for k in o.own_knobs)]


def get_optimizer(name: str) -> Optimizer:
    """The optimiser called ``name``; a SpecError lists the valid names otherwise."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(OPTIMIZERS)}") from None
