"""Everything is validated before anything is created: a refused run leaves no file, so the corrected
rerun is not refused in turn."""

import shutil
import subprocess

import pytest
from helpers import write_config

QUADRATIC = """
model = "quadratic"
steps = 50
[x]
name = "lr"
start = 0.1
stop = 3.0
n = 16
[y]
name = "{y}"
start = {start}
stop = {stop}
n = 8
"""


def descentsim_map(config, out, *extra):
    return subprocess.run([shutil.which("descentsim-map"), str(config), "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=120)


def refused(result, words):
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and words in line, line


@pytest.mark.parametrize("settings, words", [
    (["steps=100000000", "schedule=cosine"], "schedule is tabulated per step"),
    (["steps=100000000", "warmup_steps=0"], "schedule is tabulated per step"),  # the warm-up swept on y
])
def test_a_schedule_too_long_is_refused_before_any_file(tmp_path, settings, words):
    config = write_config(tmp_path / "q.toml", QUADRATIC.format(y="warmup_steps", start=0, stop=70))
    extra = [f"--set={s}" for s in settings if not s.startswith("warmup")]
    refused(descentsim_map(config, tmp_path / "out.h5", *extra), words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.toml"]
    assert descentsim_map(config, tmp_path / "out.h5").returncode == 0  # the corrected rerun


def test_a_model_too_wide_is_refused_before_any_file(tmp_path):
    config = write_config(tmp_path / "m.toml", 'model = "mlp"\nsteps = 40\n[x]\nname = "lr1"\nstart = 1.0\n'
                          'stop = 10.0\nn = 4\n[y]\nname = "lr2"\nstart = 1.0\nstop = 10.0\nn = 4\n')
    refused(descentsim_map(config, tmp_path / "out.h5", "--set", "width=4096"), "memory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.toml"]
    assert descentsim_map(config, tmp_path / "out.h5", "--set", "width=4").returncode == 0


@pytest.mark.parametrize("suffix", [".partial", ".lock"])
def test_a_directory_where_a_run_keeps_its_files(tmp_path, suffix):
    config = write_config(tmp_path / "q.toml", QUADRATIC.format(y="a", start=0.5, stop=2.0))
    (tmp_path / f"out.h5{suffix}").mkdir()
    refused(descentsim_map(config, tmp_path / "out.h5", "--force"), f"out.h5{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5" + suffix, "q.toml"]


@pytest.mark.parametrize("tool", ["descentsim-map", "descentsim-zoom"])
def test_an_output_name_too_long_for_what_is_made_beside_it(tmp_path, tool):
    """Names of 244–255 bytes are legal, but OUT.partial.new (and OUT.lock) would not be."""
    config = write_config(tmp_path / "q.toml", QUADRATIC.format(y="a", start=0.5, stop=2.0))
    command = [shutil.which(tool), str(config), "-o", str(tmp_path / ("m" * 248 + ".h5"))]
    refused(subprocess.run(command, capture_output=True, text=True, timeout=120), "shorten the name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.toml"]


def test_a_long_picture_name_is_fine(tmp_path):
    """descentsim-plot makes no journal and no lock beside its picture: any legal name will do."""
    config = write_config(tmp_path / "q.toml", QUADRATIC.format(y="a", start=0.5, stop=2.0))
    assert descentsim_map(config, tmp_path / "map.h5").returncode == 0
    name = "m" * 251 + ".png"
    result = subprocess.run([shutil.which("descentsim-plot"), str(tmp_path / "map.h5"), "-o", str(tmp_path / name)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / name).exists()
