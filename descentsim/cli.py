"""Command-line tools: ``descentsim-map`` computes a map, ``descentsim-info`` describes one,
``descentsim-plot`` draws one, ``descentsim-zoom`` zooms into one, ``descentsim-models`` lists the models,
optimisers and knobs a config can name."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import signal
import sys
import time
import tomllib
import warnings
from dataclasses import fields
from typing import Any, Sequence, TextIO

import numpy as np

from .backends import BACKENDS
from .map_data import package_version
from .errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, DescentsimError, OutOfSpace, RunInterrupted, SpecError
from .knobs import Knob
from .models import MODELS
from .optimizers import BATCH_KNOBS, OPTIMIZERS, SCHEDULE_KNOBS, SCHEDULES
from .outcome import Outcome
from .spec import MapSpec, read_config


def apply_setting(table: dict[str, Any], assignment: str) -> None:
    """Apply ``--set key=value`` to a config table.

    ``key`` is a spec setting (``steps``, ``dtype``...), a dotted path (``x.n``, ``params.lr``), or a
    bare knob name, which goes into ``params``. ``value`` is read as a TOML value, else as a string.
    """
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"--set {assignment!r} is not knob=value; write e.g. --set lr=0.5")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    path = key.split(".")
    if len(path) == 1 and key not in {f.name for f in fields(MapSpec)}:
        path = ["params", key]
    node = table
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SpecError(f"--set {key}: {part!r} is not a table; set {part} itself, or a key of x, y, params or thresholds")
        node = child
    node[path[-1]] = value


def load_config(path: str, settings: Sequence[str] = (), record: Sequence[str] = ()) -> MapSpec:
    """The spec of a TOML config file with ``--set`` overrides applied and ``--record X,Y`` points added."""
    table = read_config(path)
    for assignment in settings:
        apply_setting(table, assignment)
    for point in record:
        try:
            values = [float(v) for v in point.split(",")]
        except ValueError:
            raise SpecError(f"--record {point!r} is not knob values X,Y; write e.g. --record 0.5,1.0") from None
        if not isinstance(table.get("record", []), list):
            raise SpecError("record in the config must be a list of points, e.g. record = [[0.5, 1.0]]")
        table["record"] = [*table.get("record", []), values]
    return MapSpec.from_dict(table)


class ProgressBar:
    """Progress of a run: a one-line bar on a terminal; in a batch log, a line every ``interval`` seconds."""

    def __init__(self, stream: TextIO, prefix: str = "", interval: float = 10.0):
        self.stream = stream
        self.terminal = stream.isatty()
        self.prefix = prefix
        self.interval = interval
        self.started = self.logged = time.perf_counter()
        self.before: int | None = None  # tiles done before this run (resumed ones), for the ETA
        self.done: int | None = None  # tiles saved so far, once this run has finished one

    def __call__(self, done: int, total: int, trajectory_steps: int) -> None:
        now = time.perf_counter()
        if self.before is None:
            self.before = done - 1
        self.done = done
        if not self.terminal and (now - self.logged < self.interval or done == total):
            return
        elapsed = now - self.started
        rate = trajectory_steps / elapsed if elapsed > 0 else 0.0
        eta = elapsed * (total - done) / max(done - self.before, 1)
        if self.terminal:
            filled = int(30 * done / total)
            self.stream.write(
                f"\r{self.prefix}[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} tiles  "
                f"{rate:.3g} traj-steps/s  ETA {eta:5.0f} s "
            )
            if done == total:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"{self.prefix}{done}/{total} tiles ({done / total:.0%}), {rate:.3g} traj-steps/s, ETA {eta:.0f} s\n"
            )
            self.logged = now
        self.stream.flush()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage goes to --help, not into batch logs) and ``--version``."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _summary(owner: object) -> str:
    """The first line of the docstring of a model's or optimiser's class."""
    return (inspect.getdoc(type(owner)) or "").splitlines()[0].rstrip(":").replace("``", "")


def _knob_row(name: str, default: object, values: str, meaning: str) -> str:
    return f"    {name:<16} {default!s:<9} {values:<38} {meaning}"


def _knob_table(knobs: Sequence[Knob]) -> list[str]:
    """One line a knob: name, default, the values it takes, meaning."""
    return [_knob_row(k.name, k.default, k.values_text, k.doc) for k in knobs]


def catalogue() -> str:
    """What ``descentsim-models`` (and ``descentsim-map --list``) prints: every model, optimiser and learning-rate
    schedule with each knob's default, the values it takes and its meaning, read from the knob registry."""
    data = ", ".join(name for name, model in MODELS.items() if model.minibatches)
    lines = [
        f"descentsim {package_version()}: the models, optimisers and knobs a config can name.",
        "Fix a knob in [params] (or --set NAME=VALUE) or sweep it on an axis ([x] name = \"NAME\"); the others "
        "take their defaults.",
        "",
        "models (model = \"NAME\"), each with its knobs:",
        _knob_row("knob", "default", "values", "meaning"),
    ]
    for name, model in MODELS.items():
        lines += ["", f"  {name}: {_summary(model)}", *_knob_table(model.knobs)]
    lines += ["", "optimizers (optimizer = \"NAME\"), each with its knobs:"]
    shared = {k.name for k in (*SCHEDULE_KNOBS, *BATCH_KNOBS)}  # every optimiser's: listed once, below
    for name, optimizer in OPTIMIZERS.items():
        lines += ["", f"  {name}: {_summary(optimizer)}",
                  *_knob_table([k for k in optimizer.knobs if k.name not in shared])]
    lines += ["", f"learning-rate schedules (schedule = \"NAME\": {', '.join(SCHEDULES)}), every optimizer:",
              *_knob_table(SCHEDULE_KNOBS),
              "", f"minibatches, every optimizer, for the models with data samples ({data}):",
              *_knob_table(BATCH_KNOBS)]
    return "\n".join(lines)


class _ListAction(argparse.Action):
    """``--list``: print the catalogue of models, optimisers and knobs, and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **options: Any):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **options)

    def __call__(self, parser, namespace, values, option_string=None):
        _print_catalogue()
        parser.exit()


def models_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="descentsim-models", description="List every model, optimiser and learning-rate schedule "
                     "with each knob's default, the values it takes and its meaning (as descentsim-map --list).")
    parser.parse_args(argv)
    _print_catalogue()
    return 0


def _print_catalogue() -> None:
    try:
        print(catalogue())
    except BrokenPipeError:  # descentsim-models | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _warnings_as_lines(prog: str) -> None:
    """Show warnings (a damaged journal record, a slow fallback engine) as one line each, like errors."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {message}", file=file or sys.stderr, flush=True)

    warnings.showwarning = show


#: The config format in a few lines, for --help.
CONFIG_HELP = """The config is a TOML file with the keys of descentsim.MapSpec:

  model = "relu-neuron"   # descentsim-models (or --list) lists models, optimizers and knobs
  steps = 1000            # gradient steps per trajectory; also dtype, arithmetic, optimizer, record
  [x]                     # the knob along x: name, start, stop, n, scale ("linear" or "log")
  name = "lr"
  start = 0.01
  stop = 10.0
  n = 256
  scale = "log"
  [y]                     # optional: a second knob, the same keys (without it, one row)
  name = "w0"
  start = -3.0
  stop = 3.0
  n = 256
  [params]                # fixed knobs; the others take their defaults
  trainable = "w"
  [thresholds]            # optional: the outcome rules' thresholds

Ready-made configs of the classic failures are in the examples/ folder of the source (examples/*.toml)."""



class StopSignals:
    """SIGTERM and SIGINT (Ctrl-C) ask a run to stop between tiles; calling this gives the number of the
    first that came (0 while none has): the ``stop_requested`` of the runners.

    A signal only asks: under MPI an exception raised in the middle of MPI calls would leave requests
    outstanding, on which MPI_Finalize fails. In one process (``at_once``) a second Ctrl-C stops at once
    (KeyboardInterrupt), for whoever cannot wait for the tile in progress; finished tiles stay in the journal.
    """

    HANDLED = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, at_once: bool, stream: TextIO):
        self.signum = 0
        self.at_once = at_once
        self.notice = ("\n" if stream.isatty() else "") + "descentsim-map: stopping after the work in progress; Ctrl-C again to stop at once\n"
        self.previous = {signum: signal.signal(signum, self._received) for signum in self.HANDLED}

    def __call__(self) -> int:
        return self.signum

    def _received(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.at_once:
            if self.signum:
                raise KeyboardInterrupt
            os.write(2, self.notice.encode())  # print() could re-enter a write this signal interrupted
        self.signum = self.signum or signum

    def restore(self) -> None:
        """The handlers from before."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def stopped_message(stopped: RunInterrupted, signum: int) -> str:
    """What a run stopped by ``signum`` between tiles (or blocks) has saved, and how to go on."""
    cause = "interrupted by Ctrl-C" if signum == signal.SIGINT else "stopped by SIGTERM"
    if stopped.done == 0:
        return f"{cause} before any {stopped.unit.rstrip('s')} was finished: {nothing_saved(stopped.partial)}"
    return (f"{cause} after {stopped.progress}; they are saved in {str(stopped.partial)!r}: run the same command "
            "with --resume to finish")


def interrupted_message(output: str, done: int | None, resume: bool, refined: bool) -> str:
    """What a run stopped at once (a second Ctrl-C) left: ``done`` tiles saved as its progress last said
    (None if it finished none), on top of any an earlier run (``resume``) saved."""
    from .journal import journal_path

    partial = journal_path(output)
    if done is not None:
        return (f"interrupted at once; {done} finished tiles are saved in {str(partial)!r}: run the same command "
                "with --resume to finish")
    if refined:
        return f"interrupted at once; the blocks of points already finished are saved in {str(partial)!r} for --resume"
    if resume and partial.exists():
        return f"interrupted at once before this run finished a tile; {str(partial)!r} keeps those of earlier runs for --resume"
    return f"interrupted at once before any tile was finished: {nothing_saved(partial)}"


def nothing_saved(partial) -> str:
    """The end of a message for a run stopped with nothing finished, its journal ``partial`` empty or absent."""
    if partial is None or not os.path.exists(partial):
        return "nothing is saved"
    return f"nothing is saved ({str(partial)!r} holds none); run the same command with --resume to start it again"


def map_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="descentsim-map",
        description="Compute a convergence map: train one tiny model per grid point and record what happened.",
        epilog=CONFIG_HELP + f"\n\nExit status: 0 done, 2 bad input, {EXIT_INCOMPLETE} stopped by SIGTERM with the "
        f"finished tiles saved,\n{EXIT_INTERRUPTED} stopped by Ctrl-C (SIGINT) with the finished tiles saved (run the "
        "same command with\n--resume to finish; a second Ctrl-C stops at once, without the tile in progress).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML file with the map spec (same keys as descentsim.MapSpec; see below)")
    parser.add_argument("--list", action=_ListAction, help="list the models, optimisers and knobs, and exit")
    parser.add_argument("-o", "--output", required=True, help="HDF5 file to write")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting: a knob (lr=0.5), a spec key (steps=200) or a dotted path (x.n=512); repeatable",
    )
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="engine: auto (the GPU where CuPy finds one, else cython), cython, cupy, gpu-host "
                             "(the GPU code on this processor, for checking) or numpy (the reference)")
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: OMP_NUM_THREADS or all cores)")
    parser.add_argument("--tile", default=None, metavar="ROWSxCOLS", help="tile shape, e.g. 16x256 (results do not depend on it)")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted run of OUTPUT (or start one)")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT, and any interrupted run of it")
    parser.add_argument(
        "--refine", type=int, default=None, metavar="LEVELS",
        help="adaptive refinement: compute every 2^LEVELS-th point, then halve the spacing LEVELS times only "
        "where outcomes mix (one process; see descentsim.refine)",
    )
    parser.add_argument(
        "--record", action="append", default=[], metavar="X,Y",
        help="keep the per-step full-data loss (and a classifier's accuracy, every record_stride steps) of the "
        "grid point nearest knob values X,Y in the file's history group; repeatable",
    )
    parser.add_argument(
        "--schedule", default="dynamic", choices=("dynamic", "static"),
        help="under MPI: hand tiles out as ranks finish (dynamic, default) or in fixed blocks (static)",
    )
    args = parser.parse_args(argv)
    _warnings_as_lines(parser.prog)

    from .mpi import abort_on_exception, agree, launcher_rank, launcher_size, run_map_mpi, world
    from .refine import refine_map_to_file
    from .runner import budget_warning, resumes_finished_map, run_map_to_file

    stop = StopSignals(at_once=launcher_size() is None, stream=sys.stderr)
    comm, prefix, rank = None, "", launcher_rank()
    progress = ProgressBar(sys.stderr) if rank == 0 else None
    already_complete = resumes_finished_map(args.output, args.resume)
    try:
        comm = world()
        if comm:
            rank, prefix = comm.Get_rank(), f"[{comm.Get_rank()}/{comm.Get_size()}] "
            progress = ProgressBar(sys.stderr, prefix) if rank == 0 else None
            abort_on_exception(comm)
        common = dict(
            backend=args.backend,
            threads=args.threads,
            tile_shape=_parse_tile(args.tile),
            resume=args.resume,
            force=args.force,
            progress=progress,
            stop_requested=stop,
        )
        if comm and args.refine is not None:
            raise SpecError("--refine runs in one process; run it without mpirun/mpiexec (use --threads for the cores)")
        if comm:  # rank 0 reads the config; every rank computes its spec
            text = error = None
            if rank == 0:
                try:
                    text = load_config(args.config, args.settings, args.record).to_toml()
                except DescentsimError as exc:
                    error = str(exc)
            agree(comm, error)
            spec = MapSpec.from_toml_text(comm.bcast(text, root=0))
            log = lambda message: print(prefix + message, file=sys.stderr, flush=True)  # noqa: E731
            cmap = run_map_mpi(comm, spec, args.output, schedule=args.schedule, log=log, **common)
        else:
            spec = load_config(args.config, args.settings, args.record)
            warning = budget_warning(spec)
            if warning:
                print(f"warning: {warning}", file=sys.stderr, flush=True)
            if args.refine is None:
                cmap = run_map_to_file(spec, args.output, **common)
            elif args.tile is not None:
                raise SpecError("--tile has no meaning with --refine, which computes points in blocks; drop it")
            else:
                log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
                cmap = refine_map_to_file(
                    spec, args.output, args.refine, backend=args.backend, threads=args.threads, resume=args.resume,
                    force=args.force, log=log, stop_requested=stop,
                )
    except OutOfSpace as exc:
        if rank == 0:
            _fail(prefix + parser.prog, str(exc))
        return EXIT_INCOMPLETE if exc.partial is not None else 2
    except DescentsimError as exc:
        return _fail(prefix + parser.prog, str(exc)) if rank == 0 else 2
    except RunInterrupted as stopped:
        signum = stopped.signum or stop()
        if rank == 0:
            print(f"{prefix}{parser.prog}: {stopped_message(stopped, signum)}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED if signum == signal.SIGINT else EXIT_INCOMPLETE
    except MemoryError:
        return _fail(prefix + parser.prog, "not enough memory for this map; use fewer points or a smaller model")
    except KeyboardInterrupt:  # a second Ctrl-C in one process (under MPI signals only ask)
        if rank == 0:
            done = progress.done if progress is not None else None
            message = interrupted_message(args.output, done, args.resume, args.refine is not None)
            print(f"{prefix}{parser.prog}: {message}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if comm is None:  # under MPI the handlers stay: a late signal must not kill a rank mid-exit
            stop.restore()
    if cmap is None:  # ranks above 0
        return 0
    prov = cmap.provenance
    if already_complete:
        print(f"{prefix}{args.output} is already complete: nothing to do")
        return 0
    ranks = f"{prov['ranks']} ranks × " if prov.get("ranks", 1) > 1 else ""
    engine = prov["backend"] + (", fast arithmetic" if spec.arithmetic == "fast" else "")
    print(
        f"{prefix}wrote {args.output}: {spec.shape[0]}x{spec.shape[1]} {spec.model} map in {prov['wall_time_s']:.2f} s "
        f"({engine}, {ranks}{prov['threads']} threads, "
        f"{prov['trajectory_steps'] / max(prov['wall_time_s'], 1e-9):.3g} traj-steps/s); "
        + ", ".join(f"{o.label} {f:.1%}" for o, f in cmap.fractions().items() if f > 0)
    )
    if cmap.refinement is not None:
        print(refinement_summary(cmap))
    return 0


def refinement_summary(cmap) -> str:
    """One line on what refinement saved: points computed of the grid's."""
    computed, total = int(np.count_nonzero(cmap.refinement >= 0)), cmap.refinement.size
    return (
        f"refined over {cmap.provenance.get('refine_levels')} levels: computed {computed} of {total} points "
        f"({computed / total:.1%}, {total / max(computed, 1):.1f}x fewer than the full grid)"
    )


def _parse_tile(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        rows, cols = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise SpecError(f"--tile {text!r} is not ROWSxCOLS; write e.g. --tile 16x256") from None
    if rows < 1 or cols < 1:
        raise SpecError(f"--tile {text!r}: rows and columns must be >= 1")
    return rows, cols


def describe(cmap) -> str:
    """The text ``descentsim-info`` prints: spec, outcome fractions (for classifiers also the shares that
    collapsed, learned and stayed at chance level, ``boundary.classifier_summary``), provenance."""
    lines = ["# spec", cmap.spec.to_toml().rstrip(), "", "# outcomes"]
    for outcome in Outcome:
        if outcome is not Outcome.NOT_COMPUTED or cmap.fraction(outcome) > 0:
            lines.append(f"{outcome.label:<14} {cmap.fraction(outcome):8.2%}")
    collapsed = cmap.fields["collapsed"]
    if cmap.spec.model_def.classifier:  # how many collapsed, learned, stayed at chance, and how well they learned
        from .boundary import classifier_summary

        lines.append(f"{'collapsed':<14} {np.mean(collapsed == 1):8.2%}")
        accuracy = cmap.fields["accuracy"][np.isfinite(cmap.fields["accuracy"])]
        if accuracy.size:
            lines.append(f"{'mean accuracy':<14} {accuracy.mean():8.2%}")
        lines += classifier_summary(cmap).lines()
    if cmap.refinement is not None:
        lines += ["", "# refinement", refinement_summary(cmap)]
    if cmap.recorded is not None:  # the curves kept in the history group (descentsim-plot --history)
        h = cmap.recorded
        lines += ["", "# recorded points (history)"]
        for k in range(len(h)):
            where = "" if h.y is None else f", {cmap.spec.y.name} = {h.y[k]:.6g}"
            final = h.loss[k, h.decided[k]]
            lines.append(f"{k + 1:>3}: {cmap.spec.x.name} = {h.x[k]:.6g}{where}: {Outcome(int(h.outcome[k])).label} "
                         f"at step {h.decided[k]}, loss {final:.4g}")
    lines += ["", "# provenance"]
    lines += [f"{key:<20} {value}" for key, value in sorted(cmap.provenance.items())]
    return "\n".join(lines)


def describe_zoom(path: str) -> str:
    """The text ``descentsim-info`` prints for a zoom file: its settings, the first frame's spec, and per frame
    the centre, the window and the outcome fractions."""
    from .zoom_file import frames_range, read_zoom

    spec, settings, frames, complete = read_zoom(path)
    state = "complete" if complete else "incomplete: descentsim-zoom --resume continues it"
    follow = f"fixed at {', '.join(f'{a.name} = {c:.10g}' for a, c in zip(spec.axes, settings.center))}" \
        if settings.center else f"following the boundary of {settings.inside or 'the trainable side'}"
    lines = ["# zoom", f"{'frames':<14} {len(frames)} of {settings.frames} ({state})",
             f"{'factor':<14} {settings.factor:g} (each frame that many times narrower)", f"{'centre':<14} {follow}"]
    if settings.refine:
        lines.append(f"{'refine':<14} {settings.refine} levels")
    stopped = frames[-1].provenance.get("zoom_stopped") if frames else None
    if stopped:
        lines.append(f"{'stopped':<14} {stopped}")
    lines += ["", "# spec (frame 0)", spec.to_toml().rstrip(), "", "# frames"]
    shown = [o for o in Outcome if any(frame.fraction(o) > 0 for frame in frames)]
    axes = [axis.name for axis in spec.axes]
    lines.append("  ".join([f"{'frame':>5}", f"{'zoom':<9}", f"{'centre ' + ', '.join(axes):<25}",
                            *(f"{'window ' + name:<31}" for name in axes), *(f"{o.label:>12}" for o in shown)]))
    for i, frame in enumerate(frames):
        centre = ", ".join(f"{c:.10g}" for c in frame.provenance["zoom_center"][: len(axes)])
        windows = [f"{a.start:.10g} … {a.stop:.10g}" for a in frame.spec.axes]
        lines.append("  ".join([f"{i:>5}", f"×{settings.factor ** i:<8.4g}", f"{centre:<25}",
                                *(f"{w:<31}" for w in windows), *(f"{frame.fraction(o):>12.2%}" for o in shown)]))
    if frames:
        lines += ["", f"frames {frames_range(len(frames))}: descentsim-info {path} --frame N describes frame N in "
                  f"full, descentsim-plot {path} -o PICTURE --frame N draws it"]
    return "\n".join(lines)


def info_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="descentsim-info", description="Describe a map file (spec, outcomes, provenance) or a zoom "
                     "file (its frames: centre, window and outcomes of each).")
    parser.add_argument("map", help="HDF5 file written by descentsim-map or descentsim-zoom")
    parser.add_argument("--frame", type=int, default=None, metavar="N",
                        help="zoom files: describe frame N as a map (0 the widest; -1 the last)")
    args = parser.parse_args(argv)
    from .convergence_map import open_map
    from .store import open_file
    from .zoom_file import FORMAT_NAME as ZOOM_FORMAT

    try:
        f, _ = open_file(args.map, "descentsim-map or descentsim-zoom")
        with f:
            zoom_file = f.attrs.get("descentsim_format") == ZOOM_FORMAT
        text = describe_zoom(args.map) if zoom_file and args.frame is None else describe(open_map(args.map, args.frame))
    except DescentsimError as exc:
        return _fail(parser.prog, str(exc))
    try:
        print(text)
    except BrokenPipeError:  # descentsim-info map.h5 | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def plot_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="descentsim-plot", description="Draw a field of a map file, or of a zoom file's frame, as "
                     "a picture.")
    parser.add_argument("map", help="HDF5 file written by descentsim-map or descentsim-zoom")
    parser.add_argument("-o", "--output", required=True, help="picture to write: .png, .pdf or .svg")
    parser.add_argument("--field", default="outcome", help="field to draw (default outcome; also score, steps, "
                        "final_loss, loss_sum, accuracy, collapsed, classes_predicted, batch_loss, period, "
                        "attractor, refine_level)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of a .png (default 150)")
    parser.add_argument("--history", action="store_true", help="mark the recorded points (record / --record of "
                        "descentsim-map) on the map and draw their loss (and accuracy) curves beside it")
    parser.add_argument("--frame", type=int, default=None, metavar="N",
                        help="zoom files: the frame to draw (0 the widest; default the last, the deepest)")
    args = parser.parse_args(argv)
    from .convergence_map import open_map
    from .filesystem import check_output_path

    suffix = os.path.splitext(args.output)[1].lower()
    try:
        if suffix not in (".png", ".pdf", ".svg"):
            raise SpecError(f"cannot tell the picture format of {args.output!r}; end it in .png, .pdf or .svg")
        if not 10 <= args.dpi <= 2400:
            raise SpecError(f"--dpi {args.dpi} is out of range; give 10 to 2400")
        cmap = open_map(args.map, args.frame)
        check_output_path(args.output)
        from .plot import save_plot

        save_plot(cmap, args.output, args.field, args.dpi, args.history)
    except DescentsimError as exc:
        return _fail(parser.prog, str(exc))
    except MemoryError:
        return _fail(parser.prog, f"not enough memory to draw {args.output!r} at --dpi {args.dpi}; give a lower --dpi")
    frame = cmap.provenance.get("zoom_frame")
    if frame is None:
        print(f"wrote {args.output}: {args.field} of {args.map}")
    else:
        default = " (the last; --frame N draws frame N)" if args.frame is None else ""
        print(f"wrote {args.output}: {args.field} of frame {frame} of the zoom {args.map}{default}")
    return 0


def _parse_center(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(np.isfinite(values)):
        raise SpecError(f"--center {text!r} is not X,Y; write the knob values, e.g. --center 0.5,-1.2")
    return (values[0], values[1] if len(values) == 2 else 0.0)


def zoom_main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(
        prog="descentsim-zoom",
        description="Zoom into a map: frames ever narrower around a point on its boundary, to one HDF5 file and "
        "an animation. Each frame is saved as it finishes; --resume continues an interrupted zoom.",
    )
    parser.add_argument("config", help="TOML file with the map spec of the first frame")
    parser.add_argument("-o", "--output", required=True, help="HDF5 file for the frames")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, as for descentsim-map")
    parser.add_argument("--frames", type=int, default=8, help="number of frames (default 8)")
    parser.add_argument("--factor", type=float, default=2.0, help="each frame this many times narrower (default 2)")
    parser.add_argument("--center", default=None, metavar="X,Y",
                        help="zoom on these knob values (default: follow the boundary nearest the window's middle)")
    parser.add_argument("--inside", default=None, metavar="OUTCOMES",
                        help="the boundary followed is that of these outcomes, e.g. converged (default: trainable)")
    parser.add_argument("--field", default="outcome", help="field the animation shows (default outcome)")
    parser.add_argument("--animation", default=None, metavar="PATH",
                        help="animation to write, .gif or .mp4 (default: OUTPUT's name with .gif, and .mp4 where "
                        "ffmpeg is installed)")
    parser.add_argument("--refine", type=int, default=0, metavar="LEVELS", help="compute each frame by adaptive refinement")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="engine: auto (the GPU where CuPy finds one, else cython), cython, cupy, gpu-host "
                             "(the GPU code on this processor, for checking) or numpy (the reference)")
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted zoom in OUTPUT")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT")
    args = parser.parse_args(argv)
    from .plot import check_field
    from .refine import check_levels
    from .lock import output_lock
    from .filesystem import check_output_path
    from .zoom import ZoomSettings, animation_paths, plan, read_zoom, render_frames, save_animation, write_zoom, zoom

    held = contextlib.ExitStack()  # the output's lock, from the checks to the last frame
    try:
        if args.resume and args.force:
            raise SpecError("--resume and --force contradict each other: resume a zoom, or start it over")
        spec = load_config(args.config, args.settings)
        settings = ZoomSettings(args.frames, args.factor, _parse_center(args.center), args.inside, args.refine)
        if args.refine:
            check_levels(spec, args.refine)
        check_field(args.field, refined=bool(args.refine))
        animations = animation_paths(args.output, args.animation)
        check_output_path(args.output)
        held.enter_context(output_lock(args.output))
        done, complete = [], False
        if os.path.lexists(args.output) and not args.force:
            if not args.resume:
                raise SpecError(f"output {args.output!r} exists; use --resume to continue it or --force to replace it")
            stored_spec, stored, done, complete = read_zoom(args.output)
            if (stored_spec, stored) != (spec, settings):
                raise SpecError(f"{args.output!r} holds another zoom; resume with the same options, or use --force")
        if complete and all(path.exists() for path in animations):
            print(f"{args.output} is already complete: nothing to do")
            return 0
        plan(spec, settings)

        def saved(frames) -> None:
            write_zoom(args.output, spec, settings, frames)
            x, y = frames[-1].spec.x, frames[-1].spec.y
            where = f"{x.name} {x.start:.10g} … {x.stop:.10g}" + ("" if y is None else f", {y.name} {y.start:.10g} … {y.stop:.10g}")
            print(f"frame {len(frames) - 1}: {where}", file=sys.stderr, flush=True)

        frames = zoom(spec, settings, args.backend, args.threads, done, on_frame=saved)
        images = render_frames(frames, settings.factor, args.field)
        for path in animations:
            save_animation(images, path, frames_file=args.output)
    except OutOfSpace as exc:
        _fail(parser.prog, str(exc))
        return EXIT_INCOMPLETE if exc.partial is not None else 2
    except DescentsimError as exc:
        return _fail(parser.prog, str(exc))
    except MemoryError:
        return _fail(parser.prog, "not enough memory for these frames; use fewer points or a smaller model")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; the frames finished are in {args.output}, --resume continues",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        held.close()
    stopped = frames[-1].provenance.get("zoom_stopped")
    if stopped:
        print(f"{parser.prog}: stopped after frame {len(frames) - 1}: {stopped}", file=sys.stderr)
    print(f"wrote {args.output} ({len(frames)} frames, zoom ×{settings.factor ** (len(frames) - 1):.4g}) and "
          + " and ".join(str(path) for path in animations))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(map_main())
