"""What adaptive refinement saves: a map computed in full against the same map refined.

What it measures
----------------
For a config (default: the quadratic's lr × a map, L = ½·a·w², whose boundary lr = 2/a is a smooth
curve) at ``--grid``² points, it times

* the **full** map (``descentsim.run_map``): every grid point computed;
* the **refined** map (``descentsim.refine.refine_map``) with ``--levels`` levels and ``--margin``.

and prints the points and trajectory-steps each computed, the wall times and their ratio, and how the
two maps agree: computed points must be identical in every field (a trajectory is a pure function of
spec and grid index), and the outcome fractions are compared over the whole grid.

How to run
----------
    python bench/bench_refine.py                            # quadratic, 4097², 6 levels
    python bench/bench_refine.py --config examples/double_well.toml --grid 1025 --levels 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import descentsim as ds
from descentsim import refine_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="examples/quadratic.toml", help="map config (its axes are resized)")
    parser.add_argument("--grid", type=int, default=4097, help="points per axis (2^k + 1 aligns the lattices)")
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--margin", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    spec = ds.MapSpec.from_toml(args.config)
    spec = spec.replace(x=spec.x.__class__(**{**spec.x.to_dict(), "n": args.grid}),
                        y=spec.y.__class__(**{**spec.y.to_dict(), "n": args.grid}))
    print(f"{spec.model}: {spec.x.name} × {spec.y.name}, {args.grid}×{args.grid} points, {spec.steps} steps, "
          f"{spec.dtype}; refinement {args.levels} levels, margin {args.margin}")

    began = time.perf_counter()
    full = ds.run_map(spec, threads=args.threads)
    full_s = time.perf_counter() - began
    began = time.perf_counter()
    refined = refine_map(spec, args.levels, args.margin, threads=args.threads)
    refined_s = time.perf_counter() - began

    computed = refined.refinement >= 0
    total = computed.size
    full_steps, refined_steps = int(full.fields["steps"].sum()), int(refined.fields["steps"][computed].sum())
    same_bytes = all(
        np.array_equal(refined.fields[n][computed], full.fields[n][computed], equal_nan=True) for n in full.fields
    )
    print(f"{'':10} {'points':>12} {'traj-steps':>14} {'wall s':>9}")
    print(f"{'full':10} {total:>12} {full_steps:>14.4g} {full_s:>9.2f}")
    print(f"{'refined':10} {int(computed.sum()):>12} {refined_steps:>14.4g} {refined_s:>9.2f}")
    print(f"refined / full: points {computed.sum() / total:.2%}, traj-steps {refined_steps / full_steps:.2%}, "
          f"wall time {refined_s / full_s:.2%} ({full_s / refined_s:.1f}x faster)")
    print(f"computed points identical to the full map in every field: {same_bytes}")
    print(f"outcome equal to the full map at {np.mean(refined.outcome == full.outcome):.6%} of the points")
    for outcome in ds.Outcome:
        a, b = full.fraction(outcome), refined.fraction(outcome)
        if a or b:
            print(f"  {outcome.label:<12} full {a:8.4%}   refined {b:8.4%}")


if __name__ == "__main__":
    main()
