"""Zoom sequences: maps of ever narrower windows around a point on a boundary, and their animation.

Frame 0 is the spec's own window. Frame i is ``factor``^i times narrower on both axes (in log10 |v|
on a log axis), centred on

* the fixed point ``center`` (knob values) when one is given, or
* the boundary point of the previous frame nearest to that frame's centre (``boundary.side``:
  trainable by default), so that the zoom follows a boundary down instead of drifting into a
  uniform region.

The frames go to one HDF5 file (``descentsim.zoom_file``), rewritten atomically after each frame (a
kill loses at most the frame in progress, and ``resume`` continues from the frames on file).

**Precision.** A knob value reaches the trajectories in the spec's precision (float64 or float32), so
a window is only resolved while neighbouring grid values stay at least ``MIN_ULPS`` units in the last
place apart: Δv ≥ MIN_ULPS · ε · max|v| over the window (ε = 2^−52 or 2^−23). ``plan`` checks every
frame against this before any work, and ``zoom`` checks each frame's window again as it is centred.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from . import boundary
from .convergence_map import ConvergenceMap, refine_map, run_map
from .errors import SpecError
from .plot import plot, write_picture
from .spec import Axis, MapSpec
from .filesystem import check_output_path
from . import zoom_file
from .zoom_file import FORMAT_NAME, ZoomSettings, write_zoom  # noqa: F401 (the zoom API in one place)

#: Neighbouring grid values must be at least this many units in the last place apart.
MIN_ULPS = 8


def window(axis: Axis, center: float, frame: int, factor: float) -> Axis:
    """``axis`` narrowed ``factor``^frame times around ``center`` (in log10 |v| on a log axis); an axis of
    one point stays as it is."""
    if frame == 0 or axis.n == 1:
        return axis
    if axis.scale == "log" and not center * axis.start > 0:
        raise SpecError(f"the centre {axis.name} = {center:g} is not on the log axis {axis.name} "
                        f"({axis.start:g} … {axis.stop:g}); give a value of the same sign, not zero")
    a, b = axis.scaled(axis.start), axis.scaled(axis.stop)
    half, mid = abs(b - a) / 2 / factor**frame, axis.scaled(center)
    start, stop = (mid - half, mid + half) if b >= a else (mid + half, mid - half)
    return Axis(axis.name, axis.unscaled(start), axis.unscaled(stop), axis.n, axis.scale)


def resolution_problem(axis: Axis, dtype: str) -> str | None:
    """Why ``axis`` is too narrow for ``dtype`` to resolve its grid (see the module docstring), or None."""
    values = axis.values()
    if values.size < 2:
        return None
    spacing = float(np.min(np.abs(np.diff(values))))
    eps = float(np.finfo(dtype).eps)
    biggest = float(np.max(np.abs(values)))
    if spacing >= MIN_ULPS * eps * biggest:
        return None
    return (
        f"neighbouring {axis.name} values would be {spacing:.2g} apart around {biggest:.6g}, "
        f"closer than {MIN_ULPS} {dtype} units in the last place ({MIN_ULPS * eps * biggest:.2g})"
    )


def frame_spec(spec: MapSpec, center: tuple[float, float], frame: int, factor: float) -> MapSpec:
    """The spec of frame ``frame`` centred on ``center``; SpecError if ``spec.dtype`` cannot resolve it."""
    axes = {"x": window(spec.x, center[0], frame, factor)}
    if spec.y is not None:
        axes["y"] = window(spec.y, center[1], frame, factor)
    for axis in axes.values():
        problem = resolution_problem(axis, spec.dtype)
        if problem:
            raise SpecError(
                f"frame {frame} is too narrow: {problem}; use at most {frame} frames, a smaller --factor, or "
                "fewer points"
            )
    return spec.replace(**axes)


def default_center(spec: MapSpec) -> tuple[float, float]:
    """The middle of the spec's window (geometric on a log axis)."""
    mid = [a.unscaled((a.scaled(a.start) + a.scaled(a.stop)) / 2) for a in spec.axes]
    return (mid[0], mid[1] if len(mid) > 1 else 0.0)


def plan(spec: MapSpec, settings: ZoomSettings) -> None:
    """Refuse, before any work, a zoom whose deepest frame the precision cannot resolve (around the fixed
    centre, or the window's middle when the zoom follows the boundary), one centred outside the map, and one
    that records points (the frames' windows move away from them)."""
    if spec.record:
        raise SpecError("a zoom cannot record points (its windows move); remove record from the config, "
                        "or record them on a single map with descentsim-map")
    for axis, value in zip(spec.axes, settings.center or ()):
        if not axis.contains(value):
            raise SpecError(f"the zoom centre {axis.name} = {value:g} lies outside the map ({axis.name} from "
                            f"{axis.start:g} to {axis.stop:g}); centre the zoom on a point of the map")
    center = settings.center or default_center(spec)
    for frame in range(settings.frames):
        frame_spec(spec, center, frame, settings.factor)


def next_center(cmap: ConvergenceMap, inside, current: tuple[float, float]) -> tuple[float, float]:
    """The boundary point of ``cmap`` nearest (in grid steps) to the centre of its window, as knob values
    (``current`` if the map has no boundary)."""
    mask = boundary.boundary_mask(cmap.side(inside))
    if not mask.any():
        return current
    iy, ix = np.nonzero(mask)
    ny, nx = cmap.shape
    k = int(np.argmin((iy - (ny - 1) / 2) ** 2 + (ix - (nx - 1) / 2) ** 2))
    return (float(cmap.x[ix[k]]), float(cmap.y[iy[k]]) if cmap.y is not None else 0.0)


def zoom(
    spec: MapSpec,
    settings: ZoomSettings,
    backend: str = "auto",
    threads: int | None = None,
    done: list[ConvergenceMap] | None = None,
    on_frame: Callable[[list[ConvergenceMap]], None] | None = None,
) -> list[ConvergenceMap]:
    """The frames of a zoom into ``spec`` (module docstring); ``done`` are frames already computed (from a
    resumed file), ``on_frame`` is called with the frames so far after each new one. If the boundary
    leads the zoom to where the precision cannot resolve a frame, the sequence ends early and the last
    frame's provenance says why (``zoom_stopped``).

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 1.0, 3.0, 33), y=Axis("a", 0.5, 2.0, 17), steps=100)
    >>> frames = zoom(spec, ZoomSettings(frames=3, factor=4, inside="converged"))
    >>> [round(f.spec.x.stop - f.spec.x.start, 4) for f in frames]
    [2.0, 0.5, 0.125]
    """
    plan(spec, settings)
    frames = list(done or [])
    center = settings.center or default_center(spec)
    for frame in range(settings.frames):
        if frame < len(frames):
            center = tuple(frames[frame].provenance["zoom_center"])
        else:
            try:
                fspec = frame_spec(spec, center, frame, settings.factor)
            except SpecError as limit:  # following the boundary led where plan() could not look
                if not frames:
                    raise
                frames[-1].provenance["zoom_stopped"] = str(limit)
                break
            cmap = refine_map(fspec, settings.refine, backend=backend, threads=threads) if settings.refine \
                else run_map(fspec, backend=backend, threads=threads)
            cmap.provenance.update(zoom_frame=frame, zoom_center=center)
            frames.append(cmap)
            if on_frame is not None:
                on_frame(frames)
        if settings.center is None:
            center = next_center(frames[frame], settings.sides, center)
    return frames


def read_zoom(path: str | Path) -> tuple[MapSpec, ZoomSettings, list[ConvergenceMap], bool]:
    """(spec, settings, frames, complete) of a zoom file, every frame checked as a map file is
    (``zoom_file.read_zoom``) and given the analyses of a ``ConvergenceMap``."""
    spec, settings, frames, complete = zoom_file.read_zoom(path)
    return spec, settings, [ConvergenceMap.of(frame) for frame in frames], complete


# --- animation -------------------------------------------------------------------------------------
def render_frames(
    frames: list[ConvergenceMap], factor: float, field: str = "outcome", dpi: int = 100
) -> list[np.ndarray]:
    """Each frame drawn (``descentsim.plot``) to an RGB array, with its magnification in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    images = []
    for i, cmap in enumerate(frames):
        ax = plot(cmap, field)
        ax.set_title(f"{ax.get_title()}\nframe {i}: zoom ×{factor ** i:.4g}", fontsize="medium")
        ax.figure.set_dpi(dpi)
        canvas = FigureCanvasAgg(ax.figure)
        canvas.draw()
        images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return images


def animation_paths(output: str | Path, requested: str | None = None) -> list[Path]:
    """Where the animation of a zoom written to ``output`` goes: ``requested`` (.gif or .mp4), else output's
    name with .gif, and with .mp4 too where ffmpeg is installed. SpecError for a path that cannot be used."""
    stem = Path(output).with_suffix("")
    paths = [Path(requested)] if requested else [stem.with_name(stem.name + ".gif")]
    if not requested and shutil.which("ffmpeg"):
        paths.append(stem.with_name(stem.name + ".mp4"))
    for path in paths:
        if path.suffix.lower() not in (".gif", ".mp4"):
            raise SpecError(f"cannot tell the animation format of {str(path)!r}; end it in .gif or .mp4")
        if path.suffix.lower() == ".mp4" and not shutil.which("ffmpeg"):
            raise SpecError("an MP4 needs ffmpeg, which is not installed; give --animation NAME.gif")
        check_output_path(path)
    return paths


def save_animation(images: list[np.ndarray], path: str | Path, seconds_per_frame: float = 0.8,
                   frames_file: str | Path | None = None) -> Path:
    """Write ``images`` as an animation, atomically: a GIF (Pillow) or, for a .mp4 path, an H.264 video
    (ffmpeg). ``frames_file``: the zoom file holding the frames, named (for --resume) if the disk is full."""
    path = Path(path)
    if path.suffix.lower() == ".mp4":
        return write_picture(path, lambda tmp: _save_mp4(images, tmp, seconds_per_frame), frames_file)
    from PIL import Image

    first, *rest = [Image.fromarray(image) for image in images]
    return write_picture(path, lambda tmp: first.save(
        tmp, format="GIF", save_all=True, append_images=rest, duration=int(seconds_per_frame * 1000), loop=0
    ), frames_file)


def _save_mp4(images: list[np.ndarray], path: Path, seconds_per_frame: float) -> None:
    ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
    height, width = (d - d % 2 for d in images[0].shape[:2])  # H.264 wants even sizes
    command = [
        ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-framerate", f"{1 / seconds_per_frame:g}", "-i", "-", "-r", "25", "-pix_fmt", "yuv420p", "-f", "mp4",
        str(path),
    ]
    frames = b"".join(np.ascontiguousarray(image[:height, :width]).tobytes() for image in images)
    try:
        subprocess.run(command, input=frames, check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        complaint = " ".join(exc.stderr.decode(errors="replace").split())  # ffmpeg's lines, as one
        raise RuntimeError(f"ffmpeg failed: {complaint[:200]}") from None
