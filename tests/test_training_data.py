"""A network map records its data (name, sha256) in its provenance and keeps them in its file when small enough,
so the file is self-contained: ``data_file = "MAP.h5"`` trains on them again, bit for bit (issue 12)."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import descentsim as ds
from descentsim import datasets
from descentsim.boundary import chance_level, learned
from descentsim.convergence_map import run_map_to_file
from descentsim.errors import MapFileError, SpecError

PARAMS = {"data": "xor", "samples": 12, "noise": 0.2, "widths": "3", "activation": "tanh"}


def network_spec(**params) -> ds.MapSpec:
    return ds.MapSpec(model="network", x=ds.Axis("lr", 0.1, 3.0, 5, "log"), y=ds.Axis("init_scale", 0.5, 2.0, 3),
                      steps=40, params={**PARAMS, **params})


def test_the_file_keeps_the_data_and_their_provenance(tmp_path):
    spec = network_spec()
    out = tmp_path / "xor.h5"
    m = run_map_to_file(spec, out)  # through the journal, as descentsim-map
    want = datasets.load_data(spec.params)
    assert m.provenance["data_sha256"] == want.content_hash
    assert (m.provenance["data_name"], m.provenance["data_samples"], m.provenance["data_features"],
            m.provenance["data_classes"], m.provenance["data_task"]) == ("xor", 12, 2, 2, "classification")
    with h5py.File(out) as f:
        assert np.array_equal(f["training_data/X"][...], want.X) and np.array_equal(f["training_data/y"][...], want.y)
        assert f["training_data"].attrs["content_hash"] == want.content_hash
    again = ds.open_map(out)
    assert again.training.content_hash == want.content_hash and again.training.classes == 2
    again.save(tmp_path / "copy.h5")  # saving a map read from a file keeps its data
    assert ds.open_map(tmp_path / "copy.h5").training.content_hash == want.content_hash


def test_a_map_file_is_a_data_file_and_gives_the_same_bits(tmp_path):
    spec = network_spec()
    first = ds.run_map(spec)
    first.save(tmp_path / "first.h5")
    params = {k: v for k, v in spec.params.items() if k not in ("samples", "noise")}
    again = ds.run_map(spec.replace(params={**params, "data": "file", "data_file": str(tmp_path / "first.h5")}))
    assert again.provenance["data_sha256"] == first.provenance["data_sha256"]
    for name, values in first.fields.items():
        assert np.array_equal(values, again.fields[name], equal_nan=True), name


def test_regression_data_come_back_as_a_regression(tmp_path):
    spec = network_spec(data="linear", samples=6, features=1, noise=0.0, slope=2.0, intercept=1.0)
    ds.run_map(spec).save(tmp_path / "linear.h5")
    back = datasets.load_data({"data": "file", "data_file": str(tmp_path / "linear.h5")})
    assert back.task == "regression" and back.content_hash == ds.run_map(spec).provenance["data_sha256"]


def test_no_data_kept_where_a_data_knob_is_swept_or_the_model_has_none(tmp_path):
    swept = ds.MapSpec(model="network", x=ds.Axis("lr", 0.1, 1.0, 2), y=ds.Axis("data_seed", 0, 2, 3), steps=5,
                       params={**PARAMS})
    m = ds.run_map(swept)
    assert m.training is None and not any(key.startswith("data_") for key in m.provenance)
    m.save(tmp_path / "swept.h5")
    with h5py.File(tmp_path / "swept.h5") as f:
        assert "training_data" not in f
    quadratic = ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1.0, 2), steps=5))
    assert quadratic.training is None
    quadratic.save(tmp_path / "q.h5")
    with pytest.raises(SpecError, match="holds no training data"):
        datasets.load_data({"data": "file", "data_file": str(tmp_path / "q.h5")})


def test_data_larger_than_the_limit_are_recorded_not_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "EMBED_LIMIT_BYTES", 100)
    m = ds.run_map(network_spec())
    assert m.training is None and m.provenance["data_sha256"]
    m.save(tmp_path / "big.h5")
    with h5py.File(tmp_path / "big.h5") as f:
        assert "training_data" not in f


def test_damaged_kept_data_are_refused_in_one_line(tmp_path):
    path = tmp_path / "m.h5"
    ds.run_map(network_spec()).save(path)
    with h5py.File(path, "r+") as f:  # an edit that keeps HDF5's own checksums right: only the sha256 tells
        x = f["training_data/X"]
        x[0, 0] = x[0, 0] + 1.0
    with pytest.raises(MapFileError, match="do not match their sha256") as caught:
        ds.open_map(path)
    assert "\n" not in str(caught.value)
    run = subprocess.run([str(Path(sys.executable).parent / "descentsim-info"), str(path)], capture_output=True, text=True)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "sha256" in run.stderr


def test_a_map_opens_and_is_judged_without_its_data_file(tmp_path):
    """The map keeps its data, so opening it, learned / chance level and descentsim-info need no data file: the
    task (task = auto) and the class counts come from the kept data."""
    data = datasets.load_data({**PARAMS})
    rows = ["a,b,label", *(f"{x0!r},{x1!r},{label}" for (x0, x1), label in zip(data.X.tolist(), data.y.tolist()))]
    (tmp_path / "xor.csv").write_text("\n".join(rows) + "\n")
    params = {key: value for key, value in PARAMS.items() if key not in ("data", "samples", "noise")}
    spec = network_spec().replace(params={**params, "data": "file", "data_file": str(tmp_path / "xor.csv")})
    out = tmp_path / "m.h5"
    made = run_map_to_file(spec, out)
    (tmp_path / "xor.csv").unlink()
    m = ds.open_map(out)
    assert m.spec.model_def.classifier and m.training.content_hash == made.provenance["data_sha256"]
    assert np.array_equal(learned(m), learned(made)) and np.array_equal(chance_level(m), chance_level(made))
    run = subprocess.run([str(Path(sys.executable).parent / "descentsim-info"), str(out)], capture_output=True,
                         text=True)
    assert run.returncode == 0 and "learned" in run.stdout, run.stderr


def test_the_data_are_loaded_once_a_map(monkeypatch):
    """However many tiles and groups ask (16 tiles here), the network loads its data set once."""
    from descentsim.models import network

    loads = []
    monkeypatch.setattr(network, "load_data", lambda values: loads.append(1) or datasets.load_data(values))
    spec = ds.MapSpec(model="network", x=ds.Axis("lr", 0.1, 1.0, 256), y=ds.Axis("init_scale", 0.5, 2.0, 256),
                      steps=1, params={**PARAMS})
    ds.run_map(spec)
    assert len(loads) == 1
