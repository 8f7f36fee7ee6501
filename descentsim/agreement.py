"""How far two maps of one grid agree in outcome, overall and away from the boundaries between outcomes.

Made for comparing the arithmetics (``arithmetic = "exact"`` and ``"fast"``): fused multiply-adds round
differently, and where the dynamics are chaotic — along a fractal boundary, in a band where outcomes alternate
from point to point — a different last bit can end a trajectory in another class, as a longer or shorter run
could. Such points say nothing about whether fast arithmetic is right; the points inside a region of one
outcome do. A point is **settled** when its 8 nearest neighbours on the grid — the 8 around it on a 2-D map,
the 4 on either side on a one-row map — all have its outcome (points too near the grid's edge to have them all
are not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def settled_points(outcome: np.ndarray) -> np.ndarray:
    """The settled points of an outcome field: bool, shaped like ``outcome`` ((ny, nx); (nx,) or (1, nx) for a
    one-row map).

    Examples
    --------
    >>> settled_points(np.array([[1, 1, 1, 2], [1, 1, 1, 2], [1, 1, 1, 2]])).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 0, 0],
           [0, 0, 0, 0]])
    """
    outcome = np.asarray(outcome)
    field = outcome.reshape(1, -1) if outcome.ndim == 1 or outcome.shape[0] == 1 else outcome
    ny, nx = field.shape
    ry, rx = (0, 4) if ny == 1 else (1, 1)  # how far the 8 nearest neighbours reach along y and x
    settled = np.zeros(field.shape, dtype=bool)
    if ny <= 2 * ry or nx <= 2 * rx:  # no point has all its neighbours
        return settled.reshape(outcome.shape)
    centre = field[ry : ny - ry, rx : nx - rx]
    inner = np.ones(centre.shape, dtype=bool)
    for dy in range(-ry, ry + 1):
        for dx in range(-rx, rx + 1):
            inner &= field[ry + dy : ny - ry + dy, rx + dx : nx - rx + dx] == centre
    settled[ry : ny - ry, rx : nx - rx] = inner
    return settled.reshape(outcome.shape)


@dataclass(frozen=True)
class Agreement:
    """Outcome agreement of a map with a reference map of the same grid: ``points`` in all, ``same`` of them
    with the reference's outcome; ``settled`` points of the reference (``settled_points``), ``settled_same`` of
    them with its outcome."""

    points: int
    same: int
    settled: int
    settled_same: int

    @property
    def fraction(self) -> float:
        """The share of all points with the reference's outcome."""
        return self.same / self.points if self.points else 1.0

    @property
    def settled_fraction(self) -> float:
        """The share of the reference's settled points with its outcome (1 where none is settled)."""
        return self.settled_same / self.settled if self.settled else 1.0


def compare_outcomes(reference: np.ndarray, other: np.ndarray) -> Agreement:
    """How ``other`` agrees with ``reference`` (two outcome fields of one grid); ValueError if their shapes
    differ."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape:
        raise ValueError(f"outcome fields of shapes {reference.shape} and {other.shape} are not of one grid")
    same = reference == other
    settled = settled_points(reference)
    return Agreement(int(same.size), int(same.sum()), int(settled.sum()), int((same & settled).sum()))
