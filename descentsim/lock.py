"""One writer per output: an exclusive lock held for the whole of a run that writes a file.

Two runs writing one output at once would spoil it (each deletes the other's journal or temporary
file; an older run could replace a newer one's map). So every writer (``descentsim-map``, a refined
or MPI run's rank 0, ``descentsim-zoom``, ``ConvergenceMap.save``) first takes an exclusive lock on
``OUT.lock`` beside the output and keeps it until the output is complete; a second writer is refused
at once with one line naming the holder (its process, host and start, written into the lock file).

The lock is a POSIX record lock (``fcntl`` F_SETLK, through ``fcntl.lockf``): the kernel releases it
when its process ends, even by ``kill -9``, so a killed run never blocks the next one (the lock file it
leaves behind holds no lock). It works across the nodes of a cluster on NFS (through its lock service),
GPFS/Spectrum Scale and BeeGFS, and on Lustre mounted with ``-o flock`` (not with ``localflock``,
which locks one node only, or without either option, where locking fails). Where the file system
cannot lock, the run is refused with a line saying so; setting ``DESCENTSIM_LOCK=off`` then runs
without a lock (never start two runs on one output that way).

A POSIX lock belongs to its process, and closing any descriptor of the file releases it: only this
module opens the lock file, and only once per process (the lock is re-entrant instead).

The lock file is removed when the writer finishes. A writer that finds the file it locked already
removed (its previous holder finishing in between) takes the lock again on a fresh file.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from .errors import NO_SPACE, MapFileError, write_error
from .filesystem import check_name_room

#: Environment variable that switches locking off where the file system cannot lock ("off").
LOCK_SWITCH = "DESCENTSIM_LOCK"

#: errno values of a lock held by another process.
_BUSY = frozenset({errno.EACCES, errno.EAGAIN})
#: errno values of a file system that does not lock.
_UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})

#: Outputs this process holds a lock on (resolved path → (file descriptor, holders)): locks are re-entrant.
_held: dict[str, list] = {}


class OutputBusy(MapFileError):
    """Another run holds the output's lock."""


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


@contextlib.contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of ``output`` for the ``with`` block (re-entrant within a process).

    Raises OutputBusy (naming the holder) when another process holds it, MapFileError when the lock
    file cannot be made or the file system cannot lock (unless ``DESCENTSIM_LOCK=off``).
    """
    key = str(Path(output).resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    if os.environ.get(LOCK_SWITCH, "").lower() == "off":
        yield
        return
    path = lock_path(output)
    check_name_room(Path(output), path)
    fd = _acquire(path, output)
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiting writer then sees a removed file and starts afresh
        os.close(fd)


def _acquire(path: Path, output: str | Path) -> int:
    """A descriptor of ``path`` holding its lock, the holder's description written in it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise write_error(exc, path) from None
            raise MapFileError(
                f"cannot create the lock file {str(path)!r} ({exc.strerror}); check that the output's directory "
                "is writable"
            ) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _BUSY:
                raise OutputBusy(
                    f"output {str(output)!r} is being written by another run ({_holder(path)}); wait for it to "
                    "finish or stop it: two runs writing one output would spoil it"
                ) from None
            if exc.errno in _UNSUPPORTED:
                path.unlink(missing_ok=True)  # no run can lock it here: nothing to keep it for
                raise MapFileError(
                    f"cannot lock {str(path)!r}: the file system does not support locks ({exc.strerror}; NFS needs "
                    f"its lock service, Lustre the flock mount option); write elsewhere, or set {LOCK_SWITCH}=off "
                    "to run without a lock (then never start two runs on one output)"
                ) from None
            raise MapFileError(f"cannot lock {str(path)!r} ({exc.strerror})") from None
        if _same_file(fd, path):
            _describe_holder(fd)
            return fd
        os.close(fd)  # the previous holder removed it after we opened it: lock a fresh one


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    then = os.fstat(fd)
    return (then.st_dev, then.st_ino) == (now.st_dev, now.st_ino)


def _describe_holder(fd: int) -> None:
    """Write who holds the lock into the lock file, for a refused writer's message (best effort: a full disk
    leaves it empty, and the lock holds all the same)."""
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    text = f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {command}"
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(errors="replace")[:4096], 0)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "a process that did not say which"
