#ifndef DS_NUMERICS_COMMON
#define DS_NUMERICS_COMMON
/* tanh, exp and log from + − × ÷ alone (Cephes' exp, atanh series): the constants of descentsim.numerics */
static const double DS_LOG2E = 1.4426950408889634, DS_LN2_HI = 6.93145751953125e-1,
                    DS_LN2_LO = 1.42860682030941723212e-6, DS_TANH_CAP = 22.0, DS_EXP_FLOOR = -87.0,
                    DS_SQRT_HALF = 0.70710678118654752440, DS_SQRT2 = 1.4142135623730951;
/* R(w) = Σ_{i=0..9} w^i/(2i + 3), highest power first */
DS_TABLE double DS_ATANH_R[10] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13,
                                      1.0 / 11, 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3};
DS_TABLE double DS_EXP_P[3] = {1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1};
DS_TABLE double DS_EXP_Q[4] = {3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
                                   2.00000000000000000009e0};
/* fast arithmetic's float32 tanh (descentsim.numerics: FAST_TANH_BOUND, FAST_TANH_P, FAST_TANH_Q) */
static const double DS_FAST_TANH_BOUND = 9.0;
DS_TABLE double DS_FAST_TANH_P[7] = {-8.4886470623569816e-14, 5.2779277323566515e-11, -2.0225193434163204e-08,
                                     1.1154303179353022e-05,  0.0031039559470008066,  0.1308400994053521,
                                     0.9999999933957141};
DS_TABLE double DS_FAST_TANH_Q[4] = {0.00025461446909228711, 0.024495177575570366, 0.46417337045539353, 1.0};
/* fast arithmetic's float64 tanh (descentsim.numerics: FAST_LN2_HALF, FAST_EXP_P, FAST_EXP_Q): Cephes' P and Q
 * above as polynomials of h² where r = 2h, times 2 (P's coefficient i times 2·2·4^(2−i), Q's 2·4^(3−i): the same
 * bits as 2p and 2q), and ln2/2 */
static const double DS_FAST_LN2_HALF = 0.34657359027997264;
DS_TABLE double DS_FAST_EXP_P[3] = {1.26177193074810590878e-4 * 64, 3.02994407707441961300e-2 * 16,
                                    9.99999999999999999910e-1 * 4};
DS_TABLE double DS_FAST_EXP_Q[4] = {3.00198505138664455042e-6 * 128, 2.52448340349684104192e-3 * 32,
                                    2.27265548208155028766e-1 * 8, 2.00000000000000000009e0 * 2};
/* sin and cos (descentsim.numerics: Cephes sin.c's polynomials, reduction by π/2) */
static const double DS_TWO_OVER_PI = 0.63661977236758134308;
DS_TABLE double DS_SIN_C[6] = {1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
                                   -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1};
DS_TABLE double DS_COS_C[6] = {-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
                                   2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2};
#endif

/* ---- divisions (fast arithmetic: products with a reciprocal computed once) ------------------------------ */

/* v / by (times 1) or v / by / by (times 2: mean-field's output scale, by = √n) as the reference computes it; with
 * fast arithmetic (DS_ARITHMETIC_FAST) v·inverse, inverse = 1/by or 1/(by·by) computed once by the caller (within
 * an ulp or two of the quotient; a division costs as much as 8–16 multiplications) */
DS_INLINE vec DS_NAME(ds_divide)(vec v, vec by, vec inverse, const int times)
{
#if defined(DS_ARITHMETIC_FAST)
    (void)by;
    (void)times;
    return v * inverse;
#else
    (void)inverse;
    return times == 2 ? v / by / by : v / by;
#endif
}

/* |x|: x with its sign bit cleared (NaN stays NaN) */
DS_INLINE vec DS_NAME(ds_abs)(vec x)
{
    const vec zero = {0};
    return (vec)((vmask)x & ~(vmask)(-zero));
}

/* ---- tanh from + − × ÷ (descentsim.numerics, Cephes) -------------------------------------------- */

DS_INLINE vec DS_NAME(ds_horner)(const double *c, ptrdiff_t n, vec x)
{
    const vec zero = {0};
    vec r = zero + (DS_T)c[0];
    ptrdiff_t k;
    for (k = 1; k < n; k++)
        r = r * x + (DS_T)c[k];
    return r;
}

/* exp(t) = 2^k·(q + p)/(q − p) (descentsim.numerics._exp_parts): Cody–Waite reduction with
 * k = rint(t·log₂e) (adding and taking away 1.5·2^mantissa rounds to the nearest integer, ties to even,
 * and leaves k in the low bits; 2^k is built from its bits), r = t − k·ln2, p = r·P(r²), q = Q(r²).
 * Sets *p, *q and *two_k; returns k. */
DS_INLINE vmask DS_NAME(ds_exp_parts)(vec t, vec *p, vec *q, vec *two_k)
{
    const DS_T magic = DS_ROUND_MAGIC;
    const vec shifted = (DS_T)DS_LOG2E * t + magic;
    const vec kf = shifted - magic;
    const vec zero = {0};
    const vmask k = (vmask)shifted - (vmask)(zero + magic);
    const vec r = t - kf * (DS_T)DS_LN2_HI - kf * (DS_T)DS_LN2_LO;
    const vec z = r * r;
    *p = r * DS_NAME(ds_horner)(DS_EXP_P, 3, z);
    *q = DS_NAME(ds_horner)(DS_EXP_Q, 4, z);
    *two_k = (vec)((k + DS_EXPONENT_BIAS) << DS_MANTISSA_BITS);
    return k;
}

/* tanh as descentsim.numerics.tanh: a = min(|x|, 22), exp(2a) = 2^k·(q + p)/(q − p), then
 * tanh a = (2^k(q + p) − (q − p)) / (2^k(q + p) + (q − p)), or p/q where k = 0: one division. Fast arithmetic
 * takes a rational function in float32 and the same exp with fewer operations in float64. */
DS_INLINE vec DS_NAME(ds_tanh)(vec x)
{
#if defined(DS_ARITHMETIC_FAST) && DS_PRECISION == 32
    /* fast arithmetic in float32: x·P(x²)/Q(x²), x clamped to ±9 (descentsim.numerics.fast_tanh_float32; 18
     * operations where the exact tanh takes 30, within 6 ulp) */
    const vec zero = {0}, bound = zero + (DS_T)DS_FAST_TANH_BOUND;
    const vec c = vselect(x > bound, bound, vselect(x < -bound, -bound, x)), s = c * c;
    return c * DS_NAME(ds_horner)(DS_FAST_TANH_P, 7, s) / DS_NAME(ds_horner)(DS_FAST_TANH_Q, 4, s);
#elif defined(DS_ARITHMETIC_FAST)
    /* fast arithmetic in float64 (descentsim.numerics.fast_tanh_float64; 23 operations where the exact tanh takes
     * 30, within 4 ulp): a = min(|x|, 22), k = rint(2a·log₂e), h = a − k·ln2/2 (one constant), 2p = h·P'(h²) and
     * 2q = Q'(h²) (the same exp(2a) = 2^k·(q + p)/(q − p)), then with ρ = 1/2 − 2^(k−1),
     * tanh a = (2p − ρ·2(q + p)) / (2q − ρ·2(q + p)): p/q where k = 0 (ρ = 0) with no branch */
    const vec zero = {0}, cap = zero + (DS_T)DS_TANH_CAP;
    const vmask sign = (vmask)(-zero); /* −0: the sign bit alone */
    const DS_T magic = DS_ROUND_MAGIC + (DS_EXPONENT_BIAS - 1); /* leaves k + bias − 1 in the low bits */
    const vec magnitude = DS_NAME(ds_abs)(x);
    const vec a = vselect(magnitude > cap, cap, magnitude);
    const vec shifted = (DS_T)(2 * DS_LOG2E) * a + magic;
    const vec kf = shifted - magic;
    const vec h = a - kf * (DS_T)DS_FAST_LN2_HALF, z = h * h;
    const vec p2 = h * DS_NAME(ds_horner)(DS_FAST_EXP_P, 3, z), q2 = DS_NAME(ds_horner)(DS_FAST_EXP_Q, 4, z);
    const vec rho = (DS_T)0.5 - (vec)(((vmask)shifted & (2 * DS_EXPONENT_BIAS + 1)) << DS_MANTISSA_BITS), t2 = q2 + p2;
    const vec result = (p2 - rho * t2) / (q2 - rho * t2);
    return (vec)((vmask)result | ((vmask)x & sign));
#else
    const vec zero = {0};
    const vmask sign = (vmask)(-zero); /* −0: the sign bit alone */
    const vec magnitude = DS_NAME(ds_abs)(x);
    const vec a = vselect(magnitude > (DS_T)DS_TANH_CAP, zero + (DS_T)DS_TANH_CAP, magnitude);
    vec p, q, two_k;
    const vmask small = DS_NAME(ds_exp_parts)((DS_T)2 * a, &p, &q, &two_k) == 0;
    const vec up = two_k * (q + p), down = q - p;
    const vec result = vselect(small, p, up - down) / vselect(small, q, up + down);
    return (vec)((vmask)result | ((vmask)x & sign));
#endif
}

/* exp(x) for x <= 0 as descentsim.numerics.exp_nonpositive: 2^k·(q + p)/(q − p); 0 below DS_EXP_FLOOR
 * (2^k stays a normal number in both precisions). */
DS_INLINE vec DS_NAME(ds_exp_nonpositive)(vec x)
{
    const vec zero = {0};
    const vmask floor = x < (DS_T)DS_EXP_FLOOR;
    vec p, q, two_k;
    DS_NAME(ds_exp_parts)(vselect(floor, zero, x), &p, &q, &two_k);
    return vselect(floor, zero, (two_k * (q + p)) / (q - p));
}

/* log(s) of a positive normal s (descentsim.numerics._log_split), its exponent lowered by `lower`:
 * s = m·2^e with m in [√½, √2) from the bits (frexp), log m = 2u + 2u·w·R(w), u = (m − 1)/(m + 1), w = u²,
 * log = (e·ln2_lo + log m) + e·ln2_hi. e becomes a float by the round-to-nearest trick in reverse. */
DS_INLINE vec DS_NAME(ds_log_normal)(vec s, vmask lower)
{
    const DS_T magic = DS_ROUND_MAGIC;
    const vec zero = {0};
    const vmask bits = (vmask)s;
    const vmask mantissa = ((vmask)zero + 1) << DS_MANTISSA_BITS;
    const vmask e_frexp = ((bits >> DS_MANTISSA_BITS) & (2 * DS_EXPONENT_BIAS + 1)) - (DS_EXPONENT_BIAS - 1);
    const vec m_frexp = (vec)((bits & (mantissa - 1)) | ((vmask)zero + ((DS_MASK_T)(DS_EXPONENT_BIAS - 1) << DS_MANTISSA_BITS)));
    const vmask low = m_frexp < (DS_T)DS_SQRT_HALF;
    const vec m = vselect(low, m_frexp * 2, m_frexp);
    const vec e = (vec)((vmask)(zero + magic) + (e_frexp + low - lower)) - magic; /* low is −1 where true */
    const vec u = (m - 1) / (m + 1);
    const vec w = u * u;
    const vec log_m = 2 * u + (2 * u) * w * DS_NAME(ds_horner)(DS_ATANH_R, 10, w);
    return (e * (DS_T)DS_LN2_LO + log_m) + e * (DS_T)DS_LN2_HI;
}

/* log(s) for s >= 1 as descentsim.numerics.log_at_least_one; a non-finite s is returned as it is. */
DS_INLINE vec DS_NAME(ds_log_at_least_one)(vec s)
{
    const vmask finite = (s - s) == 0, none = {0};
    const vec one = {0};
    return vselect(finite, DS_NAME(ds_log_normal)(vselect(finite, s, one + 1), none), s);
}

/* log(x) as descentsim.numerics.log: a subnormal x is scaled by 2^(mantissa bits + 2) into the normal numbers
 * first (exact; its exponent lowered as much); log(±0) = −inf, log(+inf) = +inf, NaN for x < 0 and NaN. */
DS_INLINE vec DS_NAME(ds_log)(vec x)
{
    const vec zero = {0};
    const vmask ok = (x > zero) & (x < (DS_T)DS_INFINITY);
    const vmask subnormal = ok & (x < (DS_T)DS_TINY);
    const vec scale = zero + (DS_T)((DS_MASK_T)1 << (DS_MANTISSA_BITS + 2));
    const vec s = vselect(subnormal, x * scale, vselect(ok, x, zero + 1));
    const vec value = DS_NAME(ds_log_normal)(s, subnormal & (DS_MANTISSA_BITS + 2));
    const vec edge = vselect(x == zero, zero - (DS_T)DS_INFINITY, vselect(x == (DS_T)DS_INFINITY, x, zero + (DS_T)DS_NAN));
    return vselect(ok, value, edge);
}

/* exp(x) as descentsim.numerics.exp: x clamped to [DS_EXP_LOW, DS_EXP_HIGH], exp = ((q + p)/(q − p)·2^k₁)·2^k₂
 * with k₁ = k >> 1 (⌊k/2⌋), k₂ = k − k₁, both powers normal: overflow gives +inf, underflow rounds once. */
DS_INLINE vec DS_NAME(ds_exp)(vec x)
{
    const vec zero = {0}, low = zero + (DS_T)DS_EXP_LOW, high = zero + (DS_T)DS_EXP_HIGH;
    const vec t = vselect(x > high, high, vselect(x < low, low, x));
    vec p, q, two_k;
    const vmask k = DS_NAME(ds_exp_parts)(t, &p, &q, &two_k), k1 = k >> 1, k2 = k - k1;
    return ((q + p) / (q - p) * (vec)((k1 + DS_EXPONENT_BIAS) << DS_MANTISSA_BITS)) *
           (vec)((k2 + DS_EXPONENT_BIAS) << DS_MANTISSA_BITS);
}

/* x = j·π/2 + r, |r| <= π/4, as descentsim.numerics._sin_cos_reduced: j = rint(x·2/π), r = ((x − j·D₁) − j·D₂) −
 * j·D₃; sin r = r + r·(z·S(z)), cos r = (1 − z/2) + (z·z)·C(z), z = r². Sets *quadrant (j mod 4), *cos_r and
 * *beyond (|x| > DS_SIN_COS_MAX, where x is taken as 0 and the caller gives NaN); returns sin r. */
DS_INLINE vec DS_NAME(ds_sin_cos_reduced)(vec x, vmask *quadrant, vec *cos_r, vmask *beyond)
{
    const DS_T magic = DS_ROUND_MAGIC;
    const vec zero = {0}, magnitude = DS_NAME(ds_abs)(x);
    vec y, shifted, j, r, z;
    *beyond = ~(magnitude <= (DS_T)DS_SIN_COS_MAX) & (x == x);
    y = vselect(*beyond, zero, x);
    shifted = y * (DS_T)DS_TWO_OVER_PI + magic;
    j = shifted - magic;
    *quadrant = ((vmask)shifted - (vmask)(zero + magic)) & 3;
    r = ((y - j * (DS_T)DS_PIO2_1) - j * (DS_T)DS_PIO2_2) - j * (DS_T)DS_PIO2_3;
    z = r * r;
    *cos_r = (1 - z * (DS_T)0.5) + (z * z) * DS_NAME(ds_horner)(DS_COS_C, 6, z);
    return r + r * (z * DS_NAME(ds_horner)(DS_SIN_C, 6, z));
}

/* sin and cos as descentsim.numerics.sin, cos: by quadrant sin r, cos r, −sin r, −cos r (sin) and cos r, −sin r,
 * −cos r, sin r (cos); NaN beyond DS_SIN_COS_MAX, for ±inf and NaN. */
DS_INLINE vec DS_NAME(ds_sin)(vec x)
{
    vmask quadrant, beyond;
    vec c, zero = {0};
    const vec s = DS_NAME(ds_sin_cos_reduced)(x, &quadrant, &c, &beyond);
    const vec value = vselect((quadrant & 1) == 1, c, s);
    return vselect(beyond, zero + (DS_T)DS_NAN, vselect((quadrant & 2) == 2, -value, value));
}

DS_INLINE vec DS_NAME(ds_cos)(vec x)
{
    vmask quadrant, beyond;
    vec c, zero = {0};
    const vec s = DS_NAME(ds_sin_cos_reduced)(x, &quadrant, &c, &beyond);
    const vec value = vselect((quadrant & 1) == 1, s, c);
    return vselect(beyond, zero + (DS_T)DS_NAN, vselect(((quadrant + 1) & 2) == 2, -value, value));
}

DS_INLINE vec DS_NAME(ds_sqrt)(vec x)
{
    ptrdiff_t k;
    for (k = 0; k < DS_LANES; k++)
        x[k] = DS_SQRT(x[k]);
    return x;
}
