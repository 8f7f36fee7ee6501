"""A finished map with the questions people ask of it: its boundary and the boundary's dimension, the
critical curve, pictures, a notebook view, files and xarray (the analysis layer, above ``map_data``,
the runner and the store).

``open_map`` opens any file a tool writes; ``run_map``, ``refine_map`` (and the file-writing ``run_map_to_file`` and
``refine_map_to_file``) are the runner's and the store's, giving a ``ConvergenceMap`` instead of the
bare ``MapData``.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from pathlib import Path
from typing import Callable

import numpy as np

from . import boundary, critical, plot, refine, runner, store, zoom_file
from .boundary import Inside
from .errors import MapFileError, SpecError, unknown_name
from .fields import FIELDS
from .map_data import MapData


class ConvergenceMap(MapData):
    """The outcome and fields of every grid point of a map (``MapData``), with its analyses.

    Examples
    --------
    >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100))
    >>> m.boundary("converged").tolist()  # lr = 1.5 converges, lr = 2 = 2/a cycles
    [[False, False, True, True, False, False]]
    >>> curve = m.critical_curve("converged")
    >>> curve.below.tolist(), curve.above.tolist()
    ([1.5], [2.0])
    """

    @classmethod
    def of(cls, data: MapData) -> "ConvergenceMap":
        """``data`` (the same arrays, not copied) with the analyses."""
        if isinstance(data, cls):
            return data
        return cls(data.spec, data.fields, data.provenance, data.refinement, data.recorded, data.training)

    def boundary(self, inside: Inside = None) -> np.ndarray:
        """Boolean (ny, nx) mask of the points of ``side(inside)`` and of the rest that have a neighbour on the
        other side (``descentsim.boundary.boundary_mask``)."""
        return boundary.boundary_mask(self.side(inside))

    def fractal_dimension(self, inside: Inside = None, sizes=None, fit: tuple[float, float] | None = None,
                          method: str = "least-squares"):
        """Box-counting dimension of the boundary of ``side(inside)``.

        ``method="least-squares"`` (the default): N(s) for boxes of s = 2, 4, 8, ... cells (or ``sizes``)
        and the least-squares slope over ``fit`` (``boundary.box_counting``; a ``ScalingFit``).
        ``method="median-slope"``: the estimator of Sohl-Dickstein (2024), Table 1, on this map alone: the
        median of the local slopes of porespy's box count of the edge image (``boundary.box_counting_slopes``;
        a ``SlopeDimension``); ``sizes`` is porespy's ``bins`` (10 by default, or the box sizes), and there is
        no fitted range. Measure a zoom's frames together with ``boundary.box_counting_slopes(frames)``, as
        the paper did.

        Raises
        ------
        SpecError
            for an unknown ``method``, or ``fit`` given to the median-slope method.
        """
        if method == "least-squares":
            return boundary.box_counting(self.side(inside), sizes, fit)
        if method == "median-slope":
            if fit is not None:
                raise SpecError("the median-slope method takes the median of every local slope and fits no range; "
                                "leave fit out, or choose the box sizes with sizes=")
            return boundary.box_counting_slopes(self, boundary.SLOPE_BINS if sizes is None else sizes, inside)
        raise unknown_name(method, ("least-squares", "median-slope"), "method", where=" for fractal_dimension")

    def uncertainty_exponent(self, inside: Inside = None, distances=None, fit: tuple[float, float] | None = None):
        """α with f(ε) ∝ ε^α for ``side(inside)`` (``boundary.uncertainty_exponent``)."""
        return boundary.uncertainty_exponent(self.side(inside), distances, fit)

    def basin_entropy(self, box: int = 5, field: str = "outcome", inside: Inside = None) -> tuple[float, float]:
        """(Sb, Sbb) in boxes of box×box points (``boundary.basin_entropy``) of the labels in ``field`` (the
        outcome classes by default; ``attractor`` for the minima reached), or, when ``inside`` is given, of
        the two sides of ``side(inside)`` (pass ``inside=m.side()`` for the default side)."""
        labels = self.fields[field] if inside is None else self.side(inside)
        return boundary.basin_entropy(labels, box)

    def critical_curve(self, inside: Inside = None, refine: int = 0, backend: str = "auto",
                       threads: int | None = None, start: str = "edge"):
        """Per row, the bracket of the largest x below which points are on side ``inside`` (the default side
        if None), narrowed by ``refine`` bisection steps with extra trajectories, with the reason of every row
        that has no bracket (``descentsim.critical``). ``start="edge"`` follows the run of inside points
        that starts at the row's first point; ``start="first"`` the row's first run wherever it starts."""
        curve = critical.critical_curve(self, inside, start)
        return critical.refine(self, curve, refine, inside, backend, threads) if refine else curve

    def plot(self, field: str = "outcome", ax=None, **imshow):
        """Draw ``field`` on the matplotlib axes ``ax`` (a new figure's if None) with descentsim's fixed
        colours, legend or colour bar, axes in the knobs' scales and the spec in the title
        (``descentsim.plot``); returns the axes."""
        return plot.plot(self, field, ax, **imshow)

    def to_xarray(self):
        """The map as an ``xarray.Dataset``, labelled as ``xarray.open_dataset`` labels its file: dimensions and
        coordinates named after the knobs, (y knob, x knob) — the x knob alone for a one-row map, whose fields
        are then 1-D (nx,) — each field with its ``description``, the spec and provenance as attributes.

        Raises
        ------
        ImportError
            without xarray (``pip install xarray``).

        Examples
        --------
        >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), y=Axis("a", 1.0, 2.0, 2), steps=5))
        >>> m.to_xarray()["outcome"].dims
        ('a', 'lr')
        """
        try:
            import xarray as xr
        except ImportError:
            raise ImportError("to_xarray needs xarray: pip install xarray") from None

        axes = [axis for axis in (self.spec.y, self.spec.x) if axis is not None]
        dims = tuple(axis.name for axis in axes)
        coords = {axis.name: ((axis.name,), self.spec.axis_coordinates(axis),
                              {"long_name": axis.name, "axis_scale": axis.scale}) for axis in axes}
        arrays = {name: (values, FIELDS[name].description) for name, values in self.fields.items()}
        if self.refinement is not None:
            arrays["refine_level"] = (self.refinement, store.REFINE_DESCRIPTION)
        data = {name: (dims, values.reshape([axis.n for axis in axes]), {"description": description})
                for name, (values, description) in arrays.items()}
        attrs = {"spec": self.spec.to_toml(), **{k: str(v) for k, v in self.provenance.items()}}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def save(self, path: str | Path) -> None:
        """Write the map to an HDF5 file, atomically (replacing ``path`` if it exists)."""
        store.write_map(self, path)

    def _repr_html_(self) -> str:
        """What Jupyter shows for a map alone in a cell: the outcome picture (``plot``; a PNG drawn by matplotlib's
        Agg on a figure pyplot never holds, so nothing is left open) beside a table of the model, shape, axes,
        steps, fixed knobs and outcome fractions."""
        picture = io.BytesIO()
        self.plot().figure.savefig(picture, format="png", dpi=80)
        png = base64.b64encode(picture.getvalue()).decode("ascii")
        spec, (ny, nx) = self.spec, self.shape
        arithmetic = ", fast arithmetic" if spec.arithmetic == "fast" else ""
        rows = [("model", f"{spec.model} ({spec.optimizer}, {spec.dtype}{arithmetic})"),
                ("shape", f"{ny} × {nx} (y × x)")]
        rows += [(which, f"{axis.name} {axis.start:g} … {axis.stop:g}, {axis.n} points, {axis.scale}")
                 for which, axis in zip("xy", spec.axes)]
        rows.append(("steps", str(spec.steps)))
        if spec.params:
            rows.append(("fixed knobs", ", ".join(f"{name} = {value}" for name, value in spec.params.items())))
        rows += [(outcome.label, f"{share:.1%}") for outcome, share in self.fractions().items() if share > 0]
        table = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in rows)
        return (f'<div style="display:flex;gap:1em;align-items:flex-start"><img src="data:image/png;base64,{png}" '
                f'alt="{html.escape(repr(self))}"/><table>{table}</table></div>')


def _analysed(compute: Callable[..., MapData]) -> Callable[..., ConvergenceMap]:
    """``compute`` giving a ``ConvergenceMap`` (its docstring and signature kept)."""

    @functools.wraps(compute)
    def analysed(*args, **kwargs) -> ConvergenceMap:
        return ConvergenceMap.of(compute(*args, **kwargs))

    analysed.__annotations__ = {**compute.__annotations__, "return": ConvergenceMap}
    return analysed


run_map = _analysed(runner.run_map)
run_map_to_file = _analysed(runner.run_map_to_file)
refine_map = _analysed(refine.refine_map)
refine_map_to_file = _analysed(refine.refine_map_to_file)


def open_map(path: str | Path, frame: int | None = None) -> ConvergenceMap:
    """The map in a file a descentsim tool wrote: a map file (``descentsim-map``, ``write_map``), or one frame of a
    zoom file (``descentsim-zoom``): frame ``frame``, 0 being the zoom's widest window and negative numbers
    counting from the end, by default the last and deepest. ``descentsim.zoom.read_zoom`` reads every frame.

    Raises
    ------
    MapFileError
        for a file no descentsim tool wrote, an edited or damaged one (``read_node``), ``frame`` given for a map
        file, or a frame the zoom does not have (the message lists its frames).

    Examples
    --------
    >>> m = open_map("zoom.h5", frame=0)  # doctest: +SKIP
    >>> m.provenance["zoom_frame"], m.provenance["zoom_center"]  # doctest: +SKIP
    (0, (1.5, 1.0))
    """
    writers = "descentsim-map or descentsim-zoom"
    f, shown = store.open_file(path, writers)
    with f:
        if f.attrs.get("descentsim_format") == zoom_file.FORMAT_NAME:
            return ConvergenceMap.of(zoom_file.read_frame(f, shown, frame))
        store.check_format(f, shown, writer=writers)
        if frame is not None:
            raise MapFileError(f"{shown} is a map, not a zoom: it has no frame {frame!r}; leave the frame out")
        return ConvergenceMap.of(store.read_node(f, shown))
