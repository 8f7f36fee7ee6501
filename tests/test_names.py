"""Every unknown name a user can type is refused with the valid ones, and a close one is suggested."""

import numpy as np
import pytest

import descentsim as ds
from descentsim import boundary, plot
from descentsim.backends import get_backend
from descentsim.models import get_model
from descentsim.optimizers import get_optimizer
from descentsim.runner import run_points

SPEC = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.5, 1.0, 3), y=ds.Axis("a", 1.0, 2.0, 2), steps=5)
MAP = ds.run_map(SPEC)

TYPOS = {
    "model": (lambda: get_model("relu_neuron"), "unknown model 'relu_neuron' (did you mean 'relu-neuron'?); valid models:"),
    "optimizer": (lambda: get_optimizer("adma"), "unknown optimizer 'adma' (did you mean 'adam'?); valid"),
    "backend": (lambda: get_backend("cyton"), "unknown backend 'cyton' (did you mean 'cython'?); valid"),
    "knob in params": (lambda: SPEC.replace(params={"w00": 1.0}),
                       "unknown knob 'w00' for model 'quadratic' (did you mean 'w0'?); valid knobs:"),
    "knob on an axis": (lambda: SPEC.replace(y=ds.Axis("aa", 1.0, 2.0, 2)),
                        "unknown knob 'aa' on an axis for model 'quadratic' (did you mean 'a'?)"),
    "spec setting in params": (lambda: SPEC.replace(params={"steps": 5}),
                               "'steps' is a setting of the map, not a knob"),
    "setting": (lambda: ds.MapSpec.from_dict({**SPEC.to_dict(), "optimiser": "gd"}),
                "unknown setting 'optimiser' (did you mean 'optimizer'?); valid settings:"),
    "axis key": (lambda: ds.MapSpec.from_dict({**SPEC.to_dict(), "x": {**SPEC.x.to_dict(), "nn": 3}}),
                 "axis x: unknown key 'nn' (did you mean 'n'?)"),
    "threshold": (lambda: ds.Thresholds.from_dict({"stuck_toll": 1e-6}),
                  "unknown threshold 'stuck_toll' (did you mean 'stuck_tol'?)"),
    "knob of a map": (lambda: MAP.knob("lr0"), "unknown knob 'lr0' (did you mean 'lr'?)"),
    "knob in overrides": (lambda: run_points(SPEC, [0], [0], overrides={"a0": [1.0]}),
                          "unknown knob 'a0' in overrides (did you mean 'a'?)"),
    "field": (lambda: plot.check_field("final_los", refined=False), "unknown field 'final_los' (did you mean"),
    "outcome": (lambda: boundary.side(MAP, "convergd"), "unknown outcome 'convergd' (did you mean 'converged'?)"),
    "method": (lambda: MAP.fractal_dimension(method="least_squares"),
               "unknown method 'least_squares' for fractal_dimension (did you mean 'least-squares'?)"),
}


@pytest.mark.parametrize("case", TYPOS)
def test_a_typo_is_refused_with_the_close_name(case):
    call, message = TYPOS[case]
    with pytest.raises(ds.SpecError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_no_suggestion_for_a_name_like_none():
    with pytest.raises(ds.SpecError, match=r"^unknown model 'transformer'; valid models: quadratic"):
        get_model("transformer")
    assert np.all(MAP.knob("a")[1] == 2.0)
