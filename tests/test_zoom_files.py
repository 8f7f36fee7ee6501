"""Every file a tool writes opens with every tool: zoom files in open_map, descentsim-info and descentsim-plot
(one frame, the last by default, chosen with frame= / --frame), and maps whatever wrote them."""

import pytest
from helpers import assert_same_fields

import descentsim as ds
from descentsim import cli
from descentsim import refine_map
from descentsim.zoom import ZoomSettings, read_zoom, write_zoom, zoom

SPEC = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 24), y=ds.Axis("a", 0.5, 2.0, 12), steps=100)
ROW = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 24), steps=100)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A complete zoom of 3 frames, an interrupted one (2 of 4), a one-row zoom, a map and a refined map."""
    where = tmp_path_factory.mktemp("files")
    settings = ZoomSettings(frames=3, factor=2.0, center=(1.5, 1.0))
    write_zoom(where / "zoom.h5", SPEC, settings, zoom(SPEC, settings))
    following = ZoomSettings(frames=4, factor=2.0, inside="converged")
    write_zoom(where / "partial.h5", SPEC, following, zoom(SPEC, following)[:2])
    row = ZoomSettings(frames=2, factor=3.0)
    write_zoom(where / "row.h5", ROW, row, zoom(ROW, row))
    ds.run_map(SPEC).save(where / "map.h5")
    refine_map(SPEC, 2).save(where / "refined.h5")
    return where


def test_open_map_reads_a_frame_of_a_zoom(files):
    frames = read_zoom(files / "zoom.h5")[2]
    last = ds.open_map(files / "zoom.h5")
    assert last.spec == frames[-1].spec and last.provenance["zoom_frame"] == 2
    assert_same_fields(last, frames[-1])
    for frame in (0, 1, -3):
        chosen = ds.open_map(files / "zoom.h5", frame=frame)
        assert chosen.spec == frames[frame].spec
        assert_same_fields(chosen, frames[frame])


def test_open_map_refuses_frames_that_are_not_there(files):
    for frame in (3, -4, "last"):
        with pytest.raises(ds.MapFileError, match=r"has no frame .*; its frames are 0 to 2 \(the default is the last, 2\)"):
            ds.open_map(files / "zoom.h5", frame=frame)
    with pytest.raises(ds.MapFileError, match="is a map, not a zoom: it has no frame 0"):
        ds.open_map(files / "map.h5", frame=0)


def test_info_lists_the_frames(files, capsys):
    assert cli.info_main([str(files / "zoom.h5")]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 (complete)" in out and "fixed at lr = 1.5, a = 1" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "…" in line]
    assert [row[0] for row in rows] == ["0", "1", "2"]
    frames = read_zoom(files / "zoom.h5")[2]
    assert rows[2][1:6] == ["×4", "1.5,", "1", f"{frames[2].spec.x.start:.10g}", "…"]  # zoom, centre, window
    header = next(line for line in out.splitlines() if line.split()[:2] == ["frame", "zoom"])
    assert "centre lr, a" in header and "window lr" in header and "window a" in header and "converged" in header
    assert f"{frames[0].fraction(ds.Outcome.CONVERGED):.2%}" in " ".join(rows[0])
    assert "--frame N" in out

    assert cli.info_main([str(files / "partial.h5")]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 (incomplete: descentsim-zoom --resume continues it)" in out
    assert "following the boundary of converged" in out

    assert cli.info_main([str(files / "row.h5")]) == 0
    out = capsys.readouterr().out
    assert "window lr" in out and "window a" not in out


def test_info_describes_one_frame_in_full(files, capsys):
    assert cli.info_main([str(files / "zoom.h5"), "--frame", "1"]) == 0
    out = capsys.readouterr().out
    frame = read_zoom(files / "zoom.h5")[2][1]
    assert f"start = {frame.spec.x.start!r}" in out and "zoom_frame" in out and "# outcomes" in out
    assert cli.info_main([str(files / "zoom.h5"), "--frame", "7"]) == 2
    assert "its frames are 0 to 2" in capsys.readouterr().err
    assert cli.info_main([str(files / "map.h5"), "--frame", "0"]) == 2
    assert "is a map, not a zoom" in capsys.readouterr().err


def test_plot_draws_a_frame(files, capsys, tmp_path):
    assert cli.plot_main([str(files / "zoom.h5"), "-o", str(tmp_path / "last.png")]) == 0
    assert "frame 2 of the zoom" in capsys.readouterr().out and (tmp_path / "last.png").stat().st_size > 0
    assert cli.plot_main([str(files / "zoom.h5"), "-o", str(tmp_path / "first.png"), "--frame", "0"]) == 0
    assert "frame 0 of the zoom" in capsys.readouterr().out and (tmp_path / "first.png").exists()
    assert cli.plot_main([str(files / "zoom.h5"), "-o", str(tmp_path / "none.png"), "--frame", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its frames are 0 to 2" in err and not (tmp_path / "none.png").exists()


@pytest.mark.parametrize("name", ["zoom.h5", "partial.h5", "row.h5", "map.h5", "refined.h5"])
def test_every_file_opens_with_every_tool(files, name, capsys, tmp_path):
    ds.open_map(files / name)
    assert cli.info_main([str(files / name)]) == 0
    assert cli.plot_main([str(files / name), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").exists()


def test_a_run_journal_is_named_as_such(tmp_path, capsys):
    (tmp_path / "out.h5.partial").write_bytes(b"DSJ1\0\0\0\0")
    assert cli.info_main([str(tmp_path / "out.h5.partial")]) == 2
    assert "journal of an unfinished run" in capsys.readouterr().err
