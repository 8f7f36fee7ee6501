"""Specs, axes and knobs: validation with messages that name the fix, and TOML round trips."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descentsim as ds
from descentsim import Axis, MapSpec


def test_axis_values():
    np.testing.assert_allclose(Axis("lr", 1e-3, 1.0, 4, "log").values(), [1e-3, 1e-2, 1e-1, 1.0])
    np.testing.assert_allclose(Axis("w0", -1, 1, 3).values(), [-1, 0, 1])
    assert Axis("lr", -1.0, -1e-3, 4, "log").values()[0] == -1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be a whole number >= 1"),
        (dict(n=-3), "n must be a whole number >= 1"),
        (dict(n=2.5), "n must be a whole number >= 1"),
        (dict(start=-1.0, scale="log"), "log axis cannot reach or cross zero"),
        (dict(start=0.0, scale="log"), "log axis cannot reach or cross zero"),
        (dict(scale="cubic"), "scale must be 'linear' or 'log'"),
        (dict(stop=float("nan")), "must be a finite number"),
    ],
)
def test_bad_axes(kwargs, message):
    args = dict(name="lr", start=0.1, stop=1.0, n=10, scale="linear") | kwargs
    with pytest.raises(ds.SpecError, match=message):
        Axis(**args)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ds.SpecError, match="unknown model .transformer.; valid models: quadratic, double-well, uv, relu-neuron, mlp, softmax-mlp"):
        MapSpec(model="transformer", x=Axis("lr", 0.1, 1, 2))


def test_unknown_knob_lists_valid_ones():
    with pytest.raises(ds.SpecError, match="unknown knob 'b' .* valid knobs: a, w0, lr"):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1, 2), params={"b": 1})
    with pytest.raises(ds.SpecError, match="unknown knob 'width' on an axis"):
        MapSpec(model="uv", x=Axis("width", 1, 10, 2))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(steps=-1), "steps must be a whole number from 1 to"),
        (dict(steps=0), "steps must be a whole number from 1 to .*, got 0; give the gradient steps"),
        (dict(dtype="float16"), "dtype must be 'float64' or 'float32'"),
        (dict(arithmetic="fsat"), "arithmetic must be 'exact' \\(the default\\) or 'fast', got 'fsat'"),
        (dict(params={"lr": 0.1}), "both fixed in params and swept"),
        (dict(y=Axis("lr", 0.1, 1, 2)), "x and y both sweep knob 'lr'"),
        (dict(optimizer="lion"), "unknown optimizer 'lion'; valid optimizers: gd"),
        (dict(params={"a": -1.0}), "knob 'a' must be >= 0"),
    ],
)
def test_bad_specs(changes, message):
    base = dict(model="quadratic", x=Axis("lr", 0.1, 1.0, 4))
    with pytest.raises(ds.SpecError, match=message):
        MapSpec(**(base | changes))


def test_knob_types_and_ranges():
    with pytest.raises(ds.SpecError, match="'trainable' must be one of w, wb, wbac"):
        MapSpec(model="relu-neuron", x=Axis("lr", 0.1, 1, 2), params={"trainable": "wa"})
    with pytest.raises(ds.SpecError, match="takes a name, not a number"):
        MapSpec(model="relu-neuron", x=Axis("trainable", 0, 1, 2))
    with pytest.raises(ds.SpecError, match="'m' must be >= 1"):
        MapSpec(model="uv", x=Axis("m", 0, 8, 3))
    with pytest.raises(ds.SpecError, match="'samples' must be a whole number"):
        MapSpec(model="relu-neuron", x=Axis("lr", 0.1, 1, 2), params={"samples": 2.5})


@pytest.mark.parametrize("knob", ["lr1", "lr2"])
def test_per_layer_learning_rates_are_positive_like_lr(knob):
    """lr1 and lr2 multiply lr: at 0 the layer never moves, below it climbs; both refused, as for lr."""
    base = dict(model="mlp", x=ds.Axis("lr", 0.1, 1.0, 2), steps=1, params={"width": 2})
    for value in (0.0, -1.0):
        with pytest.raises(ds.SpecError, match=f"knob {knob!r} must be > 0, got {value:g} .a learning rate of 0"):
            MapSpec(**{**base, "params": {"width": 2, knob: value}})
    with pytest.raises(ds.SpecError, match=f"knob {knob!r} must be > 0, got 0 .*; change the bounds of axis y .0 to 2."):
        MapSpec(**base, y=ds.Axis(knob, 0.0, 2.0, 3))
    assert MapSpec(**base, y=ds.Axis(knob, 0.5, 2.0, 3)).y.name == knob


def test_integer_knob_axis_is_rounded():
    spec = MapSpec(model="uv", x=Axis("m", 4, 64, 5, "log"))
    np.testing.assert_array_equal(spec.axis_coordinates(spec.x), [4, 8, 16, 32, 64])


@pytest.mark.parametrize(
    "model, x, y",
    [
        ("relu-neuron", "lr", "w0"),
        ("relu-neuron", "w0", "b0"),
        ("uv", "lr", "init_scale"),
        ("quadratic", "a", "lr"),
        ("relu-neuron", "data_seed", "lr"),
    ],
)
def test_any_knob_on_any_axis(model, x, y):
    spec = MapSpec(model=model, x=Axis(x, 0.1, 1.0, 3), y=Axis(y, 0.2, 0.9, 2), steps=10)
    m = ds.run_map(spec)
    assert m.outcome.shape == (2, 3) and m.outcome.all()


def test_params_cannot_be_changed_behind_validation():
    spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 3), params={"a": 2.0})
    with pytest.raises(TypeError):
        spec.params["bogus"] = 1


def test_knob_names_do_not_collide_with_stored_names():
    """Axis datasets are named after their knob, beside the field datasets."""
    from descentsim.fields import FIELDS

    for model in ds.MODELS.values():
        for knob in model.knobs:
            assert knob.name not in FIELDS


def test_toml_round_trip_of_the_example():
    spec = MapSpec.from_toml(Path(__file__).resolve().parent.parent / "examples" / "relu_neuron.toml")
    assert MapSpec.from_toml_text(spec.to_toml()) == spec


def test_malformed_toml(tmp_path):
    (tmp_path / "bad.toml").write_text("model = 'quadratic'\n[x\n")
    with pytest.raises(ds.SpecError, match="is not valid TOML"):
        MapSpec.from_toml(tmp_path / "bad.toml")


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).filter(lambda v: abs(v) > 1e-6)


@st.composite
def specs(draw):
    start, stop = draw(finite), draw(finite)
    scale = draw(st.sampled_from(["linear", "log"]))
    if scale == "log" and start * stop <= 0:
        stop = -stop
    x = Axis("w0", start, stop, draw(st.integers(1, 4096)), scale)
    y = draw(st.none() | st.builds(lambda a, n: Axis("lr", abs(a), abs(a) + 1.0, n), finite, st.integers(1, 64)))
    return MapSpec(
        model="quadratic",
        x=x,
        y=y,
        steps=draw(st.integers(1, 10**6)),
        params=draw(st.fixed_dictionaries({}, optional={"a": st.floats(0, 1e6)})),
        dtype=draw(st.sampled_from(["float32", "float64"])),
        arithmetic=draw(st.sampled_from(["exact", "fast"])),
        thresholds=draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "converge_loss": st.floats(0, 1),
                    "stuck_window": st.integers(1, 1000),
                    "cycle_tol": st.floats(0, 1),
                },
            )
        ),
    )


@settings(max_examples=200, deadline=None)
@given(specs())
def test_toml_round_trip_property(spec):
    assert MapSpec.from_toml_text(spec.to_toml()) == spec


def test_switch_knobs_take_true_and_false():
    """Whole-number knobs from 0 to 1 are switches: TOML's true/false work (batch_per_point, standardize)."""
    spec = ds.MapSpec.from_toml_text('model = "relu-neuron"\nsteps = 5\n[x]\nname = "lr"\nstart = 0.1\nstop = 1.0\n'
                                     'n = 2\n[params]\nbatch_size = 4\nbatch_per_point = true\n')
    assert spec.knobs["batch_per_point"].coerce(True) == 1 and spec.knobs["batch_per_point"].coerce(False) == 0
    assert ds.MapSpec.from_toml_text(spec.to_toml()) == spec
    with pytest.raises(ds.SpecError, match="must be a number, got True"):
        spec.knobs["samples"].coerce(True)  # not a switch
    from descentsim.datasets import load_data

    assert load_data({"data": "xor", "standardize": True}).X.mean(axis=0) == pytest.approx([0, 0], abs=1e-12)
