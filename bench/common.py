"""Helpers shared by the benchmark scripts (run them from the repository root: python bench/NAME.py)."""

from __future__ import annotations

from types import ModuleType

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
