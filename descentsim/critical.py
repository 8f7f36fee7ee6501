"""Critical curves: for each row of a map, the largest x (such as the learning rate) below which training
still succeeds, read off the grid and then refined by bisection with extra trajectories.

On row r, with ``inside`` one side of the boundary (``descentsim.boundary.side``; by default the
trainable points, or for classifiers the networks that learned), the row's run of inside points
followed is, with ``start="edge"`` (the default), the one that starts at the row's first point, and
with ``start="first"`` the row's first run wherever it starts. The grid brackets the critical value
between ``below`` = the x of the run's last point and ``above`` = the x of the next point. Bisection
then trains one trajectory per row at the midpoint (the geometric mean on a log axis), keeps the half
whose ends differ, and so halves the bracket per iteration: 30 iterations narrow it a billion times,
for 30 trajectories per row instead of a grid a billion times finer. Where a row crosses the boundary
several times, the first crossing after the run's start is the one followed.

Every row says why it has the bracket it has (``CriticalCurve.reason``):

* ``"ok"``: ``below`` and ``above`` bracket the critical x;
* ``"starts outside"`` (``start="edge"`` only): the row's first point is not inside, but later ones
  are: ``below`` and ``above`` are NaN; ``start="first"`` follows the run they form;
* ``"never inside"``: no point of the row is inside: both NaN;
* ``"never leaves"``: the run reaches the row's last point: the critical x lies beyond the grid,
  ``below`` (the last x) is a lower bound and ``above`` is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .boundary import Inside, side
from .map_data import MapData
from .errors import SpecError
from .runner import run_points

#: The reasons a row gives for its bracket (module docstring).
OK, STARTS_OUTSIDE, NEVER_INSIDE, NEVER_LEAVES = "ok", "starts outside", "never inside", "never leaves"
REASONS = (OK, STARTS_OUTSIDE, NEVER_INSIDE, NEVER_LEAVES)
#: Where the run of inside points followed on each row may start: at the row's first point, or anywhere.
STARTS = ("edge", "first")


def _middle(below: np.ndarray, above: np.ndarray, log: bool) -> np.ndarray:
    """The midpoint of each bracket: geometric on a log axis (with the sign of the axis's values)."""
    if log:
        return np.sign(below) * np.sqrt(below * above)
    return (below + above) / 2


@dataclass(frozen=True)
class CriticalCurve:
    """The bracket [below, above] of the critical x (knob ``knob``) on each row (y values ``rows``), all
    shaped (ny,), with ``reason[r]`` (one of ``REASONS``) saying why row r has it; ``start`` is where the
    runs followed could start ("edge" or "first")."""

    knob: str
    rows: np.ndarray
    below: np.ndarray
    above: np.ndarray
    log: bool
    reason: np.ndarray
    start: str = "edge"

    @property
    def value(self) -> np.ndarray:
        """The middle of each bracket (geometric on a log axis); ``below`` (a lower bound) where the row never
        leaves; NaN where the row has no run to follow (``reason``)."""
        return np.where(np.isnan(self.above), self.below, _middle(self.below, self.above, self.log))


def critical_curve(m: MapData, inside: Inside = None, start: str = "edge") -> CriticalCurve:
    """The critical curve of ``m`` as its grid brackets it (module docstring).

    Parameters
    ----------
    m : the map.
    inside : the side the runs followed are on (``descentsim.boundary.side``): None (the default side),
        outcomes, a boolean (ny, nx) mask or a callable map → mask.
    start : ``"edge"``: follow the run that starts at the row's first point (a row that starts outside has
        no bracket, reason "starts outside"); ``"first"``: follow the row's first run wherever it starts.

    Returns
    -------
    CriticalCurve
        ``below``, ``above``, ``reason`` shaped (ny,).

    Raises
    ------
    SpecError
        for an unknown ``start`` or an ``inside`` that ``side`` refuses.

    Examples
    --------
    >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), y=Axis("a", 1.0, 8.0, 2), steps=100))
    >>> curve = critical_curve(m)   # trains for lr < 2/a: a = 1 up to lr 2, a = 8 not even at lr 0.5
    >>> curve.below.tolist(), curve.reason.tolist()
    ([1.5, nan], ['ok', 'never inside'])
    """
    if start not in STARTS:
        raise SpecError(
            f"start must be 'edge' (runs that start at the row's first point) or 'first' (the row's first "
            f"run of inside points), got {start!r}"
        )
    mask = m.side(inside)
    x = m.x.astype(float)
    below = np.full(m.shape[0], np.nan)
    above = np.full(m.shape[0], np.nan)
    reason = np.full(m.shape[0], OK, dtype=f"<U{max(map(len, REASONS))}")
    for r, row in enumerate(mask):
        inside_columns = np.flatnonzero(row)
        if inside_columns.size == 0:
            reason[r] = NEVER_INSIDE
            continue
        first = inside_columns[0]
        if first > 0 and start == "edge":
            reason[r] = STARTS_OUTSIDE
            continue
        out = np.flatnonzero(~row[first:])
        last = first + out[0] - 1 if out.size else len(row) - 1
        below[r] = x[last]
        if out.size:
            above[r] = x[last + 1]
        else:
            reason[r] = NEVER_LEAVES
    rows = m.y if m.y is not None else np.array([np.nan])
    return CriticalCurve(m.spec.x.name, rows, below, above, m.spec.x.scale == "log", reason, start)


class BisectionPoints(MapData):
    """The trajectories of one bisection step as a map that a callable ``inside`` can be given: one point
    per bracketed row (grid rows ``rows``) at x = ``x_values``, every field shaped (len(rows),)."""

    def __init__(self, m: MapData, rows: np.ndarray, x_values: np.ndarray, fields: dict[str, np.ndarray]):
        super().__init__(m.spec, fields, m.provenance)
        self.rows = rows
        self.x_values = x_values

    @property
    def x(self) -> np.ndarray:
        return self.x_values

    @property
    def y(self) -> np.ndarray | None:
        return None if self.spec.y is None else self.spec.axis_coordinates(self.spec.y)[self.rows]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.rows.shape

    def knob(self, name: str) -> np.ndarray:
        """The value of knob ``name`` at each point, shaped (len(rows),)."""
        if name == self.spec.x.name:
            return self.x_values
        if self.spec.y is not None and name == self.spec.y.name:
            return self.y
        return super().knob(name)  # a fixed knob: the same everywhere

    def __repr__(self) -> str:
        return f"<BisectionPoints {self.spec.model}: {len(self.rows)} rows at new {self.spec.x.name}>"


def refine(m: MapData, curve: CriticalCurve, iterations: int = 20, inside: Inside = None,
           backend: str = "auto", threads: int | None = None) -> CriticalCurve:
    """``curve`` with each bracket narrowed by ``iterations`` bisection steps (module docstring).

    ``inside`` must be the side the curve was read with. The new trajectories are sorted by ``side``:
    outcomes and the default side apply to them directly; a callable is called with a ``BisectionPoints``
    map of them (fields shaped (rows,)), so it must work from ``m.fields`` and ``m.knob`` alone.

    Raises
    ------
    SpecError
        if the x knob takes whole numbers, or ``inside`` is a fixed mask (it says nothing about new points).
    """
    if m.spec.knobs[curve.knob].kind is not float:
        raise SpecError(f"knob {curve.knob!r} takes whole numbers: its critical curve cannot be bisected")
    if isinstance(inside, np.ndarray):
        raise SpecError(
            "a fixed inside mask cannot sort the new trajectories of bisection; give outcomes or a callable "
            "map → mask (e.g. lambda m: m.fields['accuracy'] >= 0.9), or refine=0"
        )
    below, above = curve.below.copy(), curve.above.copy()
    rows = np.flatnonzero(~np.isnan(below) & ~np.isnan(above))
    for _ in range(iterations):
        if rows.size == 0:
            break
        lo, hi = below[rows], above[rows]
        mid = _middle(lo, hi, curve.log)
        fields = run_points(m.spec, rows, np.zeros_like(rows), {curve.knob: mid}, backend, threads)
        good = side(BisectionPoints(m, rows, mid, fields), inside)
        below[rows] = np.where(good, mid, lo)
        above[rows] = np.where(good, hi, mid)
    return replace(curve, below=below, above=above)
