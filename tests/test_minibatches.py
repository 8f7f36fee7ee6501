"""Minibatches from a counter-based hash: the same in both engines, on any threads and tiles."""

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec
from descentsim.sampling import batch_indices, mix

BASE = MapSpec(
    model="relu-neuron",
    x=Axis("lr", 0.01, 3.0, 13, "log"),
    y=Axis("w0", -2.0, 2.0, 5),
    steps=150,
    params={"samples": 40, "batch_size": 7, "batch_seed": 3, "trainable": "wb"},
)


def test_splitmix_reference_values():
    """The finaliser of SplitMix64 (Vigna): mix(0x9E3779B97F4A7C15) from the seed 0 stream."""
    assert int(mix(np.array([0x9E3779B97F4A7C15], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF


def test_indices_are_in_range_and_vary():
    idx = batch_indices(3, 5, np.arange(4), 1000, 17)
    assert idx.min() >= 0 and idx.max() < 17 and len(np.unique(idx)) == 17
    shared = batch_indices(3, 5, np.zeros(4, dtype=np.int64), 10, 17)
    assert (shared == shared[0]).all()
    assert not np.array_equal(batch_indices(3, 6, np.zeros(1, dtype=np.int64), 10, 17), shared[:1])


@pytest.mark.parametrize("per_point", [0, 1])
def test_cython_matches_reference(per_point, dtype):
    spec = BASE.replace(params={**BASE.params, "batch_per_point": per_point}, dtype=dtype)
    assert_same_fields(*run_both(spec))


@pytest.mark.parametrize("per_point", [0, 1])
def test_thread_and_tile_invariance(per_point):
    spec = BASE.replace(params={**BASE.params, "batch_per_point": per_point})
    whole = ds.run_map(spec, threads=2)
    for threads, tile in ((1, (1, 1)), (3, (2, 5)), (2, (5, 13))):
        assert_same_fields(whole, ds.run_map(spec, threads=threads, tile_shape=tile))


def test_shared_sequence_makes_a_point_independent_of_its_position():
    """With one sequence for all points, a point computed alone equals the same point in the map;
    with a sequence per point, it depends on where it sits."""
    whole = ds.run_map(BASE)
    lr, w0 = float(whole.x[4]), float(whole.y[2])
    alone = ds.run_map(BASE.replace(x=Axis("lr", lr, lr, 1), y=Axis("w0", w0, w0, 1)))
    assert alone.fields["loss_sum"][0, 0] == whole.fields["loss_sum"][2, 4]
    per_point = {**BASE.params, "batch_per_point": 1}
    whole = ds.run_map(BASE.replace(params=per_point))
    alone = ds.run_map(BASE.replace(x=Axis("lr", lr, lr, 1), y=Axis("w0", w0, w0, 1), params=per_point))
    assert alone.fields["loss_sum"][0, 0] != whole.fields["loss_sum"][2, 4]


def test_full_batch_is_unchanged_by_the_batch_seed():
    a = ds.run_map(BASE.replace(params={**BASE.params, "batch_size": 0, "batch_seed": 1}))
    b = ds.run_map(BASE.replace(params={**BASE.params, "batch_size": 0, "batch_seed": 2}))
    assert_same_fields(a, b)


def test_minibatches_need_data():
    with pytest.raises(ds.SpecError, match="no data samples to draw minibatches from"):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2), params={"batch_size": 4})


MLP = MapSpec(
    model="mlp",
    x=Axis("lr1", 0.5, 100.0, 7, "log"),
    y=Axis("lr2", 0.5, 100.0, 3, "log"),
    steps=40,
    params={"width": 9, "d": 3, "n_data": 13, "lr": 1.0, "batch_size": 5},
)


@pytest.mark.parametrize("per_point", [0, 1])
def test_mlp_minibatches_match_and_are_invariant(per_point, dtype):
    spec = MLP.replace(params={**MLP.params, "batch_per_point": per_point}, dtype=dtype)
    reference, compiled = run_both(spec, threads=3)
    assert_same_fields(reference, compiled)
    assert_same_fields(compiled, ds.run_map(spec, threads=1, tile_shape=(2, 3)))
