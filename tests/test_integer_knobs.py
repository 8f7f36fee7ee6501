"""Integer and shape knobs on an axis: ``descentsim.problem`` and a map give, at every grid point, what the
spec with that knob fixed at the point's value gives; with the newest NumPy and with the oldest the package
allows (the slow test builds a virtual environment with it and runs this file there)."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import descentsim as ds

#: Small settings for the models whose defaults are big, so that every case is a tiny map.
SMALL = {
    "mlp": {"width": 3, "depth": 2},
    "uv": {"m": 4},
    "softmax-mlp": {"d": 2, "width1": 3, "width2": 3, "classes": 3, "per_class": 2},
    "relu-neuron": {"samples": 6},
    "network": {"widths": "3", "data": "xor", "samples": 4},
}
#: The two values each knob is swept over: whole numbers for integer knobs (a seed far from 0, to show that
#: it is not cut short), and the settings it needs to mean anything.
SWEEPS = {
    "width": (2, 3), "d": (2, 3), "n_data": (3, 4), "depth": (2, 3), "seed": (2**40, 2**40 + 1),
    "m": (2, 3), "classes": (2, 3), "per_class": (2, 3), "width1": (2, 4), "width2": (2, 4),
    "separation": (0.5, 1.5), "cluster_std": (0.5, 1.5), "samples": (4, 5), "data_seed": (2**40, 2**40 + 1),
    "bias": (0, 1), "features": (2, 3), "noise": (0.0, 0.1), "input_low": (0.0, 0.5), "input_high": (1.0, 2.0),
    "slope": (1.0, 2.0), "intercept": (0.0, 1.0), "inner_radius": (0.5, 0.6), "teacher_width": (2, 3),
    "standardize": (0, 1), "train_samples": (3, 4),
}
#: The optimisers' integer and shape knobs, swept on a model with data, with what they need.
OPTIMIZER_SWEEPS = {
    "batch_size": ((2, 3), {}),
    "batch_seed": ((2**40, 2**40 + 1), {"batch_size": 2}),
    "batch_per_point": ((0, 1), {"batch_size": 2}),
    "eval_samples": ((2, 3), {"batch_size": 2}),
    "warmup_steps": ((1, 2), {}),
    "decay_steps": ((1, 2), {"schedule": "step"}),
    "decay_rate": ((0.5, 0.9), {"schedule": "exponential"}),
    "lr_min_ratio": ((0.1, 0.2), {"schedule": "cosine"}),
}


def _cases():
    """(model, knob, (start, stop), fixed params) for every integer or shape knob of every model (a knob added
    later without a sweep in SWEEPS stops the collection with a KeyError), and the optimisers' on the
    relu-neuron."""
    for name, model in ds.MODELS.items():
        for knob in model.knobs:
            if knob.sweepable and (knob.kind is int or knob.name in model.shape_knobs):
                params = {k: v for k, v in SMALL.get(name, {}).items() if k != knob.name}
                yield pytest.param(name, knob.name, SWEEPS[knob.name], params, id=f"{name}-{knob.name}")
    for knob, (values, needs) in OPTIMIZER_SWEEPS.items():
        yield pytest.param("relu-neuron", knob, values, {**SMALL["relu-neuron"], **needs}, id=f"relu-neuron-{knob}")


CASES = list(_cases())


def swept_and_fixed(model: str, knob: str, values, params) -> tuple[ds.MapSpec, list[ds.MapSpec]]:
    """A one-row map sweeping ``knob`` over ``values``, and one map per value with the knob fixed there."""
    common = dict(model=model, steps=20, thresholds={"converge_window": 2})
    swept = ds.MapSpec(x=ds.Axis(knob, *values, 2), y=ds.Axis("lr", 0.05, 0.05, 1), params=params, **common)
    fixed = [ds.MapSpec(x=ds.Axis("lr", 0.05, 0.05, 1), params={**params, knob: value}, **common)
             for value in values]
    return swept, fixed


@pytest.mark.parametrize("model, knob, values, params", CASES)
def test_problem_at_a_point_of_an_axis(model, knob, values, params):
    swept, fixed = swept_and_fixed(model, knob, values, params)
    for ix, spec in enumerate(fixed):
        on_axis, alone = ds.problem(swept, 0, ix), ds.problem(spec, 0, 0)
        for part in ("theta0", "consts", "data", "trainable", "lr_scale"):
            np.testing.assert_array_equal(getattr(on_axis, part), getattr(alone, part), err_msg=part)
        assert (on_axis.batch, on_axis.eval_samples) == (alone.batch, alone.eval_samples)


@pytest.mark.parametrize("model, knob, values, params", CASES)
def test_map_with_the_knob_on_an_axis(model, knob, values, params):
    swept, fixed = swept_and_fixed(model, knob, values, params)
    on_axis = ds.run_map(swept)
    if knob == "batch_per_point":  # each point draws its own minibatches: only the first column is alike
        fixed = fixed[:1]
    for ix, spec in enumerate(fixed):
        alone = ds.run_map(spec)
        for name, values in alone.fields.items():
            np.testing.assert_array_equal(on_axis.fields[name][:, ix], values[:, 0], err_msg=name)


def test_problem_refuses_points_off_the_grid():
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1.0, 3), steps=10)
    with pytest.raises(ds.SpecError, match="grid indices must be"):
        ds.problem(spec, 0, 3)
    with pytest.raises(ds.SpecError, match="one grid point"):
        ds.problem(spec, [0, 0], [0, 1])


ROOT = Path(__file__).resolve().parents[1]


def oldest_numpy() -> str:
    """The oldest NumPy release series the package allows ("1.25" for numpy>=1.25), from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        requirements = tomllib.load(f)["project"]["dependencies"]
    numpy_floor = next(r for r in requirements if r.replace(" ", "").startswith("numpy>="))
    return numpy_floor.replace(" ", "").removeprefix("numpy>=")


@pytest.mark.slow
def test_with_the_oldest_numpy_allowed(tmp_path):
    """This file (but this test) and the damaged-file checks pass in a virtual environment with the oldest
    NumPy that pyproject.toml allows, the project built there; skipped, saying why, where the packages
    cannot be installed (no package registry)."""
    if not (ROOT / "pyproject.toml").exists():
        pytest.skip("needs the source tree (pyproject.toml) to build the project")
    version = oldest_numpy()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--retries", "1", "--timeout", "30"]

    def run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)

    try:
        installed = run([*pip, "--only-binary", "numpy", f"numpy=={version}.*", "meson-python", "meson", "ninja",
                         "Cython>=3.0.8", "h5py", "matplotlib", "pytest"], timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip(f"installing numpy=={version}.* and the project's dependencies took over 15 minutes")
    if installed.returncode:
        reason = (installed.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"cannot install numpy=={version}.* and the project's dependencies here: {reason}")
    build = run([*pip, "--no-build-isolation", "--no-deps", str(ROOT)], timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    there = run([python, "-c", "import numpy; print(numpy.__version__)"], timeout=60).stdout.strip()
    assert there.startswith(f"{version}."), there
    scalar_of_array = "error:Conversion of an array with ndim > 0 to a scalar:DeprecationWarning"  # NumPy 2: TypeError
    tests = run([str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider", "-m", "not slow", "-W", scalar_of_array,
                 "tests/test_integer_knobs.py", "tests/test_damaged_files.py"], timeout=900)
    assert tests.returncode == 0, tests.stdout[-5000:]
