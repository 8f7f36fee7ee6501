import pytest
from helpers import SLOW_CONFIG

import descentsim as ds


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    """Both precisions of the arithmetic."""
    return request.param


@pytest.fixture(scope="session")
def slow_reference():
    """The uninterrupted map of ``helpers.SLOW_CONFIG`` (the kill and resume tests' subject)."""
    return ds.run_map(ds.MapSpec.from_toml_text(SLOW_CONFIG))
