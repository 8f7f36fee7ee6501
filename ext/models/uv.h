/* The uv model (per precision: included by trajectory.h, see precision.h; no include guard) */

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
