"""Errors meant for people: each message names the problem and the fix."""

from typing import Iterable, Sequence


class DescentsimError(Exception):
    """Base class of errors descentsim reports as one line (exit code 2 on the command line)."""


class SpecError(DescentsimError, ValueError):
    """A map specification (or configuration file) that cannot be computed."""


class MapFileError(DescentsimError, OSError):
    """A file that is not a descentsim map this version can read, or that cannot be written."""


class RunInterrupted(Exception):
    """A run stopped on request (SIGTERM) between tiles (or blocks of points, for a refined run); its
    finished work is saved for --resume. ``total`` is None where it is not known in advance."""

    def __init__(self, done: int, total: int | None, partial=None, unit: str = "tiles"):
        self.done, self.total, self.partial, self.unit = done, total, partial, unit
        super().__init__(f"stopped after {self.progress}")

    @property
    def progress(self) -> str:
        """How far the run got, e.g. "12 of 40 tiles"."""
        return f"{self.done} {self.unit}" if self.total is None else f"{self.done} of {self.total} {self.unit}"


def check_known(keys: Iterable[str], valid: Sequence[str], what: str, prefix: str = "") -> None:
    """SpecError naming the first of ``keys`` not in ``valid``, and listing the valid ones."""
    unknown = sorted(set(keys) - set(valid))
    if unknown:
        raise SpecError(f"{prefix}unknown {what} {unknown[0]!r}; valid {what}s: {', '.join(valid)}")
