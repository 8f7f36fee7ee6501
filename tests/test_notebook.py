"""A map in a notebook: ``m`` alone in a cell shows its picture and a summary (``_repr_html_``)."""

import base64
import re

import numpy as np

import descentsim as ds
from descentsim import Axis, MapSpec, Outcome


def _map():
    return ds.run_map(MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 40), y=Axis("a", 0.5, 2.0, 20), steps=60,
                              params={"w0": 2.0}))


def test_a_map_shows_its_picture_and_summary_in_a_notebook():
    from matplotlib import _pylab_helpers

    m = _map()
    figures = _pylab_helpers.Gcf.get_num_fig_managers()
    html = m._repr_html_()
    assert _pylab_helpers.Gcf.get_num_fig_managers() == figures  # nothing left open in pyplot
    picture = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert picture and base64.b64decode(picture.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    for text in ("quadratic", "20 × 40", "lr", "0.1 … 3", "a", "0.5 … 2", "60", "w0 = 2"):
        assert text in html, text
    for outcome, share in m.fractions().items():
        if share > 0:
            assert f"{outcome.label}</td><td>{share:.1%}" in html
    assert repr(m).count("\n") == 0 and repr(m).startswith("<ConvergenceMap quadratic")


def test_a_one_row_map_and_a_not_computed_one_show_too():
    m = ds.run_map(MapSpec(model="double-well", x=Axis("lr", 0.1, 2.0, 9), steps=30))
    assert "1 × 9" in m._repr_html_()
    blank = ds.ConvergenceMap(m.spec, {name: np.zeros_like(v) for name, v in m.fields.items()})
    assert f"{Outcome.NOT_COMPUTED.label}</td><td>100.0%" in blank._repr_html_()
