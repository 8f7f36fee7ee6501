"""Labels that survive a longer run: no CONVERGED while the learning rate can still rise, no DIVERGED
by the bound while it can still fall, and every rule judged on the full-data loss under minibatches."""

import numpy as np
import pytest
from helpers import assert_same_fields, run_both

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.optimizers import schedule_factors
from descentsim.outcome import decision_steps


def factors(steps, **knobs):
    spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 0.1, 1), steps=steps, params=knobs)
    return schedule_factors(spec.point_values(np.zeros(1, int), np.zeros(1, int)), steps)


@pytest.mark.parametrize("knobs, steps, expected", [
    ({}, 50, (0, 0)),                                                          # constant
    ({"warmup_steps": 100}, 2000, (100, 0)),                                   # rises until the warm-up ends
    ({"schedule": "step", "decay_steps": 30}, 100, (0, 91)),                   # falls at 30, 60, 90
    ({"schedule": "exponential", "decay_steps": 10}, 40, (0, 40)),             # falls to the very end
    ({"schedule": "cosine", "decay_steps": 20, "warmup_steps": 5}, 60, (5, 21)),  # floor from step 20 on
    ({"warmup_steps": 1}, 10, (0, 0)),                                         # a warm-up of one step is none
])
def test_decision_steps_follow_the_schedule(knobs, steps, expected):
    assert decision_steps(factors(steps, **knobs), steps) == expected


def test_warm_up_cannot_hide_a_divergence(dtype):
    """The issue's reproduction: uv, lr 8, warm-up over 100 steps. Once labelled converged at step 6
    (effective rate 0.56); run on, it diverges at step 33 — now in both engines."""
    spec = MapSpec(model="uv", x=Axis("lr", 8.0, 8.0, 1), steps=2000, params={"m": 256, "warmup_steps": 100},
                   dtype=dtype)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert compiled.outcome[0, 0] == Outcome.DIVERGED
    off = spec.replace(thresholds={"converge_loss": 1e-300})  # early stopping switched off: the truth
    assert ds.run_map(off).fields["steps"][0, 0] == compiled.fields["steps"][0, 0]


def test_lr_by_warm_up_map_converges_only_after_the_warm_up():
    spec = MapSpec(model="uv", x=Axis("lr", 0.5, 8.0, 16), y=Axis("warmup_steps", 0, 200, 3), steps=2000,
                   params={"m": 256})
    reference, compiled = run_both(spec.replace(steps=300, x=Axis("lr", 0.5, 8.0, 4)))
    assert_same_fields(reference, compiled)
    m = ds.run_map(spec)
    converged = m.outcome == Outcome.CONVERGED
    warmup = np.broadcast_to(m.y[:, None], m.shape)
    assert (m.fields["steps"][converged] >= warmup[converged]).all()
    row = m.outcome[1]  # warm-up 100: lr >= 3 diverges, as without a warm-up
    assert (row[m.x >= 3.0] == Outcome.DIVERGED).all() and (row[m.x <= 1.5] == Outcome.CONVERGED).all()


def test_a_decaying_rate_can_bring_a_run_back(dtype):
    """Quadratic a = 1, lr 3 (above 2/a): |w| doubles each step until the step schedule cuts the rate to
    0.6 at t = 30, then shrinks by 0.4 a step. The loss passes 10⁶·L_0 at step 10 (once labelled
    diverged there); the run converges, at the step the recurrence gives (the loss falls from there on, so
    the window confirms it converge_window − 1 steps later)."""
    params = {"schedule": "step", "decay_rate": 0.2, "decay_steps": 30}
    spec = MapSpec(model="quadratic", x=Axis("lr", 3.0, 3.0, 1), steps=120, params=params, dtype=dtype)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    assert compiled.outcome[0, 0] == Outcome.CONVERGED
    if dtype == "float64":
        w, lr, t = 1.0, 3.0, 0
        rates = lr * factors(spec.steps, **params)
        while 0.5 * w * w > 1e-8:
            w = w - rates[t] * w
            t += 1
        assert compiled.fields["steps"][0, 0] == t + spec.thresholds.converge_window - 1 and t > 30


def test_non_finite_loss_is_final_at_once():
    """A loss that overflows cannot come back, whatever the schedule still holds."""
    spec = MapSpec(model="quadratic", x=Axis("lr", 3.0, 3.0, 1), steps=5000, dtype="float32",
                   params={"schedule": "exponential", "decay_rate": 0.5, "decay_steps": 1000})
    m = ds.run_map(spec)
    assert m.outcome[0, 0] == Outcome.DIVERGED and m.fields["steps"][0, 0] < 200
    assert not np.isfinite(m.fields["final_loss"][0, 0])


def test_momentum_warm_up_classifier_is_never_converged_mid_warm_up():
    """softmax-mlp, momentum, warm-up of 600 steps: a run once stopped as converged at step 391 of the
    warm-up now runs on to its end."""
    spec = MapSpec(model="softmax-mlp", optimizer="momentum", x=Axis("lr", 0.05, 0.8, 4, "log"), steps=800,
                   params={"warmup_steps": 600, "classes": 3, "per_class": 10, "d": 4, "width1": 6, "width2": 5})
    m = ds.run_map(spec)
    converged = m.outcome == Outcome.CONVERGED
    assert (m.fields["steps"][converged] >= 600).all()
    assert (m.fields["accuracy"][converged] == 1).all()


CLASSIFIER = MapSpec(model="softmax-mlp", optimizer="momentum", x=Axis("lr", 0.01, 1.0, 8, "log"),
                     y=Axis("init_scale", 0.5, 2.0, 3), steps=400,
                     params={"classes": 10, "per_class": 8, "d": 10, "width1": 16, "width2": 12, "batch_size": 8,
                             "momentum": 0.9, "separation": 2.0})


def test_converged_classifiers_classify_every_training_point(dtype):
    """Judged on the full-data loss (ℓ ≤ 10⁻³ on average over the data), a converged network classifies
    every training input right; a collapsed one (one class for every input) is never converged."""
    reference, compiled = run_both(CLASSIFIER.replace(dtype=dtype, steps=60), threads=2)
    assert_same_fields(reference, compiled)
    m = ds.run_map(CLASSIFIER.replace(dtype=dtype))
    converged = m.outcome == Outcome.CONVERGED
    assert converged.any()
    assert (m.fields["accuracy"][converged] == 1).all()
    assert not (converged & (m.fields["collapsed"] == 1)).any()
    assert (m.fields["final_loss"][converged] <= 1e-3).all()
    # the gradient's minibatch loss is kept beside the full-data loss, and differs from it
    assert (m.fields["batch_loss"] != m.fields["final_loss"]).any()


def test_eval_samples_judges_the_first_samples(dtype):
    spec = MapSpec(model="relu-neuron", x=Axis("lr", 0.05, 2.0, 6, "log"), y=Axis("w0", -2.0, 2.0, 3), steps=200,
                   params={"samples": 64, "batch_size": 4, "eval_samples": 16}, dtype=dtype)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    every = ds.run_map(spec.replace(params={**spec.params, "eval_samples": 0}))
    assert not np.array_equal(every.fields["final_loss"], compiled.fields["final_loss"])
    beyond = ds.run_map(spec.replace(params={**spec.params, "eval_samples": 1000}))  # more than there are: all
    assert_same_fields(beyond, every)


def test_classes_predicted_counts_what_collapsed_misses(dtype):
    spec = MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-3, 3.0, 8, "log"), steps=150,
                   params={"batch_size": 16, "classes": 6, "per_class": 10, "d": 5, "width1": 8, "width2": 6},
                   dtype=dtype)
    reference, compiled = run_both(spec)
    assert_same_fields(reference, compiled)
    classes, collapsed = compiled.fields["classes_predicted"], compiled.fields["collapsed"]
    assert ((classes == 1) == (collapsed == 1)).all()
    assert ((classes >= 1) & (classes <= 6)).all()
    other = ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 1.0, 2)))
    assert (other.fields["classes_predicted"] == -1).all()
