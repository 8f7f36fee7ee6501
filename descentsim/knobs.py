"""Named knobs: anything a map can fix or sweep along an axis."""

from __future__ import annotations

import math
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
    swept. ``minimum`` and ``maximum`` are inclusive.
    """

    name: str
    default: KnobValue
    doc: str
    kind: type = float
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def sweepable(self) -> bool:
        return self.kind is not str

    def coerce(self, value: object) -> KnobValue:
        """A fixed value from a spec, checked; raises SpecError naming the knob."""
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise SpecError(f"knob {self.name!r} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
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
        if self.minimum is not None and np.min(values) < self.minimum:
            raise SpecError(f"knob {self.name!r} must be >= {self.minimum:g}, got {np.min(values):g}")
        if self.maximum is not None and np.max(values) > self.maximum:
            raise SpecError(f"knob {self.name!r} must be <= {self.maximum:g}, got {np.max(values):g}")
