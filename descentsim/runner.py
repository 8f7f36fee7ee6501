"""Running a map in one process: tiles through a backend into a MapData, in memory or to a file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .backends import Backend, get_backend, problems
from .map_data import MapData, data_record, provenance
from .fields import FIELDS, empty_fields
from .history import History, Recording, Trajectories
from .models import Problem
from .optimizers import SCHEDULE_KNOBS, schedule_factors
from .outcome import decision_steps
from .errors import MapFileError, RunInterrupted, SpecError, unknown_name
from .journal import PointJournal, TileJournal, journal_path, journal_temporary
from .lock import output_lock
from .optimizers import check_schedule_steps
from .resources import THETA_BUDGET, check_disk, check_memory, grid_extremes
from .spec import MapSpec
from .filesystem import check_name_room, check_output_path
from .store import read_map, write_tiles
from .threads import effective_threads
from .tiles import TILE_POINTS, Tile, clamp_tile_shape, default_tile_shape, tiles

#: Called after each finished tile with (tiles done, tiles in all, trajectory-steps so far).
ProgressCallback = Callable[[int, int, int], None]


def compute_tile(
    spec: MapSpec,
    backend: Backend,
    tile: Tile,
    threads: int,
    block_points: int | None = None,
    between_blocks: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """The fields of every point of ``tile``, each shaped ``tile.shape`` (``compute_points``)."""
    iy, ix = tile.grid_indices()
    flat = compute_points(spec, backend, iy, ix, threads, block_points=block_points, between_blocks=between_blocks)
    return {name: values.reshape(tile.shape) for name, values in flat.items()}


def compute_points(
    spec: MapSpec,
    backend: Backend,
    iy: np.ndarray,
    ix: np.ndarray,
    threads: int,
    overrides: dict[str, np.ndarray] | None = None,
    block_points: int | None = None,
    between_blocks: Callable[[], None] | None = None,
    recording: Recording | None = None,
) -> dict[str, np.ndarray]:
    """The fields (flat, like iy) of the trajectories at grid points (iy, ix), knob values replaced point by
    point by ``overrides`` (``backends.problems``); ``recording`` (rows like iy), if given, receives their
    curves.

    The points go through the engine in blocks (of at most ``block_points``, and few enough that wide
    models fit in memory); ``between_blocks`` is called after each. Neither changes the result.
    """
    overrides = overrides or {}
    flat = {name: np.empty(iy.size, dtype=info.dtype) for name, info in FIELDS.items()}
    p = spec.model_def.parameter_count({**spec.point_values(iy, ix), **overrides})
    block = max(1, min(THETA_BUDGET // p, block_points or iy.size))
    for start in range(0, iy.size, block):
        part = slice(start, start + block)
        for positions, problem, hyper, factors in problems(
            spec, iy[part], ix[part], {k: v[part] for k, v in overrides.items()}
        ):
            curves = None if recording is None else recording.like(len(positions), problem.theta0.shape[1])
            result = backend.run(spec, problem, hyper, factors, threads, curves)
            for name in FIELDS:
                flat[name][part][positions] = result[name]
            if recording is not None:
                recording.put(np.arange(iy.size)[part][positions], curves)
        if between_blocks is not None:
            between_blocks()
    return flat


def run_points(
    spec: MapSpec,
    iy: np.ndarray,
    ix: np.ndarray,
    overrides: dict[str, np.ndarray] | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """The fields (shaped like iy, flattened) of the trajectories at grid points (iy, ix), with knob values
    replaced point by point by ``overrides`` (for refinement between grid points); a pure function of its
    input."""
    iy, ix, overrides = _flat_points(spec, iy, ix, overrides)
    engine = get_backend(backend, spec.model_def, spec.arithmetic)
    return compute_points(spec, engine, iy, ix, effective_threads(threads), overrides)


def _flat_points(spec: MapSpec, iy, ix, overrides) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Grid indices as flat int64 arrays, and the overrides flattened like them and checked as an axis's
    values would be (SpecError for indices off the grid or of unequal lengths, an unknown knob, a knob that
    takes a name, or a value out of range)."""
    iy, ix = np.asarray(iy, dtype=np.int64).ravel(), np.asarray(ix, dtype=np.int64).ravel()
    ny, nx = spec.shape
    if iy.size != ix.size:
        raise SpecError(f"iy and ix give {iy.size} and {ix.size} points; give one row and one column index per point")
    if iy.size and (iy.min() < 0 or iy.max() >= ny or ix.min() < 0 or ix.max() >= nx):
        raise SpecError(f"grid indices must be 0 <= iy < {ny} and 0 <= ix < {nx} (the map is {ny}×{nx})")
    knobs, flat = spec.knobs, {}
    for name, values in (overrides or {}).items():
        if name not in knobs:
            raise unknown_name(name, list(knobs), "knob", where=" in overrides")
        if not knobs[name].sweepable:
            raise SpecError(f"knob {name!r} takes a name, not a number: fix it in the spec's params instead")
        flat[name] = knobs[name].sweep_values(np.asarray(values, dtype=np.float64).ravel())
        if flat[name].size != iy.size:
            raise SpecError(f"overrides[{name!r}] has {flat[name].size} values for {iy.size} points; give one per point")
    return iy, ix, flat


def trajectories(
    spec: MapSpec,
    iy: np.ndarray,
    ix: np.ndarray,
    overrides: dict[str, np.ndarray] | None = None,
    backend: str = "auto",
    threads: int | None = None,
    stride: int = 1,
    theta: bool = True,
) -> Trajectories:
    """The trajectories at grid points (iy, ix) as the engine runs them: θ_t, the full-data loss L_t and,
    for classifiers, the training accuracy every ``stride`` steps, each up to the step at which the point
    was decided (NaN after), and the point's fields.

    Knob values can be replaced point by point by ``overrides`` (arrays like iy), as in ``run_points``.
    The compiled engine runs them (``backend="auto"``); every engine gives the same bits.
    ``theta=False`` skips θ_t (P values a step), for wide networks.

    Raises SpecError without points, for ``stride < 1``, or when θ is asked of points with different
    numbers of parameters.

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 0.5, 1.0, 2), steps=3, params={"w0": 1.0},
    ...                thresholds={"converge_window": 2})
    >>> run = trajectories(spec, [0, 0], [0, 1])
    >>> run.loss[0].tolist()  # ½·(1 − 0.5)^(2t)
    [0.5, 0.125, 0.03125, 0.0078125]
    >>> run.theta[1, :, 0].tolist(), run.decided.tolist()  # lr = 2/a·½ lands on the minimum at once, confirmed at 2
    ([1.0, 0.0, 0.0, nan], [3, 2])
    """
    iy, ix, overrides = _flat_points(spec, iy, ix, overrides)
    if iy.size == 0:
        raise SpecError("no points given; pass the grid indices (and overrides) of at least one trajectory")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise SpecError(f"stride must be a whole number >= 1, got {stride!r}")
    engine = get_backend(backend, spec.model_def, spec.arithmetic)
    return _trajectories(spec, engine, iy, ix, effective_threads(threads), overrides, int(stride), theta)


def _trajectories(spec: MapSpec, engine: Backend, iy: np.ndarray, ix: np.ndarray, threads: int,
                  overrides: dict[str, np.ndarray], stride: int, theta: bool) -> Trajectories:
    p = spec.model_def.parameter_count({**spec.point_values(iy, ix), **overrides}) if theta else 0
    recording = Recording.empty(iy.size, spec.steps, p, theta, spec.model_def.classifier, stride)
    fields = compute_points(spec, engine, iy, ix, threads, overrides, recording=recording)
    marks = np.arange(0, spec.steps + 1, stride, dtype=np.int64)
    return Trajectories(recording.theta, recording.loss, recording.accuracy, marks, fields)


def record_history(spec: MapSpec, engine: Backend, threads: int) -> History | None:
    """The curves of the points ``spec.record`` asks for (None if none), run by ``engine``: the grid
    points nearest them, so each curve ends in the map's own outcome for that point."""
    if not spec.record:
        return None
    iy, ix = spec.record_indices()
    run = _trajectories(spec, engine, iy, ix, threads, {}, spec.record_stride, theta=False)
    return History(
        iy=iy, ix=ix, x=spec.axis_coordinates(spec.x)[ix],
        y=None if spec.y is None else spec.axis_coordinates(spec.y)[iy],
        loss=run.loss, accuracy=run.accuracy, accuracy_steps=run.accuracy_steps,
        decided=run.fields["steps"], outcome=run.fields["outcome"],
    )


def budget_warning(spec: MapSpec) -> str | None:
    """A line saying that no run of ``spec`` can be called converged (its budget ends before a warm-up's end
    plus ``converge_window``), or None. Not an error: such a map still measures the score and the other
    outcomes."""
    if spec.resolved_thresholds.converge_loss <= 0:  # early stopping switched off on purpose
        return None
    swept = {axis.name for axis in spec.axes}
    schedule = {k.name for k in SCHEDULE_KNOBS}
    start = 0
    if not swept & schedule:
        factors = schedule_factors(spec.point_values(np.zeros(1, np.int64), np.zeros(1, np.int64)), spec.steps)
        start = decision_steps(factors, spec.steps)[0]
    window = spec.resolved_thresholds.converge_window
    if spec.steps + 1 >= start + window:
        return None
    return (f"no run can be called converged: a run needs {window} steps in a row below converge_loss"
            f"{f' after step {start} (the warm-up)' if start else ''}, and steps = {spec.steps}; raise steps to "
            f"{start + window - 1} or lower thresholds.converge_window")


def problem(spec: MapSpec, iy: int = 0, ix: int = 0) -> Problem:
    """The exact initial parameters, constants and data of grid point (iy, ix) of a map, in float64.

    ``theta0`` is (1, P), ``data`` the shared data (for ``mlp``: the columns of X, then y; its
    initial W1, row-major, then W2); see the model's docstring for the layout. With minibatches, ``batch``
    and ``eval_samples`` are set as the engines get them. SpecError for a point off the grid.
    """
    iy, ix, _ = _flat_points(spec, iy, ix, None)
    if iy.size != 1:
        raise SpecError("problem takes one grid point (iy, ix); use trajectories for several")
    (_, made, _, _), = problems(spec, iy, ix)  # as a map makes it: swept shape knobs reach the model as scalars
    return made


def run_provenance(spec: MapSpec, engine: Backend, threads: int, started: float, trajectory_steps: int,
                   **more) -> dict:
    """The facts of a run of ``spec`` for its map's provenance: engine and its arithmetic, what the engine records
    of itself (``provenance()``, where it has one), threads that really ran (1 rank unless ``more`` says otherwise),
    wall time since ``started`` (``time.perf_counter``), steps run, what the model records of itself
    (``Model.provenance``) and of its data (``map_data.data_record``)."""
    return {
        **spec.model_def.provenance(),
        **data_record(spec)[0],
        "backend": engine.name,
        "arithmetic": spec.arithmetic,
        **getattr(engine, "provenance", dict)(),
        "threads": threads if engine.parallel else 1,
        "ranks": 1,
        "wall_time_s": time.perf_counter() - started,
        "trajectory_steps": trajectory_steps,
        **more,
    }


def engine_tile_shape(spec: MapSpec, engine: Backend) -> tuple[int, int]:
    """The default tile shape of ``spec``'s map on ``engine``: about its ``tile_points`` points a tile (a GPU wants
    hundreds of thousands of trajectories at once, the CPU engines TILE_POINTS)."""
    return default_tile_shape(spec.shape, getattr(engine, "tile_points", TILE_POINTS))


def run_tiles(
    spec: MapSpec,
    engine: Backend,
    todo: list[Tile],
    threads: int,
    on_tile: Callable[[Tile, dict[str, np.ndarray]], None],
    progress: ProgressCallback | None = None,
    total: int | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> int:
    """Compute ``todo`` in order, handing each finished tile to ``on_tile``; returns the trajectory-steps run.

    Between tiles, ``stop_requested()`` returning true raises RunInterrupted (finished tiles are handed
    over first, unfinished ones are not started).
    """
    total = total if total is not None else len(todo)
    first = total - len(todo)
    trajectory_steps = 0
    for done, tile in enumerate(todo, start=1):
        if stop_requested is not None and stop_requested():
            raise RunInterrupted(first + done - 1, total)
        result = compute_tile(spec, engine, tile, threads)
        on_tile(tile, result)
        trajectory_steps += int(result["steps"].sum())
        if progress is not None:
            progress(first + done, total, trajectory_steps)
    return trajectory_steps


def run_map(
    spec: MapSpec,
    backend: str = "auto",
    threads: int | None = None,
    tile_shape: tuple[int, int] | None = None,
    progress: ProgressCallback | None = None,
) -> MapData:
    """Compute the convergence map of ``spec`` in memory.

    Parameters
    ----------
    spec : what to compute.
    backend : ``"auto"`` (the GPU engine where CuPy finds a GPU, else the compiled CPU engine), ``"cython"``,
        ``"cupy"``, ``"gpu-host"`` or ``"numpy"`` (the reference): ``backends.get_backend``.
    threads : OpenMP threads; default ``OMP_NUM_THREADS``, else the cores available.
    tile_shape : (rows, columns) per tile; results do not depend on it.
    progress : called after each tile with (tiles done, tiles in all, trajectory-steps so far).

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100)  # lr = 0.5, 1, ..., 3
    >>> run_map(spec).fraction(Outcome.DIVERGED)  # lr = 2.5 and 3 exceed 2/a = 2
    0.3333333333333333
    """
    engine = get_backend(backend, spec.model_def, spec.arithmetic)
    n_threads = effective_threads(threads)
    layout = tiles(spec.shape, tile_shape or engine_tile_shape(spec, engine))
    check_runnable(spec, layout[0].shape)
    fields = empty_fields(spec.shape)

    def keep(tile: Tile, result: dict[str, np.ndarray]) -> None:
        for name, values in result.items():
            fields[name][tile.region] = values

    started = time.perf_counter()
    trajectory_steps = run_tiles(spec, engine, layout, n_threads, keep, progress)
    history = record_history(spec, engine, n_threads)
    run = run_provenance(spec, engine, n_threads, started, trajectory_steps, tile_shape=layout[0].shape)
    return MapData(spec, fields, provenance(**run), history=history, training=data_record(spec)[1])


def resumes_finished_map(output: str | Path, resume: bool) -> bool:
    """Whether a run is a --resume of a map already written in full (no partial run beside it): then the
    map is left as it is."""
    return resume and os.path.lexists(output) and not journal_path(output).exists()


def check_runnable(spec: MapSpec, tile_shape: tuple[int, int], refined: bool = False, to_file: bool = False,
                   output: Path | None = None) -> None:
    """Every refusal a run of ``spec`` can meet, raised before any work and before any file is made: a
    schedule too long to tabulate, more memory than the process may use (``resources.check_memory``;
    ``to_file``: the run writes a file), and, for a new run writing ``output``, more disk space for its
    journal than is free."""
    check_schedule_steps(grid_extremes(spec), spec.steps)
    check_memory(spec, tile_shape, refined, to_file=to_file or output is not None)
    if output is not None:
        check_disk(spec, output)


def open_journal(
    spec: MapSpec,
    output: str | Path,
    tile_shape: tuple[int, int] | None = None,
    resume: bool = False,
    force: bool = False,
    refine: dict | None = None,
) -> TileJournal | PointJournal | MapData:
    """The journal a run writing ``output`` appends to, or the finished map if ``resume`` finds it done.
    The caller holds the output's lock (``descentsim.lock.output_lock``).

    Checks, before any work and before any file is made: the output path is writable; an existing
    output needs ``force`` (or is the finished map being resumed); an interrupted run needs ``resume``
    (same spec) or ``force``; the run fits in memory and on disk (``check_runnable``).
    A refined run (``refine`` = its levels and margin) keeps a ``PointJournal`` instead of tiles.
    """
    output = check_output_path(output)
    partial = journal_path(output)
    check_name_room(output, journal_temporary(partial))
    if resume and force:
        raise SpecError("--resume and --force contradict each other: resume a run, or start it over")
    if resumes_finished_map(output, resume):
        existing = read_map(output)
        if existing.spec != spec:
            raise SpecError(f"output {str(output)!r} holds a different map; use --force to replace it")
        return existing
    if os.path.lexists(output) and not (force or resume):
        raise SpecError(f"output {str(output)!r} exists; use --force to replace it")
    if os.path.lexists(partial) and not partial.is_file():
        raise MapFileError(f"{str(partial)!r}, where the partial run of {str(output)!r} goes, exists and is not a "
                           "regular file; move it away or choose another -o path")
    if partial.exists() and not (force or resume):
        raise SpecError(
            f"an interrupted run of {str(output)!r} is in {str(partial)!r}; "
            "add --resume to finish it, or --force to start over"
        )
    journal_temporary(partial).unlink(missing_ok=True)  # a new journal's, left by a run killed while making it
    resuming = resume and partial.exists()
    if refine is not None:
        if resuming:
            journal = PointJournal.resume(partial, spec, refine)
        else:
            check_runnable(spec, (1, TILE_POINTS), refined=True, output=output)
            return PointJournal.create(partial, spec, refine)
    elif resuming:
        journal = TileJournal.resume(partial, spec)
    else:
        tile_shape = clamp_tile_shape(spec.shape, tile_shape)
        check_runnable(spec, tile_shape, output=output)
        return TileJournal.create(partial, spec, tile_shape)
    try:
        check_runnable(spec, getattr(journal, "tile_shape", (1, TILE_POINTS)), refined=refine is not None,
                       to_file=True)
    except SpecError:
        journal.close()
        raise
    return journal


def finish_journal(journal: TileJournal, output: str | Path, run: dict, history: History | None = None
                   ) -> MapData:
    """Write the map of a complete journal (with the recorded points' ``history``) to ``output``
    (atomically, a tile at a time), delete the journal, and return the map as read back from the file.

    Raises OutOfSpace on a full disk, the journal kept for --resume."""
    write_tiles(output, journal.spec, provenance(tile_shape=journal.tile_shape, **run), journal.finished_tiles(),
                history, partial=journal.path, training=data_record(journal.spec)[1])
    journal.remove()
    return read_map(output)


def run_map_to_file(
    spec: MapSpec,
    output: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    tile_shape: tuple[int, int] | None = None,
    resume: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> MapData:
    """Compute the map of ``spec`` into the HDF5 file ``output``, safe against being killed.

    Finished tiles go to the journal ``output + ".partial"`` as they come (see ``descentsim.journal``);
    the HDF5 file appears, complete, only at the end. ``resume=True`` continues the journal of an
    interrupted run (the spec must be the same; its tile shape is kept), or starts afresh if there is
    none; an existing output needs ``force=True`` (which also discards a journal). When
    ``stop_requested()`` turns true (say, on SIGTERM) the run stops between tiles, keeps its journal and
    raises RunInterrupted.
    """
    engine = get_backend(backend, spec.model_def, spec.arithmetic)
    n_threads = effective_threads(threads)
    with output_lock(check_output_path(output)):
        journal = open_journal(spec, output, tile_shape or engine_tile_shape(spec, engine), resume, force)
        if isinstance(journal, MapData):
            return journal  # resumed a finished map
        resumed = len(journal.done)
        started = time.perf_counter()
        try:
            trajectory_steps = run_tiles(
                spec, engine, journal.missing, n_threads, journal.append, progress, len(journal.tiles), stop_requested
            )
        except RunInterrupted as stop:
            raise RunInterrupted(stop.done, stop.total, journal.path, stop.unit) from None
        finally:
            journal.close()
        history = record_history(spec, engine, n_threads)
        return finish_journal(
            journal, output, run_provenance(spec, engine, n_threads, started, trajectory_steps, tiles_resumed=resumed), history
        )
