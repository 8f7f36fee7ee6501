"""descentsim-map and descentsim-info as a user runs them."""

import importlib
import io
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import descentsim as ds
from descentsim import cli
from descentsim.knobs import Knob
from descentsim.models import MODELS
from descentsim.optimizers import BATCH_KNOBS, OPTIMIZERS, SCHEDULE_KNOBS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

SMALL = """
model = "relu-neuron"
steps = 200
[x]
name = "lr"
start = 0.01
stop = 5.0
n = 24
scale = "log"
[y]
name = "w0"
start = -2.0
stop = 2.0
n = 10
[params]
samples = 16
"""


def run(*args, cwd):
    """Run a console script of the installed package."""
    exe = shutil.which(args[0]) or args[0]
    return subprocess.run([exe, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def test_map_then_info(tmp_path, config):
    result = run("descentsim-map", str(config), "-o", "out.h5", "--set", "steps=150", "--set", "x.n=12", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote out.h5" in result.stdout and result.stderr == ""  # no progress bar in logs
    m = ds.open_map(tmp_path / "out.h5")
    assert m.spec.steps == 150 and m.outcome.shape == (10, 12)
    info = run("descentsim-info", "out.h5", cwd=tmp_path)
    assert info.returncode == 0
    assert 'model = "relu-neuron"' in info.stdout and "converged" in info.stdout and "wall_time_s" in info.stdout


def test_info_on_a_classifier_map_reports_collapse():
    from descentsim.cli import describe

    spec = ds.MapSpec(model="softmax-mlp", optimizer="adam", x=ds.Axis("lr", 0.01, 1.0, 2, "log"), steps=300,
                      params={"batch_size": 16, "classes": 3, "per_class": 10, "d": 4, "width1": 8, "width2": 6})
    m = ds.run_map(spec)
    text = describe(m)
    assert f"{'collapsed':<14} {np.mean(m.fields['collapsed'] == 1):8.2%}" in text and "mean accuracy" in text
    assert "collapsed" not in describe(ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1, 2), steps=5)))


def test_set_knob_backend_threads_and_tile(tmp_path, config):
    args = ["--set", "lr=0.5", "--set", 'x={name="w0", start=-1.0, stop=1.0, n=6}', "--set", "y.name=b0"]
    args += ["--set", "trainable=wb", "--threads", "1", "--tile", "3x4"]
    assert cli.map_main([str(config), "-o", str(tmp_path / "a.h5"), *args]) == 0
    assert cli.map_main([str(config), "-o", str(tmp_path / "b.h5"), *args[:-4], "--backend", "numpy"]) == 0
    a, b = ds.open_map(tmp_path / "a.h5"), ds.open_map(tmp_path / "b.h5")
    assert a.spec.params == {"samples": 16, "lr": 0.5, "trainable": "wb"}
    assert a.provenance["tile_shape"] == (3, 4) and b.provenance["backend"] == "numpy"
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name])


def test_existing_output_needs_force(tmp_path, config):
    (tmp_path / "out.h5").write_bytes(b"precious")
    result = run("descentsim-map", str(config), "-o", "out.h5", cwd=tmp_path)
    assert result.returncode == 2 and "--force" in result.stderr
    assert (tmp_path / "out.h5").read_bytes() == b"precious"
    assert cli.map_main([str(config), "-o", str(tmp_path / "out.h5"), "--force"]) == 0
    assert ds.open_map(tmp_path / "out.h5").spec.model == "relu-neuron"


BAD = {
    "unknown model": ('model = "transformer"\n[x]\nname="lr"\nstart=0.1\nstop=1.0\nn=4\n', "valid models: quadratic"),
    "unknown knob": (SMALL + "bogus = 1\n", "unknown knob 'bogus' for model 'relu-neuron'; valid knobs: w0, b0"),
    "malformed TOML": (SMALL + "[x\n", "is not valid TOML"),
    "n <= 0": (SMALL.replace("n = 24", "n = 0"), "n must be a whole number >= 1"),
    "log axis through zero": (SMALL.replace("start = 0.01", "start = -0.01"), "log axis cannot reach or cross zero"),
    "negative steps": (SMALL.replace("steps = 200", "steps = -5"), "steps must be a whole number from 1 to"),
    "zero steps": (SMALL.replace("steps = 200", "steps = 0"), "got 0; give the gradient steps each trajectory may take"),
    "learning rate through zero": (SMALL.replace("start = 0.01", "start = -0.01").replace('scale = "log"\n', ""),
                                   "knob 'lr' must be > 0, got -0.01 (a learning rate of 0 never moves"),
    "unknown setting": ("colour = 1\n" + SMALL, "unknown setting 'colour'; valid settings: model, x, y, steps"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, case):
    text, message = BAD[case]
    (tmp_path / "c.toml").write_text(text)
    result = run("descentsim-map", "c.toml", "-o", "out.h5", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("descentsim-map: error: ") and message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "missing/dir/out.h5"], "output directory 'missing/dir' does not exist"),
        (["-o", "."], "is a directory"),
        (["-o", "out.h5", "--set", "nonsense"], "is not knob=value"),
        (["-o", "out.h5", "--set", "step=200"], "unknown knob 'step' for model 'relu-neuron' (did you mean 'steps'?)"),
        (["-o", "out.h5", "--set", "x.nn=5"], "axis x: unknown key 'nn' (did you mean 'n'?)"),
        (["-o", "out.h5", "--set", "model=relu_neuron"], "unknown model 'relu_neuron' (did you mean 'relu-neuron'?)"),
        (["-o", "out.h5", "--set", "optimizer=adma"], "unknown optimizer 'adma' (did you mean 'adam'?)"),
        (["-o", "out.h5", "--set", "thresholds.stuck_toll=1"], "unknown threshold 'stuck_toll' (did you mean"),
        (["-o", "out.h5", "--set", "sampels=8"], "unknown knob 'sampels' for model 'relu-neuron' (did you mean "
         "'samples'?)"),
        (["-o", "out.h5", "--tile", "big"], "is not ROWSxCOLS"),
        (["-o", "out.h5", "--threads", "0"], "threads must be a whole number >= 1"),
        (["-o", "out.h5", "--set", "lr=fast"], "knob 'lr' must be a number"),
        (["-o", "out.h5", "--set", "samples=inf"], "knob 'samples' must be finite"),
        (["-o", "out.h5", "--set", "samples=nan"], "knob 'samples' must be finite"),
        (["-o", "out.h5", "--set", "samples=1e300"], "knob 'samples' must be <= "),
        (["-o", "out.h5", "--set", "data_seed=9223372036854775808"], "knob 'data_seed' must be <= "),
        (["-o", "out.h5", "--set", "steps=99999999999999999999"], "steps must be a whole number from 1 to"),
        (["-o", "out.h5", "--set", "steps=0"], "steps must be a whole number from 1 to 2147483647, got 0"),
        (["-o", "out.h5", "--refine", "2", "--set", "steps=0"], "steps must be a whole number from 1 to"),
        (["-o", "out.h5", "--set", "x.scale=linear", "--set", "x.start=0"],
         "knob 'lr' must be > 0, got 0 (a learning rate of 0 never moves and a negative one climbs the loss); "
         "change the bounds of axis x (0 to 5)"),
        (["-o", "out.h5", "--set", "y.name=lr", "--set", "x.name=b0", "--set", "y.start=-1"],
         "knob 'lr' must be > 0, got -1"),
        (["-o", "out.h5", "--set", "optimizer=adam", "--set", "momentum=0.5"],
         "knob 'momentum' belongs to optimizer \"momentum\" or \"nesterov\", not \"adam\"; "
         "set optimizer = \"momentum\" to use it, or remove momentum"),
        (["-o", "out.h5", "--set", "beta2=0.99"], "knob 'beta2' belongs to optimizer \"adam\" or \"adamw\", not \"gd\"; "
         "set optimizer = \"adam\""),
        (["-o", "out.h5", "--set", "x.name=eps", "--set", "optimizer=nesterov"],
         "knob 'eps' on an axis belongs to optimizer \"adam\", \"adamw\" or \"rmsprop\", not \"nesterov\""),
        (["-o", "out.h5", "--set", "optimizer=adam", "--set", "beta1=1"], "knob 'beta1' must be < 1, got 1"),
        (["-o", "out.h5", "--set", "optimizer=adam", "--set", "eps=0"], "knob 'eps' must be > 0, got 0"),
        (["-o", "out.h5", "--set", "schedule=step", "--set", "decay_rate=0"], "knob 'decay_rate' must be > 0"),
        (["-o", "out.h5", "--set", "thresholds.max_period=99999999999"], "max_period must be from 2 to"),
        (["-o", "out.h5", "--set", "x.n=100000000000"], "n must be at most"),
        (["-o", "out.h5", "--set", "x.n=100000", "--set", "y.n=100000"], "split it into several maps"),
        (["-o", "out.h5", "--threads", "x"], "invalid int value"),
        (["out.h5"], "the following arguments are required: -o"),
    ],
)
def test_bad_command_line(tmp_path, config, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    try:
        status = cli.map_main([str(config), *args])
    except SystemExit as exc:  # argparse's own checks
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_unwritable_output_directory(tmp_path, config, capsys):
    """Probed by writing, so it holds for root too (who ignores permission bits): /sys is read-only."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    target = locked if os.geteuid() != 0 else Path("/sys")
    assert cli.map_main([str(config), "-o", str(target / "out.h5")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_unreadable_config(tmp_path, capsys):
    assert cli.map_main([str(tmp_path / "absent.toml"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_info_on_foreign_file(tmp_path):
    (tmp_path / "x.h5").write_text("not a map")
    result = run("descentsim-info", "x.h5", cwd=tmp_path)
    assert result.returncode == 2 and "not an HDF5 file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_examples_are_valid_specs(example):
    spec = ds.MapSpec.from_toml(EXAMPLES / example)
    small = spec.replace(x=spec.x.__class__(**{**spec.x.to_dict(), "n": 5}), steps=20)
    assert ds.run_map(small).outcome.all()


def test_trajectory_example_draws_its_picture(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / "relu_bias_trajectories.py"), str(tmp_path / "p.png")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p.png").stat().st_size > 10_000


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only():
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = cli.ProgressBar(stream)
        for done in (1, 2, 3, 4):
            bar(done, 4, 1000 * done)
    assert "4/4 tiles" in terminal.getvalue() and "traj-steps/s" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n") and log.getvalue() == ""


def _main(script: str):
    """The function a console script of pyproject.toml runs."""
    module, _, function = SCRIPTS[script].partition(":")
    return getattr(importlib.import_module(module), function)


def _exit_status(main, args) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse's --help, --version and errors
        return exc.code


def test_every_tool_has_a_version_and_descentsim_models_is_one():
    assert {"descentsim-map", "descentsim-info", "descentsim-plot", "descentsim-zoom", "descentsim-models"} <= set(SCRIPTS)
    for script in SCRIPTS:
        result = run(script, "--version", cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{script} {metadata.version('descentsim')}\n"


def _knob_line(lines: list[str], knob: Knob) -> str:
    """The line listing ``knob``: name first, then its default and meaning."""
    line = next((line for line in lines if line.split()[:1] == [knob.name] and knob.doc in line), None)
    assert line is not None, f"{knob.name}: {knob.doc} is not listed"
    assert f" {knob.default} " in line and f" {knob.values_text} " in line
    return line


def test_models_lists_every_model_optimizer_schedule_and_knob(capsys):
    assert _exit_status(_main("descentsim-models"), []) == 0
    listing = capsys.readouterr().out
    for name in ("constant", "step", "exponential", "cosine"):
        assert name in listing
    sections = listing.split("\n\n")
    for owner in (*MODELS.values(), *OPTIMIZERS.values()):  # each under its own heading
        section = next(part for part in sections if part.startswith(f"  {owner.name}: "))
        own = [k for k in owner.knobs if k not in (*SCHEDULE_KNOBS, *BATCH_KNOBS)]
        for knob in own:
            _knob_line(section.splitlines(), knob)
    lines = listing.splitlines()
    for knob in (*SCHEDULE_KNOBS, *BATCH_KNOBS):  # every optimiser has them: listed once
        _knob_line(lines, knob)
        assert sum(line.split()[:1] == [knob.name] for line in lines) == 1
    assert "number > 0" in _knob_line(lines, OPTIMIZERS["gd"].knobs[0])
    assert "whole number, 1 to 4096" in _knob_line(lines, MODELS["mlp"].knobs[0])
    assert "tanh, relu or identity" in next(line for line in lines if line.startswith("    nonlinearity "))


def test_map_list_prints_the_same_as_descentsim_models(capsys):
    assert _exit_status(cli.map_main, ["--list"]) == 0
    listed = capsys.readouterr().out
    assert _exit_status(_main("descentsim-models"), []) == 0
    assert listed == capsys.readouterr().out and listed


def test_map_help_explains_the_config_and_points_to_examples(capsys):
    assert _exit_status(cli.map_main, ["--help"]) == 0
    text = capsys.readouterr().out
    for words in ("examples/", "[x]", "[params]", "descentsim-models", "--list", "steps", "model"):
        assert words in text, words


@pytest.mark.parametrize("center, message", [
    ("5,1", "the zoom centre lr = 5 lies outside the map (lr from 0.05 to 4)"),
    ("1,-3", "the zoom centre a = -3 lies outside the map (a from 0.5 to 2)"),
    ("1.5", "the zoom centre a = 0 lies outside the map"),  # one value: y = 0
])
def test_zoom_center_outside_the_map_is_refused(tmp_path, capsys, center, message):
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 8), y=ds.Axis("a", 0.5, 2.0, 4), steps=20)
    (tmp_path / "q.toml").write_text(spec.to_toml())
    assert cli.zoom_main([str(tmp_path / "q.toml"), "-o", str(tmp_path / "z.h5"), "--center", center]) == 2
    err = capsys.readouterr().err
    assert err.startswith("descentsim-zoom: error: ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.toml"]


def test_zoom_center_of_a_one_row_map_needs_x_only(tmp_path):
    from descentsim.zoom import ZoomSettings, plan

    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 8), steps=20)
    plan(spec, ZoomSettings(frames=2, center=(1.0, 0.0)))
    with pytest.raises(ds.SpecError, match="lr = 0.01 lies outside the map"):
        plan(spec, ZoomSettings(frames=2, center=(0.01, 0.0)))
