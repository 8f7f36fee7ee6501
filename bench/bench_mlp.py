"""Throughput of the mlp convergence map: descentsim's Cython and NumPy engines against JAX, in GFLOP/s.

What it measures
----------------
The map is the picture of Sohl-Dickstein (2024), "The boundary of neural network trainability is
fractal": the ``mlp`` model at its defaults (width 16, d = 16, n_data = 272 = the number of
parameters, φ(z) = tanh(√2·z), seed 0), trained by full-batch gradient descent with lr = 1 and the
per-layer rates lr1 (input layer W1, x axis) and lr2 (output layer W2, y axis), both log-spaced over
``LR_RANGE`` = 1..1e3, 500 steps, 64 × 64 points by default.

Why 1..1e3: in the mean-field parameterisation (out = h·W2/width) the gradients are small, so the
rates that train are large. On 1e-2..1e2 every point is still training after 500 steps (no
divergence at all); on 1..1e3 the trainability boundary crosses the map: lr2 above ≈ 50–150 diverges
(the threshold falls as lr1 grows), about 25 % of the points. No point reaches L <= 1e-8 within 500
steps (the best losses are ≈ 1e-2), so the classes seen are diverged and undecided (still training).

For each precision (float32, float64) it times

* the **Cython** engine (``backend="cython"``, OpenMP over grid points, stopping a trajectory once it
  is decided) on the full grid;
* the **NumPy** reference (``backend="numpy"``), which loops in Python over the data points and the
  input dimension and is very slow, on a tiny grid (2 × 2) spanning the same ranges with few steps
  (20), checked against the Cython engine on the same grid;
* with ``--fast``, the **Cython** engine again with ``arithmetic = "fast"`` (multiply-adds fused where the CPU
  has FMA; ``descentsim._kernels_fast``), on the same grid in the same run: its outcomes against exact's (all
  points, and the settled ones of ``descentsim.agreement``) and its speed-up over exact, by wall time and by CPU
  time (on a shared machine the CPU time is the steadier measure);
* a plain **JAX** version: the loss written with ``jnp`` (two matmuls and ``jnp.tanh``),
  ``jax.value_and_grad`` over (W1, W2), a ``jax.lax.scan`` over t = 0..steps carrying (W1, W2, L_0,
  outcome, decided step) with the same diverge / converge rules (a decided network is frozen with
  ``where``; nothing is stacked per step), ``jax.vmap`` over grid points (each its own lr1, lr2; X, y
  and the initial W1, W2 shared, from ``descentsim.problem(spec)``), ``jax.jit``, compiled ahead of
  time (compile time printed separately), warmed up once, then timed over the whole grid in chunks
  of ``--jax-chunk-rows`` grid rows. Its outcomes: diverged at the first t with L_t non-finite or
  > 1e6·L_0, converged once L_t <= 1e-8 for converge_window steps in a row, else undecided
  (descentsim's stuck / cycling / unresolved).
  Small chunks run fastest on a 2-core machine: 1–2 rows (64–128 networks) at about the same
  rate, 8–64 rows 1.3–1.5× slower (the per-chunk intermediates, n_data × width per network,
  leave the cache); the default is 2 rows (``--jax-chunk-rows``).

FLOP count (per network step = one loss-and-gradient evaluation and update of one network), from
the sizes (width w, input dimension d, n_data n, P = d·w + w parameters), per data point:

* forward X·W1: 2·d·w; scale by 1/√d and by √2: 2·w; output h·W2: 2·w, then /√w/√w, − y: 3;
  loss e², accumulated: 2;
* backward: g = 2e/n/√w/√w: 4; ∂L/∂W2 += g·h: 2·w; to the hidden layer g·W2: w;
  φ' = √2·(1 − h²) and its product: 4·w; /√d: w; ∂L/∂W1 += X·dz: 2·d·w;

so n·(4·d·w + 12·w + 9) + 1 (the mean) + 2·P (the update θ − η·g): 333,745 FLOP at the defaults, of
which 295,936 are the four matmul-like sums (2·n·d·w twice, 2·n·w twice). **tanh is not counted**:
the n·w = 4,352 tanh evaluations per step are reported beside it (descentsim's tanh is a Cephes
rational function, ≈ 15–20 FLOP each; counting them so would add ≈ 70–90 kFLOP, ≈ 420 kFLOP in all).
The same count is used for every engine, whatever it actually executes. GFLOP/s = FLOP per step ×
network-steps actually run / wall time (descentsim's early exit runs fewer steps than the nominal
map; steps are counted as updates, so a trajectory decided at t counts t although t + 1 losses were
evaluated: a small undercount, on diverged points only).

Rates are in network-steps per second: *nominal* = grid points × steps / wall (the map-equivalent
rate, comparable between engines with and without early exit), *actual* = steps actually run / wall.
JAX runs every step of every network, so its actual rate is its nominal.

The machine's peak is estimated by measurement, not from the data sheet: the best of a few
``np.dot`` of 2048 × 2048 matrices (OpenBLAS, all cores) in float32 and float64, 2·n³ FLOP each;
each engine's GFLOP/s is printed as a fraction of that practical BLAS peak of its precision. The same is
printed by CPU time (``time.process_time``, all threads): the map's FLOP per CPU-second over np.dot's, one
core's worth of each, which other work on a shared machine disturbs less than the wall time (a few per cent of
the map's CPU time can be OpenBLAS's idle threads spinning, which lowers it a little).

The JAX outcomes are compared with the Cython map of the same precision (the fraction of points in
the same class). Disagreements are expected at a fraction of a percent: XLA sums in its own order and
uses its own tanh, so trajectories near the boundary can end differently.

Finally the wall time of a 512 × 512 map (``--extrapolate-grid``) with the same steps is
**extrapolated** for the Cython engine from the measured wall time, scaled by the number of points
(the same ranges, so about the same fraction of early exits); it is not timed.

How to run
----------
    python bench/bench_mlp.py                       # 64×64 map, 500 steps, both precisions, JAX
    python bench/bench_mlp.py --grid 32 --dtypes float32 --skip-jax
    python bench/bench_mlp.py --skip-jax --fast --repeats 3   # exact against fast arithmetic
    python bench/bench_mlp.py --help

Everything at the defaults takes about 3–4 minutes on a 2-core machine. Timings on a shared machine
are noisy; ``--repeats N`` keeps the best of N timed runs (of the Cython, NumPy and JAX map runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from types import ModuleType
from typing import Callable

import numpy as np

import descentsim as ds
from common import (
    UNDECIDED,
    Measurement,
    argument_parser,
    class_fractions,
    import_jax,
    jax_rules,
    jax_rules_start,
    outcome_class,
    parse_checked,
    print_jax_agreement,
    print_jax_status,
    time_cython_and_reference,
    time_descentsim,
    time_jax,
)
from descentsim.agreement import compare_outcomes
from descentsim.map_data import package_version
from descentsim.threads import available_cores

#: Both axes, log-spaced: lr1 (input layer) on x, lr2 (output layer) on y; lr = 1.
LR_RANGE = (1.0, 1e3)
SQRT2 = float(np.sqrt(2.0))


# ---- the map and its FLOP count ------------------------------------------------------------------


def mlp_map_spec(grid: int, steps: int, dtype: str) -> ds.MapSpec:
    """The benchmarked map on a ``grid`` × ``grid`` lattice: lr1 (x) and lr2 (y) log over LR_RANGE, lr = 1."""
    lo, hi = LR_RANGE
    return ds.MapSpec(
        model="mlp",
        x=ds.Axis("lr1", lo, hi, grid, scale="log"),
        y=ds.Axis("lr2", lo, hi, grid, scale="log"),
        steps=steps,
        params={"lr": 1.0},
        dtype=dtype,
    )


def mlp_sizes(spec: ds.MapSpec) -> tuple[int, int, int]:
    """(width, d, n_data) of the map's network, read off ``descentsim.problem(spec)``."""
    pb = ds.problem(spec)
    d, n_data = pb.data.shape[0] - 1, pb.data.shape[1]
    width = pb.theta0.shape[1] // (d + 1)
    return width, d, n_data


def flop_count(width: int, d: int, n_data: int) -> dict[str, int]:
    """FLOP per network step, by part (the module docstring derives it); tanh evaluations apart, not counted."""
    w, n, p = width, n_data, d * width + width
    matmul = n * (2 * d * w + 2 * w + 2 * w + 2 * d * w)  # X·W1, h·W2, ∂L/∂W2 = Σ g·h, ∂L/∂W1 = Σ X·dz
    elementwise = n * (2 * w + 3 + 2 + 4 + w + 4 * w + w) + 1  # scales, e, loss, g, g·W2, φ', /√d; the mean
    update = 2 * p  # θ − η·g
    return {"matmul": matmul, "elementwise": elementwise, "update": update,
            "total": matmul + elementwise + update, "tanh": n * w}


# ---- JAX -----------------------------------------------------------------------------------------


def jax_mlp_map_fn(jax: ModuleType, spec: ds.MapSpec) -> Callable:
    """A function (lr1, lr2) → (outcome, decided_step) over a batch of grid points, vmapped but not jitted.

    Per point: ``jax.lax.scan`` over t = 0..steps evaluating L_t and its gradient in (W1, W2)
    (``jax.value_and_grad``), deciding the outcome by the simplified rules and updating
    W1 ← W1 − lr·lr1·∂L/∂W1, W2 ← W2 − lr·lr2·∂L/∂W2 while undecided and t < steps. X, y and the
    initial W1, W2 are constants shared by every point.
    """
    jnp = jax.numpy
    dtype = jnp.dtype(spec.dtype)
    rules = spec.resolved_thresholds
    pb = ds.problem(spec)
    width, d, n_data = mlp_sizes(spec)
    if spec.params.get("nonlinearity", "tanh") != "tanh":
        raise ValueError("the JAX version is written for φ = tanh only")
    x = jnp.asarray(pb.data[:d].T, dtype=dtype)  # (n_data, d)
    y = jnp.asarray(pb.data[d], dtype=dtype)
    w1_0 = jnp.asarray(pb.theta0[0, : d * width].reshape(d, width), dtype=dtype)
    w2_0 = jnp.asarray(pb.theta0[0, d * width :], dtype=dtype)
    inv_sqrt_d, sqrt_width = (jnp.asarray(v, dtype=dtype) for v in (1 / np.sqrt(d), np.sqrt(width)))  # as the consts
    sqrt2 = jnp.asarray(SQRT2, dtype=dtype)
    lr = float(spec.params.get("lr", 1.0))
    steps = spec.steps

    def loss(params):
        w1, w2 = params
        h = jnp.tanh(sqrt2 * ((x @ w1) * inv_sqrt_d))
        error = (h @ w2) / sqrt_width / sqrt_width - y
        return jnp.mean(error * error)

    loss_and_grad = jax.value_and_grad(loss)

    def trajectory(lr1, lr2):
        eta1, eta2 = lr * lr1, lr * lr2

        def step(carry, t):
            w1, w2, decision = carry
            loss_t, (g1, g2) = loss_and_grad((w1, w2))
            decision = jax_rules(jnp, rules, t, loss_t, decision)
            go = (decision[1] == UNDECIDED) & (t < steps)
            w1 = jnp.where(go, w1 - eta1 * g1, w1)
            w2 = jnp.where(go, w2 - eta2 * g2, w2)
            return (w1, w2, decision), None

        start = (w1_0, w2_0, jax_rules_start(jnp, dtype, steps))
        (_, _, (_, outcome, decided_step, _)), _ = jax.lax.scan(step, start, jnp.arange(steps + 1, dtype=jnp.int32))
        return outcome, decided_step

    return jax.vmap(trajectory)


def xla_flop_estimate(compiled) -> float | None:
    """The 'flops' of XLA's cost analysis of a compiled function (a while loop's body counted once), or None."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # not every backend / version offers it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    return float(analysis["flops"])


# ---- the machine ---------------------------------------------------------------------------------


def matmul_peak(dtype: str, size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best GFLOP/s of ``np.dot`` on two ``size`` × ``size`` matrices of ``dtype`` (2·size³ FLOP a call): per
    second of wall time (all cores), and per second of CPU time (one core's worth)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    np.dot(a, b)  # warm-up (threads, pages)
    best = best_cpu = np.inf
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        np.dot(a, b)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
    return 2 * size**3 / best / 1e9, 2 * size**3 / best_cpu / 1e9


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---- report --------------------------------------------------------------------------------------


def print_table(rows: list[Measurement], peaks: dict[str, tuple[float, float]]) -> None:
    """The measurements, with GFLOP/s as a fraction of the matmul peak (by wall and by CPU time) and Cython's
    nominal rate over JAX's."""
    header = (
        f"{'engine':<8}{'arith':<7}{'dtype':<9}{'grid':>8}{'steps':>7}{'wall s':>10}{'nominal st/s':>14}"
        f"{'actual st/s':>13}{'GFLOP/s':>9}{'of peak':>9}{'CPU s':>8}{'of peak':>9}{'ds/JAX':>8}"
    )
    print(header)
    print("-" * len(header))
    jax_rows = {m.dtype: m for m in rows if m.engine == "jax"}
    for m in rows:
        ratio = ""
        if m.engine == "cython" and m.dtype in jax_rows:
            ratio = f"{m.nominal_rate / jax_rows[m.dtype].nominal_rate:.2f}"
        grid = f"{m.shape[0]}×{m.shape[1]}"
        peak = f"{m.gflops / peaks[m.dtype][0]:.1%}" if m.dtype in peaks else ""
        cpu = f"{m.cpu_s:.2f}" if m.cpu_s else ""
        cpu_peak = (f"{m.steps_run * m.flop_per_step / m.cpu_s / 1e9 / peaks[m.dtype][1]:.1%}"
                    if m.cpu_s and m.dtype in peaks else "")
        print(
            f"{m.engine:<8}{m.arithmetic or '-':<7}{m.dtype:<9}{grid:>8}{m.budget:>7}{m.wall_s:>10.3f}"
            f"{m.nominal_rate:>14.3e}{m.actual_rate:>13.3e}{m.gflops:>9.2f}{peak:>9}{cpu:>8}{cpu_peak:>9}{ratio:>8}"
        )


# ---- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__.split("\n\n")[0], grid=64, steps=500, jax_chunk_rows=2)
    parser.add_argument("--numpy-grid", type=int, default=2, help="points per axis for the NumPy reference (2)")
    parser.add_argument("--numpy-steps", type=int, default=20, help="steps for the NumPy reference (20)")
    parser.add_argument("--extrapolate-grid", type=int, default=512,
                        help="grid whose Cython wall time is extrapolated from the measured one (512)")
    parser.add_argument("--fast", action="store_true",
                        help='also time the Cython engine with arithmetic = "fast" and compare it with exact')
    return parse_checked(parser, argv, sizes=("numpy_grid", "extrapolate_grid"), steps=("numpy_steps",))


def bench_precision(args: argparse.Namespace, dtype: str, jax: ModuleType | None, flop: int) -> list[Measurement]:
    """Time every engine in one precision, printing outcomes and agreement checks as it goes."""
    spec = mlp_map_spec(args.grid, args.steps, dtype)
    small = mlp_map_spec(args.numpy_grid, args.numpy_steps, dtype)
    cython, cython_map, reference = time_cython_and_reference(spec, small, args.threads, args.repeats, flop)
    rows = [cython, reference] + ([time_fast(args, spec, cython, cython_map, flop)] if args.fast else [])
    if jax is None:
        return rows

    jax_run = time_jax(jax, spec, jax_mlp_map_fn(jax, spec), args.jax_chunk_rows, args.repeats, flop)
    print(f"  jax {args.grid}×{args.grid} (chunks of {args.jax_chunk_rows} rows): compile {jax_run.compile_s:.3f} s, "
          f"run {jax_run.measurement.wall_s:.3f} s; {class_fractions(jax_run.outcome)}")
    xla_flop = xla_flop_estimate(jax_run.compiled)
    if xla_flop is not None:
        chunk_points = min(args.jax_chunk_rows, args.grid) * args.grid
        print(f"  XLA cost analysis of one chunk: {xla_flop:.4g} FLOP = "
              f"{xla_flop / chunk_points:,.0f} per network (the scan body counted once; cf. {flop:,})")
    print_jax_agreement(cython_map, jax_run)
    return [*rows, jax_run.measurement]


def time_fast(args: argparse.Namespace, spec: ds.MapSpec, exact: Measurement, exact_map: ds.ConvergenceMap,
              flop: int) -> Measurement:
    """Time the Cython engine on ``spec`` with arithmetic = "fast", printing its outcomes against the exact map's
    and its speed-up over exact (``exact``) by wall and by CPU time."""
    fast, fast_map = time_descentsim(spec.replace(arithmetic="fast"), "cython", args.threads, args.repeats, flop)
    agreement = compare_outcomes(exact_map.outcome, fast_map.outcome)
    print(f"  cython fast {spec.shape[0]}×{spec.shape[1]}: {fast.wall_s:.3f} s; "
          f"{class_fractions(outcome_class(fast_map.outcome))}")
    print(f"  fast vs exact: outcome the same at {agreement.fraction:.4%} of the points, at "
          f"{agreement.settled_fraction:.4%} of the {agreement.settled} settled ones; speed-up "
          f"{exact.wall_s / fast.wall_s:.2f}x by wall time, {exact.cpu_s / fast.cpu_s:.2f}x by CPU time")
    return fast


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    jax = None if args.skip_jax else import_jax(enable_x64="float64" in args.dtypes)
    spec = mlp_map_spec(args.grid, args.steps, args.dtypes[0])
    width, d, n_data = mlp_sizes(spec)
    flops = flop_count(width, d, n_data)
    lo, hi = LR_RANGE
    print(f"mlp map: lr1 (x) and lr2 (y) log {lo:g}..{hi:g}, lr = 1, {args.steps} steps, {args.grid}×{args.grid}; "
          f"width {width}, d {d}, n_data {n_data}, {d * width + width} parameters, tanh")
    print(f"FLOP per network step: {flops['total']:,} (matmuls {flops['matmul']:,}, elementwise "
          f"{flops['elementwise']:,}, update {flops['update']:,}); plus {flops['tanh']:,} tanh, not counted")
    print(f"descentsim {package_version()}; Cython threads: {args.threads} (available cores: {available_cores()}, "
          f"os.cpu_count {os.cpu_count()}); CPU: {cpu_model()}")
    print_jax_status(jax, args.skip_jax, args.jax_chunk_rows)
    peaks = {dtype: matmul_peak(dtype) for dtype in args.dtypes}
    print("practical peak, np.dot 2048×2048 (best of 5): "
          + ", ".join(f"{dtype} {gf:.1f} GFLOP/s ({cpu:.1f} per CPU-second)" for dtype, (gf, cpu) in peaks.items()))
    print()

    rows: list[Measurement] = []
    for dtype in args.dtypes:
        print(f"== {dtype} ==")
        rows.extend(bench_precision(args, dtype, jax, flops["total"]))
        print()

    print_table(rows, peaks)
    print("\nst/s = network-steps per second: nominal = grid points × steps / wall; actual = steps actually run / wall "
          "(JAX runs every step: actual = nominal). GFLOP/s from the actual steps and the FLOP count above (tanh "
          "not counted); 'of peak' = GFLOP/s / the np.dot figure of that precision; CPU s and the second 'of peak': "
          "the same by CPU time (GFLOP per CPU-second / np.dot's, one core's worth: steadier on a shared machine). "
          "ds/JAX = Cython nominal / JAX "
          "nominal. NumPy runs on its own tiny grid with fewer steps.")

    big = args.extrapolate_grid
    print(f"\n{big}×{big} map, {args.steps} steps, Cython, {args.threads} threads — EXTRAPOLATED from the "
          f"{args.grid}×{args.grid} wall time × {big * big / args.grid**2:g} points ratio, not timed:")
    for m in rows:
        if m.engine == "cython":
            estimate = m.wall_s * big * big / m.points
            print(f"  {m.dtype}, {m.arithmetic}: ≈ {estimate:.0f} s ({estimate / 60:.1f} min)")
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
