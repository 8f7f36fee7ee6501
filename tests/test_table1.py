"""examples/sohl_dickstein_table1.py: the six experiments of Sohl-Dickstein (2024), Table 1, on tiny settings."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import descentsim as ds
from descentsim.boundary import box_counting_slopes
from descentsim.zoom import read_zoom

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "sohl_dickstein_table1.py"
TINY = ["--grid", "16", "--steps", "20", "--frames", "2"]


def run_script(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def load_script():
    spec = importlib.util.spec_from_file_location("sohl_dickstein_table1", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def every_step_offset_known() -> bool:
    """Whether this descentsim's mlp has the knob w1_offset_mode (the offset × lr experiment needs it)."""
    try:
        ds.MapSpec(model="mlp", x=ds.Axis("lr", 1.0, 2.0, 2), params={"w1_offset_mode": "every_step"})
    except ds.SpecError:
        return False
    return True


def median_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("median of local slopes", "least-squares"))]


def test_the_experiments_are_set_up_as_the_notebook():
    table1 = load_script()
    assert [(e.name, e.paper) for e in table1.EXPERIMENTS.values()] == [
        ("deep-linear", 1.17), ("relu", 1.20), ("tanh-one-point", 1.41), ("tanh-minibatch", 1.55),
        ("tanh-full-batch", 1.66), ("offset-lr", 1.98)]
    expected = {
        "deep-linear": {"nonlinearity": "identity"},
        "relu": {"nonlinearity": "relu"},
        "tanh-one-point": {"nonlinearity": "tanh", "n_data": 1},
        "tanh-minibatch": {"nonlinearity": "tanh", "batch_size": 16, "batch_per_point": 0},
        "tanh-full-batch": {"nonlinearity": "tanh"},
    }
    for name, params in expected.items():
        exp = table1.EXPERIMENTS[name]
        width = table1.widest_width(exp.width)
        assert 6 <= width < 12 and math.log2(width / exp.width) % 1 == 0  # the paper's widest frame
        spec = table1.experiment_spec(exp, 16, 20, "float64", exp.center, width)
        assert dict(spec.params) == {"width": 16, "seed": 0, "lr": 1.0, **params}  # d = width, 272 or 16 points
        assert (spec.x.name, spec.y.name, spec.x.scale, spec.y.scale) == ("lr1", "lr2", "log", "log")
        assert spec.thresholds.converge_loss == 0 and spec.thresholds.diverge_factor == math.inf
        assert math.log10(spec.x.start * spec.x.stop) / 2 == pytest.approx(exp.center[0])
    offset = table1.EXPERIMENTS["offset-lr"]
    assert (offset.x, offset.y, offset.params) == ("w1_offset", "lr", {"nonlinearity": "tanh",
                                                                       "w1_offset_mode": "every_step"})


def test_the_script_on_a_tiny_setting_and_measured_again(tmp_path):
    result = run_script(*TINY, "--experiments", "deep-linear,tanh-one-point", "--out", str(tmp_path / "t"),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "paper:  D = 1.17" in out and "paper:  D = 1.41" in out and out.count("median of local slopes") == 2
    assert "box sizes 10 11 12 13 14 15 (pixels of the 15² edge images)" in out
    for name, params in (("deep-linear", {"nonlinearity": "identity"}), ("tanh-one-point", {"n_data": 1})):
        spec, settings, frames, complete = read_zoom(tmp_path / "t" / f"{name}.h5")
        assert complete and len(frames) == 2 and settings.factor == 2 and settings.center is not None
        assert spec.steps == 20 and spec.shape == (16, 16) and params.items() <= spec.params.items()
        for k, frame in enumerate(frames):  # concentric on the centre, each twice as narrow
            assert tuple(frame.provenance["zoom_center"]) == settings.center
            for axis, c in zip(frame.spec.axes, settings.center):
                assert math.log10(axis.start * axis.stop) / 2 == pytest.approx(math.log10(c), abs=1e-12)
                assert math.log10(axis.stop / axis.start) * 2**k == pytest.approx(frames[0].spec.x.scaled(
                    frames[0].spec.x.stop) - frames[0].spec.x.scaled(frames[0].spec.x.start))
            final = frame.fields["final_loss"]
            ended = ~np.isfinite(final) | (final == 0)  # a non-finite loss ends a run; a loss of 0 stays 0
            assert (frame.fields["steps"][~ended] == 20).all()
        fit = box_counting_slopes(frames)
        assert f"D = {fit.exponent:.3f} ± {fit.uncertainty:.3f}" in out
    again = run_script("--measure-only", "--experiments", "deep-linear,tanh-one-point", "--out", str(tmp_path / "t"),
                       cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert median_lines(again.stdout) == median_lines(out) and len(median_lines(out)) == 4


def test_the_offset_experiment_needs_the_every_step_offset(tmp_path):
    result = run_script(*TINY, "--experiments", "offset-lr", "--out", str(tmp_path / "t"), cwd=tmp_path)
    if every_step_offset_known():
        assert result.returncode == 0, result.stderr
        assert "paper:  D = 1.98" in result.stdout
        spec = read_zoom(tmp_path / "t" / "offset-lr.h5")[0]
        assert (spec.x.name, spec.y.name, spec.params["w1_offset_mode"]) == ("w1_offset", "lr", "every_step")
    else:
        assert result.returncode == 2 and "w1_offset_mode" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "t").exists()


def test_the_script_refuses_what_it_cannot_do(tmp_path):
    result = run_script("--experiments", "tanh,relu", cwd=tmp_path)
    assert result.returncode == 2 and "unknown experiment tanh; choose from deep-linear" in result.stderr
    result = run_script("--measure-only", "--experiments", "relu", "--out", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2 and "no zoom file for relu" in result.stderr and "Traceback" not in result.stderr
    result = run_script("--grid", "8", cwd=tmp_path)
    assert result.returncode == 2 and "--grid must be at least 12" in result.stderr


def test_densest_locator_goes_to_the_folded_part_of_a_boundary():
    """--locate densest: of a boundary that is a straight line on the left and folded on the right, the
    point with the most boundary around it lies in the folds, whereas the middle's nearest does not."""
    table1 = load_script()
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.2, 32), y=ds.Axis("a", 0.1, 3.2, 32))
    fields = {name: np.full(spec.shape, info.fill, dtype=info.dtype) for name, info in ds.fields.FIELDS.items()}
    yy, xx = np.mgrid[0:32, 0:32]
    fold = np.where(xx >= 20, 16 + 6 * np.sign(np.sin(xx * 1.7)), 16)  # rows below the line are trainable
    fields["score"] = np.where(yy < fold, -1.0, 1.0)
    cmap = ds.ConvergenceMap(spec, fields)
    x, _ = table1.densest_boundary_point(cmap)
    assert x >= cmap.x[20]
    assert table1.next_center(cmap, None, (0.0, 0.0))[0] < cmap.x[20]
    flat = ds.ConvergenceMap(spec, {**fields, "score": np.ones(spec.shape)})
    assert table1.densest_boundary_point(flat) is None
