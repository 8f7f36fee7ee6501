"""The GPU engine against JAX on the same GPU, in one run: the maps of issue 13 at the sizes a time budget allows.

Maps (``--maps``):

* ``sd``: Sohl-Dickstein's map (bench_mlp.py: the ``mlp`` preset, width 16, 272 parameters, tanh(√2·z),
  lr1 × lr2 log over 1..1e3, full batch), up to 1024² × 1000 steps: network-steps/s and TFLOP/s (bench_mlp's
  ``flop_count``) for each precision and arithmetic, against bench_mlp's JAX ``vmap``;
* ``quadratic``: L = ½·a·w² on lr × a, up to 4096² × 1000 steps: trajectory-steps/s (issue 13's target,
  6.5·10⁹/s, is ten times the 6.5·10⁸/s Liu reports for a V100), against a JAX ``vmap`` of the same loss;
* ``relu``: bench_relu_neuron.py's map against its JAX version;
* ``digits``: bench_network.py's digits map (examples/digits_collapse.toml) against its JAX version.

Each map is first run on a probe grid to measure the engine's rate; the timed grid is then the largest (a multiple
of 64, at most the map's full size) that the rate says fits ``--budget-s`` seconds, and JAX runs the same grid.
Where the timed grid is smaller than the full one, the full frame's time is printed as an extrapolation of the
measured rate (marked so), never as a measurement. The exact engine's map is also checked bit for bit against the
CPU engine on a small grid.

    python bench/bench_gpu.py                        # every map, float64 and float32, exact and fast
    python bench/bench_gpu.py --maps sd --budget-s 60
    python bench/bench_gpu.py --backend gpu-host --maps quadratic --budget-s 2 --skip-jax   # the logic, no GPU
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# JAX shares the GPU with descentsim: it takes memory as it needs it instead of 75 % of it when it starts
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import descentsim as ds  # noqa: E402
from descentsim.map_data import package_version  # noqa: E402
from bench_mlp import flop_count, jax_mlp_map_fn, mlp_map_spec, mlp_sizes  # noqa: E402
from bench_network import digits_flop_count, digits_map_spec, jax_digits_map_fn  # noqa: E402
from bench_relu_neuron import jax_relu_map_fn, relu_map_spec  # noqa: E402
from common import (class_fractions, fields_identical, import_jax, jax_scalar_gd, outcome_class,  # noqa: E402
                    print_agreement, time_descentsim, time_jax)

#: Liu's V100 rate for the quadratic map (trajectory-steps/s), and issue 13's target, ten times it.
LIU_V100_RATE = 6.5e8
QUADRATIC_TARGET = 10 * LIU_V100_RATE


def quadratic_map_spec(grid: int, steps: int, dtype: str) -> ds.MapSpec:
    """L = ½·w² (a = 1) on lr (x, 0.01..2.2) × w0 (y, −2..2): the boundary lr = 2 crosses the map, and points near
    it run every step."""
    return ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.01, 2.2, grid), y=ds.Axis("w0", -2.0, 2.0, grid),
                      steps=steps, dtype=dtype)


def jax_quadratic_map_fn(jax: ModuleType, spec: ds.MapSpec) -> Callable:
    """(lr, w0) → (outcome, decided step): bench/common.py's scalar JAX gradient descent on ½·w²."""
    return jax_scalar_gd(jax, spec, lambda w: 0.5 * w * w)


@dataclass(frozen=True)
class MapKind:
    """A benchmarked map: its spec maker, full size, JAX version and FLOP per step (0: not counted)."""

    make: Callable[[int, int, str], ds.MapSpec]
    full_grid: int
    steps: int
    jax_fn: Callable[[ModuleType, ds.MapSpec], Callable]
    flop: Callable[[ds.MapSpec], int]
    unit: str


def _sd_flop(spec: ds.MapSpec) -> int:
    return flop_count(*mlp_sizes(spec))["total"]


MAPS = {
    "sd": MapKind(mlp_map_spec, 1024, 1000, jax_mlp_map_fn, _sd_flop, "network"),
    "quadratic": MapKind(quadratic_map_spec, 4096, 1000, jax_quadratic_map_fn, lambda spec: 0, "trajectory"),
    "relu": MapKind(relu_map_spec, 2048, 1000, jax_relu_map_fn, lambda spec: 0, "trajectory"),
    "digits": MapKind(digits_map_spec, 256, 200, jax_digits_map_fn, lambda spec: digits_flop_count(spec)["total"],
                      "network"),
}


def with_arithmetic(spec: ds.MapSpec, arithmetic: str) -> ds.MapSpec:
    return spec if arithmetic == "exact" else spec.replace(arithmetic=arithmetic)


def timed_grid(rate: float, steps: int, budget_s: float, full: int, probe: int) -> int:
    """The largest grid (a multiple of 64, probe at least, full at most) whose nominal work the measured rate
    (nominal steps/s) does in budget_s."""
    fits = math.sqrt(max(rate, 1.0) * budget_s / max(steps, 1))
    return int(min(full, max(probe, 64 * int(fits // 64))))


@dataclass
class Row:
    map: str
    dtype: str
    arithmetic: str
    grid: int
    steps: int
    wall_s: float
    actual_rate: float
    nominal_rate: float
    tflops: float
    jax_s: float | None
    full_s: float
    measured_full: bool
    bit_identical: bool | None


def bench_one(name: str, kind: MapKind, dtype: str, arithmetic: str, args: argparse.Namespace,
              jax: ModuleType | None) -> Row:
    steps = args.steps if args.steps is not None else kind.steps
    probe_spec = with_arithmetic(kind.make(args.probe_grid, steps, dtype), arithmetic)
    probe, _ = time_descentsim(probe_spec, args.backend, 1, 1)
    grid = timed_grid(probe.nominal_rate, steps, args.budget_s, kind.full_grid, args.probe_grid)
    spec = with_arithmetic(kind.make(grid, steps, dtype), arithmetic)
    flop = kind.flop(spec)
    measured, conv_map = time_descentsim(spec, args.backend, 1, args.repeats, flop)
    print(f"  {args.backend} {grid}²×{steps}: {measured.wall_s:.3f} s; {class_fractions(outcome_class(conv_map.outcome))}"
          f"; {measured.actual_rate:.3e} {kind.unit}-steps/s run"
          + (f", {measured.gflops / 1e3:.3f} TFLOP/s" if flop else ""))
    identical = None
    if arithmetic == "exact":  # the GPU's bits against the CPU engine's on a small grid
        small = kind.make(args.check_grid, min(steps, 200), dtype)
        identical = fields_identical(ds.run_map(small, backend=args.backend), ds.run_map(small, backend="cython"))
        print(f"  {args.backend} vs cython ({args.check_grid}²×{small.steps}): fields bit-identical: {identical}")
    jax_s = None
    if jax is not None:
        chunk_rows = max(1, args.jax_chunk_points // grid)
        jax_run = time_jax(jax, spec, kind.jax_fn(jax, spec), chunk_rows, args.repeats, flop)
        jax_s = jax_run.measurement.wall_s
        print(f"  jax {grid}²×{steps}: compile {jax_run.compile_s:.2f} s, run {jax_s:.3f} s; "
              f"descentsim/JAX speed {jax_s / measured.wall_s:.2f}×")
        print_agreement("jax vs descentsim", outcome_class(conv_map.outcome), jax_run.outcome)
    full_points = kind.full_grid ** 2
    full_s = measured.wall_s * full_points / (grid * grid)
    return Row(name, dtype, arithmetic, grid, steps, measured.wall_s, measured.actual_rate, measured.nominal_rate,
               measured.gflops / 1e3, jax_s, full_s, grid == kind.full_grid, identical)


def print_report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\n== report ({args.backend}) ==")
    print(f"{'map':<10}{'dtype':<9}{'arith':<7}{'grid×steps':>13}{'wall s':>9}{'steps/s run':>13}{'TFLOP/s':>9}"
          f"{'JAX s':>9}{'ds/JAX':>8}{'full frame s':>17}{'bits':>6}")
    for r in rows:
        jax = f"{r.jax_s:9.3f}{r.jax_s / r.wall_s:8.2f}" if r.jax_s is not None else f"{'—':>9}{'—':>8}"
        full = f"{r.full_s:.1f}" + ("" if r.measured_full else " (extrap.)")
        bits = {True: "same", False: "DIFF", None: "—"}[r.bit_identical]
        print(f"{r.map:<10}{r.dtype:<9}{r.arithmetic:<7}{f'{r.grid}²×{r.steps}':>13}{r.wall_s:9.3f}"
              f"{r.actual_rate:13.3e}{(f'{r.tflops:.3f}' if r.tflops else '—'):>9}{jax}{full:>17}{bits:>6}")
    for r in rows:
        if r.map == "quadratic":
            print(f"quadratic {r.dtype} {r.arithmetic}: {r.actual_rate:.3e} trajectory-steps/s run; target "
                  f"{QUADRATIC_TARGET:.2e} (10 × Liu's V100): {'met' if r.actual_rate >= QUADRATIC_TARGET else 'not met'}")
        if r.map == "sd" and r.dtype == "float64":
            frame = r.full_s * (4096 / MAPS["sd"].full_grid) ** 2 * 1000 / r.steps
            target = 6 if r.arithmetic == "fast" else 12
            print(f"sd float64 {r.arithmetic}: a 4096²×1000 frame would take {frame / 60:.1f} min at the measured "
                  f"nominal rate (extrapolated; target < {target} min)")
    print("steps/s run = updates actually run (decided trajectories stop) / wall; full frame = the map's full grid at "
          "the measured rate; bits = exact map bit-identical to the CPU engine; ds/JAX = JAX wall / descentsim wall.")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--maps", default="sd,quadratic,relu,digits", help="comma-separated: sd, quadratic, relu, digits")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--arithmetic", default="exact,fast", help="comma-separated: exact, fast")
    parser.add_argument("--backend", default="cupy", help="descentsim engine (default cupy)")
    parser.add_argument("--budget-s", type=float, default=15.0, help="seconds each timed descentsim map aims at")
    parser.add_argument("--probe-grid", type=int, default=64, help="grid of the rate probe (default 64)")
    parser.add_argument("--check-grid", type=int, default=32, help="grid of the bit-identity check (default 32)")
    parser.add_argument("--steps", type=int, default=None, help="steps per trajectory (default: each map's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-jax", action="store_true")
    parser.add_argument("--jax-chunk-points", type=int, default=1 << 18, help="grid points per JAX call")
    parser.add_argument("--one-thread", action="store_true",
                        help="networks in the one-thread kernel, not the cooperative layout (a group of threads a "
                             "network, ext/coop.h), to compare the two")
    parser.add_argument("--until", type=float, default=math.inf,
                        help="a deadline (seconds since the epoch): maps not started by then are skipped")
    args = parser.parse_args(argv)
    args.maps = [m for m in args.maps.split(",") if m]
    unknown = [m for m in args.maps if m not in MAPS]
    if unknown:
        parser.error(f"unknown maps {unknown}; choose from {sorted(MAPS)}")
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.arithmetic = [a for a in args.arithmetic.split(",") if a]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.one_thread:
        from descentsim.backends import gpu

        gpu.COOP_MIN_PARAMETERS = False
    jax = None if args.skip_jax else import_jax(enable_x64="float64" in args.dtypes)
    print(f"descentsim {package_version()} on {args.backend} "
          f"({'one thread' if args.one_thread else 'a cooperative group of threads'} a network); "
          f"JAX {'absent or skipped' if jax is None else jax.__version__ + ' on ' + str(jax.devices()[0])}")
    rows = []
    started = time.perf_counter()
    for name in args.maps:
        for dtype in args.dtypes:
            for arithmetic in args.arithmetic:
                print(f"== {name} {dtype} {arithmetic} ==")
                if time.time() > args.until:
                    print("  skipped: the time budget is spent")
                    continue
                try:
                    rows.append(bench_one(name, MAPS[name], dtype, arithmetic, args, jax))
                except ds.SpecError as exc:  # e.g. arithmetic not known to this build
                    print(f"  skipped: {exc}")
    print_report(rows, args)
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
