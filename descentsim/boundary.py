"""Boundaries between the two sides of a map, and how intricate they are.

A map is a grid of labelled points. One *side* of it (by default the points that trained: the paper's
*trainable* points, or for classifiers the networks that *learned*) meets the rest along a boundary;
these functions measure it on the grid, in grid cells:

* ``side``: the boolean mask of one side, from any description of it (``Inside``): the default side,
  outcomes, a mask, or a callable map → mask. Every analysis that takes ``inside`` resolves it here.
* ``boundary_mask``: the points with a neighbour (left, right, up, down) on the other side.
* ``box_counting``: N(s) = the number of boxes of side s cells (the (s+1)×(s+1) points [i·s, i·s + s] ×
  [j·s, j·s + s], tiling the grid from its first point, neighbours sharing their edge points; the ragged
  edge is dropped; on a one-row map the s + 1 points [i·s, i·s + s] of the row) that hold points of both
  sides, for s = 2, 4, 8, ...; the boundary's
  box-counting dimension is the slope of log N(s) against log(1/s), fitted by least squares over a
  range of s, with the slope's standard error as its uncertainty. As in Attractors.jl's
  ``basins_fractal_dimension``.
* ``box_counting_slopes``: the estimator of Sohl-Dickstein (2024), Table 1: the edge image of a score map
  by the 2×2 sign test, porespy's ``boxcount`` (non-overlapping boxes of 10 sizes from 10 cells up, N(d)
  = the boxes holding edge and non-edge pixels), the local slopes −d ln N/d ln d, and their median over
  every scale of every frame of a zoom sequence.
* ``uncertainty_exponent``: the fraction f(ε) of points whose side changes within ε cells (any of the
  four points ε away is on the other side) scales as ε^α (Grebogi et al. 1983); α = 2 − D for a
  boundary of dimension D in the plane.
* ``basin_entropy``: Sb and Sbb of Daza et al. (2016), as in Attractors.jl: the grid cut into ε×ε
  boxes, p_j the fraction of a box's points with label j, S = −Σ p_j ln p_j; Sb is the mean of S over
  all boxes and Sbb over the boxes that hold more than one label. Sbb > ln 2 means a fractal boundary.

Classifiers (models with ``classifier = True``, such as ``softmax-mlp``) are judged by what they
learned, not by their loss curve: the score's trainability test (the loss fell) holds for many
networks that end at chance accuracy. ``learned`` and ``chance_level`` split them by final training
accuracy; ``classifier_summary`` counts them, including the chance-level networks that the
``collapsed`` field (exactly one predicted class) misses.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Union

import numpy as np

from .errors import SpecError, unknown_name
from .outcome import Outcome

if TYPE_CHECKING:
    from .convergence_map import ConvergenceMap
    from .models import Model

#: One side of a map's boundary, as the analyses take it (``side``): None for the default side, an
#: outcome (``Outcome``, code or name) or a collection of outcomes, a boolean mask shaped like the map's
#: fields, or a callable taking the map and returning such a mask.
Inside = Union[
    None, Outcome, int, str, Iterable[Union[Outcome, int, str]], np.ndarray, Callable[["ConvergenceMap"], np.ndarray]
]

#: A classifier has *learned* when its final training accuracy closes at least this fraction of the gap
#: between chance, 1/classes, and perfect accuracy (``learned_accuracy``).
LEARNED_GAP = 0.5

#: A classifier is at *chance level* when its training accuracy is within this many standard deviations
#: of a guesser's (``chance_accuracy``).
CHANCE_SIGMAS = 3.0

_MASK_HINT = "compare a field to make one, e.g. m.fields['accuracy'] >= 0.9"


def trainable(fields: Mapping[str, np.ndarray]) -> np.ndarray:
    """The paper's trainable points (Sohl-Dickstein 2024): the mean of L_t/L_0 over the last 20 steps is
    below 1, which the ``score`` field records as a negative score."""
    return fields["score"] < 0


def learned_accuracy(classes: np.ndarray | int) -> np.ndarray:
    """The least training accuracy of a network that has learned, for ``classes`` classes:
    1/classes + ``LEARNED_GAP``·(1 − 1/classes), halfway from chance to perfect (7/12 ≈ 0.583 for 6 classes,
    0.75 for 2).

    On a balanced training set (softmax-mlp has ``per_class`` points of every class) a network that
    predicts only k of the classes classifies at most k/classes of the points right; this threshold lies
    above 1/2, so a network that tells apart at most half the classes — every collapsed or partly
    collapsed network, and any accuracy near chance — never counts as learned, while networks that fit
    overlapping clusters imperfectly (80 %, say) still do.
    """
    chance = 1.0 / np.asarray(classes, dtype=float)
    return chance + LEARNED_GAP * (1.0 - chance)


def chance_accuracy(classes: np.ndarray | int, points: np.ndarray | int) -> np.ndarray:
    """The highest training accuracy still at chance level, for ``classes`` classes and ``points`` training
    points: p + ``CHANCE_SIGMAS``·√(p(1 − p)/points), p = 1/classes.

    A guesser that ignores its input classifies a fraction of the points right with mean p and standard
    deviation √(p(1 − p)/points) (binomial); a network within three of them of p (0.231 for 6 classes of
    50 points) does no better than guessing. A collapsed network (one class for every input) scores p exactly.
    """
    chance = 1.0 / np.asarray(classes, dtype=float)
    return chance + CHANCE_SIGMAS * np.sqrt(chance * (1.0 - chance) / np.asarray(points, dtype=float))


def class_counts(model: "Model", values: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(classes, training samples) of a classifier's data (``Model.class_counts``: the softmax-mlp's classes and
    classes·per_class, a network's data set's) where its shape knobs take ``values``: a scalar for a fixed knob,
    an array of the points' values for a swept one (all of one shape). Float arrays of that shape; one model
    call per distinct combination of the swept values."""
    shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
    swept = sorted(name for name, v in values.items() if np.ndim(v) > 0)
    codes = [np.unique(np.broadcast_to(values[name], shape), return_inverse=True)[1].ravel() for name in swept]
    columns = np.stack(codes, axis=1) if codes else np.zeros((int(np.prod(shape)), 0), dtype=np.int64)
    _, first, inverse = np.unique(columns, axis=0, return_index=True, return_inverse=True)
    counts = np.array([model.class_counts({name: (np.broadcast_to(v, shape).flat[at].item() if np.ndim(v) else v)
                                           for name, v in values.items()}) for at in first], dtype=float)
    picked = counts.reshape(-1, 2)[np.ravel(inverse)]
    return picked[:, 0].reshape(shape), picked[:, 1].reshape(shape)


def _class_counts(m: "ConvergenceMap") -> tuple[np.ndarray, np.ndarray]:
    """``class_counts`` at the points of a classifier map (the axis knobs' values as ``m.knob`` gives them, so
    bisection points too); SpecError if the map is not of a classifier."""
    if isinstance(m, Mapping) or not m.spec.model_def.classifier:
        what = "a fields mapping" if isinstance(m, Mapping) else f"model {m.spec.model!r}"
        raise SpecError(f"{what} is not a classifier map; learned and chance level need a ConvergenceMap of a "
                        "classifier (softmax-mlp, or a network on class labels)")
    spec, axes = m.spec, {axis.name for axis in m.spec.axes}
    values = {name: m.knob(name) if name in axes else spec.params.get(name, spec.knobs[name].default)
              for name in spec.model_def.shape_knobs if name in spec.knobs}
    return class_counts(spec.model_def, values)


def _learned(accuracy: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.isfinite(accuracy) & (accuracy >= learned_accuracy(classes))


def learned(m: "ConvergenceMap") -> np.ndarray:
    """Boolean mask (shaped like the fields) of the classifier networks that learned: a finite training
    accuracy of at least ``learned_accuracy(classes)`` (``class_counts``); the default side of a classifier map.

    Raises
    ------
    SpecError
        if ``m`` is not a map of a classifier.
    """
    classes = _class_counts(m)[0]
    return _learned(m.fields["accuracy"], classes)


def chance_level(m: "ConvergenceMap") -> np.ndarray:
    """Boolean mask (shaped like the fields) of the classifier networks at chance level: a finite training
    accuracy of at most ``chance_accuracy(classes, samples)`` (``class_counts``), and not learned (which matters
    only on training sets so small that the two bands overlap). Collapsed networks are at chance level, and so
    are networks that predict several classes no better than guessing, which ``collapsed`` misses.

    Raises
    ------
    SpecError
        if ``m`` is not a map of a classifier.
    """
    classes, samples = _class_counts(m)
    accuracy = m.fields["accuracy"]
    return np.isfinite(accuracy) & (accuracy <= chance_accuracy(classes, samples)) & ~_learned(accuracy, classes)


def default_side(m: "ConvergenceMap | Mapping[str, np.ndarray]") -> np.ndarray:
    """The side ``inside=None`` means: ``learned`` for a classifier map, else the score's ``trainable``
    points (also for a bare fields mapping, which carries no spec)."""
    if isinstance(m, Mapping):
        return trainable(m)
    return learned(m) if m.spec.model_def.classifier else trainable(m.fields)


def side(m: "ConvergenceMap | Mapping[str, np.ndarray]", inside: Inside = None) -> np.ndarray:
    """Boolean mask of one side of a boundary, shaped like the map's fields: the one place where the
    analyses (``ConvergenceMap.side``, ``boundary``, ``fractal_dimension``, ``uncertainty_exponent``,
    ``basin_entropy``, ``critical_curve``) read their ``inside`` argument.

    Parameters
    ----------
    m : the map (``ConvergenceMap``), or a bare mapping of its fields (no spec: its default side is the
        score's trainable points, and a callable receives the mapping).
    inside :
        * ``None``: the default side (``default_side``): for classifiers the networks that ``learned``
          (final training accuracy halfway from chance to perfect), else the trainable points of
          Sohl-Dickstein (2024) (a negative ``score``);
        * an outcome or a collection of outcomes: ``Outcome`` members, codes or names such as "converged";
        * a boolean ``numpy`` array shaped like the fields, (ny, nx) (for a one-row map (1, nx) or (nx,));
        * a callable taking ``m`` and returning such a mask, e.g. ``lambda m: m.fields["accuracy"] >= 0.9``
          or ``lambda m: m.fields["collapsed"] == 0`` (``descentsim.boundary.learned`` and ``chance_level``
          are such callables).

    Returns
    -------
    numpy.ndarray
        bool, shaped like the fields (a new array).

    Raises
    ------
    SpecError
        for an unknown outcome name or code, a mask that is not boolean or not shaped like the map, a
        callable that returns no such mask, or anything else given as ``inside``.

    Examples
    --------
    >>> m = run_map(MapSpec(model="quadratic", x=Axis("lr", 0.5, 3.0, 6), steps=100))
    >>> side(m, "converged").tolist()
    [[True, True, True, False, False, False]]
    >>> side(m, lambda m: m.knob("lr") < 1.2).tolist()
    [[True, True, False, False, False, False]]
    """
    fields = m if isinstance(m, Mapping) else m.fields
    shape = np.shape(fields["outcome"])
    if inside is None:
        return default_side(m)
    if isinstance(inside, (Outcome, numbers.Integral, str)):
        return np.isin(fields["outcome"], [_outcome_code(inside)])
    if isinstance(inside, np.ndarray):
        return _checked_mask(inside, shape, "the inside mask")
    if callable(inside) and not isinstance(inside, type):
        name = getattr(inside, "__qualname__", type(inside).__name__)
        return _checked_mask(inside(m), shape, f"inside={name} returned a value that")
    if isinstance(inside, Iterable):
        return np.isin(fields["outcome"], [_outcome_code(item) for item in inside])
    raise SpecError(
        f"inside must be None, outcomes, a boolean mask or a callable map → mask, got {type(inside).__name__}; "
        f"for a mask, {_MASK_HINT}"
    )


def _outcome_code(item: Any) -> int:
    """The code of one outcome given as an ``Outcome``, a code or a name; SpecError otherwise."""
    valid = ", ".join(f"{o.label} ({int(o)})" for o in Outcome)
    if isinstance(item, str):
        try:
            return int(Outcome[item.upper().replace(" ", "_")])
        except KeyError:
            raise unknown_name(item, [valid], "outcome", close_to=[o.label for o in Outcome]) from None
    if isinstance(item, numbers.Integral) and not isinstance(item, (bool, np.bool_)):
        try:
            return int(Outcome(int(item)))
        except ValueError:
            raise SpecError(f"unknown outcome code {int(item)}; valid outcomes: {valid}") from None
    raise SpecError(
        f"{item!r} is not an outcome; give outcome names or codes ({valid}), or a boolean numpy array as a mask"
    )


def _checked_mask(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a boolean mask shaped ``shape`` (a one-row map's (1, nx) also takes (nx,)), copied."""
    if not isinstance(value, np.ndarray) or value.dtype != bool:
        got = f"a {value.dtype} array" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
        raise SpecError(f"{what} is {got}, not a boolean mask shaped {shape}; {_MASK_HINT}")
    if value.shape == shape:
        return value.copy()
    if len(shape) == 2 and shape[0] == 1 and value.shape == shape[1:]:
        return value.reshape(shape).copy()
    raise SpecError(
        f"{what} is shaped {value.shape}, the map's fields {shape}; give one value per grid point "
        "(rows follow y, columns x)"
    )


@dataclass(frozen=True)
class ClassifierSummary:
    """How the computed points of a classifier map ended (``classifier_summary``); counts of points.

    ``points``: computed points; ``learned``: on the ``learned`` side; ``chance_level``: at ``chance_level``;
    ``collapsed``: one class for every input (the ``collapsed`` field); ``missed_by_collapsed``: at chance
    level yet not collapsed (several classes predicted); ``undefined``: no accuracy (non-finite logits);
    ``classes_predicted``: the chance-level networks by the number of distinct classes they predict
    (from the ``classes_predicted`` field), None for a map without that field.
    """

    points: int
    learned: int
    chance_level: int
    collapsed: int
    missed_by_collapsed: int
    undefined: int
    classes_predicted: dict[int, int] | None

    def lines(self) -> list[str]:
        """The summary as ``descentsim-info`` prints it: one line per count, as a share of ``points``."""

        def share(count: int) -> float:
            return count / max(self.points, 1)

        lines = [
            f"{'learned':<14} {share(self.learned):8.2%}  "
            f"(accuracy ≥ 1/classes + {LEARNED_GAP:g}·(1 − 1/classes))",
            f"{'chance level':<14} {share(self.chance_level):8.2%}  "
            f"(accuracy ≤ 1/classes + {CHANCE_SIGMAS:g} sd of guessing)",
            f"{'  uncollapsed':<14} {share(self.missed_by_collapsed):8.2%}  "
            "(chance level with several classes predicted: not in `collapsed`)",
        ]
        for classes, count in (self.classes_predicted or {}).items():
            label = f"  {classes} class" + ("es" if classes != 1 else "")
            lines.append(f"{label:<14} {share(count):8.2%}  (chance level, {classes} distinct predicted)")
        if self.undefined:
            lines.append(f"{'no accuracy':<14} {share(self.undefined):8.2%}  (non-finite logits)")
        return lines


def classifier_summary(m: "ConvergenceMap") -> ClassifierSummary:
    """Counts of the learned, chance-level, collapsed and undefined networks among the computed points of a
    classifier map, with the chance-level networks that ``collapsed`` misses and, where the map has the
    ``classes_predicted`` field, the chance-level networks by number of distinct predicted classes.

    Raises
    ------
    SpecError
        if ``m`` is not a map of a classifier.

    Examples
    --------
    >>> spec = MapSpec(model="softmax-mlp", optimizer="adam", x=Axis("lr", 0.003, 3.0, 16, "log"), steps=300,
    ...                params={"classes": 3, "per_class": 10, "d": 4, "width1": 8, "width2": 6})
    >>> m = run_map(spec)
    >>> int((m.fields["score"] < 0).sum())   # the score calls every network trainable
    16
    >>> s = classifier_summary(m)
    >>> s.points, s.learned, s.chance_level, s.collapsed, s.missed_by_collapsed
    (16, 12, 3, 3, 0)
    """
    computed = m.outcome != Outcome.NOT_COMPUTED
    at_chance = chance_level(m) & computed
    collapsed = m.fields["collapsed"] == 1
    predicted = m.fields.get("classes_predicted")
    histogram = None
    if predicted is not None and (predicted >= 0).any():  # files of format 1 read the field as −1: absent
        values, counts = np.unique(predicted[at_chance & (predicted >= 0)], return_counts=True)
        histogram = {int(v): int(c) for v, c in zip(values, counts)}
    return ClassifierSummary(
        points=int(np.count_nonzero(computed)),
        learned=int(np.count_nonzero(learned(m) & computed)),
        chance_level=int(np.count_nonzero(at_chance)),
        collapsed=int(np.count_nonzero(collapsed & computed)),
        missed_by_collapsed=int(np.count_nonzero(at_chance & ~collapsed)),
        undefined=int(np.count_nonzero(~np.isfinite(m.fields["accuracy"]) & computed)),
        classes_predicted=histogram,
    )


def boundary_mask(mask: np.ndarray) -> np.ndarray:
    """Points of ``mask`` (2-D bool) with a neighbour (4-neighbourhood) of the other value."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    for axis in (0, 1):
        differ = np.diff(mask, axis=axis) != 0
        lead = [slice(None)] * 2
        lead[axis] = slice(None, -1)
        trail = [slice(None)] * 2
        trail[axis] = slice(1, None)
        out[tuple(lead)] |= differ
        out[tuple(trail)] |= differ
    return out


@dataclass(frozen=True)
class ScalingFit:
    """A power law fitted on log-log axes: ``exponent`` ± ``uncertainty`` (the least-squares slope and its
    standard error) from ``counts`` (N(s) or f(ε)) at ``sizes``; ``fitted`` marks the sizes used."""

    exponent: float
    uncertainty: float
    sizes: np.ndarray
    counts: np.ndarray
    fitted: np.ndarray


def _fit(sizes: np.ndarray, counts: np.ndarray, fit: tuple[float, float] | None, sign: float) -> ScalingFit:
    sizes = np.asarray(sizes, dtype=float)
    counts = np.asarray(counts, dtype=float)
    lo, hi = fit if fit is not None else (sizes.min(), sizes.max())
    fitted = (sizes >= lo) & (sizes <= hi) & (counts > 0)
    if np.count_nonzero(fitted) < 2:
        raise ValueError("fewer than two sizes with counts in the fitted range; widen it or use a larger map")
    x, y = np.log(sizes[fitted]), np.log(counts[fitted])
    a = np.vstack([x, np.ones_like(x)]).T
    (slope, _), residual, *_ = np.linalg.lstsq(a, y, rcond=None)
    n = len(x)
    stderr = float(np.sqrt(residual[0] / (n - 2) / np.sum((x - x.mean()) ** 2))) if n > 2 and residual.size else 0.0
    return ScalingFit(float(sign * slope), stderr, sizes, counts, fitted)


def box_sizes(shape: tuple[int, int]) -> np.ndarray:
    """The default box sizes: 2, 4, 8, ... up to an eighth of the shorter side (at least 2); of the row's
    length for a one-row map (or of the column's, for one column)."""
    sides = [n for n in shape if n > 1] or [1]
    top = max(2, min(sides) // 8)
    return 2 ** np.arange(1, int(np.log2(top)) + 1)


def box_counting(mask: np.ndarray, sizes=None, fit: tuple[float, float] | None = None) -> ScalingFit:
    """Box-counting dimension of the boundary of ``mask`` (2-D bool): N(s) ∝ s^(−D) (module docstring). A
    one-row (or one-column) mask is measured in one dimension: boxes are the s + 1 points [i·s, i·s + s] of the
    line, and D (between 0 for a few isolated changes and 1) is the dimension of the set of points where the
    side changes, as Liu (2024) measures the learning-rate boundary of a one-dimensional loss."""
    mask = np.asarray(mask, dtype=bool)
    sizes = box_sizes(mask.shape) if sizes is None else np.asarray(sizes, dtype=int)
    counts = [np.count_nonzero(_pooled_any(mask, s) & _pooled_any(~mask, s)) for s in sizes]
    return _fit(sizes, np.array(counts), fit, -1.0)


def _pooled_any(mask: np.ndarray, s: int) -> np.ndarray:
    """any() over the boxes of points [i·s, i·s + s] × [j·s, j·s + s]: neighbouring boxes share their
    edge points, so that a box of side s holds every change of side within it."""
    for axis in (0, 1):
        if mask.shape[axis] == 1:  # a one-row (one-column) map: boxes along the other axis alone
            continue
        blocks = (mask.shape[axis] - 1) // s
        body = np.take(mask, np.arange(blocks * s), axis=axis)
        starts = np.arange(0, blocks * s, s)
        mask = np.logical_or.reduceat(body, starts, axis=axis) | np.take(mask, starts + s, axis=axis)
    return mask


#: porespy's default number of box sizes, ``porespy.metrics.boxcount(im, bins=10)``, as the paper used.
SLOPE_BINS = 10
#: Resamplings of whole frames behind ``SlopeDimension.frame_bootstrap`` (seeded: the same every time).
BOOTSTRAP_SAMPLES = 1000


def edge_image(frame: np.ndarray) -> np.ndarray:
    """The edge image of Sohl-Dickstein (2024): (ny − 1, nx − 1) booleans, pixel (i, j) True where the 2×2
    block of grid points (i..i+1, j..j+1) holds a strictly negative and a strictly positive value, so that
    diagonal neighbours count.

    ``frame`` is a score map (trainable where negative: a score of 0 or NaN is on neither side and never
    makes an edge), or a boolean side mask (True inside, counted as negative). This is the notebook's
    ``extract_edges``, sign(max·min) < 0, written as max > 0 > min: the same wherever the product neither
    underflows nor overflows, which no score (|score| ≥ 1 or 0) makes it do.

    Examples
    --------
    >>> edge_image(np.array([[-1.0, -1.0, 2.0], [-1.0, 3.0, 2.0], [-1.0, -1.0, -1.0]])).astype(int).tolist()
    [[1, 1], [1, 1]]
    >>> edge_image(np.array([[-1.0, -1.0, 2.0], [-1.0, -1.0, 2.0], [-1.0, -1.0, 2.0]])).astype(int).tolist()
    [[0, 1], [0, 1]]
    """
    values = np.asarray(frame)
    if values.ndim != 2 or min(values.shape) < 2:
        raise ValueError(f"an edge image needs a 2-D map of at least 2×2 points, got shape {values.shape}")
    if values.dtype == bool:
        values = np.where(values, -1.0, 1.0)
    corners = np.stack((values[1:, 1:], values[:-1, 1:], values[1:, :-1], values[:-1, :-1]))
    return (corners.max(axis=0) > 0) & (corners.min(axis=0) < 0)


def porespy_box_sizes(shape: tuple[int, ...], bins: int = SLOPE_BINS) -> np.ndarray:
    """porespy's box sizes for an image of ``shape``: unique(int(logspace(1, log10(min(shape)), bins))), from
    10 pixels to the shorter side ([10, 19, 38, 74, 144, 282, 551, 1075, 2098, 4095] for the paper's 4095²
    edge images, [10, 12, 15, 18, 22, 27, 34, 41, 51, 63] for a 64² map)."""
    return np.unique(np.logspace(1, np.log10(min(shape)), bins).astype(int))


def edge_box_counts(edges: np.ndarray, sizes) -> np.ndarray:
    """porespy's N(d) for each size d: the boxes of d×d pixels, tiling ``edges`` from (0, 0) without overlap
    (the smaller boxes of a ragged last row and column included), that hold at least one edge pixel and at
    least one other pixel (porespy counts ``any − all``)."""
    edges = np.asarray(edges, dtype=bool)
    counts = []
    for d in sizes:
        rows, cols = np.arange(0, edges.shape[0], d), np.arange(0, edges.shape[1], d)
        some = np.logical_or.reduceat(np.logical_or.reduceat(edges, rows, axis=0), cols, axis=1)
        full = np.logical_and.reduceat(np.logical_and.reduceat(edges, rows, axis=0), cols, axis=1)
        counts.append(np.count_nonzero(some & ~full))
    return np.array(counts, dtype=np.int64)


@dataclass(frozen=True)
class SlopeDimension:
    """The box-counting dimension of Sohl-Dickstein (2024) (``box_counting_slopes``).

    ``exponent``: the median of all local slopes of all frames, the paper's dimension. ``uncertainty``: half
    the interquartile range of those slopes, ``quartiles`` = (25th, 75th percentile): how far the local
    dimension strays from the median across scales and frames. ``frame_bootstrap``: the standard deviation
    of the median over ``BOOTSTRAP_SAMPLES`` resamplings of whole frames with replacement (NaN for one
    frame): how much the median depends on which frames are taken. Per frame: ``sizes`` (box sizes d, in
    pixels of the edge image), ``counts`` (N(d)) and ``slopes`` (−d ln N / d ln d at each size).
    """

    exponent: float
    uncertainty: float
    quartiles: tuple[float, float]
    frame_bootstrap: float
    sizes: tuple[np.ndarray, ...]
    counts: tuple[np.ndarray, ...]
    slopes: tuple[np.ndarray, ...]

    @property
    def frame_medians(self) -> np.ndarray:
        """The median slope of each frame alone."""
        return np.array([np.median(s) for s in self.slopes])


def box_counting_slopes(frames, bins=SLOPE_BINS, inside: Inside = None) -> SlopeDimension:
    """The box-counting dimension of a boundary as Sohl-Dickstein (2024) measured it for Table 1: the median
    of the local slopes of log N(d) against log d over all box sizes of all frames of a zoom sequence.

    For each frame (as the notebook's ``estimate_fractal_dimension`` does):

    1. the ``edge_image``: a pixel per 2×2 block of grid points, an edge where the block holds both signs;
    2. porespy's ``metrics.boxcount(edges, bins)``: box sizes ``porespy_box_sizes`` (10 sizes from 10 pixels
       to the shorter side, made unique), non-overlapping boxes from (0, 0) with the ragged last row and
       column counted, N(d) = the boxes holding edge and non-edge pixels (``edge_box_counts``);
    3. local slopes −d ln N / d ln d by ``numpy.gradient`` (second-order central differences inside, one-sided
       at the two end sizes): one per size.

    The dimension is the median of the slopes of all frames pooled (not a median of the frames' medians),
    with no fitted range. Sources: J. Sohl-Dickstein, "The boundary of neural network trainability is
    fractal", arXiv:2402.06184 (2024), Table 1; its notebook (github.com/Sohl-Dickstein/fractal,
    ``the_boundary_of_neural_network_trainability_is_fractal.ipynb``: ``extract_edges``,
    ``estimate_fractal_dimension``); porespy ``porespy/metrics/_funcs.py``, ``boxcount``.

    Counting boxes that hold edge and non-edge pixels (``any − all``) makes a box entirely made of edge
    invisible: on a sparse boundary that never happens, but an image that is edge everywhere (a checkerboard
    of sides) counts N = 0 and has no dimension. On a random set of two sides in equal shares 7/8 of the
    pixels are edges, every box holds both kinds, and the slopes are those of the box count of the plane, 2
    (less at the largest sizes, where the ragged boxes weigh).

    Parameters
    ----------
    frames : one frame or a sequence of them (a list, or a 3-D array of frames along its first axis); a frame
        is a score map (2-D floats, trainable where negative), a boolean side mask (True inside), or a
        ``ConvergenceMap``: its ``score`` for the default side of a model that is not a classifier (the
        paper's image), else its ``side(inside)``. A zoom's frames (``descentsim.zoom.read_zoom(path)[2]``)
        go in as they are.
    bins : the number of box sizes, as porespy's ``bins`` (10, the paper's), or the box sizes themselves.
    inside : the side of the maps' boundary (``side``); None for the default side.

    Returns
    -------
    SlopeDimension

    Raises
    ------
    ValueError
        for a frame too small for two box sizes (an edge image under 11×11 pixels with integer ``bins``) or
        with no box that holds both edge and non-edge pixels at some size (no boundary in the frame).
    SpecError
        for ``inside`` given with arrays instead of maps (a mask is a side already).

    Examples
    --------
    >>> yy, xx = np.mgrid[0:512, 0:512]
    >>> disc = (xx - 250.5) ** 2 + (yy - 261.5) ** 2 < 200**2
    >>> fit = box_counting_slopes(disc)
    >>> fit.sizes[0].tolist()
    [10, 15, 23, 37, 57, 88, 137, 213, 330, 511]
    >>> fit.counts[0].tolist()
    [160, 106, 70, 44, 28, 20, 12, 8, 4, 1]
    >>> round(fit.exponent, 2), round(fit.uncertainty, 2)   # a circle: the local slopes scatter about 1
    (1.01, 0.11)
    """
    if isinstance(frames, np.ndarray) and frames.ndim == 2 or hasattr(frames, "fields"):
        frames = [frames]
    images = [_slope_image(frame, inside) for frame in frames]
    if not images:
        raise ValueError("no frames to measure; give at least one map")
    sizes, counts, slopes = [], [], []
    for k, edges in enumerate(map(edge_image, images)):
        d = porespy_box_sizes(edges.shape, bins) if isinstance(bins, numbers.Integral) else \
            np.unique(np.asarray(bins, dtype=np.int64))
        if d.size < 2 or d[0] < 1:
            raise ValueError(f"frame {k}: its {edges.shape[0]}×{edges.shape[1]} edge image gives box sizes "
                             f"{d.tolist()}; the slopes need two sizes of at least 1 pixel (a map of at least "
                             "12×12 points for the default sizes)")
        n = edge_box_counts(edges, d)
        if not n.all():
            raise ValueError(f"frame {k}: no box of {int(d[n == 0][0])} pixels holds both edge and non-edge "
                             "pixels (no boundary in the frame, or edges everywhere); leave the frame out")
        sizes.append(d)
        counts.append(n)
        slopes.append(-np.gradient(np.log(n), np.log(d)))
    pooled = np.concatenate(slopes)
    q25, q75 = np.percentile(pooled, [25, 75])
    bootstrap = float("nan")
    if len(slopes) > 1:
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(slopes), (BOOTSTRAP_SAMPLES, len(slopes)))
        bootstrap = float(np.std([np.median(np.concatenate([slopes[i] for i in pick])) for pick in picks]))
    return SlopeDimension(float(np.median(pooled)), float(q75 - q25) / 2, (float(q25), float(q75)), bootstrap,
                          tuple(sizes), tuple(counts), tuple(slopes))


def _slope_image(frame, inside: Inside) -> np.ndarray:
    """The map ``box_counting_slopes`` takes the edges of: a score (floats) or a side mask (bool)."""
    if hasattr(frame, "fields"):
        if inside is None and not frame.spec.model_def.classifier:
            return frame.fields["score"]
        return side(frame, inside)
    if inside is not None:
        raise SpecError("inside applies to maps (ConvergenceMap frames); a boolean mask is a side already")
    image = np.asarray(frame)
    if image.ndim != 2 or not (image.dtype == bool or np.issubdtype(image.dtype, np.number)):
        raise ValueError(f"a frame must be a 2-D score map or boolean mask, got a {image.dtype} array shaped "
                         f"{image.shape}")
    return image


def uncertainty_exponent(mask: np.ndarray, distances=None, fit: tuple[float, float] | None = None) -> ScalingFit:
    """α in f(ε) ∝ ε^α, f the fraction of points (at least ε from the grid's edge) whose side differs from
    that of a point ε cells away along either axis (module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if distances is None:  # 1, 2, 4, ... up to a 64th of the shorter side: the small-ε regime
        distances = 2 ** np.arange(0, int(np.log2(max(2, min(mask.shape) // 64))) + 1)
    distances = np.asarray(distances, dtype=int)
    fractions = []
    for e in distances:
        core = mask[e:-e, e:-e]
        uncertain = (
            (mask[: -2 * e, e:-e] != core)
            | (mask[2 * e :, e:-e] != core)
            | (mask[e:-e, : -2 * e] != core)
            | (mask[e:-e, 2 * e :] != core)
        )
        fractions.append(np.count_nonzero(uncertain) / uncertain.size)
    return _fit(distances, np.array(fractions), fit, 1.0)


def basin_entropy(labels: np.ndarray, box: int = 5) -> tuple[float, float]:
    """(Sb, Sbb) of the integer labels (2-D) in boxes of box×box points (module docstring); natural logs."""
    labels = np.asarray(labels)
    ny, nx = labels.shape[0] // box, labels.shape[1] // box
    if ny == 0 or nx == 0:
        raise ValueError(f"the map is smaller than one {box}×{box} box; use a smaller box")
    blocks = labels[: ny * box, : nx * box].reshape(ny, box, nx, box).transpose(0, 2, 1, 3).reshape(ny * nx, -1)
    entropy = np.zeros(len(blocks))
    for value in np.unique(blocks):
        p = np.mean(blocks == value, axis=1)
        entropy -= np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)
    mixed = (blocks != blocks[:, :1]).any(axis=1)
    sbb = float(entropy[mixed].mean()) if mixed.any() else 0.0
    return float(entropy.mean()), sbb
