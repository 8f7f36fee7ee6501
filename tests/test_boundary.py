"""Boundary measurements on sets whose answers are known."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.boundary import (
    basin_entropy,
    box_counting,
    box_counting_slopes,
    boundary_mask,
    edge_box_counts,
    edge_image,
    porespy_box_sizes,
    side,
    uncertainty_exponent,
)
from descentsim.zoom import ZoomSettings, zoom

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


# --- the median-slope estimator of Sohl-Dickstein (2024), Table 1 ---------------------------------------
@pytest.mark.parametrize(
    "mask",
    [YY > 0.37 * XX + 200, (XX - 500) ** 2 + (YY - 530) ** 2 < 300**2],
    ids=["line", "circle"],
)
def test_median_slope_of_smooth_boundaries_is_one(mask):
    fit = box_counting_slopes(mask)  # measured: line 1.001, circle 0.984
    np.testing.assert_array_equal(fit.sizes[0], [10, 16, 27, 46, 78, 130, 218, 365, 611, 1023])
    assert fit.exponent == pytest.approx(1.0, abs=0.03) and fit.uncertainty < 0.12
    assert np.isnan(fit.frame_bootstrap)  # one frame: nothing to resample


def test_median_slope_of_a_koch_zoom_sequence():
    """Four concentric frames, each twice as close, around points of the level-6 snowflake (edges ≤ 1.3 pixels
    long, below the smallest box). Measured: 1.22, 1.33, 1.29 at these points; one frame alone strays more
    (a 2048² frame of the whole snowflake gives 1.40), as the local slopes of the Koch curve oscillate."""
    curve = koch_snowflake(6)
    for index in (1755, 4101, 1000):
        frames = [fill_polygon((curve - curve[index]) * 2.0**k + 0.5, 512) for k in range(4)]
        fit = box_counting_slopes(frames)
        assert fit.exponent == pytest.approx(np.log(4) / np.log(3), abs=0.07)
        assert abs(fit.exponent - np.log(4) / np.log(3)) < fit.uncertainty  # within half the IQR
        assert len(fit.slopes) == 4 and fit.frame_bootstrap > 0
        assert fit.exponent == np.median(np.concatenate(fit.slopes))  # all slopes pooled, not frame medians


def test_median_slope_of_a_random_set_is_two():
    """A random set of equal sides: 7/8 of the 2×2 blocks hold both, so every box holds edge and non-edge pixels
    and N(d) counts every box (measured 2.008); with one point in 50 inside, small boxes miss edges (1.92)."""
    mask = np.random.default_rng(0).random((N + 1, N + 1)) < 0.5
    assert edge_image(mask).mean() == pytest.approx(7 / 8, abs=0.01)
    fit = box_counting_slopes(mask)
    assert fit.exponent == pytest.approx(2.0, abs=0.05)
    np.testing.assert_array_equal(fit.counts[0][1:], [(-(-N // d)) ** 2 for d in fit.sizes[0][1:]])


def test_edge_image_and_counts_by_hand():
    score = np.array([
        [-1, -1, -1, -1, -1],
        [-1, -1, -1, 1, 1],
        [-1, -1, 1, 1, 1],
        [-1, -1, -1, 1, 1],
        [-1, -1, -1, -1, -1],
    ], dtype=float)
    edges = np.array([
        [0, 0, 1, 1],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ], dtype=bool)
    np.testing.assert_array_equal(edge_image(score), edges)
    np.testing.assert_array_equal(edge_image(score < 0), edges)  # a side mask: True inside
    # diagonal neighbours count; 0 and NaN are on neither side
    assert edge_image(np.array([[-1.0, 0.0], [0.0, 2.0]])).tolist() == [[True]]
    assert edge_image(np.array([[-1.0, 0.0], [0.0, 0.0]])).tolist() == [[False]]
    assert edge_image(np.array([[-1.0, np.nan], [2.0, 2.0]])).tolist() == [[False]]
    # d = 2: four boxes, each mixed; d = 3: the 3×3, 3×1 and 1×3 boxes are mixed, the ragged corner pixel is
    # all edge and is not counted; d = 4: one mixed box
    np.testing.assert_array_equal(edge_box_counts(edges, [2, 3, 4]), [4, 3, 1])
    fit = box_counting_slopes(score, bins=[2, 3, 4])
    lnd, lnn = np.log([2, 3, 4]), np.log([4, 3, 1])
    h1, h2 = np.diff(lnd)
    middle = (h1**2 * lnn[2] - h2**2 * lnn[0] + (h2**2 - h1**2) * lnn[1]) / (h1 * h2 * (h1 + h2))
    expected = -np.array([(lnn[1] - lnn[0]) / h1, middle, (lnn[2] - lnn[1]) / h2])
    np.testing.assert_allclose(fit.slopes[0], expected, rtol=1e-12)
    assert fit.exponent == pytest.approx(np.median(expected))
    assert fit.quartiles == pytest.approx(tuple(np.percentile(expected, [25, 75])))
    np.testing.assert_array_equal(porespy_box_sizes((4095, 4095)),
                                  [10, 19, 38, 74, 144, 282, 551, 1075, 2098, 4095])


def test_median_slope_refuses_what_it_cannot_measure():
    checkerboard = (np.add.outer(np.arange(40), np.arange(40)) % 2) == 0  # every 2×2 block mixed: all edge
    with pytest.raises(ValueError, match="frame 0: no box of 10 pixels"):
        box_counting_slopes(checkerboard)
    with pytest.raises(ValueError, match="frame 1: no box"):
        box_counting_slopes([YY[:64, :64] > 30, np.ones((64, 64), dtype=bool)])
    with pytest.raises(ValueError, match="two sizes"):
        box_counting_slopes(np.eye(11) > 0)  # a 10×10 edge image: one box size
    with pytest.raises(ds.SpecError, match="inside applies to maps"):
        box_counting_slopes(np.eye(20) > 0, inside="converged")


def test_median_slope_of_maps_and_zoom_frames():
    spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 4.0, 129), y=Axis("a", 0.5, 2.0, 129), steps=300)
    m = ds.run_map(spec)
    fit = m.fractal_dimension(method="median-slope")  # the score's sign: lr·a = 2, a smooth curve
    assert fit.exponent == pytest.approx(1.0, abs=0.15)
    np.testing.assert_array_equal(fit.slopes[0], box_counting_slopes(m.fields["score"]).slopes[0])
    assert m.fractal_dimension(method="median-slope", sizes=[4, 8, 16]).sizes[0].tolist() == [4, 8, 16]
    assert m.fractal_dimension().exponent == box_counting(m.side()).exponent  # the default is unchanged
    with pytest.raises(ds.SpecError, match="fits no range"):
        m.fractal_dimension(method="median-slope", fit=(4, 64))
    with pytest.raises(ds.SpecError, match="valid methods: least-squares, median-slope"):
        m.fractal_dimension(method="porespy")
    frames = zoom(spec.replace(x=Axis("lr", 0.1, 4.0, 33), y=Axis("a", 0.5, 2.0, 33)),
                  ZoomSettings(frames=3, factor=2.0, center=(2.0, 1.0)))
    fit = box_counting_slopes(frames)
    assert len(fit.slopes) == 3 and fit.exponent == np.median(np.concatenate(fit.slopes))
    np.testing.assert_array_equal(box_counting_slopes(np.stack([f.fields["score"] for f in frames])).slopes[2],
                                  fit.slopes[2])


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
