"""Zoom sequences: windows, boundary following, the precision limit, files, resume and animations."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from helpers import assert_same_fields, write_config

import descentsim as ds
from descentsim import cli
from descentsim.zoom import (
    MIN_ULPS, ZoomSettings, frame_spec, plan, read_zoom, render_frames, save_animation, window, write_zoom, zoom,
)

QUADRATIC = ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.05, 4.0, 48), y=ds.Axis("a", 0.5, 2.0, 24), steps=200)


def test_windows_narrow_by_the_factor_around_the_center():
    lin = ds.Axis("lr", 1.0, 3.0, 11)
    assert window(lin, 2.5, 0, 2.0) == lin
    narrowed = window(lin, 2.5, 3, 2.0)
    assert (narrowed.start, narrowed.stop) == (2.375, 2.625)
    log = ds.Axis("lr", 1e-3, 10.0, 11, "log")
    narrowed = window(log, 0.1, 2, 4.0)  # 4 decades / 16, centred on 10^-1
    assert np.log10([narrowed.start, narrowed.stop]) == pytest.approx([-1.125, -0.875])
    falling = window(ds.Axis("w0", 3.0, -3.0, 5), 0.0, 1, 3.0)
    assert (falling.start, falling.stop) == (1.0, -1.0)
    single = ds.Axis("a", 1.0, 2.0, 1)
    assert window(single, 1.7, 4, 2.0) == single  # one point: nothing to narrow
    with pytest.raises(ds.SpecError, match="not on the log axis"):
        window(log, -0.1, 1, 2.0)


def test_zoom_follows_the_boundary():
    frames = zoom(QUADRATIC, ZoomSettings(frames=6, factor=3.0, inside="converged"))
    for i, cmap in enumerate(frames):
        assert 0 < cmap.fraction(ds.Outcome.CONVERGED) < 1, f"frame {i} lost the boundary"
        lr, a = cmap.provenance["zoom_center"]
        width = cmap.spec.x.stop - cmap.spec.x.start
        assert width == pytest.approx(3.95 / 3.0**i)
        if i:  # centred next to lr·a = 2, within a grid step of the frame before (slow convergence shifts it a little)
            assert abs(lr * a - 2) < 0.15 / 3.0 ** (i - 1) + 0.05


def test_fixed_center():
    frames = zoom(QUADRATIC, ZoomSettings(frames=3, factor=2.0, center=(1.5, 1.0)))
    assert [f.provenance["zoom_center"] for f in frames] == [(1.5, 1.0)] * 3
    assert (frames[2].spec.x.start + frames[2].spec.x.stop) / 2 == pytest.approx(1.5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_precision_limit_is_found_before_any_work(dtype):
    spec = QUADRATIC.replace(dtype=dtype)
    center = (2.0, 1.0)
    eps = np.finfo(dtype).eps
    # neighbouring lr values are 3.95 / 47 / 2^i apart, around 2 + width/2: the first frame below 8 ulps
    first_bad = next(i for i in range(200) if 3.95 / 47 / 2.0**i < MIN_ULPS * eps * (2.0 + 3.95 / 2.0 ** (i + 1)))
    with pytest.raises(ds.SpecError, match=f"frame {first_bad} is too narrow.*{dtype}.*at most {first_bad} frames"):
        plan(spec, ZoomSettings(frames=first_bad + 1, factor=2.0, center=center))
    plan(spec, ZoomSettings(frames=first_bad, factor=2.0, center=center))
    frame_spec(spec, center, first_bad - 1, 2.0)


def test_zero_steps_and_windows_through_lr_zero_are_refused(tmp_path, capsys):
    """steps = 0 (every point stuck) and a frame whose lr window reaches 0 or below: refused before any work."""
    config = write_config(tmp_path / "q.toml", QUADRATIC.to_toml())
    out = tmp_path / "zoom.h5"
    for extra, message in [
        (["--set", "steps=0"], "steps must be a whole number from 1 to 2147483647, got 0"),
        (["--center", "0.1,1", "--frames", "2"], "knob 'lr' must be > 0, got -0.8875"),
    ]:
        assert cli.zoom_main([str(config), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.toml"]


def test_bad_settings_are_refused():
    for kwargs, message in [({"frames": 0}, "frames"), ({"factor": 1.0}, "above 1"), ({"inside": "happy"}, "unknown outcome")]:
        with pytest.raises(ds.SpecError, match=message):
            ZoomSettings(**kwargs)


def test_file_round_trip_and_resume_gives_the_same_frames(tmp_path):
    settings = ZoomSettings(frames=4, factor=2.0, inside="converged")
    whole = zoom(QUADRATIC, settings)
    out = tmp_path / "zoom.h5"
    write_zoom(out, QUADRATIC, settings, whole[:2])  # as a kill after frame 1 leaves it
    spec, stored, frames, complete = read_zoom(out)
    assert (spec, stored, len(frames), complete) == (QUADRATIC, settings, 2, False)
    resumed = zoom(spec, stored, done=frames)
    for a, b in zip(whole, resumed):
        assert_same_fields(a, b)
        assert a.spec == b.spec
    write_zoom(out, QUADRATIC, settings, resumed)
    assert read_zoom(out)[3] is True
    whole[0].save(tmp_path / "map.h5")
    with pytest.raises(ds.MapFileError, match="not written by descentsim-zoom"):
        read_zoom(tmp_path / "map.h5")


def test_animations(tmp_path, monkeypatch):
    frames = zoom(QUADRATIC, ZoomSettings(frames=3, factor=2.0, center=(1.5, 1.0)))
    images = render_frames(frames, 2.0, dpi=40)
    assert len({image.shape for image in images}) == 1
    gif = Image.open(save_animation(images, tmp_path / "z.gif"))
    assert gif.n_frames == 3 and gif.size == images[0].shape[1::-1]
    fake = tmp_path / "bin" / "ffmpeg"  # stands in for ffmpeg: keeps the raw frames it is sent
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nfor last; do :; done\ncat > "$last"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    raw = save_animation(images, tmp_path / "z.mp4")
    height, width = (d - d % 2 for d in images[0].shape[:2])
    assert raw.stat().st_size == 3 * height * width * 3


def test_descentsim_zoom_command(tmp_path):
    config = write_config(tmp_path / "q.toml", QUADRATIC.to_toml())
    exe = shutil.which("descentsim-zoom")
    out = tmp_path / "zoom.h5"
    args = [exe, str(config), "-o", str(out), "--frames", "3", "--factor", "3", "--inside", "converged",
            "--animation", str(tmp_path / "z.gif")]
    run = subprocess.run(args, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "frame 2:" in run.stderr and Image.open(tmp_path / "z.gif").n_frames == 3
    assert len(read_zoom(out)[2]) == 3
    again = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert again.returncode == 0 and "already complete" in again.stdout
    (tmp_path / "z.gif").unlink()  # as a kill while drawing leaves it: resume draws the animation
    again = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert again.returncode == 0 and Image.open(tmp_path / "z.gif").n_frames == 3
    for extra, message in [
        ([], "exists; use --resume"),
        (["--resume", "--frames", "4"], "holds another zoom"),
        (["--center", "x"], "is not X,Y"),
        (["--animation", str(tmp_path / "z.avi")], "end it in .gif or .mp4"),
        (["--frames", "80", "--force"], "frame 28 is too narrow"),
    ]:
        bad = subprocess.run(args + extra, capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, (extra, bad.stderr)
