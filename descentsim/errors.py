"""Errors meant for people: each message names the problem and the fix."""


class DescentsimError(Exception):
    """Base class of errors descentsim reports as one line (exit code 2 on the command line)."""


class SpecError(DescentsimError, ValueError):
    """A map specification (or configuration file) that cannot be computed."""


class MapFileError(DescentsimError, OSError):
    """A file that is not a descentsim map this version can read, or that cannot be written."""
