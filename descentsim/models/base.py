"""What every model provides: knobs, the initial parameters and data of a map, and the loss."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..knobs import Knob
from ..outcome import Outcome

if TYPE_CHECKING:
    from ..datasets import DataSet

#: Knob values for a block of grid points: one scalar, or one value per point.
KnobValues = Mapping[str, "float | int | str | np.ndarray"]


@dataclass
class Problem:
    """Everything an engine needs to train ``n`` trajectories of one model (arrays of numbers in float64).

    theta0    : (n, P) initial parameters, one row per grid point.
    consts    : (n, C) per-point model constants (C >= 1; unused columns are zero).
    data      : (D, S) data shared by every trajectory (D, S >= 1).
    trainable : (P,) which parameters gradient descent updates; the others stay at theta0.
    lr_scale  : (n, P) per-parameter multipliers of the learning rate (per-layer rates), or None.
    """

    theta0: np.ndarray
    consts: np.ndarray
    data: np.ndarray
    trainable: np.ndarray
    lr_scale: np.ndarray | None = None
    #: (batch_size, batch_seed, batch_per_point, sequential) for minibatches (``descentsim.sampling``), or None.
    batch: tuple[int, int, int, int] | None = None
    #: (n,) grid index iy·nx + ix of each row, for per-point minibatch sequences.
    point_id: np.ndarray | None = None
    #: With minibatches: the outcome rules' loss is over the first ``eval_samples`` samples (0: all).
    eval_samples: int = 0

    @property
    def eval_count(self) -> int:
        """Samples of the full-data loss the outcome rules judge: all, or the first ``eval_samples`` of a
        minibatch run's data."""
        samples = self.data.shape[1]
        return self.eval_samples if self.batch is not None and 0 < self.eval_samples < samples else samples


def per_point(value, n: int) -> np.ndarray:
    """A knob value as a float64 column of ``n`` values."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()


class Model:
    """A tiny loss L(θ) whose gradient-descent trajectories a map records.

    Subclasses give ``name``, ``kernel`` (the compiled kernel's name for it), ``knobs``,
    ``shape_knobs`` (knobs that fix array shapes or shared data, so one problem has one value of
    each), ``converge_loss`` (the level counted as having reached the minimum), ``problem`` and the
    NumPy reference ``loss_grad``.

    Pictures speak the model's language where it has one: ``outcome_words`` names outcomes in the model's
    terms (the relu-neuron's STUCK is a dead neuron), ``value_words`` names values of the discrete fields
    (the double-well's attractor 0 is w = −1). Both only add words; the outcome rules stay the same.
    """

    name: str
    kernel: str
    knobs: tuple[Knob, ...]
    shape_knobs: frozenset[str] = frozenset()
    converge_loss: float = 1e-8
    #: Whether the loss is a mean over the data's samples (the columns of ``Problem.data``), so minibatches apply.
    minibatches = False
    #: Whether the model classifies its data (``evaluate`` gives the accuracy and collapsed fields).
    classifier = False
    #: What an outcome means for this model, in its own words, where one meaning is certain enough to name.
    outcome_words: Mapping[Outcome, str] = MappingProxyType({})
    #: Words for values of discrete fields, by field: ``{"attractor": {0: "w = −1", 1: "w = +1"}}``. Named
    #: minima (``"attractor"``) also split the converged points of the outcome picture.
    value_words: Mapping[str, Mapping[int, str]] = MappingProxyType({})

    def for_params(self, params: Mapping[str, object], reserved: frozenset[str] = frozenset()) -> "Model":
        """The model a spec with fixed knobs ``params`` trains: itself, or for models whose knobs depend on a
        knob's value (the formula model's symbols) a model made for that value. ``reserved``: names a derived
        knob may not take (the optimisers' knobs and the spec's settings). SpecError if ``params`` cannot
        make one."""
        return self

    def problem(self, values: KnobValues, n: int) -> Problem:
        """The problem of ``n`` grid points. ``values`` holds every knob: a shape knob (``shape_knobs``) as one
        Python scalar for all the points (``backends.problems`` splits a map into groups alike in them, and
        ``descentsim.problem`` goes through it), any other as a scalar or an (n,) array."""
        raise NotImplementedError

    def parameter_count(self, values: KnobValues) -> int:
        """P, the number of parameters of one trajectory (the largest, where a shape knob is swept)."""
        raise NotImplementedError

    def provenance(self) -> dict[str, str]:
        """Facts a map of this model records about how its problem was made, beyond the spec (the version of a
        library that compiled it, say); most models have none."""
        return {}

    def training_data(self, swept: frozenset[str]) -> "DataSet | None":
        """The one data set every point of a map trains on, when the model trains on a data set
        (``descentsim.datasets``) and none of its data knobs is among the knobs ``swept`` on an axis; else None.
        A map records its provenance (name, sha256) and keeps it in its file when small enough."""
        return None

    def data_size(self, values: KnobValues) -> int:
        """Values (float64) of the shared data and initial weights a problem of ``values`` holds while it is
        built (the largest, where a shape knob is swept): for the memory a run needs."""
        return 1

    def loss_grad(self, theta: np.ndarray, consts: np.ndarray, data: np.ndarray, batch: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Loss (n,) and gradient (n, P) at parameters ``theta`` (n, P), in theta's dtype; over the sample
        indices ``batch`` (n, B) of each row when given (models with ``minibatches``)."""
        raise NotImplementedError

    def evaluate(self, theta: np.ndarray, consts: np.ndarray, data: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Classifiers: (accuracy (n,) float64, collapsed (n,) int8, classes predicted (n,) int16) of the
        parameters ``theta`` on the training set."""
        raise NotImplementedError

    def use_training_data(self, data: "DataSet") -> None:
        """A stored map's kept data set (``training_data``): models with data train on it, and read from it what
        they would read from their data knobs' source, which may be gone; the others have none to use."""

    def class_counts(self, values: KnobValues) -> tuple[int, int]:
        """Classifiers: (classes, training samples) of the data a problem of ``values`` trains on (its shape knobs
        as scalars): what chance level means for its accuracy (``boundary.class_counts``)."""
        raise NotImplementedError

    def after_update(self, theta: np.ndarray, consts: np.ndarray, data: np.ndarray) -> np.ndarray:
        """θ after each update's own change, for models that move it further (the mlp's every-step offset);
        the rows updated, (m, P). Most models leave it as it is."""
        return theta

    def attractor(self, theta: np.ndarray) -> np.ndarray:
        """Index of the minimum a converged trajectory reached; -1 for models with one kind of minimum."""
        return np.full(len(theta), -1, dtype=np.int32)
