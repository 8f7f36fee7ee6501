"""CONVERGED only after converge_window steps in a row at or below the level: a run that passes a
repelling minimum in a chaotic band, or a heavy ball rolling through the minimum, is not converged."""

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.optimizers import schedule_factors
from descentsim.outcome import decision_steps

LEVEL = 1e-8  # the scalar models' converge_loss
WINDOW = ds.Thresholds().converge_window

#: the relu-neuron of examples/relu_neuron.toml (64 samples, w trained; curvature m₊ = 0.480 for w > 0)
RELU = {"trainable": "w", "samples": 64, "data_seed": 0}

CHAOTIC = {
    "relu-neuron": MapSpec(model="relu-neuron", x=Axis("lr", 4.2, 7.0, 23), y=Axis("w0", -3.0, 3.0, 17), steps=300,
                           params=RELU),
    "double-well": MapSpec(model="double-well", x=Axis("lr", 1.3, 1.6, 23), y=Axis("w0", -2.0, 2.0, 17), steps=300),
    "double-well-momentum": MapSpec(model="double-well", optimizer="momentum", x=Axis("lr", 0.05, 1.9, 23),
                                    y=Axis("w0", -2.0, 2.0, 17), steps=300, params={"momentum": 0.95}),
}


def point(model: str, lr: float, steps: int, window: int | None = None, dtype: str = "float64", **params) -> MapSpec:
    """A one-point map; window None leaves the default."""
    return MapSpec(model=model, x=Axis("lr", lr, lr, 1), steps=steps, params=params, dtype=dtype,
                   thresholds={} if window is None else {"converge_window": window})


def continued(spec: MapSpec, factor: int = 10) -> np.ndarray:
    """L_t of the one-point map's trajectory run on for factor × its budget with early stopping off."""
    return ds.trajectories(spec.replace(steps=factor * spec.steps, thresholds={"converge_loss": 0.0}), [0], [0]).loss[0]


def first_converging_step(spec: MapSpec) -> int:
    """converge_from of a map whose schedule is the same at every point."""
    factors = schedule_factors(spec.point_values(np.zeros(1, int), np.zeros(1, int)), spec.steps)
    return decision_steps(factors, spec.steps)[0]


def confirming_step(loss: np.ndarray, window: int, start: int = 0) -> int:
    """The window rule written out: the first t with L_u <= LEVEL for u = t − window + 1 .. t, all u >= start."""
    below = 0
    for t, value in enumerate(loss):
        below = below + 1 if value <= LEVEL and t >= start else 0
        if below >= window:
            return t
    return -1


@pytest.mark.parametrize("name", CHAOTIC)
@pytest.mark.parametrize("window", [1, 5, None])
def test_engines_agree_on_chaotic_maps(name, window, dtype):
    spec = CHAOTIC[name].replace(dtype=dtype)
    if window is not None:
        spec = spec.replace(thresholds={"converge_window": window})
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)


def test_chaotic_maps_have_runs_the_window_takes_back():
    """The maps above are worth comparing: a window of 1 calls runs converged that the default does not."""
    for name in ("relu-neuron", "double-well", "double-well-momentum"):
        spec = CHAOTIC[name]
        single = ds.run_map(spec.replace(thresholds={"converge_window": 1}))
        confirmed = ds.run_map(spec)
        taken_back = (single.outcome == Outcome.CONVERGED) & (confirmed.outcome != Outcome.CONVERGED)
        later = (single.outcome == Outcome.CONVERGED) & (confirmed.fields["steps"] > single.fields["steps"] + WINDOW - 1)
        assert taken_back.any() or later.any(), name


@st.composite
def window_specs(draw):
    """Specs where the window matters: chaotic and heavy-ball dynamics, schedules (converge_from), short budgets."""
    model = draw(st.sampled_from(["quadratic", "double-well", "relu-neuron"]))
    optimizer = draw(st.sampled_from(["gd", "momentum", "nesterov"]))
    params = {"warmup_steps": draw(st.integers(0, 30)),
              "schedule": draw(st.sampled_from(["constant", "step", "cosine"]))}
    if optimizer != "gd":
        params["momentum"] = draw(st.floats(0.5, 0.99))
    lr_top = {"quadratic": 2.5, "double-well": 1.7, "relu-neuron": 7.0}[model]
    return MapSpec(
        model=model, optimizer=optimizer, params=params,
        x=Axis("lr", draw(st.floats(0.05, 1.0)), lr_top, draw(st.integers(1, 11))),
        y=Axis("w0", -2.0, draw(st.floats(0.0, 2.5)), draw(st.integers(1, 7))),
        steps=draw(st.integers(1, 250)),
        dtype=draw(st.sampled_from(["float32", "float64"])),
        thresholds={"converge_window": draw(st.integers(1, 40))},
    )


@settings(max_examples=30, deadline=None)
@given(window_specs(), st.integers(1, 3))
def test_engines_agree_with_the_window_on_random_specs(spec, threads):
    reference, compiled = run_both(spec, threads=threads)
    assert_same_fields(reference, compiled)


@pytest.mark.parametrize("model, lr, w0, single_step, dtype", [
    # lr·m₊ = 2.76: w = 1 repels by |1 − 2.76| = 1.76 a step; both precisions pass it at step 7
    ("relu-neuron", 5.75, 2.0, 7, "float64"),
    ("relu-neuron", 5.75, 2.0, 7, "float32"),
    # lr·L'' = 2.98: w = ±1 repel by 1.98 a step (in float32 the chaotic trajectory takes another path)
    ("double-well", 1.49, 0.2, 169, "float64"),
])
def test_a_chaotic_run_passing_a_repelling_minimum_is_not_converged(model, lr, w0, single_step, dtype):
    params = {**RELU, "w0": w0} if model == "relu-neuron" else {"w0": w0}
    spec = point(model, lr, 400, dtype=dtype, **params)
    single = ds.run_map(point(model, lr, 400, window=1, dtype=dtype, **params))
    assert single.outcome[0, 0] == Outcome.CONVERGED and single.fields["steps"][0, 0] == single_step
    loss = continued(spec)
    assert loss[single_step] <= LEVEL
    assert (loss[single_step + 1:] > LEVEL).sum() > 0.9 * (loss.size - single_step - 1)  # it left, for good
    assert np.nanmax(loss[single_step + 1:]) > 1e-2
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert compiled.outcome[0, 0] != Outcome.CONVERGED
    assert compiled.outcome[0, 0] == Outcome.UNRESOLVED and compiled.fields["steps"][0, 0] == spec.steps


def test_a_heavy_ball_rolling_through_the_minimum_is_not_converged(dtype):
    """Quadratic a = 1, w0 = 1, lr 1, momentum 0.9: w₁ = 1 − 1·1 = 0 exactly, L₁ = 0, but the velocity is 1,
    so w₂ = −0.9 and L₂ = 0.405. The ball swings on, dipping below the level now and then from step 109;
    the window confirms it where the recurrence stays below for the whole window."""
    spec = MapSpec(model="quadratic", optimizer="momentum", x=Axis("lr", 1.0, 1.0, 1), steps=400,
                   params={"w0": 1.0, "momentum": 0.9}, dtype=dtype)
    single = ds.run_map(spec.replace(thresholds={"converge_window": 1}))
    assert single.outcome[0, 0] == Outcome.CONVERGED and single.fields["steps"][0, 0] == 1
    assert single.fields["final_loss"][0, 0] == 0
    loss = continued(spec)
    assert loss[1] == 0 and loss[2] == pytest.approx(0.405, rel=1e-6)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    decided = compiled.fields["steps"][0, 0]
    assert compiled.outcome[0, 0] == Outcome.CONVERGED
    assert decided == confirming_step(loss, WINDOW)
    assert not (loss[decided - WINDOW + 1:] > LEVEL).any()  # below from the window's start to 10× the budget
    assert (loss[2:decided - WINDOW + 1] > LEVEL).any()
    if dtype == "float64":  # the recurrence v ← 0.9·v + w, w ← w − v, L = ½·w², written out
        w, v, below, t = 1.0, 0.0, 0, 0
        while True:
            below = below + 1 if 0.5 * w * w <= LEVEL else 0
            if below == WINDOW:
                break
            v = 0.9 * v + w
            w = w - v
            t += 1
        assert decided == t


@pytest.mark.parametrize("window", [1, 2, 7, None])
def test_monotone_run_is_confirmed_window_minus_one_steps_after_it_reaches_the_level(window):
    """Quadratic lr 0.5: L_t = ½·0.25^t falls for ever, so the window ends window − 1 steps after the first
    L_t <= 10⁻⁸ (t = 13); a budget one step shorter leaves it still moving: unresolved."""
    reached = int(np.ceil(np.log(2 * LEVEL) / np.log(0.25)))
    w = WINDOW if window is None else window
    reference, compiled = run_both(point("quadratic", 0.5, reached + w - 1, window, w0=1.0))
    assert_same_fields(reference, compiled)
    assert compiled.outcome[0, 0] == Outcome.CONVERGED and compiled.fields["steps"][0, 0] == reached + w - 1
    assert compiled.fields["final_loss"][0, 0] == 0.5 * 0.25 ** (reached + w - 1)
    short = run_both(point("quadratic", 0.5, reached + w - 2, window, w0=1.0))[1] if reached + w - 2 >= 1 else None
    if short is not None:
        assert short.outcome[0, 0] == Outcome.UNRESOLVED


@pytest.mark.parametrize("warmup", [10, 100])
def test_window_counts_from_converge_from(warmup):
    """Under a warm-up a run below the level from t = 0 is confirmed at converge_from + window − 1."""
    spec = point("quadratic", 0.5, 400, w0=1e-6, warmup_steps=warmup)
    converge_from = first_converging_step(spec)
    assert converge_from == warmup
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert compiled.outcome[0, 0] == Outcome.CONVERGED
    assert compiled.fields["steps"][0, 0] == converge_from + WINDOW - 1
    loss = continued(spec, 1)
    assert compiled.fields["steps"][0, 0] == confirming_step(loss, WINDOW, converge_from)


def test_window_one_is_the_single_step_rule(dtype):
    """With converge_window = 1 a run is converged at the first t >= converge_from with L_t <= level, as before
    the window existed; the other rules are untouched, so every field is what the single-step rule gives."""
    spec = CHAOTIC["relu-neuron"].replace(dtype=dtype, thresholds={"converge_window": 1},
                                          params={**RELU, "warmup_steps": 20})
    reference, m = run_both(spec)
    assert_same_fields(reference, m)
    converge_from = first_converging_step(spec)
    assert converge_from == 20
    curves = ds.trajectories(spec.replace(thresholds={"converge_loss": 0.0}), *np.indices(m.shape).reshape(2, -1),
                             theta=False)
    first = np.array([confirming_step(loss, 1, converge_from) for loss in curves.loss]).reshape(m.shape)
    converged = m.outcome == Outcome.CONVERGED
    assert converged.any() and (~converged).any()
    np.testing.assert_array_equal(m.fields["steps"][converged], first[converged])
    assert (first[~converged] == -1).all()
    # what the single-step rule gave for the chaotic relu-neuron run above (measured before the window existed)
    single = ds.run_map(point("relu-neuron", 5.75, 400, window=1, dtype=dtype, **RELU, w0=2.0))
    assert single.outcome[0, 0] == Outcome.CONVERGED and single.fields["steps"][0, 0] == 7


@pytest.mark.parametrize("value, message", [
    (0, "thresholds.converge_window must be from 1 to 2147483647, got 0"),
    (-3, "thresholds.converge_window must be from 1 to 2147483647, got -3"),
    (2**31, "thresholds.converge_window must be from 1 to 2147483647, got 2147483648"),
    (2.5, "thresholds.converge_window must be a whole number, got 2.5"),
    (True, "thresholds.converge_window must be a whole number, got True"),
    ("10", "thresholds.converge_window must be a whole number, got '10'"),
])
def test_converge_window_is_validated(value, message):
    with pytest.raises(ds.SpecError, match=message):
        ds.Thresholds(converge_window=value)
    with pytest.raises(ds.SpecError, match=message):
        MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 3), thresholds={"converge_window": value})


def test_converge_window_in_a_config():
    text = 'model = "quadratic"\nsteps = 50\n[x]\nname = "lr"\nstart = 0.1\nstop = 1.0\nn = 3\n'
    assert MapSpec.from_toml_text(text).thresholds.converge_window == WINDOW
    spec = MapSpec.from_toml_text(text + "[thresholds]\nconverge_window = 4\n")
    assert spec.thresholds.converge_window == 4
    assert MapSpec.from_toml_text(spec.to_toml()) == spec
    with pytest.raises(ds.SpecError, match="converge_window must be from 1"):
        MapSpec.from_toml_text(text + "[thresholds]\nconverge_window = 0\n")


def test_a_file_from_before_the_window_reads_as_window_one(tmp_path):
    """A stored spec that does not name converge_window was computed with the single-step rule."""
    spec = point("quadratic", 0.5, 50, window=1, w0=1.0)
    path = tmp_path / "old.h5"
    ds.run_map(spec).save(path)
    with h5py.File(path, "a") as f:
        text = str(f.attrs["spec"])
        assert "converge_window = 1" in text
        f.attrs["spec"] = text.replace("converge_window = 1\n", "")
        f.attrs["format_version"] = 2
    old = ds.open_map(path)
    assert old.spec.thresholds.converge_window == 1 and old.spec == spec
    ds.run_map(spec.replace(thresholds={})).save(path)
    assert ds.open_map(path).spec.thresholds.converge_window == WINDOW


def test_a_budget_too_short_to_converge_is_warned_about(tmp_path, capsys):
    from descentsim.cli import map_main
    from descentsim.runner import budget_warning

    short = MapSpec(model="quadratic", x=Axis("lr", 0.2, 1.0, 5), steps=20)
    assert "raise steps to 29 or lower thresholds.converge_window" in budget_warning(short)
    assert budget_warning(short.replace(steps=29)) is None
    warm = short.replace(steps=100, params={"warmup_steps": 90})
    assert "after step 90 (the warm-up)" in budget_warning(warm)
    assert budget_warning(short.replace(thresholds={"converge_loss": 0.0})) is None
    config = tmp_path / "q.toml"
    config.write_text(short.to_toml())
    assert map_main([str(config), "-o", str(tmp_path / "q.h5")]) == 0
    assert "warning: no run can be called converged" in capsys.readouterr().err
