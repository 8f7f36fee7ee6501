"""The tile journal: finished tiles of a map in progress, safe against kill -9 at any moment.

A run that writes ``OUT.h5`` appends every finished tile to ``OUT.h5.partial`` and renames nothing
until the map is complete; then it writes the HDF5 file from the journal, tile by tile (written atomically, see ``store``) and
deletes the journal. ``--resume`` reads the journal back and computes only the missing tiles.

File layout (all integers little-endian uint32):

* header: ``b"DSJ2"``, length, CRC-32 of the JSON, then that many bytes of JSON: the spec as TOML
  text, the tile shape, and the fields' names and dtypes;
* one record per finished tile: ``b"TILE"``, tile index, payload length, CRC-32 of the record (the
  magic, index and length, then the payload), then the payload: each field's values for the tile
  (row-major), in ``FIELDS`` order. Every byte that decides where data land is under a CRC.

A refined run (``descentsim.refine``) keeps a ``PointJournal`` instead: its header names the
refinement (levels, margin) instead of a tile shape, and each record, ``b"PNTS"`` with the level in
place of the tile index, holds any set of points: their flat grid indices (int64), then the fields.

Records are only ever appended. A kill in the middle of an append leaves a torn last record, which
the reader recognises (short, or wrong CRC) and cuts off; everything before it is intact. A damaged
record further back (a flipped bit on disk) is skipped: the reader looks for the next intact record
after it, and the damaged record's tile or points are computed again. A failed append (a full disk)
is cut off at once, so the journal stays clean for ``--resume``. The file is
written to the operating system with every record (a killed process loses nothing) and synced to
disk when a record comes more than ``SYNC_INTERVAL`` seconds after the last sync, and when the run
stops; a crashed node can lose the records since the last sync.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import struct
import time
import warnings
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import MapFileError, write_error
from .filesystem import fsync_directory
from .fields import FIELDS, POINT_BYTES
from .spec import MapSpec
from .tiles import Tile, tiles

MAGIC = b"DSJ2"
RECORD = b"TILE"
POINTS_RECORD = b"PNTS"
HEADER = struct.Struct("<4sII")  # magic, length of the JSON, crc32 of the JSON
RECORD_HEADER = struct.Struct("<4sIII")  # magic, tile index (or level), payload length, crc32 of the record
SYNC_INTERVAL = 1.0


def journal_path(output: str | Path) -> Path:
    """Where the journal of a run writing ``output`` lives."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def journal_temporary(partial: Path) -> Path:
    """Where a new journal is written before it is renamed into place (the longest name a run makes)."""
    return partial.with_name(partial.name + ".new")


def _header(spec: MapSpec, **layout) -> bytes:
    meta = {"spec": spec.to_toml(), "fields": _field_types(), **layout}
    body = json.dumps(meta, sort_keys=True).encode()
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def _field_types() -> dict[str, str]:
    return {name: np.dtype(info.dtype).str for name, info in FIELDS.items()}


def record_crc(magic: bytes, index: int, payload: bytes | memoryview) -> int:
    """CRC-32 of a record: its magic, index and length, then its payload."""
    return zlib.crc32(payload, zlib.crc32(struct.pack("<4sII", magic, index, len(payload))))


def _create(path: Path, header: bytes) -> None:
    """A new journal file holding only ``header`` (replacing any old one), appearing complete; nothing is
    left behind if it cannot be written (OutOfSpace on a full disk)."""
    fresh = journal_temporary(path)
    try:
        with open(fresh, "wb") as f:
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(fresh, path)
    except OSError as exc:
        fresh.unlink(missing_ok=True)
        raise write_error(exc, path) from None
    fsync_directory(path.parent)


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The bytes of the journal at ``path``, mapped rather than read (a journal can be as large as its map)."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise MapFileError(
            f"cannot read the partial run {str(path)!r}: {exc.strerror}; check its permissions, or use --force to start over"
        ) from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def _read_header(data: bytes | mmap.mmap, path: Path, layout: str) -> tuple[dict, MapSpec, int]:
    """(header table, spec, offset of the first record) of the journal ``data`` (read from ``path``), which must
    record its layout under the key ``layout`` (``tile_shape`` or ``refine``)."""
    try:
        if data[:3] != MAGIC[:3]:
            raise ValueError("not a descentsim journal")
        if data[:4] != MAGIC:
            raise ValueError("written by another version of descentsim")
        _, length, crc = HEADER.unpack_from(data, 0)
        body = bytes(data[HEADER.size : HEADER.size + length])
        if len(body) != length or zlib.crc32(body) != crc:
            raise ValueError("its header is damaged")
        meta = json.loads(body)
        spec = MapSpec.from_toml_text(meta["spec"], source=f"the spec stored in {str(path)!r}", stored=True)
        if meta["fields"] != _field_types():
            raise ValueError("written by another version of descentsim")
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise MapFileError(f"{str(path)!r} is not a usable partial run ({exc}); delete it or use --force") from None
    if layout not in meta:
        kind = "a refined (--refine)" if "refine" in meta else "an unrefined"
        raise MapFileError(
            f"{str(path)!r} is {kind} partial run; resume it with the options it was started with, or use --force"
        )
    return meta, spec, HEADER.size + length


def _compact(path: Path, header_end: int, keep: list[tuple[int, int]]) -> None:
    """Rewrite the journal at ``path`` with its header and only the records spanning ``keep`` ((start, end)
    byte ranges), atomically: damaged records (already dropped) are not found, and warned about, again."""
    with _mapped(path) as data:
        kept = [bytes(data[:header_end])] + [bytes(data[start:end]) for start, end in keep]
    _create(path, b"".join(kept))


def _refuse_other_spec(path: Path, stored: MapSpec, spec: MapSpec) -> None:
    if stored != spec:
        raise MapFileError(
            f"{str(path)!r} is a partial run of a different map; resume with the config it was started "
            "with, or use --force to start this one over"
        )


class DamagedJournal(UserWarning):
    """A resumed journal held damaged records: they were dropped, and their work is done again."""


def _warn_damaged(path: Path, damaged: int, what: str) -> None:
    if damaged:
        warnings.warn(f"{damaged} damaged record{'s' if damaged > 1 else ''} in {str(path)!r} dropped (a failing "
                      f"disk?); their {what} are computed again", DamagedJournal, stacklevel=3)


class _AppendOnly:
    """The writing end of a journal: whole records appended in one write each, synced now and then.

    ``end`` is the end of the last intact record (the file's size while the run appends); ``damaged``
    counts the damaged records found (and skipped) when the journal was read back.
    """

    def __init__(self, path: Path, end: int, damaged: int = 0):
        self.path = path
        self.end = end
        self.damaged = damaged
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._synced = time.monotonic()
        self.sync_seconds = 0.0  # time spent in fsync, for the coordinator's accounts

    def _write_record(self, magic: bytes, index: int, payload: bytes) -> int:
        """Append one record; returns the offset of its payload. On failure the journal is cut back to its
        last intact record and OutOfSpace (full disk) or MapFileError raised: the run can be resumed."""
        record = RECORD_HEADER.pack(magic, index, len(payload), record_crc(magic, index, payload)) + payload
        try:
            written = os.write(self._fd, record)
            if written != len(record):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a short write: the disk filled up
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self.end)
            except OSError:
                pass  # the reader cuts a torn record off anyway
            raise write_error(exc, self.path, partial=self.path) from None
        start = self.end + RECORD_HEADER.size
        self.end += len(record)
        if time.monotonic() - self._synced > SYNC_INTERVAL:
            self.sync()
        return start

    def sync(self) -> None:
        began = time.monotonic()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise write_error(exc, self.path, partial=self.path) from None
        self._synced = time.monotonic()
        self.sync_seconds += self._synced - began

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class TileJournal(_AppendOnly):
    """An open journal: ``spec``, ``tile_shape``, ``done`` (tile index → offset of its payload in the
    file: the fields stay on disk, read back by ``tile_fields``), and ``append``."""

    def __init__(self, path: Path, spec: MapSpec, tile_shape: tuple[int, int], done: dict[int, int], end: int,
                 damaged: int = 0):
        super().__init__(path, end, damaged)
        self.spec = spec
        self.tile_shape = tile_shape
        self.tiles = tiles(spec.shape, tile_shape)
        self.done = done

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, spec: MapSpec, tile_shape: tuple[int, int]) -> "TileJournal":
        """A new, empty journal (replacing any old one); it appears with its header complete."""
        header = _header(spec, tile_shape=list(tile_shape))
        _create(path, header)
        return cls(path, spec, tile_shape, {}, len(header))

    @classmethod
    def resume(cls, path: Path, spec: MapSpec) -> "TileJournal":
        """The journal at ``path``, its torn tail (if any) cut off; refused if it is for another spec."""
        stored, tile_shape, done, good_end, damaged = read_journal(path)
        _refuse_other_spec(path, stored, spec)
        _warn_damaged(path, damaged, "tiles")
        if damaged:
            size = {t.index: t.size * POINT_BYTES for t in tiles(spec.shape, tile_shape)}
            keep = sorted((start - RECORD_HEADER.size, start + size[index]) for index, start in done.items())
            _compact(path, _header_end(path), keep)
            stored, tile_shape, done, good_end, _ = read_journal(path)
        elif good_end < path.stat().st_size:
            os.truncate(path, good_end)
        return cls(path, spec, tile_shape, done, good_end, damaged)

    # --- writing ----------------------------------------------------------------------------------
    def append(self, tile: Tile, fields: dict[str, np.ndarray]) -> None:
        """Record a finished tile (one write of header and payload)."""
        self.done[tile.index] = self._write_record(RECORD, tile.index, pack_fields(fields))

    # --- reading ----------------------------------------------------------------------------------
    @property
    def missing(self) -> list[Tile]:
        return [t for t in self.tiles if t.index not in self.done]

    def finished_tiles(self) -> Iterator[tuple[Tile, dict[str, np.ndarray]]]:
        """(tile, its fields) of every finished tile, in tile order, read back from the file one at a time."""
        with open(self.path, "rb") as f:
            for tile in self.tiles:
                if tile.index in self.done:
                    f.seek(self.done[tile.index])
                    yield tile, unpack_fields(f.read(tile.size * POINT_BYTES), tile.size, tile.shape)



def read_journal(path: Path) -> tuple[MapSpec, tuple[int, int], dict[int, int], int, int]:
    """(spec, tile shape, finished tiles (index → payload offset), end of the last intact record, damaged
    records skipped) of the journal at ``path``.

    A record whose CRC holds but that does not fit the layout (an index off the map, a wrong length)
    counts as damaged too; of two intact records of one tile the first is kept (they hold the same bytes).
    """
    with _mapped(path) as data:
        meta, spec, offset = _read_header(data, path, "tile_shape")
        found, end, damaged = _records(data, offset, RECORD)
    tile_shape = tuple(meta["tile_shape"])
    layout = {t.index: t for t in tiles(spec.shape, tile_shape)}
    done: dict[int, int] = {}
    for index, start, length in found:
        tile = layout.get(index)
        if tile is None or length != tile.size * POINT_BYTES:
            damaged += 1
        else:
            done.setdefault(index, start)
    return spec, tile_shape, done, end, damaged


def _records(data: bytes, offset: int, kind: bytes) -> tuple[list[tuple[int, int, int]], int, int]:
    """The intact records of ``kind`` from ``offset``: ([(index, payload offset, payload length)], end of
    the last one, how many damaged stretches lay between them).

    After a damaged record the scan moves on to the next place where an intact record begins (its CRC
    covers its header, so a false start is as unlikely as a CRC collision); a damaged stretch at the end
    is a torn last record, cut off by the caller, and not counted.
    """
    found: list[tuple[int, int, int]] = []
    end, damaged, lost = offset, 0, False
    with memoryview(data) as view:
        while offset + RECORD_HEADER.size <= len(data):
            magic, index, length, crc = RECORD_HEADER.unpack_from(view, offset)
            start = offset + RECORD_HEADER.size
            if magic == kind and start + length <= len(data) and record_crc(kind, index, view[start : start + length]) == crc:
                found.append((index, start, length))
                damaged += lost
                end, offset, lost = start + length, start + length, False
                continue
            lost = True
            offset = data.find(kind, offset + 1)
            if offset < 0:
                break
    return found, end, damaged


def _header_end(path: Path) -> int:
    """Offset of the first record of the journal at ``path`` (its header read before)."""
    with open(path, "rb") as f:
        _, length, _ = HEADER.unpack(f.read(HEADER.size))
    return HEADER.size + length


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

    def __init__(self, path: Path, spec: MapSpec, refine: dict, records: list[tuple[np.ndarray, dict]], end: int,
                 damaged: int = 0):
        super().__init__(path, end, damaged)
        self.spec = spec
        self.refine = refine
        self.records = records
        self._index: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def create(cls, path: Path, spec: MapSpec, refine: dict) -> "PointJournal":
        """A new, empty journal of a run refining ``spec`` as ``refine`` (levels, margin) says."""
        header = _header(spec, refine=refine)
        _create(path, header)
        return cls(path, spec, refine, [], len(header))

    @classmethod
    def resume(cls, path: Path, spec: MapSpec, refine: dict) -> "PointJournal":
        """The journal at ``path``, its torn tail cut off; refused if for another spec or refinement.
        Damaged records are skipped (their points are computed again)."""
        points = spec.shape[0] * spec.shape[1]
        records, keep = [], []
        with _mapped(path) as data:
            meta, stored, offset = _read_header(data, path, "refine")
            _refuse_other_spec(path, stored, spec)
            if meta["refine"] != refine:
                raise MapFileError(
                    f"{str(path)!r} is a partial run refined with {meta['refine']}, not {refine}; resume with the "
                    "same --refine, or use --force to start over"
                )
            found, end, damaged = _records(data, offset, POINTS_RECORD)
            size = len(data)
            for _, start, length in found:
                count, rest = divmod(length, 8 + POINT_BYTES)
                payload = bytes(data[start : start + length])
                flat = np.frombuffer(payload, dtype="<i8", count=count)
                if rest or (count and (flat.min() < 0 or flat.max() >= points)):
                    damaged += 1
                    continue
                records.append((flat, unpack_fields(payload, count, (count,), offset=8 * count)))
                keep.append((start - RECORD_HEADER.size, start + length))
        _warn_damaged(path, damaged, "points")
        if damaged:
            _compact(path, offset, keep)
            end = offset + sum(stop - start for start, stop in keep)
        elif end < size:
            os.truncate(path, end)
        return cls(path, spec, refine, records, end, damaged)

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
