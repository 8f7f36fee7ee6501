"""Edited or damaged files are refused in one line naming the file, the dataset and what is wrong: every
reader (map files, zoom frames, the history group) and every tool that reads them (open_map,
descentsim-info, descentsim-plot)."""

import shutil

import h5py
import numpy as np
import pytest

import descentsim as ds
from descentsim import cli
from descentsim import refine_map
from descentsim.zoom import ZoomSettings, read_zoom, write_zoom, zoom

PLAIN = ds.MapSpec(model="relu-neuron", x=ds.Axis("lr", 0.05, 3.0, 13, "log"), y=ds.Axis("w0", -2.0, 2.0, 7),
                   steps=60, params={"samples": 8}, record=[[0.5, 1.0], [2.0, -1.0]])
ROW = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 9), steps=50)
REFINED = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 17), y=ds.Axis("a", 0.5, 2.0, 9), steps=50)
ZOOMED = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 3.0, 12), y=ds.Axis("a", 0.5, 2.0, 6), steps=50)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One intact file of each kind: a map with recorded points, a one-row map, a refined map, a zoom."""
    where = tmp_path_factory.mktemp("originals")
    ds.run_map(PLAIN).save(where / "plain.h5")
    ds.run_map(ROW).save(where / "row.h5")
    refine_map(REFINED, 2).save(where / "refined.h5")
    settings = ZoomSettings(frames=2, factor=2.0, center=(1.5, 1.0))
    write_zoom(where / "zoom.h5", ZOOMED, settings, zoom(ZOOMED, settings))
    return where


def replace(f: h5py.File, name: str, data) -> None:
    """Put ``data`` in place of dataset ``name``, as an edit with h5py does."""
    del f[name]
    f.create_dataset(name, data=data)


def change(name: str, how):
    """An edit that replaces dataset ``name`` by ``how(its values)``."""
    return lambda f: replace(f, name, how(f[name][()]))


def set_item(name: str, index, value):
    def edit(f):
        data = f[name][()]
        data[index] = value
        replace(f, name, data)
    return edit


def make_group(name: str):
    def edit(f):
        del f[name]
        f.create_group(name)
    return edit


def delete(name: str):
    def edit(f):
        del f[name]
    return edit


# (file, edit, the dataset the message names, what it says is wrong)
DAMAGE = {
    "transposed outcome": ("plain", change("outcome", np.transpose), "dataset 'outcome'", "shaped (13, 7), not (7, 13)"),
    "float outcome": ("plain", change("outcome", lambda v: v.astype(np.float64)), "dataset 'outcome'", "float64, not uint8"),
    "outcome code 17": ("plain", set_item("outcome", (3, 4), 17), "dataset 'outcome'", "17"),
    "int64 steps": ("plain", change("steps", lambda v: v.astype(np.int64)), "dataset 'steps'", "int64, not int32"),
    "float32 score": ("plain", change("score", lambda v: v.astype(np.float32)), "dataset 'score'", "float32, not float64"),
    "missing field": ("plain", delete("steps"), "dataset 'steps'", "missing"),
    "field made a group": ("plain", make_group("score"), "dataset 'score'", "not a dataset"),
    "axis too short": ("plain", change("lr", lambda v: v[:-1]), "dataset 'lr'", "shaped (12,), not (13,)"),
    "axis values edited": ("plain", set_item("w0", 2, 5.0), "dataset 'w0'", "not the values of axis y"),
    "axis missing": ("plain", delete("w0"), "dataset 'w0'", "missing"),
    "axis of ints": ("plain", change("lr", lambda v: v.astype(np.int32)), "dataset 'lr'", "int32, not float64"),
    "one-row map shaped (1, nx)": ("row", change("outcome", lambda v: v[None, :]), "dataset 'outcome'", "(1, 9), not (9,)"),
    "refine_level int32": ("refined", change("refine_level", lambda v: v.astype(np.int32)), "dataset 'refine_level'",
                           "int32, not int8"),
    "refine_level above the levels": ("refined", set_item("refine_level", (0, 0), 5), "dataset 'refine_level'", "5"),
    "refine_level below -1": ("refined", set_item("refine_level", (1, 1), -2), "dataset 'refine_level'", "-2"),
    "refine_level transposed": ("refined", change("refine_level", np.transpose), "dataset 'refine_level'", "(17, 9)"),
    "history loss too short": ("plain", change("history/loss", lambda v: v[:, :-1]), "dataset 'history/loss'",
                               "shaped (2, 60), not (2, 61)"),
    "history outcome 17": ("plain", set_item("history/outcome", 1, 17), "dataset 'history/outcome'", "17"),
    "history step past the budget": ("plain", set_item("history/steps", 0, 99), "dataset 'history/steps'", "99"),
    "history point moved": ("plain", set_item("history/ix", 0, 12), "dataset 'history/ix'", "not the grid points"),
    "history float indices": ("plain", change("history/iy", lambda v: v.astype(np.float64)), "dataset 'history/iy'",
                              "float64, not int64"),
    "history one point short": ("plain", change("history/x", lambda v: v[:1]), "dataset 'history/x'", "(1,), not (2,)"),
    "history missing": ("plain", delete("history"), "group 'history'", "missing"),
    "history y missing": ("plain", delete("history/y"), "dataset 'history/y'", "missing"),
    "zoom frame code 17": ("zoom", set_item("frames/001/outcome", (0, 0), 17), "dataset 'frames/001/outcome'", "17"),
    "zoom frame float32 score": ("zoom", change("frames/000/score", lambda v: v.astype(np.float32)),
                                 "'frames/000/score'", "float32, not float64"),
    "zoom frame axis edited": ("zoom", set_item("frames/001/lr", 0, 0.0), "dataset 'frames/001/lr'",
                               "not the values of axis x"),
}


@pytest.fixture(params=list(DAMAGE), ids=list(DAMAGE))
def damaged(request, originals, tmp_path):
    """(path of an edited copy, dataset named, what is wrong)."""
    kind, edit, dataset, wrong = DAMAGE[request.param]
    path = tmp_path / f"{kind}.h5"
    shutil.copy(originals / f"{kind}.h5", path)
    with h5py.File(path, "a") as f:
        edit(f)
    return path, dataset, wrong


def frame_of(dataset: str) -> int:
    """The zoom frame whose dataset is named, e.g. 1 for "dataset 'frames/001/outcome'"."""
    return int(dataset.split("frames/")[1][:3])


def assert_refused(message: str, path, dataset: str, wrong: str) -> None:
    assert message.count("\n") == 0, message
    assert str(path) in message and dataset in message and wrong in message, message


def test_open_map_refuses_it(damaged):
    path, dataset, wrong = damaged
    frame = {"frame": frame_of(dataset)} if "frames/" in dataset else {}
    with pytest.raises(ds.MapFileError) as refused:
        ds.open_map(path, **frame)
    assert_refused(str(refused.value), path, dataset, wrong)


def test_info_and_plot_refuse_it(damaged, capsys):
    path, dataset, wrong = damaged
    frame = ["--frame", str(frame_of(dataset))] if "frames/" in dataset else []
    assert cli.info_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert_refused(err.strip(), path, dataset, wrong)
    picture = path.with_suffix(".png")
    assert cli.plot_main([str(path), "-o", str(picture), *frame]) == 2
    assert_refused(capsys.readouterr().err.strip(), path, dataset, wrong)
    assert not picture.exists()


def test_zoom_reader_refuses_damaged_frames(originals, tmp_path):
    path = tmp_path / "zoom.h5"
    for edit, dataset in [(set_item("frames/001/outcome", (0, 0), 17), "frames/001/outcome"),
                          (change("frames/000/steps", np.transpose), "frames/000/steps")]:
        shutil.copy(originals / "zoom.h5", path)
        with h5py.File(path, "a") as f:
            edit(f)
        with pytest.raises(ds.MapFileError, match=f"dataset '{dataset}'"):
            read_zoom(path)


def test_zoom_file_structure_is_checked(originals, tmp_path):
    path = tmp_path / "zoom.h5"
    for edit, message in [
        (lambda f: f.move("frames/001", "frames/007"), "holds frames 000, 007, not numbered 000 to 001"),
        (lambda f: f.attrs.__setitem__("zoom_frames", 1), "holds 2 frames of a zoom of 1"),
        (lambda f: f.attrs.__setitem__("zoom_center", np.array([1.0, 2.0, 3.0])), "attribute 'zoom_center' is shaped"),
        (lambda f: f["frames/001"].attrs.__delitem__("zoom_center"), "group 'frames/001' does not say it is frame 1"),
        (lambda f: f["frames/001"].attrs.__setitem__("zoom_frame", 0), "group 'frames/001' does not say it is frame 1"),
    ]:
        shutil.copy(originals / "zoom.h5", path)
        with h5py.File(path, "a") as f:
            edit(f)
        with pytest.raises(ds.MapFileError, match=message) as refused:
            read_zoom(path)
        assert str(path) in str(refused.value)


def test_intact_files_still_open(originals):
    """The checks refuse edits, not the files the tools write (including a big-endian copy, which h5py
    converts)."""
    assert ds.open_map(originals / "plain.h5").recorded.loss.shape == (2, 61)
    assert ds.open_map(originals / "row.h5").outcome.shape == (1, 9)
    assert ds.open_map(originals / "refined.h5").refinement.min() == -1
    assert len(read_zoom(originals / "zoom.h5")[2]) == 2


def test_a_big_endian_copy_opens(originals, tmp_path):
    path = tmp_path / "plain.h5"
    shutil.copy(originals / "plain.h5", path)
    with h5py.File(path, "a") as f:
        change("steps", lambda v: v.astype(">i4"))(f)
        change("score", lambda v: v.astype(">f8"))(f)
    back, original = ds.open_map(path), ds.open_map(originals / "plain.h5")
    np.testing.assert_array_equal(back.fields["steps"], original.fields["steps"])
    assert back.fields["steps"].dtype == np.int32 and back.fields["score"].dtype.isnative
