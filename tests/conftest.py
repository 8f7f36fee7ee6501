import pytest


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    """Both precisions of the arithmetic."""
    return request.param
