/* Trajectories in precision DS_T, DS_LANES at a time in the lanes of SIMD vectors: included by
 * kernels.h once per precision (no include guard), which defines DS_T, DS_MASK_T (the integer type as
 * wide as DS_T), DS_NAME(f) (this precision's copy of f), DS_TINY, DS_SQRT, DS_EXPONENT_BIAS and
 * DS_MANTISSA_BITS; they are undefined at the end.
 *
 * Each lane holds one trajectory and computes exactly what the scalar definition (the NumPy
 * reference) computes, operation for operation: lanes never mix. Parameters, gradients and per-point
 * constants live lane-major (value i of lane k at [i·DS_LANES + k]); the outcome bookkeeping runs in
 * double-precision lanes. A lane whose trajectory is decided takes the next point.
 */

#define DS_LANES DS_LANES_OF(DS_T)
typedef DS_T DS_NAME(ds_vec) __attribute__((vector_size(32)));
typedef DS_MASK_T DS_NAME(ds_vmask) __attribute__((vector_size(32)));
/* the bookkeeping runs in quads: 4 lanes of double, one 32-byte vector (two quads in float) */
#define DS_QUADS (DS_LANES / 4)
typedef DS_T DS_NAME(ds_qvec) __attribute__((vector_size(4 * sizeof(DS_T))));
typedef DS_MASK_T DS_NAME(ds_qmask) __attribute__((vector_size(4 * sizeof(DS_T))));
typedef double DS_NAME(ds_dvec) __attribute__((vector_size(32)));
typedef long long DS_NAME(ds_dmask) __attribute__((vector_size(32)));

/* adding and taking away 1.5·2^mantissa rounds to the nearest integer (ties to even) and leaves it in
 * the low bits; taken away from a value's bits, it turns a small integer's bits back into the value */
#define DS_ROUND_MAGIC ((DS_T)1.5 * (DS_T)((DS_MASK_T)1 << DS_MANTISSA_BITS))

#define vec DS_NAME(ds_vec)
#define vmask DS_NAME(ds_vmask)
#define dvec DS_NAME(ds_dvec)
#define dmask DS_NAME(ds_dmask)

DS_INLINE vec DS_NAME(ds_load)(const DS_T *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

DS_INLINE void DS_NAME(ds_store)(DS_T *p, vec v) { memcpy(p, &v, sizeof v); }

DS_INLINE vec DS_NAME(ds_select)(vmask m, vec a, vec b) { return (vec)((m & (vmask)a) | (~m & (vmask)b)); }

DS_INLINE dvec DS_NAME(ds_dselect)(dmask m, dvec a, dvec b)
{
    return (dvec)((m & (dmask)a) | (~m & (dmask)b));
}

DS_INLINE int DS_NAME(ds_any)(dmask m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

#define vload DS_NAME(ds_load)
#define vstore DS_NAME(ds_store)
#define vselect DS_NAME(ds_select)
#define dselect DS_NAME(ds_dselect)

/* ---- models: return L(θ) per lane, write ∇L(θ) into g (both lane-major) ------------------------ */

/* quadratic: L = ½·a·w², ∇L = a·w; c = (a) */
DS_INLINE vec DS_NAME(ds_quadratic)(const DS_T *th, DS_T *g, const DS_T *c)
{
    const vec w = vload(th), a = vload(c);
    vstore(g, a * w);
    return (DS_T)0.5 * a * w * w;
}

/* double-well: L = ¼·(w² − 1)², ∇L = w·(w² − 1) */
DS_INLINE vec DS_NAME(ds_double_well)(const DS_T *th, DS_T *g)
{
    const vec w = vload(th);
    const vec q = w * w - 1;
    vstore(g, w * q);
    return (DS_T)0.25 * q * q;
}

/* uv: f = vᵀu/√m, L = ½·(f − target)², ∇u = (f − target)·v/√m, ∇v = (f − target)·u/√m;
 * θ = (u, v), c = (target, 1/√m); the dot product is summed in index order */
DS_INLINE vec DS_NAME(ds_uv)(const DS_T *th, DS_T *g, const DS_T *c, ptrdiff_t p)
{
    const ptrdiff_t m = p / 2;
    const vec target = vload(c), inv_sqrt_m = vload(c + DS_LANES);
    vec dot = {0}, r, s;
    ptrdiff_t i;
    for (i = 0; i < m; i++)
        dot = dot + vload(th + i * DS_LANES) * vload(th + (m + i) * DS_LANES);
    r = dot * inv_sqrt_m - target;
    s = r * inv_sqrt_m;
    for (i = 0; i < m; i++) {
        vstore(g + i * DS_LANES, s * vload(th + (m + i) * DS_LANES));
        vstore(g + (m + i) * DS_LANES, s * vload(th + i * DS_LANES));
    }
    return (DS_T)0.5 * r * r;
}

/* the sample at position j of a lane's minibatch, from the lane's key of this step (ds_train_points sets
 * it): mix(key + j) mod samples, or (key + j) mod samples in sequential order, where key = t·batch_size */
DS_INLINE ptrdiff_t DS_NAME(ds_batch_index)(const ds_problem *pb, uint64_t key, ptrdiff_t j)
{
    const uint64_t at = key + (uint64_t)j;
    return (ptrdiff_t)((pb->batch_sequential ? at : ds_mix(at)) % (uint64_t)pb->samples);
}

/* The samples at position n of the lanes' minibatches (written to index, which is returned), or NULL for the
 * full data (batch = 0), where position n is sample n for every lane (ds_sample). */
DS_INLINE const ptrdiff_t *DS_NAME(ds_lane_samples)(const ds_problem *pb, const uint64_t *keys, ptrdiff_t batch,
                                                    ptrdiff_t n, ptrdiff_t *index)
{
    ptrdiff_t k;
    if (batch == 0)
        return NULL;
    for (k = 0; k < DS_LANES; k++)
        index[k] = DS_NAME(ds_batch_index)(pb, keys[k], n);
    return index;
}

/* relu-neuron: ŷ = a·relu(w·x + b) + c, e = ŷ − y, L = ½·mean(e²), relu'(0) = 0;
 * ∇ = mean of (e·a·[z>0]·x, e·a·[z>0], e·relu(z), e), summed in sample order; with w_only only L and
 * ∂L/∂w are formed (the other parameters do not move). With minibatches (keys: each lane's key of
 * this step) the samples are ds_batch_index(key, j), j < batch_size, gathered lane by lane.
 * keys = NULL: the full-data loss over the first eval_count samples; g = NULL: the loss alone. */
DS_INLINE vec DS_NAME(ds_relu_neuron)(const ds_problem *pb, const DS_T *th, DS_T *g, const uint64_t *keys)
{
    const DS_T *x = (const DS_T *)pb->data, *y = x + pb->samples;
    const ptrdiff_t samples = pb->samples, batch_size = keys != NULL ? pb->batch_size : 0;
    const int w_only = g == NULL || !(pb->trainable[1] | pb->trainable[2] | pb->trainable[3]); /* b, a, c stay put */
    const vec w = vload(th), b = vload(th + DS_LANES), a = vload(th + 2 * DS_LANES),
              c = vload(th + 3 * DS_LANES), zero = {0};
    const ptrdiff_t count = batch_size > 0 ? batch_size : pb->eval_count;
    const vec n = zero + (DS_T)count;
    vec loss = zero, gw = zero, gb = zero, ga = zero, gc = zero, xv, yv;
    ptrdiff_t i, k;

    /* four loops, so that each is as tight as it can be: sample i's x and y (X, Y) are broadcast for
     * the full batch, gathered lane by lane for minibatches */
#define DS_RELU_TERMS(X, Y)                                                                            \
    const vec z = w * X + b;                                                                           \
    const vmask active = z > zero;                                                                     \
    const vec h = (vec)(active & (vmask)z);                                                            \
    const vec e = a * h + c - Y;                                                                       \
    const vec ea = (vec)(active & (vmask)(e * a));                                                     \
    loss = loss + e * e;                                                                               \
    gw = gw + ea * X;
#define DS_RELU_REST                                                                                   \
    gb = gb + ea;                                                                                      \
    ga = ga + e * h;                                                                                   \
    gc = gc + e;
#define DS_GATHER                                                                                      \
    for (k = 0; k < DS_LANES; k++) {                                                                   \
        const ptrdiff_t index = DS_NAME(ds_batch_index)(pb, keys[k], i);                                  \
        xv[k] = x[index];                                                                              \
        yv[k] = y[index];                                                                              \
    }
    if (batch_size == 0 && w_only) {
        for (i = 0; i < count; i++) {
            DS_RELU_TERMS(x[i], y[i])
        }
    } else if (batch_size == 0) {
        for (i = 0; i < count; i++) {
            DS_RELU_TERMS(x[i], y[i])
            DS_RELU_REST
        }
    } else if (w_only) {
        for (i = 0; i < count; i++) {
            DS_GATHER
            DS_RELU_TERMS(xv, yv)
        }
    } else {
        for (i = 0; i < count; i++) {
            DS_GATHER
            DS_RELU_TERMS(xv, yv)
            DS_RELU_REST
        }
    }
#undef DS_RELU_TERMS
#undef DS_RELU_REST
#undef DS_GATHER
    if (g != NULL) {
        vstore(g, gw / n);
        vstore(g + DS_LANES, gb / n);
        vstore(g + 2 * DS_LANES, ga / n);
        vstore(g + 3 * DS_LANES, gc / n);
    }
    return (DS_T)0.5 * (loss / n);
}

/* ---- tanh from + − × ÷ (descentsim.numerics, Cephes) -------------------------------------------- */

DS_INLINE vec DS_NAME(ds_horner)(const double *c, ptrdiff_t n, vec x)
{
    vec r = x * 0 + (DS_T)c[0];
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
    const vmask k = (vmask)shifted - (vmask)(t * 0 + magic);
    const vec r = t - kf * (DS_T)DS_LN2_HI - kf * (DS_T)DS_LN2_LO;
    const vec z = r * r;
    *p = r * DS_NAME(ds_horner)(DS_EXP_P, 3, z);
    *q = DS_NAME(ds_horner)(DS_EXP_Q, 4, z);
    *two_k = (vec)((k + DS_EXPONENT_BIAS) << DS_MANTISSA_BITS);
    return k;
}

/* tanh as descentsim.numerics.tanh: a = min(|x|, 22), exp(2a) = 2^k·(q + p)/(q − p), then
 * tanh a = (2^k(q + p) − (q − p)) / (2^k(q + p) + (q − p)), or p/q where k = 0: one division. */
DS_INLINE vec DS_NAME(ds_tanh)(vec x)
{
    const vmask sign = (vmask)(x * 0 - (DS_T)0); /* the sign bit alone */
    const vec magnitude = (vec)((vmask)x & ~sign);
    const vec a = vselect(magnitude > (DS_T)DS_TANH_CAP, x * 0 + (DS_T)DS_TANH_CAP, magnitude);
    vec p, q, two_k;
    const vmask small = DS_NAME(ds_exp_parts)((DS_T)2 * a, &p, &q, &two_k) == 0;
    const vec up = two_k * (q + p), down = q - p;
    const vec result = vselect(small, p, up - down) / vselect(small, q, up + down);
    return (vec)((vmask)result | ((vmask)x & sign));
}

/* exp(x) for x <= 0 as descentsim.numerics.exp_nonpositive: 2^k·(q + p)/(q − p); 0 below DS_EXP_FLOOR
 * (2^k stays a normal number in both precisions). */
DS_INLINE vec DS_NAME(ds_exp_nonpositive)(vec x)
{
    const vmask floor = x < (DS_T)DS_EXP_FLOOR;
    vec p, q, two_k;
    DS_NAME(ds_exp_parts)(vselect(floor, x * 0, x), &p, &q, &two_k);
    return vselect(floor, x * 0, (two_k * (q + p)) / (q - p));
}

/* log(s) of a positive normal s (descentsim.numerics._log_split), its exponent lowered by `lower`:
 * s = m·2^e with m in [√½, √2) from the bits (frexp), log m = 2u + 2u·w·R(w), u = (m − 1)/(m + 1), w = u²,
 * log = (e·ln2_lo + log m) + e·ln2_hi. e becomes a float by the round-to-nearest trick in reverse. */
DS_INLINE vec DS_NAME(ds_log_normal)(vec s, vmask lower)
{
    const DS_T magic = DS_ROUND_MAGIC;
    const vmask bits = (vmask)s;
    const vmask mantissa = ((vmask)(s * 0) + 1) << DS_MANTISSA_BITS;
    const vmask e_frexp = ((bits >> DS_MANTISSA_BITS) & (2 * DS_EXPONENT_BIAS + 1)) - (DS_EXPONENT_BIAS - 1);
    const vec m_frexp = (vec)((bits & (mantissa - 1)) | ((vmask)(s * 0) + ((DS_MASK_T)(DS_EXPONENT_BIAS - 1) << DS_MANTISSA_BITS)));
    const vmask low = m_frexp < (DS_T)DS_SQRT_HALF;
    const vec m = vselect(low, m_frexp * 2, m_frexp);
    const vec e = (vec)((vmask)(s * 0 + magic) + (e_frexp + low - lower)) - magic; /* low is −1 where true */
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
    const vmask ok = (x > zero) & (x < (DS_T)INFINITY);
    const vmask subnormal = ok & (x < (DS_T)DS_TINY);
    const vec scale = zero + (DS_T)((DS_MASK_T)1 << (DS_MANTISSA_BITS + 2));
    const vec s = vselect(subnormal, x * scale, vselect(ok, x, zero + 1));
    const vec value = DS_NAME(ds_log_normal)(s, subnormal & (DS_MANTISSA_BITS + 2));
    const vec edge = vselect(x == zero, zero - (DS_T)INFINITY, vselect(x == (DS_T)INFINITY, x, zero + (DS_T)NAN));
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
    const vec zero = {0};
    const vmask sign = (vmask)(-zero); /* −0: the sign bit alone */
    const vec magnitude = (vec)((vmask)x & ~sign);
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
    return vselect(beyond, zero + (DS_T)NAN, vselect((quadrant & 2) == 2, -value, value));
}

DS_INLINE vec DS_NAME(ds_cos)(vec x)
{
    vmask quadrant, beyond;
    vec c, zero = {0};
    const vec s = DS_NAME(ds_sin_cos_reduced)(x, &quadrant, &c, &beyond);
    const vec value = vselect((quadrant & 1) == 1, s, c);
    return vselect(beyond, zero + (DS_T)NAN, vselect(((quadrant + 1) & 2) == 2, -value, value));
}

DS_INLINE vec DS_NAME(ds_sqrt)(vec x)
{
    ptrdiff_t k;
    for (k = 0; k < DS_LANES; k++)
        x[k] = DS_SQRT(x[k]);
    return x;
}

/* the formula model (descentsim.formula): its program is the data, one instruction (op, a, b, literal) a row;
 * instruction k writes register k (work, one vector each) from registers a and b, parameter a (θ), knob a (c) or
 * its literal, with the operations of descentsim.numerics. The last p + 1 registers are L and ∇L. */
DS_INLINE vec DS_NAME(ds_formula)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c, DS_T *r)
{
    const DS_T *code = (const DS_T *)pb->data;
    const ptrdiff_t length = pb->data_rows, p = pb->p;
    const vec zero = {0};
    ptrdiff_t k, i;
    for (k = 0; k < length; k++) {
        const DS_T *ins = code + 4 * k;
        const ptrdiff_t a = (ptrdiff_t)ins[1], b = (ptrdiff_t)ins[2];
        const vec x = vload(r + (a < k ? a : 0) * DS_LANES), y = vload(r + (b < k ? b : 0) * DS_LANES);
        vec v;
        switch ((int)ins[0]) {
        case DS_OP_CONST: v = zero + ins[3]; break;
        case DS_OP_PARAM: v = vload(th + a * DS_LANES); break;
        case DS_OP_KNOB: v = vload(c + a * DS_LANES); break;
        case DS_OP_ADD: v = x + y; break;
        case DS_OP_SUB: v = x - y; break;
        case DS_OP_MUL: v = x * y; break;
        case DS_OP_DIV: v = x / y; break;
        case DS_OP_NEG: v = -x; break;
        case DS_OP_SQRT: v = DS_NAME(ds_sqrt)(x); break;
        case DS_OP_ABS: v = (vec)((vmask)x & ~(vmask)(-zero)); break;
        case DS_OP_SIGN: v = vselect(x > zero, zero + 1, vselect(x < zero, zero - 1, x)); break;
        case DS_OP_SIN: v = DS_NAME(ds_sin)(x); break;
        case DS_OP_COS: v = DS_NAME(ds_cos)(x); break;
        case DS_OP_EXP: v = DS_NAME(ds_exp)(x); break;
        case DS_OP_LOG: v = DS_NAME(ds_log)(x); break;
        case DS_OP_TANH: v = DS_NAME(ds_tanh)(x); break;
        default: v = x; break; /* DS_OP_COPY */
        }
        vstore(r + k * DS_LANES, v);
    }
    for (i = 0; g != NULL && i < p; i++)
        vstore(g + i * DS_LANES, vload(r + (length - p + i) * DS_LANES));
    return vload(r + (length - p - 1) * DS_LANES);
}

/* value of data row `row` at sample n (all lanes), or at each lane's own sample index[k] (minibatches) */
DS_INLINE vec DS_NAME(ds_sample)(const DS_T *row, ptrdiff_t n, const ptrdiff_t *index)
{
    vec v = {0};
    ptrdiff_t k;
    if (index == NULL)
        return v + row[n];
    for (k = 0; k < DS_LANES; k++)
        v[k] = row[index[k]];
    return v;
}

/* ---- the network (descentsim.models.network) ------------------------------------------------------ */

/* The network's shape from row 0 of the consts, θ's layout (per layer W_l, then b_l where bias) and the work
 * space's (ds_network_shape). */
DS_INLINE void DS_NAME(ds_network_layout)(const ds_problem *pb, ds_network_shape *net)
{
    const DS_T *row = (const DS_T *)pb->consts;
    ptrdiff_t l, at = 0, work_at = 0;
    net->activation = (int)row[DS_NET_ACTIVATION];
    net->loss = (int)row[DS_NET_LOSS];
    net->bias = row[DS_NET_BIAS] != 0;
    net->mean_field = row[DS_NET_PARAM] != 0;
    net->classifier = row[DS_NET_CLASSIFIER] != 0;
    net->layers = (ptrdiff_t)row[DS_NET_LAYERS];
    net->widest = 0;
    for (l = 0; l <= net->layers; l++) {
        net->width[l] = (ptrdiff_t)row[DS_NET_WIDTHS + l];
        net->widest = net->width[l] > net->widest ? net->width[l] : net->widest;
    }
    for (l = 0; l < net->layers; l++) {
        net->w_at[l] = at;
        at += net->width[l] * net->width[l + 1];
        net->b_at[l] = at;
        at += net->bias ? net->width[l + 1] : 0;
        net->act_at[l] = work_at;
        work_at += net->width[l];
    }
    for (l = 0; l < net->layers; l++) {
        net->z_at[l] = work_at;
        work_at += net->width[l + 1];
    }
    net->errors_at = work_at;
}

/* φ (network.activation) and ∂L/∂z from ∂L/∂h = dh at z with h = φ(z) (network.activation_backward) */
DS_INLINE vec DS_NAME(ds_network_phi)(int code, vec z, vec slope)
{
    const vec zero = {0};
    switch (code) {
    case DS_NET_RELU: return (vec)((z > zero) & (vmask)z);
    case DS_NET_LEAKY_RELU: return vselect(z > zero, z, slope * z);
    case DS_NET_TANH: return DS_NAME(ds_tanh)(z);
    case DS_NET_SIGMOID: return 1 / (1 + DS_NAME(ds_exp)(-z));
    case DS_NET_TANH_SQRT2: return DS_NAME(ds_tanh)((DS_T)DS_SQRT2 * z);
    case DS_NET_RELU_SQRT2: return (DS_T)DS_SQRT2 * (vec)((z > zero) & (vmask)z);
    default: return z;
    }
}

DS_INLINE vec DS_NAME(ds_network_phi_backward)(int code, vec dh, vec z, vec h, vec slope)
{
    const vec zero = {0};
    switch (code) {
    case DS_NET_RELU: return (vec)((z > zero) & (vmask)dh);
    case DS_NET_LEAKY_RELU: return vselect(z > zero, dh, dh * slope);
    case DS_NET_TANH: return dh * (1 - h * h);
    case DS_NET_SIGMOID: return dh * (h * (1 - h));
    case DS_NET_TANH_SQRT2: return dh * ((DS_T)DS_SQRT2 * (1 - h * h));
    case DS_NET_RELU_SQRT2: return (vec)((z > zero) & (vmask)(dh * (DS_T)DS_SQRT2));
    default: return dh;
    }
}

/* The forward pass of one sample per lane, a_0 (the inputs) already in work: per layer acc_j = Σ_i a_i·W_ij
 * (from 0, in index order; DS_NET_UNITS outputs at a time in registers, which changes no result), then
 * ·(1/√n_in) (mean_field, hidden) or /√n_in/√n_in (mean_field, output), then + b_j (bias); z into work,
 * a = φ(z) for the hidden layers. c: the lanes' consts. */
DS_INLINE void DS_NAME(ds_network_forward)(const ds_network_shape *net, const DS_T *th, const DS_T *c, DS_T *work)
{
    const vec zero = {0}, slope = vload(c + DS_NET_SLOPE * DS_LANES);
    const ptrdiff_t last = net->layers - 1;
    ptrdiff_t l, i, j, j0, jj;
    for (l = 0; l <= last; l++) {
        const ptrdiff_t fan_in = net->width[l], fan_out = net->width[l + 1];
        const DS_T *in = work + net->act_at[l] * DS_LANES, *w = th + net->w_at[l] * DS_LANES,
                   *b = th + net->b_at[l] * DS_LANES;
        DS_T *z = work + net->z_at[l] * DS_LANES;
        const vec scale = vload(c + (DS_NET_WIDTHS + net->layers + 1 + l) * DS_LANES),
                  root = vload(c + (DS_NET_WIDTHS + 2 * net->layers + 1 + l) * DS_LANES);
        for (j0 = 0; j0 + DS_NET_UNITS <= fan_out; j0 += DS_NET_UNITS) { /* blocks of outputs, in registers */
            vec acc[DS_NET_UNITS];
            DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                acc[jj] = zero;
            for (i = 0; i < fan_in; i++) {
                const vec a = vload(in + i * DS_LANES);
                const DS_T *wi = w + (i * fan_out + j0) * DS_LANES;
                DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                    acc[jj] = acc[jj] + a * vload(wi + jj * DS_LANES);
            }
            DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                vstore(z + (j0 + jj) * DS_LANES, acc[jj]);
        }
        for (j = j0; j < fan_out; j++) { /* the outputs left over */
            vec acc = zero;
            for (i = 0; i < fan_in; i++)
                acc = acc + vload(in + i * DS_LANES) * vload(w + (i * fan_out + j) * DS_LANES);
            vstore(z + j * DS_LANES, acc);
        }
        for (j = 0; j < fan_out; j++) {
            vec v = vload(z + j * DS_LANES);
            if (net->mean_field)
                v = l == last ? v / root / root : v * scale;
            if (net->bias)
                v = v + vload(b + j * DS_LANES);
            vstore(z + j * DS_LANES, v);
            if (l < last)
                vstore(work + (net->act_at[l + 1] + j) * DS_LANES, DS_NAME(ds_network_phi)(net->activation, v, slope));
        }
    }
}

/* The network with one hidden layer and the mse loss (the mlp preset: Sohl-Dickstein's map) exactly as ds_network
 * computes it, with the loops blocked — DS_NET_UNITS hidden units, DS_NET_POINTS samples at a time — so that partial
 * sums stay in registers; every sum still runs in index order (over i for a hidden unit's input, over j for the
 * output, over samples for the loss and each gradient entry), so no result changes. work: the pre-activations,
 * activations and ∂acc of the hidden layer for DS_NET_POINTS samples (ds_model_vectors). lowest: 1 where W1 is
 * frozen. keys and g as ds_network. */
DS_INLINE vec DS_NAME(ds_network_shallow_with)(const ds_problem *pb, const ds_network_shape *net, const DS_T *th,
                                               DS_T *g, const DS_T *c, DS_T *work, const uint64_t *keys,
                                               ptrdiff_t lowest, const int phi, const int mean_field, const int bias)
{
    const ptrdiff_t d = net->width[0], width = net->width[1], samples = pb->samples;
    const ptrdiff_t batch = keys != NULL ? pb->batch_size : 0, count = batch > 0 ? batch : pb->eval_count;
    ptrdiff_t index[DS_NET_POINTS][DS_LANES]; /* minibatches: each lane's sample at each block position */
    const DS_T *x = (const DS_T *)pb->data, *y = x + d * samples;
    const DS_T *w1 = th + net->w_at[0] * DS_LANES, *b1 = th + net->b_at[0] * DS_LANES,
               *w2 = th + net->w_at[1] * DS_LANES, *b2 = th + net->b_at[1] * DS_LANES;
    DS_T *pre = work, *h = pre + DS_NET_POINTS * width * DS_LANES, *dz = h + DS_NET_POINTS * width * DS_LANES;
    DS_T *g1 = g + net->w_at[0] * DS_LANES, *gb1 = g + net->b_at[0] * DS_LANES, *g2 = g + net->w_at[1] * DS_LANES,
         *gb2 = g + net->b_at[1] * DS_LANES;
    /* 1/√n_0 and √n_1: the consts' scale of layer 0 and root of layer 1 (two layers: columns L + 1 and 2·L + 2) */
    const vec zero = {0}, n_terms = zero + (DS_T)count, slope = vload(c + DS_NET_SLOPE * DS_LANES),
              scale = vload(c + (DS_NET_WIDTHS + 3) * DS_LANES), root = vload(c + (DS_NET_WIDTHS + 6) * DS_LANES);
    const int train_out = g != NULL && pb->trainable[net->w_at[1]], train_in = g != NULL && lowest == 0;
    vec loss = zero;
    ptrdiff_t n0, t, points, i, j, j0 = 0, jj;
    for (i = 0; g != NULL && i < pb->p; i++)
        vstore(g + i * DS_LANES, zero);
    for (n0 = 0; n0 < count; n0 += DS_NET_POINTS) {
        points = count - n0 < DS_NET_POINTS ? count - n0 : DS_NET_POINTS;
        for (t = 0; t < points; t++) { /* forward, loss, output layer, errors at the hidden layer */
            const ptrdiff_t row = t * width * DS_LANES, n = n0 + t;
            const ptrdiff_t *at = DS_NAME(ds_lane_samples)(pb, keys, batch, n, index[t]);
            vec s = zero, e, delta, dacc;
            for (j0 = 0; j0 + DS_NET_UNITS <= width; j0 += DS_NET_UNITS) { /* blocks of units, in registers */
                vec acc[DS_NET_UNITS];
                DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                    acc[jj] = zero;
                for (i = 0; i < d; i++) {
                    const vec xi = DS_NAME(ds_sample)(x + i * samples, n, at);
                    const DS_T *wi = w1 + (i * width + j0) * DS_LANES;
                    DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                        acc[jj] = acc[jj] + xi * vload(wi + jj * DS_LANES);
                }
                DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++) {
                    vec v = mean_field ? acc[jj] * scale : acc[jj];
                    vstore(pre + row + (j0 + jj) * DS_LANES, bias ? v + vload(b1 + (j0 + jj) * DS_LANES) : v);
                }
            }
            for (j = j0; j < width; j++) { /* the units left over */
                vec acc = zero;
                for (i = 0; i < d; i++)
                    acc = acc + DS_NAME(ds_sample)(x + i * samples, n, at) * vload(w1 + (i * width + j) * DS_LANES);
                acc = mean_field ? acc * scale : acc;
                vstore(pre + row + j * DS_LANES, bias ? acc + vload(b1 + j * DS_LANES) : acc);
            }
            for (j = 0; j < width; j++) {
                const vec act = DS_NAME(ds_network_phi)(phi, vload(pre + row + j * DS_LANES), slope);
                vstore(h + row + j * DS_LANES, act);
                s = s + act * vload(w2 + j * DS_LANES);
            }
            if (mean_field)
                s = s / root / root;
            if (bias)
                s = s + vload(b2);
            e = s - DS_NAME(ds_sample)(y, n, at);
            loss = loss + e * e;
            if (g == NULL)
                continue;
            delta = ((DS_T)2 * e) / n_terms;
            dacc = mean_field ? delta / root / root : delta;
            if (train_out && bias)
                vstore(gb2, vload(gb2) + delta);
            for (j = 0; j < width; j++) {
                const vec act = vload(h + row + j * DS_LANES);
                vec back;
                if (train_out)
                    vstore(g2 + j * DS_LANES, vload(g2 + j * DS_LANES) + act * dacc);
                if (!train_in)
                    continue;
                back = DS_NAME(ds_network_phi_backward)(phi, zero + vload(w2 + j * DS_LANES) * dacc,
                                                        vload(pre + row + j * DS_LANES), act, slope);
                if (bias)
                    vstore(gb1 + j * DS_LANES, vload(gb1 + j * DS_LANES) + back);
                vstore(dz + row + j * DS_LANES, mean_field ? back * scale : back);
            }
        }
        for (i = 0; train_in && i < d; i++) { /* input layer: the block's samples added in order */
            for (j0 = 0; j0 + DS_NET_UNITS <= width; j0 += DS_NET_UNITS) {
                DS_T *gi = g1 + (i * width + j0) * DS_LANES;
                vec acc[DS_NET_UNITS];
                DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                    acc[jj] = vload(gi + jj * DS_LANES);
                for (t = 0; t < points; t++) {
                    const vec xi = DS_NAME(ds_sample)(x + i * samples, n0 + t, batch > 0 ? index[t] : NULL);
                    const DS_T *dzt = dz + (t * width + j0) * DS_LANES;
                    DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                        acc[jj] = acc[jj] + xi * vload(dzt + jj * DS_LANES);
                }
                DS_UNROLL for (jj = 0; jj < DS_NET_UNITS; jj++)
                    vstore(gi + jj * DS_LANES, acc[jj]);
            }
            for (j = j0; j < width; j++) {
                DS_T *gi = g1 + (i * width + j) * DS_LANES;
                vec acc = vload(gi);
                for (t = 0; t < points; t++)
                    acc = acc + DS_NAME(ds_sample)(x + i * samples, n0 + t, batch > 0 ? index[t] : NULL)
                                    * vload(dz + (t * width + j) * DS_LANES);
                vstore(gi, acc);
            }
        }
    }
    return loss / n_terms;
}

/* ds_network_shallow_with with constant φ, parameterisation and biases for Sohl-Dickstein's map (the mlp preset's
 * tanh: tanh_sqrt2, mean-field, no biases), so that its copy has them inlined; every other network one copy with
 * them read at run time (a copy for each would make the kernel, all of it inlined into ds_train_points, so large
 * that the compiler's register allocation, and every model's speed, suffer: measured). */
DS_INLINE vec DS_NAME(ds_network_shallow)(const ds_problem *pb, const ds_network_shape *net, const DS_T *th, DS_T *g,
                                          const DS_T *c, DS_T *work, const uint64_t *keys, ptrdiff_t lowest)
{
    if (net->activation == DS_NET_TANH_SQRT2 && net->mean_field && !net->bias)
        return DS_NAME(ds_network_shallow_with)(pb, net, th, g, c, work, keys, lowest, DS_NET_TANH_SQRT2, 1, 0);
    return DS_NAME(ds_network_shallow_with)(pb, net, th, g, c, work, keys, lowest, net->activation, net->mean_field,
                                            net->bias);
}

/* offset_mode every_step (the consts' every_step column): the drift is added to every W1 entry after each update
 * of the lanes that go on (network.DenseNetwork.after_update) */
DS_INLINE void DS_NAME(ds_network_drift)(const ds_problem *pb, DS_T *th, const DS_T *c, vmask go)
{
    const DS_T *row0 = (const DS_T *)pb->consts; /* shape knobs: alike in every row */
    const ptrdiff_t count = (ptrdiff_t)row0[DS_NET_WIDTHS] * (ptrdiff_t)row0[DS_NET_WIDTHS + 1];
    const vec drift = vload(c + DS_NET_DRIFT * DS_LANES);
    ptrdiff_t i;
    if (row0[DS_NET_EVERY_STEP] == 0)
        return;
    for (i = 0; i < count; i++)
        vstore(th + i * DS_LANES, vselect(go, vload(th + i * DS_LANES) + drift, vload(th + i * DS_LANES)));
}

/* network: per sample (in order; each lane's own with minibatches), the forward pass, the loss term ℓ and
 * δ_L = ∂ℓ/∂z_L divided by the count (network._loss_terms), then back-propagation layer by layer with every
 * gradient entry getting the sample's term, as network.DenseNetwork.loss_grad. Frozen layers (trainable 0) get no
 * gradient, and errors go no further down than the lowest layer that trains. work: ds_network_shape's. keys =
 * NULL: the full-data loss over the first eval_count samples; g = NULL: the loss alone (no backward pass). */
DS_INLINE vec DS_NAME(ds_network)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c, DS_T *work,
                                  const uint64_t *keys)
{
    ds_network_shape net;
    const ptrdiff_t samples = pb->samples, batch = keys != NULL ? pb->batch_size : 0;
    const ptrdiff_t count = batch > 0 ? batch : pb->eval_count;
    const vec zero = {0}, n_terms = zero + (DS_T)count, slope = vload(c + DS_NET_SLOPE * DS_LANES);
    vec loss = zero;
    ptrdiff_t n, i, j, l, k, lowest, index[DS_LANES];
    DS_T *errors[2], *xs;
    const DS_T *x = (const DS_T *)pb->data, *y;
    DS_NAME(ds_network_layout)(pb, &net);
    y = x + net.width[0] * samples;
    xs = work + net.act_at[0] * DS_LANES;
    errors[0] = work + net.errors_at * DS_LANES;
    errors[1] = errors[0] + net.widest * DS_LANES;
    for (lowest = 0; lowest < net.layers - 1 && !pb->trainable[net.w_at[lowest]]; lowest++)
        ;
    if (net.layers == 2 && net.loss == DS_NET_MSE)
        return DS_NAME(ds_network_shallow)(pb, &net, th, g, c, work, keys, lowest);
    for (i = 0; g != NULL && i < pb->p; i++)
        vstore(g + i * DS_LANES, zero);
    for (n = 0; n < count; n++) {
        const ptrdiff_t *at = DS_NAME(ds_lane_samples)(pb, keys, batch, n, index);
        const ptrdiff_t outputs = net.width[net.layers];
        const DS_T *out = work + net.z_at[net.layers - 1] * DS_LANES;
        const vec target = DS_NAME(ds_sample)(y, n, at);
        DS_T *delta = errors[0];
        for (i = 0; i < net.width[0]; i++)
            vstore(xs + i * DS_LANES, DS_NAME(ds_sample)(x + i * samples, n, at));
        DS_NAME(ds_network_forward)(&net, th, c, work);
        if (net.loss == DS_NET_MSE) {
            const vec e = vload(out) - target;
            loss = loss + e * e;
            vstore(delta, ((DS_T)2 * e) / n_terms);
        } else if (net.loss == DS_NET_SIGMOID_BCE) {
            const vec v = vload(out);
            const vec a = DS_NAME(ds_exp_nonpositive)((vec)((vmask)v | (vmask)(-zero))); /* −|v| */
            const vec sigma = vselect(v >= zero, 1 / (1 + a), a / (1 + a));
            loss = loss + (((vec)((v > zero) & (vmask)v) - v * target) + DS_NAME(ds_log_at_least_one)(1 + a));
            vstore(delta, (sigma - target) / n_terms);
        } else { /* softmax_ce: μ the first largest logit, s = Σ exp(z − μ) in class order */
            vec top = vload(out), s = zero, picked = zero;
            ptrdiff_t cl;
            for (cl = 1; cl < outputs; cl++)
                top = vselect(vload(out + cl * DS_LANES) > top, vload(out + cl * DS_LANES), top);
            for (cl = 0; cl < outputs; cl++) {
                const vec e = DS_NAME(ds_exp_nonpositive)(vload(out + cl * DS_LANES) - top);
                vstore(delta + cl * DS_LANES, e);
                s = s + e;
            }
            for (k = 0; k < DS_LANES; k++)
                picked[k] = out[(ptrdiff_t)target[k] * DS_LANES + k];
            loss = loss + ((top + DS_NAME(ds_log_at_least_one)(s)) - picked);
            for (cl = 0; g != NULL && cl < outputs; cl++) {
                const vec onehot = (vec)((target == (DS_T)cl) & (vmask)(zero + 1));
                vstore(delta + cl * DS_LANES, (vload(delta + cl * DS_LANES) / s - onehot) / n_terms);
            }
        }
        if (g == NULL)
            continue;
        for (l = net.layers - 1; l >= lowest; l--) { /* delta: δ of layer l's outputs */
            const ptrdiff_t fan_in = net.width[l], fan_out = net.width[l + 1];
            const DS_T *inputs = work + net.act_at[l] * DS_LANES, *w = th + net.w_at[l] * DS_LANES;
            const vec scale = vload(c + (DS_NET_WIDTHS + net.layers + 1 + l) * DS_LANES),
                      root = vload(c + (DS_NET_WIDTHS + 2 * net.layers + 1 + l) * DS_LANES);
            DS_T *dacc = delta, *next;
            if (net.mean_field) { /* ∂acc: δ·(1/√n_in) (hidden) or δ/√n_in/√n_in (output), as the forward */
                dacc = delta == errors[0] ? errors[1] : errors[0];
                for (j = 0; j < fan_out; j++) {
                    const vec dl = vload(delta + j * DS_LANES);
                    vstore(dacc + j * DS_LANES, l == net.layers - 1 ? dl / root / root : dl * scale);
                }
            }
            if (pb->trainable[net.w_at[l]]) {
                for (i = 0; i < fan_in; i++) {
                    const vec a = vload(inputs + i * DS_LANES);
                    DS_T *gw = g + (net.w_at[l] + i * fan_out) * DS_LANES;
                    for (j = 0; j < fan_out; j++)
                        vstore(gw + j * DS_LANES, vload(gw + j * DS_LANES) + a * vload(dacc + j * DS_LANES));
                }
                for (j = 0; net.bias && j < fan_out; j++)
                    vstore(g + (net.b_at[l] + j) * DS_LANES,
                           vload(g + (net.b_at[l] + j) * DS_LANES) + vload(delta + j * DS_LANES));
            }
            if (l == lowest)
                break;
            next = dacc == errors[0] ? errors[1] : errors[0]; /* δ of layer l's inputs: φ'(Σ_j W_ij·∂acc_j) */
            for (i = 0; i < fan_in; i++) {
                vec acc = zero;
                for (j = 0; j < fan_out; j++)
                    acc = acc + vload(w + (i * fan_out + j) * DS_LANES) * vload(dacc + j * DS_LANES);
                vstore(next + i * DS_LANES,
                       DS_NAME(ds_network_phi_backward)(net.activation, acc,
                                                        vload(work + (net.z_at[l - 1] + i) * DS_LANES),
                                                        vload(inputs + i * DS_LANES), slope));
            }
            delta = next;
        }
    }
    return loss / n_terms;
}

/* The network's accuracy, collapse and number of classes predicted (network.DenseNetwork.evaluate) for lane k at
 * θ = th on the whole training set: the forward pass of every lane (one input at a time), read at lane k. The
 * prediction: the first largest logit (softmax_ce), z > 0 (sigmoid_bce), z > 0.5 (mse). Regression: nothing.
 * work: ds_network_shape's (the error buffers hold the classes seen). */
DS_INLINE void DS_NAME(ds_network_evaluate)(const ds_problem *pb, const DS_T *th, const DS_T *c, ptrdiff_t k,
                                            DS_T *work, double *accuracy, signed char *collapsed,
                                            short *classes_predicted)
{
    ds_network_shape net;
    const ptrdiff_t samples = pb->samples;
    const DS_T *x = (const DS_T *)pb->data;
    ptrdiff_t n, i, cl, correct = 0, first = -1, outputs, classes;
    DS_T *seen, *xs;
    const DS_T *out;
    short distinct = 0;
    int same = 1, finite = 1;
    DS_NAME(ds_network_layout)(pb, &net);
    if (!net.classifier)
        return;
    outputs = net.width[net.layers];
    classes = net.loss == DS_NET_SOFTMAX_CE ? outputs : 2;
    xs = work + net.act_at[0] * DS_LANES;
    out = work + net.z_at[net.layers - 1] * DS_LANES + k;
    seen = work + net.errors_at * DS_LANES; /* 2·widest·DS_LANES values >= classes */
    for (cl = 0; cl < classes; cl++)
        seen[cl] = 0;
    for (n = 0; n < samples; n++) {
        ptrdiff_t best = 0;
        for (i = 0; i < net.width[0]; i++)
            vstore(xs + i * DS_LANES, DS_NAME(ds_sample)(x + i * samples, n, NULL));
        DS_NAME(ds_network_forward)(&net, th, c, work);
        for (cl = 0; cl < outputs; cl++) {
            finite &= isfinite(out[cl * DS_LANES]) != 0;
            if (out[cl * DS_LANES] > out[best * DS_LANES])
                best = cl;
        }
        if (net.loss != DS_NET_SOFTMAX_CE)
            best = out[0] > (net.loss == DS_NET_SIGMOID_BCE ? (DS_T)0 : (DS_T)0.5);
        correct += best == (ptrdiff_t)x[net.width[0] * samples + n];
        distinct += seen[best] == 0;
        seen[best] = 1;
        if (first < 0)
            first = best;
        same &= best == first;
    }
    *accuracy = finite ? (double)correct / (double)samples : NAN;
    *collapsed = (signed char)(finite && same);
    *classes_predicted = finite ? distinct : 0;
}

DS_INLINE vec DS_NAME(ds_loss_grad)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c, DS_T *work,
                                     const uint64_t *keys)
{
    switch (pb->model) {
    case DS_QUADRATIC:
        return DS_NAME(ds_quadratic)(th, g, c);
    case DS_DOUBLE_WELL:
        return DS_NAME(ds_double_well)(th, g);
    case DS_UV:
        return DS_NAME(ds_uv)(th, g, c, pb->p);
    case DS_FORMULA:
        return DS_NAME(ds_formula)(pb, th, g, c, work);
    case DS_NETWORK:
        return DS_NAME(ds_network)(pb, th, g, c, work, keys);
    default:
        return DS_NAME(ds_relu_neuron)(pb, th, g, keys);
    }
}

/* The full-data loss L(θ) over the first eval_count samples, forward passes alone: what the outcome rules
 * judge when the gradient is a minibatch's (models with data only). */
DS_INLINE vec DS_NAME(ds_loss_full)(const ds_problem *pb, const DS_T *th, const DS_T *c, DS_T *work)
{
    switch (pb->model) {
    case DS_NETWORK:
        return DS_NAME(ds_network)(pb, th, NULL, c, work, NULL);
    default:
        return DS_NAME(ds_relu_neuron)(pb, th, NULL, NULL);
    }
}

/* classifiers: accuracy, collapse and classes predicted of lane k's network (other models leave NaN, −1, −1) */
DS_INLINE void DS_NAME(ds_evaluate)(const ds_problem *pb, const DS_T *th, const DS_T *c, ptrdiff_t k, DS_T *work,
                                    double *accuracy, signed char *collapsed, short *classes_predicted)
{
    if (pb->model == DS_NETWORK)
        DS_NAME(ds_network_evaluate)(pb, th, c, k, work, accuracy, collapsed, classes_predicted);
}

/* index of the minimum a converged trajectory reached: double-well 0 for w = −1, 1 for w = +1 */
DS_INLINE int DS_NAME(ds_attractor)(int model, DS_T w) { return model == DS_DOUBLE_WELL ? (w > 0 ? 1 : 0) : -1; }

/* ---- optimisers --------------------------------------------------------------------------------- */

/* parameters below the smallest normal number become 0: gradual underflow must not carry a parameter
 * across zero (in exact arithmetic a dead ReLU's weight decays towards 0 and never crosses it).
 * Every optimiser writes the parameters it updates through this. */
DS_INLINE vec DS_NAME(ds_flush_subnormal)(vec value)
{
    const vmask tiny = (value < (DS_T)DS_TINY) & (value > -(DS_T)DS_TINY);
    return (vec)(~tiny & (vmask)value);
}

/* The updates of descentsim.optimizers, on the trainable parameters, in the lanes of `go`; lr is this
 * step's learning rate lr·f(t), times scale (per parameter) for each parameter; hyper = (lr, own
 * knobs...); state as in ds_state_vectors. */

/* The L2 weight decay of descentsim.optimizers.l2_decayed: g + λ·θ where λ ≠ 0, g itself where λ = 0. */
DS_INLINE vec DS_NAME(ds_l2_decayed)(vec grad, vec theta, vec wd)
{
    return vselect(wd != 0, grad + wd * theta, grad);
}

/* gd: θ ← θ − lr·g;  momentum: v ← β·v + g, θ ← θ − lr·v;  nesterov: v ← β·v + g, θ ← θ − lr·(g + β·v);
 * g with its L2 weight decay (hyper column 1 for gd, 2 for momentum and nesterov) */
DS_INLINE void DS_NAME(ds_sgd_step)(const ds_problem *pb, DS_T *th, const DS_T *g, const DS_T *hyper, DS_T *state,
                                    const DS_T *scale, vec lr, vmask go)
{
    const int with_velocity = pb->optimizer != DS_GD, nesterov = pb->optimizer == DS_NESTEROV;
    const vec beta = with_velocity ? vload(hyper + DS_LANES) : lr * 0;
    const vec wd = vload(hyper + (with_velocity ? 2 : 1) * DS_LANES);
    ptrdiff_t i;
    for (i = 0; i < pb->p; i++) {
        DS_T *theta = th + i * DS_LANES;
        if (pb->trainable[i]) {
            const vec old = vload(theta), grad = DS_NAME(ds_l2_decayed)(vload(g + i * DS_LANES), old, wd);
            vec step = grad;
            if (with_velocity) {
                const vec velocity = beta * vload(state + i * DS_LANES) + grad;
                vstore(state + i * DS_LANES, vselect(go, velocity, vload(state + i * DS_LANES)));
                step = nesterov ? grad + beta * velocity : velocity;
            }
            vstore(theta, vselect(go, DS_NAME(ds_flush_subnormal)(old - (lr * vload(scale + i * DS_LANES)) * step), old));
        }
    }
}

/* adam: m ← β₁·m + (1 − β₁)·g; v ← β₂·v + (1 − β₂)·g²; c₁ ← c₁·β₁; c₂ ← c₂·β₂;
 * θ ← θ − lr·(m/(1 − c₁)) / (√(v/(1 − c₂)) + ε), g with its L2 weight decay λ (hyper column 4);
 * adamw: θ ← θ·(1 − lr·λ) first, and g without decay */
DS_INLINE void DS_NAME(ds_adam_step)(const ds_problem *pb, DS_T *th, const DS_T *g, const DS_T *hyper, DS_T *state,
                                     const DS_T *scale, vec lr, vmask go)
{
    const ptrdiff_t p = pb->p;
    const int decoupled = pb->optimizer == DS_ADAMW;
    const vec beta1 = vload(hyper + DS_LANES), beta2 = vload(hyper + 2 * DS_LANES), eps = vload(hyper + 3 * DS_LANES);
    const vec wd = vload(hyper + 4 * DS_LANES);
    DS_T *c1p = state + 2 * p * DS_LANES, *c2p = c1p + DS_LANES;
    const vec c1 = vload(c1p) * beta1, c2 = vload(c2p) * beta2;
    ptrdiff_t i;
    for (i = 0; i < p; i++) {
        DS_T *theta = th + i * DS_LANES, *mp = state + i * DS_LANES, *vp = state + (p + i) * DS_LANES;
        if (pb->trainable[i]) {
            const vec old = vload(theta), rate = lr * vload(scale + i * DS_LANES);
            const vec grad = decoupled ? vload(g + i * DS_LANES) : DS_NAME(ds_l2_decayed)(vload(g + i * DS_LANES), old, wd);
            const vec start = decoupled ? old * (1 - rate * wd) : old;
            const vec m = beta1 * vload(mp) + (1 - beta1) * grad;
            const vec v = beta2 * vload(vp) + (1 - beta2) * (grad * grad);
            const vec update = (m / (1 - c1)) / (DS_NAME(ds_sqrt)(v / (1 - c2)) + eps);
            vstore(mp, vselect(go, m, vload(mp)));
            vstore(vp, vselect(go, v, vload(vp)));
            vstore(theta, vselect(go, DS_NAME(ds_flush_subnormal)(start - rate * update), old));
        }
    }
    vstore(c1p, vselect(go, c1, vload(c1p)));
    vstore(c2p, vselect(go, c2, vload(c2p)));
}

/* rmsprop: v ← α·v + (1 − α)·g²; θ ← θ − lr·g/(√v + ε), g with its L2 weight decay (hyper column 3) */
DS_INLINE void DS_NAME(ds_rmsprop_step)(const ds_problem *pb, DS_T *th, const DS_T *g, const DS_T *hyper,
                                        DS_T *state, const DS_T *scale, vec lr, vmask go)
{
    const vec alpha = vload(hyper + DS_LANES), eps = vload(hyper + 2 * DS_LANES), wd = vload(hyper + 3 * DS_LANES);
    ptrdiff_t i;
    for (i = 0; i < pb->p; i++) {
        DS_T *theta = th + i * DS_LANES, *vp = state + i * DS_LANES;
        if (pb->trainable[i]) {
            const vec old = vload(theta), grad = DS_NAME(ds_l2_decayed)(vload(g + i * DS_LANES), old, wd);
            const vec v = alpha * vload(vp) + (1 - alpha) * (grad * grad);
            const vec step = grad / (DS_NAME(ds_sqrt)(v) + eps);
            vstore(vp, vselect(go, v, vload(vp)));
            vstore(theta, vselect(go, DS_NAME(ds_flush_subnormal)(old - (lr * vload(scale + i * DS_LANES)) * step), old));
        }
    }
}

DS_INLINE void DS_NAME(ds_optimizer_step)(const ds_problem *pb, DS_T *th, const DS_T *g, const DS_T *hyper,
                                          DS_T *state, const DS_T *scale, vec lr, vmask go)
{
    if (pb->optimizer == DS_ADAM || pb->optimizer == DS_ADAMW)
        DS_NAME(ds_adam_step)(pb, th, g, hyper, state, scale, lr, go);
    else if (pb->optimizer == DS_RMSPROP)
        DS_NAME(ds_rmsprop_step)(pb, th, g, hyper, state, scale, lr, go);
    else
        DS_NAME(ds_sgd_step)(pb, th, g, hyper, state, scale, lr, go);
}

/* ---- trajectories in lanes ---------------------------------------------------------------------- */

/* The bookkeeping of the DS_LANES trajectories in flight (double quads; see descentsim.outcome).
 * Lane k is entry k % 4 of quad k / 4. */
typedef struct {
    ptrdiff_t point[DS_LANES]; /* grid point of each lane, −1 when the lane is idle */
    dmask t[DS_QUADS];         /* step of each lane */
    dmask active[DS_QUADS];
    dmask below[DS_QUADS];     /* steps in a row up to t with L <= converge_loss, from converge_from on */
    dvec loss0[DS_QUADS], loss_sum[DS_QUADS], sum_v[DS_QUADS], sum_inv[DS_QUADS], last_sum[DS_QUADS],
        window_max[DS_QUADS], window_min[DS_QUADS];
} DS_NAME(ds_lanes);

#define LANE(field, k) (s->field[(k) / 4][(k) % 4])

/* Lane k starts point `point` (or idles, holding zeros, when point < 0). */
DS_INLINE void DS_NAME(ds_begin)(DS_NAME(ds_lanes) *s, const ds_problem *pb, ptrdiff_t k, ptrdiff_t point,
                                 DS_T *th, DS_T *c, DS_T *hyper, DS_T *state, DS_T *scale)
{
    const ptrdiff_t row = point >= 0 ? point : 0;
    const DS_T *theta0 = (const DS_T *)pb->theta0 + row * pb->p;
    const DS_T *consts = (const DS_T *)pb->consts + row * pb->n_consts;
    const DS_T *hyper0 = (const DS_T *)pb->hyper + row * pb->n_hyper;
    ptrdiff_t i;
    s->point[k] = point;
    LANE(active, k) = point >= 0 ? -1 : 0;
    LANE(t, k) = LANE(below, k) = 0;
    LANE(loss0, k) = LANE(loss_sum, k) = LANE(sum_v, k) = LANE(sum_inv, k) = LANE(last_sum, k) = 0;
    LANE(window_max, k) = -INFINITY;
    LANE(window_min, k) = INFINITY;
    for (i = 0; i < pb->p; i++)
        th[i * DS_LANES + k] = point >= 0 ? theta0[i] : 0;
    for (i = 0; i < pb->n_consts; i++)
        c[i * DS_LANES + k] = point >= 0 ? consts[i] : 0;
    for (i = 0; i < pb->n_hyper; i++)
        hyper[i * DS_LANES + k] = point >= 0 ? hyper0[i] : 0;
    for (i = 0; i < pb->p; i++)
        scale[i * DS_LANES + k] = pb->lr_scale == NULL ? 1 : ((const DS_T *)pb->lr_scale)[row * pb->p + i];
    for (i = 0; i < ds_state_vectors(pb->optimizer, pb->p); i++)
        state[i * DS_LANES + k] = 0;
    if (pb->optimizer == DS_ADAM || pb->optimizer == DS_ADAMW) /* the bias-correction products start at 1 */
        state[2 * pb->p * DS_LANES + k] = state[(2 * pb->p + 1) * DS_LANES + k] = 1;
}

/* CYCLING, STUCK or UNRESOLVED for lane k once its budget is spent: the smallest lag that repeats θ,
 * else a plateau, else unresolved. history[(lag·p + i)·DS_LANES + k] = θ_i at step steps − lag. */
DS_INLINE void DS_NAME(ds_classify_end)(const DS_NAME(ds_lanes) *s, const ds_problem *pb,
                                        const ds_rules *rules, ptrdiff_t k, const DS_T *th,
                                        const DS_T *history, unsigned char *outcome, int *period)
{
    const ptrdiff_t p = pb->p;
    double biggest = 0, gap, v, tol;
    ptrdiff_t i, lag;
    *period = 0;
    for (i = 0; i < p; i++)
        biggest = fabs(th[i * DS_LANES + k]) > biggest ? fabs(th[i * DS_LANES + k]) : biggest;
    tol = rules->cycle_tol * (1 + biggest);
    for (lag = 1; lag <= rules->k_max; lag++) {
        gap = 0;
        for (i = 0; i < p; i++) {
            v = fabs((double)th[i * DS_LANES + k] - (double)history[(lag * p + i) * DS_LANES + k]);
            gap = v > gap ? v : gap;
        }
        if (gap <= tol) {
            *period = (int)lag;
            break;
        }
    }
    if (*period >= 2) {
        *outcome = DS_CYCLING;
        return;
    }
    *period = 0;
    *outcome = LANE(window_max, k) - LANE(window_min, k) <= rules->stuck_tol * LANE(window_max, k)
                   ? DS_STUCK
                   : DS_UNRESOLVED;
}

/* Write the fields of lane k, decided at step T = t with loss L_T; the score holds v_T for the steps
 * T..steps−1 it did not run. */
DS_INLINE void DS_NAME(ds_finish)(const DS_NAME(ds_lanes) *s, const ds_rules *rules, ptrdiff_t k, double loss,
                                  double batch_loss, unsigned char outcome, int period, int attractor,
                                  double accuracy, signed char collapsed, short classes_predicted,
                                  const ds_outputs *out)
{
    const ptrdiff_t t = LANE(t, k), steps = rules->steps, i = s->point[k];
    const double loss0 = LANE(loss0, k);
    const double final_v = ds_clip_ratio(loss0 == 0 ? 0.0 : loss / loss0);
    const double held = (double)(steps - t);
    const double held_last = (double)(steps - (t > rules->last_start ? t : rules->last_start));
    const double total = LANE(sum_v, k) + held * final_v;
    const double last_mean = (LANE(last_sum, k) + held_last * final_v) /
                             (double)(steps > rules->last_start ? steps - rules->last_start : 1);
    if (steps > 0 && last_mean < 1)
        out->score[i] = -total;
    else
        out->score[i] = LANE(sum_inv, k) + held / (final_v > 1 / DS_SCORE_CLIP ? final_v : 1 / DS_SCORE_CLIP);
    out->outcome[i] = outcome;
    out->steps[i] = (int)t;
    out->final_loss[i] = loss;
    out->loss_sum[i] = LANE(loss_sum, k);
    out->period[i] = period;
    out->attractor[i] = attractor;
    out->accuracy[i] = accuracy;
    out->collapsed[i] = collapsed;
    out->batch_loss[i] = batch_loss;
    out->classes_predicted[i] = classes_predicted;
}

/* The recorded curves of the lanes in flight at their step t (before update t): L_t, θ_t, and the accuracy
 * at multiples of the stride (ds_outputs). */
DS_INLINE void DS_NAME(ds_record)(const DS_NAME(ds_lanes) *s, const ds_problem *pb, const ds_rules *rules,
                                  const DS_T *th, const DS_T *c, const dvec *losses, DS_T *work, const ds_outputs *out)
{
    const ptrdiff_t p = pb->p, length = rules->steps + 1, marks = rules->steps / out->stride + 1;
    ptrdiff_t k, i;
    for (k = 0; k < DS_LANES; k++) {
        const ptrdiff_t row = s->point[k], t = (ptrdiff_t)LANE(t, k);
        if (row < 0)
            continue;
        out->loss_path[row * length + t] = losses[k / 4][k % 4];
        for (i = 0; out->theta_path != NULL && i < p; i++)
            out->theta_path[(row * length + t) * p + i] = th[i * DS_LANES + k];
        if (out->accuracy_path != NULL && t % out->stride == 0) {
            double accuracy = NAN;
            signed char collapsed = -1;
            short classes = -1;
            DS_NAME(ds_evaluate)(pb, th, c, k, work, &accuracy, &collapsed, &classes);
            out->accuracy_path[row * marks + t / out->stride] = accuracy;
        }
    }
}

/* Train points first..last−1 and classify them (descentsim.outcome has the rules), DS_LANES at a time.
 * work: ds_work_vectors(...) vectors of DS_LANES values. */
DS_CLONES static void DS_NAME(ds_train_points)(const ds_problem *pb, const ds_rules *rules, ptrdiff_t first,
                                               ptrdiff_t last, DS_T *work, const ds_outputs *out)
{
    const ptrdiff_t p = pb->p, steps = rules->steps;
    DS_T *th = work, *g = th + p * DS_LANES, *c = g + p * DS_LANES, *hyper = c + pb->n_consts * DS_LANES,
         *scale = hyper + pb->n_hyper * DS_LANES, *state = scale + p * DS_LANES,
         *work_model = state + ds_state_vectors(pb->optimizer, p) * DS_LANES,
         *history = work_model + ds_model_vectors(pb->model, p, pb->data_rows) * DS_LANES;
    DS_NAME(ds_lanes) lanes, *s = &lanes;
    ptrdiff_t next = first, k, i, q;
    const dvec dzero = {0};
    int running = 0;

    for (k = 0; k < DS_LANES; k++) {
        DS_NAME(ds_begin)(s, pb, k, next < last ? next : -1, th, c, hyper, state, scale);
        running += next < last;
        next += next < last;
    }
    while (running > 0) {
        uint64_t keys[DS_LANES];
        if (pb->batch_size > 0) /* this step's minibatch key of each lane */
            for (k = 0; k < DS_LANES; k++) {
                const ptrdiff_t row = s->point[k] >= 0 ? s->point[k] : 0;
                const uint64_t point = pb->batch_per_point ? (uint64_t)pb->point_id[row] : 0;
                keys[k] = pb->batch_sequential ? (uint64_t)LANE(t, k) * (uint64_t)pb->batch_size
                                               : ds_batch_key(pb->batch_seed, (uint64_t)LANE(t, k), point);
            }
        /* the gradient's loss (a minibatch's), and the full-data loss L_t that the rules judge */
        const vec batch_lanes = DS_NAME(ds_loss_grad)(pb, th, g, c, work_model, keys);
        const vec loss_lanes = pb->batch_size > 0 ? DS_NAME(ds_loss_full)(pb, th, c, work_model) : batch_lanes;
        DS_NAME(ds_qmask) go_quads[DS_QUADS];
        dmask diverged[DS_QUADS], converged[DS_QUADS], decided[DS_QUADS], going[DS_QUADS];
        dvec losses[DS_QUADS], batch_losses[DS_QUADS];
        vmask go;
        int any_decided = 0;
        for (q = 0; q < DS_QUADS; q++) {
            DS_NAME(ds_qvec) quad;
            dmask live, end, go_q, window, under;
            dvec loss, ratio, v;
            memcpy(&quad, (const DS_T *)&batch_lanes + 4 * q, sizeof quad);
            batch_losses[q] = __builtin_convertvector(quad, dvec);
            memcpy(&quad, (const DS_T *)&loss_lanes + 4 * q, sizeof quad);
            loss = losses[q] = __builtin_convertvector(quad, dvec);
            s->loss0[q] = dselect(s->t[q] == 0, loss, s->loss0[q]);
            diverged[q] = s->active[q] & (((loss - loss) != 0) | ((loss > rules->diverge_factor * s->loss0[q]) &
                                                                  (s->t[q] >= rules->diverge_from)));
            under = (loss <= rules->converge_loss) & (s->t[q] >= rules->converge_from);
            s->below[q] = (s->below[q] - under) & under; /* one more where under (a mask is −1), else 0 */
            converged[q] = s->active[q] & ~diverged[q] & (s->below[q] >= rules->converge_window);
            live = s->active[q] & ~diverged[q] & ~converged[q];
            window = live & (s->t[q] >= rules->window_start);
            s->window_max[q] = dselect(window & (loss > s->window_max[q]), loss, s->window_max[q]);
            s->window_min[q] = dselect(window & (loss < s->window_min[q]), loss, s->window_min[q]);
            if (DS_NAME(ds_any)(live & (s->t[q] >= steps - rules->k_max)))
                for (k = 4 * q; k < 4 * q + 4; k++)
                    if (live[k % 4] && LANE(t, k) >= steps - rules->k_max)
                        for (i = 0; i < p; i++)
                            history[((steps - LANE(t, k)) * p + i) * DS_LANES + k] = th[i * DS_LANES + k];
            end = live & (s->t[q] == steps);
            go_q = live & ~end;
            decided[q] = diverged[q] | converged[q] | end;
            any_decided |= DS_NAME(ds_any)(decided[q]);

            ratio = dselect(s->loss0[q] == 0, dzero, loss / s->loss0[q]); /* 0 where L_0 = 0, for both sums */
            v = dselect(((ratio - ratio) != 0) | (ratio > DS_SCORE_CLIP), dzero + DS_SCORE_CLIP, ratio);
            s->loss_sum[q] = dselect(go_q, s->loss_sum[q] + ratio, s->loss_sum[q]);
            s->sum_v[q] = dselect(go_q, s->sum_v[q] + v, s->sum_v[q]);
            s->sum_inv[q] = dselect(go_q, s->sum_inv[q] + 1 / dselect(v > 1 / DS_SCORE_CLIP, v, dzero + 1 / DS_SCORE_CLIP),
                                    s->sum_inv[q]);
            s->last_sum[q] = dselect(go_q & (s->t[q] >= rules->last_start), s->last_sum[q] + v, s->last_sum[q]);
            going[q] = go_q;
            go_quads[q] = __builtin_convertvector(go_q, DS_NAME(ds_qmask));
        }
        memcpy(&go, go_quads, sizeof go);
        if (out->loss_path != NULL)
            DS_NAME(ds_record)(s, pb, rules, th, c, losses, work_model, out);
        {
            vec lr = vload(hyper);
            if (pb->lr_factors != NULL) /* lanes are at different steps: lr·f(t) lane by lane */
                for (k = 0; k < DS_LANES; k++)
                    lr[k] = lr[k] * (DS_T)pb->lr_factors[LANE(t, k) < steps ? LANE(t, k) : 0]; /* t = steps: no update */
            DS_NAME(ds_optimizer_step)(pb, th, g, hyper, state, scale, lr, go);
            if (pb->model == DS_NETWORK)
                DS_NAME(ds_network_drift)(pb, th, c, go);
        }
        for (q = 0; q < DS_QUADS; q++)
            s->t[q] = s->t[q] - going[q]; /* −1 where the lane went on */

        if (!any_decided)
            continue;
        for (k = 0; k < DS_LANES; k++) {
            unsigned char outcome = DS_UNRESOLVED;
            int period = 0, attractor = -1;
            double accuracy = NAN;
            signed char collapsed = -1;
            short classes_predicted = -1;
            if (!decided[k / 4][k % 4])
                continue;
            if (diverged[k / 4][k % 4]) {
                outcome = DS_DIVERGED;
            } else if (converged[k / 4][k % 4]) {
                outcome = DS_CONVERGED;
                attractor = DS_NAME(ds_attractor)(pb->model, th[k]);
            } else {
                DS_NAME(ds_classify_end)(s, pb, rules, k, th, history, &outcome, &period);
            }
            DS_NAME(ds_evaluate)(pb, th, c, k, work_model, &accuracy, &collapsed, &classes_predicted);
            DS_NAME(ds_finish)(s, rules, k, losses[k / 4][k % 4], batch_losses[k / 4][k % 4], outcome, period,
                               attractor, accuracy, collapsed, classes_predicted, out);
            if (next < last) {
                DS_NAME(ds_begin)(s, pb, k, next++, th, c, hyper, state, scale);
            } else {
                DS_NAME(ds_begin)(s, pb, k, -1, th, c, hyper, state, scale);
                running--;
            }
        }
    }
}

#undef LANE
#undef vload
#undef vstore
#undef vselect
#undef dselect
#undef vec
#undef vmask
#undef dvec
#undef dmask
#undef DS_QUADS
#undef DS_ROUND_MAGIC
#undef DS_LANES
#undef DS_T
#undef DS_MASK_T
#undef DS_NAME
#undef DS_TINY
#undef DS_SQRT
#undef DS_EXPONENT_BIAS
#undef DS_MANTISSA_BITS
#undef DS_EXP_LOW
#undef DS_EXP_HIGH
#undef DS_PIO2_1
#undef DS_PIO2_2
#undef DS_PIO2_3
#undef DS_SIN_COS_MAX
