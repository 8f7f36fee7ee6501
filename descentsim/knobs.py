"""Named knobs: anything a map can fix or sweep along an axis."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from .errors import SpecError

KnobValue = float | int | str

#: Largest seed a knob takes: seeds swept on an axis pass through float64, exact below 2^53.
MAX_SEED = 2**53


@dataclass(frozen=True)
class Knob:
    """One named setting of a model or optimiser.

    ``kind`` is ``float``, ``int`` or ``str``. Integer knobs on an axis take the axis values rounded to
    the nearest whole number (halves to even, as ``numpy.rint``); string knobs (``choices``) cannot be
    swept. ``minimum`` and ``maximum`` are inclusive bounds, ``above`` and ``below`` exclusive ones;
    ``why`` says what a value out of range would mean, after the error that refuses it.
    """

    name: str
    default: KnobValue
    doc: str
    kind: type = float
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    above: float | None = None
    below: float | None = None
    why: str = ""

    @property
    def sweepable(self) -> bool:
        return self.kind is not str

    @property
    def values_text(self) -> str:
        """The values the knob takes, in words: "number > 0", "whole number, 1 to 4096", "tanh, relu or identity".

        Examples
        --------
        >>> Knob("beta1", 0.9, "decay", minimum=0.0, below=1.0).values_text
        'number >= 0, < 1'
        """
        if self.kind is str:
            *rest, last = self.choices or ("a name",)
            return f"{', '.join(rest)} or {last}" if rest else last
        kind, show = ("whole number", lambda v: str(int(v))) if self.kind is int else ("number", lambda v: f"{v:g}")
        if self.minimum is not None and self.maximum is not None:
            return f"{kind}, {show(self.minimum)} to {show(self.maximum)}"
        bounds = [f"{relation} {show(bound)}" for relation, bound in
                  ((">=", self.minimum), (">", self.above), ("<=", self.maximum), ("<", self.below)) if bound is not None]
        return f"{kind} {', '.join(bounds)}" if bounds else f"any {kind}"

    @property
    def switch(self) -> bool:
        """Whether the knob is an on/off switch (a whole number 0 or 1): then true and false are accepted."""
        return self.kind is int and self.minimum == 0 and self.maximum == 1

    def coerce(self, value: object) -> KnobValue:
        """A fixed value from a spec, checked (a switch also takes true/false); raises SpecError naming the knob."""
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise SpecError(f"knob {self.name!r} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        if isinstance(value, bool) and self.switch:
            return int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"knob {self.name!r} must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"knob {self.name!r} must be finite, got {value!r}")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise SpecError(f"knob {self.name!r} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        self.check_range(np.asarray([value], dtype=np.float64))
        return value

    def sweep_values(self, values: np.ndarray) -> np.ndarray:
        """The values an axis gives this knob: rounded for integer knobs, checked against the range."""
        if self.kind is int:
            values = np.rint(values)
        self.check_range(values)
        return values

    def check_range(self, values: np.ndarray) -> None:
        if not np.all(np.isfinite(values)):
            raise SpecError(f"knob {self.name!r} must be finite; check the axis bounds")
        low, high = float(np.min(values)), float(np.max(values))
        for bound, relation, holds, got in (
            (self.minimum, ">=", operator.ge, low),
            (self.above, ">", operator.gt, low),
            (self.maximum, "<=", operator.le, high),
            (self.below, "<", operator.lt, high),
        ):
            if bound is not None and not holds(got, bound):
                reason = f" ({self.why})" if self.why else ""
                raise SpecError(f"knob {self.name!r} must be {relation} {bound:g}, got {got:g}{reason}")


def learning_rate_knob(name: str, default: float, doc: str) -> Knob:
    """A knob that is, or multiplies, a learning rate: refused at zero or below, where nothing would descend."""
    return Knob(name, default, doc, above=0.0,
                why="a learning rate of 0 never moves and a negative one climbs the loss")
