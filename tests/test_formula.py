"""model = "formula": parsing, SymPy's gradient, the compiled program, the transcendentals, both engines."""

import sys
from pathlib import Path

import numpy as np
import pytest

import descentsim as ds
from descentsim import numerics
from descentsim.boundary import box_counting
from descentsim.cli import load_config
from descentsim.convergence_map import run_map_to_file
from descentsim.formula import OPS, compile_formula, evaluate
from helpers import assert_same_fields, run_both

sympy = pytest.importorskip("sympy")
mpmath = pytest.importorskip("mpmath")

LIU = "x**2 * (1 + eps*cos(2*pi*x/lam))"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: Formulas that use every operation, with their knobs.
FORMULAS = [
    (LIU, "x", {"eps": 0.2, "lam": 0.1}),
    ("log(1 + exp(-a*x)) + tanh(x*y)**2 + sqrt(x**2 + 1) + abs(y - 1)", "x, y", {"a": 1.5}),
    ("sin(x)**3 / (2 + cos(x*b)) + x**(5/2) + x**-3 + x**c + tan(x/4) + E**x + x**40", "x", {"b": 0.7, "c": 1.3}),
]


def test_operation_codes_match_the_kernel():
    from descentsim import _kernels

    assert len(OPS) == _kernels.FORMULA_OP_COUNT


@pytest.mark.parametrize("loss, parameters, knobs", FORMULAS)
def test_gradient_matches_sympy(loss, parameters, knobs):
    """The program's L and ∇L against SymPy's own expressions evaluated with mpmath, at many points."""
    f = compile_formula(loss, parameters)
    rng = np.random.default_rng(3)
    n = 200
    theta = rng.uniform(0.2, 1.5, (n, len(f.parameters)))
    consts = np.array([[knobs[k] for k in f.knobs]] * n) if f.knobs else np.zeros((n, 1))
    loss_values, grad = evaluate(f.program, theta, consts)
    symbols = [sympy.Symbol(s, real=True) for s in (*f.parameters, *f.knobs)]
    expr = sympy.sympify(f.expression, locals={s.name: s for s in symbols})
    exact = sympy.lambdify(symbols, [expr, *[sympy.diff(expr, s) for s in symbols[: len(f.parameters)]]], "mpmath")
    for i in range(n):
        want = [float(v) for v in exact(*theta[i], *(knobs[k] for k in f.knobs))]
        np.testing.assert_allclose([loss_values[i], *grad[i]], want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["exp", "log", "sin", "cos"])
def test_transcendentals_within_documented_ulps(name, dtype):
    """descentsim.numerics' bound: within 2.5 ulp of the exact value (mpmath) and 4 of NumPy's."""
    rng = np.random.default_rng(11)
    draws = {
        "exp": {"float64": rng.uniform(-745, 709, 3000), "float32": rng.uniform(-103, 88, 3000)},
        "log": {"float64": np.exp(rng.uniform(-744, 709, 3000)), "float32": np.exp(rng.uniform(-103, 88, 3000))},
        "sin": {"float64": rng.uniform(-2.0**29, 2.0**29, 3000), "float32": rng.uniform(-1000, 1000, 3000)},
    }
    draws["cos"] = draws["sin"]
    x = np.concatenate([draws[name][dtype], rng.uniform(-3, 3, 1000) if name != "log" else rng.uniform(0.5, 2, 1000)])
    x = x.astype(dtype)
    ours = getattr(numerics, name)(x).astype(np.float64)
    exact = np.array([float(getattr(mpmath, name)(mpmath.mpf(float(v)))) for v in x])
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(np.float64)
    assert np.max(np.abs(ours - exact) / spacing) <= 2.5
    theirs = getattr(np, name)(x).astype(np.float64)
    assert np.max(np.abs(ours - theirs) / spacing) <= 4


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transcendentals_at_the_edges(dtype):
    """Overflow, underflow, subnormals, zero, negatives, infinities and NaN as IEEE (and NaN for sin/cos beyond
    SIN_COS_MAX)."""
    t = np.dtype(dtype).type
    big = numerics.SIN_COS_MAX[dtype] * 4
    with np.errstate(all="ignore"):
        exp = numerics.exp(np.array([-np.inf, -2000, 2000, np.inf, np.nan, 0], dtype=dtype))
        log = numerics.log(np.array([0, -0.0, -1, np.inf, np.nan, np.finfo(dtype).smallest_subnormal, 1], dtype=dtype))
        sin = numerics.sin(np.array([np.inf, np.nan, big, 0], dtype=dtype))
        cos = numerics.cos(np.array([np.inf, np.nan, big, 0], dtype=dtype))
    np.testing.assert_array_equal(exp, np.array([0, 0, np.inf, np.inf, np.nan, 1], dtype=dtype))
    np.testing.assert_array_equal(log[:5], np.array([-np.inf, -np.inf, np.nan, np.inf, np.nan], dtype=dtype))
    assert log[5] == pytest.approx(np.log(np.finfo(dtype).smallest_subnormal), rel=1e-6) and log[6] == t(0)
    np.testing.assert_array_equal(sin, np.array([np.nan, np.nan, np.nan, 0], dtype=dtype))
    np.testing.assert_array_equal(cos, np.array([np.nan, np.nan, np.nan, 1], dtype=dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss, parameters, knobs", FORMULAS)
def test_engines_agree_bit_for_bit(loss, parameters, knobs, dtype):
    spec = ds.MapSpec(model="formula", x=ds.Axis("lr", 0.001, 0.3, 24), y=ds.Axis("x0", 0.2, 1.4, 6), steps=150,
                      dtype=dtype, params={"loss": loss, "parameters": parameters, **knobs})
    assert_same_fields(*run_both(spec))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function, axis", [
    ("exp", ds.Axis("a", -800, 800, 97)), ("log", ds.Axis("a", 1e-320, 1e300, 97, "log")),
    ("log", ds.Axis("a", -3, 3, 97)), ("sin", None), ("cos", None),
    ("tanh", ds.Axis("a", -40, 40, 97)), ("sqrt", ds.Axis("a", -4, 4, 97)),
])
def test_engines_agree_on_extreme_arguments(function, axis, dtype):
    """A knob on an axis sweeps a function's argument over its whole range, into overflow and NaN (sin and cos:
    to 1.1 times SIN_COS_MAX, so that most points lie inside it)."""
    if axis is None:
        edge = 1.1 * numerics.SIN_COS_MAX[dtype]
        axis = ds.Axis("a", -edge, edge, 97)
    spec = ds.MapSpec(model="formula", x=axis, steps=2, dtype=dtype,
                      params={"loss": f"x**2/2 + {function}(a)", "x0": 0.5})
    with np.errstate(over="ignore"):
        assert_same_fields(*run_both(spec))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_quadratic_as_a_formula_is_the_quadratic_model(dtype):
    """a*w**2/2 compiles to ((½·a)·w)·w and a·w, the quadratic kernel's operations: the same map, every byte;
    (w**2 − 1)**2/4 likewise the double well's (but for the attractor field, which only that model names)."""
    axes = {"x": ds.Axis("lr", 0.1, 2.5, 24), "y": ds.Axis("w0", -2, 2, 8), "steps": 100, "dtype": dtype}
    quadratic = ds.run_map(ds.MapSpec(model="quadratic", params={"a": 1.3}, **axes), backend="cython")
    formula = ds.run_map(ds.MapSpec(model="formula", params={"loss": "a*w**2/2", "parameters": "w", "a": 1.3,
                                                             }, **{**axes, "y": ds.Axis("w0", -2, 2, 8)}),
                         backend="cython")
    assert_same_fields(quadratic, formula)
    well = ds.run_map(ds.MapSpec(model="double-well", **axes), backend="cython")
    formula = ds.run_map(ds.MapSpec(model="formula", params={"loss": "(w**2 - 1)**2/4", "parameters": "w"}, **axes),
                         backend="cython")
    for name in well.fields:
        if name != "attractor":
            np.testing.assert_array_equal(well.fields[name], formula.fields[name], err_msg=name)


def test_a_knob_of_the_formula_on_an_axis():
    """eps swept: each row is the map with eps fixed at that row's value."""
    spec = ds.MapSpec(model="formula", x=ds.Axis("lr", 0.001, 0.2, 32), y=ds.Axis("eps", 0.0, 0.4, 3), steps=200,
                      params={"loss": LIU, "lam": 0.1, "x0": 0.7})
    swept = ds.run_map(spec, backend="cython")
    for row, eps in enumerate(spec.y.values()):
        fixed = ds.run_map(ds.MapSpec(model="formula", x=spec.x, steps=200,
                                      params={"loss": LIU, "lam": 0.1, "x0": 0.7, "eps": float(eps)}), backend="cython")
        for name in swept.fields:
            np.testing.assert_array_equal(swept.fields[name][row], fixed.fields[name][0], err_msg=name)


@pytest.mark.parametrize("params, message", [
    ({"loss": "x**2 +"}, "is not a formula: invalid syntax at character"),
    ({"loss": "x^2"}, "'^' at character 2 is not a power; write x**2"),
    ({"loss": "x**2 + foo(x)"}, "calls the unknown function 'foo'"),
    ({"loss": "x**2 + os.system(x)"}, "calls the unknown function 'os.system'"),
    ({"loss": "y**2"}, "parameter 'x' does not appear in the loss 'y**2'"),
    ({"loss": "x**2 * lr"}, "symbol 'lr' of the loss clashes with the knob or setting 'lr'"),
    ({"loss": "x**2 * steps"}, "symbol 'steps' of the loss clashes"),
    ({"loss": "(x - x0)**2"}, "symbol 'x0' of the loss clashes with the start knob of parameter 'x'"),
    ({"loss": "x**2 + sqrt(-1)"}, "not a real number"),
    ({"loss": "x**2 + log(-2)"}, "not a real number"),
    ({"loss": "x**2 + 2j"}, "imaginary number"),
    ({"loss": "x**2 + 1/0"}, "infinite or undefined"),
    ({"loss": "x**2 if x else x"}, "IfExp at character 1 is not allowed"),
    ({"loss": "sin(x, x)"}, "sin takes one argument"),
    ({"loss": "x**2", "parameters": "x, 3y"}, "parameter '3y' is not a name"),
    ({"loss": "x**2", "parameters": ""}, "parameters is empty"),
    ({"loss": "x**2 * k"}, "knob 'k' (symbol k of the loss) has no default"),
    ({}, 'model "formula" needs its loss'),
    ({"loss": 3}, "knob 'loss' of model 'formula' must be text"),
])
def test_bad_formulas_are_refused_in_one_line(params, message):
    with pytest.raises(ds.SpecError) as info:
        ds.MapSpec(model="formula", x=ds.Axis("lr", 0.1, 1, 4), params=params)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_adam_refuses_a_symbol_named_like_its_knob():
    with pytest.raises(ds.SpecError, match="symbol 'eps' of the loss clashes"):
        ds.MapSpec(model="formula", x=ds.Axis("lr", 0.1, 1, 4), optimizer="adam",
                   params={"loss": LIU, "eps": 0.2, "lam": 0.1})


def test_without_sympy_one_line_names_the_extra(monkeypatch):
    compile_formula.cache_clear()
    monkeypatch.setitem(sys.modules, "sympy", None)
    with pytest.raises(ds.SpecError, match=r'pip install "descentsim\[formula\]"'):
        ds.MapSpec(model="formula", x=ds.Axis("lr", 0.1, 1, 4), params={"loss": "x**2"})


def test_a_spec_with_a_formula_round_trips_through_toml(tmp_path):
    spec = ds.MapSpec(model="formula", x=ds.Axis("lr", 0.1, 1, 4), params={"loss": LIU, "eps": 0.2, "lam": 0.1})
    assert ds.MapSpec.from_toml_text(spec.to_toml()) == spec
    m = run_map_to_file(spec, tmp_path / "f.h5", backend="cython")
    stored = ds.open_map(tmp_path / "f.h5")
    assert stored.spec == m.spec
    import sympy

    assert stored.provenance["sympy_version"] == sympy.__version__  # the program may change with SymPy
    assert "sympy_version" not in ds.run_map(ds.MapSpec(model="quadratic", x=ds.Axis("lr", 0.1, 1, 2))).provenance


def test_liu_example_runs_and_has_a_one_dimensional_dimension():
    spec = load_config(str(EXAMPLES / "liu_fractal.toml"), ["x.n=4096", "steps=300"])
    m = ds.run_map(spec, backend="cython")
    bounded = m.fields["outcome"] != ds.Outcome.DIVERGED
    assert bounded.shape == (1, 4096) and 0 < np.count_nonzero(~bounded) < bounded.size
    fit = m.fractal_dimension(inside=lambda m: m.fields["outcome"] != ds.Outcome.DIVERGED)
    assert 0 < fit.exponent <= 1


def test_one_dimensional_box_counting_of_a_cantor_set():
    """The middle-thirds Cantor set's changes of side: dimension log 2 / log 3 in one row or one column."""
    n = 3**8 + 1
    mask = np.zeros(n, dtype=bool)

    def cantor(lo, hi, depth):
        if depth == 0:
            mask[lo:hi] = True
            return
        third = (hi - lo) // 3
        cantor(lo, lo + third, depth - 1)
        cantor(hi - third, hi, depth - 1)

    cantor(0, n - 1, 8)
    sizes = [3**k for k in range(1, 6)]
    for shaped in (mask[None, :], mask[:, None]):
        assert box_counting(shaped, sizes).exponent == pytest.approx(np.log(2) / np.log(3), abs=0.02)
    assert box_counting(np.arange(4096)[None, :] > 2000).exponent == 0
