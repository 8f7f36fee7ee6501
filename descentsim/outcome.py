"""What happened to a trajectory: the outcome classes and the thresholds that decide them.

The rules are the same in every engine. Let ``L_t`` be the full-data loss before update ``t``
(``t = 0`` is the initial loss), evaluated for ``t = 0, 1, ..., steps``; ``bound = diverge_factor * L_0``.
With minibatches the gradient is the minibatch's but ``L_t`` is still the loss on the whole training
set (the first ``eval_samples`` samples where that knob is set), as in the fractal-trainability
notebook's minibatch experiment: a label is never decided on one minibatch's luck.
At each ``t``, in this order:

1. ``DIVERGED`` if ``L_t`` is not finite, or if ``L_t > bound`` and ``t >= diverge_from``; the
   trajectory stops.
2. ``CONVERGED`` if the loss has stayed at or below the level for the last ``converge_window`` steps:
   ``L_u <= converge_loss`` for every ``u = t − converge_window + 1, ..., t``, all of them
   ``u >= converge_from`` (so ``t >= converge_from + converge_window − 1``); the trajectory stops.
3. At ``t = steps`` (the budget is spent), with ``θ_t`` the parameters:

   * ``CYCLING`` with period ``p`` if the smallest ``p`` in ``1..min(max_period, steps)`` with
     ``max_i |θ_steps,i − θ_steps−p,i| <= cycle_tol * (1 + max_i |θ_steps,i|)`` is ``p >= 2``
     (``p = 1`` is a stationary point, not a cycle);
   * else ``STUCK`` if the loss has stopped moving over the final window
     ``t ∈ [steps − stuck_window, steps]``: ``max L − min L <= stuck_tol * max L``
     (a plateau or a spurious stationary point, as for a dead ReLU);
   * else ``UNRESOLVED`` (still moving, chaotic, or too slow for the budget).

After every update, trainable parameters smaller in magnitude than the precision's smallest normal number
are set to 0, so that gradual underflow cannot carry a parameter across zero (in exact arithmetic
a dead ReLU's weight decays towards 0 and never crosses it).

The step ``T`` at which the outcome was decided is the ``steps`` field; for ``CONVERGED`` it is the
confirming step, the last of the window.

A label must survive a longer run, so one step below the level is not proof of convergence: in a
chaotic band a trajectory can pass within reach of a minimum that repels at its learning rate
(``lr · curvature > 2``), and a heavy ball (momentum) passes through the minimum with a large velocity;
either dips below the level for a step or two and leaves again. ``converge_window`` steps in a row are
asked for instead. A window of 1 is the single-step rule. A trajectory still short of its window when the
budget is spent is judged by rule 3. What a window cannot catch is a minimum that repels only
marginally (``lr · curvature`` just above 2): a trajectory that lands close enough to it can stay below
the level for longer than any window before it grows away.

A label must survive a longer run, so a rule that stops a trajectory early only fires where no later
part of the learning-rate schedule f(t) (``optimizers.schedule_factors``) can undo it
(``decision_steps``): ``converge_from`` is the step after the last update at which f rises (a loss
below the level during a warm-up proves nothing about the full rate: the run goes on), and
``diverge_from`` the step after the last update at which f falls (a finite loss above the bound can
still come back once the rate has decayed). Both are 0 for a constant rate. A non-finite loss is
final at once.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import SpecError, check_known


class Outcome(enum.IntEnum):
    """Outcome of one trajectory, stored as ``uint8`` in the ``outcome`` field."""

    NOT_COMPUTED = 0
    CONVERGED = 1
    DIVERGED = 2
    STUCK = 3
    CYCLING = 4
    UNRESOLVED = 5

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


#: Normalised losses above this value (and non-finite ones) count as this value in the score.
SCORE_CLIP = 1e6
#: Longest cycle looked for (every lag up to it is compared at the end of each trajectory).
MAX_PERIOD = 4096
#: The score's trainability test looks at the mean normalised loss over this many final steps.
SCORE_WINDOW = 20


def decision_steps(factors: np.ndarray | None, steps: int) -> tuple[int, int]:
    """(converge_from, diverge_from): the first steps at which CONVERGED, and DIVERGED by the bound, may be
    decided under the learning-rate schedule ``factors`` (f(t) for t < steps; None for a constant rate).

    converge_from = 1 + the last update u with f(u) > f(u − 1), so that the loss judged has been reached
    with the largest rate still to come (0 if f never rises); diverge_from = 1 + the last u with
    f(u) < f(u − 1) (0 if f never falls).

    Examples
    --------
    >>> decision_steps(np.minimum(1.0, (np.arange(6) + 1) / 3), 6)  # warm-up over 3 steps: f = 1/3, 2/3, 1, 1, ...
    (3, 0)
    """
    if factors is None or steps < 2:
        return 0, 0
    f = np.asarray(factors[:steps], dtype=np.float64)
    rises, falls = np.flatnonzero(f[1:] > f[:-1]), np.flatnonzero(f[1:] < f[:-1])
    return (int(rises[-1]) + 2 if rises.size else 0), (int(falls[-1]) + 2 if falls.size else 0)


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the outcome rules (see the module docstring).

    ``converge_loss=None`` takes the model's own minimum-loss level. ``converge_window`` is the number of
    steps in a row at or below it that CONVERGED asks for; its default, 30, was measured on the chaotic
    bands of the relu-neuron and double-well maps (``bench/bench_converge_window.py``, README "What the
    outcomes mean").
    """

    converge_loss: float | None = None
    converge_window: int = 30
    diverge_factor: float = 1e6
    stuck_window: int = 100
    stuck_tol: float = 1e-6
    max_period: int = 16
    cycle_tol: float = 1e-5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in ("converge_window", "stuck_window", "max_period"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise SpecError(f"thresholds.{f.name} must be a whole number, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"thresholds.{f.name} must be a number, got {value!r}")
        if self.converge_loss is not None and not self.converge_loss >= 0:
            raise SpecError(f"thresholds.converge_loss must be >= 0, got {self.converge_loss}")
        for name in ("converge_window", "stuck_window"):
            if not 1 <= getattr(self, name) <= 2**31 - 1:
                raise SpecError(f"thresholds.{name} must be from 1 to {2**31 - 1}, got {getattr(self, name)}")
        if not self.diverge_factor > 1:
            raise SpecError(f"thresholds.diverge_factor must be > 1, got {self.diverge_factor}")
        if not self.stuck_tol >= 0:
            raise SpecError(f"thresholds.stuck_tol must be >= 0, got {self.stuck_tol}")
        if not 2 <= self.max_period <= MAX_PERIOD:
            raise SpecError(f"thresholds.max_period must be from 2 to {MAX_PERIOD}, got {self.max_period}")
        if not self.cycle_tol >= 0:
            raise SpecError(f"thresholds.cycle_tol must be >= 0, got {self.cycle_tol}")

    @classmethod
    def from_dict(cls, table: dict) -> "Thresholds":
        check_known(table, [f.name for f in fields(cls)], "threshold")
        return cls(**table)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def resolved(self, model_converge_loss: float) -> "Thresholds":
        """These thresholds with ``converge_loss`` filled in from the model when unset."""
        if self.converge_loss is not None:
            return self
        return Thresholds(**{**asdict(self), "converge_loss": model_converge_loss})
