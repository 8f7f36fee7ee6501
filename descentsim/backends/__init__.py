"""Engines that turn a block of grid points into per-point results.

``numpy`` is the reference that defines the meaning; ``cython`` is the compiled CPU engine (OpenMP, SIMD lanes);
``cupy`` the GPU engine (``gpu``), whose code also runs on the host as ``gpu-host``. All take the same problems
(``problems``) and return the same fields (``descentsim.fields``).
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from ..errors import SpecError, unknown_name
from ..history import Recording
from ..models import Model, Problem
from ..optimizers import schedule_factors
from ..spec import MapSpec


class Backend(Protocol):
    name: str
    parallel: bool  # whether ``threads`` > 1 runs threads

    def run(
        self, spec: MapSpec, problem: Problem, hyper: np.ndarray, factors: np.ndarray | None, threads: int,
        recording: Recording | None = None,
    ) -> dict[str, np.ndarray]:
        """Train every row of ``problem`` (learning-rate schedule ``factors``); fields shaped (n,).
        ``recording``, if given, receives every row's curves (``descentsim.history.Recording``)."""


def problems(
    spec: MapSpec, iy: np.ndarray, ix: np.ndarray, overrides: dict[str, np.ndarray] | None = None
) -> Iterator[tuple[np.ndarray, Problem, np.ndarray, np.ndarray | None]]:
    """The problems for grid points (iy, ix): ``(positions, problem, hyper, factors)`` per group of points.

    Points that differ in a shape knob (one that fixes array sizes, shared data or the learning-rate
    schedule, such as a width, a data seed or a decay rate) go into separate groups; ``positions``
    index into iy/ix; ``factors`` are the schedule's (``optimizers.schedule_factors``). ``overrides``
    replaces knob values point by point (arrays like iy), for points between the grid's.
    """
    values = {**spec.point_values(iy, ix), **(overrides or {})}
    model, optimizer = spec.model_def, spec.optimizer_def
    point_id = iy.astype(np.int64) * spec.shape[1] + ix

    def problem(sub, positions):
        made = model.problem(sub, len(positions))
        if int(sub["batch_size"]) > 0:
            made.batch = (int(sub["batch_size"]), int(sub["batch_seed"]), int(sub["batch_per_point"]),
                          int(sub["batch_order"] == "sequential"))
            made.point_id = point_id[positions]
            made.eval_samples = int(sub["eval_samples"])
        return made

    swept = sorted(k for k in model.shape_knobs | optimizer.shape_knobs if isinstance(values[k], np.ndarray))
    if not swept:
        n = len(iy)
        everyone = np.arange(n)
        yield everyone, problem(values, everyone), optimizer.hyper(values, n), schedule_factors(values, spec.steps)
        return
    keys = np.stack([values[k] for k in swept], axis=1)
    combos, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    for g, combo in enumerate(combos):
        positions = np.flatnonzero(group == g)
        sub = {k: (v[positions] if isinstance(v, np.ndarray) else v) for k, v in values.items()}
        sub.update({k: (int(c) if spec.knobs[k].kind is int else float(c)) for k, c in zip(swept, combo)})
        n = len(positions)
        yield positions, problem(sub, positions), optimizer.hyper(sub, n), schedule_factors(sub, spec.steps)


def compiled_unavailable() -> str | None:
    """Why the compiled engine cannot be imported, and the fix, in one line; None when it can."""
    try:
        from . import compiled  # noqa: F401
    except ImportError as exc:
        return f"the compiled kernels cannot be imported ({exc}); {_kernels_fix()}"
    return None


def _kernels_fix() -> str:
    """What to do about kernels that do not import: most often a source tree (which never holds them) first on
    sys.path — ``python -m pytest`` or a script run in the checkout — shadowing the installed package."""
    package = Path(__file__).resolve().parents[1]
    try:
        installed = Path(metadata.distribution("descentsim").locate_file("")).resolve()
    except metadata.PackageNotFoundError:
        return "install descentsim with 'pip install .' (the build compiles them)"
    if package.parent != installed:
        return (f"the source tree's descentsim ({package}) shadows the installed one: run from another directory, "
                "and the tests with 'pytest', not 'python -m pytest'")
    return "reinstall descentsim with 'pip install .' (the build compiles them)"


def no_kernel(model: Model | None) -> str | None:
    """Why the compiled engine cannot train ``model`` (its kernel has not landed yet), in one line; None when it
    can, or when no model is given."""
    if model is None:
        return None
    from .. import _kernels

    if model.kernel in _kernels.MODEL_IDS:
        return None
    return f"the {model.name} model runs in the NumPy reference only until its kernel lands"


#: The engines by name (``auto`` chooses among them).
BACKENDS = ("auto", "cython", "cupy", "gpu-host", "numpy")


def get_backend(name: str, model: Model | None = None, arithmetic: str = "exact") -> Backend:
    """An engine by name:

    - ``"auto"``: the GPU engine where CuPy finds a GPU, else the compiled CPU engine, else the NumPy reference with
      a warning saying why;
    - ``"cython"``: the compiled CPU engine; ``"cupy"``: the GPU engine (SpecError, saying why, when unavailable);
    - ``"gpu-host"``: the GPU engine's code compiled for this machine's processor and run point by point (needs a
      C++ compiler): slow, for checking the GPU code where there is no GPU;
    - ``"numpy"``: the reference.

    With ``model``, a model the compiled engines have no kernel for (``no_kernel``) also falls back (auto) or is
    refused. ``arithmetic`` is the spec's: ``"fast"`` runs on the compiled engines only (the NumPy reference is
    exact by definition), so the reference refuses it, and ``auto`` refuses it instead of falling back."""
    if name not in BACKENDS:
        raise unknown_name(name, BACKENDS, "backend")
    problem = compiled_unavailable() or no_kernel(model)
    if name == "auto" and problem is None:
        from .gpu import cupy_unavailable

        if cupy_unavailable() is None:
            name = "cupy"
    if name in ("cupy", "gpu-host"):
        from .gpu import CupyDevice, GpuBackend, HostDevice, cupy_unavailable, host_compiler

        why = problem or (cupy_unavailable() if name == "cupy" else
                          None if host_compiler() else "no C++ compiler (g++ or clang++, or set CXX) is found")
        if why is not None:
            raise SpecError(f"the {name} backend is not available: {why}")
        return GpuBackend(CupyDevice() if name == "cupy" else HostDevice())
    if name in ("auto", "cython"):
        if problem is None:
            from .compiled import CythonBackend

            return CythonBackend()
        if name == "cython":
            raise SpecError(f"the cython backend is not available: {problem}")
        if arithmetic != "exact":
            raise SpecError(f"arithmetic = {arithmetic!r} needs the compiled engine, which is not available: {problem}")
        warnings.warn(f"descentsim falls back to the NumPy reference, tens of times slower: {problem}",
                      RuntimeWarning, stacklevel=3)
    from .reference import NumpyBackend, exact_only

    problem = exact_only(arithmetic, name)
    if problem:
        raise SpecError(problem)
    return NumpyBackend()
