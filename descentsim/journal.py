"""The tile journal: finished tiles of a map in progress, safe against kill -9 at any moment.

A run that writes ``OUT.h5`` appends every finished tile to ``OUT.h5.partial`` and renames nothing
until the map is complete; then it assembles the HDF5 file (written atomically, see ``store``) and
deletes the journal. ``--resume`` reads the journal back and computes only the missing tiles.

File layout (all integers little-endian uint32):

* header: ``b"DSJ1"``, length, then that many bytes of JSON: the spec as TOML text, the tile shape,
  and the fields' names and dtypes;
* one record per finished tile: ``b"TILE"``, tile index, payload length, CRC-32 of the payload, then
  the payload: each field's values for the tile (row-major), in ``FIELDS`` order.

A refined run (``descentsim.refine``) keeps a ``PointJournal`` instead: its header names the
refinement (levels, margin) instead of a tile shape, and each record, ``b"PNTS"`` with the level in
place of the tile index, holds any set of points: their flat grid indices (int64), then the fields.

Records are only ever appended. A kill in the middle of an append leaves a torn last record, which
the reader recognises (short, or wrong CRC) and cuts off; everything before it is intact. The file is
written to the operating system with every record (a killed process loses nothing) and synced to
disk when a record comes more than ``SYNC_INTERVAL`` seconds after the last sync, and when the run
stops; a crashed node can lose the records since the last sync.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import MapFileError
from .store import fsync_directory
from .fields import FIELDS, empty_fields
from .spec import MapSpec
from .tiles import Tile, tiles

MAGIC = b"DSJ1"
RECORD = b"TILE"
POINTS_RECORD = b"PNTS"
RECORD_HEADER = struct.Struct("<4sIII")  # magic, tile index (or level), payload length, crc32
SYNC_INTERVAL = 1.0

#: Bytes a point takes in a record's payload: one value of every field.
POINT_BYTES = sum(np.dtype(info.dtype).itemsize for info in FIELDS.values())


def journal_path(output: str | Path) -> Path:
    """Where the journal of a run writing ``output`` lives."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _header(spec: MapSpec, **layout) -> bytes:
    meta = {"spec": spec.to_toml(), "fields": _field_types(), **layout}
    body = json.dumps(meta, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(body)) + body


def _field_types() -> dict[str, str]:
    return {name: np.dtype(info.dtype).str for name, info in FIELDS.items()}


def _create(path: Path, header: bytes) -> None:
    """A new journal file holding only ``header`` (replacing any old one), appearing complete."""
    fresh = path.with_name(path.name + ".new")
    with open(fresh, "wb") as f:
        f.write(header)
        f.flush()
        os.fsync(f.fileno())
    os.replace(fresh, path)
    fsync_directory(path.parent)


def _read_header(path: Path, layout: str) -> tuple[bytes, dict, MapSpec, int]:
    """(file bytes, header table, spec, offset of the first record) of the journal at ``path``, which must
    record its layout under the key ``layout`` (``tile_shape`` or ``refine``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MapFileError(
            f"cannot read the partial run {str(path)!r}: {exc.strerror}; check its permissions, or use --force to start over"
        ) from None
    try:
        if data[:4] != MAGIC:
            raise ValueError("not a descentsim journal")
        (length,) = struct.unpack_from("<I", data, 4)
        meta = json.loads(data[8 : 8 + length])
        spec = MapSpec.from_toml_text(meta["spec"], source=f"the spec stored in {str(path)!r}", stored=True)
        if meta["fields"] != _field_types():
            raise ValueError("written by another version of descentsim")
    except (ValueError, KeyError, struct.error) as exc:
        raise MapFileError(f"{str(path)!r} is not a usable partial run ({exc}); delete it or use --force") from None
    if layout not in meta:
        kind = "a refined (--refine)" if "refine" in meta else "an unrefined"
        raise MapFileError(
            f"{str(path)!r} is {kind} partial run; resume it with the options it was started with, or use --force"
        )
    return data, meta, spec, 8 + length


def _refuse_other_spec(path: Path, stored: MapSpec, spec: MapSpec) -> None:
    if stored != spec:
        raise MapFileError(
            f"{str(path)!r} is a partial run of a different map; resume with the config it was started "
            "with, or use --force to start this one over"
        )


class _AppendOnly:
    """The writing end of a journal: whole records appended in one write each, synced now and then."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._synced = time.monotonic()
        self.sync_seconds = 0.0  # time spent in fsync, for the coordinator's accounts

    def _write_record(self, magic: bytes, index: int, payload: bytes) -> None:
        header = RECORD_HEADER.pack(magic, index, len(payload), zlib.crc32(payload))
        try:
            os.write(self._fd, header + payload)
        except OSError as exc:
            raise MapFileError(
                f"cannot add to the partial run {str(self.path)!r}: {exc.strerror}; free space or fix permissions, "
                "then rerun with --resume"
            ) from None
        if time.monotonic() - self._synced > SYNC_INTERVAL:
            self.sync()

    def sync(self) -> None:
        began = time.monotonic()
        os.fsync(self._fd)
        self._synced = time.monotonic()
        self.sync_seconds += self._synced - began

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class TileJournal(_AppendOnly):
    """An open journal: ``spec``, ``tile_shape``, ``done`` (tile index → fields), and ``append``."""

    def __init__(self, path: Path, spec: MapSpec, tile_shape: tuple[int, int], done: dict[int, dict]):
        super().__init__(path)
        self.spec = spec
        self.tile_shape = tile_shape
        self.tiles = tiles(spec.shape, tile_shape)
        self.done = done

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, spec: MapSpec, tile_shape: tuple[int, int]) -> "TileJournal":
        """A new, empty journal (replacing any old one); it appears with its header complete."""
        _create(path, _header(spec, tile_shape=list(tile_shape)))
        return cls(path, spec, tile_shape, {})

    @classmethod
    def resume(cls, path: Path, spec: MapSpec) -> "TileJournal":
        """The journal at ``path``, its torn tail (if any) cut off; refused if it is for another spec."""
        stored, tile_shape, done, good_end = read_journal(path)
        _refuse_other_spec(path, stored, spec)
        if good_end < path.stat().st_size:
            os.truncate(path, good_end)
        return cls(path, spec, tile_shape, done)

    # --- writing ----------------------------------------------------------------------------------
    def append(self, tile: Tile, fields: dict[str, np.ndarray]) -> None:
        """Record a finished tile (one write of header and payload)."""
        self._write_record(RECORD, tile.index, pack_fields(fields))
        self.done[tile.index] = fields

    # --- reading ----------------------------------------------------------------------------------
    @property
    def missing(self) -> list[Tile]:
        return [t for t in self.tiles if t.index not in self.done]

    def assemble(self) -> dict[str, np.ndarray]:
        """The map's fields from the finished tiles (missing ones stay NOT_COMPUTED)."""
        out = empty_fields(self.spec.shape)
        for tile in self.tiles:
            fields = self.done.get(tile.index)
            if fields is not None:
                for name in FIELDS:
                    out[name][tile.region] = fields[name]
        return out


def read_journal(path: Path) -> tuple[MapSpec, tuple[int, int], dict[int, dict], int]:
    """(spec, tile shape, finished tiles, end of the last intact record) of the journal at ``path``."""
    data, meta, spec, offset = _read_header(path, "tile_shape")
    tile_shape = tuple(meta["tile_shape"])
    layout = {t.index: t for t in tiles(spec.shape, tile_shape)}
    done: dict[int, dict] = {}
    for index, payload, end in _records(data, offset, RECORD):
        tile = layout.get(index)
        if tile is None or len(payload) != tile.size * POINT_BYTES:
            break
        done[index] = unpack_fields(payload, tile.size, tile.shape)
        offset = end
    return spec, tile_shape, done, offset


def _records(data: bytes, offset: int, kind: bytes) -> Iterator[tuple[int, bytes, int]]:
    """Intact records of ``kind`` from ``offset``: (index, payload, end offset); stops at a torn one."""
    while offset + RECORD_HEADER.size <= len(data):
        magic, index, length, crc = RECORD_HEADER.unpack_from(data, offset)
        start, end = offset + RECORD_HEADER.size, offset + RECORD_HEADER.size + length
        if magic != kind or end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        yield index, data[start:end], end
        offset = end


def pack_fields(fields: dict[str, np.ndarray]) -> bytes:
    """A tile's fields as bytes: each field's values (row-major) in ``FIELDS`` order."""
    return b"".join(np.ascontiguousarray(fields[name], dtype=info.dtype).tobytes() for name, info in FIELDS.items())


def unpack_fields(payload: bytes, count: int, shape: tuple[int, ...], offset: int = 0) -> dict[str, np.ndarray]:
    """The inverse of ``pack_fields`` for ``count`` points from byte ``offset``, each field shaped ``shape``."""
    fields, pos = {}, offset
    for name, info in FIELDS.items():
        fields[name] = np.frombuffer(payload, dtype=info.dtype, count=count, offset=pos).reshape(shape)
        pos += count * np.dtype(info.dtype).itemsize
    return fields


class PointJournal(_AppendOnly):
    """The journal of a refined run: the points computed so far, by flat grid index, for ``lookup``."""

    def __init__(self, path: Path, spec: MapSpec, refine: dict, records: list[tuple[np.ndarray, dict]]):
        super().__init__(path)
        self.spec = spec
        self.refine = refine
        self.records = records
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def create(cls, path: Path, spec: MapSpec, refine: dict) -> "PointJournal":
        """A new, empty journal of a run refining ``spec`` as ``refine`` (levels, margin) says."""
        _create(path, _header(spec, refine=refine))
        return cls(path, spec, refine, [])

    @classmethod
    def resume(cls, path: Path, spec: MapSpec, refine: dict) -> "PointJournal":
        """The journal at ``path``, its torn tail cut off; refused if for another spec or refinement."""
        data, meta, stored, offset = _read_header(path, "refine")
        _refuse_other_spec(path, stored, spec)
        if meta["refine"] != refine:
            raise MapFileError(
                f"{str(path)!r} is a partial run refined with {meta['refine']}, not {refine}; resume with the "
                "same --refine, or use --force to start over"
            )
        records = []
        for _, payload, end in _records(data, offset, POINTS_RECORD):
            count, rest = divmod(len(payload), 8 + POINT_BYTES)
            if rest:
                break
            flat = np.frombuffer(payload, dtype="<i8", count=count)
            records.append((flat, unpack_fields(payload, count, (count,), offset=8 * count)))
            offset = end
        if offset < len(data):
            os.truncate(path, offset)
        return cls(path, spec, refine, records)

    def append(self, level: int, flat: np.ndarray, fields: dict[str, np.ndarray]) -> None:
        """Record the fields of the points at flat grid indices ``flat``, computed at ``level``."""
        flat = np.ascontiguousarray(flat, dtype="<i8")
        self._write_record(POINTS_RECORD, level, flat.tobytes() + pack_fields(fields))
        self.records.append((flat, fields))
        self._index = None

    @property
    def points(self) -> int:
        return sum(flat.size for flat, _ in self.records)

    def lookup(self, flat: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(which of ``flat`` are recorded, their fields in that order)."""
        if self._index is None:
            every = np.concatenate([f for f, _ in self.records] + [np.empty(0, np.int64)])
            order = np.argsort(every, kind="stable")
            values = {name: np.concatenate([r[name] for _, r in self.records] + [np.empty(0, info.dtype)])[order]
                      for name, info in FIELDS.items()}
            self._index = (every[order], values)
        known, values = self._index
        pos = np.searchsorted(known, flat)
        found = pos < known.size
        found[found] = known[pos[found]] == flat[found]
        return found, {name: v[pos[found]] for name, v in values.items()}
