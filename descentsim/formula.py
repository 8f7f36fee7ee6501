"""Losses given as formulas: parsed, differentiated by SymPy, and compiled into a program both engines run alike.

A formula such as ``x**2 * (1 + eps*cos(2*pi*x/lam))`` is read with Python's own parser (``ast``: nothing is
evaluated) into a SymPy expression of real symbols. The declared parameters are trained; every other symbol is a
knob; ``pi`` and ``E`` are constants. The functions are sin, cos, tan, exp, log, tanh, sqrt and abs. SymPy gives
the exact gradient (``sympy.diff``); the loss and its gradient, after SymPy's common-subexpression elimination
(``sympy.cse``), are compiled into a *program*: a list of instructions, each one operation writing one register,

    (op, a, b, literal)   op in OPS; a, b the registers it reads (or the parameter / knob index a, or the literal)

evaluated in order. The last P + 1 registers are L and ∂L/∂θ_1..P. The NumPy reference (``evaluate``) and the
compiled kernel (``ds_formula`` in ext/trajectory.h) run the program operation for operation, with the
transcendentals of ``descentsim.numerics`` built from + − × ÷ (never libm's or NumPy's), so they agree bit
for bit in float64 and in float32 (the program's literals are rounded to the run's precision).

How expressions become operations (the documented order):

* a sum: its terms in SymPy's order, left to right; a term with a minus sign is subtracted (a − b);
* a product: the factors free of symbols folded into one literal first (correctly rounded, from SymPy's
  40-digit value; −1 becomes a negation at the end), then the factors with a positive exponent left to right,
  x**n (integer 1 <= n <= MAX_CHAIN) entering as n factors x; the factors with a negative exponent form a
  denominator the same way, and the product is numerator / denominator. So ``a*w**2/2`` is ((½·a)·w)·w, the
  operations of the ``quadratic`` model;
* x**n alone, integer n: ((x·x)·x)… (n − 1 multiplications) for n <= MAX_CHAIN, square-and-multiply above
  (from the leading bit: square, then multiply by x where the bit is set); n < 0 is 1/x**|n|;
* x**(n/2): sqrt(x)**n as above (sqrt is IEEE's, correctly rounded: the same everywhere); any other exponent
  y: exp(y·log x), NaN for x < 0 (log's NaN);
* tan(x) = sin(x)/cos(x); abs's derivative is sign(x) (0 at 0, NaN at NaN).

A program depends on the SymPy version that compiled it (canonical orders and ``cse`` may change between
versions); the engines agree with each other for any one program.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from . import numerics
from .errors import SpecError

#: The operations, in the order of their codes (ext/kernels.h's DS_OP_* enum).
OPS = ("const", "param", "knob", "copy", "add", "sub", "mul", "div", "neg", "sqrt", "abs", "sign", "sin", "cos",
       "exp", "log", "tanh")
OP = {name: code for code, name in enumerate(OPS)}
#: Functions a formula may call.
FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "tanh", "sqrt", "abs")
#: Named constants of a formula.
CONSTANTS = ("pi", "E")
#: Integer powers up to this are repeated multiplications (x·x·…·x); larger ones square-and-multiply.
MAX_CHAIN = 16
#: Most instructions of one program (register indices travel as floats, exact in float32 below 2^24).
MAX_PROGRAM = 1 << 20
INSTALL_HINT = 'pip install "descentsim[formula]"'


def sympy_module():
    """SymPy, imported on first use; SpecError with the install command when it is missing."""
    try:
        import sympy
    except ImportError:
        raise SpecError(f"model 'formula' needs SymPy to differentiate the loss; install it with {INSTALL_HINT}") from None
    return sympy


@dataclass(frozen=True)
class CompiledFormula:
    """A loss compiled for the engines.

    parameters : the trained symbols, in θ's order (θ_i starts at knob ``<name>0``).
    knobs : the other symbols, in the order of ``Problem.consts``' columns.
    program : (S, 4) float64, one instruction (op, a, b, literal) a row; the last P + 1 registers are L, ∇L.
    expression, gradient : the loss and its gradient as SymPy prints them.
    """

    parameters: tuple[str, ...]
    knobs: tuple[str, ...]
    program: np.ndarray
    expression: str
    gradient: tuple[str, ...]


def split_parameters(text: str) -> tuple[str, ...]:
    """The declared parameters ``"x"``, ``"x, y"`` or ``"x y"`` as names; SpecError if one is not a name."""
    names = tuple(n for n in re.split(r"[\s,]+", text.strip()) if n)
    if not names:
        raise SpecError('parameters is empty; name the trained symbols of the loss, e.g. parameters = "x"')
    for name in names:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecError(f"parameter {name!r} is not a name; write e.g. parameters = \"x, y\"")
        if name in CONSTANTS or name in FUNCTIONS:
            raise SpecError(f"parameter {name!r} is a constant or function of formulas; choose another name")
    if len(set(names)) < len(names):
        raise SpecError(f"parameters {text!r} names a symbol twice; name each once")
    return names


@functools.lru_cache(maxsize=64)
def compile_formula(loss: str, parameters: str, reserved: frozenset[str] = frozenset()) -> CompiledFormula:
    """Parse, differentiate and compile ``loss`` with trained ``parameters`` (``split_parameters``).

    ``reserved`` are names a knob of the formula may not take (the optimisers' knobs, the spec's settings).
    Raises SpecError, one line naming the problem: a syntax error (with its position), an unknown function or
    construct, a declared parameter missing from the loss, a symbol clashing with a knob, a constant that is
    not a finite real number. Results are cached.

    Examples
    --------
    >>> f = compile_formula("a*w**2/2", "w")
    >>> f.parameters, f.knobs, f.gradient
    (('w',), ('a',), ('a*w',))
    """
    sympy = sympy_module()
    names = split_parameters(parameters)
    expression = parse(loss)
    symbols = {s.name: s for s in expression.free_symbols}
    for name in names:
        if name not in symbols:
            raise SpecError(f"parameter {name!r} does not appear in the loss {loss!r}; declare the symbols it trains, "
                            f"e.g. parameters = \"{', '.join(sorted(symbols)) or 'x'}\"")
    knobs = tuple(sorted(n for n in symbols if n not in names))
    starts = {f"{n}0": n for n in names}
    for knob in knobs:
        if knob in starts:
            raise SpecError(f"symbol {knob!r} of the loss clashes with the start knob of parameter {starts[knob]!r}; "
                            "rename the symbol")
        if knob in reserved:
            raise SpecError(f"symbol {knob!r} of the loss clashes with the knob or setting {knob!r}; rename the symbol")
    params = [symbols[n] for n in names]
    gradient = [sympy.diff(expression, p) for p in params]
    program = _Compiler(sympy, names, knobs).program(expression, gradient)
    return CompiledFormula(names, knobs, program, str(expression), tuple(str(g) for g in gradient))


def parse(loss: str):
    """``loss`` as a SymPy expression of real symbols; SpecError naming the problem (module docstring)."""
    sympy = sympy_module()
    if not isinstance(loss, str) or not loss.strip():
        raise SpecError('model "formula" needs its loss: set loss = "x**2 * (1 + eps*cos(2*pi*x/lam))" in [params]')
    try:
        tree = ast.parse(loss.strip(), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"the loss {loss!r} is not a formula: {exc.msg} at character {exc.offset}") from None
    expression = _Reader(sympy, loss.strip()).read(tree.body)
    if expression.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise SpecError(f"the loss {loss!r} is infinite or undefined as written ({expression}); check divisions by 0")
    if expression.has(sympy.I):
        raise SpecError(f"the loss {loss!r} has a constant that is not a real number ({expression}); "
                        "formulas are real-valued")
    return expression


class _Reader:
    """Python syntax tree → SymPy, node by node: numbers (exact), names, + − × ÷ **, unary ±, calls of FUNCTIONS."""

    def __init__(self, sympy, text: str):
        self.sympy, self.text = sympy, text
        self.binary = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                       ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a**b}
        self.functions = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp, "log": sympy.log,
                          "tanh": sympy.tanh, "sqrt": sympy.sqrt, "abs": sympy.Abs}

    def refuse(self, node: ast.AST, what: str):
        return SpecError(f"the loss {self.text!r}: {what} at character {node.col_offset + 1} is not allowed; "
                         f"formulas take numbers, names, + - * / ** and {', '.join(FUNCTIONS)}")

    def read(self, node: ast.AST):
        sympy = self.sympy
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.BitXor):
                at = self.text.index("^", node.left.end_col_offset) + 1
                raise SpecError(f"the loss {self.text!r}: '^' at character {at} is not a power; "
                                "write x**2")
            if type(node.op) not in self.binary:
                raise self.refuse(node, f"the operator {type(node.op).__name__}")
            return self.binary[type(node.op)](self.read(node.left), self.read(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.read(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Constant):
            if isinstance(node.value, complex):
                raise SpecError(f"the loss {self.text!r} has the imaginary number {node.value!r}; formulas are "
                                "real-valued")
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.refuse(node, f"the constant {node.value!r}")
            exact = Fraction(ast.get_source_segment(self.text, node) or repr(node.value))  # 0.1 is 1/10
            return sympy.Rational(exact.numerator, exact.denominator)
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return {"pi": sympy.pi, "E": sympy.E}[node.id]
            if node.id in FUNCTIONS:
                raise SpecError(f"the loss {self.text!r}: {node.id} is a function; call it, e.g. {node.id}(x)")
            return sympy.Symbol(node.id, real=True)
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ast.get_source_segment(self.text, node.func)
            if name not in FUNCTIONS:
                raise SpecError(f"the loss {self.text!r} calls the unknown function {name!r}; the functions are "
                                f"{', '.join(FUNCTIONS)}")
            if len(node.args) != 1 or node.keywords:
                raise SpecError(f"the loss {self.text!r}: {name} takes one argument, e.g. {name}(x)")
            return self.functions[name](self.read(node.args[0]))
        raise self.refuse(node, type(node).__name__)


class _Compiler:
    """SymPy expressions → a program of OPS (module docstring), each distinct subexpression computed once."""

    def __init__(self, sympy, parameters: tuple[str, ...], knobs: tuple[str, ...]):
        self.sympy = sympy
        self.parameters = {n: i for i, n in enumerate(parameters)}
        self.knobs = {n: i for i, n in enumerate(knobs)}
        self.code: list[tuple[int, int, int, float]] = []
        self.registers: dict[Any, int] = {}

    def program(self, loss, gradient) -> np.ndarray:
        sympy = self.sympy
        replacements, reduced = sympy.cse([loss, *gradient], symbols=sympy.numbered_symbols("_cse"))
        for symbol, value in replacements:
            self.registers[symbol] = self.register(value)
        outputs = [self.register(e) for e in reduced]
        for out in outputs:
            self.emit("copy", out)
        if len(self.code) > MAX_PROGRAM:
            raise SpecError(f"the loss compiles to {len(self.code)} operations, more than {MAX_PROGRAM}; simplify it")
        return np.array(self.code, dtype=np.float64).reshape(-1, 4)

    def emit(self, op: str, a: int = 0, b: int = 0, literal: float = 0.0) -> int:
        self.code.append((OP[op], a, b, literal))
        return len(self.code) - 1

    def register(self, expr) -> int:
        if expr not in self.registers:
            self.registers[expr] = self.build(expr)
        return self.registers[expr]

    def literal(self, expr) -> int:
        value = complex(self.sympy.N(expr, 40))
        if value.imag != 0:
            raise SpecError(f"the loss has the constant {self.sympy.N(expr, 6)}, which is not a real number; "
                            "write the loss so that it stays real")
        if not np.isfinite(value.real):
            raise SpecError(f"the loss has the constant {self.sympy.N(expr, 6)}, beyond float64's range (±1.8e308); "
                            "rescale the loss or its constants")
        return self.emit("const", literal=float(value.real))

    def build(self, expr) -> int:
        sympy = self.sympy
        if not expr.free_symbols:
            return self.literal(expr)
        if expr.is_Symbol:
            if expr.name in self.parameters:
                return self.emit("param", self.parameters[expr.name])
            return self.emit("knob", self.knobs[expr.name])
        if expr.is_Add:
            return self.sum(expr.args)
        if expr.is_Mul:
            return self.product(expr.args)
        if expr.is_Pow:
            return self.power(*expr.args)
        unary = {sympy.sin: "sin", sympy.cos: "cos", sympy.exp: "exp", sympy.log: "log", sympy.tanh: "tanh",
                 sympy.Abs: "abs", sympy.sign: "sign"}
        if expr.func in unary and len(expr.args) == 1:
            return self.emit(unary[expr.func], self.register(expr.args[0]))
        if expr.func == sympy.tan:
            return self.emit("div", self.register(sympy.sin(expr.args[0])), self.register(sympy.cos(expr.args[0])))
        raise SpecError(f"the loss's gradient holds {expr}, which formulas cannot compute; use "
                        f"{', '.join(FUNCTIONS)}")

    def sum(self, terms) -> int:
        out = self.register(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                out = self.emit("sub", out, self.register(-term))
            else:
                out = self.emit("add", out, self.register(term))
        return out

    def product(self, factors) -> int:
        sympy = self.sympy
        constant = sympy.Mul(*[f for f in factors if not f.free_symbols])
        negate = constant == -1
        numerator = [] if constant in (1, -1) else [self.literal(constant)]
        denominator = []
        for factor in (f for f in factors if f.free_symbols):
            base, exponent = factor.as_base_exp()
            if exponent.is_number and exponent.is_negative:
                denominator += self.factors(base, -exponent)
            else:
                numerator += self.factors(base, exponent)
        out = self.chain(numerator) if numerator else self.emit("const", literal=1.0)
        if denominator:
            out = self.emit("div", out, self.chain(denominator))
        return self.emit("neg", out) if negate else out

    def factors(self, base, exponent) -> list[int]:
        """The registers a product multiplies for base**exponent: n copies of base for an integer exponent up to
        MAX_CHAIN, else one register of the power."""
        if exponent.is_Integer and 1 <= int(exponent) <= MAX_CHAIN:
            return [self.register(base)] * int(exponent)
        return [self.register(self.sympy.Pow(base, exponent, evaluate=False))]

    def chain(self, registers: list[int]) -> int:
        out = registers[0]
        for r in registers[1:]:
            out = self.emit("mul", out, r)
        return out

    def power(self, base, exponent) -> int:
        sympy = self.sympy
        if exponent.is_Integer:
            n = int(exponent)
            if n < 0:
                return self.emit("div", self.emit("const", literal=1.0), self.integer_power(self.register(base), -n))
            return self.integer_power(self.register(base), n)
        if exponent.is_Rational and exponent.q == 2:
            root = self.emit("sqrt", self.register(base))
            if exponent.p < 0:
                return self.emit("div", self.emit("const", literal=1.0), self.integer_power(root, -exponent.p))
            return self.integer_power(root, exponent.p)
        return self.emit("exp", self.register(sympy.Mul(exponent, sympy.log(base), evaluate=False)))

    def integer_power(self, x: int, n: int) -> int:
        """x**n, n >= 0: repeated multiplication up to MAX_CHAIN, square-and-multiply above."""
        if n == 0:
            return self.emit("const", literal=1.0)
        if n <= MAX_CHAIN:
            return self.chain([x] * n)
        out = x
        for bit in bin(n)[3:]:
            out = self.emit("mul", out, out)
            if bit == "1":
                out = self.emit("mul", out, x)
        return out


def evaluate(program: np.ndarray, theta: np.ndarray, consts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``program`` (S, 4) on parameters ``theta`` (n, P) and knobs ``consts`` (n, C), in theta's dtype:
    (L (n,), ∇L (n, P)). The NumPy reference of ext/trajectory.h's ``ds_formula``, operation for operation."""
    dtype = theta.dtype
    n, p = theta.shape
    binary = {OP["add"]: np.add, OP["sub"]: np.subtract, OP["mul"]: np.multiply, OP["div"]: np.divide}
    unary = {OP["neg"]: np.negative, OP["sqrt"]: np.sqrt, OP["abs"]: np.abs, OP["sign"]: _sign,
             OP["sin"]: numerics.sin, OP["cos"]: numerics.cos, OP["exp"]: numerics.exp, OP["log"]: numerics.log,
             OP["tanh"]: numerics.tanh, OP["copy"]: lambda x: x}
    registers: list[np.ndarray] = []
    with np.errstate(all="ignore"):
        for op, a, b, literal in program.astype(dtype):
            op, a, b = int(op), int(a), int(b)
            if op == OP["const"]:
                value = np.full(n, literal, dtype=dtype)
            elif op == OP["param"]:
                value = theta[:, a]
            elif op == OP["knob"]:
                value = consts[:, a]
            elif op in binary:
                value = binary[op](registers[a], registers[b])
            else:
                value = unary[op](registers[a])
            registers.append(value)
    return registers[-p - 1], np.stack(registers[len(registers) - p:], axis=1)


def _sign(x: np.ndarray) -> np.ndarray:
    """1 for x > 0, −1 for x < 0, x itself for ±0 and NaN (the kernel's select)."""
    one = x.dtype.type(1)
    return np.where(x > 0, one, np.where(x < 0, -one, x))
