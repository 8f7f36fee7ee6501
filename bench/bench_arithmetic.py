"""How far arithmetic = "fast" departs from exact: outcome agreement on every example map, and the speed-up.

Every ``examples/*.toml`` is run twice on the compiled engine, with ``arithmetic = "exact"`` and ``"fast"``, at a
modest resolution: each axis of a 2-D map cut to at most ``--n`` points (64), a one-row map to ``--n``² (4096),
the steps as the config has them (``--max-steps`` cuts them). For each map it prints the share of points whose
outcome fast gets the same as exact — all of them, and the *settled* ones (``descentsim.agreement``: the 8
nearest neighbours share the outcome, i.e. outside chaotic bands and off the boundaries, where a last bit can
decide) — how many final losses are bit-identical, and the speed-up of fast by CPU time (``time.process_time``
of the map's run, all threads, after a warm-up run of a few points that pays the first-call costs such as
loading a data set).

How to run (from the repository root; about 6 minutes on a 2-core machine at the defaults)
    python bench/bench_arithmetic.py
    python bench/bench_arithmetic.py --n 32 --only quadratic,mlp_fractal
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import descentsim as ds
from descentsim.agreement import compare_outcomes
from common import time_descentsim
from descentsim.cli import load_config
from descentsim.threads import available_cores

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def modest(path: Path, n: int, max_steps: int | None) -> ds.MapSpec:
    """The example config at ``path`` with its axes cut to ``n`` points (a one-row map to n²), its steps to
    ``max_steps``, and no recorded points."""
    spec = load_config(str(path))
    one_row = spec.y is None
    settings = [f"x.n={min(spec.x.n, n * n if one_row else n)}", "record=[]"]  # recorded curves play no part
    if not one_row:
        settings.append(f"y.n={min(spec.y.n, n)}")
    if max_steps is not None and spec.steps > max_steps:
        settings.append(f"steps={max_steps}")
    return load_config(str(path), settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="points per axis at most (a one-row map: n²; default 64)")
    parser.add_argument("--max-steps", type=int, default=None, help="steps at most (default: the config's)")
    parser.add_argument("--threads", type=int, default=available_cores(), help="OpenMP threads (default: all cores)")
    parser.add_argument("--only", default="", help="comma-separated example names (default: every one)")
    args = parser.parse_args(argv)
    if args.n < 3 or (args.max_steps is not None and args.max_steps < 1):
        parser.error("--n must be >= 3 and --max-steps >= 1")
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    paths = [p for p in sorted(EXAMPLES.glob("*.toml")) if not only or p.stem in only]
    if only - {p.stem for p in paths}:
        parser.error(f"no example {sorted(only - {p.stem for p in paths})}; see {EXAMPLES}")

    header = (f"{'example':<20}{'model':<13}{'dtype':<9}{'grid':>10}{'steps':>6}{'same (all)':>12}{'settled':>9}"
              f"{'same (settled)':>16}{'loss bits =':>12}{'fast/exact CPU':>16}")
    print(header)
    print("-" * len(header))
    worst = 1.0
    for path in paths:
        spec = modest(path, args.n, args.max_steps)
        try:
            exact_run, exact = time_descentsim(spec, "cython", args.threads, 1)
            fast_run, fast = time_descentsim(spec.replace(arithmetic="fast"), "cython", args.threads, 1)
        except ds.DescentsimError as exc:  # e.g. scikit-learn's digits missing
            print(f"{path.stem:<20}skipped: {exc}")
            continue
        agreement = compare_outcomes(exact.outcome, fast.outcome)
        worst = min(worst, agreement.settled_fraction)
        same_loss = np.mean(np.asarray(exact.fields["final_loss"]).view(np.uint64)
                            == np.asarray(fast.fields["final_loss"]).view(np.uint64))
        grid = f"{spec.shape[0]}×{spec.shape[1]}"
        print(f"{path.stem:<20}{spec.model:<13}{spec.dtype:<9}{grid:>10}{spec.steps:>6}{agreement.fraction:>12.3%}"
              f"{agreement.settled:>9}{agreement.settled_fraction:>16.3%}{same_loss:>12.1%}"
              f"{exact_run.cpu_s / fast_run.cpu_s:>15.2f}x", flush=True)
    print(f"\nsame (all): points whose outcome fast gets the same as exact; settled: points whose 8 nearest neighbours "
          f"share exact's outcome; same (settled): of those; loss bits =: final losses bit-identical; fast/exact CPU: "
          f"exact's CPU time over fast's. Lowest settled agreement: {worst:.3%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
