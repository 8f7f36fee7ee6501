"""The per-point results a map records, with their storage types and meanings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FieldInfo:
    dtype: type
    fill: float | int
    description: str


#: Every field of a map, in storage order. ``fill`` marks points not computed.
FIELDS: dict[str, FieldInfo] = {
    "outcome": FieldInfo(np.uint8, 0, "outcome class (see flag_meanings)"),
    "steps": FieldInfo(np.int32, -1, "step T at which the outcome was decided (for CONVERGED points the last step "
                                     "of the confirming window; the budget if never decided early)"),
    "final_loss": FieldInfo(np.float64, np.nan, "loss L_T at the deciding step"),
    "loss_sum": FieldInfo(np.float64, np.nan, "sum of L_t / L_0 over the steps run, t < T (0 where L_0 = 0)"),
    "period": FieldInfo(np.int32, 0, "period of the cycle for CYCLING points, else 0"),
    "attractor": FieldInfo(np.int32, -1, "index of the minimum reached by CONVERGED points; -1 where it does not apply"),
    "score": FieldInfo(
        np.float64,
        np.nan,
        "trainability score of Sohl-Dickstein (2024): v_t = clip(L_t/L_0, 1e6), -sum v if mean of last 20 v < 1, else sum 1/v",
    ),
    "accuracy": FieldInfo(
        np.float64, np.nan, "classifiers: fraction of the training set the final network classifies right; else NaN"
    ),
    "collapsed": FieldInfo(
        np.int8, -1, "classifiers: 1 if the final network gives every training input the same class, else 0; -1 for other models"
    ),
    "batch_loss": FieldInfo(
        np.float64, np.nan, "the gradient's loss at the deciding step: the minibatch's with minibatches, else final_loss"
    ),
    "classes_predicted": FieldInfo(
        np.int16, -1, "classifiers: number of distinct classes the final network predicts on the training set "
        "(0 where a logit is not finite); -1 for other models"
    ),
}


#: Bytes one point of a map takes: one value of every field (a journal record's payload, the map in memory).
POINT_BYTES = sum(np.dtype(info.dtype).itemsize for info in FIELDS.values())


def empty_fields(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Field arrays of ``shape`` filled with the not-computed markers."""
    return {name: np.full(shape, info.fill, dtype=info.dtype) for name, info in FIELDS.items()}
