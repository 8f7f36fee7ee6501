"""Adaptive refinement: a map computed coarse first, then finer only where outcomes mix.

Level ℓ of a refinement with L levels is the lattice of stride 2^ℓ: on each axis the indices
0, 2^ℓ, 2·2^ℓ, ... and the axis's last index. Its cells are the rectangles between neighbouring
lattice points (closed: they share edges and corners). The coarsest lattice, level L, is computed in
full. Then, for ℓ = L ... 1:

1. a cell of lattice ℓ is *mixed* when its corners do not all have the same outcome;
2. the mixed cells, widened by ``margin`` cells each way, are *marked*;
3. every point of lattice ℓ−1 in or on a marked cell is computed, unless it already was;
4. every other new point of lattice ℓ−1 copies all fields of its nearest point of lattice ℓ (ties
   towards the lower index) — a corner of its unmarked, hence uniform, cell.

Computed points hold exactly the full map's bytes (a trajectory is a pure function of its spec and
grid index), and the copy a point takes always comes from inside its own cell (edges included), so
**wherever the full map has one outcome over a cell of the coarsest lattice, the refined map has that
outcome there**. Finer
features wholly inside a cell whose corners (and whose neighbours' corners) agree are missed; a
wider ``margin`` misses fewer. ``MapData.refinement`` says, point by point, which level
computed it (−1: copied).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from .backends import get_backend
from .map_data import MapData, data_record, provenance
from .errors import RunInterrupted, SpecError
from .fields import FIELDS
from .journal import PointJournal
from .lock import output_lock
from .runner import compute_points, open_journal, record_history, run_provenance
from .spec import MapSpec
from .filesystem import check_output_path
from .store import write_map
from .threads import effective_threads
from .tiles import TILE_POINTS

#: Most refinement levels (a coarsest stride of 2^16 points).
MAX_LEVELS = 16

#: Computes the fields (flat) of grid points (iy, ix) at a level: (level, iy, ix) -> fields.
PointsComputer = Callable[[int, np.ndarray, np.ndarray], dict[str, np.ndarray]]


def check_levels(spec: MapSpec, levels: int, margin: int = 1) -> None:
    """SpecError unless ``levels`` and ``margin`` suit ``spec``: the coarsest lattice must keep at least
    three points on the longer axis."""
    if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= MAX_LEVELS:
        raise SpecError(f"--refine takes a number of levels from 0 to {MAX_LEVELS}, got {levels!r}")
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise SpecError(f"the refinement margin must be a whole number of cells >= 0, got {margin!r}")
    longest = max(spec.shape)
    most = max([0] + [k for k in range(MAX_LEVELS + 1) if lattice(longest, k).size >= 3])
    if levels > most:
        raise SpecError(
            f"--refine {levels} leaves a coarsest grid of fewer than 3 points along an axis of {longest}; "
            f"use --refine {most} or less, or more points"
        )


def lattice(n: int, level: int) -> np.ndarray:
    """The indices of level ``level`` on an axis of ``n`` points: multiples of 2^level, and n − 1."""
    points = np.arange(0, n, 2**level)
    return points if points[-1] == n - 1 else np.append(points, n - 1)


def mixed_cells(corners: np.ndarray) -> np.ndarray:
    """Which cells between neighbouring points of the lattice values ``corners`` (my, mx) have corners that
    differ; an axis of one point has one cell, its two corners the same point."""
    low_y, high_y = _cell_corners(corners.shape[0])
    low_x, high_x = _cell_corners(corners.shape[1])
    first = corners[np.ix_(low_y, low_x)]
    return (
        (first != corners[np.ix_(low_y, high_x)])
        | (first != corners[np.ix_(high_y, low_x)])
        | (first != corners[np.ix_(high_y, high_x)])
    )


def _cell_corners(points: int) -> tuple[np.ndarray, np.ndarray]:
    if points == 1:
        return np.zeros(1, np.intp), np.zeros(1, np.intp)
    return np.arange(points - 1), np.arange(1, points)


def widen(mask: np.ndarray, margin: int) -> np.ndarray:
    """``mask`` grown by ``margin`` cells in every direction (a square dilation)."""
    if margin == 0 or not mask.any():
        return mask
    padded = np.pad(mask, margin)
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    for dy in range(2 * margin + 1):
        for dx in range(2 * margin + 1):
            out |= padded[dy : dy + ny, dx : dx + nx]
    return out


def containing_cells(coarse: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each index of the finer lattice ``fine``, the first and last cell of lattice ``coarse`` holding it
    (two cells for a point of ``coarse`` between them, one for a point inside a cell)."""
    cells = max(coarse.size - 1, 1)
    k = np.searchsorted(coarse, fine, side="right") - 1
    on_coarse = coarse[k] == fine
    return np.where(on_coarse, k - 1, k).clip(0, cells - 1), k.clip(0, cells - 1)


def nearest(coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """For each index of ``fine``, the position in ``coarse`` of its nearest index (ties towards the lower)."""
    k = np.searchsorted(coarse, fine, side="right") - 1
    up = np.minimum(k + 1, coarse.size - 1)
    return np.where(coarse[up] - fine < fine - coarse[k], up, k)


def refine_fields(
    shape: tuple[int, int], levels: int, compute: PointsComputer, margin: int = 1
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The fields of a map of ``shape`` refined over ``levels`` levels (module docstring), and the level at
    which each point was computed (int8, −1 where copied). ``compute(level, iy, ix)`` runs trajectories.

    The computed points are kept in a compact store; each level holds, per lattice point, the position
    in the store of the point whose fields it has (its own, or the one it copies) and its level.
    """
    store: list[dict[str, np.ndarray]] = []
    stored = 0

    def run(level: int, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        nonlocal stored
        if iy.size:
            store.append(compute(level, iy, ix))
        stored += iy.size
        return np.arange(stored - iy.size, stored)

    def stored_outcomes() -> np.ndarray:
        return np.concatenate([part["outcome"] for part in store])

    ys, xs = lattice(shape[0], levels), lattice(shape[1], levels)
    iy, ix = np.meshgrid(ys, xs, indexing="ij")
    source = run(levels, iy.ravel(), ix.ravel()).reshape(iy.shape)
    computed_at = np.full(iy.shape, levels, dtype=np.int8)
    for level in range(levels - 1, -1, -1):
        marked_cells = widen(mixed_cells(stored_outcomes()[source]), margin)
        fine_y, fine_x = lattice(shape[0], level), lattice(shape[1], level)
        (y0, y1), (x0, x1) = containing_cells(ys, fine_y), containing_cells(xs, fine_x)
        marked = (
            marked_cells[np.ix_(y0, x0)] | marked_cells[np.ix_(y0, x1)]
            | marked_cells[np.ix_(y1, x0)] | marked_cells[np.ix_(y1, x1)]
        )
        # every point takes its nearest coarse point's source: old points their own, new points a copy
        take = np.ix_(nearest(ys, fine_y), nearest(xs, fine_x))
        source, computed_at = source[take], computed_at[take]
        computed_at[~(np.isin(fine_y, ys)[:, None] & np.isin(fine_x, xs)[None, :])] = -1
        todo_y, todo_x = np.nonzero(marked & (computed_at < 0))
        source[todo_y, todo_x] = run(level, fine_y[todo_y], fine_x[todo_x])
        computed_at[todo_y, todo_x] = level
        ys, xs = fine_y, fine_x
    flat = source.ravel()
    fields = {
        name: np.concatenate([part[name] for part in store])[flat].reshape(shape) for name in FIELDS
    }
    return fields, computed_at


def refine_map(
    spec: MapSpec, levels: int, margin: int = 1, backend: str = "auto", threads: int | None = None
) -> MapData:
    """The map of ``spec`` computed by adaptive refinement over ``levels`` levels, in memory.

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 257), y=Axis("a", 0.5, 2.0, 257), steps=200)
    >>> m = refine_map(spec, levels=4)
    >>> bool((m.outcome == run_map(spec).outcome).all()), m.provenance["computed_points"] < 0.25 * 257 * 257
    (True, True)
    """
    check_levels(spec, levels, margin)
    return _refine(spec, levels, margin, backend, threads)


def refine_map_to_file(
    spec: MapSpec,
    output: str | Path,
    levels: int,
    margin: int = 1,
    backend: str = "auto",
    threads: int | None = None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> MapData:
    """``refine_map`` into the HDF5 file ``output``, safe against being killed, as ``run_map_to_file``.

    Computed points go to the journal ``output + ".partial"`` in blocks as they come; a resumed run
    replays the refinement, taking the points it already has from the journal, so it reaches the same
    map. ``log`` is told of each level; ``stop_requested()`` is checked between blocks.
    """
    check_levels(spec, levels, margin)
    with output_lock(check_output_path(output)):
        journal = open_journal(spec, output, resume=resume, force=force, refine={"levels": levels, "margin": margin})
        if isinstance(journal, MapData):
            return journal
        assert isinstance(journal, PointJournal)
        try:
            cmap = _refine(spec, levels, margin, backend, threads, journal, log, stop_requested)
        finally:
            journal.close()
        write_map(cmap, output, partial=journal.path)
        journal.remove()
        return cmap


def _refine(
    spec: MapSpec,
    levels: int,
    margin: int,
    backend: str,
    threads: int | None,
    journal: PointJournal | None = None,
    log: Callable[[str], None] | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> MapData:
    """The refined map, its points computed in blocks; with a ``journal``, points found there are taken from
    it and new ones recorded in it."""
    engine, n_threads = get_backend(backend, spec.model_def, spec.arithmetic), effective_threads(threads)
    resumed = journal.points if journal is not None else 0
    started, steps = time.perf_counter(), 0
    nx = spec.shape[1]

    def compute(level: int, iy: np.ndarray, ix: np.ndarray) -> dict[str, np.ndarray]:
        nonlocal steps
        flat = iy * nx + ix
        out = {name: np.empty(iy.size, info.dtype) for name, info in FIELDS.items()}
        known = np.zeros(iy.size, dtype=bool)
        if journal is not None:
            known, values = journal.lookup(flat)
            for name in FIELDS:
                out[name][known] = values[name]
        todo = np.flatnonzero(~known)
        for start in range(0, todo.size, TILE_POINTS):
            if stop_requested is not None and stop_requested():
                raise RunInterrupted(journal.points, None, journal.path, "points")
            part = todo[start : start + TILE_POINTS]
            result = compute_points(spec, engine, iy[part], ix[part], n_threads)
            if journal is not None:
                journal.append(level, flat[part], result)
            steps += int(result["steps"].sum())
            for name in FIELDS:
                out[name][part] = result[name]
        if log is not None:
            reused = f", {iy.size - todo.size} of them from the partial run" if todo.size < iy.size else ""
            log(f"level {level} (stride {2**level}): {iy.size} points computed{reused}")
        return out

    fields, computed_at = refine_fields(spec.shape, levels, compute, margin)
    history = record_history(spec, engine, n_threads)
    computed = int(np.count_nonzero(computed_at >= 0))
    run = run_provenance(
        spec, engine, n_threads, started, steps, refine_levels=levels, refine_margin=margin, computed_points=computed,
        **({"points_resumed": resumed} if journal is not None else {}),
    )
    return MapData(spec, fields, provenance(**run), refinement=computed_at, history=history,
                   training=data_record(spec)[1])
