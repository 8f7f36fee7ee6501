"""Critical curves, refined by bisection, against the quadratic's exact 2/a."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec

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
