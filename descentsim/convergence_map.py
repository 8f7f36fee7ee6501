"""A finished map: its spec, per-point fields and provenance, with the questions people ask of it."""

from __future__ import annotations

import base64
import datetime
import html
import io
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import boundary
from .boundary import Inside
from .errors import SpecError, check_known, unknown_name
from .history import History
from .outcome import Outcome
from .spec import MapSpec


def package_version() -> str:
    try:
        return metadata.version("descentsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance(**run: Any) -> dict[str, Any]:
    """Where and how a map was computed: the run's own facts plus versions, host and date."""
    import h5py

    return {
        "descentsim_version": package_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        **run,
    }


class ConvergenceMap:
    """The outcome and fields of every grid point of a map.

    ``fields[name]`` arrays are shaped (ny, nx): rows follow the y axis, columns the x axis
    (ny = 1 when the spec has no y axis). ``refinement`` is None for a map computed point by point;
    for an adaptively refined one (``descentsim.refine``) it holds, per point, the level at which the
    point was computed (stride 2^level), or −1 where its fields were copied from a uniform cell.
    ``recorded`` holds the curves of the points the spec records (``history``), or None.

    Examples
    --------
    >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100))
    >>> m.outcome.shape, m.fraction(Outcome.CONVERGED)  # lr = 0.5, 1, 1.5 converge
    ((1, 6), 0.5)
    >>> m.outcome[0].tolist()  # lr = 2 = 2/a flips sign forever: a 2-cycle
    [1, 1, 1, 4, 2, 2]
    """

    def __init__(
        self,
        spec: MapSpec,
        fields: dict[str, np.ndarray],
        provenance: dict[str, Any] | None = None,
        refinement: np.ndarray | None = None,
        history: History | None = None,
    ):
        self.spec = spec
        self.fields = fields
        self.provenance = dict(provenance or {})
        self.refinement = refinement
        self.recorded = history

    @property
    def history(self) -> History:
        """The curves of the points the spec records (``record``): per-step full-data loss and, for
        classifiers, accuracy (``descentsim.history.History``). SpecError if the spec records none."""
        if self.recorded is None:
            raise SpecError("this map recorded no points; add record = [[x, y], ...] to its spec "
                            "(or --record X,Y to descentsim-map)")
        return self.recorded

    @property
    def x(self) -> np.ndarray:
        """Values of the x knob along the columns."""
        return self.spec.axis_coordinates(self.spec.x)

    @property
    def y(self) -> np.ndarray | None:
        """Values of the y knob along the rows, or None for a one-row map."""
        return None if self.spec.y is None else self.spec.axis_coordinates(self.spec.y)

    @property
    def outcome(self) -> np.ndarray:
        """Outcome codes (uint8, see ``Outcome``), shaped (ny, nx)."""
        return self.fields["outcome"]

    @property
    def shape(self) -> tuple[int, int]:
        return self.spec.shape

    def fraction(self, outcome: Outcome | int) -> float:
        """Fraction of the grid's points with ``outcome``."""
        return float(np.count_nonzero(self.outcome == int(outcome)) / self.outcome.size)

    def fractions(self) -> dict[Outcome, float]:
        """The fraction of points of every outcome class."""
        return {o: self.fraction(o) for o in Outcome}

    def knob(self, name: str) -> np.ndarray:
        """The value of knob ``name`` at every point, shaped like the fields (a read-only broadcast view):
        a swept knob varies along its axis, a fixed one is the same everywhere.

        Raises
        ------
        SpecError
            if the map's model and optimiser have no knob ``name`` (the message lists those they have).

        Examples
        --------
        >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 1.0, 3), y=Axis("a", 1.0, 2.0, 2), steps=5))
        >>> m.knob("a").tolist(), m.knob("lr")[1].tolist()
        ([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], [0.5, 0.75, 1.0])
        """
        knobs = self.spec.knobs
        check_known([name], list(knobs), "knob")
        if name == self.spec.x.name:
            values = self.x[None, :]
        elif self.spec.y is not None and name == self.spec.y.name:
            values = self.y[:, None]
        else:
            values = np.asarray(self.spec.params.get(name, knobs[name].default))
        return np.broadcast_to(values, self.shape)

    def side(self, inside: Inside = None) -> np.ndarray:
        """Boolean (ny, nx) mask of the points on one side of a boundary (``descentsim.boundary.side``).

        ``inside`` is None for the default side — for classifiers the networks that learned (final
        training accuracy at least halfway from chance 1/classes to 1, ``boundary.learned``), else the
        trainable points of Sohl-Dickstein (2024) (a negative ``score``) — or outcomes (``Outcome``, codes or
        names), a boolean mask shaped (ny, nx), or a callable map → mask such as
        ``lambda m: m.fields["accuracy"] >= 0.9``. SpecError for anything else.

        Examples
        --------
        >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100))
        >>> m.side("converged").tolist(), m.side(lambda m: m.knob("lr") >= 2.5).tolist()
        ([[True, True, True, False, False, False]], [[False, False, False, False, True, True]])
        """
        return boundary.side(self, inside)

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
        from . import critical

        curve = critical.critical_curve(self, inside, start)
        return critical.refine(self, curve, refine, inside, backend, threads) if refine else curve

    def plot(self, field: str = "outcome", ax=None, **imshow):
        """Draw ``field`` on the matplotlib axes ``ax`` (a new figure's if None) with descentsim's fixed
        colours, legend or colour bar, axes in the knobs' scales and the spec in the title
        (``descentsim.plot``); returns the axes."""
        from . import plot

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
        from .fields import FIELDS
        from .store import REFINE_DESCRIPTION

        axes = [axis for axis in (self.spec.y, self.spec.x) if axis is not None]
        dims = tuple(axis.name for axis in axes)
        coords = {axis.name: ((axis.name,), self.spec.axis_coordinates(axis),
                              {"long_name": axis.name, "axis_scale": axis.scale}) for axis in axes}
        arrays = {name: (values, FIELDS[name].description) for name, values in self.fields.items()}
        if self.refinement is not None:
            arrays["refine_level"] = (self.refinement, REFINE_DESCRIPTION)
        data = {name: (dims, values.reshape([axis.n for axis in axes]), {"description": description})
                for name, (values, description) in arrays.items()}
        attrs = {"spec": self.spec.to_toml(), **{k: str(v) for k, v in self.provenance.items()}}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def save(self, path: str | Path) -> None:
        """Write the map to an HDF5 file, atomically (replacing ``path`` if it exists)."""
        from .store import write_map

        write_map(self, path)

    def _repr_html_(self) -> str:
        """What Jupyter shows for a map alone in a cell: the outcome picture (``plot``; a PNG drawn by matplotlib's
        Agg on a figure pyplot never holds, so nothing is left open) beside a table of the model, shape, axes,
        steps, fixed knobs and outcome fractions."""
        picture = io.BytesIO()
        self.plot().figure.savefig(picture, format="png", dpi=80)
        png = base64.b64encode(picture.getvalue()).decode("ascii")
        spec, (ny, nx) = self.spec, self.shape
        rows = [("model", f"{spec.model} ({spec.optimizer}, {spec.dtype})"), ("shape", f"{ny} × {nx} (y × x)")]
        rows += [(which, f"{axis.name} {axis.start:g} … {axis.stop:g}, {axis.n} points, {axis.scale}")
                 for which, axis in zip("xy", spec.axes)]
        rows.append(("steps", str(spec.steps)))
        if spec.params:
            rows.append(("fixed knobs", ", ".join(f"{name} = {value}" for name, value in spec.params.items())))
        rows += [(outcome.label, f"{share:.1%}") for outcome, share in self.fractions().items() if share > 0]
        table = "".join(f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>" for key, value in rows)
        return (f'<div style="display:flex;gap:1em;align-items:flex-start"><img src="data:image/png;base64,{png}" '
                f'alt="{html.escape(repr(self))}"/><table>{table}</table></div>')

    def __repr__(self) -> str:
        ny, nx = self.shape
        axes = self.spec.x.name if self.spec.y is None else f"{self.spec.x.name} × {self.spec.y.name}"
        top = ", ".join(f"{o.label} {f:.1%}" for o, f in self.fractions().items() if f > 0)
        return f"<ConvergenceMap {self.spec.model} {axes} {ny}×{nx}: {top}>"
