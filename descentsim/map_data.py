"""A computed map's data: its spec, per-point fields, provenance, refinement and recorded curves.

The runner computes a ``MapData`` and the store keeps one; ``descentsim.convergence_map.ConvergenceMap``,
the analysis layer above them, adds the questions people ask of a map (its boundary, critical curve,
pictures). So the layers read one way: spec → tiles → engine → runner → store → analysis.
"""

from __future__ import annotations

import datetime
import platform
import socket
from importlib import metadata
from typing import Any

import numpy as np

from . import boundary
from .boundary import Inside
from .datasets import DataSet, data_provenance, fits_in_map_file
from .errors import SpecError, check_known
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


def training_data(spec: MapSpec) -> DataSet | None:
    """The one data set every point of ``spec`` trains on (``Model.training_data``): None for a model without
    data, or where a data knob is on an axis (each point's data are then its own)."""
    return spec.model_def.training_data(frozenset(axis.name for axis in spec.axes))


def data_record(spec: MapSpec) -> tuple[dict[str, Any], DataSet | None]:
    """What a map of ``spec`` records of its data: the provenance entries (``datasets.data_provenance``: name,
    sha256, samples, features, task, classes, description; none without one data set) and the data set its
    file keeps (None where there is none, or it is larger than 16 MiB: ``datasets.fits_in_map_file``)."""
    data = training_data(spec)
    if data is None:
        return {}, None
    return data_provenance(data), data if fits_in_map_file(data) else None


class MapData:
    """The outcome and fields of every grid point of a map, as the runner computes them and the store keeps
    them (``descentsim.convergence_map.ConvergenceMap`` adds the analyses and pictures).

    ``fields[name]`` arrays are shaped (ny, nx): rows follow the y axis, columns the x axis
    (ny = 1 when the spec has no y axis). ``refinement`` is None for a map computed point by point;
    for an adaptively refined one (``descentsim.refine``) it holds, per point, the level at which the
    point was computed (stride 2^level), or −1 where its fields were copied from a uniform cell.
    ``recorded`` holds the curves of the points the spec records (``history``), or None. ``training`` is the
    data set every point trained on (``descentsim.datasets.DataSet``), which the map's file keeps when it is
    at most 16 MiB (``training_data``), or None.

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
        training: DataSet | None = None,
    ):
        self.spec = spec
        self.fields = fields
        self.provenance = dict(provenance or {})
        self.refinement = refinement
        self.recorded = history
        self.training = training

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

    def __repr__(self) -> str:
        ny, nx = self.shape
        axes = self.spec.x.name if self.spec.y is None else f"{self.spec.x.name} × {self.spec.y.name}"
        top = ", ".join(f"{o.label} {f:.1%}" for o, f in self.fractions().items() if f > 0)
        return f"<{type(self).__name__} {self.spec.model} {axes} {ny}×{nx}: {top}>"
