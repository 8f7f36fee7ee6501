"""The curves behind a label: recorded points' per-step full-data loss and accuracy, from the engine
that computes the map, kept in the file's history group; ds.trajectories in the compiled engine."""

import h5py
from matplotlib import colors
import numpy as np
import pytest
from helpers import write_config

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome
from descentsim.cli import map_main

QUADRATIC = MapSpec(model="quadratic", x=Axis("lr", 0.1, 2.5, 25), y=Axis("a", 0.5, 1.5, 5), steps=80,
                    params={"w0": 1.5}, record=[[0.5, 1.0], [1.2, 1.5], [2.4, 1.25]])


def test_recorded_quadratic_is_the_exact_geometric_curve(dtype):
    """L_t = ½·a·w0²·(1 − lr·a)^(2t) at every recorded step, up to the step each point was decided."""
    m = ds.run_map(QUADRATIC.replace(dtype=dtype))
    h = m.history
    np.testing.assert_array_equal(h.ix, [4, 11, 23])
    np.testing.assert_array_equal(h.iy, [2, 4, 3])
    np.testing.assert_allclose(h.x, [0.5, 1.2, 2.4])
    tol = 1e-12 if dtype == "float64" else 2e-5
    for k in range(len(h)):
        lr, a, decided = h.x[k], h.y[k], h.decided[k]
        assert decided == m.fields["steps"][h.iy[k], h.ix[k]] and h.outcome[k] == m.outcome[h.iy[k], h.ix[k]]
        t = np.arange(decided + 1)
        exact = 0.5 * a * 1.5**2 * (1 - lr * a) ** (2 * t)
        curve = h.loss[k, : decided + 1]
        finite = np.isfinite(curve)
        relative = np.abs(curve[finite] - exact[finite]) / exact[finite]
        assert (relative <= tol * (1 + t[finite])).all()
        assert np.isnan(h.loss[k, decided + 1 :]).all()
        assert h.loss[k, decided] == m.fields["final_loss"][h.iy[k], h.ix[k]]
    assert list(h.outcome) == [Outcome.CONVERGED, Outcome.CONVERGED, Outcome.DIVERGED]
    assert h.accuracy is None


CLASSIFIER = MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 1e-3, 1.0, 6, "log"), steps=120,
                     params={"classes": 3, "per_class": 8, "d": 4, "width1": 6, "width2": 5, "batch_size": 6},
                     record=[1e-3, 0.06, 1.0], record_stride=10)


def test_engines_record_the_same_bits(dtype):
    for spec in (QUADRATIC, CLASSIFIER):
        reference = ds.run_map(spec.replace(dtype=dtype), backend="numpy").history
        compiled = ds.run_map(spec.replace(dtype=dtype), backend="cython", threads=2).history
        np.testing.assert_array_equal(reference.loss, compiled.loss)
        if spec.model_def.classifier:
            np.testing.assert_array_equal(reference.accuracy, compiled.accuracy)


def test_classifier_records_accuracy_at_its_stride():
    m = ds.run_map(CLASSIFIER)
    h = m.history
    np.testing.assert_array_equal(h.accuracy_steps, np.arange(0, 121, 10))
    assert h.accuracy.shape == (3, 13) and h.loss.shape == (3, 121)
    for k in range(3):
        decided = h.decided[k]
        marks = h.accuracy_steps <= decided
        assert np.isfinite(h.accuracy[k, marks]).all() and np.isnan(h.accuracy[k, ~marks]).all()
        if decided % 10 == 0:  # the last mark is the final network: the map's accuracy
            assert h.accuracy[k, marks][-1] == m.fields["accuracy"][0, h.ix[k]]
    assert ((h.accuracy[np.isfinite(h.accuracy)] * 24) % 1 == 0).all()  # fractions of the 24 samples


def test_history_round_trips_through_the_file(tmp_path):
    m = ds.run_map(CLASSIFIER)
    m.save(tmp_path / "m.h5")
    back = ds.open_map(tmp_path / "m.h5").history
    for name in ("iy", "ix", "x", "loss", "accuracy", "accuracy_steps", "decided", "outcome"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m.history, name), err_msg=name)
    assert back.y is None
    with h5py.File(tmp_path / "m.h5") as f:  # readable without descentsim
        assert f["history/loss"].shape == (3, 121) and "description" in f["history/loss"].attrs
    plain = ds.run_map(CLASSIFIER.replace(record=()))
    with pytest.raises(ds.SpecError, match="recorded no points; add record"):
        plain.history


def test_refined_map_records_too():
    refined = ds.refine_map(QUADRATIC.replace(x=Axis("lr", 0.1, 2.5, 33), y=Axis("a", 0.5, 1.5, 9)), levels=2)
    full = ds.run_map(QUADRATIC.replace(x=Axis("lr", 0.1, 2.5, 33), y=Axis("a", 0.5, 1.5, 9)))
    np.testing.assert_array_equal(refined.history.loss, full.history.loss)


def test_record_points_are_checked():
    with pytest.raises(ds.SpecError, match="lies outside the axis"):
        QUADRATIC.replace(record=[[3.0, 1.0]])
    with pytest.raises(ds.SpecError, match="one value per axis"):
        QUADRATIC.replace(record=[[0.5]])
    with pytest.raises(ds.SpecError, match="list of points"):
        QUADRATIC.replace(record="0.5,1")
    with pytest.raises(ds.SpecError, match="record_stride must be"):
        QUADRATIC.replace(record_stride=0)
    spec = MapSpec.from_toml_text(QUADRATIC.to_toml())
    assert spec == QUADRATIC and spec.record == ((0.5, 1.0), (1.2, 1.5), (2.4, 1.25))


def test_zoom_refuses_to_record():
    from descentsim.zoom import ZoomSettings, zoom

    with pytest.raises(ds.SpecError, match="cannot record points"):
        zoom(QUADRATIC, ZoomSettings(frames=2))


def test_cli_record_writes_the_history(tmp_path, capsys):
    config = write_config(tmp_path / "q.toml", QUADRATIC.replace(record=()).to_toml())
    out = tmp_path / "q.h5"
    assert map_main([str(config), "-o", str(out), "--record", "0.5,1.0", "--record", "2.4,1.25"]) == 0
    h = ds.open_map(out).history
    np.testing.assert_array_equal(h.ix, [4, 23])
    assert map_main([str(config), "-o", str(tmp_path / "r.h5"), "--record", "0.5"]) == 2
    assert "needs one value per axis" in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()


def test_trajectories_give_the_loss_beside_theta(dtype):
    spec = QUADRATIC.replace(dtype=dtype)
    compiled = ds.trajectories(spec, [2, 3], [4, 23])
    reference = ds.trajectories(spec, [2, 3], [4, 23], backend="numpy")
    for name in ("theta", "loss"):
        np.testing.assert_array_equal(getattr(compiled, name), getattr(reference, name), err_msg=name)
    w = compiled.theta[:, :, 0]
    a = np.array([1.0, 1.25])[:, None]
    np.testing.assert_array_equal(compiled.loss, (0.5 * a * w * w).astype(dtype).astype(np.float64))
    np.testing.assert_array_equal(compiled.loss, ds.run_map(spec).history.loss[[0, 2]])
    with pytest.raises(ds.SpecError, match="stride must be"):
        ds.trajectories(spec, [0], [0], stride=0)


def test_history_picture_marks_points_and_draws_their_curves(tmp_path):
    from descentsim.plot import OUTCOME_COLOURS, plot_history

    m = ds.run_map(CLASSIFIER.replace(y=Axis("init_scale", 0.5, 2.0, 3), record=[[1e-3, 1.0], [1.0, 2.0]]))
    figure = plot_history(m, "accuracy")
    ax_map, _, ax_loss, ax_accuracy = figure.axes  # the map, its colour bar, the loss and accuracy panels
    assert [t.get_text() for t in ax_map.texts] == ["1", "2"]
    positions = [t.xy for t in ax_map.texts]
    np.testing.assert_allclose(positions, [(-3.0, 1.25), (0.0, 2.0)])  # log10 lr; the nearest grid init_scale
    h = m.history
    curves = [line for line in ax_loss.get_lines() if len(line.get_xdata()) > 1]
    assert len(curves) == 2
    for k, line in enumerate(curves):
        loss = h.loss[k]
        shown = np.isfinite(loss) & (loss > 0)
        np.testing.assert_array_equal(line.get_ydata(), loss[shown])
        assert line.get_xdata()[-1] == h.decided[k] or not np.isfinite(loss[h.decided[k]])
    dots = [line for line in ax_loss.get_lines() if len(line.get_xdata()) == 1]
    assert [colors.to_hex(d.get_color()).upper() for d in dots] == [OUTCOME_COLOURS[Outcome(o)] for o in h.outcome]
    assert ax_loss.get_yscale() == "log" and ax_accuracy.get_ylabel() == "training accuracy"
    labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert labels[0].startswith("1: lr = 0.001, init_scale = 1.25 → ") and f"at step {h.decided[0]}" in labels[0]


def test_descentsim_plot_history_command(tmp_path, capsys):
    from descentsim.cli import plot_main

    m = ds.run_map(QUADRATIC)
    m.save(tmp_path / "q.h5")
    assert plot_main([str(tmp_path / "q.h5"), "-o", str(tmp_path / "q.png"), "--history"]) == 0
    assert (tmp_path / "q.png").stat().st_size > 10_000
    ds.run_map(QUADRATIC.replace(record=())).save(tmp_path / "plain.h5")
    assert plot_main([str(tmp_path / "plain.h5"), "-o", str(tmp_path / "p.png"), "--history"]) == 2
    assert "recorded no points" in capsys.readouterr().err and not (tmp_path / "p.png").exists()


def test_descentsim_info_lists_the_recorded_points(tmp_path):
    from descentsim.cli import describe

    text = describe(ds.run_map(QUADRATIC))
    assert "# recorded points (history)" in text
    assert "  1: lr = 0.5, a = 1: converged at step" in text and "  3: lr = 2.4, a = 1.25: diverged at step" in text
    assert "# recorded points" not in describe(ds.run_map(QUADRATIC.replace(record=())))


def test_history_picture_draws_a_loss_of_zero_at_the_floor():
    """lr = 1/a lands on the minimum at once: L = 0 from step 1, converged when the window is full; its curve
    and its dot (at the deciding step) are drawn a decade below the smallest positive loss."""
    from descentsim.plot import plot_history

    spec = MapSpec(model="quadratic", x=Axis("lr", 0.5, 1.0, 2), steps=80, record=[1.0, 0.5])
    m = ds.run_map(spec)
    h = m.history
    assert h.outcome[0] == Outcome.CONVERGED and h.loss[0, 1] == 0
    ax_loss = plot_history(m).axes[1]
    floor = h.loss[np.isfinite(h.loss) & (h.loss > 0)].min() / 10
    curve, dot = [line for line in ax_loss.get_lines()][:2]
    assert len(curve.get_xdata()) == h.decided[0] + 1 and curve.get_ydata()[1] == floor
    assert dot.get_xdata()[0] == h.decided[0] and dot.get_ydata()[0] == floor


def test_record_memory_and_eval_samples_are_checked():
    with pytest.raises(ds.SpecError, match="GiB .*record fewer points, or map fewer steps"):
        QUADRATIC.replace(steps=2_000_000_000, record=[[0.5, 1.0], [1.0, 1.0]])
    with pytest.raises(ds.SpecError, match="set batch_size too"):
        QUADRATIC.replace(params={"eval_samples": 5})
