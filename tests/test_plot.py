"""Pictures: rendered without a display, with the fixed colours, legend, scales and title."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colors
from matplotlib.image import imread

import descentsim as ds
from descentsim import cli
from descentsim.plot import DISCRETE, MINIMUM_COLOURS, OUTCOME_COLOURS, rank_stretch, save_plot

RELU = ds.MapSpec(
    model="relu-neuron", x=ds.Axis("lr", 0.01, 10.0, 96, "log"), y=ds.Axis("w0", -3.0, 3.0, 64), steps=400,
    params={"samples": 64},
)


@pytest.fixture(scope="module")
def relu_map():
    return ds.run_map(RELU)


def pixels_of(image, hex_colour, tol=0.02):
    rgb = np.array(colors.to_rgb(hex_colour))
    return np.count_nonzero(np.all(np.abs(image[..., :3] - rgb) < tol, axis=-1))


def test_outcome_picture_has_the_palette_and_a_legend(tmp_path, relu_map):
    ax = relu_map.plot()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    present = [o for o in ds.Outcome if relu_map.fraction(o) > 0]
    words = {ds.Outcome.STUCK: "dead neuron (stuck)"}  # the relu-neuron's own word for its failure
    assert legend == [f"{words.get(o, o.label)} {relu_map.fraction(o):.1%}" for o in present]
    assert ds.Outcome.STUCK in present and ds.Outcome.CONVERGED in present
    assert ax.get_xlabel() == "learning rate lr (log scale)" and ax.get_ylabel() == "initial weight w0"
    assert "relu-neuron · gd · 400 steps · float64" in ax.get_title() and "samples=64" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.1", "1", "10"]

    out = save_plot(relu_map, tmp_path / "map.png")
    image = imread(out)
    assert image.shape[:2] == (825, 1125)  # 7.5 × 5.5 inches at 150 dpi
    for outcome in present:  # every outcome shows, in its own colour, roughly in proportion
        share = pixels_of(image, OUTCOME_COLOURS[outcome]) / (image.shape[0] * image.shape[1])
        assert share > 0.2 * relu_map.fraction(outcome), outcome
    assert pixels_of(image, OUTCOME_COLOURS[ds.Outcome.DIVERGED]) > 0


#: Maps on which each field varies: the dead ReLU, a double well (two minima), a small classifier.
FIELD_MAPS = {
    "relu": RELU,
    "double-well": ds.MapSpec(model="double-well", x=ds.Axis("lr", 0.01, 1.2, 48), y=ds.Axis("w0", -2.5, 2.5, 32),
                              steps=500),
    "classifier": ds.MapSpec(model="softmax-mlp", optimizer="adam", x=ds.Axis("lr", 1e-3, 3.0, 12, "log"),
                             y=ds.Axis("init_scale", 0.5, 2.0, 4), steps=150, dtype="float32",
                             params={"batch_size": 32}),
}


@pytest.mark.parametrize("name, field", [
    ("relu", "score"), ("relu", "final_loss"), ("relu", "loss_sum"), ("relu", "steps"), ("relu", "period"),
    ("double-well", "attractor"), ("classifier", "accuracy"), ("classifier", "collapsed"),
])
def test_every_field_renders(tmp_path, name, field):
    cmap = ds.run_map(FIELD_MAPS[name])
    shown = np.ma.compressed(cmap.plot(field).images[0].get_array())
    assert shown.size > 0.5 * cmap.outcome.size and np.unique(shown).size > 1  # not blank, not one colour
    image = imread(save_plot(cmap, tmp_path / f"{field}.png", field, dpi=50))
    assert image.shape[:2] == (275, 375)


def legend_of(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def svg_texts(path) -> list[str]:
    """The texts of a picture written as SVG (matplotlib notes each text in a comment)."""
    return re.findall(r"<!-- (.*?) -->", Path(path).read_text())


def test_double_well_pictures_name_the_minima(tmp_path):
    """Converged points are split by the minimum reached, in two blues; the attractor legend says w = ±1."""
    cmap = ds.run_map(FIELD_MAPS["double-well"])
    outcome, attractor = cmap.outcome, cmap.fields["attractor"]
    to = [np.mean((outcome == ds.Outcome.CONVERGED) & (attractor == k)) for k in (0, 1)]
    assert min(to) > 0.2
    others = [f"{o.label} {cmap.fraction(o):.1%}" for o in list(ds.Outcome)[2:] if cmap.fraction(o) > 0]
    expected = [f"converged to w = −1 {to[0]:.1%}", f"converged to w = +1 {to[1]:.1%}", *others]
    assert legend_of(cmap.plot()) == expected
    image = imread(save_plot(cmap, tmp_path / "outcome.png"))
    for colour, share in zip(MINIMUM_COLOURS, to):
        assert pixels_of(image, colour) / (image.shape[0] * image.shape[1]) > 0.2 * share
    assert legend_of(cmap.plot("attractor")) == ["no minimum reached", "w = −1", "w = +1"]
    assert svg_texts(save_plot(cmap, tmp_path / "attractor.svg", "attractor"))[-3:] == legend_of(cmap.plot("attractor"))


def test_classifier_collapse_is_named(tmp_path):
    cmap = ds.run_map(FIELD_MAPS["classifier"])
    assert legend_of(cmap.plot("collapsed")) == ["more than one class (or not finite)", "one class for every input"]
    assert {"one class for every input"} <= set(svg_texts(save_plot(cmap, tmp_path / "c.svg", "collapsed")))


def test_descentsim_plot_writes_the_models_words(tmp_path, relu_map):
    relu_map.save(tmp_path / "m.h5")
    assert cli.plot_main([str(tmp_path / "m.h5"), "-o", str(tmp_path / "m.svg")]) == 0
    assert f"dead neuron (stuck) {relu_map.fraction(ds.Outcome.STUCK):.1%}" in svg_texts(tmp_path / "m.svg")


def test_models_without_words_keep_the_outcome_names():
    cmap = ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.5, 3.0, 40), steps=100))
    assert legend_of(cmap.plot()) == [f"{o.label} {cmap.fraction(o):.1%}" for o in ds.Outcome if cmap.fraction(o) > 0]
    assert legend_of(cmap.plot("attractor")) == ["no minimum reached"]


@pytest.mark.parametrize("model", ds.MODELS.values(), ids=lambda m: m.name)
def test_model_words_name_real_outcomes_and_discrete_fields(model):
    assert set(model.outcome_words) <= set(ds.Outcome) - {ds.Outcome.NOT_COMPUTED}
    assert set(model.value_words) <= set(DISCRETE)
    assert all(isinstance(words, str) and words for words in model.outcome_words.values())


def test_score_uses_the_rank_stretched_diverging_palette(relu_map):
    ax = relu_map.plot("score")
    image = ax.images[0]
    assert image.cmap.name.startswith("RdBu_r") and (image.norm.vmin, image.norm.vmax) == (-1, 1)
    stretched = rank_stretch(relu_map.fields["score"])
    assert np.nanmin(stretched) == -1 and np.nanmax(stretched) == 1


def test_rank_stretch():
    score = np.array([-100.0, -1.0, -10.0, 0.0, 5.0, 1e9, np.nan])
    np.testing.assert_allclose(rank_stretch(score), [-1.0, -1 / 3, -2 / 3, 0.0, 0.5, 1.0, np.nan])
    tied = rank_stretch(np.array([-2.0, -2.0, -2.0, -1.0]))  # equal scores share a colour: the average rank
    np.testing.assert_allclose(tied, [-0.75, -0.75, -0.75, -0.25])


def test_undefined_losses_are_grey_not_the_lowest_colour(relu_map):
    losses = relu_map.fields["final_loss"].copy()
    losses[0, :10] = np.nan
    cmap = ds.ConvergenceMap(relu_map.spec, {**relu_map.fields, "final_loss": losses})
    data = cmap.plot("final_loss").images[0].get_array()
    assert data.mask[0, :10].all() and not data.mask[1:, :].all()


def test_one_row_and_refined_maps(tmp_path):
    row = ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 50), steps=100))
    ax = row.plot()
    assert ax.get_yticks().size == 0 and ax.get_xlabel() == "learning rate lr"
    with pytest.raises(ds.SpecError, match="not refined"):
        row.plot("refine_level")
    from descentsim import refine_map

    refined = refine_map(RELU.replace(model="quadratic", y=ds.Axis("a", 0.5, 2.0, 33), params={}), 3)
    labels = [t.get_text() for t in refined.plot("refine_level").get_legend().get_texts()]
    assert labels[0] == "copied from its cell" and "computed at level 3 (stride 8)" in labels


def test_descentsim_plot_command_headless(tmp_path, relu_map):
    relu_map.save(tmp_path / "m.h5")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    exe = shutil.which("descentsim-plot")
    run = subprocess.run([exe, str(tmp_path / "m.h5"), "-o", str(tmp_path / "m.png"), "--field", "score"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert imread(tmp_path / "m.png").shape[:2] == (825, 1125)
    for args, message in [
        (["-o", str(tmp_path / "m.gif")], "end it in .png, .pdf or .svg"),
        (["-o", str(tmp_path / "x.png"), "--field", "nope"], "unknown field 'nope'"),
        (["-o", str(tmp_path / "none" / "x.png")], "does not exist"),
    ]:
        bad = subprocess.run([exe, str(tmp_path / "m.h5"), *args], capture_output=True, text=True, env=env)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
    assert not (tmp_path / "x.png").exists()


def test_plotting_never_loads_pyplot(tmp_path):
    code = (
        "import sys, descentsim as ds\n"
        "m = ds.run_map(ds.MapSpec(model='quadratic', x=ds.Axis('lr', 0.1, 3.0, 8), steps=10))\n"
        f"m.plot().figure.savefig({str(tmp_path / 'q.svg')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr


def test_a_picture_too_large_is_refused_before_drawing(tmp_path):
    """--dpi 2400 took 7 GB and died with a MemoryError traceback."""
    import shutil
    import subprocess

    source = tmp_path / "map.h5"
    ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 32), y=ds.Axis("a", 0.5, 2.0, 16), steps=40)).save(source)
    result = subprocess.run([shutil.which("descentsim-plot"), str(source), "-o", str(tmp_path / "p.png"), "--dpi", "2400"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "megapixels" in result.stderr and "give --dpi" in result.stderr
    assert "\n" not in result.stderr.strip() and not (tmp_path / "p.png").exists()
