"""The compiled engine: Cython kernels with OpenMP threads over grid points.

Builds of the same kernel source: ``descentsim._kernels`` (arithmetic = "exact", no floating-point contraction: bit
for bit the NumPy reference), and for arithmetic = "fast" (multiply-adds fused on CPUs with AVX2 and FMA)
``descentsim._kernels_fast`` (32-byte lanes) or, on CPUs with AVX-512, ``descentsim._kernels_fast_wide`` (64-byte
lanes, one zmm register: 1.8× exact on the SD map where the 32-byte build gives 1.2×; lanes never mix, so both give
the same bits). The spec's ``arithmetic`` chooses the build, the CPU the width.
"""

from __future__ import annotations

import numpy as np

from .. import _kernels, _kernels_fast, _kernels_fast_wide
from ..fields import FIELDS
from ..history import Recording
from ..models import Problem
from ..outcome import decision_steps
from ..spec import MapSpec


#: The kernels' module for each of the spec's arithmetics (descentsim.spec.ARITHMETICS).
KERNELS = {"exact": _kernels, "fast": _kernels_fast_wide if _kernels.CPU_HAS_AVX512 else _kernels_fast}


class CythonBackend:
    """Runs ``train`` of the spec's arithmetic's kernels (``KERNELS``) in its precision, ``threads`` OpenMP
    threads."""

    name = "cython"
    parallel = _kernels.OPENMP  # built with OpenMP: threads are real

    def run(
        self, spec: MapSpec, problem: Problem, hyper: np.ndarray, factors: np.ndarray | None, threads: int,
        recording: Recording | None = None,
    ) -> dict[str, np.ndarray]:
        dtype = np.dtype(spec.dtype)
        th = spec.resolved_thresholds
        n, p = problem.theta0.shape
        threads = max(1, min(threads, n)) if self.parallel else 1
        out = {name: np.empty(n, dtype=info.dtype) for name, info in FIELDS.items()}
        optimizer = spec.optimizer_def.kernel
        kernels = KERNELS[spec.arithmetic]
        size = kernels.scratch_size(
            spec.dtype, spec.model_def.kernel, optimizer, p, problem.data.shape[0], problem.consts.shape[1],
            hyper.shape[1], th.max_period, spec.steps,
        )
        scratch = aligned_rows(threads, size, dtype)

        def arr(a):
            return np.ascontiguousarray(a, dtype=dtype)

        kernels.train(
            spec.model_def.kernel,
            optimizer,
            arr(problem.theta0),
            arr(problem.consts),
            arr(problem.data),
            arr(hyper),
            factors,
            None if problem.lr_scale is None else arr(problem.lr_scale),
            *(problem.batch or (0, 0, 0, 0)),
            None if problem.point_id is None else np.ascontiguousarray(problem.point_id, dtype=np.int64),
            problem.eval_count,
            np.ascontiguousarray(problem.trainable, dtype=np.uint8),
            spec.steps,
            th.converge_loss,
            th.converge_window,
            th.diverge_factor,
            th.stuck_window,
            th.stuck_tol,
            th.max_period,
            th.cycle_tol,
            *decision_steps(factors, spec.steps),
            scratch,
            *(out[name] for name in FIELDS),
            **({} if recording is None else {
                "loss_path": recording.loss, "theta_path": recording.theta, "accuracy_path": recording.accuracy,
                "stride": recording.stride,
            }),
        )
        return out


#: Bytes each thread's work space is aligned to: a cache line (two AVX2 vectors, one AVX-512 vector).
WORK_ALIGNMENT = 64


def aligned_rows(rows: int, size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised (rows, ≥ size) array whose rows each start on a WORK_ALIGNMENT-byte boundary: the threads'
    work spaces, so that no vector load crosses a cache line and no two threads share one. (NumPy aligns to 16
    bytes only; a map's speed then varied by 15–20 % from run to run with where the buffer happened to fall.)"""
    per_line = WORK_ALIGNMENT // dtype.itemsize
    width = -(-size // per_line) * per_line
    flat = np.empty(rows * width + per_line, dtype=dtype)
    skip = (-flat.ctypes.data % WORK_ALIGNMENT) // dtype.itemsize
    return flat[skip : skip + rows * width].reshape(rows, width)
