/* One trajectory in precision DS_T: included by kernels.h once per precision (no include guard).
 * DS_NAME(f) names this precision's copy of f; DS_MASK_T is the integer type as wide as DS_T.
 */

#define DS_LANES DS_LANES_OF(DS_T)
typedef DS_T DS_NAME(ds_vec) __attribute__((vector_size(32)));
typedef DS_MASK_T DS_NAME(ds_mask) __attribute__((vector_size(32)));

/* the lanes' partial sums combined pairwise, e.g. ((s0 + s1) + (s2 + s3)) for four lanes */
DS_INLINE DS_T DS_NAME(ds_lane_total)(DS_T *s)
{
    ptrdiff_t width, i;
    for (width = DS_LANES / 2; width >= 1; width /= 2)
        for (i = 0; i < width; i++)
            s[i] = s[2 * i] + s[2 * i + 1];
    return s[0];
}

/* ---- models: return L(θ), write ∇L(θ) into g ---------------------------------------------------- */

/* quadratic: L = ½·a·w², ∇L = a·w */
DS_INLINE DS_T DS_NAME(ds_quadratic)(const DS_T *th, DS_T *g, const DS_T *c)
{
    const DS_T w = th[0], a = c[0];
    g[0] = a * w;
    return (DS_T)0.5 * a * w * w;
}

/* double-well: L = ¼·(w² − 1)², ∇L = w·(w² − 1) */
DS_INLINE DS_T DS_NAME(ds_double_well)(const DS_T *th, DS_T *g)
{
    const DS_T w = th[0];
    const DS_T q = w * w - 1;
    g[0] = w * q;
    return (DS_T)0.25 * q * q;
}

/* uv: f = vᵀu/√m, L = ½·(f − target)², ∇u = (f − target)·v/√m, ∇v = (f − target)·u/√m;
 * θ = (u, v), c = (target, 1/√m); the dot product is summed in index order */
DS_INLINE DS_T DS_NAME(ds_uv)(const DS_T *th, DS_T *g, const DS_T *c, ptrdiff_t p)
{
    const ptrdiff_t m = p / 2;
    DS_T dot = 0, r, s;
    ptrdiff_t i;
    for (i = 0; i < m; i++)
        dot = dot + th[i] * th[m + i];
    r = dot * c[1] - c[0];
    s = r * c[1];
    for (i = 0; i < m; i++) {
        g[i] = s * th[m + i];
        g[m + i] = s * th[i];
    }
    return (DS_T)0.5 * r * r;
}

/* relu-neuron: ŷ = a·relu(w·x + b) + c, e = ŷ − y, L = ½·mean(e²), relu'(0) = 0;
 * ∇ = mean of (e·a·[z>0]·x, e·a·[z>0], e·relu(z), e). Sample i is summed into lane i mod DS_LANES
 * (one SIMD vector of partial sums: masks, no branches); with w_only only L and ∂L/∂w are formed. */
DS_INLINE DS_T DS_NAME(ds_relu_neuron)(const DS_T *th, DS_T *g, const DS_T *x, const DS_T *y,
                                           ptrdiff_t samples, int w_only)
{
    typedef DS_NAME(ds_vec) vec;
    typedef DS_NAME(ds_mask) mask;
    const DS_T w = th[0], b = th[1], a = th[2], c = th[3], n = (DS_T)samples;
    const vec zero = {0}, wv = zero + w, bv = zero + b, av = zero + a, cv = zero + c;
    vec loss = zero, gw = zero, gb = zero, ga = zero, gc = zero, xv, yv;
    DS_T lanes[5][DS_LANES];
    const ptrdiff_t full = samples - samples % DS_LANES;
    ptrdiff_t i, k;

#define DS_RELU_TERMS                                                                                  \
    memcpy(&xv, x + i, sizeof xv);                                                                     \
    memcpy(&yv, y + i, sizeof yv);                                                                     \
    const vec z = wv * xv + bv;                                                                        \
    const mask active = z > zero;                                                                      \
    const vec h = (vec)((mask)z & active);                                                             \
    const vec e = av * h + cv - yv;                                                                    \
    const vec ea = (vec)((mask)(e * av) & active);                                                     \
    loss = loss + e * e;                                                                               \
    gw = gw + ea * xv;
    if (w_only) {
        for (i = 0; i < full; i += DS_LANES) {
            DS_RELU_TERMS
        }
    } else {
        for (i = 0; i < full; i += DS_LANES) {
            DS_RELU_TERMS
            gb = gb + ea;
            ga = ga + e * h;
            gc = gc + e;
        }
    }
#undef DS_RELU_TERMS
    memcpy(lanes[0], &loss, sizeof loss);
    memcpy(lanes[1], &gw, sizeof gw);
    memcpy(lanes[2], &gb, sizeof gb);
    memcpy(lanes[3], &ga, sizeof ga);
    memcpy(lanes[4], &gc, sizeof gc);
    for (i = full; i < samples; i++) {
        const DS_T z = w * x[i] + b;
        const DS_T h = z > 0 ? z : (DS_T)0;
        const DS_T e = a * h + c - y[i];
        const DS_T ea = z > 0 ? e * a : (DS_T)0;
        k = i % DS_LANES;
        lanes[0][k] = lanes[0][k] + e * e;
        lanes[1][k] = lanes[1][k] + ea * x[i];
        lanes[2][k] = lanes[2][k] + ea;
        lanes[3][k] = lanes[3][k] + e * h;
        lanes[4][k] = lanes[4][k] + e;
    }
    g[0] = DS_NAME(ds_lane_total)(lanes[1]) / n;
    if (w_only) {
        g[1] = g[2] = g[3] = 0; /* never used: only w moves */
    } else {
        g[1] = DS_NAME(ds_lane_total)(lanes[2]) / n;
        g[2] = DS_NAME(ds_lane_total)(lanes[3]) / n;
        g[3] = DS_NAME(ds_lane_total)(lanes[4]) / n;
    }
    return (DS_T)0.5 * (DS_NAME(ds_lane_total)(lanes[0]) / n);
}

DS_INLINE DS_T DS_NAME(ds_loss_grad)(int model, const DS_T *th, DS_T *g, const DS_T *c,
                                         const DS_T *data, ptrdiff_t p, ptrdiff_t samples, int w_only)
{
    switch (model) {
    case DS_QUADRATIC:
        return DS_NAME(ds_quadratic)(th, g, c);
    case DS_DOUBLE_WELL:
        return DS_NAME(ds_double_well)(th, g);
    case DS_UV:
        return DS_NAME(ds_uv)(th, g, c, p);
    default:
        return DS_NAME(ds_relu_neuron)(th, g, data, data + samples, samples, w_only);
    }
}

/* index of the minimum a converged trajectory reached: double-well 0 for w = −1, 1 for w = +1 */
DS_INLINE int DS_NAME(ds_attractor)(int model, const DS_T *th)
{
    return model == DS_DOUBLE_WELL ? (th[0] > 0 ? 1 : 0) : -1;
}

/* ---- optimisers --------------------------------------------------------------------------------- */

/* gd: θ ← θ − lr·∇L on the trainable parameters (hyper = (lr)) */
DS_INLINE void DS_NAME(ds_optimizer_step)(int optimizer, DS_T *th, const DS_T *g, const DS_T *hyper,
                                              const unsigned char *trainable, ptrdiff_t p)
{
    const DS_T lr = hyper[0];
    ptrdiff_t i;
    (void)optimizer;
    for (i = 0; i < p; i++)
        if (trainable[i])
            th[i] = th[i] - lr * g[i];
}

/* parameters below the smallest normal number become 0: gradual underflow must not carry a parameter
 * across zero (in exact arithmetic a dead ReLU's weight decays towards 0 and never crosses it) */
DS_INLINE void DS_NAME(ds_flush_subnormal)(DS_T *th, ptrdiff_t p)
{
    ptrdiff_t i;
    for (i = 0; i < p; i++)
        if (fabs(th[i]) < DS_TINY)
            th[i] = 0;
}

/* ---- one trajectory ----------------------------------------------------------------------------- */

/* Train from theta0 for up to rules->steps updates and classify (descentsim.outcome has the rules).
 * th, g: p scratch values each; history: (k_max + 1)·p, history[steps − t] = θ_t for the last steps. */
DS_CLONES static ds_result DS_NAME(ds_train_one)(int model, int optimizer, ptrdiff_t p, ptrdiff_t samples,
                                                 int w_only, const DS_T *theta0, const DS_T *c,
                                                 const DS_T *data, const DS_T *hyper,
                                                 const unsigned char *trainable, const ds_rules *rules,
                                                 DS_T *th, DS_T *g, DS_T *history)
{
    ds_result res;
    const ptrdiff_t steps = rules->steps;
    ptrdiff_t t, i, lag;
    double loss = 0, loss0 = 0, ratio, v, final_v, gap, tol, biggest;
    double loss_sum = 0, sum_v = 0, sum_inv = 0, last_sum = 0;
    double window_max = -INFINITY, window_min = INFINITY;
    double held, held_last, total, last_mean;

    res.outcome = DS_UNRESOLVED;
    res.period = 0;
    res.attractor = -1;
    memcpy(th, theta0, p * sizeof(DS_T));

    for (t = 0;; t++) {
        loss = (double)DS_NAME(ds_loss_grad)(model, th, g, c, data, p, samples, w_only);
        if (t == 0)
            loss0 = loss;
        if (!isfinite(loss) || loss > rules->diverge_factor * loss0) {
            res.outcome = DS_DIVERGED;
            break;
        }
        if (loss <= rules->converge_loss) {
            res.outcome = DS_CONVERGED;
            res.attractor = DS_NAME(ds_attractor)(model, th);
            break;
        }
        if (t >= rules->window_start) {
            window_max = loss > window_max ? loss : window_max;
            window_min = loss < window_min ? loss : window_min;
        }
        if (t >= steps - rules->k_max)
            memcpy(history + (steps - t) * p, th, p * sizeof(DS_T));
        if (t == steps) {
            /* budget spent: the smallest lag that repeats θ, else a plateau, else unresolved */
            biggest = 0;
            for (i = 0; i < p; i++)
                biggest = fabs(th[i]) > biggest ? fabs(th[i]) : biggest;
            tol = rules->cycle_tol * (1 + biggest);
            for (lag = 1; lag <= rules->k_max; lag++) {
                gap = 0;
                for (i = 0; i < p; i++) {
                    v = fabs((double)th[i] - (double)history[lag * p + i]);
                    gap = v > gap ? v : gap;
                }
                if (gap <= tol) {
                    res.period = (int)lag;
                    break;
                }
            }
            if (res.period >= 2) {
                res.outcome = DS_CYCLING;
            } else {
                res.period = 0;
                if (window_max - window_min <= rules->stuck_tol * window_max)
                    res.outcome = DS_STUCK;
            }
            break;
        }
        ratio = loss / loss0;
        v = ds_clip_ratio(ratio);
        loss_sum = loss_sum + ratio;
        sum_v = sum_v + v;
        sum_inv = sum_inv + 1 / (v > 1 / DS_SCORE_CLIP ? v : 1 / DS_SCORE_CLIP);
        if (t >= rules->last_start)
            last_sum = last_sum + v;
        DS_NAME(ds_optimizer_step)(optimizer, th, g, hyper, trainable, p);
        DS_NAME(ds_flush_subnormal)(th, p);
    }

    /* t is the deciding step T; the score holds v_T for the steps T..steps−1 it did not run */
    final_v = ds_clip_ratio(loss0 > 0 ? loss / loss0 : 0.0);
    held = (double)(steps - t);
    held_last = (double)(steps - (t > rules->last_start ? t : rules->last_start));
    total = sum_v + held * final_v;
    last_mean = (last_sum + held_last * final_v) /
                (double)(steps > rules->last_start ? steps - rules->last_start : 1);
    if (steps > 0 && last_mean < 1)
        res.score = -total;
    else
        res.score = sum_inv + held / (final_v > 1 / DS_SCORE_CLIP ? final_v : 1 / DS_SCORE_CLIP);
    res.steps = (int)t;
    res.final_loss = loss;
    res.loss_sum = loss_sum;
    return res;
}

#undef DS_LANES
