"""The examples in the docstrings run and print what they say."""

import doctest
import re
from pathlib import Path

import pytest

import descentsim
from descentsim import agreement, boundary, convergence_map, datasets, errors, knobs, refine, runner, spec, zoom

MODULES = [descentsim, spec, runner, convergence_map, refine, zoom, boundary, errors, knobs, datasets, agreement]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    names = {name: getattr(descentsim, name) for name in descentsim.__all__}
    names.update(ZoomSettings=zoom.ZoomSettings, zoom=zoom.zoom)
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_sizes_of_a_point_and_a_tile_are_the_fields_own():
    """The README's bytes a point and a tile (what a worker sends rank 0) follow ``descentsim.fields``."""
    from descentsim.fields import POINT_BYTES
    from descentsim.tiles import TILE_POINTS

    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    tile_kb = POINT_BYTES * TILE_POINTS / 1e3
    assert f"{POINT_BYTES} bytes a point, {tile_kb:.0f} KB for a {TILE_POINTS}-point tile" in readme
    measured = re.findall(r"a (\d+)-point tile \(\d+ KB then, (\d+) KB now\)", readme)
    assert len(measured) == 2
    for points, kb in measured:
        assert kb == f"{int(points) * POINT_BYTES / 1e3:.0f}", f"a {points}-point tile takes {kb} KB in the README"
    results, mb = re.search(r"(\d+) results \((\d+) MB\) a second", readme).groups()
    assert mb == f"{int(results) * tile_kb / 1e3:.0f}"
