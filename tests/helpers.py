"""Shared test helpers."""

import numpy as np

import descentsim as ds


def run_both(spec: ds.MapSpec, threads: int = 2):
    """The same map from the reference and the compiled engine."""
    return ds.run_map(spec, backend="numpy"), ds.run_map(spec, backend="cython", threads=threads)


def assert_same_fields(a: ds.ConvergenceMap, b: ds.ConvergenceMap) -> None:
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name], err_msg=f"field {name}")
