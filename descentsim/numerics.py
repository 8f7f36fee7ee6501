"""tanh, exp, log, sin and cos from + − × ÷ alone, so that every engine computes the same bits (libm and NumPy's
own SIMD functions differ in the last place from each other and across machines).

With a = min(|x|, 22) (tanh rounds to 1 beyond, in float64), exp(2a) = 2^k·(q + p)/(q − p) by Cody–Waite
reduction, k = rint(2a·log₂e) (ties to even), r = 2a − k·ln2, p = r·P(r²), q = Q(r²) with Cephes' exp
coefficients (Moshier). Then tanh a = (e − 1)/(e + 1) = (2^k(q + p) − (q − p)) / (2^k(q + p) + (q − p)),
which for k = 0 is p/q exactly: a single division. Measured against ``numpy.tanh``: within 4 ulp, in
float64 and float32 (the same operations in float32 serve float32 maps).

``exp_nonpositive`` (the softmax's exp(z − max z)) uses the same reduction on x ≤ 0:
exp(x) = 2^k·(q + p)/(q − p), with 0 below EXP_FLOOR = −87 (where 2^k would leave float32's normal
range; such terms are below the rounding of a sum that holds exp(0) = 1). ``log_at_least_one`` (the
softmax's log Σ exp, an argument s >= 1) splits s = 2^e·m with m in [√½, √2) (frexp, exact), then
log m = 2·atanh(u) = 2u + 2u³·R(u²), u = (m − 1)/(m + 1), |u| <= 0.1716, R(w) = Σ_{i=0..9} w^i/(2i + 3)
(truncation below 1e-17 relative), and log s = (e·LN2_LO + log m) + e·LN2_HI; one division; within
2 ulp of ``numpy.log``. A non-finite s is returned unchanged.

The formula model (``descentsim.formula``) needs them everywhere:

* ``exp``: the argument clamped to EXP_RANGE (exp is 0, or overflows, beyond), the same reduction, and the
  power 2^k applied in two halves, so that overflow gives +inf and underflow rounds once into the subnormals;
* ``log``: the same series for every finite x > 0 (subnormals scaled into the normal range first),
  log 0 = −inf, log inf = inf, NaN for x < 0;
* ``sin``, ``cos``: Cody–Waite reduction x = j·π/2 + r, j = rint(x·2/π), with π/2 in three parts (twice Cephes'
  π/4 splits: sin.c's in float64, sinf.c's in float32), then Cephes sin.c's polynomials on |r| <= π/4 and the
  quadrant j mod 4. Accurate as below for |x| <= 2^29 in float64; in float32 for |x| <= 1000 (up to
  SIN_COS_MAX = 2^15 the absolute error stays below 5e-7, but near zeros of sin the relative error grows: at
  |x| ~ 10^4 a float32 has only 10 bits after the point anyway). Beyond SIN_COS_MAX (2^29, 2^15) the
  reduction is no longer exact and sin and cos are NaN, as they are for ±inf and NaN.

Measured with 30 000 arguments per function and precision (float64: exp on [−745, 709], log on e^[−744, 709]
and [0.5, 2], sin and cos on [−10, 10] and [−2^29, 2^29]; float32: exp on [−103, 88], log on e^[−103, 88] and
[0.5, 2], sin and cos on [−10, 10] and [−1000, 1000]), error over the spacing of the correctly rounded value,
against mpmath at 40 digits: exp 2.0 ulp (float64), 1.8 (float32); log 2.0, 1.8; sin 1.0, 1.4; cos 1.0, 1.5 —
NumPy's own functions measure 1.0, 2.3; 1.0, 2.7; 1.0, 1.4; 1.0, 1.3 alike. Ours against NumPy's: within
3 ulp (exp, log) and 1 ulp (sin, cos). tests/test_formula.py holds them to 2.5 ulp of mpmath and 4 of NumPy.

The compiled kernel (ext/trajectory.h: ``ds_tanh``, ``ds_exp_nonpositive``, ``ds_log_at_least_one``, ``ds_exp``,
``ds_log``, ``ds_sin``, ``ds_cos``) performs exactly these operations.

Fast arithmetic (``arithmetic = "fast"``, never the reference) computes tanh in float32 maps as a rational function
instead (``fast_tanh_float32``; ext/numerics.h): x clamped to ±FAST_TANH_BOUND = ±9 (tanh(9) rounds to 1 in
float32), then x·P(x²)/Q(x²) with P of degree 6 and Q of degree 3 in x², fitted to tanh(x)/x on [0, 9] by
least squares with Lawson's weights towards the smallest largest relative error (``bench/fit_fast_tanh.py``
re-derives them): 6.6e-9 relative before rounding, 5.9 ulp at most (0.7 on average) evaluated in float32 —
against 30 vector operations of the exact tanh, 18. In float64 a rational function as cheap is far from float64's
precision (about 1e-9 with degrees 10 and 6 on [0, 19.1]), so fast arithmetic keeps the exp above and spends fewer
operations around it (``fast_tanh_float64``): a = min(|x|, 22), k = rint(2a·log₂e), h = a − k·ln2/2 with ln2/2 in
one constant, 2p = h·P'(h²) and 2q = Q'(h²) (Cephes' coefficients times powers of 2: the same exp(2a) =
2^k·(q + p)/(q − p)), and with ρ = 1/2 − 2^(k−1), tanh a = (2p − ρ·2(q + p)) / (2q − ρ·2(q + p)), which is p/q
where k = 0 (ρ = 0) with no branch, then x's sign. 23 vector operations instead of 30; 3.5 ulp at most (0.38 on
average, the exact tanh 4.1 and 0.51; tests/test_arithmetic.py).
"""

from __future__ import annotations

import numpy as np

LOG2E = 1.4426950408889634
LN2_HI = 6.93145751953125e-1
LN2_LO = 1.42860682030941723212e-6
EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.00000000000000000009e0)
TANH_CAP = 22.0
EXP_FLOOR = -87.0
SQRT_HALF = 0.70710678118654752440
#: R(w) = Σ w^i/(2i + 3), highest power first (Horner).
ATANH_R = tuple(1.0 / (2 * i + 3) for i in range(9, -1, -1))
#: exp's argument is clamped to this range, by precision: exp is 0 below it (rounded) and +inf above.
EXP_RANGE = {"float64": (-746.0, 710.0), "float32": (-104.0, 89.0)}
TWO_OVER_PI = 0.63661977236758134308
#: π/2 in three parts (D₁ + D₂ + D₃), by precision: twice Cephes' π/4 splits of sin.c (double: D₁, D₂ of 24
#: bits, so j·D₁ and j·D₂ are exact for |j| < 2^29) and of sinf.c (float: D₁ of 8 bits, exact for |j| < 2^16).
SIN_COS_PIO2 = {
    "float64": (1.57079625129699707031e0, 7.54978941586159635335e-8, 5.39030285815811905290e-15),
    "float32": (1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8),
}
#: sin and cos are NaN beyond these |x|, by precision: the reduction by π/2 is exact below (|j| < 2^29, 2^16).
SIN_COS_MAX = {"float64": 2.0**29, "float32": 2.0**15}
#: Fast arithmetic's float32 tanh (see the module docstring): x·P(x²)/Q(x²) on [−9, 9], highest power first.
FAST_TANH_BOUND = 9.0
FAST_TANH_P = (-8.4886470623569816e-14, 5.2779277323566515e-11, -2.0225193434163204e-08, 1.1154303179353022e-05,
               0.0031039559470008066, 0.1308400994053521, 0.9999999933957141)
FAST_TANH_Q = (0.00025461446909228711, 0.024495177575570366, 0.46417337045539353, 1.0)
#: Fast arithmetic's float64 tanh (see the module docstring): ln2/2, and EXP_P, EXP_Q as polynomials of h² (r = 2h)
#: times 2, highest power first.
FAST_LN2_HALF = 0.34657359027997264
FAST_EXP_P = tuple(c * 2 * 2 * 4.0 ** (len(EXP_P) - 1 - i) for i, c in enumerate(EXP_P))
FAST_EXP_Q = tuple(c * 2 * 4.0 ** (len(EXP_Q) - 1 - i) for i, c in enumerate(EXP_Q))
#: Cephes sin.c: sin r = r + r·z·S(z), cos r = 1 − z/2 + z²·C(z), z = r², |r| <= π/4 (highest power first).
SIN_C = (1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
         -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1)
COS_C = (-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
         2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2)


def _horner(coefficients, x):
    result = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        result = result * x + c
    return result


def _exp_reduced(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, p, q) with exp(t) = 2^k·(q + p)/(q − p): Cody–Waite reduction and Cephes' Padé form."""
    k = np.rint(LOG2E * t)  # nearest, ties to even
    r = t - k * LN2_HI - k * LN2_LO
    z = r * r
    return k, r * _horner(EXP_P, z), _horner(EXP_Q, z)


def _exp_parts(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k, 2^k, p, q) with exp(t) = 2^k·(q + p)/(q − p) (``_exp_reduced``); 2^k must be a normal number."""
    k, p, q = _exp_reduced(t)
    with np.errstate(invalid="ignore"):  # NaN inputs: k is meaningless, the result NaN all the same
        two_k = np.ldexp(np.ones_like(t), k.astype(np.int32))
    return k, two_k, p, q


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh, elementwise, in x's dtype (see the module docstring)."""
    a = np.minimum(np.abs(x), TANH_CAP)
    k, two_k, px, q = _exp_parts(2 * a)
    up, down = two_k * (q + px), q - px  # exp(2a) = up/down
    numerator = np.where(k == 0, px, up - down)
    denominator = np.where(k == 0, q, up + down)
    return np.copysign(numerator / denominator, x)


def fast_tanh_float32(x: np.ndarray) -> np.ndarray:
    """Fast arithmetic's tanh of float32 maps (see the module docstring), elementwise, in float32, each operation
    rounded once (the compiled fast engine fuses multiply-adds where the CPU has FMA, so its bits may differ)."""
    x = np.asarray(x, dtype=np.float32)
    bound = np.float32(FAST_TANH_BOUND)
    clamped = np.where(x > bound, bound, np.where(x < -bound, -bound, x))
    s = clamped * clamped
    return clamped * _horner(FAST_TANH_P, s) / _horner(FAST_TANH_Q, s)


def fast_tanh_float64(x: np.ndarray) -> np.ndarray:
    """Fast arithmetic's tanh of float64 maps (see the module docstring), elementwise, in float64, each operation
    rounded once (the compiled fast engine fuses multiply-adds where the CPU has FMA, so its bits may differ)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), TANH_CAP)
    k = np.rint(2 * LOG2E * a)  # nearest, ties to even
    h = a - k * FAST_LN2_HALF
    z = h * h
    p2, q2 = h * _horner(FAST_EXP_P, z), _horner(FAST_EXP_Q, z)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN inputs: k is meaningless, the result NaN all the same
        rho = 0.5 - np.ldexp(np.ones_like(a), k.astype(np.int32) - 1)
    t2 = q2 + p2
    return np.copysign((p2 - rho * t2) / (q2 - rho * t2), x)


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """exp(x) for x <= 0, elementwise, in x's dtype; 0 below EXP_FLOOR (see the module docstring)."""
    floor = x < EXP_FLOOR
    _, two_k, p, q = _exp_parts(np.where(floor, x.dtype.type(0), x))
    return np.where(floor, x.dtype.type(0), (two_k * (q + p)) / (q - p))


def _log_split(m: np.ndarray, e: np.ndarray) -> np.ndarray:
    """log(m·2^e) from frexp's m in [0.5, 1) and e (exact): m moved into [√½, √2), then the atanh series."""
    low = m < SQRT_HALF
    m = np.where(low, m * 2, m)
    e = (e - low).astype(m.dtype)
    u = (m - 1) / (m + 1)
    w = u * u
    log_m = 2 * u + (2 * u) * w * _horner(ATANH_R, w)
    return (e * LN2_LO + log_m) + e * LN2_HI


def log_at_least_one(s: np.ndarray) -> np.ndarray:
    """log(s) for s >= 1, elementwise, in s's dtype; non-finite s unchanged (see the module docstring)."""
    finite = np.isfinite(s)
    m, e = np.frexp(np.where(finite, s, s.dtype.type(1)))  # s = m·2^e, m in [0.5, 1)
    return np.where(finite, _log_split(m, e), s)


def log(x: np.ndarray) -> np.ndarray:
    """log(x), elementwise, in x's dtype: for finite x > 0 (subnormals too) the same operations as
    ``log_at_least_one``; log(±0) = −inf, log(+inf) = +inf, NaN for x < 0 and NaN, as IEEE's log."""
    ok = (x > 0) & (x < np.inf)
    m, e = np.frexp(np.where(ok, x, x.dtype.type(1)))
    edge = np.where(x == 0, -np.inf, np.where(x == np.inf, np.inf, np.nan)).astype(x.dtype)
    return np.where(ok, _log_split(m, e), edge)


def exp(x: np.ndarray) -> np.ndarray:
    """exp(x), elementwise, in x's dtype: x clamped to EXP_RANGE (where exp is 0 or overflows already),
    k, p, q as ``_exp_reduced``, and exp(x) = ((q + p)/(q − p)·2^k₁)·2^k₂ with k₁ = ⌊k/2⌋, k₂ = k − k₁ (both
    powers normal numbers), so that overflow gives +inf and underflow rounds once, into the subnormals or 0.
    NaN gives NaN."""
    low, high = EXP_RANGE[x.dtype.name]
    t = np.where(x > high, x.dtype.type(high), np.where(x < low, x.dtype.type(low), x))
    k, p, q = _exp_reduced(t)
    with np.errstate(invalid="ignore"):  # NaN: k is meaningless, the result NaN all the same
        k = np.where(np.isfinite(k), k, 0).astype(np.int64)
        k1 = k >> 1
        one = np.ones_like(t)
        return ((q + p) / (q - p) * np.ldexp(one, k1.astype(np.int32))) * np.ldexp(one, (k - k1).astype(np.int32))


def _sin_cos_reduced(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(quadrant j mod 4, sin r, cos r, beyond) with x = j·π/2 + r, |r| <= π/4 (Cody–Waite: r = ((x − j·D₁) −
    j·D₂) − j·D₃, Cephes' three-part π/2 of the precision), and the Cephes polynomials of sin.c:
    sin r = r + r·(z·S(z)), cos r = (1 − z/2) + (z·z)·C(z), z = r². ``beyond``: |x| > SIN_COS_MAX, where the
    reduction is no longer exact (the caller returns NaN there)."""
    dp1, dp2, dp3 = SIN_COS_PIO2[x.dtype.name]
    beyond = ~(np.abs(x) <= SIN_COS_MAX[x.dtype.name]) & ~np.isnan(x)
    x = np.where(beyond, x.dtype.type(0), x)
    j = np.rint(x * TWO_OVER_PI)
    r = ((x - j * dp1) - j * dp2) - j * dp3
    z = r * r
    sin_r = r + r * (z * _horner(SIN_C, z))
    cos_r = (1 - z * 0.5) + (z * z) * _horner(COS_C, z)
    with np.errstate(invalid="ignore"):
        quadrant = np.where(np.isfinite(j), j, 0).astype(np.int64) & 3
    return quadrant, sin_r, cos_r, beyond


def sin(x: np.ndarray) -> np.ndarray:
    """sin(x), elementwise, in x's dtype (``_sin_cos_reduced``): sin r, cos r, −sin r, −cos r by quadrant;
    NaN for |x| > SIN_COS_MAX, ±inf and NaN."""
    quadrant, s, c, beyond = _sin_cos_reduced(x)
    value = np.where(quadrant & 1 == 1, c, s)
    value = np.where(quadrant & 2 == 2, -value, value)
    return np.where(beyond, x.dtype.type(np.nan), value)


def cos(x: np.ndarray) -> np.ndarray:
    """cos(x), elementwise, in x's dtype (``_sin_cos_reduced``): cos r, −sin r, −cos r, sin r by quadrant;
    NaN for |x| > SIN_COS_MAX, ±inf and NaN."""
    quadrant, s, c, beyond = _sin_cos_reduced(x)
    value = np.where(quadrant & 1 == 1, s, c)
    value = np.where((quadrant + 1) & 2 == 2, -value, value)
    return np.where(beyond, x.dtype.type(np.nan), value)
