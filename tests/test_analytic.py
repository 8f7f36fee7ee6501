"""Maps against results the maths gives exactly."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.models.relu_neuron import relu_neuron_data


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_quadratic_diverges_exactly_above_two_over_a(backend, dtype):
    """L = ½·a·w²: converges for lr < 2/a, diverges for lr > 2/a, to within one grid step."""
    spec = MapSpec(
        model="quadratic", x=Axis("lr", 0.05, 4.0, 80), y=Axis("a", 0.5, 2.0, 7), steps=20000, dtype=dtype
    )
    m = ds.run_map(spec, backend=backend)
    step = m.x[1] - m.x[0]
    for row, a in enumerate(m.y):
        lr, outcome = m.x, m.outcome[row]
        boundary = 2 / a
        assert (outcome[lr < boundary - step] == Outcome.CONVERGED).all()
        assert (outcome[lr > boundary + step] == Outcome.DIVERGED).all()
        assert not (outcome[lr > boundary] == Outcome.CONVERGED).any()
        assert not (outcome[lr < boundary] == Outcome.DIVERGED).any()


def test_quadratic_at_two_over_a_is_a_two_cycle():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 2.0, 2.0, 1), params={"a": 1.0, "w0": 0.5}, steps=50))
    assert m.outcome[0, 0] == Outcome.CYCLING and m.fields["period"][0, 0] == 2


@pytest.mark.parametrize("window", [1, None, 7])
def test_quadratic_fields_have_closed_forms(window):
    """L_t = L_0·r^(2t) with r = |1 − lr·a|: the step count and Σ L_t/L_0 follow exactly. The loss falls
    monotonically, so the window confirms at the step the level is reached plus window − 1."""
    lr, a, w0 = 0.3, 1.0, 1.0
    thresholds = {} if window is None else {"converge_window": window}
    spec = MapSpec(model="quadratic", x=Axis("lr", lr, lr, 1), params={"a": a, "w0": w0}, steps=1000,
                   thresholds=thresholds)
    m = ds.run_map(spec)
    ratio = (1 - lr * a) ** 2
    loss0 = 0.5 * a * w0**2
    reached = int(np.ceil(np.log(1e-8 / loss0) / np.log(ratio)))
    decided = reached + spec.thresholds.converge_window - 1
    assert m.outcome[0, 0] == Outcome.CONVERGED
    assert m.fields["steps"][0, 0] == decided
    assert m.fields["loss_sum"][0, 0] == pytest.approx((1 - ratio**decided) / (1 - ratio), rel=1e-12)
    assert m.fields["final_loss"][0, 0] == pytest.approx(loss0 * ratio**decided, rel=1e-12)


def _dead_relu_recurrence(lr, w0, x, steps, window, converge=1e-8, diverge_factor=1e6):
    """The scalar recurrence the w-only ReLU neuron reduces to: (outcome or None, steps, w); converged
    after `window` steps in a row at or below the level."""
    c_pos = np.mean(x**2 * (x > 0))
    c_neg = np.mean(x**2 * (x < 0))

    def loss(w):
        return 0.5 * (w - 1) ** 2 * c_pos if w > 0 else 0.5 * (w * w * c_neg + c_pos)

    w, loss0, below = w0, loss(w0), 0
    for t in range(steps + 1):
        value = loss(w)
        if not np.isfinite(value) or value > diverge_factor * loss0:
            return Outcome.DIVERGED, t, w
        below = below + 1 if value <= converge else 0
        if below >= window:
            return Outcome.CONVERGED, t, w
        if t == steps:
            return None, t, w
        # written as a product for w < 0 so that rounding near underflow cannot flip the sign
        w = w - lr * (w - 1) * c_pos if w > 0 else w * (1 - lr * c_neg)


def test_dead_relu_map_follows_its_piecewise_linear_recurrence():
    spec = MapSpec(
        model="relu-neuron",
        x=Axis("lr", 1e-2, 8.0, 41, "log"),
        y=Axis("w0", -3.05, 3.05, 21),
        steps=1000,
        params={"trainable": "w", "samples": 64, "data_seed": 3},
    )
    m = ds.run_map(spec)
    x = relu_neuron_data(64, 3)[0]
    c_pos, c_neg = np.mean(x**2 * (x > 0)), np.mean(x**2 * (x < 0))
    checked = 0
    for iy, w0 in enumerate(m.y):
        for ix, lr in enumerate(m.x):
            outcome, decided, w = _dead_relu_recurrence(lr, w0, x, spec.steps, spec.thresholds.converge_window)
            got = Outcome(m.outcome[iy, ix])
            if outcome is not None:
                assert got == outcome, (lr, w0)
                if lr * max(c_pos, c_neg) < 2:  # no chaos: rounding differences stay small
                    assert m.fields["steps"][iy, ix] == decided, (lr, w0)
            else:
                assert got in (Outcome.STUCK, Outcome.CYCLING, Outcome.UNRESOLVED), (lr, w0)
            if got == Outcome.STUCK:
                assert w <= 0 and abs(w) < 1e-3, (lr, w0, w)  # the dead neuron: w decayed to 0 from below
            checked += 1
    assert checked == m.outcome.size
    dead = m.outcome[m.y < 0] == Outcome.STUCK
    assert dead.mean() > 0.3  # the failure the map is there to show


def test_double_well_first_period_doubling_at_lr_one():
    """Near w = 1, w ← w − lr·w(w² − 1) has multiplier 1 − 2·lr: the minimum turns unstable at lr = 1."""
    spec = MapSpec(model="double-well", x=Axis("lr", 0.9, 1.1, 41), y=Axis("w0", 0.8, 1.2, 4), steps=20000)  # w0 = 1 would start at the minimum
    m = ds.run_map(spec)
    step = m.x[1] - m.x[0]
    below, above = m.x < 1 - step, m.x > 1 + step
    assert (m.outcome[:, below] == Outcome.CONVERGED).all()
    assert (m.fields["attractor"][:, below] == 1).all()
    assert (m.outcome[:, above] == Outcome.CYCLING).all()
    assert (m.fields["period"][:, above] == 2).all()


def test_double_well_records_which_minimum():
    m = ds.run_map(MapSpec(model="double-well", x=Axis("w0", -2.0, 2.0, 9), params={"lr": 0.1}, steps=2000))
    w0 = m.x
    outcome, attractor = m.outcome[0], m.fields["attractor"][0]
    assert (attractor[(w0 < 0) & (outcome == Outcome.CONVERGED)] == 0).all()
    assert (attractor[(w0 > 0) & (outcome == Outcome.CONVERGED)] == 1).all()
    assert outcome[w0 == 0] == Outcome.STUCK  # the maximum: zero gradient, never moves
    assert (attractor[outcome != Outcome.CONVERGED] == -1).all()


def test_uv_catapult_boundary_at_four_over_lambda():
    """For a wide uv model, divergence sets in near lr = 4/λ₀, λ₀ = (|u|² + |v|²)/m."""
    m_width = 4096
    spec = MapSpec(model="uv", x=Axis("lr", 0.5, 3.0, 51), params={"m": m_width, "target": 0.0}, steps=2000)
    result = ds.run_map(spec)
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(m_width), rng.standard_normal(m_width)
    lam = (u @ u + v @ v) / m_width
    lr, outcome = result.x, result.outcome[0]
    assert (outcome[lr < 3.5 / lam] == Outcome.CONVERGED).all()
    assert (outcome[lr > 4.5 / lam] == Outcome.DIVERGED).all()
