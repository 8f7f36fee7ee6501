"""HDF5 files of maps: one file per map, readable with h5py alone (and by xarray via h5netcdf).

Layout (format version 1):

* root attributes ``descentsim_format = "descentsim-map"``, ``format_version``, ``spec`` (the
  MapSpec as TOML text) and the provenance (package version, backend, arithmetic, dtype, threads, ranks, wall
  time, date, host);
* one dataset per axis, named after its knob, holding the coordinates, made an HDF5 dimension scale;
* one dataset per field (``outcome``, ``steps``, ...), shaped (ny, nx) or (nx,) for a one-row map,
  with its dimensions attached, chunked by tile and compressed. ``outcome`` carries CF
  ``flag_values``/``flag_meanings``;
* for an adaptively refined map only, ``refine_level`` (int8, same shape): the level at which each
  point was computed, −1 where it was copied (``descentsim.refine``);
* for a map of a network trained on one data set of at most 16 MiB, the group ``training_data`` with the
  arrays ``X`` and ``y`` it trained on and their sha256 (``descentsim.datasets.write_embedded``), so the
  file is self-contained: ``data_file = "MAP.h5"`` trains on them again.

Writes are atomic: the file is written beside the target under a hidden name, flushed to disk,
then renamed into place, so nothing half-written ever appears at the output path.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import h5py
import numpy as np

from .datasets import EMBEDDED_GROUP, DataError, DataSet, read_embedded, write_embedded
from .map_data import MapData
from .errors import DescentsimError, MapFileError, write_error
from .filecheck import check_outcomes, check_same, check_values, read_dataset
from .fields import FIELDS
from .history import History, read_history, write_history
from .filesystem import check_output_path, fsync_directory, temporary_prefix, umask
from .lock import output_lock
from .resources import release_freed_memory
from .outcome import Outcome
from .spec import MapSpec
from .tiles import Tile, default_tile_shape

FORMAT_NAME = "descentsim-map"
#: 2: the batch_loss and classes_predicted fields, the history group; final_loss is the full-data loss.
#: 3: thresholds.converge_window (the stored spec names it; older files were computed with a window of 1).
FORMAT_VERSION = 3
#: Fields a file of an older format lacks (they read as not computed): field → the version that added it.
ADDED_IN = {"batch_loss": 2, "classes_predicted": 2}
REFINE_LEVEL = "refine_level"
HISTORY = "history"
REFINE_DESCRIPTION = "refined maps: level (stride 2^level) at which the point was computed; -1 where copied"


def write_map(cmap: MapData, path: str | Path, partial: Path | None = None) -> None:
    """Write ``cmap`` to ``path`` atomically; ``partial``: the journal it was computed into, named if the
    write fails (``write_atomically``)."""

    def fill(f: h5py.File) -> None:
        write_format(f, FORMAT_NAME)
        write_node(f, cmap)

    write_atomically(path, fill, partial)


def write_tiles(path: str | Path, spec: MapSpec, provenance: dict, finished: Iterable[tuple[Tile, dict]],
                history: History | None = None, partial: Path | None = None, training: DataSet | None = None) -> None:
    """Write the map of ``spec`` whose fields come tile by tile from ``finished`` ((tile, fields) pairs,
    as ``journal.TileJournal.finished_tiles`` gives them) to ``path`` atomically, one tile in memory at a
    time; points of no tile stay not computed. ``partial``: the journal the tiles come from, named if
    the write fails (OutOfSpace for a full disk: the run can be resumed). ``training``: the data set to keep
    in the file (``datasets.write_embedded``), or None."""

    def fill(f: h5py.File) -> None:
        write_format(f, FORMAT_NAME)
        datasets = create_node(f, spec, provenance, history=history)
        if training is not None:
            write_embedded(f, training)
        for tile, fields in finished:
            region = tile.region[1] if spec.y is None else tile.region
            for name, ds in datasets.items():
                ds[region] = fields[name][0] if spec.y is None else fields[name]

    write_atomically(path, fill, partial)


def write_format(f: h5py.File, kind: str) -> None:
    f.attrs["descentsim_format"] = kind
    f.attrs["format_version"] = FORMAT_VERSION


def write_atomically(path: str | Path, fill: Callable[[h5py.File], None], partial: Path | None = None) -> None:
    """Write an HDF5 file whose contents ``fill`` creates, atomically: it appears at ``path`` complete or not
    at all, under the output's lock (``descentsim.lock``; refused while another run holds it).

    HDF5 builds the file in memory (its image is usually far smaller than the fields, being compressed)
    and only plain writes touch the disk, so a full disk or a failing device gives one error and leaves
    nothing behind: OutOfSpace (naming ``partial``, the journal of the finished work, if any) or MapFileError.
    """
    path = check_output_path(path)
    with output_lock(path):
        image = io.BytesIO()
        try:
            with h5py.File(image, "w") as f:
                fill(f)  # may read a journal: a failing disk shows here
        except OSError as exc:
            raise write_error(exc, path, partial) from None
        _remove_stale_temporaries(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise write_error(exc, path, partial) from None
        try:
            try:
                os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes it private; a map is meant to be shared
                _write_all(fd, image.getbuffer())
                del image
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise write_error(exc, path, partial) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        release_freed_memory()  # the image's memory, before the caller reads the map back
        fsync_directory(path.parent)


def _write_all(fd: int, data: memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (a short write at a full disk raises ENOSPC)."""
    with data:
        written = 0
        while written < len(data):
            step = os.write(fd, data[written : written + (1 << 26)])
            if step == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += step


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a writer killed mid-write (the caller holds the output's lock,
    so no other writer of ``path`` is at work)."""
    for stale in path.parent.glob(temporary_prefix(path) + "*.tmp"):
        stale.unlink(missing_ok=True)


def write_node(f: h5py.Group, cmap: MapData, training: bool = True) -> None:
    """Write ``cmap`` into ``f`` (a file's root or a group): spec and provenance attributes, axes, fields, and
    (``training``) the data set it trained on where it has one to keep."""
    arrays = dict(cmap.fields)
    if cmap.refinement is not None:
        arrays[REFINE_LEVEL] = cmap.refinement
    datasets = create_node(f, cmap.spec, cmap.provenance, refined=cmap.refinement is not None, history=cmap.recorded)
    for name, ds in datasets.items():
        ds[...] = arrays[name][0] if cmap.spec.y is None else arrays[name]
    if training and cmap.training is not None:
        write_embedded(f, cmap.training)


def create_node(f: h5py.Group, spec: MapSpec, provenance: dict, refined: bool = False,
                history: History | None = None) -> dict[str, h5py.Dataset]:
    """Spec and provenance attributes, axes and the (yet unwritten) field datasets of a map in ``f`` (a
    file's root or a group), each dataset filled with its field's not-computed marker; returns the field
    datasets (and ``refine_level`` if ``refined``) by name. Each chunk carries a Fletcher-32 checksum, so
    a damaged chunk is detected when read."""
    f.attrs["spec"] = spec.to_toml()
    f.attrs["model"] = spec.model
    f.attrs["dtype"] = spec.dtype
    for key, value in provenance.items():
        f.attrs[key] = np.asarray(value) if isinstance(value, (tuple, list)) else value

    scales = []
    for axis in (spec.y, spec.x):
        if axis is None:
            continue
        scale = f.create_dataset(axis.name, data=spec.axis_coordinates(axis))
        scale.attrs["long_name"] = axis.name
        scale.attrs["axis_scale"] = axis.scale
        scale.make_scale(axis.name)
        scales.append(scale)

    tile = tuple(provenance.get("tile_shape", default_tile_shape(spec.shape)))
    shape = stored_shape(spec)
    chunks = tile[-len(shape):]
    kinds = {name: (info.dtype, info.fill, info.description) for name, info in FIELDS.items()}
    if refined:
        kinds[REFINE_LEVEL] = (np.int8, -1, REFINE_DESCRIPTION)
    datasets = {}
    for name, (dtype, fill, description) in kinds.items():
        ds = f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, fillvalue=fill, compression="gzip",
                              compression_opts=4, shuffle=True, fletcher32=True)
        ds.attrs["description"] = description
        for dim, scale in enumerate(scales):
            ds.dims[dim].attach_scale(scale)
            ds.dims[dim].label = scale.attrs["long_name"]
        datasets[name] = ds
    if history is not None:
        write_history(f.create_group(HISTORY), history)
    outcome = f["outcome"]
    outcome.attrs["flag_values"] = np.array([o.value for o in Outcome], dtype=np.uint8)
    outcome.attrs["flag_meanings"] = " ".join(o.name.lower() for o in Outcome)
    return datasets


def read_training(f: h5py.Group, shown: str) -> DataSet | None:
    """The data set a file keeps at ``f`` (``datasets.read_embedded``), or None; MapFileError when damaged."""
    if EMBEDDED_GROUP not in f:
        return None
    try:
        return read_embedded(f, shown)
    except DataError as exc:
        raise MapFileError(str(exc)) from None


def read_map(path: str | Path) -> MapData:
    """Read a map file written by ``write_map``; MapFileError for anything else (a zoom file too: see
    ``descentsim.open_map``)."""
    f, shown = open_file(path)
    with f:
        check_format(f, shown)
        return read_node(f, shown)


def open_file(path: str | Path, writer: str = "descentsim-map") -> tuple[h5py.File, str]:
    """The HDF5 file at ``path`` (written by ``writer``) opened for reading, and its name as messages show
    it; MapFileError if it is missing or not HDF5."""
    path = Path(path)
    shown = repr(str(path))
    if not path.exists():
        raise MapFileError(f"no such map file: {shown}")
    if path.is_file() and not h5py.is_hdf5(path):
        if path.suffix == ".partial":
            raise MapFileError(f"{shown} is the journal of an unfinished run, not a map; finish the run with "
                               "descentsim-map CONFIG -o OUTPUT --resume and give OUTPUT")
        raise MapFileError(f"{shown} is not an HDF5 file; give a file written by {writer}")
    try:
        return h5py.File(path, "r"), shown
    except OSError as exc:
        raise MapFileError(f"cannot open {shown}: {exc}; check its permissions, or recompute the map") from None


def check_format(f: h5py.File, shown: str, kind: str = FORMAT_NAME, writer: str = "descentsim-map") -> None:
    if f.attrs.get("descentsim_format") != kind:
        raise MapFileError(f"{shown} was not written by {writer}; give a file written by {writer}")


def read_node(node: h5py.Group, shown: str, training: DataSet | None = None) -> MapData:
    """The map stored in ``node``: a map file's root, or a zoom frame's group (whose file keeps the data set it
    trained on once, for every frame: ``training``).

    Every dataset is checked against the stored spec before anything is believed (``descentsim.filecheck``):
    each field exactly the spec's shape ((ny, nx), or (nx,) for a one-row map) and its ``FIELDS`` dtype, the
    outcome codes members of ``Outcome``, the axes' coordinates the spec's, ``refine_level`` int8 from −1 to
    the refinement's levels, the ``history`` group as its spec's ``record`` says. A field added after the
    file's format version (``ADDED_IN``) reads as not computed.

    Raises
    ------
    MapFileError
        one line naming the file ``shown``, the dataset and what is wrong.
    """
    try:
        version = int(node.file.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise MapFileError(
                f"{shown} uses map format {version}, newer than this descentsim reads ({FORMAT_VERSION}); "
                "upgrade descentsim"
            )
        spec = MapSpec.from_toml_text(str(node.attrs["spec"]), source=f"the spec stored in {shown}", stored=True)
        skip = {"descentsim_format", "format_version", "spec", "model", "dtype"}
        prov = {k: _plain(v) for k, v in node.attrs.items() if k not in skip}
        _check_axes(node, spec, shown)
        fields = {name: _read_field(node, name, spec, shown, version) for name in FIELDS}
        check_outcomes(fields["outcome"], node, "outcome", shown)
        refinement = _read_refinement(node, spec, prov, shown) if REFINE_LEVEL in node else None
        if training is None:
            training = read_training(node, shown)
        if training is not None:
            spec.model_def.use_training_data(training)
        history = read_history(node, HISTORY, spec, shown) if spec.record else None
    except MapFileError:
        raise
    except (KeyError, ValueError, TypeError, OSError, DescentsimError) as exc:
        raise MapFileError(f"{shown} is damaged or incomplete ({exc}); recompute the map") from None
    return MapData(spec, fields, prov, refinement, history, training)


def stored_shape(spec: MapSpec) -> tuple[int, ...]:
    """The shape of a field's dataset: (ny, nx), or (nx,) for a one-row map."""
    return (spec.x.n,) if spec.y is None else spec.shape


def _read_field(node: h5py.Group, name: str, spec: MapSpec, shown: str, version: int) -> np.ndarray:
    """Field ``name`` shaped (ny, nx), checked; not computed if the file's format predates it."""
    info = FIELDS[name]
    if version < ADDED_IN.get(name, 0):
        return np.full(spec.shape, info.fill, dtype=info.dtype)
    return read_dataset(node, name, stored_shape(spec), info.dtype, shown).reshape(spec.shape)


def _check_axes(node: h5py.Group, spec: MapSpec, shown: str) -> None:
    """The coordinate datasets, named after the axes' knobs, must hold the spec's axis coordinates."""
    for which, axis in zip("xy", spec.axes):
        coords = read_dataset(node, axis.name, (axis.n,), np.float64, shown)
        check_same(coords, spec.axis_coordinates(axis), node, axis.name, shown,
                   f"the values of axis {which} ({axis.name} from {axis.start:g} to {axis.stop:g}, {axis.scale})")


def _read_refinement(node: h5py.Group, spec: MapSpec, provenance: dict, shown: str) -> np.ndarray:
    """``refine_level`` shaped (ny, nx): int8 levels from −1 (copied) to the refinement's levels."""
    levels = read_dataset(node, REFINE_LEVEL, stored_shape(spec), np.int8, shown).reshape(spec.shape)
    top = int(provenance.get("refine_levels", np.iinfo(np.int8).max))
    check_values(levels, (-1, top), node, REFINE_LEVEL, shown, f"a level from -1 to {top}", span=True)
    return levels


def _plain(value):
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
