"""Zoom files: the frames of a zoom (``descentsim.zoom``) in one HDF5 file, and the settings that made them.

Root attributes ``descentsim_format = "descentsim-zoom"``, the spec of frame 0 (``spec``), the settings
(``zoom_frames``, ``zoom_factor``, ``zoom_center``, ``zoom_inside``, ``zoom_refine``) and ``complete``;
one group per frame (``frames/000``, ...) laid out like a map file (``descentsim.store``), its
provenance saying which frame it is (``zoom_frame``) and where it was centred (``zoom_center``). The
file is rewritten atomically after each frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import boundary
from .errors import MapFileError, SpecError
from .filecheck import damaged
from .datasets import DataSet, write_embedded
from .map_data import MapData
from .spec import MapSpec
from .store import check_format, open_file, read_node, read_training, write_atomically, write_format, write_node

FORMAT_NAME = "descentsim-zoom"


@dataclass(frozen=True)
class ZoomSettings:
    """How to zoom: ``frames`` maps, each ``factor`` times narrower, around ``center`` (knob values
    (x, y); None: follow the boundary of side ``inside``), each computed with ``refine`` levels."""

    frames: int = 8
    factor: float = 2.0
    center: tuple[float, float] | None = None
    inside: str | None = None
    refine: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 1 <= self.frames <= 1000:
            raise SpecError(f"frames must be a whole number from 1 to 1000, got {self.frames!r}")
        if not isinstance(self.factor, (int, float)) or not 1.0 < self.factor <= 1e6:
            raise SpecError(f"the zoom factor must be a number above 1 (each frame that many times narrower), got {self.factor!r}")
        if self.center is not None:
            object.__setattr__(self, "center", tuple(float(c) for c in self.center))
        if self.inside is not None:
            boundary.side({"outcome": np.zeros(1, np.uint8)}, self.sides)  # refuses unknown outcome names

    @property
    def sides(self) -> list[str] | None:
        """The outcomes on the inside of the boundary followed (``inside`` split at commas), None: trainable."""
        return None if not self.inside else [name.strip() for name in self.inside.split(",")]

    def to_attrs(self) -> dict:
        attrs = {"frames": self.frames, "factor": float(self.factor), "inside": self.inside or "", "refine": self.refine}
        if self.center is not None:
            attrs["center"] = np.array(self.center)
        return attrs



def write_zoom(path: str | Path, spec: MapSpec, settings: ZoomSettings, frames: list[MapData]) -> None:
    """Write the frames so far to ``path`` atomically; ``complete`` once all ``settings.frames`` are there, or
    the zoom stopped at the precision limit."""
    def fill(f) -> None:
        write_format(f, FORMAT_NAME)
        f.attrs["spec"] = spec.to_toml()
        for key, value in settings.to_attrs().items():
            f.attrs[f"zoom_{key}"] = value
        f.attrs["complete"] = len(frames) == settings.frames or "zoom_stopped" in frames[-1].provenance
        for i, cmap in enumerate(frames):
            write_node(f.create_group(f"frames/{i:03d}"), cmap, training=False)
        if frames and frames[0].training is not None:  # every frame's: the axes alone differ
            write_embedded(f, frames[0].training)

    saved = Path(path) if len(frames) > 1 and Path(path).exists() else None  # the frames before this one
    write_atomically(path, fill, partial=saved)


def read_zoom(path: str | Path) -> tuple[MapSpec, ZoomSettings, list[MapData], bool]:
    """(spec, settings, frames, complete) of a zoom file written by ``write_zoom``, every frame checked as a
    map file is (``store.read_node``). ``descentsim.open_map(path, frame=N)`` reads one frame.

    Raises
    ------
    MapFileError
        for a file that is not a zoom, or one that was edited or damaged (one line naming what is wrong).
    """
    f, shown = open_file(path, "descentsim-zoom")
    with f:
        check_format(f, shown, FORMAT_NAME, "descentsim-zoom")
        spec, settings, complete = _read_settings(f, shown)
        training = read_training(f, shown)
        frames = [_read_frame(group, i, shown, training) for i, group in enumerate(_frame_groups(f, settings, shown))]
    return spec, settings, frames, complete


def read_frame(f, shown: str, frame: int | None = None) -> MapData:
    """Frame ``frame`` of the open zoom file ``f`` (0 is the widest window; negative counts from the end, as
    Python's indices do): by default the last, the deepest. MapFileError names the frames there are."""
    groups = _frame_groups(f, _read_settings(f, shown)[1], shown)
    if not groups:
        raise MapFileError(f"{shown} is a zoom with no frame finished yet; resume it with descentsim-zoom --resume")
    if frame is None:
        frame = len(groups) - 1
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not -len(groups) <= frame < len(groups):
        raise MapFileError(f"{shown} has no frame {frame!r}; its frames are {frames_range(len(groups))}")
    return _read_frame(groups[frame], frame % len(groups), shown, read_training(f, shown))


def _read_frame(group, index: int, shown: str, training: DataSet | None) -> MapData:
    """The map of frame ``index`` in ``group``, checked as a map file is; its provenance must say which frame
    it is (``zoom_frame``) and where it was centred (``zoom_center``, two knob values). ``training``: the data set
    the file keeps for every frame (``store.read_training``)."""
    cmap = read_node(group, shown, training)
    center = cmap.provenance.get("zoom_center")
    if cmap.provenance.get("zoom_frame") != index or np.shape(center) != (2,):
        raise damaged(shown, f"group {group.name.lstrip('/')!r}", f"does not say it is frame {index} "
                      "(attributes zoom_frame and zoom_center)")
    return cmap


def frames_range(count: int) -> str:
    """The frames of a zoom of ``count`` frames as messages say them: "0 to 7 (the default is the last, 7)"."""
    return f"0 to {count - 1} (the default is the last, {count - 1})" if count > 1 else "0 (the only one)"


def _read_settings(f, shown: str) -> tuple[MapSpec, ZoomSettings, bool]:
    """(spec, settings, complete) from the root attributes of the open zoom file ``f``."""

    try:
        spec = MapSpec.from_toml_text(str(f.attrs["spec"]), source=f"the spec stored in {shown}", stored=True)
        center = f.attrs.get("zoom_center")
        if center is not None and np.shape(center) != (2,):
            raise damaged(shown, "attribute 'zoom_center'", f"is shaped {np.shape(center)}, not (2,)")
        settings = ZoomSettings(
            frames=int(f.attrs["zoom_frames"]), factor=float(f.attrs["zoom_factor"]),
            center=None if center is None else tuple(center), inside=str(f.attrs["zoom_inside"]) or None,
            refine=int(f.attrs["zoom_refine"]),
        )
        return spec, settings, bool(f.attrs["complete"])
    except (KeyError, ValueError, TypeError, SpecError) as exc:
        raise MapFileError(f"{shown} is damaged or incomplete ({exc}); compute the zoom again") from None


def _frame_groups(f, settings: ZoomSettings, shown: str) -> list:
    """The frames' groups of the open zoom file ``f`` in order: ``frames/000``, ``frames/001``, ..., at most
    ``settings.frames`` of them."""

    names = sorted(f.get("frames", {}))
    if names != [f"{i:03d}" for i in range(len(names))]:
        raise damaged(shown, "group 'frames'", f"holds frames {', '.join(names)}, not numbered 000 to {len(names) - 1:03d}")
    if len(names) > settings.frames:
        raise damaged(shown, "group 'frames'", f"holds {len(names)} frames of a zoom of {settings.frames}")
    return [f["frames"][name] for name in names]
