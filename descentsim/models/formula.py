"""A loss given as a formula (``descentsim.formula``): any expression of trained parameters and knobs."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import SpecError
from ..formula import CompiledFormula, compile_formula, evaluate, sympy_module
from ..knobs import Knob
from .base import KnobValues, Model, Problem, per_point

FORMULA_KNOBS = (
    Knob("loss", "", "the loss as a formula of parameters and knobs, e.g. x**2*(1 + eps*cos(2*pi*x/lam))", kind=str),
    Knob("parameters", "x", "the trained symbols of the loss, e.g. x or \"x, y\"; the others are knobs", kind=str),
)


class Formula(Model):
    """A loss written as a formula: model = "formula", loss = "...", parameters = "x" (or "x, y").

    The declared parameters are trained, each starting at knob ``<name>0`` (default 1); every other symbol of
    the loss is a knob, fixed in [params] or swept on an axis (it has no default: leaving it out is an error);
    ``pi`` and ``E`` are constants. Functions: sin, cos, tan, exp, log, tanh, sqrt, abs. The gradient is
    SymPy's exact derivative, compiled with the loss into a program both engines run operation for operation
    (``descentsim.formula``). CONVERGED means L <= converge_loss (1e-8): set thresholds.converge_loss for a
    loss whose minimum is not 0. Needs SymPy (``pip install "descentsim[formula]"``).

    Knobs: loss, parameters, then ``<parameter>0`` and the loss's own symbols.
    """

    name = "formula"
    kernel = "formula"
    knobs = FORMULA_KNOBS
    shape_knobs = frozenset({"loss", "parameters"})

    def for_params(self, params: Mapping[str, object], reserved: frozenset[str] = frozenset()) -> Model:
        loss = params.get("loss", "")
        parameters = params.get("parameters", "x")
        for name, value in (("loss", loss), ("parameters", parameters)):
            if not isinstance(value, str):
                raise SpecError(f"knob {name!r} of model 'formula' must be text, e.g. {name} = "
                                f"\"{'x**2' if name == 'loss' else 'x, y'}\"; got {value!r}")
        reserved = reserved | {k.name for k in FORMULA_KNOBS}
        return FormulaLoss(compile_formula(loss, parameters, frozenset(reserved)))

    def problem(self, values: KnobValues, n: int) -> Problem:
        return self.for_params(values).problem(values, n)

    def parameter_count(self, values: KnobValues) -> int:
        return self.for_params(values).parameter_count(values)


class FormulaLoss(Formula):
    """One formula's model: the knobs of its symbols, its problem and its reference loss and gradient."""

    def __init__(self, compiled: CompiledFormula):
        self.compiled = compiled
        self.knobs = (
            *FORMULA_KNOBS,
            *(Knob(f"{p}0", 1.0, f"initial value of the parameter {p}") for p in compiled.parameters),
            *(Knob(k, None, f"symbol {k} of the loss") for k in compiled.knobs),
        )

    def problem(self, values: KnobValues, n: int) -> Problem:
        theta0 = np.stack([per_point(values[f"{p}0"], n) for p in self.compiled.parameters], axis=1)
        knobs = self.compiled.knobs
        consts = np.stack([per_point(values[k], n) for k in knobs], axis=1) if knobs else np.zeros((n, 1))
        return Problem(theta0=theta0, consts=consts, data=self.compiled.program,
                       trainable=np.ones(len(self.compiled.parameters), dtype=bool))

    def parameter_count(self, values: KnobValues) -> int:
        return len(self.compiled.parameters)

    def provenance(self) -> dict[str, str]:
        """The SymPy that derived and simplified the program: another version may compile another program
        (the same maths, other bits)."""
        return {"sympy_version": sympy_module().__version__}

    def data_size(self, values: KnobValues) -> int:
        """The program."""
        return self.compiled.program.size

    def loss_grad(self, theta, consts, data, batch=None):
        return evaluate(data, theta, consts)
