"""Critical curves, refined by bisection, against the quadratic's exact 2/a."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, critical

SPEC = MapSpec(model="quadratic", x=Axis("lr", 0.1, 10.0, 24, "log"), y=Axis("a", 0.5, 4.0, 6), steps=200)


def test_grid_brackets_two_over_a():
    m = ds.run_map(SPEC)
    curve = m.critical_curve()
    exact = 2 / m.y
    assert np.all(curve.below < exact) and np.all(exact < curve.above)
    assert np.all(curve.above / curve.below == pytest.approx(100 ** (1 / 23)))  # one grid step


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_bisection_converges_on_two_over_a(backend):
    """The trainability criterion (loss falling over the last 20 steps) holds exactly for lr < 2/a:
    40 halvings pin the critical learning rate to 1e-10 of its value."""
    m = ds.run_map(SPEC)
    curve = m.critical_curve(refine=40, backend=backend)
    exact = 2 / m.y
    assert np.all(curve.below <= exact * (1 + 1e-12)) and np.all(exact <= curve.above * (1 + 1e-12))
    np.testing.assert_allclose(curve.value, exact, rtol=1e-10)


def test_rows_that_start_outside_or_never_leave():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.5, 8), y=Axis("a", 0.5, 20.0, 3), steps=100))
    curve = m.critical_curve(refine=3)  # a = 0.5 never leaves (2/a = 4); a = 20 starts outside (2/a = 0.1)
    assert np.isnan(curve.above[0]) and curve.value[0] == 1.5
    assert np.isnan(curve.below[2]) and np.isnan(curve.value[2])
    assert curve.below[1] < 2 / m.y[1] < curve.above[1]


def test_integer_knobs_are_not_bisected():
    m = ds.run_map(MapSpec(model="relu-neuron", x=Axis("samples", 2, 20, 5), y=Axis("lr", 0.1, 3.0, 2), steps=20))
    with pytest.raises(ds.SpecError, match="cannot be bisected"):
        m.critical_curve(refine=2)


ROWS = MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.5, 8), y=Axis("a", 0.5, 32.0, 4, "log"), steps=100)


def test_every_row_says_why():
    """lr = 0.1, 0.3, … 1.5 trains below 2/a: 4 for a = 0.5 (beyond the grid), 1 for a = 2, 0.25 for a = 8 (only
    lr = 0.1), 0.0625 for a = 32 (nothing). The default side, then a side that leaves out lr < 0.2."""
    m = ds.run_map(ROWS)
    curve = m.critical_curve()
    np.testing.assert_array_equal(curve.reason, ["never leaves", "ok", "ok", "never inside"])
    assert curve.below[0] == 1.5 and np.isnan(curve.above[0]) and curve.value[0] == 1.5
    assert np.isnan(curve.below[3]) and np.isnan(curve.value[3])
    late = m.critical_curve(lambda m: m.side() & (m.knob("lr") > 0.2))
    np.testing.assert_array_equal(late.reason, ["starts outside", "starts outside", "never inside", "never inside"])
    assert np.isnan(late.below).all() and np.isnan(late.above).all() and np.isnan(late.value).all()
    first = m.critical_curve(lambda m: m.side() & (m.knob("lr") > 0.2), start="first")
    np.testing.assert_array_equal(first.reason, ["never leaves", "ok", "never inside", "never inside"])
    assert first.start == "first" and first.below[1] == curve.below[1] and first.above[1] == curve.above[1]


def test_start_first_follows_the_first_run_and_bisects_it():
    """Without the lowest learning rates (lr < 0.3) every row starts outside; from its first inside point
    each row is bisected to 2/a as before, by trajectories the callable sorts through their knob values."""
    m = ds.run_map(SPEC)
    skip_low = lambda m: m.side() & (m.knob("lr") >= 0.3)  # noqa: E731
    assert (m.critical_curve(skip_low).reason == "starts outside").all()
    curve = m.critical_curve(skip_low, refine=40, start="first")
    exact = 2 / m.y
    np.testing.assert_array_equal(curve.reason, ["ok"] * 6)
    np.testing.assert_allclose(curve.value, exact, rtol=1e-10)


def test_start_and_refinement_refusals():
    m = ds.run_map(ROWS)
    with pytest.raises(ds.SpecError, match="start must be 'edge' .* or 'first' .*, got 'left'"):
        m.critical_curve(start="left")
    with pytest.raises(ds.SpecError, match="a fixed inside mask cannot sort the new trajectories of bisection"):
        m.critical_curve(m.side(), refine=3)
    np.testing.assert_array_equal(m.critical_curve(m.side()).below, m.critical_curve().below)  # fine unrefined


def test_geometric_middle_keeps_the_sign_of_a_negative_log_axis():
    curve = critical.CriticalCurve("w0", np.array([0.0]), np.array([-4.0]), np.array([-1.0]), True, np.array(["ok"]))
    assert curve.value[0] == -2.0
