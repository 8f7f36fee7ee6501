"""The sides of a map: every analysis takes outcomes, masks or callables; classifiers' default side is
what they learned; chance-level networks that `collapsed` misses are counted."""

import doctest

import numpy as np
import pytest

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome, boundary, critical
from descentsim.boundary import (
    basin_entropy,
    chance_accuracy,
    chance_level,
    classifier_summary,
    learned,
    learned_accuracy,
    side,
)
from descentsim.cli import describe
from descentsim.fields import empty_fields

QUADRATIC = MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 30), y=Axis("a", 0.5, 2.0, 8), steps=200)


@pytest.fixture(scope="module")
def quadratic():
    return ds.run_map(QUADRATIC)


@pytest.fixture(scope="module")
def collapsing_row():
    """Row 27 of examples/softmax_collapse.toml (init_scale 0.72, 6 classes of 50 points, Adam, minibatches
    of 32) over lr 0.1…3: it learns at the lowest rates, then collapses or sits at chance accuracy."""
    spec = MapSpec.from_toml("examples/softmax_collapse.toml")
    init_scale = float(spec.axis_coordinates(spec.y)[27])
    spec = spec.replace(y=None, x=Axis("lr", 0.1, 3.0, 12, "log"), params={**spec.params, "init_scale": init_scale})
    return ds.run_map(spec)


def classifier_map(accuracy, collapsed=None, per_class=50, **extra):
    """A hand-made softmax-mlp map with rows of 2, 4 and 6 classes (the y axis) and the given fields."""
    accuracy = np.asarray(accuracy, dtype=float)
    spec = MapSpec(model="softmax-mlp", x=Axis("lr", 0.01, 1.0, accuracy.shape[1], "log"),
                   y=Axis("classes", 2, 6, 3), params={"per_class": per_class}, steps=10)
    fields = empty_fields(spec.shape)
    fields["outcome"][:] = Outcome.UNRESOLVED
    fields["accuracy"][:] = accuracy
    fields["collapsed"][:] = 0 if collapsed is None else collapsed
    fields.update({name: np.asarray(values) for name, values in extra.items()})
    return ds.ConvergenceMap(spec, fields)


# --- 1. inside: outcomes, masks, callables ----------------------------------------------------------

def test_a_mask_and_a_callable_give_the_same_measurements_as_the_outcomes(quadratic):
    converged = quadratic.outcome == Outcome.CONVERGED
    seen = []

    def is_converged(m):
        seen.append(m)
        return m.outcome == Outcome.CONVERGED

    for inside in (converged, is_converged):
        np.testing.assert_array_equal(quadratic.side(inside), converged)
        np.testing.assert_array_equal(quadratic.boundary(inside), quadratic.boundary("converged"))
        a, b = quadratic.fractal_dimension(inside, sizes=[2, 4]), quadratic.fractal_dimension("converged", sizes=[2, 4])
        np.testing.assert_array_equal(a.counts, b.counts)
        a = quadratic.uncertainty_exponent(inside, distances=[1, 2])
        b = quadratic.uncertainty_exponent("converged", distances=[1, 2])
        np.testing.assert_array_equal(a.counts, b.counts)
        assert quadratic.basin_entropy(box=4, inside=inside) == basin_entropy(converged, 4)
        curve, expected = quadratic.critical_curve(inside), quadratic.critical_curve("converged")
        np.testing.assert_array_equal(curve.below, expected.below)
        np.testing.assert_array_equal(curve.reason, expected.reason)
    assert seen and all(m is quadratic for m in seen)  # the callable gets the map itself
    assert quadratic.basin_entropy(box=4, inside=converged) != quadratic.basin_entropy(box=4)  # 2 sides, not 5 outcomes


def test_a_callable_can_combine_fields_and_knobs(quadratic):
    fast = quadratic.side(lambda m: (m.fields["steps"] < 30) & (m.knob("a") >= 1.0))
    expected = (quadratic.fields["steps"] < 30) & (quadratic.y[:, None] >= 1.0)
    np.testing.assert_array_equal(fast, expected)
    assert 0 < fast.sum() < fast.size


def test_the_mask_is_copied(quadratic):
    mask = quadratic.outcome == Outcome.DIVERGED
    result = quadratic.side(mask)
    result[:] = False
    assert mask.any()


def test_a_one_row_map_takes_a_flat_mask():
    m = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100))
    flat = np.array([True, True, False, False, True, True])
    np.testing.assert_array_equal(m.side(flat), flat[None, :])
    np.testing.assert_array_equal(m.side(lambda m: flat), flat[None, :])
    np.testing.assert_array_equal(m.critical_curve(flat).below, [1.0])


@pytest.mark.parametrize(
    "inside, message",
    [
        (np.zeros((8, 30), dtype=int), "the inside mask is a int64 array, not a boolean mask shaped (8, 30); compare"),
        (np.zeros((30, 8), dtype=bool), r"the inside mask is shaped (30, 8), the map's fields (8, 30); give one value"),
        (np.zeros(30, dtype=bool), r"is shaped (30,), the map's fields (8, 30)"),
        (lambda m: None, "returned a value that is a NoneType, not a boolean mask shaped (8, 30)"),
        (lambda m: m.fields["score"], "returned a value that is a float64 array, not a boolean mask"),
        (lambda m: [[True] * 30] * 8, "is a list, not a boolean mask"),
        (17, "unknown outcome code 17; valid outcomes: not computed (0), converged (1)"),
        ("exploded", "unknown outcome 'exploded'; valid outcomes"),
        (True, "True is not an outcome; give outcome names or codes"),
        ([1, 2.5], "2.5 is not an outcome"),
        (2.5, "inside must be None, outcomes, a boolean mask or a callable map → mask, got float"),
    ],
)
def test_inside_that_is_not_a_side_is_refused_with_its_fix(quadratic, inside, message):
    with pytest.raises(ds.SpecError) as info:
        quadratic.fractal_dimension(inside)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_outcome_sets_and_bare_fields_still_work(quadratic):
    np.testing.assert_array_equal(side(quadratic, ["diverged", 4]), np.isin(quadratic.outcome, [2, 4]))
    np.testing.assert_array_equal(side(quadratic.fields, Outcome.CONVERGED), quadratic.outcome == 1)
    np.testing.assert_array_equal(side(quadratic.fields), quadratic.fields["score"] < 0)
    assert not side({"outcome": np.zeros(1, np.uint8)}, ["converged", "cycling"]).any()  # zoom's name check


def test_knob_values_at_every_point(quadratic):
    assert quadratic.knob("a").shape == (8, 30) and np.all(quadratic.knob("a")[:, 0] == quadratic.y)
    np.testing.assert_array_equal(quadratic.knob("lr")[3], quadratic.x)
    assert np.all(quadratic.knob("w0") == 1.0)  # a fixed knob, at its default
    with pytest.raises(ds.SpecError, match="unknown knob 'classes'; valid knobs: a, w0"):
        quadratic.knob("classes")


# --- 2. classifiers: the default side is what they learned ------------------------------------------

def test_learned_and_chance_thresholds():
    np.testing.assert_allclose(learned_accuracy([2, 4, 6]), [0.75, 0.625, 7 / 12])
    np.testing.assert_allclose(chance_accuracy(6, 300), 1 / 6 + 3 * np.sqrt(5 / 36 / 300))  # 0.231
    for k in range(2, 1025):  # above 1/2: a network predicting at most half the classes never learned
        assert learned_accuracy(k) > 0.5 and learned_accuracy(k) - 1 / k >= 0.25


def test_the_learned_side_of_hand_made_classifier_maps():
    thresholds = learned_accuracy(np.array([2, 4, 6]))[:, None]
    ceilings = chance_accuracy(np.array([2, 4, 6]), 50 * np.array([2, 4, 6]))[:, None]
    accuracy = np.hstack([np.full((3, 1), np.nan), 1 / np.array([[2], [4], [6]]), ceilings - 1e-9, ceilings + 1e-9,
                          thresholds - 1e-9, thresholds, np.ones((3, 1))])
    m = classifier_map(accuracy)
    expected_learned = np.array([False, False, False, False, False, True, True])
    np.testing.assert_array_equal(m.side(), np.broadcast_to(expected_learned, (3, 7)))
    np.testing.assert_array_equal(learned(m), m.side())
    expected_chance = np.array([False, True, True, False, False, False, False])
    np.testing.assert_array_equal(chance_level(m), np.broadcast_to(expected_chance, (3, 7)))
    np.testing.assert_array_equal(m.critical_curve().reason, ["starts outside"] * 3)
    curve = m.critical_curve(start="first")  # learned from the sixth point to the grid's end
    np.testing.assert_array_equal(curve.reason, ["never leaves"] * 3)
    np.testing.assert_array_equal(curve.below, [1.0] * 3)


def test_chance_level_is_never_learned_even_on_tiny_training_sets():
    m = classifier_map([[0.5, 1.0]] * 3, per_class=1)  # 2 classes of 1 point: guessing can hit 100 %
    assert chance_accuracy(2, 2) > 1
    np.testing.assert_array_equal(chance_level(m)[0], [True, False])
    np.testing.assert_array_equal(learned(m)[0], [False, True])


def test_learned_needs_a_classifier(quadratic):
    for measure in (learned, chance_level, classifier_summary):
        with pytest.raises(ds.SpecError, match="model 'quadratic' is not a classifier map"):
            measure(quadratic)
    with pytest.raises(ds.SpecError, match="a fields mapping is not a classifier map"):
        learned(quadratic.fields)


def test_a_trained_classifier_is_trainable_by_score_at_chance_but_never_learned_there(collapsing_row):
    m = collapsing_row
    accuracy, score = m.fields["accuracy"][0], m.fields["score"][0]
    at_chance = chance_level(m)[0]
    assert at_chance.sum() >= 5 and np.all(accuracy[at_chance] < 0.25)
    assert (score[at_chance] < 0).sum() >= 3  # the score calls them trainable ...
    assert not (m.side()[0] & at_chance).any()  # ... the default side does not
    np.testing.assert_array_equal(m.side()[0], accuracy >= 7 / 12)
    assert m.side()[0, 0] and m.side()[0].sum() == 2  # lr 0.1 and 0.14 learned (accuracy 0.99, 0.77)


def test_the_critical_curve_of_a_classifier_bisects_what_it_learned(collapsing_row):
    m = collapsing_row
    curve = m.critical_curve(refine=4)
    assert curve.reason[0] == "ok" and m.x[1] <= curve.below[0] < curve.above[0] <= m.x[2]
    fields = ds.runner.run_points(m.spec, [0, 0], [0, 0], {"lr": np.array([curve.below[0], curve.above[0]])})
    assert fields["accuracy"][0] >= 7 / 12 > fields["accuracy"][1]


# --- 4. chance-level networks that `collapsed` misses ------------------------------------------------

def test_summary_counts_the_chance_level_networks_collapsed_misses(collapsing_row):
    s = classifier_summary(collapsing_row)
    collapsed = collapsing_row.fields["collapsed"][0] == 1
    assert (s.points, s.collapsed, s.undefined) == (12, collapsed.sum(), 0)
    assert s.learned == 2 and s.chance_level == 7 and s.missed_by_collapsed == 3
    assert s.chance_level == s.collapsed + s.missed_by_collapsed  # collapsed networks are at chance
    # the engines' classes_predicted field breaks the chance-level networks down: one class is collapsed
    assert sum(s.classes_predicted.values()) == s.chance_level and s.classes_predicted[1] == s.collapsed


def test_summary_by_predicted_classes_when_the_field_is_there():
    accuracy = [[1 / 2, 0.55, 0.6, 1.0, np.nan]] + [[1 / k, 1 / k + 0.01, 1 / k + 0.02, 1.0, np.nan] for k in (4, 6)]
    predicted = np.array([[1, 2, 2, 2, -1], [1, 2, 3, 4, -1], [1, 2, 3, 6, -1]], dtype=np.int32)
    collapsed = (predicted == 1).astype(np.int8)
    m = classifier_map(accuracy, collapsed, classes_predicted=predicted)
    s = classifier_summary(m)
    assert (s.points, s.learned, s.chance_level, s.collapsed, s.missed_by_collapsed, s.undefined) == (15, 3, 9, 3, 6, 3)
    assert s.classes_predicted == {1: 3, 2: 4, 3: 2}
    text = describe(m)
    shares = {"learned": 3, "chance level": 9, "  uncollapsed": 6, "  1 class": 3, "  2 classes": 4, "  3 classes": 2,
              "no accuracy": 3}
    for label, count in shares.items():
        share = count / 15
        assert f"\n{label:<14} {share:8.2%}  (" in text, label
    without = classifier_summary(classifier_map(accuracy, collapsed))
    assert without.chance_level == 9 and not any(line.startswith("  1 class") for line in without.lines())
    assert "learned" not in describe(ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 1, 2), steps=5)))


def test_not_computed_points_are_not_counted():
    m = classifier_map([[1 / 6, 1.0]] * 3)
    m.fields["outcome"][0] = Outcome.NOT_COMPUTED
    s = classifier_summary(m)
    assert (s.points, s.learned, s.chance_level) == (4, 2, 2)


@pytest.mark.parametrize("module", [boundary, critical], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    names = {name: getattr(ds, name) for name in ds.__all__}
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_a_format_1_file_has_no_predicted_classes_to_count():
    """Files written before classes_predicted read it as −1 everywhere: not a count of classes."""
    accuracy = [[1 / 2, 1.0], [1 / 4, 1.0], [1 / 6, 1.0]]
    m = classifier_map(accuracy, classes_predicted=np.full((3, 2), -1, dtype=np.int16))
    summary = classifier_summary(m)
    assert summary.chance_level == 3 and summary.classes_predicted is None
    assert "-1 class" not in describe(m)
