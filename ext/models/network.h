#ifndef DS_NETWORK_COMMON
#define DS_NETWORK_COMMON
/* The network (descentsim.models.network): hidden activations and losses by their codes (ACTIVATIONS, LOSSES),
 * and the columns of its consts: codes, leaky_slope, the W1 drift and its every_step switch, L, then the widths
 * n_0 … n_L, L × 1/√fan_in, L × √fan_in */
enum {
    DS_NET_IDENTITY, DS_NET_RELU, DS_NET_LEAKY_RELU, DS_NET_TANH, DS_NET_SIGMOID, DS_NET_TANH_SQRT2, DS_NET_RELU_SQRT2
};
enum { DS_NET_MSE, DS_NET_SOFTMAX_CE, DS_NET_SIGMOID_BCE };
enum {
    DS_NET_ACTIVATION, DS_NET_LOSS, DS_NET_BIAS, DS_NET_PARAM, DS_NET_CLASSIFIER, DS_NET_SLOPE, DS_NET_DRIFT,
    DS_NET_EVERY_STEP, DS_NET_LAYERS, DS_NET_WIDTHS
};
#define DS_NET_MAX_LAYERS 64 /* network.MAX_LAYERS */

/* A network's shape (row 0 of its consts: alike in every row) and where things are: θ's W_l and b_l, and in the
 * work space (vectors of lanes) the activations a_0 … a_{L−1}, the pre-activations z_1 … z_L and two buffers of
 * errors, each as wide as the widest layer (ds_model_vectors). Layers are counted from 0 here: layer l maps
 * n_l inputs to n_{l+1} outputs. */
typedef struct {
    int activation, loss, bias, mean_field, classifier;
    ptrdiff_t layers, widest, width[DS_NET_MAX_LAYERS + 1], w_at[DS_NET_MAX_LAYERS], b_at[DS_NET_MAX_LAYERS],
        act_at[DS_NET_MAX_LAYERS], z_at[DS_NET_MAX_LAYERS], errors_at;
} ds_network_shape;

/* The forward pass (ds_network_forward) computes DS_NET_UNITS outputs at a time in registers. A network with one
 * hidden layer and the mse loss (ds_network_shallow) takes DS_NET_POINTS samples at a time, and its matrix products
 * DS_NET_BLOCK units × DS_NET_BLOCK_ROWS samples (or input rows) at a time in registers, each load of a weight used
 * by every sample of the block and each input by its units: 4 × 4 with 64-byte lanes (AVX-512's 32 vector
 * registers hold the 16 sums and the loads; 8 units × 2 samples, whose weights the compiler loaded twice, was 10 %
 * slower), 4 × 2 with 32-byte ones (AVX2 has 16 registers: 4 × 4 spilled, 3–6 % slower in exact; measured). */
#define DS_NET_UNITS 8
#define DS_NET_POINTS 8
#define DS_NET_BLOCK 4
#if DS_VECTOR_BYTES == 64
#define DS_NET_BLOCK_ROWS 4
#else
#define DS_NET_BLOCK_ROWS 2
#endif
#endif

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
        const vec root_inverse = net->mean_field && l == last ? 1 / (root * root) : zero; /* fast's (ds_divide) */
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
                v = l == last ? DS_NAME(ds_divide)(v, root, root_inverse, 2) : v * scale;
            if (net->bias)
                v = v + vload(b + j * DS_LANES);
            vstore(z + j * DS_LANES, v);
            if (l < last)
                vstore(work + (net->act_at[l + 1] + j) * DS_LANES, DS_NAME(ds_network_phi)(net->activation, v, slope));
        }
    }
}

/* The inputs of the one-hidden-layer kernel: input i of the block's sample t at xs[t·sample + i·input], one value
 * per lane (lanes = DS_LANES: gathered, minibatches) or one for every lane (lanes = 0: the full data, read where it
 * is, x[i·samples + n], each load a broadcast). */
typedef struct {
    const DS_T *xs;
    ptrdiff_t sample, input;
} DS_NAME(ds_shallow_inputs);

/* the value at xs[index]: a vector of one value per lane, or one value broadcast (x − 0 is x, −0 included) */
DS_INLINE vec DS_NAME(ds_lane_value)(const DS_T *xs, ptrdiff_t index, const ptrdiff_t lanes)
{
    const vec zero = {0};
    return lanes ? vload(xs + index * lanes) : xs[index] - zero;
}

/* A block of sums in registers: acc[r][c] + Σ_k a_rk·b_kc, k = 0 … depth − 1 in order, for rows r < count (1 …
 * DS_NET_BLOCK_ROWS) and DS_NET_BLOCK columns c, a_rk the value at index a_at + r·a_row + k·a_step of a
 * (ds_lane_value, with a_lanes) and b_kc the vector at b + (k·b_step + c)·DS_LANES: each load of b serves every
 * row, each load of a every column. */
DS_INLINE void DS_NAME(ds_block_sums)(vec acc[DS_NET_BLOCK_ROWS][DS_NET_BLOCK], const DS_T *a, ptrdiff_t a_at,
                                      ptrdiff_t a_row, ptrdiff_t a_step, const ptrdiff_t a_lanes, const DS_T *b,
                                      ptrdiff_t b_step, ptrdiff_t depth, const ptrdiff_t count)
{
    ptrdiff_t k, r, c;
    for (k = 0; k < depth; k++) {
        vec bv[DS_NET_BLOCK];
        DS_UNROLL for (c = 0; c < DS_NET_BLOCK; c++)
            bv[c] = vload(b + (k * b_step + c) * DS_LANES);
        DS_UNROLL for (r = 0; r < count; r++) {
            const vec av = DS_NAME(ds_lane_value)(a, a_at + r * a_row + k * a_step, a_lanes);
            DS_UNROLL for (c = 0; c < DS_NET_BLOCK; c++)
                acc[r][c] = acc[r][c] + av * bv[c];
        }
    }
}

/* Pre-activations of `count` (1 … DS_NET_BLOCK_ROWS) samples from the block's sample t0 for DS_NET_BLOCK hidden
 * units: acc[s][jj] = Σ_i x_si·W1[i][j0 + jj] from 0 in index order i (ds_network_forward's order), then ·(1/√n_0)
 * (mean_field) and + b1 (bias), into pre[s] (rows of the units j0 …). w: W1 from column j0 (rows of width); b: b1
 * from j0. */
DS_INLINE void DS_NAME(ds_shallow_units)(DS_NAME(ds_shallow_inputs) in, const ptrdiff_t lanes, ptrdiff_t t0,
                                         ptrdiff_t d, const DS_T *w, ptrdiff_t width, const ptrdiff_t count, vec scale,
                                         const DS_T *b, const int mean_field, const int bias, DS_T *pre)
{
    const vec zero = {0};
    vec acc[DS_NET_BLOCK_ROWS][DS_NET_BLOCK];
    ptrdiff_t s, jj;
    DS_UNROLL for (s = 0; s < count; s++)
        DS_UNROLL for (jj = 0; jj < DS_NET_BLOCK; jj++)
            acc[s][jj] = zero;
    DS_NAME(ds_block_sums)(acc, in.xs, t0 * in.sample, in.sample, in.input, lanes, w, width, d, count);
    DS_UNROLL for (s = 0; s < count; s++)
        DS_UNROLL for (jj = 0; jj < DS_NET_BLOCK; jj++) {
            const vec v = mean_field ? acc[s][jj] * scale : acc[s][jj];
            vstore(pre + (s * width + jj) * DS_LANES, bias ? v + vload(b + jj * DS_LANES) : v);
        }
}

/* The input layer's gradient rows i0 … i0 + count − 1 (count 1 … DS_NET_BLOCK_ROWS), DS_NET_BLOCK columns from j0:
 * g1[i][j] + Σ_t x_ti·dz_tj over the block's samples t in order (each entry its samples' terms in sample order, as
 * ds_network adds them). */
DS_INLINE void DS_NAME(ds_shallow_rows)(DS_NAME(ds_shallow_inputs) in, const ptrdiff_t lanes, ptrdiff_t i0,
                                        const DS_T *dz, ptrdiff_t width, ptrdiff_t points, const ptrdiff_t count,
                                        DS_T *gi)
{
    vec acc[DS_NET_BLOCK_ROWS][DS_NET_BLOCK];
    ptrdiff_t r, jj;
    DS_UNROLL for (r = 0; r < count; r++)
        DS_UNROLL for (jj = 0; jj < DS_NET_BLOCK; jj++)
            acc[r][jj] = vload(gi + (r * width + jj) * DS_LANES);
    DS_NAME(ds_block_sums)(acc, in.xs, i0 * in.input, in.input, in.sample, lanes, dz, width, points, count);
    DS_UNROLL for (r = 0; r < count; r++)
        DS_UNROLL for (jj = 0; jj < DS_NET_BLOCK; jj++)
            vstore(gi + (r * width + jj) * DS_LANES, acc[r][jj]);
}

/* The hidden layer's pre-activations of the block's `points` samples (ds_shallow_units: blocks of units × samples,
 * then the units left over) */
DS_INLINE void DS_NAME(ds_shallow_forward)(DS_NAME(ds_shallow_inputs) in, const ptrdiff_t lanes, ptrdiff_t points,
                                           ptrdiff_t d, const DS_T *w1, ptrdiff_t width, vec scale, const DS_T *b1,
                                           const int mean_field, const int bias, DS_T *pre)
{
    ptrdiff_t j0, j, t, i;
    for (j0 = 0; j0 + DS_NET_BLOCK <= width; j0 += DS_NET_BLOCK) {
        for (t = 0; t + DS_NET_BLOCK_ROWS <= points; t += DS_NET_BLOCK_ROWS)
            DS_NAME(ds_shallow_units)(in, lanes, t, d, w1 + j0 * DS_LANES, width, DS_NET_BLOCK_ROWS, scale,
                                      b1 + j0 * DS_LANES, mean_field, bias, pre + (t * width + j0) * DS_LANES);
        for (; t < points; t++)
            DS_NAME(ds_shallow_units)(in, lanes, t, d, w1 + j0 * DS_LANES, width, 1, scale, b1 + j0 * DS_LANES,
                                      mean_field, bias, pre + (t * width + j0) * DS_LANES);
    }
    for (j = j0; j < width; j++) /* the units left over */
        for (t = 0; t < points; t++) {
            const vec zero = {0};
            vec acc = zero;
            for (i = 0; i < d; i++)
                acc = acc + DS_NAME(ds_lane_value)(in.xs, t * in.sample + i * in.input, lanes) *
                                vload(w1 + (i * width + j) * DS_LANES);
            acc = mean_field ? acc * scale : acc;
            vstore(pre + (t * width + j) * DS_LANES, bias ? acc + vload(b1 + j * DS_LANES) : acc);
        }
}

/* The input layer's gradient from the block's `points` samples' errors dz (ds_shallow_rows: blocks of units × input
 * rows, then the units left over) */
DS_INLINE void DS_NAME(ds_shallow_input_gradient)(DS_NAME(ds_shallow_inputs) in, const ptrdiff_t lanes,
                                                  ptrdiff_t points, ptrdiff_t d, const DS_T *dz, ptrdiff_t width,
                                                  DS_T *g1)
{
    ptrdiff_t j0, j, t, i;
    for (j0 = 0; j0 + DS_NET_BLOCK <= width; j0 += DS_NET_BLOCK) {
        for (i = 0; i + DS_NET_BLOCK_ROWS <= d; i += DS_NET_BLOCK_ROWS)
            DS_NAME(ds_shallow_rows)(in, lanes, i, dz + j0 * DS_LANES, width, points, DS_NET_BLOCK_ROWS,
                                     g1 + (i * width + j0) * DS_LANES);
        for (; i < d; i++)
            DS_NAME(ds_shallow_rows)(in, lanes, i, dz + j0 * DS_LANES, width, points, 1,
                                     g1 + (i * width + j0) * DS_LANES);
    }
    for (j = j0; j < width; j++) /* the units left over */
        for (i = 0; i < d; i++) {
            DS_T *gi = g1 + (i * width + j) * DS_LANES;
            vec acc = vload(gi);
            for (t = 0; t < points; t++)
                acc = acc + DS_NAME(ds_lane_value)(in.xs, t * in.sample + i * in.input, lanes) *
                                vload(dz + (t * width + j) * DS_LANES);
            vstore(gi, acc);
        }
}

/* The network with one hidden layer and the mse loss (the mlp preset: Sohl-Dickstein's map) exactly as ds_network
 * computes it, with the loops blocked: DS_NET_POINTS samples at a time; the pre-activations and the input layer's
 * gradient as small matrix products, DS_NET_BLOCK units × DS_NET_BLOCK_ROWS samples (or rows) in registers; the
 * activations, outputs and errors of all the block's samples before their backward steps, so that one sample's chain
 * of divisions overlaps the next one's work. With minibatches each lane's inputs are gathered once a block; on the
 * full data every lane has the same sample, read where it is as broadcasts (6 % of the SD map's time in fast float64:
 * measured); the inputs only enter products summed from +0, so gathered (0 + x) and read (x) give the same bits.
 * Every sum still runs in index order (over i for a hidden unit's input, over j for the output, over samples for the
 * loss and each gradient entry), so no result changes. work: the pre-activations, activations and ∂acc of the hidden
 * layer and the inputs of DS_NET_POINTS samples (ds_model_vectors). lowest: 1 where W1 is frozen. keys and g as
 * ds_network. */
DS_INLINE vec DS_NAME(ds_network_shallow_with)(const ds_problem *pb, const ds_network_shape *net, const DS_T *th,
                                               DS_T *g, const DS_T *c, DS_T *work, const uint64_t *keys,
                                               ptrdiff_t lowest, const int phi, const int mean_field, const int bias)
{
    const ptrdiff_t d = net->width[0], width = net->width[1], samples = pb->samples;
    const ptrdiff_t batch = keys != NULL ? pb->batch_size : 0, count = batch > 0 ? batch : pb->eval_count;
    ptrdiff_t index[DS_LANES]; /* minibatches: each lane's sample at a block position */
    const DS_T *x = (const DS_T *)pb->data, *y = x + d * samples;
    const DS_T *w1 = th + net->w_at[0] * DS_LANES, *b1 = th + net->b_at[0] * DS_LANES,
               *w2 = th + net->w_at[1] * DS_LANES, *b2 = th + net->b_at[1] * DS_LANES;
    DS_T *pre = work, *h = pre + DS_NET_POINTS * width * DS_LANES, *dz = h + DS_NET_POINTS * width * DS_LANES,
         *xs = dz + DS_NET_POINTS * width * DS_LANES;
    DS_T *g1 = g + net->w_at[0] * DS_LANES, *gb1 = g + net->b_at[0] * DS_LANES, *g2 = g + net->w_at[1] * DS_LANES,
         *gb2 = g + net->b_at[1] * DS_LANES;
    /* 1/√n_0 and √n_1: the consts' scale of layer 0 and root of layer 1 (two layers: columns L + 1 and 2·L + 2) */
    const vec zero = {0}, n_terms = zero + (DS_T)count, slope = vload(c + DS_NET_SLOPE * DS_LANES),
              scale = vload(c + (DS_NET_WIDTHS + 3) * DS_LANES), root = vload(c + (DS_NET_WIDTHS + 6) * DS_LANES);
    const int train_out = g != NULL && pb->trainable[net->w_at[1]], train_in = g != NULL && lowest == 0;
    const vec out_inverse = 1 / (root * root), terms_inverse = 1 / n_terms; /* fast arithmetic's (ds_divide) */
#if defined(DS_ARITHMETIC_FAST)
    /* fast arithmetic: tanh(√2·z) of mean-field's z = Σ·(1/√n_0) with no biases as tanh(Σ·(√2/√n_0)), and the √2
     * of its derivative with the 1/√n_0 of the errors dz, one product less each (the pre-activations only feed the
     * tanh; a bias b1 would need its √2 too, and its gradient the derivative's) */
    const int fold = phi == DS_NET_TANH_SQRT2 && mean_field && !bias;
#else
    const int fold = 0;
#endif
    const int act = fold ? DS_NET_TANH : phi;
    const vec in_scale = fold ? scale * (DS_T)DS_SQRT2 : scale;
    vec loss = zero, ys[DS_NET_POINTS], delta[DS_NET_POINTS], dacc[DS_NET_POINTS];
    ptrdiff_t n0, t, points, i, j;
    for (i = 0; g != NULL && i < pb->p; i++)
        vstore(g + i * DS_LANES, zero);
    for (n0 = 0; n0 < count; n0 += DS_NET_POINTS) {
        const DS_NAME(ds_shallow_inputs) gathered = {xs, d, 1}, in_place = {x + n0, 1, samples};
        points = count - n0 < DS_NET_POINTS ? count - n0 : DS_NET_POINTS;
        for (t = 0; t < points; t++) { /* the block's targets, and with minibatches each lane's inputs */
            const ptrdiff_t *at = DS_NAME(ds_lane_samples)(pb, keys, batch, n0 + t, index);
            for (i = 0; batch > 0 && i < d; i++)
                vstore(xs + (t * d + i) * DS_LANES, DS_NAME(ds_sample)(x + i * samples, n0 + t, at));
            ys[t] = DS_NAME(ds_sample)(y, n0 + t, at);
        }
        if (batch > 0) /* pre-activations */
            DS_NAME(ds_shallow_forward)(gathered, DS_LANES, points, d, w1, width, in_scale, b1, mean_field, bias, pre);
        else
            DS_NAME(ds_shallow_forward)(in_place, 0, points, d, w1, width, in_scale, b1, mean_field, bias, pre);
        for (t = 0; t < points; t++) { /* activations, output, loss */
            const ptrdiff_t row = t * width * DS_LANES;
            vec s = zero, e;
            for (j = 0; j < width; j++) {
                const vec a = DS_NAME(ds_network_phi)(act, vload(pre + row + j * DS_LANES), slope);
                vstore(h + row + j * DS_LANES, a);
                s = s + a * vload(w2 + j * DS_LANES);
            }
            if (mean_field)
                s = DS_NAME(ds_divide)(s, root, out_inverse, 2);
            if (bias)
                s = s + vload(b2);
            e = s - ys[t];
            loss = loss + e * e;
            delta[t] = DS_NAME(ds_divide)((DS_T)2 * e, n_terms, terms_inverse, 1);
            dacc[t] = mean_field ? DS_NAME(ds_divide)(delta[t], root, out_inverse, 2) : delta[t];
        }
        if (g == NULL)
            continue;
        for (t = 0; train_out && bias && t < points; t++)
            vstore(gb2, vload(gb2) + delta[t]);
        for (j = 0; train_out && j < width; j++) { /* the output layer: each entry its samples' terms in order */
            vec acc = vload(g2 + j * DS_LANES);
            for (t = 0; t < points; t++)
                acc = acc + vload(h + (t * width + j) * DS_LANES) * dacc[t];
            vstore(g2 + j * DS_LANES, acc);
        }
        for (t = 0; train_in && t < points; t++) { /* errors at the hidden layer */
            const ptrdiff_t row = t * width * DS_LANES;
            for (j = 0; j < width; j++) {
                const vec back = DS_NAME(ds_network_phi_backward)(act, zero + vload(w2 + j * DS_LANES) * dacc[t],
                                                                  vload(pre + row + j * DS_LANES),
                                                                  vload(h + row + j * DS_LANES), slope);
                if (bias)
                    vstore(gb1 + j * DS_LANES, vload(gb1 + j * DS_LANES) + back);
                vstore(dz + row + j * DS_LANES, mean_field ? back * in_scale : back);
            }
        }
        if (!train_in)
            continue;
        if (batch > 0) /* the input layer */
            DS_NAME(ds_shallow_input_gradient)(gathered, DS_LANES, points, d, dz, width, g1);
        else
            DS_NAME(ds_shallow_input_gradient)(in_place, 0, points, d, dz, width, g1);
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
    const vec terms_inverse = 1 / n_terms; /* fast arithmetic's (ds_divide) */
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
            vstore(delta, DS_NAME(ds_divide)((DS_T)2 * e, n_terms, terms_inverse, 1));
        } else if (net.loss == DS_NET_SIGMOID_BCE) {
            const vec v = vload(out);
            const vec a = DS_NAME(ds_exp_nonpositive)((vec)((vmask)v | (vmask)(-zero))); /* −|v| */
            const vec sigma = vselect(v >= zero, 1 / (1 + a), a / (1 + a));
            loss = loss + (((vec)((v > zero) & (vmask)v) - v * target) + DS_NAME(ds_log_at_least_one)(1 + a));
            vstore(delta, DS_NAME(ds_divide)(sigma - target, n_terms, terms_inverse, 1));
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
            if (g != NULL) {
                const vec s_inverse = 1 / s; /* fast arithmetic's (ds_divide) */
                for (cl = 0; cl < outputs; cl++) {
                    const vec onehot = (vec)((target == (DS_T)cl) & (vmask)(zero + 1));
                    const vec softmax = DS_NAME(ds_divide)(vload(delta + cl * DS_LANES), s, s_inverse, 1);
                    vstore(delta + cl * DS_LANES, DS_NAME(ds_divide)(softmax - onehot, n_terms, terms_inverse, 1));
                }
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
                const vec root_inverse = l == net.layers - 1 ? 1 / (root * root) : zero; /* fast's (ds_divide) */
                dacc = delta == errors[0] ? errors[1] : errors[0];
                for (j = 0; j < fan_out; j++) {
                    const vec dl = vload(delta + j * DS_LANES);
                    vstore(dacc + j * DS_LANES,
                           l == net.layers - 1 ? DS_NAME(ds_divide)(dl, root, root_inverse, 2) : dl * scale);
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
    *accuracy = finite ? (double)correct / (double)samples : DS_NAN;
    *collapsed = (signed char)(finite && same);
    *classes_predicted = finite ? distinct : 0;
}
