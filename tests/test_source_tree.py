"""Run from the source tree, whose descentsim has no compiled kernels and shadows the installed package:
``python -m pytest`` stops at once with one line, and a script says in one line that it falls back to the
NumPy reference, why, and the fix."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: ``python -m MODULE ...`` or ``python SCRIPT.py ...`` with the working directory first on sys.path, where the
#: source tree shadows the installed package. An editable install's finder comes before sys.path, so it is
#: dropped: the tree wins, as it does over a plain ``pip install .``.
SHADOWED = textwrap.dedent("""
    import runpy, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    target, sys.argv = sys.argv[1], sys.argv[1:]
    if target.endswith(".py"):
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
""")


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory) -> Path:
    """A copy of the source tree: the package's Python files (no compiled kernels), the tests, pyproject.toml."""
    tree = tmp_path_factory.mktemp("checkout")
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")
    for part in ("descentsim", "tests"):
        shutil.copytree(ROOT / part, tree / part, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def _python(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SHADOWED, *args], cwd=tree, capture_output=True, text=True,
                          timeout=120)


def test_python_m_pytest_in_the_source_tree_stops_at_once_in_one_line(source_tree):
    result = _python(source_tree, "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert output.count("\n") == 1 and "collected" not in output
    assert "shadows the installed one" in output and "'pytest', not 'python -m pytest'" in output


def test_a_script_in_the_source_tree_says_it_falls_back_and_why(source_tree):
    script = source_tree / "first_map.py"
    script.write_text(textwrap.dedent("""
        import descentsim as ds
        m = ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.5, 3.0, 6), steps=20))
        print(m.provenance["backend"])
        try:
            ds.run_map(m.spec, backend="cython")
        except ds.SpecError as exc:
            print(exc)
    """))
    result = _python(source_tree, str(script))
    assert result.returncode == 0, result.stderr
    backend, refusal = result.stdout.splitlines()
    warning = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert backend == "numpy" and len(warning) == 1, result.stderr
    for words in ("compiled kernels cannot be imported", "shadows the installed one", "run from another directory"):
        assert words in warning[0] and words in refusal
    assert "NumPy reference" in warning[0] and refusal.startswith("the cython backend is not available")
