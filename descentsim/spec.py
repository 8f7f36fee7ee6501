"""What a map computes: the model, its knobs, the axes swept, the budget and the precision."""

from __future__ import annotations

import functools
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import SpecError, check_known, unknown_name
from .knobs import Knob, KnobValue
from .models import Model, get_model
from .optimizers import Optimizer, get_optimizer, knob_owners
from .outcome import Thresholds

DTYPES = ("float64", "float32")
#: How the compiled engine may do its arithmetic: "exact" (the default) as the NumPy reference, bit for bit;
#: "fast" with multiply-adds fused (FMA) where the CPU has them, divisions of many values by one made products
#: with its reciprocal, and a cheaper tanh: slightly different roundings (README, "Fast arithmetic"). The reference
#: itself is exact only.
ARITHMETICS = ("exact", "fast")
SCALES = ("linear", "log")
#: Most points along one axis, and most steps (the ``steps`` field is int32).
MAX_AXIS_POINTS = 2**24
MAX_STEPS = 2**31 - 1


def _number(owner: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{owner}: {key} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Axis:
    """One axis of a map: knob ``name`` swept over ``n`` points from ``start`` to ``stop``.

    ``scale="linear"`` spaces the points evenly (``numpy.linspace``); ``"log"`` spaces them evenly in
    log|value| (``numpy.geomspace``), so start and stop must be non-zero and of one sign.

    Examples
    --------
    >>> Axis("lr", 1e-3, 1.0, 4, scale="log").values()
    array([0.001, 0.01 , 0.1  , 1.   ])
    """

    name: str
    start: float
    stop: float
    n: int
    scale: str = "linear"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"axis name must be a knob name such as \"lr\", got {self.name!r}")
        owner = f"axis {self.name!r}"
        object.__setattr__(self, "start", _number(owner, "start", self.start))
        object.__setattr__(self, "stop", _number(owner, "stop", self.stop))
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n <= 0:
            raise SpecError(f"{owner}: n must be a whole number >= 1, got {self.n!r}")
        if self.n > MAX_AXIS_POINTS:
            raise SpecError(f"{owner}: n must be at most {MAX_AXIS_POINTS}, got {self.n}; zoom in instead")
        if self.scale not in SCALES:
            raise SpecError(f"{owner}: scale must be 'linear' or 'log', got {self.scale!r}")
        if self.scale == "log" and not self.start * self.stop > 0:
            raise SpecError(
                f"{owner}: a log axis cannot reach or cross zero (start={self.start:g}, stop={self.stop:g}); "
                "use scale='linear' or bounds of one sign"
            )

    def scaled(self, value: float) -> float:
        """``value`` in the coordinate in which this axis is evenly spaced: log10 |value| on a log axis."""
        return math.log10(abs(value)) if self.scale == "log" else value

    def unscaled(self, coordinate: float) -> float:
        """The inverse of ``scaled`` (with the sign of the axis's values)."""
        return math.copysign(10.0**coordinate, self.start) if self.scale == "log" else coordinate

    def nearest_index(self, value: float) -> int:
        """The index of the grid point nearest ``value`` (in the coordinate the axis is evenly spaced in)."""
        if self.n == 1:
            return 0
        span = self.scaled(self.stop) - self.scaled(self.start)
        return int(np.clip(round((self.scaled(value) - self.scaled(self.start)) / span * (self.n - 1)), 0, self.n - 1))

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies between start and stop (inclusive, either order)."""
        low, high = sorted((self.start, self.stop))
        return low <= value <= high

    def values(self) -> np.ndarray:
        """The ``n`` coordinates of this axis (float64)."""
        if self.scale == "log":
            return np.geomspace(self.start, self.stop, self.n)
        return np.linspace(self.start, self.stop, self.n)

    def to_dict(self) -> dict:
        return {"name": self.name, "start": self.start, "stop": self.stop, "n": self.n, "scale": self.scale}

    @classmethod
    def from_dict(cls, table: object, which: str) -> "Axis":
        if isinstance(table, Axis):
            return table
        if not isinstance(table, Mapping):
            raise SpecError(f"axis {which} must be a table with name, start, stop, n (and scale)")
        valid = ("name", "start", "stop", "n", "scale")
        check_known(table, valid, "key", prefix=f"axis {which}: ")
        missing = [k for k in valid[:4] if k not in table]
        if missing:
            raise SpecError(f"axis {which}: missing {', '.join(missing)}; add them to the [{which}] table")
        return cls(**table)


@dataclass(frozen=True)
class MapSpec:
    """Everything that defines a convergence map; a trajectory is a pure function of (spec, grid index).

    Parameters
    ----------
    model : name of the model (see ``descentsim.MODELS``).
    x, y : the swept axes; ``y=None`` makes a one-row map.
    steps : the budget of gradient steps per trajectory (at least 1).
    params : fixed knob values; knobs neither fixed nor swept take their defaults.
    dtype : ``"float64"`` or ``"float32"``, the precision of the arithmetic.
    arithmetic : ``"exact"`` (default: bit for bit the NumPy reference's roundings) or ``"fast"`` (the compiled
        engine fuses multiply-adds where the CPU has FMA, multiplies by reciprocals where it divides by the count,
        mean-field's √n·√n or a softmax's sum, and takes a cheaper tanh (``numerics.fast_tanh_float32`` and
        ``fast_tanh_float64``): faster, and not bit-identical to exact; outcomes agree with exact but near fractal
        boundaries). Part of the map's identity, like ``dtype``; SpecError for anything else.
    optimizer : name of the optimiser (``"gd"``).
    thresholds : the outcome rules' thresholds (``Thresholds`` or a dict).
    record : points whose curves the map keeps (``ConvergenceMap.history``): knob values ``(x, y)``
        (``(x,)`` or ``x`` for a one-row map), each taken to the nearest grid point; at most
        ``MAX_RECORDED`` of them.
    record_stride : recorded classifiers' training accuracy is kept every ``record_stride`` steps (the
        loss every step).

    Examples
    --------
    >>> spec = MapSpec(model="quadratic", x=Axis("lr", 0.1, 3.0, 64), y=Axis("a", 0.5, 2.0, 32), steps=200)
    >>> spec.shape
    (32, 64)
    """

    model: str
    x: Axis
    y: Axis | None = None
    steps: int = 1000
    params: Mapping[str, KnobValue] = field(default_factory=dict)
    dtype: str = "float64"
    arithmetic: str = "exact"
    optimizer: str = "gd"
    thresholds: Thresholds = field(default_factory=Thresholds)
    record: tuple = ()
    record_stride: int = 1

    def __post_init__(self) -> None:
        model = get_model(self.model)
        get_optimizer(self.optimizer)
        object.__setattr__(self, "x", Axis.from_dict(self.x, "x"))
        if self.y is not None:
            object.__setattr__(self, "y", Axis.from_dict(self.y, "y"))
        if isinstance(self.thresholds, Mapping):
            object.__setattr__(self, "thresholds", Thresholds.from_dict(self.thresholds))
        elif not isinstance(self.thresholds, Thresholds):
            raise SpecError("thresholds must be a table of threshold values")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise SpecError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {self.steps!r}; "
                            "give the gradient steps each trajectory may take, e.g. steps = 1000")
        if self.dtype not in DTYPES:
            raise SpecError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        if self.arithmetic not in ARITHMETICS:
            raise SpecError(f"arithmetic must be 'exact' (the default) or 'fast', got {self.arithmetic!r}")
        if not isinstance(self.params, Mapping):
            raise SpecError("params must be a table of knob = value")
        if self.shape[0] * self.shape[1] > MAX_AXIS_POINTS * 64:
            raise SpecError(f"the map has {self.shape[0] * self.shape[1]} points, more than one run can hold; "
                            "split it into several maps")

        knobs = self.knobs
        for name in self.params:
            if name not in knobs:
                raise self._unknown_knob(name, "")
        object.__setattr__(
            self, "params", MappingProxyType({k: knobs[k].coerce(v) for k, v in self.params.items()})
        )
        for which, axis in zip("xy", self.axes):
            if axis.name not in knobs:
                raise self._unknown_knob(axis.name, " on an axis")
            knob = knobs[axis.name]
            if not knob.sweepable:
                raise SpecError(f"knob {axis.name!r} takes a name, not a number: fix it in params instead")
            if axis.name in self.params:
                raise SpecError(f"knob {axis.name!r} is both fixed in params and swept on an axis; remove one")
            try:
                knob.sweep_values(axis.values())
            except SpecError as exc:
                raise SpecError(f"{exc}; change the bounds of axis {which} ({axis.start:g} to {axis.stop:g})") from None
        unset = [k for k in knobs.values() if k.default is None and k.name not in self.params and k.name not in
                 {axis.name for axis in self.axes}]
        if unset:
            raise SpecError(f"knob {unset[0].name!r} ({unset[0].doc}) has no default; fix it in [params] "
                            f"(e.g. {unset[0].name} = 1.0) or sweep it on an axis")
        if self.params.get("batch_size", 0) and not model.minibatches:
            raise SpecError(f"model {model.name!r} has no data samples to draw minibatches from; leave batch_size at 0")
        swept = {axis.name for axis in self.axes}
        if (self.params.get("eval_samples", 0) or "eval_samples" in swept) and not (
                self.params.get("batch_size", 0) or "batch_size" in swept):
            raise SpecError("eval_samples chooses the samples minibatch runs are judged on; set batch_size too, "
                            "or leave eval_samples at 0 (full-batch runs are judged on all the data)")
        if self.params.get("batch_order") == "sequential" and self.params.get("batch_per_point"):
            raise SpecError("batch_order 'sequential' is the same sequence for every point; leave batch_per_point at 0")
        if self.y is not None and self.y.name == self.x.name:
            raise SpecError(f"x and y both sweep knob {self.x.name!r}; sweep two different knobs")
        object.__setattr__(self, "record", _record_points(self.record, self.axes))
        if isinstance(self.record_stride, bool) or not isinstance(self.record_stride, int) or self.record_stride < 1:
            raise SpecError(f"record_stride must be a whole number >= 1, got {self.record_stride!r}")
        curves = len(self.record) * (self.steps + 1) * 8 * (2 if self.record and self.model_def.classifier else 1)
        if curves > MAX_RECORDED_BYTES:
            raise SpecError(f"recording {len(self.record)} points of {self.steps + 1} steps needs {curves / 2**30:.1f} GiB "
                            f"(at most {MAX_RECORDED_BYTES / 2**30:.0f}); record fewer points, or map fewer steps")

    def _unknown_knob(self, name: str, where: str) -> SpecError:
        """The error for a knob ``name`` that neither this model nor this optimiser has; a knob of another
        optimiser says which one to choose."""
        owners = knob_owners(name)
        if owners:
            quoted = [f'"{owner}"' for owner in owners]
            choices = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
            return SpecError(f"knob {name!r}{where} belongs to optimizer {choices}, not \"{self.optimizer}\"; "
                             f"set optimizer = \"{owners[0]}\" to use it, or remove {name}")
        settings = [f.name for f in fields(MapSpec)]
        if name in settings:
            return SpecError(f"{name!r} is a setting of the map, not a knob: write {name} = ... at the top of the "
                             "config, outside [params]")
        return unknown_name(name, list(self.knobs), "knob", where=f"{where} for model {self.model!r}",
                            close_to=[*self.knobs, *settings])

    # --- derived --------------------------------------------------------------------------------
    @functools.cached_property
    def model_def(self) -> Model:
        """The model, made for this spec's fixed knobs (``Model.for_params``: the formula model's loss, the
        network's architecture and task, which may read its data file), made once per spec."""
        reserved = frozenset({*(k.name for k in self.optimizer_def.knobs), *(f.name for f in fields(MapSpec))})
        return get_model(self.model).for_params(self.params, reserved)

    @property
    def optimizer_def(self) -> Optimizer:
        return get_optimizer(self.optimizer)

    @property
    def knobs(self) -> dict[str, Knob]:
        """Every knob of this spec's model and optimiser, by name."""
        return {k.name: k for k in (*self.model_def.knobs, *self.optimizer_def.knobs)}

    @property
    def axes(self) -> tuple[Axis, ...]:
        return (self.x,) if self.y is None else (self.x, self.y)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx): rows are y, columns are x; ny = 1 without a y axis."""
        return (1 if self.y is None else self.y.n, self.x.n)

    @property
    def resolved_thresholds(self) -> Thresholds:
        return self.thresholds.resolved(self.model_def.converge_loss)

    def point_values(self, iy: np.ndarray, ix: np.ndarray) -> dict[str, KnobValue | np.ndarray]:
        """Knob values at grid points (iy[k], ix[k]): a scalar for fixed knobs, an array for swept ones."""
        knobs = self.knobs
        values: dict[str, Any] = {k.name: self.params.get(k.name, k.default) for k in knobs.values()}
        values[self.x.name] = knobs[self.x.name].sweep_values(self.x.values())[ix]
        if self.y is not None:
            values[self.y.name] = knobs[self.y.name].sweep_values(self.y.values())[iy]
        return values

    def record_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(iy, ix): the grid points nearest the recorded points, int64 arrays of ``len(record)``."""
        ix = np.array([self.x.nearest_index(point[0]) for point in self.record], dtype=np.int64)
        iy = np.array([0 if self.y is None else self.y.nearest_index(point[1]) for point in self.record],
                      dtype=np.int64)
        return iy, ix

    def axis_coordinates(self, axis: Axis) -> np.ndarray:
        """The knob values along ``axis`` as the map uses them (integer knobs rounded)."""
        return self.knobs[axis.name].sweep_values(axis.values())

    def replace(self, **changes) -> "MapSpec":
        return MapSpec(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})

    # --- TOML -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        table: dict[str, Any] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "steps": self.steps,
            "dtype": self.dtype,
        }
        if self.arithmetic != "exact":  # written only when not the default, so exact maps' specs read as before
            table["arithmetic"] = self.arithmetic
        table["x"] = self.x.to_dict()
        if self.y is not None:
            table["y"] = self.y.to_dict()
        table["params"] = dict(self.params)
        table["thresholds"] = self.thresholds.to_dict()
        if self.record:
            table["record"] = [list(point) for point in self.record]
        if self.record_stride != 1:
            table["record_stride"] = self.record_stride
        return table

    @classmethod
    def from_dict(cls, table: Mapping) -> "MapSpec":
        check_known(table, [f.name for f in fields(cls)], "setting")
        for required in ("model", "x"):
            if required not in table:
                raise SpecError(f"the spec has no {required!r}; add it (e.g. model = \"quadratic\" and an [x] table)")
        return cls(**table)

    def to_toml(self) -> str:
        """This spec as TOML text, with the same keys as MapSpec's arguments."""
        return _dump_toml(self.to_dict())

    @classmethod
    def from_toml_text(cls, text: str, source: str = "spec", stored: bool = False) -> "MapSpec":
        """A spec from TOML text. ``stored``: the text is a spec a map file or partial run holds; one written
        before ``thresholds.converge_window`` existed (every spec written since names it) was computed with
        a window of 1 and reads so."""
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{source} is not valid TOML: {exc}") from None
        if stored and isinstance(table.get("thresholds", {}), dict):
            table["thresholds"] = {"converge_window": 1, **table.get("thresholds", {})}
        return cls.from_dict(table)

    @classmethod
    def from_toml(cls, path: str | Path) -> "MapSpec":
        """Read a spec from a TOML file."""
        return cls.from_dict(read_config(path))


def read_config(path: str | Path) -> dict:
    """The table of a TOML config file; SpecError (naming the file) if it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise SpecError(f"cannot read config {str(path)!r}: {exc.strerror or exc}; check the path") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"config {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"config {str(path)!r} is not a text file; give a UTF-8 TOML file") from None


#: Most points one map records, and most memory their curves may take (checked before any work).
MAX_RECORDED = 1024
MAX_RECORDED_BYTES = 2**31


def _record_points(record: object, axes: tuple[Axis, ...]) -> tuple[tuple[float, ...], ...]:
    """``record`` as a tuple of knob-value tuples, one value per axis, each inside its axis; SpecError if not."""
    example = "record = [[0.5, 1.0], [2.0, -1.0]]" if len(axes) == 2 else "record = [0.5, 2.0]"
    if isinstance(record, (str, bytes, Mapping)) or not isinstance(record, (list, tuple)):
        raise SpecError(f"record must be a list of points in knob values, e.g. {example}")
    if len(record) > MAX_RECORDED:
        raise SpecError(f"record holds {len(record)} points, more than {MAX_RECORDED}; record fewer")
    points = []
    for point in record:
        values = (point,) if len(axes) == 1 and not isinstance(point, (list, tuple)) else point
        if not isinstance(values, (list, tuple)) or len(values) != len(axes):
            raise SpecError(f"record point {point!r} needs one value per axis ({', '.join(a.name for a in axes)}), "
                            f"e.g. {example}")
        coords = tuple(_number("record", "a point's value", v) for v in values)
        for axis, value in zip(axes, coords):
            if not axis.contains(value):
                raise SpecError(f"record point {point!r}: {axis.name} = {value:g} lies outside the axis "
                                f"({axis.start:g} to {axis.stop:g}); record points of the map")
        points.append(coords)
    return tuple(points)


def _toml_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {value!r} to TOML")


def _dump_toml(table: Mapping) -> str:
    scalars = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, Mapping)]
    blocks = ["\n".join(scalars)] if scalars else []
    for key, sub in table.items():
        if isinstance(sub, Mapping):
            blocks.append("\n".join([f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in sub.items())]))
    return "\n\n".join(blocks) + "\n"
