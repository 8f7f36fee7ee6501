"""tanh, exp and log from + − × ÷ alone, so that every engine computes the same bits (libm and NumPy's
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
The compiled kernel (ext/trajectory.h: ``ds_tanh``, ``ds_exp_nonpositive``, ``ds_log_at_least_one``)
performs exactly these operations.
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


def _horner(coefficients, x):
    result = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        result = result * x + c
    return result


def _exp_parts(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k, 2^k, p, q) with exp(t) = 2^k·(q + p)/(q − p): Cody–Waite reduction and Cephes' Padé form."""
    k = np.rint(LOG2E * t)  # nearest, ties to even
    r = t - k * LN2_HI - k * LN2_LO
    z = r * r
    p = r * _horner(EXP_P, z)
    q = _horner(EXP_Q, z)
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


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """exp(x) for x <= 0, elementwise, in x's dtype; 0 below EXP_FLOOR (see the module docstring)."""
    floor = x < EXP_FLOOR
    _, two_k, p, q = _exp_parts(np.where(floor, x.dtype.type(0), x))
    return np.where(floor, x.dtype.type(0), (two_k * (q + p)) / (q - p))


def log_at_least_one(s: np.ndarray) -> np.ndarray:
    """log(s) for s >= 1, elementwise, in s's dtype; non-finite s unchanged (see the module docstring)."""
    finite = np.isfinite(s)
    m, e = np.frexp(np.where(finite, s, s.dtype.type(1)))  # s = m·2^e, m in [0.5, 1)
    low = m < SQRT_HALF
    m = np.where(low, m * 2, m)
    e = (e - low).astype(s.dtype)
    u = (m - 1) / (m + 1)
    w = u * u
    log_m = 2 * u + (2 * u) * w * _horner(ATANH_R, w)
    return np.where(finite, (e * LN2_LO + log_m) + e * LN2_HI, s)
