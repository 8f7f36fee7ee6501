#ifndef DS_OPTIMIZERS_COMMON
#define DS_OPTIMIZERS_COMMON
/* Optimiser state per trajectory, in vectors of lanes: momentum and nesterov a velocity per parameter;
 * rmsprop the mean square v per parameter; adam and adamw the moments m and v per parameter, then the
 * bias-correction products c1 and c2. */
DS_INLINE ptrdiff_t ds_state_vectors(int optimizer, ptrdiff_t p)
{
    switch (optimizer) {
    case DS_MOMENTUM:
    case DS_NESTEROV:
    case DS_RMSPROP:
        return p;
    case DS_ADAM:
    case DS_ADAMW:
        return 2 * p + 2;
    default:
        return 0;
    }
}
#endif

/* ---- optimisers --------------------------------------------------------------------------------- */

/* parameters below the smallest normal number become 0: gradual underflow must not carry a parameter
 * across zero (in exact arithmetic a dead ReLU's weight decays towards 0 and never crosses it).
 * Every optimiser writes the parameters it updates through this. */
DS_INLINE vec DS_NAME(ds_flush_subnormal)(vec value)
{
    /* |value| below DS_TINY: one comparison (two and their masks' and cost 5 % of the SD map's time, measured) */
    const vec zero = {0};
    return vselect(DS_NAME(ds_abs)(value) < (DS_T)DS_TINY, zero, value);
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
