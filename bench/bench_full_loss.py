"""What judging minibatch runs on the full-data loss costs (issue 10).

With ``batch_size`` set, the compiled engine runs a forward pass over the whole training set (or its
first ``eval_samples`` samples) at every step, beside the minibatch's gradient, because every outcome
rule and the score judge the full-data loss L(θ_t). This script times, for each model, the same map
three ways, with early stopping switched off (converge_loss = 0, diverge_factor = inf) so that every
trajectory runs its whole budget and the three do the same number of steps:

* ``full batch``   — gradient descent on the whole training set (no minibatches);
* ``minibatch``    — the gradient of a minibatch, and the full-data loss every step (what a map does);
* ``batch-only``   — the same minibatches with eval_samples = batch_size: the rules judge a loss over
  as many samples as the gradient uses, which approximates the cost of the minibatch gradient alone
  (plus a forward pass over batch_size samples).

Times are per trajectory-step actually run (a run that overflows still stops). The cost of the
full-data loss is ``minibatch / batch-only``. Run from the repository root:

    python bench/bench_full_loss.py [--grid N] [--steps T] [--repeats R]
"""

from __future__ import annotations

import argparse
import time

import descentsim as ds
from descentsim import Axis, MapSpec

NO_EARLY_STOP = {"converge_loss": 0.0, "diverge_factor": float("inf")}

#: (name, spec without batch_size, batch_size, samples in the full data)
CASES = [
    ("relu-neuron (w, 1024 samples)", MapSpec(model="relu-neuron", x=Axis("lr", 1e-3, 1e-2, 8, "log"),
                                             y=Axis("w0", 0.5, 2.0, 8), params={"samples": 1024},
                                             thresholds=NO_EARLY_STOP, dtype="float32"), 32, 1024),
    ("mlp (tanh, width 16, 272 points)", MapSpec(model="mlp", x=Axis("lr1", 0.5, 2.0, 8, "log"),
                                                y=Axis("lr2", 0.5, 2.0, 8, "log"), params={"lr": 0.1},
                                                thresholds=NO_EARLY_STOP, dtype="float32"), 16, 272),
    ("softmax-mlp (6 classes, 300 points)", MapSpec(model="softmax-mlp", optimizer="adam",
                                                   x=Axis("lr", 1e-3, 1e-2, 8, "log"), y=Axis("init_scale", 0.5, 2.0, 8),
                                                   thresholds=NO_EARLY_STOP, dtype="float32"), 32, 300),
]


def time_per_step(spec: MapSpec, repeats: int) -> float:
    """Best wall time of ``repeats`` runs of the map, per trajectory-step run, in microseconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        m = ds.run_map(spec, backend="cython")
        best = min(best, time.perf_counter() - started)
    return best / int(m.fields["steps"].sum()) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=8, help="points per axis (default 8)")
    parser.add_argument("--steps", type=int, default=300, help="steps per trajectory (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    args = parser.parse_args()
    print(f"{'model':<38} {'batch':>5} {'µs/step: full batch':>19} {'minibatch':>9} {'batch-only':>10} "
          f"{'full loss costs':>15}")
    for name, spec, batch, samples in CASES:
        spec = spec.replace(steps=args.steps, x=spec.x.__class__(**{**spec.x.to_dict(), "n": args.grid}),
                            y=spec.y.__class__(**{**spec.y.to_dict(), "n": args.grid}))
        full = time_per_step(spec, args.repeats)
        mini = time_per_step(spec.replace(params={**spec.params, "batch_size": batch}), args.repeats)
        only = time_per_step(spec.replace(params={**spec.params, "batch_size": batch, "eval_samples": batch}),
                             args.repeats)
        print(f"{name:<38} {batch:>5} {full:>19.3f} {mini:>9.3f} {only:>10.3f} {mini / only:>14.2f}×")
    print(f"({args.grid}×{args.grid} points, {args.steps} steps each, float32, best of {args.repeats}; "
          "full loss costs = minibatch / batch-only)")


if __name__ == "__main__":
    main()
