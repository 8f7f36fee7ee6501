/* The quadratic and the double-well, the scalar losses (per precision: included by trajectory.h, see precision.h; no include guard) */

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

