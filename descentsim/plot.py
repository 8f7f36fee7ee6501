"""Pictures of maps with matplotlib, safe without a display (nothing here chooses a GUI backend).

A map is drawn as an image over its grid: each axis in its own scale (a log axis evenly in
log10 |value|, with ticks at the decades), points at the centres of their cells. Colours:

* ``outcome`` — a fixed categorical palette from Okabe & Ito's colour-blind-safe set, the same in
  every picture, with a legend naming each outcome present and its share of the map, in the model's
  words where it has them (``Model.outcome_words``: the relu-neuron's stuck points are dead neurons);
  where the model names its minima (``Model.value_words["attractor"]``), converged points are split by
  the minimum they reached, in shades of blue;
* ``score`` — the rank-stretched diverging palette of Sohl-Dickstein (2024): trainable points
  (score < 0) in blues, the others in reds, each side's colour set by the point's rank among that
  side's scores, so both sides use their whole range whatever the tails;
* ``final_loss``, ``loss_sum`` — viridis on a log scale; ``steps`` — viridis, on a log scale where
  the values span more than two decades; ``accuracy`` — viridis over 0…1; ``collapsed``,
  ``refine_level`` and the integer fields — discrete colours with a legend, in the model's words
  where it has them (``Model.value_words``: the double-well's attractors are w = −1 and w = +1).

Points where a field is undefined (NaN, not computed) are drawn light grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from .boundary import class_counts
from .map_data import MapData
from .errors import MapFileError, SpecError, unknown_name, write_error
from .fields import FIELDS
from .outcome import Outcome
from .spec import Axis
from .filesystem import temporary_prefix

#: Colour of each outcome (Okabe & Ito 2008), fixed so that pictures compare at a glance.
OUTCOME_COLOURS: dict[Outcome, str] = {
    Outcome.NOT_COMPUTED: "#DDDDDD",
    Outcome.CONVERGED: "#0072B2",  # blue
    Outcome.DIVERGED: "#D55E00",  # vermillion
    Outcome.STUCK: "#000000",  # black: dead
    Outcome.CYCLING: "#009E73",  # bluish green
    Outcome.UNRESOLVED: "#CC79A7",  # reddish purple
}
#: Colours of converged points by the minimum reached (models that name their minima): the first keeps the
#: converged blue, the next is Okabe & Ito's sky blue.
MINIMUM_COLOURS = ("#0072B2", "#56B4E9")
UNDEFINED_COLOUR = "#DDDDDD"
#: Fields drawn with discrete colours and a legend rather than a colour bar.
DISCRETE = ("collapsed", "period", "attractor", "refine_level")
PLOTTABLE = (*FIELDS, "refine_level")
#: Words for the knobs people sweep most, for axis labels.
KNOB_WORDS = {"lr": "learning rate", "lr1": "learning rate, layer 1", "lr2": "learning rate, layer 2",
              "w0": "initial weight", "b0": "initial bias", "init_scale": "initial scale", "momentum": "momentum"}


def rank_stretch(score: np.ndarray) -> np.ndarray:
    """Scores mapped to [−1, 1] by rank within each sign: s < 0 → −(rank of |s| among the negatives) / count,
    s > 0 likewise positive, 0 → 0, NaN stays NaN. Equal scores share their average rank (so they share a
    colour); the largest |s| of a side maps to ±1."""
    out = np.full(score.shape, np.nan)
    for sign in (-1.0, 1.0):
        side = np.isfinite(score) & (np.sign(score) == sign)
        magnitude = np.abs(score[side])
        if magnitude.size:
            _, which, counts = np.unique(magnitude, return_inverse=True, return_counts=True)
            average_rank = np.cumsum(counts) - (counts - 1) / 2
            out[side] = sign * average_rank[which.ravel()] / magnitude.size
    out[score == 0] = 0.0
    return out


def axis_label(axis: Axis) -> str:
    words = KNOB_WORDS.get(axis.name)
    label = f"{words} {axis.name}" if words else axis.name
    return f"{label} (log scale)" if axis.scale == "log" else label


def _cell_edges(axis: Axis, n: int) -> tuple[float, float]:
    """The extent of the image along ``axis`` in plotting coordinates (log10 |v| on a log axis): the grid
    points sit at the centres of n equal cells."""
    a, b = axis.scaled(axis.start), axis.scaled(axis.stop)
    if n == 1:  # the one point is at start
        return a - 0.5, a + 0.5
    half = (b - a) / (2 * (n - 1))
    return a - half, b + half


def _log_ticks(matplotlib_axis, axis: Axis, n: int) -> None:
    """Ticks of a log axis drawn in log10 |v|: at the decades (minor ticks at 2…9 × 10^k) when the window
    spans one or more, else at round values of v, with as many digits as tell them apart."""
    from matplotlib.ticker import FixedLocator, FixedFormatter, MaxNLocator, NullLocator

    low, high = sorted(_cell_edges(axis, n))
    sign = -1.0 if axis.start < 0 else 1.0
    decades = np.arange(np.ceil(low), np.floor(high) + 1)
    if decades.size >= 2:
        minor = np.log10(np.outer(10.0**np.arange(np.floor(low), np.ceil(high)), np.arange(2, 10)).ravel())
        labels = [f"{sign * 10**d:g}" if abs(d) < 4 else f"{'−' if sign < 0 else ''}$10^{{{int(d)}}}$" for d in decades]
        matplotlib_axis.set_major_locator(FixedLocator(decades))
        matplotlib_axis.set_minor_locator(FixedLocator(minor[(minor >= low) & (minor <= high)]))
    else:
        values = np.outer(10.0 ** np.arange(np.floor(low), np.ceil(high)), [1, 2, 5]).ravel()
        values = values[(values >= 10.0**low) & (values <= 10.0**high)]
        if values.size < 3:  # a narrow window: round values in v itself
            values = MaxNLocator(nbins=5).tick_values(10.0**low, 10.0**high)
            values = values[(values >= 10.0**low) & (values <= 10.0**high)]
        step = float(np.min(np.diff(values))) if values.size > 1 else 10.0**high - 10.0**low
        digits = max(3, int(np.ceil(np.log10(10.0**high / step))) + 1)
        labels = [f"{sign * v:.{digits}g}" for v in values]
        matplotlib_axis.set_major_locator(FixedLocator(np.log10(values)))
        matplotlib_axis.set_minor_locator(NullLocator())
    matplotlib_axis.set_major_formatter(FixedFormatter(labels))


def title(cmap: MapData) -> str:
    """The spec's key settings: model, optimiser, steps, precision, then the fixed knobs."""
    spec = cmap.spec
    top = f"{spec.model} · {spec.optimizer} · {spec.steps} steps · {spec.dtype}"
    fixed = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.params.items())
    if len(fixed) > 90:
        fixed = fixed[:87] + "…"
    return f"{top}\n{fixed}" if fixed else top


def check_field(field: str, refined: bool) -> None:
    """SpecError unless ``field`` can be drawn for a map (``refined``: computed by adaptive refinement)."""
    if field == "refine_level" and not refined:
        raise SpecError("this map is not refined, so it has no refine_level; draw another field")
    if field not in PLOTTABLE:
        raise unknown_name(field, PLOTTABLE, "field")


def field_values(cmap: MapData, field: str) -> np.ndarray:
    check_field(field, cmap.refinement is not None)
    return cmap.refinement if field == "refine_level" else cmap.fields[field]


def plot(cmap: MapData, field: str = "outcome", ax: Any = None, legend: bool = True, **imshow: Any):
    """Draw ``field`` of ``cmap`` on the matplotlib axes ``ax`` (a new figure's if None); returns ``ax``.

    Extra keywords go to ``Axes.imshow`` (e.g. ``interpolation``, ``cmap`` for a continuous field).
    A one-row map is drawn as a strip with the x axis only.
    """
    from matplotlib import colormaps, colors
    from matplotlib.figure import Figure

    values = field_values(cmap, field)
    if ax is None:  # a bare Figure, not pyplot: no GUI backend is ever involved
        figure = Figure(figsize=(7.5, 5.5 if cmap.spec.y is not None else 2.4), layout="constrained")
        ax = figure.add_subplot()
    spec = cmap.spec
    ny, nx = values.shape
    extent = [*_cell_edges(spec.x, nx), *(_cell_edges(spec.y, ny) if spec.y is not None else (0.0, 1.0))]
    options = dict(origin="lower", extent=extent, aspect="auto", interpolation="nearest")
    handles = []

    if field == "outcome":
        index, classes = outcome_classes(cmap)
        palette = colors.ListedColormap([colour for colour, _ in classes])
        ax.imshow(index.astype(float), cmap=palette, vmin=-0.5, vmax=len(classes) - 0.5, **{**options, **imshow})
        shares = np.bincount(index.ravel(), minlength=len(classes)) / index.size
        handles = [_patch(colour, f"{label} {share:.1%}") for (colour, label), share in zip(classes, shares) if share > 0]
    elif field in DISCRETE:
        levels = np.unique(values)
        palette = colormaps["viridis"].resampled(max(levels.size, 2))
        index = np.searchsorted(levels, values).astype(float)
        ax.imshow(index, cmap=palette, vmin=-0.5, vmax=max(levels.size, 2) - 0.5, **{**options, **imshow})
        words = spec.model_def.value_words.get(field, {})
        handles = [_patch(palette(i), words.get(int(v)) or _discrete_label(field, int(v))) for i, v in enumerate(levels)]
    else:
        data, norm, colour_map, label = _continuous(values, field)
        colour_map = imshow.pop("cmap", colour_map)
        colour_map = (colormaps[colour_map] if isinstance(colour_map, str) else colour_map).with_extremes(
            bad=UNDEFINED_COLOUR
        )
        image = ax.imshow(np.ma.masked_invalid(data), cmap=colour_map, norm=norm, **{**options, **imshow})
        bar = ax.figure.colorbar(image, ax=ax)
        bar.set_label(label)

    if legend and handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    ax.set_xlabel(axis_label(spec.x))
    if spec.x.scale == "log":
        _log_ticks(ax.xaxis, spec.x, nx)
    if spec.y is not None:
        ax.set_ylabel(axis_label(spec.y))
        if spec.y.scale == "log":
            _log_ticks(ax.yaxis, spec.y, ny)
    else:
        ax.set_yticks([])
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(f"{field}: {title(cmap)}", fontsize="medium")
    return ax


def outcome_classes(cmap: MapData) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The classes of the outcome picture: (class index per point, [(colour, legend label)] per class).

    One class per outcome, labelled in the model's words where it has them ("dead neuron (stuck)"). Where
    the model names its minima, the converged points come first, one class per minimum reached
    ("converged to w = −1"), then any converged elsewhere.
    """
    model = cmap.spec.model_def
    outcome, attractor = cmap.outcome, cmap.fields["attractor"]
    minima = sorted(model.value_words.get("attractor", {}).items())[: len(MINIMUM_COLOURS)]
    classes = []
    for o in Outcome:
        label = f"{model.outcome_words[o]} ({o.label})" if o in model.outcome_words else o.label
        points = outcome == o
        if o is Outcome.CONVERGED:
            for (value, words), colour in zip(minima, MINIMUM_COLOURS):
                classes.append((colour, f"{label} to {words}", points & (attractor == value)))
            points = points & ~np.isin(attractor, [value for value, _ in minima])
        classes.append((OUTCOME_COLOURS[o], label, points))
    index = np.zeros(outcome.shape, dtype=np.intp)
    for k, (_, _, points) in enumerate(classes):
        index[points] = k
    return index, [(colour, label) for colour, label, _ in classes]


def _patch(colour, label: str):
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, edgecolor="0.5", linewidth=0.5, label=label)


def _discrete_label(field: str, value: int) -> str:
    """The legend entry of ``value`` of a discrete field."""
    if field == "refine_level":
        return "copied from its cell" if value < 0 else f"computed at level {value} (stride {2**value})"
    special = {
        "collapsed": {-1: "not a classifier", 0: "not collapsed", 1: "collapsed"},
        "attractor": {-1: "no minimum reached"},
        "period": {0: "no cycle"},
    }
    return special.get(field, {}).get(value, f"{field} {value}")


def _continuous(values: np.ndarray, field: str):
    """(data, norm, colour map, colour-bar label) of a continuous field."""
    from matplotlib import colors

    finite = values[np.isfinite(values)].astype(float)
    if field == "score":
        return rank_stretch(values.astype(float)), colors.Normalize(-1, 1), "RdBu_r", \
            "score rank: trainable (blue, < 0) · not trainable (red, > 0)"
    if field == "accuracy":
        return values, colors.Normalize(0, 1), "viridis", "accuracy on the training set"
    positive = finite[finite > 0]
    if field in ("final_loss", "loss_sum") and positive.size:
        data = np.where(np.isnan(values) | (values > 0), values, np.nan if field == "loss_sum" else positive.min())
        return data, colors.LogNorm(positive.min(), positive.max()), "viridis", f"{field} (log scale)"
    if field == "steps" and positive.size and positive.max() > 100 * positive.min():
        return np.where(values > 0, values, positive.min()).astype(float), \
            colors.LogNorm(positive.min(), positive.max()), "viridis", "steps to the outcome (log scale)"
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    return values.astype(float), colors.Normalize(low, high if high > low else low + 1), "viridis", field


#: Colours of recorded points' curves (Okabe & Ito, then greys): a point's number and its curves share one.
CURVE_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#000000", "#999999")


def plot_history(cmap: MapData, field: str = "outcome", figure: Any = None):
    """The map with its recorded points numbered on it, and their curves beside it; returns the figure.

    Right of the map: the full-data loss L_t of each recorded point against the step (log scale; a loss of
    exactly 0 is drawn a decade below the smallest positive one), each curve ending at the step its outcome
    was decided, marked with a dot in the outcome's colour; for
    classifiers, below it, the training accuracy at the recorded stride. SpecError if the map recorded
    no points (``MapData.history``).
    """
    from matplotlib.figure import Figure

    history = cmap.history
    spec = cmap.spec
    classifier = history.accuracy is not None
    if figure is None:
        figure = Figure(figsize=(14, 5.5 if spec.y is not None else 4.5), layout="constrained")
    grid = figure.add_gridspec(2 if classifier else 1, 2, width_ratios=(1.15, 1))
    ax_map = plot(cmap, field, ax=figure.add_subplot(grid[:, 0]))
    ax_loss = figure.add_subplot(grid[0, 1])
    ax_accuracy = figure.add_subplot(grid[1, 1], sharex=ax_loss) if classifier else None
    positive = history.loss[np.isfinite(history.loss) & (history.loss > 0)]
    floor = positive.min() / 10 if positive.size else 1e-12  # where a loss of exactly 0 is drawn
    for k in range(len(history)):
        colour = CURVE_COLOURS[k % len(CURVE_COLOURS)]
        x = spec.x.scaled(float(history.x[k]))
        y = 0.5 if history.y is None else spec.y.scaled(float(history.y[k]))
        ax_map.annotate(str(k + 1), (x, y), color="black", fontsize="small", fontweight="bold", ha="center",
                        va="center", bbox=dict(boxstyle="circle,pad=0.2", facecolor=colour, edgecolor="black"))
        decided, outcome = int(history.decided[k]), Outcome(int(history.outcome[k]))
        where = "" if history.y is None else f", {spec.y.name} = {history.y[k]:.4g}"
        label = f"{k + 1}: {spec.x.name} = {history.x[k]:.4g}{where} → {outcome.label} at step {decided}"
        steps = np.arange(history.loss.shape[1])
        loss = np.where(history.loss[k] == 0, floor, history.loss[k])
        shown = np.isfinite(loss)
        ax_loss.plot(steps[shown], loss[shown], color=colour, linewidth=1.2, label=label)
        last = np.flatnonzero(shown & (steps <= decided))
        if last.size:  # the deciding step (or the last drawable one before it, for an overflow)
            end = last[-1]
            ax_loss.plot(steps[end], loss[end], "o", color=OUTCOME_COLOURS[outcome], markeredgecolor="black",
                         markersize=7, zorder=3)
        if classifier:
            accuracy = history.accuracy[k]
            drawn = np.isfinite(accuracy)
            ax_accuracy.plot(history.accuracy_steps[drawn], accuracy[drawn], color=colour, linewidth=1.2,
                             marker="." if drawn.sum() < 50 else None)
            ax_accuracy.axvline(decided, color=colour, linewidth=0.6, linestyle=":")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("full-data loss L_t (log scale)")
    ax_loss.set_title("recorded points: loss; ● outcome at the deciding step", fontsize="medium")
    ax_loss.legend(fontsize="x-small", loc="best", frameon=False)
    (ax_accuracy or ax_loss).set_xlabel("step t")
    if classifier:
        values = spec.point_values(history.iy, history.ix)
        shape_values = {name: values[name] for name in spec.model_def.shape_knobs if name in values}
        classes = np.unique(class_counts(spec.model_def, shape_values)[0])
        if classes.size == 1:  # chance level, where the recorded points share it
            ax_accuracy.axhline(1 / float(classes[0]), color="0.5", linewidth=0.8, linestyle="--", label="chance")
            ax_accuracy.legend(fontsize="x-small", loc="lower right", frameon=False)
        ax_accuracy.set_ylim(-0.02, 1.02)
        ax_accuracy.set_ylabel("training accuracy")
    return figure


def save_plot(cmap: MapData, path: str | Path, field: str = "outcome", dpi: int = 150,
              history: bool = False) -> Path:
    """Draw ``field`` of ``cmap`` (with ``history``, beside its recorded points' curves: ``plot_history``) and
    write it to ``path`` (format from the suffix: .png, .pdf, .svg), atomically."""
    figure = plot_history(cmap, field) if history else plot(cmap, field).figure
    check_picture_size(figure, dpi)
    return write_picture(path, lambda tmp: figure.savefig(tmp, dpi=dpi, format=Path(path).suffix[1:].lower()))


#: Most pixels a picture may have (about 8000 × 6000): drawing one takes some 40 bytes a pixel.
MAX_PICTURE_PIXELS = 50_000_000


def check_picture_size(figure, dpi: int) -> None:
    """SpecError, before drawing, if ``figure`` at ``dpi`` would have more than ``MAX_PICTURE_PIXELS`` pixels
    (the figure is closed then)."""
    width, height = figure.get_size_inches()
    pixels = width * dpi * height * dpi
    if pixels > MAX_PICTURE_PIXELS:
        import matplotlib.pyplot as plt

        plt.close(figure)
        most = int(dpi * (MAX_PICTURE_PIXELS / pixels) ** 0.5)
        raise SpecError(f"--dpi {dpi} would draw a {width * dpi:.0f}×{height * dpi:.0f} picture "
                        f"({pixels / 1e6:.0f} megapixels, at most {MAX_PICTURE_PIXELS / 1e6:.0f}); give --dpi {most} or less")


def write_picture(path: str | Path, write: Callable[[Path], None], partial: str | Path | None = None) -> Path:
    """Run ``write(temporary path)`` and rename the result to ``path``: a picture appears whole or not at all.
    Failures to write become MapFileError (OutOfSpace for a full disk; ``partial``: the file that keeps the
    finished work, for --resume, as ``errors.write_error`` says)."""
    import os
    import tempfile

    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise write_error(exc, path, partial) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        with open(tmp, "rb") as written:  # on disk before it takes the name
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(exc, path, partial) from None
    except (ValueError, RuntimeError) as exc:
        raise MapFileError(f"could not write {str(path)!r}: {exc}; check the path and the disk space") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
