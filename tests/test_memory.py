"""Memory: a map's peak stays near its stored size, and a map that cannot fit is refused before any work,
in one line with the estimate and the limit."""

import resource
import shutil
import subprocess

import numpy as np
import pytest
from helpers import write_config

import descentsim as ds
from descentsim import resources
from descentsim.fields import POINT_BYTES
from descentsim.journal import journal_path

#: The issue's case: 2048² points, about 235 MB stored, under a 700 MB address-space limit.
BIG = """
model = "quadratic"
steps = 40
[x]
name = "lr"
start = 0.1
stop = 3.0
n = {n}
[y]
name = "a"
start = 0.5
stop = 2.0
n = {n}
"""
LIMIT = 700 * 10**6


def limited(command, limit=LIMIT):
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=cap)


def test_a_2048_squared_map_fits_under_700_mb(tmp_path):
    """It computed everything and then failed (every field held three times); now the tiles stream to the
    file, and the map is held once."""
    config = write_config(tmp_path / "big.toml", BIG.format(n=2048))
    out = tmp_path / "big.h5"
    result = limited([shutil.which("descentsim-map"), str(config), "-o", str(out), "--threads", "2"])
    assert result.returncode == 0, result.stderr
    assert ds.open_map(out).shape == (2048, 2048)


def test_a_map_that_cannot_fit_is_refused_before_any_work(tmp_path):
    config = write_config(tmp_path / "big.toml", BIG.format(n=4096))
    out = tmp_path / "big.h5"
    result = limited([shutil.which("descentsim-map"), str(config), "-o", str(out)])
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "needs about" in line and "ulimit -v" in line and "Traceback" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.toml"]


def test_resume_is_checked_as_well(tmp_path):
    config = write_config(tmp_path / "big.toml", BIG.format(n=4096))
    out = tmp_path / "big.h5"
    spec = ds.MapSpec.from_toml_text(BIG.format(n=4096))
    ds.journal.TileJournal.create(journal_path(out), spec, (16, 256)).close()
    before = journal_path(out).read_bytes()
    result = limited([shutil.which("descentsim-map"), str(config), "-o", str(out), "--resume"])
    assert result.returncode == 2 and "needs about" in result.stderr
    assert journal_path(out).read_bytes() == before


def test_wide_models_are_refused_by_their_data(tmp_path, monkeypatch):
    """The issue's mlp with width 4096 (its default data: as many samples as its 16.8 million parameters)."""
    spec = ds.MapSpec(model="mlp", x=ds.Axis("lr1", 1.0, 10.0, 4), y=ds.Axis("lr2", 1.0, 10.0, 4), steps=10,
                      params={"width": 4096})
    parts = resources.run_memory(spec, (4, 4))
    assert parts["data"] > 10**12  # terabytes
    with pytest.raises(ds.SpecError, match="for its data.*narrower model"):
        ds.runner.run_map_to_file(spec, tmp_path / "m.h5")
    assert list(tmp_path.iterdir()) == []


def test_the_estimate_bounds_the_memory_measured(tmp_path):
    """The estimate is an upper bound of what a run adds to its process's peak (measured in a fresh process),
    with room to spare: the headroom is not needed."""
    script = tmp_path / "measure.py"
    script.write_text(
        "import resource, sys, numpy as np, descentsim as ds\n"
        "from descentsim import resources\n"
        f"spec = ds.MapSpec.from_toml_text({BIG.format(n=2048)!r})\n"
        "spec.point_values(np.zeros(1, np.int64), np.zeros(1, np.int64))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "ds.runner.run_map_to_file(spec, sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(after - before, sum(resources.run_memory(spec, (16, 256), to_file=True).values()))\n"
    )
    out = subprocess.run([shutil.which("python"), str(script), str(tmp_path / "m.h5")], capture_output=True,
                         text=True, timeout=300)
    used, estimate = map(int, out.stdout.split())
    assert used <= estimate, (used, estimate)
    assert estimate >= 2048 * 2048 * POINT_BYTES


def test_the_limit_is_named(monkeypatch):
    monkeypatch.setattr(resources, "memory_available", lambda: (10**6, "the memory limit of this job's cgroup"))
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1.0, 512), y=ds.Axis("a", 0.5, 2.0, 512), steps=5)
    with pytest.raises(ds.SpecError, match=r"needs about .* MB .* 1 MB left under the memory limit of this job's cgroup"):
        ds.run_map(spec)


def test_memory_available_reads_this_machine():
    room, limit = resources.memory_available()
    assert room is not None and room > 0 and limit
    assert np.isfinite(room)
