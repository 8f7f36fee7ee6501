"""How many threads a run uses: explicit, else OMP_NUM_THREADS, else the cores this process may use."""

from __future__ import annotations

import os

from .errors import SpecError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, as set by taskset, cpusets or a batch scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def effective_threads(threads: int | None = None) -> int:
    """``threads`` if given, else ``OMP_NUM_THREADS`` (its first entry), else the available cores."""
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise SpecError(f"OMP_NUM_THREADS={env!r} is not a whole number; set it to e.g. 4") from None
        else:
            threads = available_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SpecError(f"threads must be a whole number >= 1, got {threads!r}")
    return threads
