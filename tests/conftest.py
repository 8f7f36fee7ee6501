import pytest
from helpers import SLOW_CONFIG

import descentsim as ds
from descentsim.backends import compiled_unavailable


def pytest_configure(config):
    """Stop at once, in one line, where the descentsim imported has no compiled kernels — ``python -m pytest``
    in the source tree, which then shadows the installed package — instead of failing every engine test slowly."""
    problem = compiled_unavailable()
    if problem:
        pytest.exit(f"descentsim's tests cannot run: {problem}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    """Both precisions of the arithmetic."""
    return request.param


@pytest.fixture(scope="session")
def slow_reference():
    """The uninterrupted map of ``helpers.SLOW_CONFIG`` (the kill and resume tests' subject)."""
    return ds.run_map(ds.MapSpec.from_toml_text(SLOW_CONFIG))
