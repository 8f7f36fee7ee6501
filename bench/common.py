"""Helpers shared by the benchmark scripts (run them from the repository root: python bench/NAME.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

import descentsim as ds

UNDECIDED, CONVERGED, DIVERGED = 0, int(ds.Outcome.CONVERGED), int(ds.Outcome.DIVERGED)


def outcome_class(outcome: np.ndarray) -> np.ndarray:
    """descentsim outcome codes reduced to CONVERGED, DIVERGED or UNDECIDED (stuck, cycling, unresolved)."""
    return np.where((outcome == CONVERGED) | (outcome == DIVERGED), outcome, UNDECIDED).astype(np.uint8)


def import_jax(enable_x64: bool) -> ModuleType | None:
    """``jax``, configured for float64 when asked (float32 arrays stay float32), or None if missing."""
    try:
        import jax
    except ImportError:
        return None
    if enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


def class_fractions(classes: np.ndarray) -> str:
    """'converged a%, diverged b%, undecided c%' of a class field."""
    total = classes.size
    parts = [(CONVERGED, "converged"), (DIVERGED, "diverged"), (UNDECIDED, "undecided")]
    return ", ".join(f"{label} {np.count_nonzero(classes == code) / total:.2%}" for code, label in parts)


@dataclass
class JaxTiming:
    """A JAX map run chunk by chunk: best wall time, compile time, (ny, nx) outcome and decided step."""

    best_s: float
    compile_s: float
    outcome: np.ndarray
    decided_step: np.ndarray
    compiled: object


def time_jax_map(jax: ModuleType, spec: ds.MapSpec, map_fn: Callable, chunk_rows: int, repeats: int) -> JaxTiming:
    """Compile ``map_fn`` (x values, y values) → (outcome, decided step) for chunks of ``chunk_rows`` grid
    rows, warm up on one chunk, then time the whole grid (best of ``repeats``)."""
    jnp = jax.numpy
    ny, nx = spec.shape
    chunk_rows = max(1, min(chunk_rows, ny))
    chunks = -(-ny // chunk_rows)
    xs = spec.axis_coordinates(spec.x).astype(spec.dtype)
    ys = spec.axis_coordinates(spec.y).astype(spec.dtype)
    # Pad the rows to whole chunks (repeating the last y) so every chunk has one shape and one compile.
    y_rows = np.concatenate([ys, np.full(chunks * chunk_rows - ny, ys[-1], dtype=ys.dtype)])
    y_grid, x_grid = (g.reshape(chunks, chunk_rows * nx) for g in np.meshgrid(y_rows, xs, indexing="ij"))
    x_chunks = [jnp.asarray(row) for row in x_grid]
    y_chunks = [jnp.asarray(row) for row in y_grid]

    started = time.perf_counter()
    compiled = jax.jit(map_fn).lower(x_chunks[0], y_chunks[0]).compile()
    compile_s = time.perf_counter() - started
    jax.block_until_ready(compiled(x_chunks[0], y_chunks[0]))  # warm-up run

    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        results = [compiled(a, b) for a, b in zip(x_chunks, y_chunks)]
        jax.block_until_ready(results)
        best = min(best, time.perf_counter() - started)
    outcome = np.concatenate([np.asarray(o) for o, _ in results]).reshape(-1, nx)[:ny]
    decided_step = np.concatenate([np.asarray(s) for _, s in results]).reshape(-1, nx)[:ny]
    return JaxTiming(best, compile_s, outcome, decided_step, compiled)
