"""The files a run makes beside its output, and the checks before it makes any: the output path is a
writable file name, the names derived from it (journal, lock, temporaries) fit the file system, and
new files and renames reach the disk (``fsync`` of the file and of its directory)."""

from __future__ import annotations

import os
import tempfile
import zlib
from pathlib import Path

from .errors import NO_SPACE, MapFileError, write_error


def check_output_path(path: str | Path) -> Path:
    """Fail early, before any work, if ``path`` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise MapFileError(f"output {str(path)!r} is a directory; give a file name such as {str(path / 'map.h5')!r}")
    if not parent.is_dir():
        raise MapFileError(f"output directory {str(parent)!r} does not exist; create it first")
    if os.path.lexists(path) and not path.is_file():
        raise MapFileError(f"output {str(path)!r} exists and is not a regular file; choose another -o path")
    try:  # a real probe: permission bits do not tell root, ACLs or read-only mounts
        fd, probe = tempfile.mkstemp(prefix=".ds-", suffix=".probe", dir=parent)
    except OSError as exc:
        if exc.errno in NO_SPACE:  # no room for one more file: a full disk (or inode table, or quota)
            raise write_error(exc, parent) from None
        raise MapFileError(
            f"output directory {str(parent)!r} is not writable ({exc.strerror}); choose another -o path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_name_room(path: Path, derived: Path) -> None:
    """MapFileError if ``derived``, a file descentsim makes beside the output ``path`` (its lock, its
    journal), would have a longer name than the file system allows."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        most = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        most = 255
    excess = len(os.fsencode(derived.name)) - most
    if excess > 0:
        raise MapFileError(
            f"output name {path.name[:24]!r}… is {len(os.fsencode(path.name))} bytes long, and descentsim writes "
            f"{derived.name[len(path.name):]!r} beside it under the same name, which would exceed the file "
            f"system's {most}; shorten the name by {excess} bytes"
        )


def temporary_prefix(path: Path) -> str:
    """Hidden temporary files for ``path`` start with this (short, whatever the length of the name)."""
    return f".ds-{zlib.crc32(path.name.encode()):08x}-"


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
