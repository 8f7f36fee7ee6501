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


def assert_gradient_is_the_finite_difference(values):
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


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_gradient_against_finite_differences(nonlinearity):
    assert_gradient_is_the_finite_difference({
        "width": 3, "d": 2, "n_data": 5, "nonlinearity": nonlinearity, "seed": 4, "init_scale": 1.0,
        "w1_offset": 0.3, "lr1": 1.0, "lr2": 1.0, "depth": 2, "w1_offset_mode": "init"})


def test_loss_matches_the_formula():
    """L = mean((φ(X·W1/√d)·W2/width − y)²), written with numpy's own tanh and matmul."""
    values = {"width": 4, "d": 3, "n_data": 6, "nonlinearity": "tanh", "seed": 1, "init_scale": 0.7,
              "w1_offset": 0.2, "lr1": 1.0, "lr2": 1.0, "depth": 2, "w1_offset_mode": "init"}
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


def deep_values(**more):
    return {"width": 3, "d": 2, "n_data": 5, "nonlinearity": "tanh", "seed": 4, "init_scale": 1.0, "w1_offset": 0.1,
            "lr1": 1.0, "lr2": 1.0, "depth": 4, "w1_offset_mode": "init", **more}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_deep_gradient_against_finite_differences(nonlinearity):
    assert MLP().problem(deep_values(), 1).theta0.shape == (1, 2 * 3 + 2 * 9 + 3)
    assert_gradient_is_the_finite_difference(deep_values(nonlinearity=nonlinearity))


def test_deep_loss_is_the_notebooks_net():
    """The notebook's net: for W in θ: Z = X·W/√fan_in, X = φ(Z); out = Z/√width (the last Z)."""
    values = deep_values(depth=3, init_scale=0.7)
    arrays = mlp_problem_arrays(values)
    layers = [0.7 * arrays["W1"] + 0.1, 0.7 * arrays["hidden"][0], 0.7 * arrays["W2"][:, None]]
    x = arrays["X"]
    for w in layers:
        z = x @ w / np.sqrt(w.shape[0])
        x = np.tanh(np.sqrt(2) * z)
    expected = np.mean((z[:, 0] / np.sqrt(3) - arrays["y"]) ** 2)
    problem = MLP().problem(values, 1)
    assert MLP().loss_grad(problem.theta0, problem.consts, problem.data)[0][0] == pytest.approx(expected, rel=1e-13)


def test_layers_alternate_learning_rates():
    """Layer i (from 0) learns at the notebook's hparams[i mod 2]: lr1, lr2, lr1, lr2 ..."""
    problem = MLP().problem(deep_values(depth=4, lr1=2.0, lr2=5.0), 1)
    np.testing.assert_array_equal(problem.lr_scale[0], [2.0] * 6 + [5.0] * 9 + [2.0] * 9 + [5.0] * 3)


def test_every_step_offset_drifts_w1_as_the_notebook():
    """w1_offset_mode every_step: u_0 = W1₀ + c, u_{t+1} = (u_t − lr·∂L/∂W1) + c, W2 by plain descent;
    with init the offset enters once."""
    base = {"width": 3, "d": 2, "n_data": 4, "w1_offset": 0.2, "lr": 0.05}
    spec = MapSpec(model="mlp", x=Axis("lr1", 1.0, 1.0, 1), steps=6, params={**base, "w1_offset_mode": "every_step"})
    path = ds.trajectories(spec, [0], [0]).theta[0]
    problem = ds.problem(spec)
    model, theta = MLP(), problem.theta0.copy()
    for t in range(6):
        np.testing.assert_array_equal(path[t], theta[0])
        _, grad = model.loss_grad(theta, problem.consts, problem.data)
        theta = theta - 0.05 * grad
        theta[:, :6] = theta[:, :6] + 0.2
    once = ds.trajectories(spec.replace(params={**base, "w1_offset_mode": "init"}), [0], [0]).theta[0]
    np.testing.assert_array_equal(once[0], path[0])  # the same start
    assert np.mean(path[6, :6] - path[0, :6]) == pytest.approx(1.2, abs=0.05)  # drifts by c a step
    assert abs(np.mean(once[6, :6] - once[0, :6])) < 0.05


DEEP_MAPS = {
    "depth 3 lr1 x lr2": MapSpec(model="mlp", x=Axis("lr1", 0.3, 30.0, 5, "log"), y=Axis("lr2", 0.3, 30.0, 3, "log"),
                                 steps=40, params={"width": 4, "d": 3, "n_data": 7, "lr": 1.0, "depth": 3}),
    "depth 4 relu minibatch": MapSpec(model="mlp", x=Axis("lr", 0.05, 5.0, 6, "log"), steps=30,
                                      params={"width": 3, "d": 2, "n_data": 9, "depth": 4, "nonlinearity": "relu",
                                              "batch_size": 4}),
    "every-step offset x lr": MapSpec(model="mlp", x=Axis("w1_offset", 0.01, 1.0, 5, "log"),
                                      y=Axis("lr", 0.5, 50.0, 3, "log"), steps=40,
                                      params={"width": 4, "n_data": 6, "w1_offset_mode": "every_step"}),
}


@pytest.mark.parametrize("name", sorted(DEEP_MAPS))
def test_deep_and_drifting_maps_match_the_reference(name, dtype):
    reference, compiled = run_both(DEEP_MAPS[name].replace(dtype=dtype), threads=3)
    assert_same_fields(reference, compiled)
    assert len(np.unique(compiled.outcome)) > 1 or name == "depth 4 relu minibatch"
