"""Adaptive refinement: equal to the full map where it must be, cheaper, resumable."""

import subprocess
import shutil

import numpy as np
import pytest
from helpers import assert_same_fields, write_config

import descentsim as ds
from descentsim.journal import PointJournal, journal_path
from descentsim.refine import (
    check_levels, containing_cells, lattice, mixed_cells, nearest, refine_map, refine_map_to_file, widen,
)

SCALAR_MAPS = {
    "quadratic": ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 129), y=ds.Axis("a", 0.5, 2.0, 65), steps=300),
    "double-well": ds.MapSpec(
        model="double-well", x=ds.Axis("lr", 0.01, 1.2, 129), y=ds.Axis("w0", -2.5, 2.5, 129), steps=2000
    ),
    "relu-neuron": ds.MapSpec(
        model="relu-neuron", x=ds.Axis("lr", 0.01, 10.0, 129, "log"), y=ds.Axis("w0", -3.0, 3.0, 65), steps=300
    ),
    "uv": ds.MapSpec(
        model="uv", x=ds.Axis("lr", 0.05, 4.0, 256), y=ds.Axis("init_scale", 0.5, 1.5, 64), steps=1000,
        params={"m": 256, "seed": 0},
    ),
}


@pytest.fixture(scope="module", params=list(SCALAR_MAPS))
def full_and_spec(request):
    spec = SCALAR_MAPS[request.param]
    return request.param, spec, ds.run_map(spec)


def uniform_cells_agree(refined, full, levels):
    """Wherever ``full`` has one outcome over a cell of the coarsest lattice, ``refined`` has it too; returns
    how many cells were uniform."""
    ny, nx = full.shape
    ys, xs = lattice(ny, levels), lattice(nx, levels)
    uniform = 0
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            cell = (slice(y0, y1 + 1), slice(x0, x1 + 1))
            if (full.outcome[cell] == full.outcome[y0, x0]).all():
                np.testing.assert_array_equal(refined.outcome[cell], full.outcome[cell], err_msg=f"cell at {y0}, {x0}")
                uniform += 1
    return uniform


@pytest.mark.parametrize("levels, margin", [(3, 1), (5, 1), (3, 0)])
def test_refined_map_equals_full_map_where_cells_are_uniform(full_and_spec, levels, margin):
    name, spec, full = full_and_spec
    refined = refine_map(spec, levels, margin)
    computed = refined.refinement >= 0
    for field in full.fields:  # computed points: the full map's bytes
        np.testing.assert_array_equal(refined.fields[field][computed], full.fields[field][computed], err_msg=field)
    assert uniform_cells_agree(refined, full, levels) > 0
    assert refined.provenance["computed_points"] == computed.sum() < 0.4 * full.outcome.size
    if margin == 1 and name != "uv":  # smooth boundaries: nothing missed at all
        np.testing.assert_array_equal(refined.outcome, full.outcome)


def test_zero_levels_is_the_full_map():
    spec = SCALAR_MAPS["quadratic"]
    refined = refine_map(spec, 0)
    assert_same_fields(refined, ds.run_map(spec))
    assert (refined.refinement == 0).all()


def test_refinement_is_the_same_on_both_engines_and_any_thread_count():
    spec = SCALAR_MAPS["relu-neuron"]
    a = refine_map(spec, 4, backend="numpy")
    b = refine_map(spec, 4, backend="cython", threads=2)
    c = refine_map(spec, 4, backend="cython", threads=1)
    for other in (b, c):
        assert_same_fields(a, other)
        np.testing.assert_array_equal(a.refinement, other.refinement)


def test_one_row_map():
    spec = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 1001), steps=300)
    refined, full = refine_map(spec, 6), ds.run_map(spec)
    np.testing.assert_array_equal(refined.outcome, full.outcome)
    assert refined.provenance["computed_points"] < 100


def test_lattice_and_cells():
    np.testing.assert_array_equal(lattice(10, 2), [0, 4, 8, 9])
    np.testing.assert_array_equal(lattice(9, 2), [0, 4, 8])
    np.testing.assert_array_equal(lattice(1, 3), [0])
    coarse, fine = lattice(10, 2), lattice(10, 1)  # 0 2 4 6 8 9
    lo, hi = containing_cells(coarse, fine)
    np.testing.assert_array_equal(lo, [0, 0, 0, 1, 1, 2])  # 4 sits between cells 0 and 1
    np.testing.assert_array_equal(hi, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest(np.array([0, 4, 8]), np.array([0, 1, 2, 3, 6, 7])), [0, 0, 0, 1, 1, 2])
    corners = np.array([[1, 1, 2], [1, 1, 1]])
    np.testing.assert_array_equal(mixed_cells(corners), [[False, True]])
    np.testing.assert_array_equal(mixed_cells(np.array([[1, 1, 2]])), [[False, True]])
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    assert widen(mask, 1).sum() == 9 and widen(mask, 2).all() and widen(mask, 0).sum() == 1


@pytest.mark.parametrize("levels, margin, message", [
    (-1, 1, "from 0 to"), (2.5, 1, "from 0 to"), (7, 1, "--refine 6 or less"), (2, -1, "margin"),
])
def test_bad_levels_are_refused(levels, margin, message):
    with pytest.raises(ds.SpecError, match=message):
        check_levels(SCALAR_MAPS["quadratic"], levels, margin)  # longer axis 129: 6 levels at most


def test_stopped_run_resumes_to_the_same_map(tmp_path):
    spec = SCALAR_MAPS["relu-neuron"]
    out = tmp_path / "refined.h5"
    whole = refine_map(spec, 4)
    checks = iter(range(10**6))
    with pytest.raises(ds.errors.RunInterrupted) as stopped:  # stop after the coarse grid's first block
        refine_map_to_file(spec, out, 4, stop_requested=lambda: next(checks) >= 1)
    assert stopped.value.unit == "points" and stopped.value.done > 0 and not out.exists()
    partial = journal_path(out)
    with open(partial, "ab") as f:  # a torn record, as a kill mid-append leaves
        f.write(b"PNTS\x00\x00")
    with pytest.raises(ds.MapFileError, match="--force"):
        refine_map_to_file(spec, out, 3, resume=True)  # other levels
    logged = []
    resumed = refine_map_to_file(spec, out, 4, resume=True, log=logged.append)
    assert any("from the partial run" in line for line in logged)
    assert resumed.provenance["points_resumed"] == stopped.value.done
    for cmap in (resumed, ds.open_map(out)):
        assert_same_fields(whole, cmap)
        np.testing.assert_array_equal(whole.refinement, cmap.refinement)
    assert not partial.exists()


def test_point_journal_lookup(tmp_path):
    spec = SCALAR_MAPS["quadratic"]
    journal = PointJournal.create(tmp_path / "j", spec, {"levels": 1, "margin": 1})
    values = {name: np.arange(3).astype(info.dtype) for name, info in ds.fields.FIELDS.items()}
    journal.append(1, np.array([7, 3, 11]), values)
    found, fields = journal.lookup(np.array([3, 4, 11, 100]))
    np.testing.assert_array_equal(found, [True, False, True, False])
    np.testing.assert_array_equal(fields["steps"], [1, 2])
    journal.close()
    assert PointJournal.resume(tmp_path / "j", spec, {"levels": 1, "margin": 1}).points == 3


def test_cli_refine_writes_the_refinement(tmp_path):
    config = write_config(tmp_path / "q.toml", SCALAR_MAPS["quadratic"].to_toml())
    out = tmp_path / "q.h5"
    exe = shutil.which("descentsim-map")
    run = subprocess.run([exe, str(config), "-o", str(out), "--refine", "3"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "fewer than the full grid" in run.stdout and "level 0 (stride 1)" in run.stderr
    cmap = ds.open_map(out)
    np.testing.assert_array_equal(cmap.outcome, ds.run_map(SCALAR_MAPS["quadratic"]).outcome)
    assert cmap.refinement.min() == -1 and cmap.refinement.max() == 3
    assert "refine_level" in cmap.to_xarray()
    info = subprocess.run([shutil.which("descentsim-info"), str(out)], capture_output=True, text=True)
    assert "# refinement" in info.stdout
    again = subprocess.run([exe, str(config), "-o", str(out), "--refine", "3", "--resume"], capture_output=True, text=True)
    assert again.returncode == 0 and "already complete" in again.stdout
    bad = subprocess.run([exe, str(config), "-o", str(tmp_path / "b.h5"), "--refine", "9"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--refine 6 or less" in bad.stderr
    assert not (tmp_path / "b.h5").exists() and not journal_path(tmp_path / "b.h5").exists()
