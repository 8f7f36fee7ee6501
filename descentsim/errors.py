"""Errors meant for people: each message names the problem and the fix."""

from typing import Iterable, Sequence


class DescentsimError(Exception):
    """Base class of errors descentsim reports as one line (exit code 2 on the command line)."""


class SpecError(DescentsimError, ValueError):
    """A map specification (or configuration file) that cannot be computed."""


class MapFileError(DescentsimError, OSError):
    """A file that is not a descentsim map this version can read, or that cannot be written."""


class RunInterrupted(Exception):
    """A run stopped on request (SIGTERM) between tiles; its finished tiles are saved for --resume."""

    def __init__(self, done: int, total: int, partial=None):
        super().__init__(f"stopped after {done} of {total} tiles")
        self.done, self.total, self.partial = done, total, partial


def check_known(keys: Iterable[str], valid: Sequence[str], what: str, prefix: str = "") -> None:
    """SpecError naming the first of ``keys`` not in ``valid``, and listing the valid ones."""
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise SpecError(f"{prefix}unknown {what} {unknown[0]!r}; valid {what}s: {', '.join(valid)}")
