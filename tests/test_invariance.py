"""A trajectory is a pure function of (spec, grid index): thread count and tiling never change a byte."""

import numpy as np
import pytest
from helpers import assert_same_fields

import descentsim as ds
from descentsim import Axis, MapSpec

SPEC = MapSpec(
    model="relu-neuron",
    x=Axis("lr", 1e-2, 10.0, 23, "log"),
    y=Axis("w0", -3.0, 3.0, 11),
    steps=300,
    params={"trainable": "wb", "b0": 0.2},
)


@pytest.mark.parametrize("threads", [1, 3, 7])
def test_thread_count_invariance(threads, dtype):
    spec = SPEC.replace(dtype=dtype)
    assert_same_fields(ds.run_map(spec, threads=2), ds.run_map(spec, threads=threads))


@pytest.mark.parametrize("tile_shape", [(1, 1), (2, 5), (11, 23), (4, 100)])
def test_tile_shape_invariance(tile_shape, dtype):
    spec = SPEC.replace(dtype=dtype)
    assert_same_fields(ds.run_map(spec), ds.run_map(spec, tile_shape=tile_shape))


def test_grid_point_does_not_depend_on_its_neighbours():
    """A point computed in a 1×1 map equals the same point inside a larger map."""
    full = ds.run_map(SPEC)
    iy, ix = 7, 13
    single = MapSpec(
        model=SPEC.model,
        x=Axis("lr", float(full.x[ix]), float(full.x[ix]), 1),
        y=Axis("w0", float(full.y[iy]), float(full.y[iy]), 1),
        steps=SPEC.steps,
        params=SPEC.params,
    )
    one = ds.run_map(single)
    for name in full.fields:
        np.testing.assert_array_equal(one.fields[name][0, 0], full.fields[name][iy, ix], err_msg=name)


def test_wide_models_run_in_blocks_with_the_same_result(monkeypatch):
    """A tile of a wide model is prepared in blocks of points; the blocking changes nothing."""
    import descentsim.runner as runner

    spec = MapSpec(model="uv", x=Axis("lr", 0.2, 3.0, 9), y=Axis("seed", 0, 4, 5), steps=100, params={"m": 16})
    whole = ds.run_map(spec)
    monkeypatch.setattr(runner, "THETA_BUDGET", 3 * 32)  # three points per block
    assert_same_fields(whole, ds.run_map(spec))


def test_reference_history_chunking_changes_nothing(monkeypatch):
    import descentsim.backends.reference as reference

    spec = SPEC.replace(steps=120)
    whole = ds.run_map(spec, backend="numpy")
    monkeypatch.setattr(reference, "HISTORY_BUDGET", 4 * (spec.thresholds.max_period + 2) * 7)  # 7 points a chunk
    assert_same_fields(whole, ds.run_map(spec, backend="numpy"))
