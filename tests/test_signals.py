"""Ctrl-C and SIGTERM on one process: the tile in progress is finished and saved, the exit status says
which signal (130, 75), and the message says how many tiles are saved — never more than there are.

(Under MPI: tests/test_mpi.py; under SLURM: tests/test_slurm.py.)
"""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import SLOW_CONFIG, assert_same_fields, wait_for_tiles, write_config

import descentsim as ds
from descentsim.journal import journal_path, read_journal

README = Path(__file__).resolve().parents[1] / "README.md"


def start_map(tmp_path, *args):
    """``descentsim-map`` on the slow config in its own process, its stderr going to ``tmp_path/err.txt``;
    started in an empty directory (a source checkout there would shadow the installed package)."""
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "descentsim.cli", str(config), "-o", str(tmp_path / "map.h5"), "--threads", "1", *args],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "err.txt", "w"), cwd=workdir,
    )


def finish(job, tmp_path) -> str:
    """Wait for ``job``; its stderr."""
    job.wait(timeout=60)
    return (tmp_path / "err.txt").read_text()


def saved_tiles(out) -> int:
    return len(read_journal(journal_path(out))[2])


def test_ctrl_c_finishes_the_tile_in_progress_and_says_how_many_are_saved(tmp_path, slow_reference):
    out = tmp_path / "map.h5"
    job = start_map(tmp_path, "--tile", "16x48")  # 4 tiles of about 0.4 s
    wait_for_tiles(journal_path(out), 1)  # the second tile is under way
    job.send_signal(signal.SIGINT)
    err = finish(job, tmp_path)
    assert job.returncode == 130, err
    saved = saved_tiles(out)
    assert 1 <= saved < 4
    assert f"interrupted by Ctrl-C after {saved} of 4 tiles; they are saved in {str(journal_path(out))!r}" in err
    assert "Traceback" not in err and not out.exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "descentsim.cli", str(tmp_path / "slow.toml"), "-o", str(out), "--resume"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path / "cwd",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_same_fields(slow_reference, ds.open_map(out))


def test_a_second_ctrl_c_stops_at_once_and_says_nothing_was_saved(tmp_path):
    """The reference engine is slow enough to be stopped mid-tile (a compiled kernel takes signals only
    between calls); what the message claims must be what the journal holds."""
    out = tmp_path / "map.h5"
    job = start_map(tmp_path, "--backend", "numpy")  # one tile, minutes long in the reference engine
    wait_for_tiles(journal_path(out), 0)
    time.sleep(1.0)  # into the tile
    job.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30  # until the first is taken ("Ctrl-C again to stop at once")
    while "Ctrl-C again" not in (tmp_path / "err.txt").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGINT)
    err = finish(job, tmp_path)
    assert job.returncode == 130, err
    assert saved_tiles(out) == 0
    assert "nothing is saved" in err and "kept" not in err and "Traceback" not in err


def test_exit_statuses_are_documented():
    result = subprocess.run([sys.executable, "-m", "descentsim.cli", "--help"], capture_output=True, text=True)
    help_text = " ".join(result.stdout.split())
    assert "75 stopped by SIGTERM" in help_text and "130 stopped by Ctrl-C" in help_text
    batch = README.read_text().split("## Batch jobs and clusters")[1].split("\n## ")[0]
    assert re.search(r"\*\*130\*\*", batch) and re.search(r"\*\*75\*\*", batch)
