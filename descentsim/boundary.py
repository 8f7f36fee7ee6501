"""Boundaries between outcome sets on a map, and how intricate they are.

A map is a grid of labelled points. Two sets of outcomes (by default the paper's *trainable* points
against the rest) meet along a boundary; these functions measure it on the grid, in grid cells:

* ``boundary_mask``: the points with a neighbour (left, right, up, down) on the other side.
* ``box_counting``: N(s) = the number of boxes of side s cells (the (s+1)×(s+1) points [i·s, i·s + s] ×
  [j·s, j·s + s], tiling the grid from its first point, neighbours sharing their edge points; the ragged
  edge is dropped) that hold points of both sides, for s = 2, 4, 8, ...; the boundary's
  box-counting dimension is the slope of log N(s) against log(1/s), fitted by least squares over a
  range of s, with the slope's standard error as its uncertainty. As in Attractors.jl's
  ``basins_fractal_dimension``.
* ``uncertainty_exponent``: the fraction f(ε) of points whose side changes within ε cells (any of the
  four points ε away is on the other side) scales as ε^α (Grebogi et al. 1983); α = 2 − D for a
  boundary of dimension D in the plane.
* ``basin_entropy``: Sb and Sbb of Daza et al. (2016), as in Attractors.jl: the grid cut into ε×ε
  boxes, p_j the fraction of a box's points with label j, S = −Σ p_j ln p_j; Sb is the mean of S over
  all boxes and Sbb over the boxes that hold more than one label. Sbb > ln 2 means a fractal boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .outcome import Outcome


def trainable(fields: dict[str, np.ndarray]) -> np.ndarray:
    """The paper's trainable points (Sohl-Dickstein 2024): the mean of L_t/L_0 over the last 20 steps is
    below 1, which the ``score`` field records as a negative score."""
    return fields["score"] < 0


def side(fields: dict[str, np.ndarray], inside=None) -> np.ndarray:
    """Boolean (ny, nx) mask of one side: ``None`` for the trainable points, else an outcome or a collection
    of outcomes (``Outcome`` members, codes or names such as "converged")."""
    if inside is None:
        return trainable(fields)
    if isinstance(inside, (Outcome, int, str)):
        inside = [inside]
    codes = []
    for item in inside:
        if isinstance(item, str):
            try:
                item = Outcome[item.upper().replace(" ", "_")]
            except KeyError:
                valid = ", ".join(o.label for o in Outcome)
                raise SpecError(f"unknown outcome {item!r}; valid outcomes: {valid}") from None
        codes.append(int(item))
    return np.isin(fields["outcome"], codes)


def boundary_mask(mask: np.ndarray) -> np.ndarray:
    """Points of ``mask`` (2-D bool) with a neighbour (4-neighbourhood) of the other value."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    for axis in (0, 1):
        differ = np.diff(mask, axis=axis) != 0
        lead = [slice(None)] * 2
        lead[axis] = slice(None, -1)
        trail = [slice(None)] * 2
        trail[axis] = slice(1, None)
        out[tuple(lead)] |= differ
        out[tuple(trail)] |= differ
    return out


@dataclass(frozen=True)
class ScalingFit:
    """A power law fitted on log-log axes: ``exponent`` ± ``uncertainty`` (the least-squares slope and its
    standard error) from ``counts`` (N(s) or f(ε)) at ``sizes``; ``fitted`` marks the sizes used."""

    exponent: float
    uncertainty: float
    sizes: np.ndarray
    counts: np.ndarray
    fitted: np.ndarray


def _fit(sizes: np.ndarray, counts: np.ndarray, fit: tuple[float, float] | None, sign: float) -> ScalingFit:
    sizes = np.asarray(sizes, dtype=float)
    counts = np.asarray(counts, dtype=float)
    lo, hi = fit if fit is not None else (sizes.min(), sizes.max())
    fitted = (sizes >= lo) & (sizes <= hi) & (counts > 0)
    if np.count_nonzero(fitted) < 2:
        raise ValueError("fewer than two sizes with counts in the fitted range; widen it or use a larger map")
    x, y = np.log(sizes[fitted]), np.log(counts[fitted])
    a = np.vstack([x, np.ones_like(x)]).T
    (slope, _), residual, *_ = np.linalg.lstsq(a, y, rcond=None)
    n = len(x)
    stderr = float(np.sqrt(residual[0] / (n - 2) / np.sum((x - x.mean()) ** 2))) if n > 2 and residual.size else 0.0
    return ScalingFit(float(sign * slope), stderr, sizes, counts, fitted)


def box_sizes(shape: tuple[int, int]) -> np.ndarray:
    """The default box sizes: 2, 4, 8, ... up to an eighth of the shorter side (at least 2)."""
    top = max(2, min(shape) // 8)
    return 2 ** np.arange(1, int(np.log2(top)) + 1)


def box_counting(mask: np.ndarray, sizes=None, fit: tuple[float, float] | None = None) -> ScalingFit:
    """Box-counting dimension of the boundary of ``mask`` (2-D bool): N(s) ∝ s^(−D) (module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    sizes = box_sizes(mask.shape) if sizes is None else np.asarray(sizes, dtype=int)
    counts = [np.count_nonzero(_pooled_any(mask, s) & _pooled_any(~mask, s)) for s in sizes]
    return _fit(sizes, np.array(counts), fit, -1.0)


def _pooled_any(mask: np.ndarray, s: int) -> np.ndarray:
    """any() over the boxes of points [i·s, i·s + s] × [j·s, j·s + s]: neighbouring boxes share their
    edge points, so that a box of side s holds every change of side within it."""
    for axis in (0, 1):
        blocks = (mask.shape[axis] - 1) // s
        body = np.take(mask, np.arange(blocks * s), axis=axis)
        starts = np.arange(0, blocks * s, s)
        mask = np.logical_or.reduceat(body, starts, axis=axis) | np.take(mask, starts + s, axis=axis)
    return mask


def uncertainty_exponent(mask: np.ndarray, distances=None, fit: tuple[float, float] | None = None) -> ScalingFit:
    """α in f(ε) ∝ ε^α, f the fraction of points (at least ε from the grid's edge) whose side differs from
    that of a point ε cells away along either axis (module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if distances is None:  # 1, 2, 4, ... up to a 64th of the shorter side: the small-ε regime
        distances = 2 ** np.arange(0, int(np.log2(max(2, min(mask.shape) // 64))) + 1)
    distances = np.asarray(distances, dtype=int)
    fractions = []
    for e in distances:
        core = mask[e:-e, e:-e]
        uncertain = (
            (mask[: -2 * e, e:-e] != core)
            | (mask[2 * e :, e:-e] != core)
            | (mask[e:-e, : -2 * e] != core)
            | (mask[e:-e, 2 * e :] != core)
        )
        fractions.append(np.count_nonzero(uncertain) / uncertain.size)
    return _fit(distances, np.array(fractions), fit, 1.0)


def basin_entropy(labels: np.ndarray, box: int = 5) -> tuple[float, float]:
    """(Sb, Sbb) of the integer labels (2-D) in boxes of box×box points (module docstring); natural logs."""
    labels = np.asarray(labels)
    ny, nx = labels.shape[0] // box, labels.shape[1] // box
    if ny == 0 or nx == 0:
        raise ValueError(f"the map is smaller than one {box}×{box} box; use a smaller box")
    blocks = labels[: ny * box, : nx * box].reshape(ny, box, nx, box).transpose(0, 2, 1, 3).reshape(ny * nx, -1)
    entropy = np.zeros(len(blocks))
    for value in np.unique(blocks):
        p = np.mean(blocks == value, axis=1)
        entropy -= np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)
    mixed = (blocks != blocks[:, :1]).any(axis=1)
    sbb = float(entropy[mixed].mean()) if mixed.any() else 0.0
    return float(entropy.mean()), sbb
