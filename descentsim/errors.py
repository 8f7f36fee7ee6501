"""Errors meant for people: each message names the problem and the fix."""

import errno
from difflib import get_close_matches
from typing import Iterable, Sequence


class DescentsimError(Exception):
    """Base class of errors descentsim reports as one line (exit code 2 on the command line)."""


class SpecError(DescentsimError, ValueError):
    """A map specification (or configuration file) that cannot be computed."""


class MapFileError(DescentsimError, OSError):
    """A file that is not a descentsim map this version can read, or that cannot be written."""


#: Exit status of a run stopped by SIGTERM with its finished tiles saved: "incomplete, resume me"
#: (EX_TEMPFAIL of sysexits.h).
EXIT_INCOMPLETE = 75
#: Exit status of a run stopped by Ctrl-C (SIGINT; the shell's 128 + 2), its finished tiles saved too.
EXIT_INTERRUPTED = 130


class OutOfSpace(MapFileError):
    """A write failed for want of disk space (or quota). ``partial`` is the journal that holds the work
    finished so far (a run can be resumed from it once space is freed), or None where nothing was kept."""

    def __init__(self, message: str, partial=None):
        super().__init__(message)
        self.partial = partial


#: errno values that mean "the disk (or the quota) is full": freeing space makes a retry succeed.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def write_error(exc: OSError, writing: str, partial=None) -> MapFileError:
    """The one-line error for ``exc`` raised while writing ``writing`` (a file name, shown quoted).

    A full disk or quota gives OutOfSpace, which says to free space and, where ``partial`` (the journal
    of finished work) is given, to resume; anything else a MapFileError naming the system's reason.
    """
    where = repr(str(writing))
    if exc.errno in NO_SPACE:
        then = (f"the finished work is kept in {str(partial)!r}: free space, then run the same command with --resume"
                if partial is not None else "nothing was written: free space (or write elsewhere) and run it again")
        return OutOfSpace(f"no space left on the device of {where} ({exc.strerror}); {then}", partial)
    reason = exc.strerror or str(exc)
    kept = f"; the finished work is kept in {str(partial)!r} for --resume" if partial is not None else ""
    return MapFileError(f"cannot write {where} ({reason}); check the path and its permissions{kept}")


class RunInterrupted(Exception):
    """A run stopped on request (SIGTERM, Ctrl-C) between tiles (or blocks of points, for a refined run);
    its finished work is saved for --resume. ``total`` is None where it is not known in advance;
    ``signum`` is the signal that stopped it where the raiser knows it (under MPI), else 0."""

    def __init__(self, done: int, total: int | None, partial=None, unit: str = "tiles", signum: int = 0):
        self.done, self.total, self.partial, self.unit, self.signum = done, total, partial, unit, signum
        super().__init__(f"stopped after {self.progress}")

    @property
    def progress(self) -> str:
        """How far the run got, e.g. "12 of 40 tiles"."""
        return f"{self.done} {self.unit}" if self.total is None else f"{self.done} of {self.total} {self.unit}"


def unknown_name(name: object, valid: Sequence[str], what: str, prefix: str = "", where: str = "",
                 close_to: Sequence[str] | None = None) -> SpecError:
    """The error for a ``what`` called ``name`` that is not one of ``valid``: it suggests the closest of
    ``close_to`` (default ``valid``; ``difflib.get_close_matches``) where one is close, and lists ``valid``.

    Examples
    --------
    >>> print(unknown_name("step", ["lr", "w0"], "knob", close_to=["lr", "w0", "steps"]))
    unknown knob 'step' (did you mean 'steps'?); valid knobs: lr, w0
    """
    close = get_close_matches(name, close_to if close_to is not None else valid, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(f"{prefix}unknown {what} {name!r}{where}{hint}; valid {what}s: {', '.join(map(str, valid))}")


def check_known(keys: Iterable[str], valid: Sequence[str], what: str, prefix: str = "") -> None:
    """SpecError (``unknown_name``) for the first of ``keys`` not in ``valid``."""
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise unknown_name(unknown[0], valid, what, prefix)
