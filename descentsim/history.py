"""The curves behind a label: per-step full-data loss (and θ_t, and a classifier's accuracy) of chosen
trajectories, recorded by the engine that computes the map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import h5py
import numpy as np

from .errors import SpecError
from .filecheck import check_outcomes, check_same, check_values, damaged, read_dataset, where

if TYPE_CHECKING:
    from .spec import MapSpec


@dataclass
class Recording:
    """What an engine fills for every row of one call; entries past a row's deciding step stay NaN.

    loss     : (n, steps + 1) float64, the full-data loss L_t before update t (what the outcome rules judge).
    theta    : (n, steps + 1, P) float64, the parameters θ_t, or None.
    accuracy : (n, steps // stride + 1) float64, the training accuracy at t = 0, stride, 2·stride, ...
               (classifiers), or None.
    stride   : steps between accuracy marks (>= 1).
    """

    loss: np.ndarray
    theta: np.ndarray | None = None
    accuracy: np.ndarray | None = None
    stride: int = 1

    @classmethod
    def empty(cls, n: int, steps: int, p: int, theta: bool = False, accuracy: bool = False,
              stride: int = 1) -> "Recording":
        """A recording of ``n`` rows of ``steps`` updates and ``P`` parameters, all NaN."""
        return cls(
            loss=np.full((n, steps + 1), np.nan),
            theta=np.full((n, steps + 1, p), np.nan) if theta else None,
            accuracy=np.full((n, steps // stride + 1), np.nan) if accuracy else None,
            stride=stride,
        )

    def rows(self, rows) -> "Recording":
        """The recording of some rows (views for a slice, so an engine can fill a block in place)."""
        return Recording(
            self.loss[rows],
            None if self.theta is None else self.theta[rows],
            None if self.accuracy is None else self.accuracy[rows],
            self.stride,
        )

    def like(self, n: int, p: int) -> "Recording":
        """An empty recording of ``n`` rows of ``p`` parameters with this one's curves."""
        return Recording.empty(n, self.loss.shape[1] - 1, p, self.theta is not None, self.accuracy is not None,
                               self.stride)

    def put(self, rows, part: "Recording") -> None:
        """Copy the rows of ``part`` into rows ``rows`` of this recording."""
        self.loss[rows] = part.loss
        if self.theta is not None:
            if part.theta.shape[2] != self.theta.shape[2]:
                raise SpecError("the points have different numbers of parameters; record θ of each kind separately")
            self.theta[rows] = part.theta
        if self.accuracy is not None:
            self.accuracy[rows] = part.accuracy


@dataclass
class Trajectories:
    """Trajectories of chosen points as the engines run them (``descentsim.trajectories``).

    theta    : (k, steps + 1, P) float64, θ_t (NaN after each point's deciding step), or None.
    loss     : (k, steps + 1) float64, the full-data loss L_t that the outcome rules judge (NaN after).
    accuracy : (k, steps // stride + 1) float64, classifiers' training accuracy at ``accuracy_steps``, or None.
    accuracy_steps : (steps // stride + 1,) int, the steps t = 0, stride, 2·stride, ... of the accuracy.
    fields   : each point's map fields (``descentsim.fields``: outcome, steps — the deciding step T —,
               final_loss, ...), arrays shaped (k,).
    """

    theta: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None
    accuracy_steps: np.ndarray
    fields: dict[str, np.ndarray]

    @property
    def outcome(self) -> np.ndarray:
        return self.fields["outcome"]

    @property
    def decided(self) -> np.ndarray:
        """(k,) the step T at which each point's outcome was decided (its curves end there)."""
        return self.fields["steps"]


@dataclass
class History:
    """The curves of a map's recorded points (the spec's ``record``), kept in its file's ``history`` group.

    iy, ix   : (k,) int64 grid indices of the recorded points (the grid points nearest the values asked for).
    x, y     : (k,) float64 their knob values on the map's axes (``y`` None for a one-row map).
    loss     : (k, steps + 1) float64, the full-data loss L_t, NaN after each point's deciding step.
    accuracy : (k, steps // stride + 1) float64 training accuracy at ``accuracy_steps`` (classifiers), or None.
    accuracy_steps : (marks,) int64, the steps t = 0, stride, 2·stride, ... of the accuracy.
    decided  : (k,) int32, the step T at which each point's outcome was decided (its curves end there).
    outcome  : (k,) uint8, each point's outcome (the map's, except where a refined map copied the point).
    """

    iy: np.ndarray
    ix: np.ndarray
    x: np.ndarray
    y: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None
    accuracy_steps: np.ndarray
    decided: np.ndarray
    outcome: np.ndarray

    def __len__(self) -> int:
        return len(self.ix)


#: The history group's datasets, with their descriptions.
HISTORY_DATASETS = {
    "iy": "row (y index) of each recorded point",
    "ix": "column (x index) of each recorded point",
    "x": "x knob value of each recorded point",
    "y": "y knob value of each recorded point",
    "loss": "full-data loss L_t before update t of each recorded point; NaN after its deciding step",
    "accuracy": "training accuracy of each recorded point at the steps accuracy_step; NaN after its deciding step",
    "accuracy_step": "the steps of the accuracy columns",
    "steps": "step at which each recorded point's outcome was decided",
    "outcome": "outcome code of each recorded point (see the outcome field's flag_meanings)",
}


def write_history(group, history: History) -> None:
    """Write ``history`` into the (new, empty) HDF5 group ``group``."""
    arrays = {"iy": history.iy, "ix": history.ix, "x": history.x, "y": history.y, "loss": history.loss,
              "accuracy": history.accuracy, "accuracy_step": history.accuracy_steps, "steps": history.decided,
              "outcome": history.outcome}
    for name, data in arrays.items():
        if data is None:
            continue
        ds = group.create_dataset(name, data=data, **({"compression": "gzip", "shuffle": True} if data.ndim == 2 else {}))
        ds.attrs["description"] = HISTORY_DATASETS[name]


def read_history(node, name: str, spec: "MapSpec", shown: str) -> History:
    """The History in group ``name`` of the HDF5 group ``node`` (a map file's root or a zoom frame), checked
    against the map's ``spec`` (``descentsim.filecheck``): k = len(spec.record) points at the grid points
    nearest the recorded ones, x (and y, for a map with a y axis) their coordinates, loss (k, steps + 1),
    a classifier's accuracy (k, steps // record_stride + 1) at accuracy_step, the deciding steps from 0 to
    ``steps``, and outcome codes.

    Raises
    ------
    MapFileError
        one line naming the file ``shown``, the dataset and what is wrong.
    """
    group = node.get(name)
    if not isinstance(group, h5py.Group):
        raise damaged(shown, f"group {where(node, name)!r}", f"is missing, though the spec records {len(spec.record)} points")
    k, steps = len(spec.record), spec.steps
    marks = np.arange(0, steps + 1, spec.record_stride)

    def read(dataset: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        return read_dataset(group, dataset, shape, dtype, shown)

    iy, ix = read("iy", (k,), np.int64), read("ix", (k,), np.int64)
    for dataset, values, expected in zip(("iy", "ix"), (iy, ix), spec.record_indices()):
        check_same(values, expected, group, dataset, shown, "the grid points nearest the spec's record")
    history = History(
        iy=iy, ix=ix, x=read("x", (k,), np.float64), y=read("y", (k,), np.float64) if spec.y is not None else None,
        loss=read("loss", (k, steps + 1), np.float64),
        accuracy=read("accuracy", (k, marks.size), np.float64) if spec.model_def.classifier else None,
        accuracy_steps=read("accuracy_step", marks.shape, np.int64),
        decided=read("steps", (k,), np.int32), outcome=read("outcome", (k,), np.uint8),
    )
    for dataset, axis, index in (("x", spec.x, ix), ("y", spec.y, iy)):
        if axis is not None:
            check_same(getattr(history, dataset), spec.axis_coordinates(axis)[index], group, dataset, shown,
                       f"the {axis.name} values of the recorded points")
    check_same(history.accuracy_steps, marks, group, "accuracy_step", shown, f"every {spec.record_stride} steps")
    check_values(history.decided, (0, steps), group, "steps", shown, f"a step from 0 to {steps}", span=True)
    check_outcomes(history.outcome, group, "outcome", shown)
    return history
