"""Crash safety: kill -9 at any moment, SIGTERM, and --resume ending with the same data."""

import shutil
import signal
import subprocess
import time

import pytest
from helpers import SLOW_CONFIG, assert_same_fields, journal_with_tiles, wait_for_tiles, write_config

import descentsim as ds
from descentsim.journal import POINT_BYTES, RECORD_HEADER, journal_path, read_journal
from descentsim.filesystem import temporary_prefix

# SLOW_CONFIG takes about 1.5 s on one thread, in 32 tiles of 2 rows: long enough to kill in the middle.
ARGS = ["--threads", "1", "--tile", "2x48"]


@pytest.fixture
def reference(slow_reference):
    """The uninterrupted map."""
    return slow_reference


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "slow.toml", SLOW_CONFIG)


@pytest.fixture(scope="module")
def short_reference():
    """The uninterrupted map with 300 steps."""
    return ds.run_map(ds.MapSpec.from_toml_text(SLOW_CONFIG).replace(steps=300))


def start(config, out, *extra):
    exe = shutil.which("descentsim-map")
    return subprocess.Popen(
        [exe, str(config), "-o", str(out), *ARGS, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(config, out, *extra):
    exe = shutil.which("descentsim-map")
    return subprocess.run([exe, str(config), "-o", str(out), *ARGS, *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("tiles_done", [1, 10, 20])
def test_kill_9_then_resume_gives_the_same_map(tmp_path, config, reference, tiles_done):
    out = tmp_path / "map.h5"
    run = start(config, out)
    wait_for_tiles(journal_path(out), tiles_done)
    run.send_signal(signal.SIGKILL)
    run.wait()
    if out.exists():  # finished before the kill: then complete, never half-written
        assert_same_fields(reference, ds.open_map(out))
    result = finish(config, out, "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_fields(reference, ds.open_map(out))
    assert not journal_path(out).exists()


def test_sigterm_saves_and_exits_incomplete(tmp_path, config, reference):
    out = tmp_path / "map.h5"
    run = start(config, out)
    wait_for_tiles(journal_path(out), 2)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 75, err
    assert "--resume" in err and "Traceback" not in err
    assert not out.exists() and journal_path(out).exists()
    _, _, done, _, _ = read_journal(journal_path(out))
    assert 0 < len(done) < 32
    again = finish(config, out)  # without --resume: refused, the partial run is kept
    assert again.returncode == 2 and "--resume" in again.stderr
    other = finish(config, out, "--resume", "--set", "steps=100")
    assert other.returncode == 2 and "partial run of a different map" in other.stderr
    assert finish(config, out, "--resume").returncode == 0
    assert_same_fields(reference, ds.open_map(out))


def test_torn_record_and_stale_temporary_are_recovered(tmp_path, reference):
    """A kill during a journal append leaves a torn record; one during the HDF5 write a temporary."""
    spec = ds.MapSpec.from_toml_text(SLOW_CONFIG)
    out = tmp_path / "map.h5"
    journal_with_tiles(journal_path(out), spec, reference, 5)
    with open(journal_path(out), "ab") as f:  # half of a sixth record
        f.write(RECORD_HEADER.pack(b"TILE", 5, 2 * 48 * POINT_BYTES, 1234) + b"\x01" * 100)
    (tmp_path / (temporary_prefix(out) + "abc.tmp")).write_bytes(b"half an HDF5 file")
    cmap = ds.runner.run_map_to_file(spec, out, resume=True, tile_shape=(4, 4))
    assert cmap.provenance["tiles_resumed"] == 5 and cmap.provenance["tile_shape"] == (2, 48)
    assert_same_fields(reference, ds.open_map(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.h5"]


def test_corrupt_record_is_cut_off(tmp_path, reference):
    spec = ds.MapSpec.from_toml_text(SLOW_CONFIG)
    path = journal_path(tmp_path / "map.h5")
    journal_with_tiles(path, spec, reference, 3)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits in the last record's payload
    path.write_bytes(bytes(data))
    _, _, done, end, _ = read_journal(path)
    assert sorted(done) == [0, 1] and end < len(data)


def test_resume_of_a_finished_map_is_a_no_op(tmp_path, config):
    out = tmp_path / "map.h5"
    assert finish(config, out, "--set", "steps=50").returncode == 0
    before = out.stat().st_mtime_ns
    again = finish(config, out, "--set", "steps=50", "--resume")
    assert again.returncode == 0 and out.stat().st_mtime_ns == before
    assert "already complete" in again.stdout
    other = finish(config, out, "--set", "steps=60", "--resume")
    assert other.returncode == 2 and "holds a different map" in other.stderr


def test_resume_without_a_partial_run_starts_one(tmp_path, config):
    out = tmp_path / "map.h5"
    assert finish(config, out, "--set", "steps=20", "--resume").returncode == 0
    assert ds.open_map(out).spec.steps == 20


def test_force_discards_a_partial_run(tmp_path, config):
    out = tmp_path / "map.h5"
    journal_path(out).write_bytes(b"DSJ1 rubbish")
    assert finish(config, out, "--set", "steps=20").returncode == 2
    refused = finish(config, out, "--set", "steps=20", "--resume")
    assert refused.returncode == 2 and "not a usable partial run" in refused.stderr
    assert finish(config, out, "--set", "steps=20", "--force").returncode == 0
    assert not journal_path(out).exists()
    expected = ds.run_map(ds.MapSpec.from_toml_text(SLOW_CONFIG).replace(steps=20))
    assert_same_fields(expected, ds.open_map(out))


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.15, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])
def test_kill_9_early_during_start_up(tmp_path, config, short_reference, delay):
    """Killed while importing, checking, or creating the journal: --resume still finishes the map."""
    out = tmp_path / "map.h5"
    run = start(config, out, "--set", "steps=300")
    time.sleep(delay)
    run.send_signal(signal.SIGKILL)
    run.wait()
    result = finish(config, out, "--resume", "--set", "steps=300")
    assert result.returncode == 0, result.stderr
    assert_same_fields(short_reference, ds.open_map(out))


def test_kill_9_during_the_final_write(tmp_path):
    """Killed while the HDF5 file is being written (its temporary exists): the output path stays empty,
    and --resume writes the complete map."""
    config = tmp_path / "big.toml"
    config.write_text(
        'model = "quadratic"\nsteps = 2\n[x]\nname = "lr"\nstart = 0.1\nstop = 3.0\nn = 1024\n'
        '[y]\nname = "w0"\nstart = -1.0\nstop = 1.0\nn = 1024\n'
    )
    out = tmp_path / "map.h5"
    run = subprocess.Popen([shutil.which("descentsim-map"), str(config), "-o", str(out)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(tmp_path.glob(temporary_prefix(out) + "*.tmp")):
        time.sleep(0.001)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert list(tmp_path.glob(temporary_prefix(out) + "*.tmp")), "the kill did not land during the write"
    assert not out.exists()
    result = finish(config, out, "--resume")
    assert result.returncode == 0, result.stderr
    expected = ds.run_map(ds.MapSpec.from_toml(config))
    assert_same_fields(expected, ds.open_map(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.toml", "map.h5"]
