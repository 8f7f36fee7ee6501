"""Table 1 of Sohl-Dickstein (2024), "The boundary of neural network trainability is fractal", with descentsim.

    python examples/sohl_dickstein_table1.py [--grid N] [--steps T] [--frames F] [--depth D] [--dtype D]
                                             [--experiments NAMES] [--out DIR] [--measure-only]

The paper measures the box-counting dimension of the trainability boundary in six experiments (deep linear
1.17, ReLU 1.20, tanh with one data point 1.41, tanh with minibatches 1.55, tanh full batch 1.66,
initialisation offset × learning rate 1.98). For each, this script computes a zoom sequence with descentsim's
``mlp`` (width 16, input dimension 16, mean-field, no biases, loss mean (out − y)² without ½, float64) set up
as the paper's notebook does (github.com/Sohl-Dickstein/fractal), measures it with the paper's estimator
(``descentsim.boundary.box_counting_slopes``: the median of the local slopes of porespy's box count of the
edge images, pooled over all frames) and prints it beside the paper's, with descentsim's own least-squares
box counting of the deepest frame.

The experiments (``--experiments``, comma-separated; all six by default):

=================  ==========================================================================================
deep-linear        φ = identity, 16 data points; x = lr1 (input layer W1), y = lr2 (output layer W2), lr = 1
relu               φ = √2·relu, 272 data points (= the parameters); lr1 × lr2
tanh-one-point     φ = tanh(√2·z), 1 data point; lr1 × lr2
tanh-minibatch     tanh, 272 points, minibatches of 16 drawn with replacement, one sequence for every point
                   (the outcome and score judge the full-data loss, as the notebook); lr1 × lr2
tanh-full-batch    tanh, 272 points; lr1 × lr2 (``examples/mlp_fractal.toml``)
offset-lr          tanh, 272 points; x = w1_offset c (log axis), added to every W1 entry before every step
                   (``w1_offset_mode = "every_step"``: W1 drifts by +c a step), y = lr of both layers
=================  ==========================================================================================

Every run takes exactly ``--steps`` steps: early stopping is off (``converge_loss = 0``, ``diverge_factor =
inf``). A non-finite loss still ends a run, which is what the notebook's score does too (NaN persists), and
so does a loss of exactly 0 (the notebook's then stays 0: its gradient is 0).
The paper used 500 or 1000 steps (which per experiment is not recorded in its repository).

**Frames.** The paper's frames are a zoom-out sequence: concentric windows, square in log10 of the two knobs,
each twice as wide as the next, from the deepest window it found by zooming in interactively out to 6–12
decades; the dimension is the median over all frames (the first 52 for ReLU, 49 for tanh full batch). Its
centres cT are known from the repository's figure, but descentsim draws the data and initial weights with
numpy, not the notebook's jax PRNG, so its fractal differs in detail and cT is not on descentsim's boundary at
depth. So, per experiment:

1. frame 0's width is the paper's: its deepest width wT doubled until at least 6 decades;
2. a *locator* zoom (``descentsim.zoom`` following the boundary, as ``descentsim-zoom`` does, on a grid of at
   most 32² points) starts at frame 0 around cT and goes down F frames; the boundary point nearest the middle
   of its deepest frame is the centre c;
3. the F measured frames are concentric on c, widths frame-0-width / 2^k for k = D … D + F − 1 (D =
   ``--depth``, 0 by default; the locator then goes down D + F frames): F frames of a zoom-out sequence like
   the paper's, the widest ones by default, deep ones with ``--depth``, around a point that is on
   descentsim's own boundary down to the deepest frame (a centre fixed at a boundary point of frame 0 is only within one frame-0 pixel of the
   boundary, 2^(F−1) pixels of the deepest frame, which can leave the deep frames without a boundary).

The frames go to ``DIR/<experiment>.h5`` (a ``descentsim-zoom`` file, rewritten atomically after every frame;
``descentsim.zoom.read_zoom`` reads it), and ``--measure-only`` measures the files there again without computing.

**Time.** The defaults take about 3 minutes on two cores for the five experiments without the every-step
offset (measured; more in the README, "The paper's estimator and Table 1"). The work grows as
grid² × steps × frames (plus a quarter for the locator at grid 64), and the tanh and ReLU experiments
(272 data points) cost far more per step than the deep linear one (16) and the one-point one.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

import descentsim as ds
from descentsim.boundary import box_counting_slopes, boundary_mask
from descentsim.zoom import ZoomSettings, next_center, plan, read_zoom, write_zoom, zoom

#: The model's fixed knobs in every experiment (the notebook's width and seeds; d = width by default).
COMMON = {"width": 16, "seed": 0}
#: No early stopping: every run takes all its steps, as the notebook's.
NO_EARLY_STOP = {"converge_loss": 0.0, "diverge_factor": math.inf}
#: The widest frame spans at least this many decades (the notebook's zoom_out_sequence, max_scale = 6).
WIDEST_DECADES = 6.0
#: Most points per axis of the locator zoom.
LOCATOR_GRID = 32


@dataclass(frozen=True)
class Experiment:
    """One row of Table 1: its settings in descentsim's knobs and where the paper zoomed.

    ``center`` is the paper's zoom centre cT in log10 of the knobs (x, y) and ``width`` its deepest window's
    width wT in decades, read off the repository's figure ``fractal_tiles_midres.png``; ``frames`` is how many
    of the widest frames the paper's median used (None: all).
    """

    name: str
    title: str
    paper: float
    params: dict
    center: tuple[float, float]
    width: float
    x: str = "lr1"
    y: str = "lr2"
    frames: int | None = None
    note: str = field(default="", compare=False)


EXPERIMENTS = {e.name: e for e in [
    Experiment("deep-linear", "deep linear, full batch", 1.17, {"lr": 1.0, "nonlinearity": "identity"},
               (2.278778652, 0.679198384), 4.0e-6),
    Experiment("relu", "ReLU, full batch", 1.20, {"lr": 1.0, "nonlinearity": "relu"},
               (-0.238354647, 1.910856136), 2.1e-6, frames=52),
    Experiment("tanh-one-point", "tanh, one data point", 1.41, {"lr": 1.0, "nonlinearity": "tanh", "n_data": 1},
               (1.683937604, 1.260231035), 3.7e-6),
    Experiment("tanh-minibatch", "tanh, minibatches of 16", 1.55,
               {"lr": 1.0, "nonlinearity": "tanh", "batch_size": 16, "batch_per_point": 0},
               (-0.572840488430, 2.241221409332), 5.06e-12),
    Experiment("tanh-full-batch", "tanh, full batch", 1.66, {"lr": 1.0, "nonlinearity": "tanh"},
               (1.123844267, 2.301807567), 7.7e-7, frames=49),
    Experiment("offset-lr", "initialisation offset × learning rate", 1.98,
               {"nonlinearity": "tanh", "w1_offset_mode": "every_step"},
               (-0.707606951649, 1.591348039936), 6.3e-10, x="w1_offset", y="lr",
               note='needs the mlp knob w1_offset_mode = "every_step" (the offset added to W1 before every step)'),
]}


def widest_width(deepest: float) -> float:
    """The width of frame 0: ``deepest`` doubled until it spans WIDEST_DECADES (zoom_out_sequence)."""
    width = deepest
    while width < WIDEST_DECADES:
        width *= 2
    return width


def experiment_spec(exp: Experiment, grid: int, steps: int, dtype: str, center: tuple[float, float],
                    width: float) -> ds.MapSpec:
    """The map of ``exp`` on a grid × grid window ``width`` decades wide around ``center`` (log10 of x, y)."""
    x, y = (ds.Axis(name, 10.0 ** (c - width / 2), 10.0 ** (c + width / 2), grid, "log")
            for name, c in zip((exp.x, exp.y), center))
    return ds.MapSpec(model="mlp", x=x, y=y, steps=steps, dtype=dtype, params={**COMMON, **exp.params},
                      thresholds=NO_EARLY_STOP)


def compute(exp: Experiment, args: argparse.Namespace) -> list[ds.ConvergenceMap]:
    """Locate a boundary point near the paper's centre, then compute the concentric frames around it, saving
    the zoom file after every frame."""
    width = widest_width(exp.width)
    started = time.perf_counter()
    locator = experiment_spec(exp, min(args.grid, LOCATOR_GRID), args.steps, args.dtype, exp.center, width)
    if args.locate == "middle":
        found = zoom(locator, ZoomSettings(frames=args.depth + args.frames, factor=2.0), args.backend, args.threads)
        center = next_center(found[-1], None, tuple(found[-1].provenance["zoom_center"]))
    else:
        center = follow_densest(exp, locator, args, width)
    located = time.perf_counter() - started
    spec = experiment_spec(exp, args.grid, args.steps, args.dtype, tuple(math.log10(c) for c in center),
                           width / 2.0**args.depth)
    settings = ZoomSettings(frames=args.frames, factor=2.0, center=center)
    path = args.out / f"{exp.name}.h5"

    def saved(frames: list[ds.ConvergenceMap]) -> None:
        frames[-1].provenance.update(table1_experiment=exp.name, table1_paper_center=exp.center,
                                     table1_locator_grid=locator.x.n, table1_locator_s=located)
        write_zoom(path, spec, settings, frames)

    return zoom(spec, settings, args.backend, args.threads, on_frame=saved)


def densest_boundary_point(cmap: ds.ConvergenceMap) -> tuple[float, float] | None:
    """The boundary point of ``cmap`` with the most boundary points within an eighth of the frame around it
    (ties: the one nearest the middle), as knob values; None without a boundary. Where a boundary is a
    smooth curve in one part of a frame and folded in another, this goes to the fold, as the paper's
    interactive zooms did."""
    mask = boundary_mask(cmap.side())
    if not mask.any():
        return None
    ny, nx = mask.shape
    r = max(1, min(ny, nx) // 8)
    total = np.pad(mask.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # summed-area table
    iy, ix = np.nonzero(mask)
    y0, y1 = np.clip(iy - r, 0, ny), np.clip(iy + r + 1, 0, ny)
    x0, x1 = np.clip(ix - r, 0, nx), np.clip(ix + r + 1, 0, nx)
    near = total[y1, x1] - total[y0, x1] - total[y1, x0] + total[y0, x0]
    middle = (iy - (ny - 1) / 2) ** 2 + (ix - (nx - 1) / 2) ** 2
    k = int(np.lexsort((middle, -near))[0])
    return float(cmap.x[ix[k]]), float(cmap.y[iy[k]])


def follow_densest(exp: Experiment, locator: ds.MapSpec, args: argparse.Namespace, width: float
                   ) -> tuple[float, float]:
    """The locator zoom of ``--locate densest``: frames of the locator's grid, each twice as narrow and centred
    on the densest boundary point of the one before (``densest_boundary_point``); returns the last centre."""
    center = tuple(10.0**c for c in exp.center)
    for k in range(args.depth + args.frames):
        spec = experiment_spec(exp, locator.x.n, args.steps, args.dtype, tuple(math.log10(c) for c in center),
                               width / 2.0**k)
        found = densest_boundary_point(ds.run_map(spec, args.backend, args.threads))
        if found is None:
            break
        center = found
    return center


def measured_frames(frames: list[ds.ConvergenceMap]) -> tuple[list[ds.ConvergenceMap], list[str]]:
    """The frames the median-slope estimator can measure, and why each other one is left out."""
    kept, notes = [], []
    for k, frame in enumerate(frames):
        try:
            box_counting_slopes(frame)
            kept.append(frame)
        except ValueError as why:
            notes.append(f"frame {k} left out: {str(why).removeprefix('frame 0: ')}")
    return kept, notes


def least_squares(frame: ds.ConvergenceMap) -> tuple[str, str]:
    """descentsim's own box counting of one frame, in words and for the summary: the exponent ± its error
    and the fitted sizes."""
    try:
        fit = frame.fractal_dimension()
    except ValueError as why:
        return f"n/a ({why})", "n/a"
    used = fit.sizes[fit.fitted]
    return (f"{fit.exponent:.3f} ± {fit.uncertainty:.3f} (boxes of {used.min():g} … {used.max():g} cells)",
            f"{fit.exponent:.3f} ± {fit.uncertainty:.3f} [{used.min():g}–{used.max():g}]")


def report(exp: Experiment, frames: list[ds.ConvergenceMap], wall: float, stored: bool = False) -> dict:
    """Print one experiment's measurement (``wall`` from the files' provenance if ``stored``); return its
    summary row."""
    first, last = frames[0], frames[-1]
    spec = first.spec
    center = tuple(frames[-1].provenance["zoom_center"])
    paper_center = tuple(first.provenance.get("table1_paper_center", exp.center))
    widths = [f.spec.x.scaled(f.spec.x.stop) - f.spec.x.scaled(f.spec.x.start) for f in (first, last)]
    away = max(abs(math.log10(c) - p) for c, p in zip(center, paper_center))
    used = "all its frames" if exp.frames is None else f"its first {exp.frames} frames"
    print(f"== {exp.name}: {exp.title} ==")
    print(f"paper:  D = {exp.paper:.2f} (median slope over {used}, 4096² points each, 500 or 1000 steps)")
    print(f"here:   {spec.y.n}×{spec.x.n} points, {spec.steps} steps, {spec.dtype}, {len(frames)} frames of "
          f"{widths[0]:.3g} … {widths[1]:.3g} decades, concentric on {spec.x.name} = {center[0]:.10g}, "
          f"{spec.y.name} = {center[1]:.10g} ({away:.2g} decades from the paper's centre)")
    kept, notes = measured_frames(frames)
    for note in notes:
        print(f"        {note}")
    lsq, lsq_short = least_squares(last)
    row = {"name": exp.name, "paper": exp.paper, "median": "no boundary", "lsq": lsq_short,
           "grid": spec.x.n, "steps": spec.steps, "frames": f"{len(kept)}/{len(frames)}", "wall": wall}
    if kept:
        fit = box_counting_slopes(kept)
        sizes = " ".join(str(int(d)) for d in fit.sizes[-1])
        bootstrap = "" if math.isnan(fit.frame_bootstrap) else f"; frame bootstrap ± {fit.frame_bootstrap:.3f}"
        print(f"median of local slopes (the paper's estimator): D = {fit.exponent:.3f} ± {fit.uncertainty:.3f} "
              f"(half the interquartile range of {sum(s.size for s in fit.slopes)} slopes of {len(kept)} frames"
              f"{bootstrap})")
        print(f"        box sizes {sizes} (pixels of the {kept[-1].shape[0] - 1}² edge images); per-frame medians "
              + " ".join(f"{m:.3f}" for m in fit.frame_medians))
        row["median"] = f"{fit.exponent:.3f} ± {fit.uncertainty:.3f}"
    print(f"least-squares box counting of the deepest frame (m.fractal_dimension()): D = {lsq}")
    print(f"wall time {wall:.1f} s{' when computed' if stored else ''} (locator: {first.provenance.get('table1_locator_grid', '?')}² points per frame, "
          f"{first.provenance.get('table1_locator_s', float('nan')):.1f} s)\n")
    return row


def summary(rows: list[dict]) -> None:
    print(f"{'experiment':<16} {'paper':>5}  {'median slope':<15} {'least squares, deepest':<22} "
          f"{'grid':>4} {'steps':>5} {'frames':>6} {'wall':>8}")
    for r in rows:
        print(f"{r['name']:<16} {r['paper']:>5.2f}  {r['median']:<15} {r['lsq']:<22} {r['grid']:>4} "
              f"{r['steps']:>5} {r['frames']:>6} {r['wall']:>7.1f}s")


def unavailable(exp: Experiment, args: argparse.Namespace) -> str | None:
    """Why this descentsim cannot compute ``exp`` (a knob it lacks), or None; checks the precision of the
    deepest frame around the paper's centre too."""
    try:
        spec = experiment_spec(exp, args.grid, args.steps, args.dtype, exp.center,
                               widest_width(exp.width) / 2.0**args.depth)
    except ds.SpecError as why:
        if "unknown knob" in str(why):
            return f"{exp.note or 'needs a knob this descentsim lacks'}; this descentsim says: {why}"
        raise
    plan(spec, ZoomSettings(frames=args.frames, factor=2.0, center=tuple(10.0**c for c in exp.center)))
    return None


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sohl_dickstein_table1.py",
        description="The six box-counting dimensions of Sohl-Dickstein (2024), Table 1, measured with descentsim.",
    )
    parser.add_argument("--grid", type=int, default=64, help="points per axis of every frame (64; the paper 4096)")
    parser.add_argument("--steps", type=int, default=200, help="training steps per point (200; the paper 500 or 1000)")
    parser.add_argument("--frames", type=int, default=3, help="frames per zoom sequence, each twice as narrow (3)")
    parser.add_argument("--depth", type=int, default=0,
                        help="halvings of the widest frame before the first measured one (0): the paper's median is "
                        "over ~50 frames, most of them deep, so measure deep frames (e.g. 20) to compare")
    parser.add_argument("--locate", choices=("middle", "densest"), default="middle",
                        help="where the locator zoom goes: the boundary point nearest each frame's middle (as "
                        "descentsim-zoom), or the one with the most boundary around it (as the paper's "
                        "interactive zooms into folded parts)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS),
                        help=f"comma-separated, from {', '.join(EXPERIMENTS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("table1"), help="folder of the zoom files (table1)")
    parser.add_argument("--measure-only", action="store_true", help="measure the zoom files in --out again")
    parser.add_argument("--backend", default="auto", help="engine: auto, cython or numpy")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    args.explicit = any(a == "--experiments" or a.startswith("--experiments=") for a in given)
    names = [n.strip() for n in args.experiments.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        parser.error(f"unknown experiment {', '.join(unknown) or '(none given)'}; choose from {', '.join(EXPERIMENTS)}")
    if args.depth < 0 or args.frames < 1:
        parser.error("--depth must be >= 0 and --frames >= 1")
    if args.grid < 12:
        parser.error("--grid must be at least 12: the paper's box sizes start at 10 pixels of the edge image")
    args.experiments = [EXPERIMENTS[n] for n in names]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    rows = []
    try:
        if args.measure_only:
            missing = [exp.name for exp in args.experiments if not (args.out / f"{exp.name}.h5").exists()]
            if missing and args.explicit:
                raise ds.SpecError(f"no zoom file for {', '.join(missing)} in {str(args.out)!r}; compute them first "
                                   "(leave out --measure-only), or give the folder with --out")
            for exp in args.experiments:
                if exp.name in missing:
                    print(f"== {exp.name}: no file {exp.name}.h5 in {args.out}, not measured ==\n")
                    continue
                spec, settings, frames, complete = read_zoom(args.out / f"{exp.name}.h5")
                wall = frames[0].provenance.get("table1_locator_s", 0.0) + sum(
                    f.provenance.get("wall_time_s", 0.0) for f in frames)
                if not complete:
                    print(f"note: {exp.name}.h5 holds {len(frames)} of {settings.frames} frames (interrupted)")
                rows.append(report(exp, frames, wall, stored=True))
        else:
            todo = []
            for exp in args.experiments:
                why = unavailable(exp, args)
                if why and args.explicit:
                    raise ds.SpecError(f"experiment {exp.name} {why}")
                if why:
                    print(f"== {exp.name}: not computed ==\n{why}\n")
                else:
                    todo.append(exp)
            args.out.mkdir(parents=True, exist_ok=True)
            for exp in todo:
                started = time.perf_counter()
                frames = compute(exp, args)
                rows.append(report(exp, frames, time.perf_counter() - started))
    except ds.DescentsimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if rows:
        summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
