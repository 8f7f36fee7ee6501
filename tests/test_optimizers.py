"""Optimisers and learning-rate schedules: first steps by hand, and the engines against each other."""

import math
import re

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec
from descentsim import optimizers
from descentsim.optimizers import OPTIMIZERS, schedule_factors


def quadratic_after(steps, optimizer="gd", **params):
    """L after ``steps`` updates of the quadratic (a = 1, w0 = 1) from a one-point map."""
    spec = MapSpec(
        model="quadratic",
        x=Axis("lr", params.pop("lr", 0.1), params.pop("lr_", 0.1), 1),
        steps=steps,
        optimizer=optimizer,
        params=params,
        thresholds={"converge_loss": 0.0},
    )
    results = [ds.run_map(spec, backend=b).fields["final_loss"][0, 0] for b in ("cython", "numpy")]
    assert results[0] == results[1]
    return results[0]


def test_momentum_first_steps_by_hand():
    w, v = 1.0, 0.0
    for _ in range(3):
        v = 0.9 * v + w  # g = a·w with a = 1
        w = w - 0.1 * v
    assert quadratic_after(3, "momentum", momentum=0.9) == pytest.approx(0.5 * w * w, rel=1e-14)
    assert w == pytest.approx(0.9 - 0.1 * 1.8 - 0.1 * (0.9 * 1.8 + 0.72))


def test_nesterov_first_steps_by_hand():
    w, v = 1.0, 0.0
    for _ in range(3):
        v = 0.9 * v + w
        w = w - 0.1 * (w + 0.9 * v)
    assert quadratic_after(3, "nesterov", momentum=0.9) == pytest.approx(0.5 * w * w, rel=1e-14)


def adam_by_hand(steps, decoupled_decay=0.0):
    """w after ``steps`` Adam updates (lr 0.1, PyTorch's defaults) of ½w² from w = 1; AdamW's decay first."""
    w, m, v, c1, c2 = 1.0, 0.0, 0.0, 1.0, 1.0
    for _ in range(steps):
        g = w
        w = w * (1 - 0.1 * decoupled_decay)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        c1, c2 = c1 * 0.9, c2 * 0.999
        w = w - 0.1 * (m / (1 - c1)) / (math.sqrt(v / (1 - c2)) + 1e-8)
    return w


def test_adam_first_steps_by_hand():
    w = adam_by_hand(4)
    assert quadratic_after(4, "adam") == pytest.approx(0.5 * w * w, rel=1e-12)
    # the first Adam step moves every parameter by about lr, whatever its gradient's size
    assert quadratic_after(1, "adam", lr=0.25, lr_=0.25) == pytest.approx(0.5 * 0.75**2, rel=1e-7)


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (dict(schedule="step", decay_rate=0.5, decay_steps=2), [1, 1, 0.5, 0.5, 0.25]),
        (dict(schedule="exponential", decay_rate=0.25, decay_steps=2), [1, 0.5, 0.25, 0.125, 0.0625]),
        (dict(schedule="cosine", decay_steps=4, lr_min_ratio=0.2), [1, 0.2 + 0.8 * (1 + 0.5**0.5) / 2, 0.6,
                                                                      0.2 + 0.8 * (1 - 0.5**0.5) / 2, 0.2]),
        (dict(schedule="constant", warmup_steps=4), [0.25, 0.5, 0.75, 1, 1]),
    ],
)
def test_schedule_factors(schedule, expected):
    values = {"schedule": "constant", "decay_rate": 0.1, "decay_steps": 100, "lr_min_ratio": 0.0, "warmup_steps": 0}
    np.testing.assert_allclose(schedule_factors({**values, **schedule}, 5), expected, rtol=1e-15)


def test_step_schedule_on_the_quadratic():
    """lr_t = lr·0.5^t: w_{t+1} = (1 − lr_t)·w_t exactly."""
    w = 1.0
    for t in range(6):
        w = w - (0.8 * 0.5**t) * w
    got = quadratic_after(6, lr=0.8, lr_=0.8, schedule="step", decay_rate=0.5, decay_steps=1)
    assert got == pytest.approx(0.5 * w * w, rel=1e-14)


MODELS = {
    "quadratic": MapSpec(model="quadratic", x=Axis("lr", 0.05, 2.5, 13), y=Axis("a", 0.5, 2.0, 5), steps=200),
    "double-well": MapSpec(model="double-well", x=Axis("lr", 0.05, 1.5, 13), y=Axis("w0", -2.0, 2.0, 7), steps=200),
    "uv": MapSpec(model="uv", x=Axis("lr", 0.05, 2.0, 9), y=Axis("init_scale", 0.5, 1.5, 3), steps=150,
                  params={"m": 16}),
    "relu-neuron": MapSpec(model="relu-neuron", x=Axis("lr", 0.01, 5.0, 11, "log"), y=Axis("w0", -2.0, 2.0, 7),
                           steps=200, params={"trainable": "wbac", "samples": 24}),
    "mlp": MapSpec(model="mlp", x=Axis("lr", 0.05, 5.0, 7, "log"), y=Axis("init_scale", 0.5, 1.5, 3), steps=60,
                   params={"width": 3, "d": 2, "n_data": 5}),
    "softmax-mlp": MapSpec(model="softmax-mlp", x=Axis("lr", 0.01, 3.0, 7, "log"), y=Axis("init_scale", 0.5, 2, 2),
                           steps=40, params={"classes": 3, "d": 2, "per_class": 3, "width1": 4, "width2": 3,
                                             "batch_size": 4}),
}
OPTIMIZER_SETTINGS = {
    "momentum": {"momentum": 0.8},
    "nesterov": {"momentum": 0.7},
    "adam": {"beta1": 0.85, "beta2": 0.99},
    "adamw": {"beta1": 0.85, "weight_decay": 0.05},
    "rmsprop": {"alpha": 0.9},
    "gd-decay": {"weight_decay": 0.02},
    "momentum-decay": {"momentum": 0.8, "weight_decay": 0.01},
    "adam-decay": {"weight_decay": 0.03},
    "rmsprop-decay": {"weight_decay": 0.01},
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZER_SETTINGS))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_cython_matches_reference_for_every_model_and_optimizer(model, optimizer, dtype):
    base = MODELS[model]
    spec = base.replace(optimizer=optimizer.split("-")[0], params={**base.params, **OPTIMIZER_SETTINGS[optimizer]},
                        dtype=dtype)
    assert_same_fields(*run_both(spec))


def test_rmsprop_first_steps_by_hand():
    w, v = 1.0, 0.0
    for _ in range(4):
        g = w
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.05 * g / (math.sqrt(v) + 1e-8)
    assert quadratic_after(4, "rmsprop", lr=0.05, lr_=0.05, alpha=0.9) == pytest.approx(0.5 * w * w, rel=1e-12)


def test_weight_decay_first_steps_by_hand():
    """L2 decay: g ← g + λ·w, so gradient descent on ½w² multiplies w by 1 − lr·(1 + λ) each step."""
    w = 1.0
    for _ in range(5):
        w = w - 0.1 * (w + 0.5 * w)
    assert quadratic_after(5, "gd", weight_decay=0.5) == pytest.approx(0.5 * w * w, rel=1e-14)


def test_adamw_decays_before_the_adam_step():
    """PyTorch's AdamW: θ ← θ·(1 − lr·λ), then Adam's update with the plain gradient."""
    w = adam_by_hand(4, decoupled_decay=0.2)
    assert quadratic_after(4, "adamw", weight_decay=0.2) == pytest.approx(0.5 * w * w, rel=1e-12)


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "nesterov", "adam", "rmsprop"])
def test_no_weight_decay_keeps_the_bits(optimizer, dtype, monkeypatch):
    """Without weight decay (λ = 0) every optimiser is as it was: the compiled engine gives the bits of the
    reference with the decay taken out altogether (a kernel reading λ from the wrong column fails here)."""
    spec = MODELS["relu-neuron"].replace(optimizer=optimizer, dtype=dtype)
    compiled = ds.run_map(spec, backend="cython")
    monkeypatch.setattr(optimizers, "l2_decayed", lambda optimizer, theta, grad, hyper: grad)
    assert_same_fields(ds.run_map(spec, backend="numpy"), compiled)


@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule": "step", "decay_rate": 0.5, "decay_steps": 17},
        {"schedule": "cosine", "decay_steps": 80, "lr_min_ratio": 0.1, "warmup_steps": 10},
        {"schedule": "exponential", "decay_rate": 0.3, "decay_steps": 50},
    ],
)
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_cython_matches_reference_with_schedules(optimizer, schedule, dtype):
    base = MODELS["relu-neuron"]
    spec = base.replace(optimizer=optimizer, params={**base.params, **schedule}, dtype=dtype)
    assert_same_fields(*run_both(spec))


def test_schedule_knob_on_an_axis():
    """decay_rate swept: every column has its own schedule table (points are grouped by it)."""
    spec = MapSpec(model="quadratic", x=Axis("decay_rate", 0.1, 0.9, 5), y=Axis("lr", 0.5, 2.5, 4), steps=60,
                   optimizer="momentum", params={"schedule": "exponential", "decay_steps": 10})
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert len(np.unique(reference.fields["final_loss"])) > 10


def test_optimizer_knobs_are_validated():
    with pytest.raises(ds.SpecError, match="'schedule' must be one of constant, step, exponential, cosine"):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2), params={"schedule": "linear"})
    with pytest.raises(ds.SpecError, match="'beta2' must be < 1, got 1.5"):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2), optimizer="adam", params={"beta2": 1.5})


@pytest.mark.parametrize("optimizer, knob, owners", [
    ("gd", "momentum", '"momentum" or "nesterov"'), ("adam", "momentum", '"momentum" or "nesterov"'),
    ("gd", "beta1", '"adam" or "adamw"'), ("momentum", "beta2", '"adam" or "adamw"'),
    ("nesterov", "eps", '"adam", "adamw" or "rmsprop"'), ("adam", "alpha", '"rmsprop"'),
])
def test_knob_of_another_optimizer_names_it(optimizer, knob, owners):
    """In params and on an axis: one line saying whose knob it is and which optimizer to set."""
    told = re.escape(f'knob {knob!r} belongs to optimizer {owners}, not "{optimizer}"; set optimizer = '
                     f'"{owners.split(chr(34))[1]}" to use it')
    with pytest.raises(ds.SpecError, match=told):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2), optimizer=optimizer, params={knob: 0.5})
    with pytest.raises(ds.SpecError, match=told.replace(re.escape(f"{knob!r}"), re.escape(f"{knob!r} on an axis"))):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2), y=Axis(knob, 0.1, 0.5, 2), optimizer=optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("value", [0.0, -0.1])
def test_a_learning_rate_of_zero_or_less_is_refused(optimizer, value):
    """Fixed, or anywhere on an axis: at lr <= 0 nothing descends, so there is no map to draw."""
    reason = re.escape("(a learning rate of 0 never moves and a negative one climbs the loss)")
    with pytest.raises(ds.SpecError, match=f"knob 'lr' must be > 0, got {value:g} {reason}$"):
        MapSpec(model="quadratic", x=Axis("w0", 0.1, 1.0, 2), optimizer=optimizer, params={"lr": value})
    with pytest.raises(ds.SpecError, match=f"knob 'lr' must be > 0, got {value:g} {reason}; change the bounds of "
                                           rf"axis y \({value:g} to 2\)"):
        MapSpec(model="quadratic", x=Axis("w0", 0.1, 1.0, 2), y=Axis("lr", value, 2.0, 5), optimizer=optimizer)
    MapSpec(model="quadratic", x=Axis("w0", 0.1, 1.0, 2), y=Axis("lr", 1e-300, 2.0, 5), optimizer=optimizer)


@pytest.mark.parametrize("params, message", [
    ({"optimizer": "adam", "params": {"beta1": 1.0}}, "'beta1' must be < 1, got 1 (at 1 the moment never moves"),
    ({"optimizer": "adam", "params": {"beta2": 1.0}}, "'beta2' must be < 1, got 1"),
    ({"optimizer": "adam", "params": {"eps": 0.0}}, "'eps' must be > 0, got 0 (at 0 a vanishing gradient gives 0/0)"),
    ({"params": {"schedule": "step", "decay_rate": 0.0}}, "'decay_rate' must be > 0, got 0 (a rate of 0 stops"),
    ({"optimizer": "adam", "y": Axis("beta1", 0.5, 1.0, 3)},
     "'beta1' must be < 1, got 1 (at 1 the moment never moves and its bias correction divides 0 by 0); "
     "change the bounds of axis y (0.5 to 1)"),
])
def test_settings_that_would_stop_or_break_every_step_are_refused(params, message):
    """Each of these would make every point stuck (no step) or NaN (0/0, labelled diverged): not a map."""
    with pytest.raises(ds.SpecError, match=re.escape(message)):
        MapSpec(**{"model": "quadratic", "x": Axis("lr", 0.1, 1.0, 2), **params})
