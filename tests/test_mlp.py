"""The fractal-trainability MLP: its tanh, its gradient, its data, and the engines against each other."""

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec
from descentsim.models.mlp import MLP, mlp_problem_arrays
from descentsim.numerics import tanh


def test_tanh_within_four_ulp_of_libm():
    x = np.concatenate([np.linspace(-30, 30, 200001), np.geomspace(1e-300, 1.0, 3000),
                        [0.0, -0.0, 0.1733, -0.1734, 1e-300, 22.0, 23.0]])
    got, want = tanh(x), np.tanh(x)
    assert np.all(np.abs(got - want) <= 4 * np.spacing(np.abs(want)))
    assert np.signbit(tanh(np.array([-0.0])))[0] and tanh(np.array([np.inf]))[0] == 1
    assert np.isnan(tanh(np.array([np.nan])))[0]
    x32 = x.astype(np.float32)
    assert np.max(np.abs(tanh(x32) - np.tanh(x32)) / np.maximum(np.spacing(np.abs(np.tanh(x32))), 1e-45)) <= 4
    assert np.all(np.abs(tanh(x) - np.tanh(x)) <= 1e-15)  # and it is odd, bounded, exact at 0


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_gradient_against_finite_differences(nonlinearity):
    values = {"width": 3, "d": 2, "n_data": 5, "nonlinearity": nonlinearity, "seed": 4, "init_scale": 1.0,
              "w1_offset": 0.3, "lr1": 1.0, "lr2": 1.0}
    model = MLP()
    problem = model.problem(values, 1)
    theta = problem.theta0 + 0.01  # away from relu kinks at the data points
    loss, grad = model.loss_grad(theta, problem.consts, problem.data)
    for k in range(theta.shape[1]):
        step = np.zeros_like(theta)
        step[0, k] = 1e-6
        up, _ = model.loss_grad(theta + step, problem.consts, problem.data)
        down, _ = model.loss_grad(theta - step, problem.consts, problem.data)
        assert grad[0, k] == pytest.approx((up[0] - down[0]) / 2e-6, rel=1e-6, abs=1e-9)


def test_loss_matches_the_formula():
    """L = mean((φ(X·W1/√d)·W2/width − y)²), written with numpy's own tanh and matmul."""
    values = {"width": 4, "d": 3, "n_data": 6, "nonlinearity": "tanh", "seed": 1, "init_scale": 0.7,
              "w1_offset": 0.2, "lr1": 1.0, "lr2": 1.0}
    arrays = mlp_problem_arrays(values)
    w1 = 0.7 * arrays["W1"] + 0.2
    w2 = 0.7 * arrays["W2"]
    out = np.tanh(np.sqrt(2) * arrays["X"] @ w1 / np.sqrt(3)) @ w2 / 4
    expected = np.mean((out - arrays["y"]) ** 2)
    problem = MLP().problem(values, 1)
    loss, _ = MLP().loss_grad(problem.theta0, problem.consts, problem.data)
    assert loss[0] == pytest.approx(expected, rel=1e-13)


def test_default_sizes_follow_the_paper():
    spec = MapSpec(model="mlp", x=Axis("lr1", 0.1, 1.0, 2), steps=1)
    problem = ds.problem(spec)
    assert problem.theta0.shape == (1, 16 * 16 + 16) and problem.data.shape == (17, 272)
    identity = ds.problem(spec.replace(params={"nonlinearity": "identity"}))
    assert identity.data.shape == (17, 16)


MAPS = {
    "lr1 x lr2": MapSpec(model="mlp", x=Axis("lr1", 0.05, 20.0, 9, "log"), y=Axis("lr2", 0.05, 20.0, 5, "log"),
                         steps=80, params={"width": 4, "d": 3, "n_data": 7, "lr": 1.0}),
    "w1_offset x lr": MapSpec(model="mlp", x=Axis("w1_offset", -1.0, 1.0, 7), y=Axis("lr", 0.05, 3.0, 4),
                              steps=60, params={"width": 3, "nonlinearity": "relu", "n_data": 6}),
    "blocked loops": MapSpec(model="mlp", x=Axis("lr1", 0.5, 200.0, 5, "log"), y=Axis("lr2", 0.5, 200.0, 3, "log"),
                             steps=40, params={"width": 17, "d": 3, "n_data": 19, "lr": 1.0}),
    "identity, adam": MapSpec(model="mlp", x=Axis("lr", 0.001, 0.3, 6, "log"), y=Axis("init_scale", 0.5, 2, 3),
                              steps=60, optimizer="adam", params={"width": 5, "d": 2, "nonlinearity": "identity"}),
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_cython_matches_reference(name, dtype):
    assert_same_fields(*run_both(MAPS[name].replace(dtype=dtype), threads=3))


def test_lane_idle_at_chunk_end_keeps_the_nonlinearity():
    """Points fewer than lanes: idle lanes hold zeros, which must not switch relu to tanh."""
    spec = MAPS["w1_offset x lr"].replace(x=Axis("w1_offset", -1.0, 1.0, 3), y=None)
    assert_same_fields(*run_both(spec, threads=1))
