"""The tile journal: finished tiles of a map in progress, safe against kill -9 at any moment.

A run that writes ``OUT.h5`` appends every finished tile to ``OUT.h5.partial`` and renames nothing
until the map is complete; then it assembles the HDF5 file (written atomically, see ``store``) and
deletes the journal. ``--resume`` reads the journal back and computes only the missing tiles.

File layout (all integers little-endian uint32):

* header: ``b"DSJ1"``, length, then that many bytes of JSON: the spec as TOML text, the tile shape,
  and the fields' names and dtypes;
* one record per finished tile: ``b"TILE"``, tile index, payload length, CRC-32 of the payload, then
  the payload: each field's values for the tile (row-major), in ``FIELDS`` order.

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
RECORD_HEADER = struct.Struct("<4sIII")  # magic, tile index, payload length, crc32
SYNC_INTERVAL = 1.0

#: Bytes a point takes in a record's payload: one value of every field.
POINT_BYTES = sum(np.dtype(info.dtype).itemsize for info in FIELDS.values())


def journal_path(output: str | Path) -> Path:
    """Where the journal of a run writing ``output`` lives."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def _header(spec: MapSpec, tile_shape: tuple[int, int]) -> bytes:
    meta = {
        "spec": spec.to_toml(),
        "tile_shape": list(tile_shape),
        "fields": {name: np.dtype(info.dtype).str for name, info in FIELDS.items()},
    }
    body = json.dumps(meta, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(body)) + body


class TileJournal:
    """An open journal: ``spec``, ``tile_shape``, ``done`` (tile index → fields), and ``append``."""

    def __init__(self, path: Path, spec: MapSpec, tile_shape: tuple[int, int], done: dict[int, dict]):
        self.path = path
        self.spec = spec
        self.tile_shape = tile_shape
        self.tiles = tiles(spec.shape, tile_shape)
        self.done = done
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._synced = time.monotonic()
        self.sync_seconds = 0.0  # time spent in fsync, for the coordinator's accounts

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, spec: MapSpec, tile_shape: tuple[int, int]) -> "TileJournal":
        """A new, empty journal (replacing any old one); it appears with its header complete."""
        fresh = path.with_name(path.name + ".new")
        with open(fresh, "wb") as f:
            f.write(_header(spec, tile_shape))
            f.flush()
            os.fsync(f.fileno())
        os.replace(fresh, path)
        fsync_directory(path.parent)
        return cls(path, spec, tile_shape, {})

    @classmethod
    def resume(cls, path: Path, spec: MapSpec) -> "TileJournal":
        """The journal at ``path``, its torn tail (if any) cut off; refused if it is for another spec."""
        stored, tile_shape, done, good_end = read_journal(path)
        if stored != spec:
            raise MapFileError(
                f"{str(path)!r} is a partial run of a different map; resume with the config it was started "
                "with, or use --force to start this one over"
            )
        if good_end < path.stat().st_size:
            os.truncate(path, good_end)
        return cls(path, spec, tile_shape, done)

    # --- writing ----------------------------------------------------------------------------------
    def append(self, tile: Tile, fields: dict[str, np.ndarray]) -> None:
        """Record a finished tile (one write of header and payload)."""
        payload = pack_fields(fields)
        header = RECORD_HEADER.pack(RECORD, tile.index, len(payload), zlib.crc32(payload))
        try:
            os.write(self._fd, header + payload)
        except OSError as exc:
            raise MapFileError(
                f"cannot add to the partial run {str(self.path)!r}: {exc.strerror}; free space or fix permissions, "
                "then rerun with --resume"
            ) from None
        self.done[tile.index] = fields
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
        spec = MapSpec.from_toml_text(meta["spec"], source=f"the spec stored in {str(path)!r}")
        tile_shape = tuple(meta["tile_shape"])
        if meta["fields"] != {name: np.dtype(info.dtype).str for name, info in FIELDS.items()}:
            raise ValueError("written by another version of descentsim")
    except (ValueError, KeyError, struct.error) as exc:
        raise MapFileError(f"{str(path)!r} is not a usable partial run ({exc}); delete it or use --force") from None
    layout = {t.index: t for t in tiles(spec.shape, tile_shape)}
    done: dict[int, dict] = {}
    offset = 8 + length
    for index, payload, end in _records(data, offset):
        tile = layout.get(index)
        if tile is None or len(payload) != tile.size * POINT_BYTES:
            break
        done[index] = unpack_fields(payload, tile)
        offset = end
    return spec, tile_shape, done, offset


def _records(data: bytes, offset: int) -> Iterator[tuple[int, bytes, int]]:
    """Intact records from ``offset``: (tile index, payload, end offset); stops at a torn one."""
    while offset + RECORD_HEADER.size <= len(data):
        magic, index, length, crc = RECORD_HEADER.unpack_from(data, offset)
        start, end = offset + RECORD_HEADER.size, offset + RECORD_HEADER.size + length
        if magic != RECORD or end > len(data) or zlib.crc32(data[start:end]) != crc:
            return
        yield index, data[start:end], end
        offset = end


def pack_fields(fields: dict[str, np.ndarray]) -> bytes:
    """A tile's fields as bytes: each field's values (row-major) in ``FIELDS`` order."""
    return b"".join(np.ascontiguousarray(fields[name], dtype=info.dtype).tobytes() for name, info in FIELDS.items())


def unpack_fields(payload: bytes, tile: Tile) -> dict[str, np.ndarray]:
    """The inverse of ``pack_fields`` for ``tile``."""
    fields, pos = {}, 0
    for name, info in FIELDS.items():
        size = tile.size * np.dtype(info.dtype).itemsize
        fields[name] = np.frombuffer(payload, dtype=info.dtype, count=tile.size, offset=pos).reshape(tile.shape)
        pos += size
    return fields
