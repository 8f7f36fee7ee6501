"""Recorded paths: θ_t and the loss of the engines, exact where the maths gives it."""

import numpy as np
import pytest

import descentsim as ds


def test_quadratic_path_is_the_geometric_sequence():
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 0.9, 3), steps=50, params={"a": 1.5, "w0": 2.0})
    paths = ds.trajectories(spec, [0, 0, 0], [0, 1, 2]).theta
    cmap = ds.run_map(spec)
    for k, lr in enumerate(cmap.x):
        decided = cmap.fields["steps"][0, k]
        w = paths[k, :, 0]
        assert np.isfinite(w[: decided + 1]).all() and np.isnan(w[decided + 1 :]).all()
        t = np.arange(decided + 1)
        np.testing.assert_allclose(w[: decided + 1], 2.0 * (1 - lr * 1.5) ** t, rtol=1e-12, atol=1e-300)


def test_dead_relu_path_stops_where_the_map_says_stuck():
    spec = ds.MapSpec.from_toml_text(
        "model = 'relu-neuron'\nsteps = 400\n[x]\nname = 'w0'\nstart = -2.0\nstop = 2.0\nn = 2\n"
        "[params]\ntrainable = 'wb'\nlr = 0.5\nb0 = -6.0\n"
    )
    cmap = ds.run_map(spec)
    paths = ds.trajectories(spec, [0, 0], [0, 1], overrides={"b0": np.array([-6.0, 1.0])}).theta
    assert cmap.outcome[0, 0] == ds.Outcome.STUCK
    np.testing.assert_array_equal(paths[0, -1], paths[0, 0])  # dead from the start: never moves
    w, b = paths[1, np.isfinite(paths[1, :, 0])][-1, :2]
    assert abs(w - 1) < 1e-3 and abs(b) < 1e-3  # a live start learns relu(x)


def test_overrides_are_checked_like_axis_values():
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 0.9, 3), steps=5)
    with pytest.raises(ds.SpecError, match="knob 'lr' must be > 0"):
        ds.trajectories(spec, [0], [0], overrides={"lr": np.array([-1.0])})
    with pytest.raises(ds.SpecError, match="unknown knob 'w1' in overrides; valid knobs: .*w0"):
        ds.trajectories(spec, [0], [0], overrides={"w1": np.array([1.0])})
    with pytest.raises(ds.SpecError, match="takes a name"):
        ds.trajectories(spec, [0], [0], overrides={"schedule": np.array([1.0])})


def test_points_off_the_grid_are_refused():
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 0.9, 3), steps=5)
    for iy, ix in (([0], [-1]), ([1], [0]), ([0], [3])):
        with pytest.raises(ds.SpecError, match="grid indices must be 0 <= iy < 1 and 0 <= ix < 3"):
            ds.trajectories(spec, iy, ix)
    with pytest.raises(ds.SpecError, match="give one row and one column index per point"):
        ds.trajectories(spec, [0, 0], [0])
    with pytest.raises(ds.SpecError, match="has 1 values for 2 points"):
        ds.trajectories(spec, [0, 0], [0, 1], overrides={"w0": np.array([1.0])})
