"""Boundary measurements on sets whose answers are known."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.boundary import basin_entropy, box_counting, boundary_mask, side, uncertainty_exponent

N = 1024
YY, XX = np.mgrid[0:N, 0:N] + 0.5


def koch_snowflake(levels: int) -> np.ndarray:
    """Vertices (k, 2) of the Koch snowflake after ``levels`` refinements, inside the unit square."""
    points = np.array([[0.0, 0.0], [0.5, np.sqrt(3) / 2], [1.0, 0.0]])
    turn = np.exp(1j * np.pi / 3)  # the bump points outwards (the triangle runs clockwise)
    z = points[:, 0] + 1j * points[:, 1]
    for _ in range(levels):
        a, b = z, np.roll(z, -1)
        d = (b - a) / 3
        z = np.stack([a, a + d, a + d + d * turn, a + 2 * d], axis=1).ravel()
    z = (z - complex(z.real.min(), z.imag.min())) / max(np.ptp(z.real), np.ptp(z.imag))
    return np.stack([0.05 + 0.9 * z.real, 0.05 + 0.9 * z.imag], axis=1)


def fill_polygon(vertices: np.ndarray, n: int) -> np.ndarray:
    """Even-odd fill of a polygon (unit-square coordinates) on an n×n grid of cell centres, row by row."""
    x0, y0 = vertices[:, 0] * n, vertices[:, 1] * n
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    mask = np.zeros((n, n), dtype=bool)
    for row in range(n):
        y = row + 0.5
        crossing = (y0 <= y) != (y1 <= y)
        xs = np.sort(x0[crossing] + (y - y0[crossing]) * (x1[crossing] - x0[crossing]) / (y1[crossing] - y0[crossing]))
        cols = np.arange(n) + 0.5
        mask[row] = (np.searchsorted(xs, cols) % 2) == 1
    return mask


@pytest.mark.parametrize(
    "mask",
    [YY > 0.37 * XX + 200, (XX - 500) ** 2 + (YY - 530) ** 2 < 300**2],
    ids=["line", "circle"],
)
def test_smooth_boundaries_have_dimension_one(mask):
    fit = box_counting(mask)
    assert fit.exponent == pytest.approx(1.0, abs=0.03) and fit.uncertainty < 0.03
    assert uncertainty_exponent(mask).exponent == pytest.approx(1.0, abs=0.05)  # α = 2 − D


def test_koch_snowflake_has_dimension_log4_over_log3():
    mask = fill_polygon(koch_snowflake(6), 2048)
    assert 0.3 < mask.mean() < 0.7
    fit = box_counting(mask, fit=(2, 64))  # level-6 edges are 2.5 cells long: finer boxes see a polygon
    assert fit.exponent == pytest.approx(np.log(4) / np.log(3), abs=0.04) and fit.uncertainty < 0.03


def test_a_filled_random_set_has_dimension_two():
    mask = np.random.default_rng(0).random((N + 1, N + 1)) < 0.5  # boxes of side s tile 1024 cells exactly
    assert box_counting(mask).exponent == pytest.approx(2.0, abs=0.05)
    assert uncertainty_exponent(mask).exponent == pytest.approx(0.0, abs=0.05)


def test_boundary_mask_marks_both_sides_of_an_edge():
    mask = np.zeros((4, 6), dtype=bool)
    mask[:, 3:] = True
    np.testing.assert_array_equal(np.flatnonzero(boundary_mask(mask)[0]), [2, 3])


def test_basin_entropy_of_constructed_basins():
    labels = np.zeros((50, 50), dtype=int)
    labels[:, 25:] = 1  # the split on a box edge: no box holds two labels
    assert basin_entropy(labels, box=5) == (0.0, 0.0)
    labels = np.zeros((50, 50), dtype=int)
    labels[:, 22:] = 1  # split two columns into the fifth column of boxes: p = (2/5, 3/5) there
    s = -(0.4 * np.log(0.4) + 0.6 * np.log(0.6))
    sb, sbb = basin_entropy(labels, box=5)
    assert sbb == pytest.approx(s) and sb == pytest.approx(s / 10)
    rng = np.random.default_rng(1)
    sb, sbb = basin_entropy(rng.integers(0, 3, (400, 400)), box=20)
    assert sb == pytest.approx(np.log(3), abs=0.01) and sbb == sb  # riddled: every box mixed, S → ln 3


def test_sides_of_a_map():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 30), y=Axis("a", 0.5, 2.0, 8), steps=200))
    converged = side(m.fields, "converged")
    np.testing.assert_array_equal(converged, m.outcome == Outcome.CONVERGED)
    np.testing.assert_array_equal(side(m.fields, [Outcome.DIVERGED, 4]), np.isin(m.outcome, [2, 4]))
    assert (side(m.fields) == (m.fields["score"] < 0)).all() and side(m.fields).any()
    with pytest.raises(ds.SpecError, match="valid outcomes"):
        side(m.fields, "exploded")


def test_map_measurements():
    """The quadratic's boundary lr = 2/a is a smooth curve; the double well's basins of ±1 interleave."""
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 4.0, 257), y=Axis("a", 0.5, 2.0, 257), steps=300))
    assert m.fractal_dimension("converged").exponent == pytest.approx(1.0, abs=0.1)
    assert m.uncertainty_exponent("converged").exponent == pytest.approx(1.0, abs=0.1)
    edge = m.boundary("converged")
    lr = np.broadcast_to(m.x, m.shape)[edge]
    a = np.broadcast_to(m.y[:, None], m.shape)[edge]
    assert np.all(np.abs(lr * a - 2) < 0.05 * a + 0.1)  # on lr = 2/a, within a grid step
    sb, sbb = m.basin_entropy(box=8)
    assert 0 < sb < sbb < np.log(2)
    well = ds.run_map(MapSpec(model="double-well", x=Axis("lr", 0.5, 1.6, 128), y=Axis("w0", -2.0, 2.0, 128),
                              steps=300))
    assert well.basin_entropy(box=4, field="attractor")[1] > 0


def test_to_xarray():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 7), y=Axis("a", 0.5, 2.0, 3), steps=50))
    dataset = m.to_xarray()
    assert dataset["outcome"].dims == ("y", "x") and dataset["x"].attrs["knob"] == "lr"
    np.testing.assert_array_equal(dataset["score"].values, m.fields["score"])
    assert "quadratic" in dataset.attrs["spec"]
