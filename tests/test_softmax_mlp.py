"""The collapsing classifier: its exp and log, its gradient, its data, the collapse detector, and the
engines against each other."""

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.backends import get_backend
from descentsim.models.softmax_mlp import SoftmaxMLP, softmax_mlp_arrays
from descentsim.numerics import exp_nonpositive, log_at_least_one

#: A small classifier's shape knobs, and all its knobs
SMALL = {"classes": 3, "d": 3, "per_class": 4, "separation": 2.0, "cluster_std": 1.0, "width1": 5, "width2": 4}
VALUES = {**SMALL, "seed": 2, "init_scale": 1.0}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_and_log_within_two_ulp_of_numpy(dtype):
    x = np.concatenate([-np.geomspace(1e-30, 87.0, 100001), [0.0, -0.5, -1.0, -86.99]]).astype(dtype)
    want = np.exp(x.astype(np.float64)).astype(dtype)
    assert np.max(np.abs(exp_nonpositive(x) - want) / np.spacing(want)) <= 2
    assert exp_nonpositive(np.array([0.0], dtype=dtype))[0] == 1  # exp(z_max − z_max) is exactly 1
    assert (exp_nonpositive(np.array([-87.5, -1e4, -np.inf], dtype=dtype)) == 0).all()
    s = np.concatenate([np.geomspace(1.0, 1e6, 100001), [1.0, 2.0, np.sqrt(2), 6.0]]).astype(dtype)
    want = np.log(s.astype(np.float64)).astype(dtype)
    got = log_at_least_one(s)
    assert got[0] == 0 and np.max(np.abs(got - want)[1:] / np.spacing(want[1:])) <= 2
    odd = log_at_least_one(np.array([np.inf, np.nan], dtype=dtype))
    assert odd[0] == np.inf and np.isnan(odd[1])


def test_data_follow_the_documented_draws():
    arrays = softmax_mlp_arrays(VALUES)
    rng = np.random.default_rng(2)
    centres = 2.0 * rng.standard_normal((3, 3))
    labels = np.repeat(np.arange(3), 4)
    x = centres[labels] + rng.standard_normal((12, 3))
    order = rng.permutation(12)
    np.testing.assert_array_equal(arrays["X"], x[order])
    np.testing.assert_array_equal(arrays["labels"], labels[order])
    np.testing.assert_array_equal(arrays["W1"], rng.standard_normal((3, 5)))
    problem = SoftmaxMLP().problem({**VALUES, "init_scale": 0.5}, 1)
    np.testing.assert_array_equal(problem.theta0[0, :15], 0.5 * (arrays["W1"].ravel() / np.sqrt(3)))
    assert problem.theta0.shape == (1, 3 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3) and problem.data.shape == (4, 12)


def test_loss_is_the_cross_entropy():
    """L = mean(log Σ exp z − z_y), written with numpy's exp, log and matmul."""
    arrays = softmax_mlp_arrays(VALUES)
    problem = SoftmaxMLP().problem(VALUES, 1)
    theta = problem.theta0 + 0.05  # nonzero biases too
    w1, b1, w2, b2, w3, b3 = np.split(theta[0], np.cumsum([15, 5, 20, 4, 12]))
    h1 = np.maximum(arrays["X"] @ w1.reshape(3, 5) + b1, 0)
    h2 = np.maximum(h1 @ w2.reshape(5, 4) + b2, 0)
    z = h2 @ w3.reshape(4, 3) + b3
    expected = np.mean(np.log(np.sum(np.exp(z), axis=1)) - z[np.arange(12), arrays["labels"]])
    loss, _ = SoftmaxMLP().loss_grad(theta, problem.consts, problem.data)
    assert loss[0] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("batch", [None, np.array([[0, 5, 5, 11, 2]])])
def test_gradient_against_finite_differences(batch):
    model = SoftmaxMLP()
    problem = model.problem(VALUES, 1)
    theta = problem.theta0 + 0.01 * np.arange(problem.theta0.shape[1]) / problem.theta0.shape[1]
    loss, grad = model.loss_grad(theta, problem.consts, problem.data, batch)
    assert np.count_nonzero(grad) > theta.shape[1] // 2
    for k in range(theta.shape[1]):
        step = np.zeros_like(theta)
        step[0, k] = 1e-6
        up, _ = model.loss_grad(theta + step, problem.consts, problem.data, batch)
        down, _ = model.loss_grad(theta - step, problem.consts, problem.data, batch)
        assert grad[0, k] == pytest.approx((up[0] - down[0]) / 2e-6, rel=1e-5, abs=1e-9)


def evaluate_in_both_engines(problem, dtype="float64"):
    """accuracy and collapsed of problem.theta0 from both engines' own detectors: one step at learning rate 0,
    given to the engines directly (a spec refuses lr = 0 and steps = 0), leaves θ_1 = θ_0."""
    spec = MapSpec(model="softmax-mlp", x=Axis("init_scale", 1.0, 1.0, len(problem.theta0)), steps=1,
                   params={**SMALL, "seed": 2}, dtype=dtype)
    hyper = spec.optimizer_def.hyper(spec.point_values(*np.indices(spec.shape).reshape(2, -1)), len(problem.theta0))
    hyper[:, 0] = 0.0
    results = [get_backend(name).run(spec, problem, hyper, None, 1) for name in ("numpy", "cython")]
    for name in ("accuracy", "collapsed", "final_loss"):
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)
    return results[0]


def test_collapse_detector_on_constructed_networks(dtype):
    """Row 0: the second hidden layer dead (b2 very negative), so z = b3 for every input: collapsed,
    accuracy 1/3, loss ln 3 at b3 = 0. Row 1: all weights zero, b3 favouring class 2: collapsed.
    Row 2: W3 = 0 but b3 = 0 ties every class: the first (class 0) for all: collapsed.
    Row 3: the initial network as drawn: not collapsed. Row 4: a non-finite weight: undefined."""
    model = SoftmaxMLP()
    problem = model.problem(VALUES, 5)
    theta = problem.theta0
    b2, b3, w3 = slice(40, 44), slice(56, 59), slice(44, 56)
    theta[0, b2] = -1e3
    theta[1, :] = 0
    theta[1, b3] = [0.0, -1.0, 2.0]
    theta[2, w3] = 0
    theta[4, 0] = np.inf
    fields = evaluate_in_both_engines(problem, dtype)
    np.testing.assert_array_equal(fields["collapsed"], [1, 1, 1, 0, 0])
    np.testing.assert_allclose(fields["accuracy"][:3], 1 / 3)
    assert not np.isnan(fields["accuracy"][3]) and np.isnan(fields["accuracy"][4])
    assert fields["final_loss"][0] == pytest.approx(np.log(3), rel=1e-6)


def test_other_models_report_no_accuracy():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 3), steps=10))
    assert np.isnan(m.fields["accuracy"]).all() and (m.fields["collapsed"] == -1).all()


MAPS = {
    "adam minibatches": MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-3, 3.0, 9, "log"),
                                y=Axis("init_scale", 0.3, 3.0, 3, "log"), steps=60,
                                params={**SMALL, "seed": 2, "batch_size": 4, "batch_per_point": 1}),
    "step decay, shared batches": MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-2, 3.0, 7, "log"),
                                          steps=50, params={**SMALL, "seed": 2, "batch_size": 5, "schedule": "step",
                                                            "decay_rate": 0.3, "decay_steps": 10}),
    "width axis": MapSpec(model="softmax-mlp", optimizer="momentum", x=Axis("lr", 0.01, 1.0, 5, "log"),
                          y=Axis("width2", 1, 9, 3), steps=30,
                          params={k: v for k, v in SMALL.items() if k != "width2"}),
    "gd full batch": MapSpec(model="softmax-mlp", x=Axis("lr", 0.1, 300.0, 7, "log"), y=Axis("seed", 0, 2, 3),
                             steps=40, params={**SMALL, "separation": 0.5}),
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_cython_matches_reference(name, dtype):
    reference, compiled = run_both(MAPS[name].replace(dtype=dtype), threads=3)
    assert_same_fields(reference, compiled)
    assert not np.isnan(reference.fields["accuracy"]).all()


def test_collapse_at_high_learning_rate():
    """Adam with minibatches: learns at small lr, collapses (one class for all, loss near ln 6,
    accuracy 1/6) at large lr, whatever the initial scale."""
    spec = MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-2, 1.0, 2, "log"),
                   y=Axis("init_scale", 0.5, 2.0, 2), steps=600, params={"batch_size": 32})
    m = ds.run_map(spec)
    low, high = np.s_[:, 0], np.s_[:, 1]
    assert (m.fields["accuracy"][low] >= 0.95).all() and (m.outcome[low] == Outcome.CONVERGED).any()
    assert (m.fields["accuracy"][m.outcome == Outcome.CONVERGED] == 1).all()  # judged on the full data
    assert (m.outcome[high] != Outcome.CONVERGED).all()
    assert (m.fields["collapsed"][low] == 0).all() and (m.fields["collapsed"][high] == 1).all()
    np.testing.assert_allclose(m.fields["accuracy"][high], 1 / 6)
    np.testing.assert_allclose(m.fields["final_loss"][high], np.log(6), rtol=0.25)
