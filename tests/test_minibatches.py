"""Minibatches from a counter-based hash: the same in both engines, on any threads and tiles."""

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
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


def test_sequential_order_takes_the_data_in_turn():
    idx = batch_indices(3, 5, np.arange(4), 6, 17, sequential=True)
    np.testing.assert_array_equal(idx, np.broadcast_to([13, 14, 15, 16, 0, 1], (4, 6)))
    with pytest.raises(ds.SpecError, match="leave batch_per_point at 0"):
        BASE.replace(params={**BASE.params, "batch_order": "sequential", "batch_per_point": 1})


ORDERS = [{"batch_per_point": 0}, {"batch_per_point": 1}, {"batch_order": "sequential"}]


@pytest.mark.parametrize("order", ORDERS, ids=["shared", "per point", "sequential"])
def test_cython_matches_reference(order, dtype):
    spec = BASE.replace(params={**BASE.params, **order}, dtype=dtype)
    assert_same_fields(*run_both(spec))


@pytest.mark.parametrize("order", ORDERS, ids=["shared", "per point", "sequential"])
def test_thread_and_tile_invariance(order):
    spec = BASE.replace(params={**BASE.params, **order})
    whole = ds.run_map(spec, threads=2)
    for threads, tile in ((1, (1, 1)), (3, (2, 5)), (2, (5, 13))):
        assert_same_fields(whole, ds.run_map(spec, threads=threads, tile_shape=tile))


def test_shared_sequence_makes_a_point_independent_of_its_position():
    """With one sequence for all points, a point computed alone equals the same point in the map;
    with a sequence per point, it depends on where it sits."""
    whole = ds.run_map(BASE)
    lr, w0 = float(whole.x[4]), float(whole.y[4])
    alone = ds.run_map(BASE.replace(x=Axis("lr", lr, lr, 1), y=Axis("w0", w0, w0, 1)))
    assert alone.fields["loss_sum"][0, 0] == whole.fields["loss_sum"][4, 4]
    per_point = {**BASE.params, "batch_per_point": 1}
    whole = ds.run_map(BASE.replace(params=per_point))
    alone = ds.run_map(BASE.replace(x=Axis("lr", lr, lr, 1), y=Axis("w0", w0, w0, 1), params=per_point))
    assert alone.fields["loss_sum"][0, 0] != whole.fields["loss_sum"][4, 4]


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


@pytest.mark.parametrize("order", ORDERS, ids=["shared", "per point", "sequential"])
def test_mlp_minibatches_match_and_are_invariant(order, dtype):
    spec = MLP.replace(params={**MLP.params, **order}, dtype=dtype)
    reference, compiled = run_both(spec, threads=3)
    assert_same_fields(reference, compiled)
    assert_same_fields(compiled, ds.run_map(spec, threads=1, tile_shape=(2, 3)))


def test_fresh_samples_reproduce_the_dead_relu_report():
    """A single ReLU neuron fitted to relu(x), 1000 fresh N(0, 1) inputs per step (sequential order
    through (steps + 1)·1000 samples), lr 0.01: started at w0 = −10 it never learns — w decays towards 0
    from below, where the gradient vanishes, and the loss stays at ½·E[relu(x)²] = 0.25 — while w0 = +10
    converges. The rules judge the loss on a fixed evaluation set (the first 5000 samples), not on each
    step's fresh minibatch, so the dead start is STUCK (the minibatch loss jitters: it was unresolved).
    With the bias trainable too, the start at −10 stays as far from the fit."""
    steps = 3000
    params = {"lr": 0.01, "batch_size": 1000, "batch_order": "sequential", "samples": (steps + 1) * 1000,
              "eval_samples": 5000}
    spec = MapSpec(model="relu-neuron", x=Axis("w0", -10.0, 10.0, 2), steps=steps, params=params)
    problem = ds.problem(spec, 0, 0)
    assert problem.data.shape == (2, 3001000) and abs(np.mean(problem.data[0])) < 3e-3  # fresh N(0, 1) draws
    m = ds.run_map(spec)
    (dead, alive), loss = m.outcome[0], m.fields["final_loss"][0]
    assert alive == Outcome.CONVERGED and dead == Outcome.STUCK and loss[0] == pytest.approx(0.25, abs=0.05)
    assert m.fields["batch_loss"][0, 0] != loss[0]  # the last minibatch's loss is kept beside it
    with_bias = ds.run_map(spec.replace(params={**params, "trainable": "wb"}))
    assert with_bias.outcome[0, 0] != Outcome.CONVERGED and with_bias.fields["final_loss"][0, 0] > 0.2
