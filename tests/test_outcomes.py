"""The documented outcome rules and fields, on trajectories whose losses are known exactly."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome


def one_point(model="quadratic", backend="cython", **spec):
    """Fields of a one-point map, as scalars."""
    lr = spec.pop("lr")
    m = ds.run_map(MapSpec(model=model, x=Axis("lr", lr, lr, 1), **spec), backend=backend)
    return {name: values[0, 0] for name, values in m.fields.items()}


def paper_score(normalised_losses: np.ndarray) -> float:
    """The trainability score as Sohl-Dickstein (2024) computes it from a whole loss sequence."""
    v = np.where(np.isfinite(normalised_losses), normalised_losses, 1e6)
    v = np.minimum(v, 1e6)
    if np.mean(v[-20:]) < 1:
        return -np.sum(v)
    return np.sum(1 / v)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_score_of_a_full_converging_run(backend):
    """converge_loss = 0 keeps the run going all 100 steps: L_t/L_0 = 0.25^t exactly."""
    f = one_point(backend=backend, lr=0.5, steps=100, thresholds={"converge_loss": 0.0})
    assert f["outcome"] == Outcome.UNRESOLVED or f["outcome"] == Outcome.STUCK
    assert f["score"] == pytest.approx(paper_score(0.25 ** np.arange(100)), rel=1e-12)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_score_of_a_diverged_run_holds_the_clipped_loss(backend):
    """A run stopped at divergence scores as if its clipped loss (1e6) stayed for the rest of the budget."""
    f = one_point(backend=backend, lr=2.5, steps=60)
    assert f["outcome"] == Outcome.DIVERGED
    ratio = 1.5**2
    assert f["steps"] == int(np.ceil(np.log(1e6) / np.log(ratio)))
    assert f["score"] == pytest.approx(paper_score(ratio ** np.arange(60.0)), rel=1e-12)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_score_of_an_early_converged_run(backend):
    f = one_point(backend=backend, lr=0.5, steps=100)
    assert f["outcome"] == Outcome.CONVERGED
    decided = f["steps"]
    v = 0.25 ** np.arange(100.0)
    v[decided:] = v[decided]  # held at the deciding value
    assert f["score"] == pytest.approx(paper_score(v), rel=1e-12)


def test_stuck_at_a_stationary_point():
    f = one_point(model="double-well", lr=0.3, steps=50, params={"w0": 0.0})
    assert f["outcome"] == Outcome.STUCK and f["steps"] == 50 and f["final_loss"] == 0.25


def test_slow_run_is_unresolved():
    f = one_point(lr=1e-4, steps=100)
    assert f["outcome"] == Outcome.UNRESOLVED


def test_period_is_reported_up_to_max_period():
    """The double well's 4-cycle near lr = 1.25 is found; with max_period = 3 it is not a cycle."""
    f = one_point(model="double-well", lr=1.26, steps=5000, params={"w0": 0.7})
    assert f["outcome"] == Outcome.CYCLING and f["period"] == 4
    f = one_point(model="double-well", lr=1.26, steps=5000, params={"w0": 0.7}, thresholds={"max_period": 3})
    assert f["outcome"] != Outcome.CYCLING and f["period"] == 0


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_diverged_at_non_finite_initial_loss(backend):
    """L_0 = inf: diverged at once, and untrainable for the score (every v counts as 1e6)."""
    f = one_point(backend=backend, lr=0.1, steps=10, params={"w0": 1e200, "a": 1e200})
    assert f["outcome"] == Outcome.DIVERGED and f["steps"] == 0
    assert f["score"] == pytest.approx(10 * 1e-6)
    g = one_point(model="uv", backend=backend, lr=0.1, steps=50, params={"m": 8, "init_scale": 1e200})
    assert g["outcome"] == Outcome.DIVERGED and np.isnan(g["final_loss"])
    assert g["score"] == pytest.approx(50 * 1e-6)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_start_at_the_minimum_converges_once_the_window_is_full(backend):
    """L_t = 0 from t = 0: confirmed at step converge_window − 1; L_t/L_0 counts as 0 where L_0 = 0."""
    window = ds.Thresholds().converge_window
    f = one_point(backend=backend, lr=0.1, steps=window + 5, params={"w0": 0.0})
    assert f["outcome"] == Outcome.CONVERGED and f["steps"] == window - 1 and f["loss_sum"] == 0
    assert f["score"] == 0
    f = one_point(backend=backend, lr=0.1, steps=10, params={"w0": 0.0}, thresholds={"converge_window": 1})
    assert f["outcome"] == Outcome.CONVERGED and f["steps"] == 0 and f["loss_sum"] == 0


def test_zero_steps_is_refused():
    """With no step to take every point would be STUCK (its final window is L_0 alone): not a map."""
    with pytest.raises(ds.SpecError, match="steps must be a whole number from 1 to .*, got 0"):
        one_point(lr=0.1, steps=0)


def test_one_step_is_the_smallest_budget():
    """One step of w ← 0.9·w from w0 = 1: L_1 = 0.405, still moving, so unresolved."""
    f = one_point(lr=0.1, steps=1)
    assert f["steps"] == 1 and f["outcome"] == Outcome.UNRESOLVED
    assert f["final_loss"] == pytest.approx(0.5 * 0.9**2, rel=1e-15)


def test_diverge_factor_sets_the_bound():
    """L_t = L_0·4^t at lr = 3: above a bound of 100·L_0 from t = 4."""
    f = one_point(lr=3.0, steps=100, thresholds={"diverge_factor": 100.0})
    assert f["outcome"] == Outcome.DIVERGED and f["steps"] == 4


def test_thresholds_are_validated():
    with pytest.raises(ds.SpecError, match="max_period"):
        ds.Thresholds(max_period=1)
    with pytest.raises(ds.SpecError, match="unknown threshold 'stuck'"):
        ds.Thresholds.from_dict({"stuck": 1})
