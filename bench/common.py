"""Helpers shared by the benchmark scripts (run them from the repository root: python bench/NAME.py)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

import descentsim as ds
from descentsim.threads import available_cores

UNDECIDED, CONVERGED, DIVERGED = 0, int(ds.Outcome.CONVERGED), int(ds.Outcome.DIVERGED)


def outcome_class(outcome: np.ndarray) -> np.ndarray:
    """descentsim outcome codes reduced to CONVERGED, DIVERGED or UNDECIDED (stuck, cycling, unresolved)."""
    return np.where((outcome == CONVERGED) | (outcome == DIVERGED), outcome, UNDECIDED).astype(np.uint8)


def jax_rules_start(jnp: ModuleType, dtype, steps: int) -> tuple:
    """The decision carry of ``jax_rules`` before step 0: (L_0, outcome, decided step, steps below the level)."""
    return jnp.zeros((), dtype), jnp.uint8(UNDECIDED), jnp.int32(steps), jnp.int32(0)


def jax_rules(jnp: ModuleType, rules: ds.Thresholds, t, loss_t, carry: tuple) -> tuple:
    """descentsim's early-stopping rules at step t of a JAX scan, simplified (no schedule, no end-of-budget
    classes): diverged at a non-finite L_t or L_t > diverge_factor·L_0; converged once L_t <= converge_loss
    for converge_window steps in a row. Returns the next carry (see ``jax_rules_start``)."""
    loss0, outcome, decided_step, below = carry
    loss0 = jnp.where(t == 0, loss_t, loss0)
    below = jnp.where(loss_t <= rules.converge_loss, below + 1, 0)
    undecided = outcome == UNDECIDED
    diverged = undecided & (~jnp.isfinite(loss_t) | (loss_t > rules.diverge_factor * loss0))
    converged = undecided & ~diverged & (below >= rules.converge_window)
    outcome = jnp.where(diverged, DIVERGED, jnp.where(converged, CONVERGED, outcome))
    return loss0, outcome, jnp.where(diverged | converged, t, decided_step), below


def jax_scalar_gd(jax: ModuleType, spec: ds.MapSpec, loss: Callable) -> Callable:
    """(lr, w0) → (outcome, decided_step) over a batch of grid points: the vmap of a scan of gradient descent
    on the scalar ``loss(w)`` (through ``jax.value_and_grad``) with descentsim's outcome rules (``jax_rules``),
    updating while t < steps and the point is undecided; the carry is (w, rules' state), nothing is stacked
    per step."""
    jnp = jax.numpy
    rules, steps = spec.resolved_thresholds, spec.steps
    loss_and_grad = jax.value_and_grad(loss)

    def trajectory(lr, w0):
        def step(carry, t):
            w, decision = carry
            loss_t, grad = loss_and_grad(w)
            decision = jax_rules(jnp, rules, t, loss_t, decision)
            w = jnp.where((decision[1] == UNDECIDED) & (t < steps), w - lr * grad, w)
            return (w, decision), None

        start = (w0, jax_rules_start(jnp, jnp.dtype(spec.dtype), steps))
        (_, (_, outcome, decided_step, _)), _ = jax.lax.scan(step, start, jnp.arange(steps + 1, dtype=jnp.int32))
        return outcome, decided_step

    return jax.vmap(trajectory)


def import_jax(enable_x64: bool) -> ModuleType | None:
    """``jax``, configured for float64 when asked (float32 arrays stay float32), or None if missing."""
    try:
        import jax
    except ImportError:
        return None
    if enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


def class_fractions(classes: np.ndarray) -> str:
    """'converged a%, diverged b%, undecided c%' of a class field."""
    total = classes.size
    parts = [(CONVERGED, "converged"), (DIVERGED, "diverged"), (UNDECIDED, "undecided")]
    return ", ".join(f"{label} {np.count_nonzero(classes == code) / total:.2%}" for code, label in parts)


@dataclass
class Measurement:
    """One timed map run.

    budget : steps per trajectory (the spec's ``steps``).
    steps_run : steps (trajectory- or network-steps) actually run, summed over the grid points.
    flop_per_step : FLOP per step, where the benchmark counts them (0 otherwise).
    cpu_s : CPU time of the timed run (all its threads; ``time.process_time``), where measured (0 otherwise).
    arithmetic : the spec's ``arithmetic`` (descentsim's engines; "" for others).
    """

    engine: str
    dtype: str
    shape: tuple[int, int]
    budget: int
    wall_s: float
    steps_run: int
    flop_per_step: int = 0
    cpu_s: float = 0.0
    arithmetic: str = ""

    @property
    def points(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nominal_rate(self) -> float:
        """Map-equivalent steps per second: points × budget / wall time."""
        return self.points * self.budget / self.wall_s

    @property
    def actual_rate(self) -> float:
        """Steps actually run per second."""
        return self.steps_run / self.wall_s

    @property
    def gflops(self) -> float:
        """GFLOP/s of the steps actually run, from ``flop_per_step``."""
        return self.actual_rate * self.flop_per_step / 1e9


def time_descentsim(
    spec: ds.MapSpec, backend: str, threads: int, repeats: int, flop: int = 0
) -> tuple[Measurement, ds.ConvergenceMap]:
    """Best of ``repeats`` runs of ``run_map`` with ``backend`` (wall time, and the CPU time of that run); the map
    of the last run."""
    warm_up = spec.replace(x=ds.Axis(spec.x.name, spec.x.start, spec.x.stop, 2, spec.x.scale), y=None,
                           steps=min(spec.steps, 5))
    ds.run_map(warm_up, backend=backend, threads=threads)  # first-call costs (imports, lazy set-up) untimed
    best, best_cpu = np.inf, 0.0
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        conv_map = ds.run_map(spec, backend=backend, threads=threads)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        best, best_cpu = (wall, cpu) if wall < best else (best, best_cpu)
    steps_run = int(conv_map.provenance["trajectory_steps"])
    assert steps_run == int(conv_map.fields["steps"].sum())
    return Measurement(backend, spec.dtype, spec.shape, spec.steps, best, steps_run, flop, best_cpu,
                       spec.arithmetic), conv_map


def fields_identical(a: ds.ConvergenceMap, b: ds.ConvergenceMap) -> bool:
    """Whether two maps' outcome, steps and final_loss fields are bit for bit the same."""
    return all(np.array_equal(a.fields[name], b.fields[name], equal_nan=True)
               for name in ("outcome", "steps", "final_loss"))


def time_cython_and_reference(
    spec: ds.MapSpec, small: ds.MapSpec, threads: int, repeats: int, flop: int = 0
) -> tuple[Measurement, ds.ConvergenceMap, Measurement]:
    """Time the Cython engine on ``spec`` and the NumPy reference on the smaller ``small``, printing each map's
    outcome classes and how the reference agrees with Cython on ``small``; (Cython, its map, reference)."""
    cython, cython_map = time_descentsim(spec, "cython", threads, repeats, flop)
    print(f"  cython {spec.shape[0]}×{spec.shape[1]}: {cython.wall_s:.3f} s (provenance wall_time_s "
          f"{cython_map.provenance['wall_time_s']:.3f}); {class_fractions(outcome_class(cython_map.outcome))}; "
          f"mean steps run {cython.steps_run / cython.points:.1f} of {spec.steps}")
    reference, reference_map = time_descentsim(small, "numpy", 1, repeats, flop)
    print(f"  numpy {small.shape[0]}×{small.shape[1]}, {small.steps} steps: {reference.wall_s:.3f} s; "
          f"{class_fractions(outcome_class(reference_map.outcome))}")
    small_cython = ds.run_map(small, backend="cython", threads=threads)
    print_agreement("numpy vs cython (small grid)", outcome_class(small_cython.outcome),
                    outcome_class(reference_map.outcome))
    print(f"  numpy vs cython (small grid): outcome, steps and final_loss fields bit-identical: "
          f"{fields_identical(small_cython, reference_map)}")
    return cython, cython_map, reference


@dataclass
class JaxRun:
    """A timed JAX map: the measurement, compile time, (ny, nx) outcome classes and decided steps, and the
    compiled function (for XLA's cost analysis)."""

    measurement: Measurement
    compile_s: float
    outcome: np.ndarray
    decided_step: np.ndarray
    compiled: object


def time_jax(jax: ModuleType, spec: ds.MapSpec, map_fn: Callable, chunk_rows: int, repeats: int,
             flop: int = 0) -> JaxRun:
    """Compile ``map_fn`` (x values, y values) → (outcome, decided step) for chunks of ``chunk_rows`` grid
    rows, warm up on one chunk, then time the whole grid (best of ``repeats``). JAX runs every step of
    every trajectory, so its steps run are points × steps."""
    jnp = jax.numpy
    ny, nx = spec.shape
    chunk_rows = max(1, min(chunk_rows, ny))
    chunks = -(-ny // chunk_rows)
    xs = spec.axis_coordinates(spec.x).astype(spec.dtype)
    ys = spec.axis_coordinates(spec.y).astype(spec.dtype)
    # Pad the rows to whole chunks (repeating the last y) so every chunk has one shape and one compile.
    y_rows = np.concatenate([ys, np.full(chunks * chunk_rows - ny, ys[-1], dtype=ys.dtype)])
    y_grid, x_grid = (g.reshape(chunks, chunk_rows * nx) for g in np.meshgrid(y_rows, xs, indexing="ij"))
    x_chunks = [jnp.asarray(row) for row in x_grid]
    y_chunks = [jnp.asarray(row) for row in y_grid]

    started = time.perf_counter()
    compiled = jax.jit(map_fn).lower(x_chunks[0], y_chunks[0]).compile()
    compile_s = time.perf_counter() - started
    jax.block_until_ready(compiled(x_chunks[0], y_chunks[0]))  # warm-up run

    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        results = [compiled(a, b) for a, b in zip(x_chunks, y_chunks)]
        jax.block_until_ready(results)
        best = min(best, time.perf_counter() - started)
    outcome = np.concatenate([np.asarray(o) for o, _ in results]).reshape(-1, nx)[:ny]
    decided_step = np.concatenate([np.asarray(s) for _, s in results]).reshape(-1, nx)[:ny]
    measurement = Measurement("jax", spec.dtype, spec.shape, spec.steps, best, ny * nx * spec.steps, flop)
    return JaxRun(measurement, compile_s, outcome, decided_step, compiled)


# ---- report --------------------------------------------------------------------------------------

CLASS_LABELS = {CONVERGED: "converged", DIVERGED: "diverged", UNDECIDED: "undecided"}


def print_agreement(label: str, reference: np.ndarray, other: np.ndarray) -> float:
    """Print and return the fraction of grid points where two class fields agree, with how the others differ."""
    agree = float(np.mean(reference == other))
    differ = reference != other
    print(f"  {label}: {agree:.6f} of points in the same class ({np.count_nonzero(differ)} differ)")
    if differ.any():
        pairs, counts = np.unique(np.stack([reference[differ], other[differ]]), axis=1, return_counts=True)
        for (ref, oth), count in zip(pairs.T, counts):
            print(f"    {CLASS_LABELS[int(ref)]} -> {CLASS_LABELS[int(oth)]}: {count}")
    return agree


def print_jax_agreement(cython_map: ds.ConvergenceMap, jax_run: JaxRun) -> None:
    """JAX's outcomes and decided steps against the Cython map of the same spec, and JAX's useful rate."""
    cython_classes = outcome_class(cython_map.outcome)
    print_agreement("jax vs cython", cython_classes, jax_run.outcome)
    same = (cython_classes != UNDECIDED) & (cython_classes == jax_run.outcome)
    steps_equal = np.mean(jax_run.decided_step[same] == cython_map.fields["steps"][same]) if same.any() else 1.0
    print(f"  jax vs cython: decided step equal at {steps_equal:.6f} of the points decided alike")
    useful = int(np.minimum(jax_run.decided_step, cython_map.spec.steps).sum())
    print(f"  jax useful rate (sum of its decided steps / wall): {useful / jax_run.measurement.wall_s:.3e} steps/s")


def print_jax_status(jax: ModuleType | None, skipped: bool, chunk_rows: int) -> None:
    if skipped:
        print("JAX: skipped (--skip-jax)")
    elif jax is None:
        print("JAX: not installed (import jax failed), skipped; pip install jax to include it")
    else:
        print(f"JAX {jax.__version__} on {jax.devices()[0]}, chunks of {chunk_rows} rows")


# ---- command line --------------------------------------------------------------------------------


def argument_parser(description: str, grid: int, steps: int, jax_chunk_rows: int) -> argparse.ArgumentParser:
    """The options both benchmarks take, with their own defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--grid", type=int, default=grid, help=f"points per axis of the map (default {grid})")
    parser.add_argument("--steps", type=int, default=steps, help=f"gradient steps per trajectory (default {steps})")
    parser.add_argument(
        "--threads", type=int, default=available_cores(), help="Cython OpenMP threads (default: available cores)"
    )
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated precisions (float32,float64)")
    parser.add_argument("--skip-jax", action="store_true", help="do not run the JAX version")
    parser.add_argument("--jax-chunk-rows", type=int, default=jax_chunk_rows,
                        help=f"grid rows per JAX call (default {jax_chunk_rows})")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per engine; the best is kept (default 1)")
    return parser


def parse_checked(parser: argparse.ArgumentParser, argv: list[str] | None, sizes: tuple[str, ...] = (),
                  steps: tuple[str, ...] = ()) -> argparse.Namespace:
    """Parse, split --dtypes, and check that the common sizes and ``sizes`` are >= 1, ``steps`` >= 0."""
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for dtype in args.dtypes:
        if dtype not in ("float32", "float64"):
            parser.error(f"unknown dtype {dtype!r}; use float32 and/or float64")
    if min(getattr(args, name) for name in ("grid", "threads", "repeats", "jax_chunk_rows", *sizes)) < 1 or min(
        getattr(args, name) for name in ("steps", *steps)
    ) < 0:
        parser.error("sizes, threads and repeats must be >= 1 and steps >= 0")
    return args


def bench_engines(args: argparse.Namespace, dtype: str, jax: ModuleType | None,
                  make_spec: Callable[[int, int, str], ds.MapSpec],
                  jax_map_fn: Callable[[ModuleType, ds.MapSpec], Callable]) -> list[Measurement]:
    """Time Cython (``args.grid``), NumPy (``args.numpy_grid``) and, when present, JAX on the maps
    ``make_spec(grid, steps, dtype)`` in one precision, printing outcomes and agreement checks as it goes."""
    spec = make_spec(args.grid, args.steps, dtype)
    small = make_spec(args.numpy_grid, args.steps, dtype)
    cython, cython_map, reference = time_cython_and_reference(spec, small, args.threads, args.repeats)
    if jax is None:
        return [cython, reference]
    jax_run = time_jax(jax, spec, jax_map_fn(jax, spec), args.jax_chunk_rows, args.repeats)
    print(f"  jax {args.grid}×{args.grid}: compile {jax_run.compile_s:.3f} s, run {jax_run.measurement.wall_s:.3f} s; "
          f"{class_fractions(jax_run.outcome)}")
    print_jax_agreement(cython_map, jax_run)
    return [cython, reference, jax_run.measurement]
