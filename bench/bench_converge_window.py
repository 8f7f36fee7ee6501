"""How many CONVERGED labels a run continued would take back, and what the confirmation window costs.

What it measures
----------------
For each map below (at ``--grid``² points) and each ``converge_window`` W in ``--windows``:

* the map with that window (the compiled engine): its CONVERGED points and its trajectory-steps
  (Σ of the ``steps`` field, the updates run), against W = 1;
* every point the map calls converged, continued: the same trajectory with early stopping off
  (``converge_loss = 0``) for ``--horizon`` × the budget, its full-data loss curve L_t from
  ``descentsim.trajectories``. Early stopping never changes a trajectory, so one continued curve per
  point serves every window (a point converged under W is converged under W = 1), and the deciding
  step the window rule gives on it is checked against the map's ``steps`` field.

A converged point is counted

* **left** if its loss rises above the level again after its deciding step T (or the continued run
  diverges): the label was premature;
* **false** if, at the end of the horizon, its loss is above the level (or it diverged): the run
  never converged at all.

Maps (the first four by default): the dead ReLU of ``examples/relu_neuron.toml``; the double well of
``examples/double_well.toml`` and of its chaotic range alone (lr 1.3…1.6, the minima repel above lr = 1);
the double well under heavy-ball momentum (β = 0.9, lr 0.01…1.9: the minima hold up to lr·L'' < 2(1 + β));
on request the relu-neuron's chaotic band alone (lr 4.2…7, w = 1 repels above lr = 2/m₊ = 4.16) and the
double well under momentum 0.99 (5000 steps).

How to run
----------
    python bench/bench_converge_window.py                      # 256², windows 1 2 5 10 20 30 50, horizon 10
    python bench/bench_converge_window.py --grid 1024 --maps relu-neuron-chaos double-well-chaos
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome

MAPS = {
    "relu-neuron": lambda n: MapSpec.from_toml("examples/relu_neuron.toml").replace(
        x=Axis("lr", 0.01, 10.0, n, "log"), y=Axis("w0", -3.0, 3.0, n)),
    "double-well": lambda n: MapSpec.from_toml("examples/double_well.toml").replace(
        x=Axis("lr", 0.01, 1.6, n), y=Axis("w0", -2.0, 2.0, n)),
    "double-well-chaos": lambda n: MapSpec(model="double-well", x=Axis("lr", 1.3, 1.6, n), y=Axis("w0", -2.0, 2.0, n),
                                           steps=2000),
    "double-well-momentum": lambda n: MapSpec(model="double-well", optimizer="momentum", x=Axis("lr", 0.01, 1.9, n),
                                              y=Axis("w0", -2.0, 2.0, n), steps=2000, params={"momentum": 0.9}),
    "relu-neuron-chaos": lambda n: MapSpec.from_toml("examples/relu_neuron.toml").replace(
        x=Axis("lr", 4.2, 7.0, n), y=Axis("w0", -3.0, 3.0, n)),
    "double-well-momentum-0.99": lambda n: MapSpec(
        model="double-well", optimizer="momentum", x=Axis("lr", 0.01, 1.99, n), y=Axis("w0", -2.0, 2.0, n), steps=5000,
        params={"momentum": 0.99}),
}
DEFAULT_MAPS = ["relu-neuron", "double-well", "double-well-chaos", "double-well-momentum"]
#: Points continued at once (their curves are held in memory: points × horizon × steps floats).
CHUNK = 1000


def with_window(spec: MapSpec, window: int, **thresholds) -> MapSpec:
    return spec.replace(thresholds={**spec.thresholds.to_dict(), "converge_window": window, **thresholds})


def confirming_steps(below: np.ndarray, windows: list[int], steps: int) -> dict[int, np.ndarray]:
    """Per window, the first step t <= steps ending `window` below-level steps in a row (−1 if none); rows are points."""
    run = np.zeros(below.shape, dtype=np.int64)
    count = np.zeros(below.shape[0], dtype=np.int64)
    for t in range(steps + 1):
        count = np.where(below[:, t], count + 1, 0)
        run[:, t] = count
    out = {}
    for w in windows:
        hit = run >= w
        out[w] = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return out


def continue_points(spec: MapSpec, level: float, iy: np.ndarray, ix: np.ndarray, windows: list[int],
                    horizon: int) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per window: (deciding step, left, false) of the points (iy, ix), from their continued curves."""
    long = with_window(spec, 1, converge_loss=0.0).replace(steps=horizon * spec.steps)
    parts: dict[int, list] = {w: [] for w in windows}
    for s in range(0, iy.size, CHUNK):
        run = ds.trajectories(long, iy[s:s + CHUNK], ix[s:s + CHUNK], theta=False)
        loss = run.loss
        diverged = run.outcome == Outcome.DIVERGED
        stopped_at_zero = run.outcome == Outcome.CONVERGED  # L = 0 exactly: a fixed point, below for ever
        last = loss[np.arange(loss.shape[0]), run.decided]
        t = np.arange(loss.shape[1])
        # NaN after a run's end: not below, except after L = 0 (θ stays put)
        below = (loss <= level) | (stopped_at_zero[:, None] & (t[None, :] > run.decided[:, None]))
        for w, decided in confirming_steps(below, windows, spec.steps).items():
            after = (t[None, :] > decided[:, None]) & (t[None, :] <= run.decided[:, None])
            rises = (after & (loss > level)).any(axis=1)
            left = diverged | rises
            false = diverged | ~(stopped_at_zero | (last <= level))
            parts[w].append((decided, left, false))
    return {w: tuple(np.concatenate([p[i] for p in parts[w]]) for i in range(3)) for w in windows}


def measure(name: str, spec: MapSpec, windows: list[int], horizon: int) -> None:
    level = spec.resolved_thresholds.converge_loss
    maps, walls = {}, {}
    for w in windows:
        start = time.perf_counter()
        maps[w] = ds.run_map(with_window(spec, w))
        walls[w] = time.perf_counter() - start
    base = maps[1] if 1 in maps else ds.run_map(with_window(spec, 1))
    iy, ix = np.nonzero(base.outcome == Outcome.CONVERGED)
    start = time.perf_counter()
    judged = continue_points(spec, level, iy, ix, windows, horizon)
    print(f"\n{name}: {spec.model}, {spec.optimizer}, {spec.x.name} {spec.x.start}…{spec.x.stop} × "
          f"{spec.y.name} {spec.y.start}…{spec.y.stop}, {spec.shape[0]}×{spec.shape[1]}, {spec.steps} steps; "
          f"{iy.size} points converged with W = 1, continued to {horizon * spec.steps} steps "
          f"({time.perf_counter() - start:.0f} s)")
    print(f"{'W':>4}{'converged':>11}{'left':>7}{'false':>7}{'traj-steps':>14}{'extra':>9}{'wall s':>8}")
    base_steps = base.fields["steps"].sum(dtype=np.int64)
    for w in windows:
        m = maps[w]
        decided, left, false = judged[w]
        converged = m.outcome[iy, ix] == Outcome.CONVERGED
        assert ((decided >= 0) == converged).all(), "the window rule on the curves disagrees with the map"
        assert (decided[converged] == m.fields["steps"][iy, ix][converged]).all(), "deciding steps disagree"
        assert (m.outcome == Outcome.CONVERGED).sum() == converged.sum()
        total = m.fields["steps"].sum(dtype=np.int64)
        print(f"{w:>4}{converged.sum():>11}{(left & converged).sum():>7}{(false & converged).sum():>7}"
              f"{total:>14}{100 * (total - base_steps) / base_steps:>8.2f}%{walls[w]:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, default=256, help="points per axis")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 5, 10, 20, 30, 50])
    parser.add_argument("--horizon", type=int, default=10, help="continue converged runs to this many × the budget")
    parser.add_argument("--maps", nargs="+", choices=sorted(MAPS), default=DEFAULT_MAPS)
    args = parser.parse_args()
    windows = sorted(set(args.windows) | {1})
    for name in args.maps:
        measure(name, MAPS[name](args.grid), windows, args.horizon)


if __name__ == "__main__":
    main()
