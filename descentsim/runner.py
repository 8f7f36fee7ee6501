"""Running a map in one process: tiles through a backend into a ConvergenceMap."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .backends import Backend, get_backend, problems
from .convergence_map import ConvergenceMap, provenance
from .fields import FIELDS, empty_fields
from .spec import MapSpec
from .threads import effective_threads
from .tiles import Tile, tiles

#: Called after each finished tile with (tiles done, tiles in all, trajectory-steps so far).
ProgressCallback = Callable[[int, int, int], None]


#: Most initial-parameter values prepared at once (64 MiB of float64): wide models run a tile in blocks.
THETA_BUDGET = 1 << 23


def compute_tile(spec: MapSpec, backend: Backend, tile: Tile, threads: int) -> dict[str, np.ndarray]:
    """The fields of every point of ``tile``, each shaped ``tile.shape``."""
    iy, ix = tile.grid_indices()
    flat = {name: np.empty(tile.size, dtype=info.dtype) for name, info in FIELDS.items()}
    p = spec.model_def.parameter_count(spec.point_values(iy, ix))
    block = max(1, THETA_BUDGET // p)
    for start in range(0, tile.size, block):
        part = slice(start, start + block)
        for positions, problem, hyper in problems(spec, iy[part], ix[part]):
            result = backend.run(spec, problem, hyper, threads)
            for name in FIELDS:
                flat[name][part][positions] = result[name]
    return {name: values.reshape(tile.shape) for name, values in flat.items()}


def run_map(
    spec: MapSpec,
    backend: str = "auto",
    threads: int | None = None,
    tile_shape: tuple[int, int] | None = None,
    progress: ProgressCallback | None = None,
) -> ConvergenceMap:
    """Compute the convergence map of ``spec``.

    Parameters
    ----------
    spec : what to compute.
    backend : ``"auto"`` (the compiled engine when built), ``"cython"`` or ``"numpy"`` (reference).
    threads : OpenMP threads; default ``OMP_NUM_THREADS``, else the cores available.
    tile_shape : (rows, columns) per tile; results do not depend on it.
    progress : called after each tile with (tiles done, tiles in all, trajectory-steps so far).

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100)  # lr = 0.5, 1, ..., 3
    >>> run_map(spec).fraction(Outcome.DIVERGED)  # lr = 2.5 and 3 exceed 2/a = 2
    0.3333333333333333
    """
    engine = get_backend(backend)
    n_threads = effective_threads(threads)
    fields = empty_fields(spec.shape)
    layout = tiles(spec.shape, tile_shape)
    started = time.perf_counter()
    trajectory_steps = 0
    for done, tile in enumerate(layout, start=1):
        result = compute_tile(spec, engine, tile, n_threads)
        for name, values in result.items():
            fields[name][tile.region] = values
        trajectory_steps += int(result["steps"].sum())
        if progress is not None:
            progress(done, len(layout), trajectory_steps)
    wall = time.perf_counter() - started
    return ConvergenceMap(
        spec,
        fields,
        provenance(
            backend=engine.name,
            threads=n_threads if engine.parallel else 1,
            ranks=1,
            wall_time_s=wall,
            trajectory_steps=trajectory_steps,
            tile_shape=layout[0].shape,
        ),
    )
