"""HDF5 map files: round trip, self-description, refusal of foreign and newer files, atomic writes."""

import os

import h5py
import numpy as np
import pytest
from helpers import assert_same_fields

import descentsim as ds
from descentsim import Axis, MapSpec
from descentsim.store import FORMAT_VERSION

SPEC = MapSpec(
    model="relu-neuron",
    x=Axis("lr", 1e-2, 5.0, 37, "log"),
    y=Axis("w0", -2.0, 2.0, 9),
    steps=200,
    dtype="float32",
    params={"samples": 16},
    thresholds={"stuck_tol": 1e-5},
)


@pytest.fixture(scope="module")
def cmap():
    return ds.run_map(SPEC)


def test_round_trip(tmp_path, cmap):
    path = tmp_path / "map.h5"
    cmap.save(path)
    back = ds.open_map(path)
    assert back.spec == cmap.spec
    assert_same_fields(cmap, back)
    np.testing.assert_array_equal(back.x, cmap.x)
    np.testing.assert_array_equal(back.y, cmap.y)
    assert back.provenance["backend"] == "cython"
    assert back.provenance["threads"] == cmap.provenance["threads"]
    assert back.fraction(ds.Outcome.CONVERGED) == cmap.fraction(ds.Outcome.CONVERGED)


def test_one_row_map_round_trip(tmp_path):
    spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 50), steps=100)
    m = ds.run_map(spec)
    m.save(tmp_path / "row.h5")
    back = ds.open_map(tmp_path / "row.h5")
    assert back.y is None and back.outcome.shape == (1, 50)
    assert_same_fields(m, back)


def test_file_describes_itself_to_h5py_alone(tmp_path, cmap):
    path = tmp_path / "map.h5"
    cmap.save(path)
    with h5py.File(path) as f:
        assert f["outcome"].shape == (9, 37) and f["outcome"].dtype == np.uint8
        assert [d.label for d in f["outcome"].dims] == ["w0", "lr"]
        assert f["outcome"].dims[1][0].name == "/lr"
        assert f["outcome"].compression == "gzip" and f["outcome"].chunks is not None
        assert "converged" in f["outcome"].attrs["flag_meanings"]
        assert MapSpec.from_toml_text(f.attrs["spec"]) == SPEC
        for key in ("descentsim_version", "backend", "dtype", "threads", "ranks", "wall_time_s", "created"):
            assert key in f.attrs


def test_xarray_opens_the_file(tmp_path, cmap):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    path = tmp_path / "map.h5"
    cmap.save(path)
    with xr.open_dataset(path, engine="h5netcdf") as ds_:
        assert ds_["outcome"].dims == ("w0", "lr")
        np.testing.assert_array_equal(ds_["lr"].values, cmap.x)
        np.testing.assert_array_equal(ds_["score"].values, cmap.fields["score"])


def test_refuses_foreign_hdf5(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["outcome"] = np.zeros((2, 2))
    with pytest.raises(ds.MapFileError, match="not written by descentsim"):
        ds.open_map(path)


def test_refuses_non_hdf5_and_missing(tmp_path):
    (tmp_path / "notes.h5").write_text("hello")
    with pytest.raises(ds.MapFileError, match="not an HDF5 file"):
        ds.open_map(tmp_path / "notes.h5")
    with pytest.raises(ds.MapFileError, match="no such map file"):
        ds.open_map(tmp_path / "absent.h5")


def test_refuses_newer_format(tmp_path, cmap):
    path = tmp_path / "map.h5"
    cmap.save(path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ds.MapFileError, match="newer than this descentsim reads.*upgrade"):
        ds.open_map(path)


def test_reads_format_1_files_without_the_newer_fields(tmp_path, cmap):
    """A map written before batch_loss and classes_predicted existed reads them as not computed."""
    path = tmp_path / "map.h5"
    cmap.save(path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
        del f["batch_loss"], f["classes_predicted"]
    old = ds.open_map(path)
    np.testing.assert_array_equal(old.outcome, cmap.outcome)
    assert np.isnan(old.fields["batch_loss"]).all() and (old.fields["classes_predicted"] == -1).all()
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(ds.MapFileError, match="dataset 'batch_loss' is missing; the file was edited or damaged"):
        ds.open_map(path)


def test_failed_write_leaves_nothing(tmp_path, cmap, monkeypatch):
    """A crash in the middle of writing leaves neither the output nor a temporary file."""
    import descentsim.store as store

    def broken(f, m):
        f.attrs["descentsim_format"] = "descentsim-map"
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "write_node", broken)
    with pytest.raises(RuntimeError):
        cmap.save(tmp_path / "map.h5")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_file_and_leaves_no_temporary(tmp_path, cmap):
    path = tmp_path / "map.h5"
    path.write_bytes(b"old")
    cmap.save(path)
    assert ds.open_map(path).spec == SPEC
    assert [p.name for p in tmp_path.iterdir()] == ["map.h5"]


def test_damaged_files_are_one_line_errors(tmp_path, cmap):
    path = tmp_path / "map.h5"
    cmap.save(path)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = "two"
    with pytest.raises(ds.MapFileError, match="damaged or incomplete"):
        ds.open_map(path)
    cmap.save(path)
    with h5py.File(path, "a") as f:
        del f["score"]
        f.create_group("score")
    with pytest.raises(ds.MapFileError, match="dataset 'score' is not a dataset; the file was edited or damaged"):
        ds.open_map(path)


def test_file_is_readable_by_others(tmp_path, cmap):
    """mkstemp makes private files; a map is written with the usual umask-based mode."""
    old = os.umask(0o022)
    try:
        cmap.save(tmp_path / "map.h5")
    finally:
        os.umask(old)
    assert (tmp_path / "map.h5").stat().st_mode & 0o777 == 0o644


def test_long_file_names(tmp_path, cmap):
    path = tmp_path / ("a" * 240 + ".h5")
    cmap.save(path)
    assert ds.open_map(path).spec == SPEC
