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
* ``rmsprop``:   v ← α·v + (1 − α)·g²;  θ ← θ − lr_t·g/(√v + ε)           (as PyTorch's RMSprop)
* ``adamw``:     θ ← θ·(1 − lr_t·λ), then adam's update with g            (decoupled weight decay,
                 Loshchilov & Hutter 2019, in PyTorch's order)

Weight decay: every optimiser but adamw takes ``weight_decay`` λ (0 by default) as PyTorch does, as an
L2 penalty added to the gradient first, g ← g + λ·θ (where λ = 0, g itself: the same bits as without);
adamw's λ (0.01 by default) decays θ directly instead. The outcome rules judge the model's own loss L,
not L + λ/2·|θ|², as PyTorch reports it. With per-parameter learning rates (``lr_scale``) lr_t is each
parameter's own.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import SpecError, unknown_name
from .knobs import Knob, learning_rate_knob
from .models.base import KnobValues, per_point

SCHEDULES = ("constant", "step", "exponential", "cosine")
SCHEDULE_KNOBS = (
    Knob("schedule", "constant", "how the learning rate changes: lr_t = lr·f(t), f shaped by the knobs below",
         kind=str, choices=SCHEDULES),
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

    def column(self, knob: str) -> int:
        """The column of ``hyper`` that holds ``knob``."""
        return ("lr", *(k.name for k in self.own_knobs)).index(knob)

    def initial_state(self, n: int, p: int, dtype) -> dict[str, np.ndarray]:
        return {name: np.zeros((n, p), dtype=dtype) for name in self.state_names}

    def step(self, theta, grad, lr, hyper, state):
        """(θ', state') for rows θ (m, p) with gradient g, learning rate lr (m, 1) and hyper (m, H)."""
        raise NotImplementedError


def _column(hyper: np.ndarray, k: int, dtype) -> np.ndarray:
    return hyper[:, k : k + 1].astype(dtype, copy=False)


def weight_decay_knob(default: float = 0.0, meaning: str = "L2 weight decay λ: g ← g + λ·θ before the update "
                      "(PyTorch's weight_decay)") -> Knob:
    return Knob("weight_decay", default, meaning, minimum=0.0)


def l2_decayed(optimizer: "Optimizer", theta: np.ndarray, grad: np.ndarray, hyper: np.ndarray) -> np.ndarray:
    """g + λ·θ where the optimiser's ``weight_decay`` λ is not 0, and g itself where it is (so that a map
    without weight decay keeps its bits even where θ·0 would not be +0)."""
    wd = _column(hyper, optimizer.column("weight_decay"), theta.dtype)
    return np.where(wd != 0, grad + wd * theta, grad)


class GradientDescent(Optimizer):
    """Gradient descent: θ ← θ − lr_t·∇L(θ) (stochastic with a ``batch_size``)."""

    name = "gd"
    kernel = "gd"
    own_knobs = (weight_decay_knob(),)

    def step(self, theta, grad, lr, hyper, state):
        return theta - lr * l2_decayed(self, theta, grad, hyper), state


class Momentum(Optimizer):
    """Heavy-ball momentum: v ← β·v + g; θ ← θ − lr_t·v. Knobs: lr, momentum β (0.9), schedule."""

    name = "momentum"
    kernel = "momentum"
    own_knobs = (Knob("momentum", 0.9, "momentum coefficient β"), weight_decay_knob())
    state_names = ("velocity",)

    def step(self, theta, grad, lr, hyper, state):
        grad = l2_decayed(self, theta, grad, hyper)
        velocity = _column(hyper, 1, theta.dtype) * state["velocity"] + grad
        return theta - lr * velocity, {"velocity": velocity}


class Nesterov(Momentum):
    """Nesterov momentum (as PyTorch): v ← β·v + g; θ ← θ − lr_t·(g + β·v)."""

    name = "nesterov"
    kernel = "nesterov"

    def step(self, theta, grad, lr, hyper, state):
        grad = l2_decayed(self, theta, grad, hyper)
        beta = _column(hyper, 1, theta.dtype)
        velocity = beta * state["velocity"] + grad
        return theta - lr * (grad + beta * velocity), {"velocity": velocity}


#: Why Adam's β₁ and β₂ stay below 1.
MOMENT_AT_ONE = "at 1 the moment never moves and its bias correction divides 0 by 0"


class Adam(Optimizer):
    """Adam (Kingma & Ba): steps scaled by bias-corrected moving averages of g and g² (the module docstring).

    Knobs: lr, beta1 (0.9), beta2 (0.999), eps (1e-8), schedule.
    """

    name = "adam"
    kernel = "adam"
    own_knobs = (
        Knob("beta1", 0.9, "decay of the first moment", minimum=0.0, below=1.0, why=MOMENT_AT_ONE),
        Knob("beta2", 0.999, "decay of the second moment", minimum=0.0, below=1.0, why=MOMENT_AT_ONE),
        Knob("eps", 1e-8, "added to √v̂", above=0.0, why="at 0 a vanishing gradient gives 0/0"),
        weight_decay_knob(),
    )
    state_names = ("m", "v", "c1", "c2")

    def initial_state(self, n, p, dtype):
        state = super().initial_state(n, p, dtype)
        state["c1"] = np.ones((n, 1), dtype=dtype)
        state["c2"] = np.ones((n, 1), dtype=dtype)
        return state

    def step(self, theta, grad, lr, hyper, state):
        return self.moment_step(theta, l2_decayed(self, theta, grad, hyper), lr, hyper, state)

    def moment_step(self, theta, grad, lr, hyper, state):
        """Adam's update with the gradient ``grad`` (weight decay already applied, or none)."""
        dtype = theta.dtype
        beta1, beta2, eps = (_column(hyper, k, dtype) for k in (1, 2, 3))
        m = beta1 * state["m"] + (1 - beta1) * grad
        v = beta2 * state["v"] + (1 - beta2) * (grad * grad)
        c1 = state["c1"] * beta1
        c2 = state["c2"] * beta2
        update = (m / (1 - c1)) / (np.sqrt(v / (1 - c2)) + eps)
        return theta - lr * update, {"m": m, "v": v, "c1": c1, "c2": c2}


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, "Decoupled weight decay regularization", 2019), in PyTorch's order:
    θ ← θ·(1 − lr_t·λ), then Adam's update with the plain gradient. Knobs: lr, beta1, beta2, eps,
    weight_decay λ (0.01, PyTorch's default), schedule."""

    name = "adamw"
    kernel = "adamw"
    own_knobs = (*Adam.own_knobs[:3], weight_decay_knob(0.01, "decoupled weight decay λ: θ ← θ·(1 − lr_t·λ) "
                                                            "before each update (PyTorch's AdamW)"))

    def step(self, theta, grad, lr, hyper, state):
        wd = _column(hyper, self.column("weight_decay"), theta.dtype)
        return self.moment_step(theta * (1 - lr * wd), grad, lr, hyper, state)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), as PyTorch's without momentum or centring: v ← α·v + (1 − α)·g²;
    θ ← θ − lr_t·g/(√v + ε). Knobs: lr, alpha (0.99), eps (1e-8), weight_decay (0), schedule."""

    name = "rmsprop"
    kernel = "rmsprop"
    own_knobs = (
        Knob("alpha", 0.99, "decay of the mean square of g", minimum=0.0, below=1.0,
             why="at 1 the mean square never moves from 0 and the first step divides by ε"),
        Knob("eps", 1e-8, "added to √v", above=0.0, why="at 0 a vanishing gradient gives 0/0"),
        weight_decay_knob(),
    )
    state_names = ("v",)

    def step(self, theta, grad, lr, hyper, state):
        grad = l2_decayed(self, theta, grad, hyper)
        alpha, eps = (_column(hyper, k, theta.dtype) for k in (1, 2))
        v = alpha * state["v"] + (1 - alpha) * (grad * grad)
        return theta - lr * (grad / (np.sqrt(v) + eps)), {"v": v}


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o for o in (GradientDescent(), Momentum(), Nesterov(), Adam(), AdamW(), RMSprop())
}


def knob_owners(name: str) -> list[str]:
    """The optimisers with a knob called ``name`` of their own (``momentum``: momentum and nesterov)."""
    return [o.name for o in OPTIMIZERS.values() if any(k.name == name for k in o.own_knobs)]


def get_optimizer(name: str) -> Optimizer:
    """The optimiser called ``name``; a SpecError lists the valid names otherwise."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise unknown_name(name, list(OPTIMIZERS), "optimizer") from None
