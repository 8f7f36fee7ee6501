"""Out of space anywhere: one line, exit 2 (nothing kept) or 75 (the journal kept, resumable), nothing
half-written, and the same map once space is freed.

For real on a small tmpfs when the tests run as root (CI does); with ENOSPC simulated in the process
otherwise (and always, for the places a real disk cannot be made to fill at the right moment)."""

import contextlib
import errno
import os
import shutil
import subprocess
import uuid

import pytest
from helpers import SLOW_CONFIG, assert_same_fields, journal_with_tiles, wait_for_tiles, write_config

import descentsim as ds
from descentsim import cli
from descentsim import journal as journal_module
from descentsim import store
from descentsim.journal import journal_path, read_journal

SPEC = ds.MapSpec.from_toml_text(SLOW_CONFIG)
ARGS = ["--threads", "1", "--tile", "2x48"]


class Disk:
    """A small tmpfs at ``path`` that ``fill`` fills to the last byte and ``free`` empties again."""

    def __init__(self, path):
        self.path = path
        self.filler = path / ".filler"

    def fill(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        block = 1 << 16
        try:
            while block:
                try:
                    os.write(fd, b"\0" * block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    block //= 2
        finally:
            os.close(fd)

    def free(self):
        self.filler.unlink()

    def files(self):
        return sorted(p.name for p in self.path.iterdir() if p != self.filler)


@contextlib.contextmanager
def small_tmpfs(tmp_path, options):
    """A tmpfs mounted with ``options`` below ``tmp_path`` (the test skipped where it cannot be)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the simulated-ENOSPC tests below cover the same paths")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the simulated-ENOSPC tests cover it")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def disk(tmp_path):
    with small_tmpfs(tmp_path, "size=4m") as where:
        yield Disk(where)


def descentsim_map(config, out, *extra, wait=True):
    command = [shutil.which("descentsim-map"), str(config), "-o", str(out), *ARGS, *extra]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- on a real full disk ----------------------------------------------------------------------------
def test_full_disk_at_the_start_writes_nothing(tmp_path, disk):
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    disk.fill()
    result = descentsim_map(config, disk.path / "map.h5")
    assert result.returncode == 2 and "on disk" in one_line(result.stderr)
    assert disk.files() == []


def test_full_disk_during_the_run_keeps_the_journal(tmp_path, disk, slow_reference):
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    out = disk.path / "map.h5"
    run = descentsim_map(config, out, wait=False)
    wait_for_tiles(journal_path(out), 2)
    disk.fill()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 75, err
    assert "no space left" in one_line(err) and "--resume" in err
    _, _, done, end, damaged = read_journal(journal_path(out))
    assert 2 <= len(done) < 32 and damaged == 0 and end == journal_path(out).stat().st_size
    assert disk.files() == ["map.h5.partial"]
    disk.free()
    resumed = descentsim_map(config, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_fields(slow_reference, ds.open_map(out))
    assert disk.files() == ["map.h5"]


def test_full_disk_during_the_final_write_keeps_the_journal(tmp_path, disk, slow_reference):
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    out = disk.path / "map.h5"
    journal_with_tiles(journal_path(out), SPEC, slow_reference, 32)  # every tile done: only the write is left
    before = journal_path(out).read_bytes()
    disk.fill()
    result = descentsim_map(config, out, "--resume")
    assert result.returncode == 75 and "free space, then run the same command with --resume" in one_line(result.stderr)
    assert disk.files() == ["map.h5.partial"] and journal_path(out).read_bytes() == before
    disk.free()
    assert descentsim_map(config, out, "--resume").returncode == 0
    assert_same_fields(slow_reference, ds.open_map(out))


def test_full_disk_for_a_picture_or_a_zoom(tmp_path, disk, slow_reference):
    source = tmp_path / "map.h5"
    slow_reference.save(source)
    disk.fill()
    picture = subprocess.run([shutil.which("descentsim-plot"), str(source), "-o", str(disk.path / "map.png")],
                             capture_output=True, text=True, timeout=120)
    assert picture.returncode == 2 and "no space left" in one_line(picture.stderr)
    config = write_config(tmp_path / "q.toml", 'model = "quadratic"\nsteps = 20\n[x]\nname = "lr"\nstart = 0.1\n'
                          'stop = 3.0\nn = 64\n[y]\nname = "a"\nstart = 0.5\nstop = 2.0\nn = 64\n')
    zoom = subprocess.run([shutil.which("descentsim-zoom"), str(config), "-o", str(disk.path / "z.h5"), "--frames", "2",
                           "--animation", str(tmp_path / "z.gif")], capture_output=True, text=True, timeout=120)
    assert zoom.returncode == 2 and "nothing was written" in one_line(zoom.stderr)
    assert disk.files() == []


# --- simulated ---------------------------------------------------------------------------------------
def no_space(*args, **kwargs):
    """A write (or fsync) on a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing_after(calls: int, real=os.write, short=False):
    """An os.write that works ``calls`` times, then fails as a full disk does (or writes half, ``short``)."""
    count = {"n": 0}

    def write(fd, data):
        count["n"] += 1
        if count["n"] <= calls:
            return real(fd, data)
        if short:
            return real(fd, bytes(data)[: len(data) // 2])
        return no_space()

    return write


@pytest.mark.parametrize("short", [False, True])
def test_a_failed_append_leaves_a_clean_resumable_journal(tmp_path, monkeypatch, short):
    spec = SPEC.replace(steps=200)
    out = tmp_path / "map.h5"
    with monkeypatch.context() as patch:
        patch.setattr(journal_module.os, "write", failing_after(3, short=short))
        with pytest.raises(ds.errors.OutOfSpace, match="--resume") as full:
            ds.runner.run_map_to_file(spec, out, tile_shape=(2, 48))
    assert full.value.partial == journal_path(out)
    _, _, done, end, damaged = read_journal(journal_path(out))
    assert sorted(done) == [0, 1, 2] and damaged == 0 and end == journal_path(out).stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.h5.partial"]
    assert_same_fields(ds.run_map(spec), ds.runner.run_map_to_file(spec, out, resume=True))


def final_write_on_a_full_disk(monkeypatch, tmp_path, run) -> None:
    """``run()`` with the map file's final write failing for want of space: OutOfSpace naming the journal,
    which alone is left."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "_write_all", no_space)
        with pytest.raises(ds.errors.OutOfSpace, match="kept in .*map.h5.partial"):
            run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.h5.partial"]


def test_a_failed_final_write_keeps_the_journal_and_no_temporary(tmp_path, monkeypatch):
    spec = SPEC.replace(steps=100)
    out = tmp_path / "map.h5"
    final_write_on_a_full_disk(monkeypatch, tmp_path, lambda: ds.runner.run_map_to_file(spec, out))
    assert_same_fields(ds.run_map(spec), ds.runner.run_map_to_file(spec, out, resume=True))


def test_the_command_line_exits_75_when_the_journal_is_kept(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    monkeypatch.setattr(journal_module.os, "write", failing_after(2))
    code = cli.map_main([str(config), "-o", str(tmp_path / "map.h5"), "--set", "steps=100", *ARGS])
    assert code == 75
    assert "no space left" in one_line(capsys.readouterr().err)


def test_a_journal_that_cannot_be_created_leaves_nothing(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    monkeypatch.setattr(journal_module.os, "fsync", no_space)
    code = cli.map_main([str(config), "-o", str(tmp_path / "map.h5"), *ARGS])
    assert code == 2 and "nothing was written" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.toml"]



def test_a_refined_run_on_a_full_disk_keeps_its_journal(tmp_path, monkeypatch):
    spec = SPEC.replace(steps=100)
    out = tmp_path / "map.h5"
    final_write_on_a_full_disk(monkeypatch, tmp_path, lambda: ds.refine.refine_map_to_file(spec, out, 2))
    assert_same_fields(ds.refine_map(spec, 2), ds.refine.refine_map_to_file(spec, out, 2, resume=True))


def test_an_animation_on_a_full_disk_keeps_the_frames_for_resume(tmp_path, disk):
    """The frames are saved in the zoom file: the line must not say "nothing was written, run it again"
    (a rerun is refused: the output exists), but to free space and --resume, which draws the animation."""
    config = write_config(tmp_path / "q.toml", 'model = "quadratic"\nsteps = 20\n[x]\nname = "lr"\nstart = 0.1\n'
                          'stop = 3.0\nn = 32\n[y]\nname = "a"\nstart = 0.5\nstop = 2.0\nn = 32\n')
    command = [shutil.which("descentsim-zoom"), str(config), "-o", str(tmp_path / "z.h5"), "--frames", "2",
               "--animation", str(disk.path / "z.gif")]
    disk.fill()
    full = subprocess.run(command, capture_output=True, text=True, timeout=120)
    last = full.stderr.strip().splitlines()[-1]  # after a progress line per frame
    assert full.returncode == 75 and "Traceback" not in full.stderr, full.stderr
    assert "then run the same command with --resume" in last and "z.h5" in last and disk.files() == []
    disk.free()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert disk.files() == ["z.gif"]


@pytest.fixture
def no_inodes(tmp_path):
    """A tmpfs with room for bytes but no more files (its inodes used up), as a full disk can be."""
    with small_tmpfs(tmp_path, "size=4m,nr_inodes=8") as where:
        for n in range(64):
            try:
                (where / f".filler{n}").touch()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        yield where


def test_no_room_for_a_new_file_is_named_a_full_disk(tmp_path, no_inodes):
    """It was "output directory ... is not writable; choose another -o path": the wrong cause and fix."""
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    result = descentsim_map(config, no_inodes / "map.h5")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "no space left" in line and "free space" in line and "not writable" not in line
    assert not any(p.name.startswith("map.h5") for p in no_inodes.iterdir())


@pytest.mark.parametrize("where", ["probe", "lock"])
def test_no_room_for_a_file_is_a_full_disk(tmp_path, monkeypatch, where):
    full = no_space
    if where == "probe":
        monkeypatch.setattr(store.tempfile, "mkstemp", full)
    else:
        from descentsim import lock

        real_open = lock.os.open
        monkeypatch.setattr(lock.os, "open", lambda path, *a, **k: full() if str(path).endswith(".lock")
                            else real_open(path, *a, **k))
    spec = SPEC.replace(steps=10)
    with pytest.raises(ds.errors.OutOfSpace, match="no space left.*free space") as refused:
        ds.runner.run_map_to_file(spec, tmp_path / "map.h5")
    assert refused.value.partial is None and list(tmp_path.iterdir()) == []


def test_an_animation_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    """ffmpeg's complaint comes on several lines: the error keeps to one."""
    import numpy as np

    from descentsim import zoom

    def ffmpeg_fails(command, **kwargs):
        raise subprocess.CalledProcessError(1, command, stderr=b"[mp4 @ 0x1] first\nAv_interleaved: No space\nlast\n")

    monkeypatch.setattr(zoom.subprocess, "run", ffmpeg_fails)
    images = [np.zeros((4, 4, 3), np.uint8)] * 2
    with pytest.raises(ds.MapFileError) as failed:
        zoom.save_animation(images, tmp_path / "z.mp4")
    assert "\n" not in str(failed.value) and "No space" in str(failed.value)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_under_mpi_ends_the_job_resumable(tmp_path, disk, slow_reference):
    """Rank 0's journal append fails: the job ends with 75 (a batch chain resubmits), the journal intact."""
    mpiexec = shutil.which("mpiexec")
    assert mpiexec, "mpiexec comes with the test extras"
    config = write_config(tmp_path / "slow.toml", SLOW_CONFIG)
    out = disk.path / "map.h5"
    command = [mpiexec, "-n", "2", shutil.which("descentsim-map"), str(config), "-o", str(out), *ARGS]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    wait_for_tiles(journal_path(out), 2)
    disk.fill()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 75, err
    assert "no space left" in err and "--resume" in err
    _, _, done, end, damaged = read_journal(journal_path(out))
    assert 2 <= len(done) < 32 and damaged == 0 and end == journal_path(out).stat().st_size
    disk.free()
    assert descentsim_map(config, out, "--resume").returncode == 0
    assert_same_fields(slow_reference, ds.open_map(out))
