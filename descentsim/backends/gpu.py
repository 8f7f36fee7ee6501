"""The GPU engine: ``ext/gpu_kernels.cu`` (the CPU engine's maths, one trajectory per GPU thread) through CuPy.

The kernels are compiled at run time by NVRTC (CuPy's binding; not CuPy's own compile, which flushes float32
subnormals to zero) with ``--fmad=false`` (``arithmetic = "exact"``), so that, like the CPU engine, every operation rounds once and the results agree with the NumPy reference bit for bit; with
``arithmetic = "fast"`` multiply-adds fuse. The same Python code drives two devices:

- ``CupyDevice``: a CUDA GPU (CuPy); a group's points go through in chunks that fit the GPU's memory, alternating
  two streams so that one chunk's transfers overlap the previous chunk's kernel.
- ``HostDevice``: the host copy of the same kernels (``gpu_kernels.cu`` built by the system's C++ compiler with
  ``DS_ONE_LANE``), called thread by thread; the tests run it on machines without a GPU, so that only CuPy's
  launch and transfers are left for a machine with one.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from ..errors import SpecError
from ..fields import FIELDS
from ..history import Recording
from ..models import Problem
from ..outcome import decision_steps
from ..spec import MapSpec

#: The kernels' source in the package (``ext/`` of the checkout).
KERNEL_FILE = "gpu_kernels.cu"
#: GPU threads per block: one trajectory each.
BLOCK_THREADS = 128
#: Points a chunk holds at most (and at least what fills an H100/H200: 132 multiprocessors × 2048 threads).
CHUNK_POINTS = 1 << 20
#: The fraction of the GPU's free memory one chunk (and its pair on the other stream) may take.
CHUNK_MEMORY_SHARE = 0.25
#: Groups of at most this many parameters get kernels compiled with their sizes as constants (DS_FIXED_*), so that
#: a small model's parameters and optimiser state live in registers; larger ones would only unroll into a kernel that
#: takes minutes to compile and spills anyway.
FIXED_MAX_PARAMETERS = 32
#: Dense networks (any depth, activation, bias, parameterisation and loss) of more parameters than this train in the
#: cooperative layout (ext/coop.h: a group of threads a network, each holding a share of θ in registers), where one
#: thread could not hold the network; False instead turns the layout off (every group the one-thread kernel).
COOP_MIN_PARAMETERS: int | bool = FIXED_MAX_PARAMETERS + 1
#: Threads a network at most in the cooperative layout: a warp (a group is the smallest power of two of threads at
#: least as many as the widest layer's outputs, at most this; each thread then holds ceil(width / threads) units of
#: each layer).
COOP_MAX_THREADS = 32
#: Layers a network at most in the cooperative layout (ext/coop.h's DS_COOP_MAX_LAYERS); deeper ones take the
#: one-thread kernel.
COOP_MAX_LAYERS = 16
#: Dynamic shared memory every CUDA GPU grants a block without opting in; a block asking for more has its kernel's
#: limit raised (max_dynamic_shared_size_bytes) up to the device's MaxSharedMemoryPerBlockOptin.
PORTABLE_SHARED_BYTES = 48 * 1024
#: What the host copy takes as its device's shared memory a block: an H100's or H200's (227 KiB), so that it runs the
#: layout where those GPUs do.
HOST_SHARED_BYTES = 227 * 1024
#: NVRTC's options by arithmetic: exact rounds every operation once, as the CPU engine and the reference do.
#: Fast arithmetic is the CPU engine's (meson.build): multiply-adds fused and DS_ARITHMETIC_FAST, whose few divisions
#: of many values by one become products with its reciprocal (ext/numerics.h, ds_divide) and float32's tanh is a
#: rational function (ds_tanh).
NVRTC_OPTIONS = {"exact": ("--fmad=false",), "fast": ("--fmad=true", "-DDS_ARITHMETIC_FAST=1")}
#: The host copy's compiler options by arithmetic (the cooperative kernels' host copy runs a group's threads as fibers
#: of the calling thread, ext/coop.h's ds_team).
HOST_OPTIONS = {"exact": ("-ffp-contract=off",), "fast": ("-ffp-contract=fast", "-DDS_ARITHMETIC_FAST=1")}

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


class ProblemStruct(ctypes.Structure):
    """``ds_problem`` of ``ext/problem.h``, field for field."""

    _fields_ = [
        ("model", ctypes.c_int), ("optimizer", ctypes.c_int),
        ("p", ctypes.c_ssize_t), ("samples", ctypes.c_ssize_t), ("data_rows", ctypes.c_ssize_t),
        ("n_consts", ctypes.c_ssize_t), ("n_hyper", ctypes.c_ssize_t),
        ("theta0", ctypes.c_void_p), ("consts", ctypes.c_void_p), ("data", ctypes.c_void_p),
        ("hyper", ctypes.c_void_p), ("lr_factors", ctypes.c_void_p), ("lr_scale", ctypes.c_void_p),
        ("trainable", ctypes.c_void_p),
        ("batch_size", ctypes.c_ssize_t), ("batch_seed", ctypes.c_uint64), ("batch_per_point", ctypes.c_int),
        ("batch_sequential", ctypes.c_int), ("point_id", ctypes.c_void_p), ("eval_count", ctypes.c_ssize_t),
    ]


class RulesStruct(ctypes.Structure):
    """``ds_rules`` of ``ext/problem.h``."""

    _fields_ = [
        ("steps", ctypes.c_ssize_t), ("converge_loss", ctypes.c_double), ("converge_window", ctypes.c_ssize_t),
        ("diverge_factor", ctypes.c_double), ("stuck_tol", ctypes.c_double), ("cycle_tol", ctypes.c_double),
        ("k_max", ctypes.c_ssize_t), ("window_start", ctypes.c_ssize_t), ("last_start", ctypes.c_ssize_t),
        ("converge_from", ctypes.c_ssize_t), ("diverge_from", ctypes.c_ssize_t),
    ]


#: ``ds_outputs``' field arrays, in its order (names of descentsim.fields).
OUTPUT_FIELDS = ("outcome", "steps", "period", "attractor", "final_loss", "loss_sum", "score", "accuracy",
                 "batch_loss", "collapsed", "classes_predicted")


class OutputsStruct(ctypes.Structure):
    """``ds_outputs`` of ``ext/problem.h``."""

    _fields_ = [(name, ctypes.c_void_p) for name in OUTPUT_FIELDS] + [
        ("loss_path", ctypes.c_void_p), ("theta_path", ctypes.c_void_p), ("accuracy_path", ctypes.c_void_p),
        ("stride", ctypes.c_ssize_t),
    ]


def kernel_source() -> str:
    """``gpu_kernels.cu`` with every quoted ``#include`` replaced by the file's text (marked with ``#line``, so that
    compiler messages name the header and line): NVRTC then needs no include path, and CuPy's compile cache, keyed
    by the text, sees every change to any header."""
    root = resources.files("descentsim").joinpath("ext")

    def expand(name: str) -> list[str]:
        lines = [f'#line 1 "{name}"']
        for number, line in enumerate(root.joinpath(name).read_text(encoding="utf-8").splitlines(), 1):
            match = _INCLUDE.match(line)
            if match is None:
                lines.append(line)
                continue
            lines += expand(_resolve(root, name, match.group(1)))
            lines.append(f'#line {number + 1} "{name}"')
        return lines

    return "\n".join(expand(KERNEL_FILE)) + "\n"


def _resolve(root, including: str, name: str) -> str:
    """The path (relative to ext/) of ``name`` included by ``including``: beside it first, then from ext/ (as the C
    compiler's quoted includes with ``-I ext``)."""
    beside = (Path(including).parent / name).as_posix()
    return beside if root.joinpath(beside).is_file() else name


def rules_struct(spec: MapSpec, factors: np.ndarray | None) -> RulesStruct:
    """The spec's outcome rules as ``ds_rules``, derived where ``_kernels.train`` derives them."""
    from .. import _kernels

    th = spec.resolved_thresholds
    return RulesStruct(**_kernels.rules(
        spec.steps, th.converge_loss, th.converge_window, th.diverge_factor, th.stuck_window, th.stuck_tol,
        th.max_period, th.cycle_tol, *decision_steps(factors, spec.steps)))


@dataclass(frozen=True)
class KernelBuild:
    """What a group's kernel is compiled with: the arithmetic, the two parts of a thread's work space (values), the
    group's kernel ids and sizes as constants (``DS_FIXED_*`` of gpu_kernels.cu) and, for the cooperative kernels,
    the network's shape (``DS_COOP_*``: THREADS a network, LAYERS, the widths N0 … N<layers>, BIAS, ACTIVATION,
    MEAN_FIELD, LOSS; ``coop_shape``)."""

    arithmetic: str
    work_values: int
    memory_values: int
    fixed: tuple[tuple[str, int], ...]
    coop: tuple[tuple[str, int], ...] = ()

    def defines(self) -> list[str]:
        """The compiler's -D options."""
        return [f"-DDS_WORK_VALUES={max(self.work_values, 1)}", f"-DDS_MEMORY_VALUES={max(self.memory_values, 1)}",
                *(f"-DDS_FIXED_{name}={value}" for name, value in self.fixed),
                *(f"-DDS_COOP_{name}={value}" for name, value in self.coop)]

    @property
    def threads(self) -> int:
        """GPU threads a point: a group of the cooperative layout's, else one."""
        return dict(self.coop).get("THREADS", 1)

    @property
    def kernel(self) -> str:
        """The entry point's name, less its precision's suffix."""
        return "ds_coop_train" if self.coop else "ds_train"

    @property
    def mirror_values(self) -> int:
        """Values of shared memory a group of the cooperative layout takes (ext/coop.h's DS_COOP_MIRROR)."""
        return coop_mirror_values(self.coop)

    def block(self, itemsize: int, shared_bytes: int) -> tuple[int, int]:
        """(threads, bytes of dynamic shared memory) a block of the kernel of values of ``itemsize`` bytes, on a device
        granting a block ``shared_bytes``: BLOCK_THREADS, or fewer groups of the cooperative layout where their mirrors
        would not fit (one group at least: ``coop_shape`` leaves a network whose mirror does not fit to the one-thread
        kernel)."""
        per_group = self.mirror_values * itemsize
        groups = BLOCK_THREADS // self.threads
        if per_group > 0:
            groups = max(1, min(groups, shared_bytes // per_group))
        return groups * self.threads, groups * per_group


def coop_shape(model: str, consts: np.ndarray, p: int, itemsize: int = 8, shared_bytes: int = HOST_SHARED_BYTES
               ) -> tuple[tuple[tuple[str, int], ...], int] | None:
    """The cooperative layout's shape for a group (``DS_COOP_*``) and the size of a thread's share of θ
    (``DS_COOP_P`` of ext/coop.h), or None where the group takes the one-thread kernel: not a network, at most
    ``COOP_MIN_PARAMETERS`` − 1 parameters (or the layout off), more than ``COOP_MAX_LAYERS`` layers, or a mirror of
    its weights (values of ``itemsize`` bytes) larger than the ``shared_bytes`` of shared memory a block may take.

    The group: the smallest power of two of threads at least as many as the widest layer's outputs, at most
    ``COOP_MAX_THREADS``. A network with one hidden layer, the mse loss and one output takes coop.h's shallow path
    (W2 split by hidden unit; no mirror); every other its general path (each layer's output units dealt to the
    threads in turn, each thread holding their columns of W and their biases).

    Examples
    --------
    >>> from descentsim.models import network
    >>> digits = network.dense_consts(1, [64, 25, 12, 10], "relu", "softmax_ce", 1, "standard", True)
    >>> shape, share = coop_shape("network", digits, 2067)
    >>> dict(shape)["THREADS"], share
    (32, 104)
    """
    from ..models import network

    if COOP_MIN_PARAMETERS is False or model != "network" or p < COOP_MIN_PARAMETERS or len(consts) == 0:
        return None
    row = consts[0]
    layers = int(row[network.C_LAYERS])
    if not 1 <= layers <= COOP_MAX_LAYERS:
        return None
    widths = [int(row[network.C_WIDTHS + at]) for at in range(layers + 1)]
    bias, loss = int(row[network.C_BIAS] != 0), int(row[network.C_LOSS])
    threads = min(COOP_MAX_THREADS, 1 << max(max(widths[1:]) - 1, 0).bit_length())
    shape = (("THREADS", threads), ("LAYERS", layers), *((f"N{l}", w) for l, w in enumerate(widths)),
             ("BIAS", bias), ("ACTIVATION", int(row[network.C_ACTIVATION])),
             ("MEAN_FIELD", int(row[network.C_PARAM] != 0)), ("LOSS", loss))
    if coop_mirror_values(shape) * itemsize > shared_bytes:
        return None
    units = [-(-w // threads) for w in widths[1:]]
    if coop_shallow(shape):
        return shape, units[0] * (widths[0] + bias + 1) + bias
    return shape, sum((widths[l] + bias) * units[l] for l in range(layers))


def coop_shallow(shape: tuple[tuple[str, int], ...]) -> bool:
    """Whether a cooperative shape takes coop.h's shallow path: one hidden layer, the mse loss, one output."""
    from ..models import network

    values = dict(shape)
    return (values["LAYERS"] == 2 and values["LOSS"] == network.LOSSES.index("mse") and values["N2"] == 1)


def coop_mirror_values(shape: tuple[tuple[str, int], ...]) -> int:
    """Values of shared memory a group of the cooperative layout takes: the mirror of W_1 … W_{L−1} of coop.h's
    general path (Σ n_l·n_{l+1} over the hidden layers' inputs), none on its shallow path or outside the layout."""
    if not shape or coop_shallow(shape):
        return 0
    values = dict(shape)
    widths = [values[f"N{l}"] for l in range(values["LAYERS"] + 1)]
    return sum(widths[l] * widths[l + 1] for l in range(1, values["LAYERS"]))


class Device(Protocol):
    """Where the kernels run: arrays in, a launch, arrays out. ``stream`` is 0 or 1 (two alternate)."""

    name: str
    description: str  # the device, for a map's provenance

    def free_bytes(self) -> int: ...

    def reserved_bytes(self, dtype: np.dtype, build: KernelBuild) -> int: ...

    def shared_bytes(self) -> int: ...

    def put(self, array: np.ndarray, stream: int) -> Any: ...

    def empty(self, count: int, dtype: np.dtype, stream: int) -> Any: ...

    def synchronize(self, stream: int) -> None: ...

    def address(self, handle: Any) -> int: ...

    def get(self, handle: Any, stream: int) -> np.ndarray: ...

    def launch(self, dtype: np.dtype, build: KernelBuild, problem: ProblemStruct, rules: RulesStruct,
               outputs: OutputsStruct, n: int, stream: int, keep: list) -> None: ...


class _Chunk(NamedTuple):
    """Points ``part`` of a group on its way through the device: its stream, output arrays and the arrays its
    kernel reads (held until it has run)."""

    part: slice
    stream: int
    handles: dict[str, Any]
    keep: list


class GpuBackend:
    """The GPU engine on ``device`` (a ``CupyDevice`` by default): every model, optimiser, schedule, minibatch
    order and outcome rule of the CPU engines, with the same fields and recorded curves."""

    parallel = False  # threads do not apply: every point has its own GPU thread
    #: Points a default tile holds: enough trajectories to fill a large GPU (an H100/H200 holds 270 336 threads).
    tile_points = 1 << 18

    def __init__(self, device: Device | None = None) -> None:
        self.device = device if device is not None else CupyDevice()
        self.name = self.device.name

    def provenance(self) -> dict[str, str]:
        """What a map's provenance records of the engine: the GPU it ran on."""
        return {"device": self.device.description}

    def run(
        self, spec: MapSpec, problem: Problem, hyper: np.ndarray, factors: np.ndarray | None, threads: int,
        recording: Recording | None = None,
    ) -> dict[str, np.ndarray]:
        from .. import _kernels

        dtype = np.dtype(spec.dtype)
        n, p = problem.theta0.shape
        out = {name: np.empty(n, dtype=info.dtype) for name, info in FIELDS.items()}
        if n == 0:
            return out
        model, optimizer = spec.model_def.kernel, spec.optimizer_def.kernel
        th = spec.resolved_thresholds
        coop = coop_shape(model, problem.consts, p, dtype.itemsize, self.device.shared_bytes())
        share = p if coop is None else coop[1]  # the parameters a thread holds: all, or its share of the network
        work_values, memory_values = _kernels.work_parts(
            model, optimizer, share, problem.data.shape[0], problem.consts.shape[1], hyper.shape[1], th.max_period,
            spec.steps)
        if coop is not None:  # the cooperative kernels need no model work space (coop.h): the past θ alone
            memory_values = (min(th.max_period, spec.steps) + 1) * share
        fixed = (("MODEL", _kernels.MODEL_IDS[model]), ("OPTIMIZER", _kernels.OPTIMIZER_IDS[optimizer]),
                 ("P", share), ("CONSTS", problem.consts.shape[1]), ("HYPER", hyper.shape[1]),
                 ("K_MAX", min(th.max_period, spec.steps))) if share <= FIXED_MAX_PARAMETERS or coop else ()
        build = KernelBuild(spec.arithmetic, work_values, memory_values, fixed,
                            () if coop is None else coop[0])
        device, shared_keep = self.device, []

        def arr(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a, dtype=dtype)

        def put(a: np.ndarray | None, stream: int, keep: list) -> int:
            if a is None:
                return 0
            handle = device.put(a, stream)
            keep.append(handle)
            return device.address(handle)

        rows = {  # per point: cut into chunks
            "theta0": arr(problem.theta0), "consts": arr(problem.consts), "hyper": arr(hyper),
            "lr_scale": None if problem.lr_scale is None else arr(problem.lr_scale),
            "point_id": None if problem.point_id is None else np.ascontiguousarray(problem.point_id, dtype=np.int64),
        }
        batch = problem.batch or (0, 0, 0, 0)
        lr_factors = None if factors is None or spec.steps == 0 else np.ascontiguousarray(factors, np.float64)
        shared = ProblemStruct(
            model=_kernels.MODEL_IDS[model], optimizer=_kernels.OPTIMIZER_IDS[optimizer], p=p,
            samples=problem.data.shape[1], data_rows=problem.data.shape[0], n_consts=problem.consts.shape[1],
            n_hyper=hyper.shape[1], data=put(arr(problem.data), 0, shared_keep),
            lr_factors=put(lr_factors, 0, shared_keep),
            trainable=put(np.ascontiguousarray(problem.trainable, dtype=np.uint8), 0, shared_keep),
            batch_size=batch[0], batch_seed=batch[1], batch_per_point=batch[2], batch_sequential=batch[3],
            eval_count=problem.eval_count,
        )
        device.synchronize(0)  # the shared arrays are in place before either stream's kernel reads them
        rules = rules_struct(spec, factors)
        paths = {} if recording is None else {
            "loss_path": recording.loss, "theta_path": recording.theta, "accuracy_path": recording.accuracy,
        }
        chunk = self._chunk_points(n, rows, paths, device.reserved_bytes(dtype, build))
        pending: list[_Chunk] = []
        for c, first in enumerate(range(0, n, chunk)):
            part, stream, keep = slice(first, min(first + chunk, n)), c % 2, []
            count = part.stop - part.start
            pb = ProblemStruct.from_buffer_copy(shared)
            for name in ("theta0", "consts", "hyper", "lr_scale", "point_id"):
                setattr(pb, name, put(None if rows[name] is None else rows[name][part], stream, keep) or None)
            handles = {name: device.empty(count, FIELDS[name].dtype, stream) for name in OUTPUT_FIELDS}
            handles.update({name: device.put(np.ascontiguousarray(path[part]), stream)  # NaN past the deciding step
                            for name, path in paths.items() if path is not None})
            outputs = OutputsStruct(stride=recording.stride if recording is not None else 1,
                                    **{name: device.address(h) for name, h in handles.items()})
            device.launch(dtype, build, pb, rules, outputs, count, stream, keep)
            pending.append(_Chunk(part, stream, handles, keep))
            if len(pending) == 2:  # the chunk before this one has had its stream's turn: collect it
                self._collect(pending.pop(0), out, paths)
        for done in pending:
            self._collect(done, out, paths)
        return out

    def _collect(self, done: _Chunk, out: dict[str, np.ndarray], paths: dict[str, np.ndarray | None]) -> None:
        """A chunk's fields and curves, copied back once its stream has finished (its arrays are then let go)."""
        for name in OUTPUT_FIELDS:
            out[name][done.part] = self.device.get(done.handles[name], done.stream)
        for name, path in paths.items():
            if path is not None:
                path[done.part] = self.device.get(done.handles[name], done.stream)

    def _chunk_points(self, n: int, rows: dict, paths: dict, reserved: int) -> int:
        """Points per chunk: CHUNK_POINTS at most, fewer where two chunks' arrays would take more than
        CHUNK_MEMORY_SHARE of the device's free memory less what the kernel's local memory will reserve."""
        per_point = sum(a.itemsize * (a.size // max(len(a), 1)) for a in rows.values() if a is not None)
        per_point += sum(np.dtype(info.dtype).itemsize for info in FIELDS.values())
        per_point += sum(a.itemsize * (a.size // max(len(a), 1)) for a in paths.values() if a is not None)
        fits = int(max(self.device.free_bytes() - reserved, 0) * CHUNK_MEMORY_SHARE) // (2 * per_point)
        if fits < 1:
            raise SpecError(f"one point's arrays ({per_point} bytes) do not fit the GPU's free memory; "
                            "record fewer steps or parameters")
        return max(1, min(n, CHUNK_POINTS, fits))


# ---- CuPy ------------------------------------------------------------------------------------------------------


def cupy_unavailable() -> str | None:
    """Why the GPU engine cannot run here, in one line (no CuPy, no GPU, a broken CUDA); None when it can."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install \"descentsim[gpu]\", or the cupy-cuda* package for your CUDA)"
    except Exception as exc:  # a CuPy that cannot load its CUDA libraries
        return f"CuPy cannot be imported ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"CuPy finds no usable GPU ({str(exc).splitlines()[0]})"
    return None if count > 0 else "CuPy finds no GPU"


def local_rank() -> int:
    """This process's rank among the processes of its node, from the launcher's environment (Open MPI, MPICH/Hydra,
    MVAPICH, Cray PALS, SLURM), 0 outside a parallel launch: each MPI rank takes the GPU of its local rank."""
    for name in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "PALS_LOCAL_RANKID",
                 "SLURM_LOCALID"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


class CupyDevice:
    """A CUDA GPU through CuPy: device ``index`` (default: this process's ``local_rank()`` modulo the GPUs it sees,
    so each rank of a node takes its own where there are as many)."""

    name = "cupy"

    def __init__(self, index: int | None = None) -> None:
        import cupy

        self.cupy = cupy
        count = cupy.cuda.runtime.getDeviceCount()
        self.index = (local_rank() if index is None else index) % count
        self.gpu = cupy.cuda.Device(self.index)
        self.attributes = self.gpu.attributes  # read once: CuPy asks the driver for every attribute each time
        with self.gpu:
            self.streams = (cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True))
            name = cupy.cuda.runtime.getDeviceProperties(self.index)["name"]
        self.description = f"GPU {self.index}: {name.decode() if isinstance(name, bytes) else name}"

    def free_bytes(self) -> int:
        with self.gpu:
            return int(self.cupy.cuda.runtime.memGetInfo()[0])

    def reserved_bytes(self, dtype: np.dtype, build: KernelBuild) -> int:
        """The local memory the driver reserves for the kernel: (its per-thread local memory + 512 bytes of stack)
        for every thread the device can hold at once."""
        kernel = _cupy_kernel(self.index, np.dtype(dtype).itemsize * 8, build)
        return (int(kernel.local_size_bytes) + 512) * int(self.attributes["MaxThreadsPerMultiProcessor"]) * int(
            self.attributes["MultiProcessorCount"])

    def shared_bytes(self) -> int:
        """The dynamic shared memory a block may take once its kernel opts in (MaxSharedMemoryPerBlockOptin)."""
        return int(self.attributes["MaxSharedMemoryPerBlockOptin"])

    def put(self, array: np.ndarray, stream: int) -> Any:
        with self.gpu, self.streams[stream]:
            return self.cupy.asarray(array)

    def empty(self, count: int, dtype: np.dtype, stream: int) -> Any:
        with self.gpu, self.streams[stream]:
            return self.cupy.empty(count, dtype=dtype)

    def synchronize(self, stream: int) -> None:
        self.streams[stream].synchronize()

    def address(self, handle: Any) -> int:
        return int(handle.data.ptr)

    def get(self, handle: Any, stream: int) -> np.ndarray:
        with self.gpu:
            return handle.get(stream=self.streams[stream])

    def launch(self, dtype: np.dtype, build: KernelBuild, problem: ProblemStruct, rules: RulesStruct,
               outputs: OutputsStruct, n: int, stream: int, keep: list) -> None:
        kernel = _cupy_kernel(self.index, np.dtype(dtype).itemsize * 8, build)
        # a group's threads (a power of two <= 32) in one warp, each group's mirror in the block's shared memory
        threads, shared = build.block(np.dtype(dtype).itemsize, self.shared_bytes())
        with self.gpu, self.streams[stream]:
            structs = [self.cupy.asarray(np.frombuffer(bytes(s), dtype=np.uint8)) for s in (problem, rules, outputs)]
            keep.extend(structs)
            if shared > PORTABLE_SHARED_BYTES and kernel.max_dynamic_shared_size_bytes < shared:
                kernel.max_dynamic_shared_size_bytes = shared  # cudaFuncSetAttribute(MaxDynamicSharedMemorySize)
            blocks = -(-n * build.threads // threads)
            kernel((blocks,), (threads,), (*structs, np.int64(n)), shared_mem=shared)


def nvrtc_options(build: KernelBuild, architecture: str) -> list[str]:
    """NVRTC's options for a group's kernels on ``architecture`` (``sm_90`` for a binary, ``compute_90`` for PTX):
    IEEE division and square root, subnormals kept (no flush to zero: CuPy's own compile adds ``-ftz=true``, which
    is why the engine calls NVRTC itself), contraction by the arithmetic, the group's definitions."""
    return ["--std=c++17", f"--gpu-architecture={architecture}", "--ftz=false", "--prec-div=true", "--prec-sqrt=true",
            *NVRTC_OPTIONS[build.arithmetic], *build.defines()]


@functools.lru_cache(maxsize=64)
def _cupy_kernel(device: int, bits: int, build: KernelBuild):
    """The kernel of one precision compiled for a group by NVRTC (through CuPy's binding) into a binary for the
    device, kept in the user's cache directory (keyed by source, options and NVRTC version) and loaded by CuPy."""
    import cupy
    from cupy_backends.cuda.libs import nvrtc

    capability = str(cupy.cuda.Device(device).compute_capability)  # "90" for compute capability 9.0
    supported = [int(a) for a in nvrtc.getSupportedArchs()] if hasattr(nvrtc, "getSupportedArchs") else []
    binary = not supported or int(capability) in supported
    architecture = f"sm_{capability}" if binary else f"compute_{max(a for a in supported if a <= int(capability))}"
    options = nvrtc_options(build, architecture)
    source = kernel_source()
    key = hashlib.sha256("\0".join([source, *options, str(nvrtc.getVersion())]).encode()).hexdigest()[:20]
    target = cache_directory() / f"gpu-{key}.{'cubin' if binary else 'ptx'}"
    if not target.exists():
        program = nvrtc.createProgram(source, KERNEL_FILE, (), ())
        try:
            try:
                nvrtc.compileProgram(program, options)
            except Exception as exc:
                log = nvrtc.getProgramLog(program) if hasattr(nvrtc, "getProgramLog") else ""
                raise SpecError(f"NVRTC could not compile the GPU kernels for this group ({exc}): "
                                f"{' '.join(str(log).split())[:300]}") from None
            code = nvrtc.getCUBIN(program) if binary else nvrtc.getPTX(program)
        finally:
            nvrtc.destroyProgram(program)
        _write_atomically(target, code if isinstance(code, bytes) else code.encode())
    with cupy.cuda.Device(device):
        return cupy.RawModule(path=str(target)).get_function(f"{build.kernel}_f{bits}")


def cache_directory() -> Path:
    """Where compiled kernels are kept: ``$XDG_CACHE_HOME/descentsim`` (``~/.cache/descentsim``)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "descentsim"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _write_atomically(target: Path, data: bytes) -> None:
    """``data`` at ``target``, whole or not at all (a concurrent writer leaves one whole file)."""
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)


# ---- the host copy -------------------------------------------------------------------------------------------


def host_compiler() -> str | None:
    """The C++ compiler that builds the host copy (``CXX``, else g++ or clang++), or None."""
    for candidate in (os.environ.get("CXX"), "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


class HostDevice:
    """The host copy of the GPU kernels (``gpu_kernels.cu`` compiled as C++ with ``DS_ONE_LANE``): what each GPU
    thread runs, run here point by point. Memory is the host's; transfers are copies. ``specialise``: compile a copy
    for each group with its kernel ids and sizes as constants, as the GPU does (slower to build; for the tests)."""

    name = "gpu-host"
    description = "the host processor (the GPU code built for it)"

    def __init__(self, specialise: bool = False) -> None:
        self.specialise = specialise

    def free_bytes(self) -> int:
        return 1 << 32

    def reserved_bytes(self, dtype: np.dtype, build: KernelBuild) -> int:
        return 0

    def shared_bytes(self) -> int:
        return HOST_SHARED_BYTES

    def put(self, array: np.ndarray, stream: int) -> Any:
        return np.array(array, copy=True, order="C")

    def empty(self, count: int, dtype: np.dtype, stream: int) -> Any:
        return np.empty(count, dtype=dtype)

    def synchronize(self, stream: int) -> None:
        pass

    def address(self, handle: Any) -> int:
        return int(handle.ctypes.data) if handle.size else 0

    def get(self, handle: Any, stream: int) -> np.ndarray:
        return handle.copy()

    def launch(self, dtype: np.dtype, build: KernelBuild, problem: ProblemStruct, rules: RulesStruct,
               outputs: OutputsStruct, n: int, stream: int, keep: list) -> None:
        bits = np.dtype(dtype).itemsize * 8
        if build.coop:  # the group's threads as fibers of one host thread; its shape is compiled in, as on the GPU
            train = getattr(host_library(build.arithmetic, tuple(build.defines())), f"ds_host_coop_train_f{bits}")
            train.restype = None
            train(ctypes.byref(problem), ctypes.byref(rules), ctypes.byref(outputs), ctypes.c_ssize_t(n))
            return
        library = host_library(build.arithmetic, tuple(build.defines()) if self.specialise else ())
        work = np.zeros(max(build.work_values, 1), dtype=dtype)
        memory = np.zeros(max(build.memory_values, 1), dtype=dtype)
        train = getattr(library, f"ds_host_train_f{bits}")
        train.restype = None
        train(ctypes.byref(problem), ctypes.byref(rules), ctypes.byref(outputs), ctypes.c_ssize_t(n),
              ctypes.c_void_p(work.ctypes.data), ctypes.c_void_p(memory.ctypes.data))


@functools.lru_cache(maxsize=16)
def host_library(arithmetic: str = "exact", defines: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The host copy built (once per source, arithmetic and ``defines``, in the user's cache directory) and
    loaded."""
    compiler = host_compiler()
    if compiler is None:
        raise SpecError("the host copy of the GPU kernels needs a C++ compiler (g++ or clang++, or set CXX)")
    cache = cache_directory()
    options = [*HOST_OPTIONS[arithmetic], *defines]
    key = hashlib.sha256((kernel_source() + "\0".join(options)).encode()).hexdigest()[:16]
    target = cache / f"gpu-host-{arithmetic}-{key}.so"
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            source = Path(tmp) / "gpu_kernels.cpp"
            source.write_text(kernel_source(), encoding="utf-8")
            built = Path(tmp) / target.name
            subprocess.run(
                [compiler, "-x", "c++", "-std=c++17", "-O2", "-fno-fast-math", *options, "-DDS_ONE_LANE",
                 "-shared", "-fPIC", str(source), "-o", str(built)],
                check=True, capture_output=True, text=True,
            )
            os.replace(built, target)  # atomic: a concurrent build leaves one whole library
    return ctypes.CDLL(str(target))
