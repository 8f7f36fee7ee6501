"""MPI runs for real under mpiexec: same data on any rank count, resume after kill, errors, refusals.

The test extras install mpi4py and an MPI (the mpich wheel) with its mpiexec; without them these
tests fail rather than skip, so that CI cannot pass without running them.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from helpers import SLOW_CONFIG, assert_same_fields, wait_for_tiles, write_config

import descentsim as ds
from descentsim.journal import journal_path, read_journal

CONFIG = """
model = "relu-neuron"
steps = 2000
[x]
name = "lr"
start = 0.01
stop = 8.0
n = 48
scale = "log"
[y]
name = "w0"
start = -2.5
stop = 2.5
n = 40
[params]
samples = 128
"""


WORKDIR = tempfile.mkdtemp(prefix="descentsim-mpi-")


def mpiexec() -> list[str]:
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.fail("mpiexec not found: install the test extras (pip install '.[test]') to run the MPI tests")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return [exe, "--oversubscribe"] if "Open MPI" in version or "OpenRTE" in version else [exe]


def command(ranks: int, *args: str) -> list[str]:
    return [*mpiexec(), "-n", str(ranks), sys.executable, "-m", "descentsim.cli", *args]


# Jobs start in an empty directory: "python -m" puts the working directory first on sys.path, and a
# source checkout there (without compiled kernels) would shadow the installed package.
def run(ranks, *args, timeout=300):
    return subprocess.run(command(ranks, *args), capture_output=True, text=True, timeout=timeout, cwd=WORKDIR)


@pytest.fixture(scope="module")
def reference():
    return ds.run_map(ds.MapSpec.from_toml_text(CONFIG))


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "map.toml", CONFIG)


def test_each_rank_of_a_node_has_its_own_local_rank():
    """The GPU engine takes the GPU of its rank among the ranks of its node (descentsim.backends.gpu.local_rank)."""
    script = "from descentsim.backends.gpu import local_rank; print(local_rank())"
    done = subprocess.run([*mpiexec(), "-n", "3", sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=WORKDIR)
    assert done.returncode == 0, done.stderr
    assert sorted(int(line) for line in done.stdout.split()) == [0, 1, 2]


def test_mpi4py_is_installed():
    import mpi4py  # noqa: F401  (the README's test command installs it)


@pytest.mark.parametrize(
    "ranks, extra",
    [(1, []), (2, []), (3, ["--tile", "3x17"]), (2, ["--schedule", "static", "--tile", "5x48"]), (3, ["--threads", "2"]),
     (2, ["--backend", "gpu-host", "--tile", "3x17"])],  # the GPU engine's code (built for the host)
)
def test_same_map_on_any_number_of_ranks(tmp_path, config, reference, ranks, extra):
    out = tmp_path / "map.h5"
    result = run(ranks, str(config), "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    cmap = ds.open_map(out)
    assert_same_fields(reference, cmap)
    assert cmap.provenance["ranks"] == ranks
    if ranks > 1:
        assert f"[0/{ranks}] wrote" in result.stdout
        assert all(line.startswith(f"[0/{ranks}]") for line in result.stderr.splitlines())
        assert cmap.provenance["coordinator_s_per_tile"] > 0 and cmap.provenance["messages_per_tile"] == 2


@pytest.fixture
def slow(tmp_path):
    return write_config(tmp_path / "slow.toml", SLOW_CONFIG)


def start_job(ranks, *args, marker=""):
    return subprocess.Popen(
        command(ranks, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=WORKDIR,
        env={**os.environ, "JOB_MARKER": marker},
    )


def rank_pid(marker: str, rank: int) -> int:
    """The process of MPI rank ``rank`` of the job started with JOB_MARKER=marker (found by environment)."""
    for pid in subprocess.run(["pgrep", "-f", "descentsim.cli"], capture_output=True, text=True).stdout.split():
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        ranks = (f"PMI_RANK={rank}".encode(), f"OMPI_COMM_WORLD_RANK={rank}".encode())
        if f"JOB_MARKER={marker}".encode() in environ and any(r in environ for r in ranks):
            return int(pid)
    pytest.fail(f"no process of rank {rank} in job {marker}")


SLOW_ARGS = ["--tile", "2x48", "--threads", "1"]  # 32 tiles, about a second on two ranks


def test_kill_9_of_the_whole_job_then_resume_on_other_rank_counts(tmp_path, slow, slow_reference):
    out = tmp_path / "map.h5"
    for ranks, tiles in ((2, 2), (3, 8)):
        job = start_job(ranks, str(slow), "-o", str(out), *SLOW_ARGS, "--resume")
        wait_for_tiles(journal_path(out), tiles)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        assert not out.exists()
        assert len(read_journal(journal_path(out))[2]) < 32
    result = run(2, str(slow), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_fields(slow_reference, ds.open_map(out))
    assert not journal_path(out).exists()


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
@pytest.mark.parametrize("who", ["job", "one worker"])
def test_a_signal_saves_and_every_rank_exits_with_its_status(tmp_path, slow, slow_reference, who, signum, status):
    """SIGTERM to the whole job (what a scheduler does) or Ctrl-C (mpiexec passes SIGINT to every rank), or
    either to one worker alone: all stop with the same status, the count said is the count saved."""
    out = tmp_path / "map.h5"
    job = start_job(3, str(slow), "-o", str(out), *SLOW_ARGS, marker=str(tmp_path))
    wait_for_tiles(journal_path(out), 3)
    if who == "job":
        os.killpg(job.pid, signum)
    else:
        os.kill(rank_pid(str(tmp_path), 1), signum)
    _, err = job.communicate(timeout=60)
    assert job.returncode == status, err
    assert_stopped_cleanly(err)
    assert not out.exists()
    saved = len(read_journal(journal_path(out))[2])
    assert 3 <= saved < 32 and f"after {saved} of 32 tiles; they are saved" in err
    result = run(2, str(slow), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_fields(slow_reference, ds.open_map(out))


def assert_stopped_cleanly(err: str) -> None:
    """One message, from rank 0 (besides warnings and mpiexec's own notes); no traceback, no abort, no MPI
    complaint (such as requests left pending)."""
    said = [line for line in err.splitlines() if " warning: " not in line and not line.startswith("[mpiexec@")]
    assert len(said) == 1 and said[0].startswith("[0/") and "--resume" in said[0], err
    assert "Traceback" not in err and "abort" not in err.lower() and "MPICH" not in err and "error" not in err.lower()


#: Rank 0 sits a second on each tile it computed before taking in results: the workers' results then wait
#: in MPI, sent but not received, when the signal comes.
HOLD_RESULTS = """
import time
real = mpi.compute_tile
def held(*args, **kw):
    fields = real(*args, **kw)
    if MPI.COMM_WORLD.Get_rank() == 0:
        time.sleep(1.0)
    return fields
mpi.compute_tile = held
"""


def test_ctrl_c_with_results_in_flight_completes_them_and_exits_130(tmp_path, slow, slow_reference):
    """Ctrl-C on mpiexec while results are in flight: every request is completed before MPI_Finalize
    (which fails on a pending one), every rank exits 130, and what was received is saved and resumable."""
    out = tmp_path / "map.h5"
    job = subprocess.Popen(
        [*mpiexec(), "-n", "2", sys.executable, "-c", PATCHED.format(patch=HOLD_RESULTS), str(slow), "-o", str(out),
         "--tile", "8x48", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=WORKDIR,
    )
    wait_for_tiles(journal_path(out), 1)
    os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the ranks run in sessions of their own
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert_stopped_cleanly(err)
    saved = len(read_journal(journal_path(out))[2])
    assert f"interrupted by Ctrl-C after {saved} of 8 tiles" in err
    result = run(2, str(slow), "-o", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_fields(slow_reference, ds.open_map(out))


def test_more_ranks_than_cores_is_named_as_the_cause(tmp_path, config):
    """Two one-thread ranks on one core: fewer threads cannot help, so the warning must not advise them."""
    core = min(os.sched_getaffinity(0))
    result = subprocess.run(
        command(2, str(config), "-o", str(tmp_path / "map.h5"), "--threads", "1"),
        capture_output=True, text=True, timeout=300, cwd=WORKDIR, preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "[0/2] warning: 2 ranks on this node's 1 core: more ranks than cores oversubscribe it; start at most 1 "
        "per node (mpiexec -n, srun --ntasks-per-node)"
    ]


@pytest.mark.parametrize("task", [0, 1])
def test_srun_tasks_outside_one_mpi_world_are_refused(tmp_path, config, task):
    """srun started 4 tasks that MPI does not join (no --mpi plugin): each would compute the whole map into
    the same file. Refused in one line (said by task 0), exit 2, nothing written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "MV2_", "SLURM_"))}
    env.update(SLURM_STEP_NUM_TASKS="4", SLURM_NTASKS="4", SLURM_PROCID=str(task))
    result = subprocess.run(
        [sys.executable, "-m", "descentsim.cli", str(config), "-o", str(tmp_path / "o.h5")],
        capture_output=True, text=True, timeout=120, cwd=WORKDIR, env=env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    if task == 0:
        assert len(lines) == 1 and lines[0].startswith("descentsim-map: error: srun started 4 tasks but MPI sees a world of 1")
    else:
        assert lines == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.toml"]


def test_resume_with_another_spec_is_refused_on_every_rank(tmp_path, slow):
    out = tmp_path / "map.h5"
    job = start_job(2, str(slow), "-o", str(out), *SLOW_ARGS)
    wait_for_tiles(journal_path(out), 1)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    result = run(2, str(slow), "-o", str(out), "--resume", "--set", "steps=10", timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("partial run of a different map") == 1  # said once, by rank 0
    assert "Traceback" not in result.stderr


def test_bad_config_under_mpi_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("model = 'transformer'\n[x]\nname='lr'\nstart=0.1\nstop=1.0\nn=4\n")
    result = run(2, str(tmp_path / "bad.toml"), "-o", str(tmp_path / "o.h5"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"[0/2] descentsim-map: error: unknown model 'transformer'; valid models: {', '.join(ds.MODELS)}"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_refine_under_mpi_is_refused_in_one_line(tmp_path, config):
    result = run(2, str(config), "-o", str(tmp_path / "o.h5"), "--refine", "2", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "[0/2] descentsim-map: error: --refine runs in one process; run it without mpirun/mpiexec "
        "(use --threads for the cores)"
    ]
    assert not (tmp_path / "o.h5").exists()


def test_only_rank_0_reads_the_config(tmp_path, config, reference):
    """Workers take rank 0's spec: a config on rank 0's node alone is enough."""
    out = tmp_path / "map.h5"
    script = (
        'if [ "${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-0}}" = 0 ]; then c="$1"; else c=/nonexistent.toml; fi; '
        'exec "$2" -m descentsim.cli "$c" -o "$3"'
    )
    result = subprocess.run(
        [*mpiexec(), "-n", "2", "bash", "-c", script, "_", str(config), sys.executable, str(out)],
        capture_output=True, text=True, timeout=120, cwd=WORKDIR,
    )
    assert result.returncode == 0, result.stderr
    assert_same_fields(reference, ds.open_map(out))


PATCHED = """
import sys
from mpi4py import MPI
import descentsim.mpi as mpi
{patch}
from descentsim.cli import map_main
sys.exit(map_main(sys.argv[1:]))
"""


def run_patched(ranks, patch, *args, timeout=120):
    script = PATCHED.format(patch=patch)
    return subprocess.run(
        [*mpiexec(), "-n", str(ranks), sys.executable, "-c", script, *args],
        capture_output=True, text=True, timeout=timeout, cwd=WORKDIR,
    )


def test_recorded_points_under_mpi(tmp_path, config):
    """--record under mpiexec: rank 0 records the curves, the same as one process's."""
    out = tmp_path / "map.h5"
    result = run(2, str(config), "-o", str(out), "--record", "1.0,-2.0", "--record", "0.1,1.5", timeout=120)
    assert result.returncode == 0, result.stderr
    alone = ds.run_map(ds.MapSpec.from_toml_text(CONFIG).replace(record=((1.0, -2.0), (0.1, 1.5))))
    history, expected = ds.open_map(out).history, alone.history
    np.testing.assert_array_equal(history.loss, expected.loss)
    np.testing.assert_array_equal(history.ix, expected.ix)


@pytest.mark.parametrize("schedule", ["dynamic", "static"])
def test_rank_0_only_coordinating(tmp_path, config, reference, schedule):
    """Above ROOT_COMPUTES_UP_TO ranks, rank 0 computes nothing; both schedules still finish."""
    out = tmp_path / "map.h5"
    patch = "mpi.ROOT_COMPUTES_UP_TO = 1\n" + curse(0)  # a tile computed on rank 0 would fail the job
    result = run_patched(3, patch, str(config), "-o", str(out), "--schedule", schedule, "--tile", "2x48")
    assert result.returncode == 0, result.stderr
    assert_same_fields(reference, ds.open_map(out))


def test_more_ranks_than_tiles_and_resume_of_a_finished_map(tmp_path, config, reference):
    out = tmp_path / "map.h5"
    result = run(4, str(config), "-o", str(out), "--tile", "40x48")  # a single tile
    assert result.returncode == 0, result.stderr
    assert_same_fields(reference, ds.open_map(out))
    before = out.stat().st_mtime_ns
    again = run(3, str(config), "-o", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout and out.stat().st_mtime_ns == before


def curse(rank: int) -> str:
    """A patch (for ``run_patched``) that makes every tile computed on ``rank`` raise."""
    return (
        "real = mpi.compute_tile\n"
        "def failing(*args, **kw):\n"
        f"    if MPI.COMM_WORLD.Get_rank() == {rank}:\n"
        f"        raise RuntimeError('rank {rank} is cursed')\n"
        "    return real(*args, **kw)\n"
        "mpi.compute_tile = failing"
    )


@pytest.mark.parametrize("rank, reported", [(0, "[0/2] error: RuntimeError: rank 0 is cursed"),
                                            (1, "[1/2] aborting the job")])
def test_an_exception_on_any_rank_ends_the_job_promptly(tmp_path, config, rank, reported):
    """A rank that fails mid-run must not leave the others waiting for it forever."""
    out = tmp_path / "map.h5"
    started = time.monotonic()
    result = run_patched(2, curse(rank), str(config), "-o", str(out), "--tile", "2x48")
    assert result.returncode != 0
    assert f"rank {rank} is cursed" in result.stderr and reported in result.stderr
    assert time.monotonic() - started < 60 and not out.exists()


def test_a_second_mpi_run_on_one_output_is_refused_by_every_rank(tmp_path, config):
    """Rank 0 takes the output's lock before its checks; a held lock is a refusal every rank shares."""
    from descentsim.lock import lock_path, output_lock

    out = tmp_path / "map.h5"
    with output_lock(out):  # this process is the other run
        result = run(2, str(config), "-o", str(out), "--set", "steps=50")
    assert result.returncode == 2, result.stderr
    assert "being written by another run" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert not out.exists() and not (tmp_path / "map.h5.partial").exists()
    assert run(2, str(config), "-o", str(out), "--set", "steps=50").returncode == 0
    assert not lock_path(out).exists()
