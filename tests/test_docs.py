"""The examples in the docstrings run and print what they say."""

import doctest

import pytest

import descentsim
from descentsim import boundary, convergence_map, refine, runner, spec, zoom

MODULES = [descentsim, spec, runner, convergence_map, refine, zoom, boundary]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    names = {name: getattr(descentsim, name) for name in descentsim.__all__}
    names.update(ZoomSettings=zoom.ZoomSettings, zoom=zoom.zoom)
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
