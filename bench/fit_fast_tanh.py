"""Derives fast arithmetic's float32 tanh (descentsim.numerics: FAST_TANH_P, FAST_TANH_Q) and measures it.

tanh(x)/x, an even function, is fitted on [0, B] (B = FAST_TANH_BOUND = 9: tanh(9) rounds to 1 in float32) as
P(t)/Q(t), t = (x/B)², P of degree 6 and Q of degree 3 with Q(0) = 1, by linearised least squares
(Sanathanan–Koerner: (P − f·Q)/(f·Q_previous) at 6000 Chebyshev points of x, f from mpmath at 30 digits) with
Lawson's weights (each round multiplies a point's weight by its relative error) towards the smallest largest
relative error; the best round whose Q stays positive on [0, 1] is kept and rescaled to powers of x² (the
package's constants came from this fit; a rerun agrees with them to about 10 digits). Then
``descentsim.numerics.fast_tanh_float32`` is measured in ulp (error over the spacing of the correctly rounded
float32) against tanh in float64 on 3.5 million arguments.

    python bench/fit_fast_tanh.py            # prints the coefficients (highest power first) and the errors
"""

from __future__ import annotations

import mpmath
import numpy as np

from descentsim import numerics


def fit(bound: float = numerics.FAST_TANH_BOUND, p_degree: int = 6, q_degree: int = 3, points: int = 6000,
        rounds: int = 200) -> tuple[float, np.ndarray, np.ndarray]:
    """(largest relative error, P, Q): coefficients in powers of x² from the constant term up."""
    mpmath.mp.dps = 30
    k = np.arange(points)
    x = bound / 2 * (1 - np.cos(np.pi * (k + 0.5) / points))
    f = np.array([float(mpmath.tanh(mpmath.mpf(v)) / mpmath.mpf(v)) for v in x])
    t = (x / bound) ** 2
    previous, weights, best = np.ones_like(t), np.full_like(t, 1 / points), None
    for _ in range(rounds):
        a = np.hstack([t[:, None] ** np.arange(p_degree + 1), -(f[:, None] * t[:, None] ** np.arange(1, q_degree + 1))])
        scale = (np.sqrt(weights) / (f * previous))[:, None]
        coefficients = np.linalg.lstsq(a * scale, f * scale[:, 0], rcond=None)[0]
        p, q = coefficients[:p_degree + 1], np.concatenate([[1.0], coefficients[p_degree + 1:]])
        previous = np.polynomial.polynomial.polyval(t, q)
        error = np.abs(np.polynomial.polynomial.polyval(t, p) / previous - f) / f
        if previous.min() > 0 and (best is None or error.max() < best[0]):
            best = (error.max(), p / bound ** (2 * np.arange(p_degree + 1)), q / bound ** (2 * np.arange(q_degree + 1)))
        weights = weights * error / error.max() + 1e-300
        weights /= weights.sum()
    return best


def ulp_errors(seed: int = 0) -> np.ndarray:
    """fast_tanh_float32's error in float32 ulp on 3.5 million arguments (uniform on [−12, 12] and [−1, 1], and
    log-uniform magnitudes down to e^−40)."""
    rng = np.random.default_rng(seed)
    tiny = np.exp(rng.uniform(-40, 0, 500_000)) * rng.choice([-1, 1], 500_000)
    x = np.concatenate([rng.uniform(-12, 12, 2_000_000), rng.uniform(-1, 1, 1_000_000), tiny]).astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    spacing = np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    return np.abs(numerics.fast_tanh_float32(x).astype(np.float64) - exact) / spacing


def main() -> None:
    error, p, q = fit()
    print(f"largest relative error of P/Q on [0, {numerics.FAST_TANH_BOUND}]: {error:.3g}")
    print("P (highest power first):", ", ".join(f"{v:.17g}" for v in p[::-1]))
    print("Q (highest power first):", ", ".join(f"{v:.17g}" for v in q[::-1]))
    ulps = ulp_errors()
    print(f"numerics.fast_tanh_float32 (the package's coefficients), float32: largest {ulps.max():.2f} ulp, "
          f"mean {ulps.mean():.2f}, 99.9th percentile {np.quantile(ulps, 0.999):.2f}")


if __name__ == "__main__":
    main()
