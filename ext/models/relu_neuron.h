/* The relu neuron (per precision: included by trajectory.h, see precision.h; no include guard) */

/* relu-neuron: ŷ = a·relu(w·x + b) + c, e = ŷ − y, L = ½·mean(e²), relu'(0) = 0;
 * ∇ = mean of (e·a·[z>0]·x, e·a·[z>0], e·relu(z), e), summed in sample order; with w_only only L and
 * ∂L/∂w are formed (the other parameters do not move). With minibatches (keys: each lane's key of
 * this step) the samples are ds_batch_index(key, j), j < batch_size, gathered lane by lane.
 * keys = NULL: the full-data loss over the first eval_count samples; g = NULL: the loss alone. */
DS_INLINE vec DS_NAME(ds_relu_neuron)(const ds_problem *pb, const DS_T *th, DS_T *g, const uint64_t *keys)
{
    const DS_T *x = (const DS_T *)pb->data, *y = x + pb->samples;
    const ptrdiff_t batch_size = keys != NULL ? pb->batch_size : 0;
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
