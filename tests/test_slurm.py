"""examples/batch/slurm_map.sh on a real SLURM: a one-node cluster on this machine (tests/slurm/), jobs
of one minute on a map that needs more, the chain of resubmissions ending in the map a direct run makes.

Skipped, saying why, only where SLURM cannot be had (not root, no apt-get, the install fails); once
installed, a cluster that does not start or a chain that breaks fails the test.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_same_fields, write_config

import descentsim as ds

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "batch" / "slurm_map.sh"
CLUSTER = Path(__file__).resolve().parent / "slurm"
CANNOT = 77  # start_cluster.sh: SLURM cannot be had here

#: About 40 s on two threads (every point runs all its steps), in 16 tiles of about 2.5 s. SLURM sends a job's
#: --signal at its controller's first time-limit check once fewer than 55 s are left: up to 30 s into a job of one
#: minute (its checks are 30 s apart), whatever @55 says. The first job then always leaves tiles to a second,
#: however late its signal; 25 s in 8 tiles failed whenever the signal came after the sixth tile (measured).
CHAIN_CONFIG = """
model = "relu-neuron"
steps = 65000
[x]
name = "lr"
start = 0.001
stop = 0.05
n = 96
scale = "log"
[y]
name = "w0"
start = -2.0
stop = 2.0
n = 128
[params]
samples = 256
[thresholds]
converge_loss = 0.0
"""
TILE = "8x96"
#: The job's options, given on the sbatch command line (the resubmissions must keep them) and, for
#: the signal, exported (SLURM does not tell a job its --signal).
JOB_OPTIONS = ["--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=2", "--time=1"]
SIGNAL = "B:USR1@55"
CHAIN_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The environment in which sbatch, squeue and the jobs use a fresh one-node cluster."""
    where = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", str(CLUSTER / "start_cluster.sh"), str(where), str(free_port()), str(free_port())],
        capture_output=True, text=True, timeout=900,
    )
    if started.returncode == CANNOT:
        pytest.skip(f"no SLURM here: {started.stderr.strip().splitlines()[-1]}")
    if started.returncode != 0:
        subprocess.run(["bash", str(CLUSTER / "stop_cluster.sh"), str(where)])
        pytest.fail(f"SLURM is installed but did not start: {started.stderr.strip()}")
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    yield {**os.environ, "SLURM_CONF": str(where / "slurm.conf"), "PATH": path}
    subprocess.run(["bash", str(CLUSTER / "stop_cluster.sh"), str(where)])


def queued(env) -> list[str]:
    """The ids of the jobs pending or running."""
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()


@pytest.mark.slow
def test_the_example_resubmits_itself_until_the_map_is_complete(cluster, tmp_path):
    config = write_config(tmp_path / "map.toml", CHAIN_CONFIG)
    out = tmp_path / "map.h5"
    shutil.copy(EXAMPLE, tmp_path / "slurm_map.sh")  # as users do; TILE set by an edit of the copy
    script = tmp_path / "slurm_map.sh"
    script.write_text(script.read_text().replace('--threads "$OMP_NUM_THREADS" --resume', f'--threads "$OMP_NUM_THREADS" --tile {TILE} --resume'))
    env = {**cluster, "SBATCH_SIGNAL": SIGNAL, "MAX_SUBMISSIONS": "8"}
    submitted = subprocess.run(
        ["sbatch", "--parsable", f"--chdir={tmp_path}", *JOB_OPTIONS, str(script), str(config), str(out)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + CHAIN_TIMEOUT_S
    while queued(env) and time.monotonic() < deadline:
        time.sleep(1)
    logs = sorted(tmp_path.glob("descentsim-*.log"), key=lambda p: int(p.stem.split("-")[1]))
    told = "\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs)
    assert not queued(env), f"the chain did not end within {CHAIN_TIMEOUT_S} s\n{told}"
    assert out.exists(), f"the chain ended without the map\n{told}"
    assert len(logs) >= 2 and told.count("resubmitting (submission") == len(logs) - 1, told
    for log in logs[:-1]:  # each job stopped at its signal, saved its tiles and said so
        assert "stopped by SIGTERM after" in log.read_text(), told
    assert "wrote" in logs[-1].read_text(), told
    direct = ds.run_map(ds.MapSpec.from_toml_text(CHAIN_CONFIG), threads=2)
    assert_same_fields(direct, ds.open_map(out))
