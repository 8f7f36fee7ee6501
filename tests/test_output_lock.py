"""One writer per output: a second run on the same output is refused at once, naming the holder; a killed
run's lock does not block the next one."""

import errno
import os
import shutil
import signal
import subprocess

import pytest
from helpers import SLOW_CONFIG, assert_same_fields, wait_for_tiles, write_config

import descentsim as ds
from descentsim import lock
from descentsim.journal import journal_path
from descentsim.lock import lock_path, output_lock

ARGS = ["--threads", "1", "--tile", "2x48"]


def command(config, out, *extra):
    return [shutil.which("descentsim-map"), str(config), "-o", str(out), *ARGS, *extra]


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "slow.toml", SLOW_CONFIG)


@pytest.mark.parametrize("second", [[], ["--force"], ["--resume"]])
def test_a_second_run_on_one_output_is_refused(tmp_path, config, slow_reference, second):
    """The issue's case: two runs shared OUT.h5.partial.new, and an older run could replace a newer --force
    run's output and delete its journal. Now the second is refused and the first ends as if alone."""
    out = tmp_path / "map.h5"
    first = subprocess.Popen(command(config, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_tiles(journal_path(out), 1)
    refused = subprocess.run(command(config, out, *second), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "being written by another run" in refused.stderr and f"pid {first.pid}" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert_same_fields(slow_reference, ds.open_map(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.h5", "slow.toml"]  # no lock file left


def test_a_killed_run_does_not_block_the_next(tmp_path, config, slow_reference):
    out = tmp_path / "map.h5"
    run = subprocess.Popen(command(config, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_tiles(journal_path(out), 2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert lock_path(out).exists()  # left behind, but holding no lock
    resumed = subprocess.run(command(config, out, "--resume"), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_fields(slow_reference, ds.open_map(out))
    assert not lock_path(out).exists()


def test_saving_a_map_over_an_output_being_written_is_refused(tmp_path, config):
    out = tmp_path / "map.h5"
    run = subprocess.Popen(command(config, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_tiles(journal_path(out), 1)
        small = ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1.0, 4), steps=5))
        with pytest.raises(lock.OutputBusy, match=f"pid {run.pid}"):
            small.save(out)
    finally:
        run.kill()
        run.wait()


def test_the_lock_is_reentrant_and_removed(tmp_path):
    out = tmp_path / "map.h5"
    with output_lock(out):
        with output_lock(out):
            assert lock_path(out).exists()
        assert lock_path(out).exists()
        assert "pid" in lock_path(out).read_text()
    assert not lock_path(out).exists()


def test_a_file_system_without_locks_is_named_and_can_be_switched_off(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(lock.fcntl, "lockf", no_locks)
    out = tmp_path / "map.h5"
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1.0, 4), steps=5)
    with pytest.raises(ds.MapFileError, match="does not support locks.*DESCENTSIM_LOCK=off"):
        ds.runner.run_map_to_file(spec, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.setenv("DESCENTSIM_LOCK", "off")
    ds.runner.run_map_to_file(spec, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.h5"]
