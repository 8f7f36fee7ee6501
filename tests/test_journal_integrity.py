"""Every byte of a journal that decides where data land is checked: a damaged record is dropped and its
tile computed again, a damaged header refuses the resume, never trusted."""

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from helpers import SLOW_CONFIG, assert_same_fields, journal_with_tiles, write_config

import descentsim as ds
from descentsim.fields import POINT_BYTES
from descentsim.journal import HEADER, RECORD_HEADER, DamagedJournal, PointJournal, journal_path, read_journal

SPEC = ds.MapSpec.from_toml_text(SLOW_CONFIG).replace(steps=300)
TILE = (2, 48)
RECORD_BYTES = RECORD_HEADER.size + TILE[0] * TILE[1] * POINT_BYTES


@pytest.fixture(scope="module")
def reference():
    return ds.run_map(SPEC, tile_shape=TILE)


def record_offset(path, k):
    """Offset of the k-th record (from 0) of a journal of whole 2×48 tiles."""
    (length,) = np.frombuffer(path.read_bytes()[4:8], "<u4")
    return HEADER.size + int(length) + k * RECORD_BYTES


def flip(path, offset, mask=0x01):
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def resume(config, out):
    exe = shutil.which("descentsim-map")
    return subprocess.run([exe, str(config), "-o", str(out), "--resume", "--set", "steps=300", "--tile", "2x48"],
                          capture_output=True, text=True, timeout=300)


def test_a_flipped_tile_index_is_dropped_and_recomputed(tmp_path, reference):
    """The issue's reproduction: tile index 3 → 1 in a record header; the resume must not move the tile."""
    out = tmp_path / "map.h5"
    journal_with_tiles(journal_path(out), SPEC, reference, 8, TILE)
    flip(journal_path(out), record_offset(journal_path(out), 3) + 4, 0x02)  # index 3 (0b11) → 1 (0b01)
    _, _, done, _, damaged = read_journal(journal_path(out))
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 7] and damaged == 1
    result = resume(write_config(tmp_path / "slow.toml", SLOW_CONFIG), out)
    assert result.returncode == 0, result.stderr
    assert "1 damaged record" in result.stderr
    cmap = ds.open_map(out)
    assert_same_fields(reference, cmap)
    assert cmap.provenance["tiles_resumed"] == 7


@pytest.mark.parametrize("where", ["magic", "index", "length", "crc", "payload"])
def test_any_damaged_byte_of_a_record_drops_only_that_record(tmp_path, reference, where):
    path = journal_path(tmp_path / "map.h5")
    journal_with_tiles(path, SPEC, reference, 6, TILE)
    offset = record_offset(path, 2) + {"magic": 1, "index": 4, "length": 9, "crc": 14, "payload": 500}[where]
    flip(path, offset, 0x10)
    _, _, done, end, damaged = read_journal(path)
    assert sorted(done) == [0, 1, 3, 4, 5] and damaged == 1 and end == path.stat().st_size
    with pytest.warns(DamagedJournal, match="1 damaged record"):
        cmap = ds.runner.run_map_to_file(SPEC, tmp_path / "map.h5", resume=True)
    assert_same_fields(reference, cmap)


def test_a_crc_valid_record_off_the_layout_counts_as_damaged(tmp_path, reference):
    """A record whose CRC holds but whose tile is not on the map (written by hand, or a bug) is not trusted."""
    from descentsim.journal import RECORD, record_crc

    path = journal_path(tmp_path / "map.h5")
    journal_with_tiles(path, SPEC, reference, 2, TILE)
    payload = b"\x00" * (TILE[0] * TILE[1] * POINT_BYTES)
    with open(path, "ab") as f:
        f.write(RECORD_HEADER.pack(RECORD, 999, len(payload), record_crc(RECORD, 999, payload)) + payload)
    _, _, done, _, damaged = read_journal(path)
    assert sorted(done) == [0, 1] and damaged == 1


def test_a_damaged_header_refuses_the_resume(tmp_path, reference):
    out = tmp_path / "map.h5"
    journal_with_tiles(journal_path(out), SPEC, reference, 4, TILE)
    text = journal_path(out).read_bytes()
    at = text.index(b'"tile_shape": [2, 48]') + len(b'"tile_shape": [')
    flip(journal_path(out), at, 0x01)  # 2 → 3: every tile would land elsewhere
    result = resume(write_config(tmp_path / "slow.toml", SLOW_CONFIG), out)
    assert result.returncode == 2 and "header is damaged" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_damaged_point_record_is_recomputed(tmp_path):
    """Refined runs keep points by flat grid index: a flipped index bit is caught the same way."""
    spec = SPEC.replace(steps=50)
    out = tmp_path / "map.h5"
    whole = ds.refine_map(spec, 2)
    journal = PointJournal.create(journal_path(out), spec, {"levels": 2, "margin": 1})
    for first in (0, 40):
        flat = np.arange(first, first + 40, dtype=np.int64)
        journal.append(2, flat, {n: v.ravel()[flat] for n, v in whole.fields.items()})
    journal.close()
    data = bytearray(journal_path(out).read_bytes())
    data[data.index(b"PNTS") + RECORD_HEADER.size] ^= 0x01  # grid index 0 → 1 in the first record
    journal_path(out).write_bytes(bytes(data))
    with pytest.warns(DamagedJournal, match="their points are computed again"):
        resumed = PointJournal.resume(journal_path(out), spec, {"levels": 2, "margin": 1})
    resumed.close()
    assert resumed.damaged == 1 and resumed.points == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedJournal)  # the damaged record was dropped from the file: said once
        assert_same_fields(whole, ds.refine.refine_map_to_file(spec, out, 2, resume=True))


def test_a_damaged_record_is_warned_about_once(tmp_path, reference):
    """The damaged record is dropped from the file, so a later resume neither warns again nor loses a tile."""
    path = journal_path(tmp_path / "map.h5")
    journal_with_tiles(path, SPEC, reference, 6, TILE)
    flip(path, record_offset(path, 1) + 300, 0x08)
    with pytest.warns(DamagedJournal, match="1 damaged record"):
        journal = ds.journal.TileJournal.resume(path, SPEC)
    journal.append(journal.tiles[1], {n: v[journal.tiles[1].region] for n, v in reference.fields.items()})
    journal.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedJournal)
        again = ds.journal.TileJournal.resume(path, SPEC)
    again.close()
    assert sorted(again.done) == [0, 1, 2, 3, 4, 5] and again.damaged == 0
    assert_same_fields(reference, ds.runner.run_map_to_file(SPEC, tmp_path / "map.h5", resume=True, tile_shape=TILE))
