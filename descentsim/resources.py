"""Memory and disk a run needs, against what it may use: checked before any work or any file.

A map holds every field of every point once (``fields.POINT_BYTES`` a point, the stored size), plus one
tile at work: the engine's blocks of initial parameters (at most ``runner.THETA_BUDGET`` values), the
model's shared data, the learning-rate schedule's table and the recorded curves. ``run_memory`` adds
these up, an upper bound measured against the peak resident memory of real runs in the tests;
``memory_available`` reads what the process may still take: the memory the kernel reports available,
the address-space and data limits (``ulimit -v``, ``ulimit -d``) and the cgroup limit of a batch job
(cgroup v2 ``memory.max``, or v1 ``memory.limit_in_bytes``), whichever is least.
"""

from __future__ import annotations

import ctypes
import resource
import shutil
from pathlib import Path

import numpy as np

from .errors import SpecError
from .fields import POINT_BYTES
from .optimizers import scheduled
from .spec import MapSpec

#: Values of the initial parameters the engine prepares at once (64 MiB of float64): wide models run a
#: tile in blocks of at most this many parameter values.
THETA_BUDGET = 1 << 23
#: Copies of a block's parameters alive at once (θ₀, θ in the map's precision, per-parameter learning
#: rates in float64 and in the map's precision, the engine's work space).
BLOCK_COPIES = 5
#: Bytes a point of a refined map may hold at its peak: the assembled fields, the computed points'
#: store, the journal's records (with their grid indices) and its sorted index, and the level arrays.
REFINE_POINT_BYTES = 4 * POINT_BYTES + 32
#: A run that writes a file holds, at its peak, either the file's image while HDF5 builds it in memory or
#: the map read back from the file, each with its working buffers: at most this many times the fields
#: (measured on a 2048² quadratic map, 235 MB of fields: 0.83 for the image of its 105 MB file, 1.07 for
#: the read-back; the image's memory is handed back in between, ``release_freed_memory``).
FILE_FACTOR = 1.25
#: Room left for the interpreter's own growth (imports, HDF5's buffers, the picture of a summary).
HEADROOM = 64 << 20


def grid_extremes(spec: MapSpec) -> dict:
    """Knob values in which every axis value appears once (row 0 and column 0 of the grid): enough for
    the largest parameter count or data size over the map."""
    ny, nx = spec.shape
    iy = np.concatenate([np.arange(ny), np.zeros(nx, np.int64)])
    ix = np.concatenate([np.zeros(ny, np.int64), np.arange(nx)])
    return spec.point_values(iy, ix)


def run_memory(spec: MapSpec, tile_shape: tuple[int, int], refined: bool = False, to_file: bool = False
               ) -> dict[str, int]:
    """Bytes a run of ``spec`` in tiles of ``tile_shape`` needs at its peak beyond what the process holds
    now, by part: ``fields`` (the map itself; for a run writing a file, ``to_file``, its image or the map
    read back, ``FILE_FACTOR``), ``tile`` (one tile's blocks of parameters and results), ``data`` (the
    model's shared data, in float64 and the map's precision), ``schedule`` and ``recording``.
    ``refined``: a refined run (``descentsim.refine``), which holds more per point."""
    values = grid_extremes(spec)
    model = spec.model_def
    p = model.parameter_count(values)
    points = spec.shape[0] * spec.shape[1]
    tile_points = tile_shape[0] * tile_shape[1]
    block = max(1, min(THETA_BUDGET // p, tile_points))
    return {
        "fields": int(points * (REFINE_POINT_BYTES if refined else POINT_BYTES) * (FILE_FACTOR if to_file else 1)),
        "tile": block * p * 8 * BLOCK_COPIES + 3 * tile_points * POINT_BYTES,
        "data": 2 * 8 * model.data_size(values),
        "schedule": 3 * 8 * spec.steps if scheduled(values) else 0,
        "recording": 2 * 8 * len(spec.record) * (spec.steps + 1),
    }


def memory_available() -> tuple[int | None, str]:
    """(bytes this process may still allocate, what limits it), or (None, "") where nothing is known."""
    limits: list[tuple[int, str]] = []
    meminfo = _read_table("/proc/meminfo")
    if "MemAvailable" in meminfo:
        limits.append((meminfo["MemAvailable"] * 1024, "the memory this machine has available"))
    status = _read_table("/proc/self/status")
    for which, used, name in ((resource.RLIMIT_AS, "VmSize", "the address-space limit (ulimit -v)"),
                              (resource.RLIMIT_DATA, "VmData", "the data-size limit (ulimit -d)")):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and used in status:
            limits.append((soft - status[used] * 1024, name))
    cgroup = _cgroup_room()
    if cgroup is not None:
        limits.append((cgroup, "the memory limit of this job's cgroup (its batch memory request)"))
    if not limits:
        return None, ""
    room, name = min(limits)
    return max(room, 0), name


def _read_table(path: str) -> dict[str, int]:
    """``Key: 123 kB`` lines of a /proc file as {key: number}; empty where unreadable."""
    table = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                words = rest.split()
                if words and words[0].isdigit():
                    table[key] = int(words[0])
    except OSError:
        pass
    return table


def _cgroup_room() -> int | None:
    """Bytes left under the tightest memory limit of this process's cgroup and its ancestors, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        _, controllers, where = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base, limit_file, usage_file = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # cgroup v1
            base, limit_file, usage_file = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        node = base / where.lstrip("/")
        while True:
            limit, usage = _read_number(node / limit_file), _read_number(node / usage_file)
            if limit is not None and usage is not None and limit < 1 << 60:
                rooms.append(limit - usage)
            if node == base or base not in node.parents:
                break
            node = node.parent
    return min(rooms) if rooms else None


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def release_freed_memory() -> None:
    """Hand the memory the C allocator keeps after a large temporary is freed (an HDF5 file image, say) back
    to the system (glibc's ``malloc_trim``; elsewhere nothing), so that what follows starts from what the
    process really holds."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def check_memory(spec: MapSpec, tile_shape: tuple[int, int], refined: bool = False, to_file: bool = False) -> None:
    """SpecError, before any work, when a run of ``spec`` cannot fit in the memory the process may use:
    the estimate (``run_memory``) and the limit, in one line."""
    parts = run_memory(spec, tile_shape, refined, to_file)
    need = sum(parts.values()) + HEADROOM
    room, limit = memory_available()
    if room is None or need <= room:
        return
    largest = max(parts, key=parts.get)
    advice = {
        "fields": "use fewer points (zoom, or split the map into several), or --refine",
        "tile": "use a smaller --tile",
        "data": "use less data (fewer samples or a narrower model)",
        "schedule": "use fewer steps",
        "recording": "record fewer points",
    }[largest]
    raise SpecError(
        f"this map needs about {_size(need)} of memory ({_size(parts[largest])} for its {largest}), more than "
        f"the {_size(room)} left under {limit}; {advice}"
    )


def check_disk(spec: MapSpec, output: Path) -> None:
    """SpecError, before any work, when the output's file system has less free space than the journal of
    ``spec`` will take (``fields.POINT_BYTES`` a point); the map file then needs at most as much again,
    usually far less (it is compressed)."""
    need = spec.shape[0] * spec.shape[1] * POINT_BYTES
    try:
        free = shutil.disk_usage(output.parent if str(output.parent) else Path(".")).free
    except OSError:
        return
    if need > free:
        raise SpecError(
            f"the partial run of this map needs about {_size(need)} on disk and {str(output.parent or '.')!r} has "
            f"{_size(free)} free; free space, write elsewhere, or use fewer points"
        )


def _size(n: int) -> str:
    """Bytes for people: 1.5 GB, 700 MB, 12 kB (powers of 1000, as df -H and free --si show them)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
