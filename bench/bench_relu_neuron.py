"""Throughput of the relu-neuron convergence map: descentsim's Cython and NumPy engines against JAX.

What it measures
----------------
The map trains one ReLU neuron ŷ = a·relu(w·x + b) + c on y = relu(x) per grid point, with full-batch
gradient descent on L = ½·mean((ŷ − y)²) (relu'(0) = 0), only w trainable (b = 0, a = 1, c = 0):
learning rate ``lr`` log-spaced over 1e-2..10 on x, initial weight ``w0`` over −3..3 on y, 1000 steps,
64 samples x = default_rng(0).standard_normal(64) shared by every point.

For each precision (float32, float64) it times

* the **Cython** engine (``backend="cython"``, OpenMP over grid points) on the full grid;
* the **NumPy** reference (``backend="numpy"``), which is slow, on a smaller grid spanning the same ranges;
* a plain **JAX** version (when ``import jax`` works): ``jax.vmap`` over grid points of a ``jax.lax.scan``
  over the steps, with ``jax.value_and_grad`` and the GD update. The scan carries w, L_0, the outcome
  and the step it was decided at; a decided trajectory is frozen with ``where`` (no early exit), and
  no per-step values are stacked. It is jitted, compiled ahead of time (compile time printed
  separately), warmed up on one chunk, then timed over the whole grid, processed in chunks of rows.
  Its outcomes use the simplified rules: diverged at the first t with L_t non-finite or
  > 1e6·L_0, converged once L_t <= 1e-8 for converge_window steps in a row, else undecided
  (descentsim's stuck / cycling / unresolved).
  The chunk size matters (several-fold on a 2-core machine): chunks whose (points × samples)
  intermediates fit in cache run fastest; the default is 16 rows of 512 points.

Rates are in trajectory-steps per second (one trajectory-step = one loss-and-gradient evaluation
and update for one grid point):

* *nominal* = grid points × steps / wall time, the map-equivalent rate, comparable between engines
  with and without early exit;
* *actual* = updates actually run / wall time. descentsim stops a trajectory once it is decided (sum
  of the ``steps`` field); JAX runs every step of every trajectory, so its actual rate is its nominal.

The JAX outcomes are checked against the Cython map of the same precision (the fraction of points
in the same class: converged, diverged or undecided, and how the others differ), and the NumPy
outcomes against the Cython engine on the same small grid. Expect a fraction of a percent of
disagreements: JAX sums over the samples in XLA's order, not descentsim's, so trajectories that are
sensitive to rounding can end differently. On this map they sit in the chaotic band lr ≈ 5–6, where
w bounces between the live and dead sides before settling (if it does within the budget), and the
outcome flips both ways (converged ↔ undecided). Subnormals are no source of disagreement: XLA on CPU
flushes them to zero, and descentsim sets subnormal parameters to zero after each update.

How to run
----------
    python bench/bench_relu_neuron.py                    # 512×512 map, NumPy on 32×32, JAX if installed
    python bench/bench_relu_neuron.py --grid 128 --dtypes float32 --skip-jax
    python bench/bench_relu_neuron.py --help

JAX is optional (``pip install jax``, the CPU build); without it the JAX rows are skipped with a note.
Timings on a shared machine are noisy; ``--repeats N`` keeps the best of N timed runs.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Callable


import descentsim as ds
from common import Measurement, argument_parser, bench_engines, import_jax, jax_scalar_gd, parse_checked, print_jax_status
from descentsim.map_data import package_version
from descentsim.threads import available_cores

#: Axes of the benchmarked map: (knob, start, stop, scale).
LR_AXIS = ("lr", 1e-2, 10.0, "log")
W0_AXIS = ("w0", -3.0, 3.0, "linear")
SAMPLES = 64
DATA_SEED = 0


def relu_map_spec(grid: int, steps: int, dtype: str) -> ds.MapSpec:
    """The benchmarked map on a ``grid`` × ``grid`` lattice over the fixed lr and w0 ranges."""
    lr_name, lr_start, lr_stop, lr_scale = LR_AXIS
    w0_name, w0_start, w0_stop, w0_scale = W0_AXIS
    return ds.MapSpec(
        model="relu-neuron",
        x=ds.Axis(lr_name, lr_start, lr_stop, grid, scale=lr_scale),
        y=ds.Axis(w0_name, w0_start, w0_stop, grid, scale=w0_scale),
        steps=steps,
        params={"trainable": "w", "samples": SAMPLES, "data_seed": DATA_SEED},
        dtype=dtype,
    )


# ---- JAX -----------------------------------------------------------------------------------------


def jax_relu_map_fn(jax: ModuleType, spec: ds.MapSpec) -> Callable:
    """A function (lr, w0) → (outcome, decided_step) over a batch of grid points, vmapped but not jitted.

    Per point: ``jax.lax.scan`` over t = 0..steps evaluating L_t and ∂L/∂w (``jax.value_and_grad``),
    deciding the outcome by the simplified rules and updating w ← w − lr·∂L/∂w while undecided and
    t < steps. The carry is (w, L_0, outcome, decided_step); nothing is stacked per step.
    """
    jnp = jax.numpy
    dtype = jnp.dtype(spec.dtype)
    model = ds.problem(spec)  # the data (shared: samples and data_seed are fixed in a bench spec)
    x, y = (jnp.asarray(row, dtype=dtype) for row in model.data)
    _, b, a, c = (float(v) for v in model.theta0[0])  # fixed: only w is trainable

    def loss(w):
        z = w * x + b
        hidden = jnp.where(z > 0, z, 0)  # d/dz is [z > 0]: relu'(0) = 0
        error = a * hidden + c - y
        return 0.5 * jnp.mean(error * error)

    return jax_scalar_gd(jax, spec, loss)


# ---- report --------------------------------------------------------------------------------------


def print_table(rows: list[Measurement]) -> None:
    """The measurements, with Cython's nominal rate over JAX's and NumPy's per precision."""
    header = (
        f"{'engine':<8}{'dtype':<9}{'grid':>9}{'wall s':>10}{'nominal steps/s':>17}{'actual steps/s':>16}"
        f"{'Cython/JAX':>12}{'Cython/NumPy':>14}"
    )
    print(header)
    print("-" * len(header))
    cython = {m.dtype: m for m in rows if m.engine == "cython"}
    for m in rows:
        ratios = {}
        if m.engine in ("jax", "numpy") and m.dtype in cython:
            ratios[m.engine] = f"{cython[m.dtype].nominal_rate / m.nominal_rate:.2f}"
        grid = f"{m.shape[0]}×{m.shape[1]}"
        print(
            f"{m.engine:<8}{m.dtype:<9}{grid:>9}{m.wall_s:>10.3f}{m.nominal_rate:>17.3e}{m.actual_rate:>16.3e}"
            f"{ratios.get('jax', ''):>12}{ratios.get('numpy', ''):>14}"
        )


# ---- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0], grid=512, steps=1000, jax_chunk_rows=16)
    parser.add_argument("--numpy-grid", type=int, default=32, help="points per axis for the NumPy reference (32)")
    return parse_checked(parser, argv, sizes=("numpy_grid",))


def run_scalar_benchmark(args: argparse.Namespace, header: str, map_spec: Callable, jax_map_fn: Callable) -> int:
    """Time every engine in every precision of ``args`` on the map ``map_spec`` makes (JAX through
    ``jax_map_fn``), printing ``header``, each precision's outcomes and agreement checks, and the table."""
    jax = None if args.skip_jax else import_jax(enable_x64="float64" in args.dtypes)
    print(header)
    print(f"descentsim {package_version()}; Cython threads: {args.threads} (available cores: {available_cores()})")
    print_jax_status(jax, args.skip_jax, args.jax_chunk_rows)
    print()
    rows: list[Measurement] = []
    for dtype in args.dtypes:
        print(f"== {dtype} ==")
        rows.extend(bench_engines(args, dtype, jax, map_spec, jax_map_fn))
        print()
    print_table(rows)
    print("\nnominal = grid points × steps / wall; actual = updates actually run / wall "
          "(JAX runs every step: actual = nominal). NumPy runs on its own, smaller grid.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_scalar_benchmark(
        args, f"relu-neuron map: lr log {LR_AXIS[1]:g}..{LR_AXIS[2]:g} (x), w0 {W0_AXIS[1]:g}..{W0_AXIS[2]:g} (y), "
        f"{args.steps} steps, {SAMPLES} samples, trainable w", relu_map_spec, jax_relu_map_fn)


if __name__ == "__main__":
    sys.exit(main())
