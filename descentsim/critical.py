"""Critical curves: for each row of a map, the largest x (such as the learning rate) below which training
still succeeds, read off the grid and then refined by bisection with extra trajectories.

On row r, with ``inside`` one side of the boundary (``descentsim.boundary.side``; by default the
trainable points), the grid brackets the critical value between ``below`` = the x of the last point of
the row's first run of inside points and ``above`` = the x of the next point. Bisection then trains one
trajectory per row at the midpoint (the geometric mean on a log axis), keeps the half whose ends differ,
and so halves the bracket per iteration: 30 iterations narrow it a billion times, for 30 trajectories
per row instead of a grid a billion times finer. Rows that start outside have NaN for both; rows that
never leave have ``above`` NaN. Where a row crosses the boundary several times, the first crossing is
the one followed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .boundary import side
from .convergence_map import ConvergenceMap
from .errors import SpecError
from .runner import run_points


@dataclass(frozen=True)
class CriticalCurve:
    """The bracket [below, above] of the critical x (knob ``knob``) on each row (y values ``rows``)."""

    knob: str
    rows: np.ndarray
    below: np.ndarray
    above: np.ndarray
    log: bool

    @property
    def value(self) -> np.ndarray:
        """The middle of each bracket (geometric on a log axis); ``below`` where the row never leaves."""
        middle = np.sqrt(self.below * self.above) if self.log else (self.below + self.above) / 2
        return np.where(np.isnan(self.above), self.below, middle)


def critical_curve(m: ConvergenceMap, inside=None) -> CriticalCurve:
    """The critical curve of ``m`` as its grid brackets it (module docstring)."""
    mask = m.side(inside)
    x = m.x.astype(float)
    below = np.full(m.shape[0], np.nan)
    above = np.full(m.shape[0], np.nan)
    for r, row in enumerate(mask):
        if not row[0]:
            continue
        out = np.flatnonzero(~row)
        last = out[0] - 1 if out.size else len(row) - 1
        below[r] = x[last]
        if out.size:
            above[r] = x[last + 1]
    rows = m.y if m.y is not None else np.array([np.nan])
    return CriticalCurve(m.spec.x.name, rows, below, above, m.spec.x.scale == "log")


def refine(m: ConvergenceMap, curve: CriticalCurve, iterations: int = 20, inside=None, backend: str = "auto",
           threads: int | None = None) -> CriticalCurve:
    """``curve`` with each bracket narrowed by ``iterations`` bisection steps (module docstring)."""
    if m.spec.knobs[curve.knob].kind is not float:
        raise SpecError(f"knob {curve.knob!r} takes whole numbers: its critical curve cannot be bisected")
    below, above = curve.below.copy(), curve.above.copy()
    rows = np.flatnonzero(~np.isnan(below) & ~np.isnan(above))
    for _ in range(iterations):
        if rows.size == 0:
            break
        lo, hi = below[rows], above[rows]
        mid = np.sqrt(lo * hi) if curve.log else (lo + hi) / 2
        fields = run_points(m.spec, rows, np.zeros_like(rows), {curve.knob: mid}, backend, threads)
        good = side(fields, inside)
        below[rows] = np.where(good, mid, lo)
        above[rows] = np.where(good, hi, mid)
    return replace(curve, below=below, above=above)
