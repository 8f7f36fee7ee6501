/* One trajectory in precision DS_T: included by kernels.h once per precision (no include guard).
 * DS_NAME(f) names this precision's copy of f; DS_MASK_T is the integer type as wide as DS_T.
 */

#define DS_LANES DS_LANES_OF(DS_T)
typedef DS_T DS_NAME(ds_vec) __attribute__((vector_size(32)));
typedef DS_MASK_T DS_NAME(ds_mask) __attribute__((vector_size(32)));

/* the lanes' partial sums combined pairwise, e.g. ((s0 + s1) + (s2 + s3)) for four lanes */
DS_INLINE DS_T DS_NAME(ds_lane_total)(DS_NAME(ds_vec) v)
{
    DS_T s[DS_LANES];
    ptrdiff_t width, i;
    memcpy(s, &v, sizeof v);
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
    if (full < samples) { /* the last samples % DS_LANES samples, one by one into their lanes */
        vec *sums[5] = {&loss, &gw, &gb, &ga, &gc};
        DS_T lanes[5][DS_LANES];
        for (k = 0; k < 5; k++)
            memcpy(lanes[k], sums[k], sizeof(vec));
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
        for (k = 0; k < 5; k++)
            memcpy(sums[k], lanes[k], sizeof(vec));
    }
    g[0] = DS_NAME(ds_lane_total)(gw) / n;
    if (w_only) {
        g[1] = g[2] = g[3] = 0; /* never used: only w moves */
    } else {
        g[1] = DS_NAME(ds_lane_total)(gb) / n;
        g[2] = DS_NAME(ds_lane_total)(ga) / n;
        g[3] = DS_NAME(ds_lane_total)(gc) / n;
    }
    return (DS_T)0.5 * (DS_NAME(ds_lane_total)(loss) / n);
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

/* parameters below the smallest normal number become 0: gradual underflow must not carry a parameter
 * across zero (in exact arithmetic a dead ReLU's weight decays towards 0 and never crosses it).
 * Every optimiser writes the parameters it updates through this. */
DS_INLINE DS_T DS_NAME(ds_flush_subnormal)(DS_T value)
{
    return fabs(value) < DS_TINY ? (DS_T)0 : value;
}

/* gd: θ ← θ − lr·∇L on the trainable parameters (hyper = (lr)) */
DS_INLINE void DS_NAME(ds_optimizer_step)(int optimizer, DS_T *th, const DS_T *g, const DS_T *hyper,
                                          const unsigned char *trainable, ptrdiff_t p)
{
    const DS_T lr = hyper[0];
    ptrdiff_t i;
    (void)optimizer;
    for (i = 0; i < p; i++)
        if (trainable[i])
            th[i] = DS_NAME(ds_flush_subnormal)(th[i] - lr * g[i]);
}

/* ---- trajectories ------------------------------------------------------------------------------- */

/* The state of one trajectory between steps. th, g: p values each; history: (k_max + 1)·p values,
 * history[steps − t] = θ_t for the last k_max + 1 steps. */
typedef struct {
    ptrdiff_t point, t;
    double loss, loss0, loss_sum, sum_v, sum_inv, last_sum, window_max, window_min;
    const DS_T *c, *hyper;
    DS_T *th, *g, *history;
    ds_result res;
} DS_NAME(ds_state);

DS_INLINE void DS_NAME(ds_begin)(DS_NAME(ds_state) *s, const ds_problem *pb, ptrdiff_t point)
{
    const DS_T *theta0 = (const DS_T *)pb->theta0;
    s->point = point;
    s->t = 0;
    s->loss = s->loss0 = s->loss_sum = s->sum_v = s->sum_inv = s->last_sum = 0;
    s->window_max = -INFINITY;
    s->window_min = INFINITY;
    s->c = (const DS_T *)pb->consts + point * pb->n_consts;
    s->hyper = (const DS_T *)pb->hyper + point * pb->n_hyper;
    s->res.outcome = DS_UNRESOLVED;
    s->res.period = 0;
    s->res.attractor = -1;
    memcpy(s->th, theta0 + point * pb->p, pb->p * sizeof(DS_T));
}

/* CYCLING, STUCK or UNRESOLVED once the budget is spent: the smallest lag that repeats θ, else a
 * plateau, else unresolved */
DS_INLINE void DS_NAME(ds_classify_end)(DS_NAME(ds_state) *s, const ds_problem *pb, const ds_rules *rules)
{
    const ptrdiff_t p = pb->p;
    double biggest = 0, gap, v, tol;
    ptrdiff_t i, lag;
    for (i = 0; i < p; i++)
        biggest = fabs(s->th[i]) > biggest ? fabs(s->th[i]) : biggest;
    tol = rules->cycle_tol * (1 + biggest);
    for (lag = 1; lag <= rules->k_max; lag++) {
        gap = 0;
        for (i = 0; i < p; i++) {
            v = fabs((double)s->th[i] - (double)s->history[lag * p + i]);
            gap = v > gap ? v : gap;
        }
        if (gap <= tol) {
            s->res.period = (int)lag;
            break;
        }
    }
    if (s->res.period >= 2) {
        s->res.outcome = DS_CYCLING;
    } else {
        s->res.period = 0;
        if (s->window_max - s->window_min <= rules->stuck_tol * s->window_max)
            s->res.outcome = DS_STUCK;
    }
}

/* Evaluate L_t, apply the rules, and update θ; returns 1 once the outcome is decided (at t = T). */
DS_INLINE int DS_NAME(ds_advance)(DS_NAME(ds_state) *s, const ds_problem *pb, const ds_rules *rules)
{
    const ptrdiff_t t = s->t, steps = rules->steps, p = pb->p;
    double loss, ratio, v;
    loss = (double)DS_NAME(ds_loss_grad)(pb->model, s->th, s->g, s->c, (const DS_T *)pb->data, p,
                                         pb->samples, pb->w_only);
    s->loss = loss;
    if (t == 0)
        s->loss0 = loss;
    if (!isfinite(loss) || loss > rules->diverge_factor * s->loss0) {
        s->res.outcome = DS_DIVERGED;
        return 1;
    }
    if (loss <= rules->converge_loss) {
        s->res.outcome = DS_CONVERGED;
        s->res.attractor = DS_NAME(ds_attractor)(pb->model, s->th);
        return 1;
    }
    if (t >= rules->window_start) {
        s->window_max = loss > s->window_max ? loss : s->window_max;
        s->window_min = loss < s->window_min ? loss : s->window_min;
    }
    if (t >= steps - rules->k_max)
        memcpy(s->history + (steps - t) * p, s->th, p * sizeof(DS_T));
    if (t == steps) {
        DS_NAME(ds_classify_end)(s, pb, rules);
        return 1;
    }
    ratio = loss / s->loss0;
    v = ds_clip_ratio(ratio);
    s->loss_sum = s->loss_sum + ratio;
    s->sum_v = s->sum_v + v;
    s->sum_inv = s->sum_inv + 1 / (v > 1 / DS_SCORE_CLIP ? v : 1 / DS_SCORE_CLIP);
    if (t >= rules->last_start)
        s->last_sum = s->last_sum + v;
    DS_NAME(ds_optimizer_step)(pb->optimizer, s->th, s->g, s->hyper, pb->trainable, p);
    s->t = t + 1;
    return 0;
}

/* The fields of a decided trajectory; the score holds v_T for the steps T..steps−1 it did not run. */
DS_INLINE void DS_NAME(ds_finish)(DS_NAME(ds_state) *s, const ds_rules *rules, const ds_outputs *out)
{
    const ptrdiff_t t = s->t, steps = rules->steps, i = s->point;
    const double final_v = ds_clip_ratio(s->loss0 > 0 ? s->loss / s->loss0 : 0.0);
    const double held = (double)(steps - t);
    const double held_last = (double)(steps - (t > rules->last_start ? t : rules->last_start));
    const double total = s->sum_v + held * final_v;
    const double last_mean = (s->last_sum + held_last * final_v) /
                             (double)(steps > rules->last_start ? steps - rules->last_start : 1);
    if (steps > 0 && last_mean < 1)
        out->score[i] = -total;
    else
        out->score[i] = s->sum_inv + held / (final_v > 1 / DS_SCORE_CLIP ? final_v : 1 / DS_SCORE_CLIP);
    out->outcome[i] = s->res.outcome;
    out->steps[i] = (int)t;
    out->final_loss[i] = s->loss;
    out->loss_sum[i] = s->loss_sum;
    out->period[i] = s->res.period;
    out->attractor[i] = s->res.attractor;
}

/* Train points first..last−1 and classify them (descentsim.outcome has the rules), DS_SLOTS at a time:
 * the slots' steps are independent dependency chains that the processor overlaps, and a slot whose
 * trajectory is decided takes the next point. work: DS_SLOTS·(k_max + 3)·p scratch values. */
DS_CLONES static void DS_NAME(ds_train_points)(const ds_problem *pb, const ds_rules *rules,
                                               ptrdiff_t first, ptrdiff_t last, DS_T *work,
                                               const ds_outputs *out)
{
    DS_NAME(ds_state) slots[DS_SLOTS];
    const ptrdiff_t stride = (rules->k_max + 3) * pb->p;
    ptrdiff_t next = first, k, running = 0;
    for (k = 0; k < DS_SLOTS; k++) {
        slots[k].th = work + k * stride;
        slots[k].g = slots[k].th + pb->p;
        slots[k].history = slots[k].g + pb->p;
        slots[k].point = -1;
        if (next < last) {
            DS_NAME(ds_begin)(&slots[k], pb, next++);
            running++;
        }
    }
    while (running > 0) {
        for (k = 0; k < DS_SLOTS; k++) {
            if (slots[k].point < 0 || !DS_NAME(ds_advance)(&slots[k], pb, rules))
                continue;
            DS_NAME(ds_finish)(&slots[k], rules, out);
            if (next < last) {
                DS_NAME(ds_begin)(&slots[k], pb, next++);
            } else {
                slots[k].point = -1;
                running--;
            }
        }
    }
}
