/* The cooperative layout of the GPU engine (gpu_kernels.cu built with DS_COOP_THREADS): a group of G GPU threads
 * trains one network with one hidden layer and the mse loss (the path ds_network_shallow_with takes), where one
 * thread cannot hold a network (Sohl-Dickstein's map: 272 float64 parameters). Per precision, included by
 * trajectory.h in such a build only (DS_COOP), after models/network.h; no include guard but the common part's.
 *
 * Hidden unit j belongs to thread r = j mod G (G = DS_COOP_THREADS, a power of two <= 32), which holds it as its
 * unit u = j div G (U = DS_COOP_UNITS units a thread; units j >= width are empty: held at 0, never trained). A
 * thread's share of θ, its "compact" parameters (DS_COOP_P of them, compile-time, so that they live in registers):
 *
 *   W1[i][j] at i·U + u,  b1[j] at d·U + u (bias),  w2[j] at (d + bias)·U + u,  b2 at (d + bias + 1)·U (bias: every
 *   thread holds it, and its gradient, which is alike in all)
 *
 * The training loop of trajectory.h runs unchanged in every thread of the group on its share, with the problem's
 * p the share's size and trainable the share's flags (ds_coop); its hooks (problem.h) map the share to θ
 * (ds_begin, ds_record), take the group's largest value (ds_classify_end) and leave the writing of the point's
 * fields to thread 0. Per sample, each thread computes its units' pre-activations, activations and products h_j·w2_j;
 * the output Σ_j h_j·w2_j is summed by every thread in index order j = 0 … width − 1 from 0, product j fetched from
 * its owner (ds_coop_share), as ds_network_shallow_with sums it: every thread gets the reference's bits, and the
 * same loss, so the group's threads take the same branches throughout.
 *
 * The group's exchanges: on a GPU warp shuffles within the group's lanes; on the host (the tests' emulation) the
 * group's G threads are host threads in lockstep, exchanging through slots between barriers (ds_team).
 */
#ifndef DS_COOP_COMMON
#define DS_COOP_COMMON
#if !defined(DS_COOP_THREADS) || !defined(DS_COOP_INPUTS) || !defined(DS_COOP_WIDTH) || !defined(DS_COOP_BIAS) ||   \
    !defined(DS_COOP_ACTIVATION) || !defined(DS_COOP_MEAN_FIELD)
#error "the cooperative kernel needs the network's shape: DS_COOP_THREADS, _INPUTS, _WIDTH, _BIAS, _ACTIVATION, _MEAN_FIELD"
#endif
#define DS_COOP_UNITS ((DS_COOP_WIDTH + DS_COOP_THREADS - 1) / DS_COOP_THREADS)
#define DS_COOP_P (DS_COOP_UNITS * (DS_COOP_INPUTS + DS_COOP_BIAS + 1) + DS_COOP_BIAS)

#if !defined(__CUDACC__)
#include <barrier>
/* the host's group: G threads meeting at a barrier, exchanging values through two sets of slots (used in turn, so
 * that one barrier an exchange suffices: a set is written again only after every thread has passed the next
 * barrier, hence read it) */
struct ds_team {
    std::barrier<> gate{DS_COOP_THREADS};
    double slots[2][DS_COOP_THREADS * DS_COOP_UNITS];
};
#endif

/* one thread's view of its network: the problem as the training loop sees it (p: the share's size, trainable: the
 * share's flags) first, then the network's own */
typedef struct {
    ds_problem pb;
    const unsigned char *trainable; /* the network's flags (all its parameters) */
    ptrdiff_t p;                    /* the network's parameter count */
    int rank;                       /* this thread's place in the group, 0 … G − 1 */
    unsigned char flags[DS_COOP_P];
#if !defined(__CUDACC__)
    ds_team *team;
    int turn; /* the set of slots the next exchange writes */
#endif
} ds_coop;

DS_INLINE const ds_coop *ds_coop_of(const ds_problem *pb) { return (const ds_coop *)pb; }

/* the θ index of the thread's compact parameter c, or −1 where c is a unit it does not have (j >= width) */
DS_INLINE ptrdiff_t ds_param_at(const ds_problem *pb, ptrdiff_t c)
{
    const ptrdiff_t units = DS_COOP_UNITS, d = DS_COOP_INPUTS, width = DS_COOP_WIDTH, bias = DS_COOP_BIAS;
    const ptrdiff_t w2_at = (d + bias) * width, j = ds_coop_of(pb)->rank + (c % units) * DS_COOP_THREADS;
    if (bias && c == DS_COOP_P - 1)
        return w2_at + width; /* b2 */
    if (j >= width)
        return -1;
    if (c < d * units)
        return (c / units) * width + j; /* W1[i][j] */
    if (bias && c < (d + 1) * units)
        return d * width + j; /* b1[j] */
    return w2_at + j;         /* w2[j] */
}

/* the θ index this thread writes its compact parameter c to (theta_path): b2 by thread 0 alone */
DS_INLINE ptrdiff_t ds_param_out(const ds_problem *pb, ptrdiff_t c)
{
    return DS_COOP_BIAS && c == DS_COOP_P - 1 && ds_coop_of(pb)->rank != 0 ? -1 : ds_param_at(pb, c);
}

/* problem.h's hooks: a thread's compact parameter c from / to a row of the network's θ */
#define ds_param_value(pb, rows, start, c, none)                                                                      \
    (ds_param_at(pb, c) >= 0 ? (rows)[(start) + ds_param_at(pb, c)] : (none))
#define ds_param_store(pb, rows, at, p, c, value) ds_coop_store(pb, rows, at, c, value)

/* a row of theta0 and lr_scale: the network's parameter count */
DS_INLINE ptrdiff_t ds_params(const ds_problem *pb) { return ds_coop_of(pb)->p; }

DS_INLINE void ds_coop_store(const ds_problem *pb, double *rows, ptrdiff_t at, ptrdiff_t c, double value)
{
    const ptrdiff_t to = ds_param_out(pb, c);
    if (to >= 0)
        rows[at * ds_params(pb) + to] = value;
}

/* whether this thread writes the point's fields and curves (thread 0; the others hold the same values) */
DS_INLINE int ds_writes(const ds_problem *pb) { return ds_coop_of(pb)->rank == 0; }

/* Thread `rank`'s view of the group's network: co->pb, a copy of the group's problem pb made by the caller (with the
 * kernel's constant sizes, ds_fixed), made the view of the thread's share. */
DS_INLINE void ds_coop_begin(ds_coop *co, const ds_problem *pb, int rank)
{
    ptrdiff_t c, at;
    co->trainable = pb->trainable;
    co->p = pb->p;
    co->rank = rank;
    co->pb.p = DS_COOP_P;
    for (c = 0; c < DS_COOP_P; c++) {
        at = ds_param_at(&co->pb, c);
        co->flags[c] = at >= 0 ? pb->trainable[at] : 0;
    }
    co->pb.trainable = co->flags;
}

#if defined(__CUDACC__)
/* the lanes of this thread's group in its warp */
DS_INLINE unsigned ds_coop_mask(void)
{
    return DS_COOP_THREADS == 32 ? 0xffffffffu
                                 : ((1u << DS_COOP_THREADS) - 1) << (threadIdx.x % 32 / DS_COOP_THREADS * DS_COOP_THREADS);
}
#endif

/* the largest of the group's v (no v is NaN: exact, in any order) */
DS_INLINE double ds_group_max(const ds_problem *pb, double v)
{
#if defined(__CUDACC__)
    const unsigned mask = ds_coop_mask();
    int gap;
    (void)pb;
    DS_UNROLL for (gap = DS_COOP_THREADS / 2; gap > 0; gap /= 2) {
        const double other = __shfl_xor_sync(mask, v, gap, DS_COOP_THREADS);
        v = other > v ? other : v;
    }
    return v;
#else
    ds_coop *co = (ds_coop *)pb;
    double *slots = co->team->slots[co->turn];
    int r;
    co->turn ^= 1;
    slots[co->rank] = v;
    co->team->gate.arrive_and_wait();
    for (r = 0; r < DS_COOP_THREADS; r++)
        v = slots[r] > v ? slots[r] : v;
    return v;
#endif
}
#endif /* DS_COOP_COMMON */

/* ---- the cooperative network (per precision) ---------------------------------------------------------------- */

/* every thread's units' values mine[u] to all: all[u·G + r] = thread r's mine[u], so that all[j] is unit j's */
DS_INLINE void DS_NAME(ds_coop_share)(const ds_problem *pb, const vec *mine, vec *all)
{
    ptrdiff_t u, r;
#if defined(__CUDACC__)
    const unsigned mask = ds_coop_mask();
    (void)pb;
    DS_UNROLL for (u = 0; u < DS_COOP_UNITS; u++)
        DS_UNROLL for (r = 0; r < DS_COOP_THREADS; r++)
            all[u * DS_COOP_THREADS + r].v = __shfl_sync(mask, mine[u].v, (int)r, DS_COOP_THREADS);
#else
    ds_coop *co = (ds_coop *)pb;
    double *slots = co->team->slots[co->turn];
    co->turn ^= 1;
    for (u = 0; u < DS_COOP_UNITS; u++)
        slots[u * DS_COOP_THREADS + co->rank] = (double)mine[u].v; /* a float is exact in double */
    co->team->gate.arrive_and_wait();
    for (u = 0; u < DS_COOP_UNITS; u++)
        for (r = 0; r < DS_COOP_THREADS; r++)
            all[u * DS_COOP_THREADS + r].v = (DS_T)slots[u * DS_COOP_THREADS + r];
#endif
}

/* The forward pass of one sample xs (d inputs) as ds_network_shallow_with computes it: this thread's units'
 * pre-activations pre[u] (Σ_i x_i·W1[i][j] from 0 in index order, ·(1/√d) (mean_field), + b1[j] (bias)) and
 * activations act[u]; returned: the output Σ_j h_j·w2_j summed in index order from 0 (/√n_1/√n_1 (mean_field),
 * + b2 (bias)), alike in every thread of the group. */
DS_INLINE vec DS_NAME(ds_coop_forward)(const ds_problem *pb, const DS_T *th, const DS_T *c, const vec *xs, vec *pre,
                                       vec *act)
{
    const ptrdiff_t units = DS_COOP_UNITS, d = DS_COOP_INPUTS, bias = DS_COOP_BIAS;
    const DS_T *w1 = th, *b1 = th + d * units, *w2 = th + (d + bias) * units, *b2 = w2 + units;
    const vec zero = {0}, slope = vload(c + DS_NET_SLOPE), scale = vload(c + DS_NET_WIDTHS + 3),
              root = vload(c + DS_NET_WIDTHS + 6);
    vec products[DS_COOP_UNITS], all[DS_COOP_UNITS * DS_COOP_THREADS], s = zero;
    ptrdiff_t u, i, j;
    DS_UNROLL for (u = 0; u < DS_COOP_UNITS; u++) {
        vec acc = zero;
        DS_UNROLL for (i = 0; i < DS_COOP_INPUTS; i++)
            acc = acc + xs[i] * vload(w1 + i * units + u);
        acc = DS_COOP_MEAN_FIELD ? acc * scale : acc;
        pre[u] = bias ? acc + vload(b1 + u) : acc;
        act[u] = DS_NAME(ds_network_phi)(DS_COOP_ACTIVATION, pre[u], slope);
        products[u] = act[u] * vload(w2 + u);
    }
    DS_NAME(ds_coop_share)(pb, products, all);
    DS_UNROLL for (j = 0; j < DS_COOP_WIDTH; j++)
        s = s + all[j];
    if (DS_COOP_MEAN_FIELD)
        s = s / root / root;
    return bias ? s + vload(b2) : s;
}

/* ds_network_shallow_with on this thread's share: the loss (alike in the group) and, where g is not NULL, the
 * gradient of the share (each entry its samples' terms added in sample order, as there). keys as ds_network. */
DS_INLINE vec DS_NAME(ds_coop_network)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c,
                                       const uint64_t *keys)
{
    const ds_coop *co = ds_coop_of(pb);
    const ptrdiff_t units = DS_COOP_UNITS, d = DS_COOP_INPUTS, width = DS_COOP_WIDTH, bias = DS_COOP_BIAS;
    const ptrdiff_t samples = pb->samples, batch = keys != NULL ? pb->batch_size : 0;
    const ptrdiff_t count = batch > 0 ? batch : pb->eval_count;
    const DS_T *x = (const DS_T *)pb->data, *y = x + d * samples, *w2 = th + (d + bias) * units;
    DS_T *g1 = g, *gb1 = g + d * units, *g2 = g + (d + bias) * units, *gb2 = g2 + units;
    const vec zero = {0}, n_terms = zero + (DS_T)count, slope = vload(c + DS_NET_SLOPE),
              scale = vload(c + DS_NET_WIDTHS + 3), root = vload(c + DS_NET_WIDTHS + 6);
    /* W2 trains, W1 trains (the lowest layer that trains is the first) */
    const int train_out = g != NULL && co->trainable[(d + bias) * width], train_in = g != NULL && co->trainable[0];
    vec loss = zero;
    ptrdiff_t n, i, u, index[1];
    for (i = 0; g != NULL && i < DS_COOP_P; i++)
        g[i] = 0;
    for (n = 0; n < count; n++) {
        const ptrdiff_t *at = DS_NAME(ds_lane_samples)(pb, keys, batch, n, index), column = at != NULL ? at[0] : n;
        vec xs[DS_COOP_INPUTS], pre[DS_COOP_UNITS], act[DS_COOP_UNITS], e, delta, dacc;
        DS_UNROLL for (i = 0; i < DS_COOP_INPUTS; i++) { /* ds_sample's values, the sample's column found once */
            const vec value = {x[i * samples + column]};
            xs[i] = at != NULL ? value : zero + value;
        }
        e = DS_NAME(ds_coop_forward)(pb, th, c, xs, pre, act) - DS_NAME(ds_sample)(y, n, at);
        loss = loss + e * e;
        if (g == NULL)
            continue;
        delta = ((DS_T)2 * e) / n_terms;
        dacc = DS_COOP_MEAN_FIELD ? delta / root / root : delta;
        if (train_out && bias)
            vstore(gb2, vload(gb2) + delta);
        DS_UNROLL for (u = 0; u < DS_COOP_UNITS; u++) {
            vec back, dz;
            if (co->rank + u * DS_COOP_THREADS >= width) /* a unit the network does not have */
                continue;
            if (train_out)
                vstore(g2 + u, vload(g2 + u) + act[u] * dacc);
            if (!train_in)
                continue;
            back = DS_NAME(ds_network_phi_backward)(DS_COOP_ACTIVATION, zero + vload(w2 + u) * dacc, pre[u], act[u],
                                                    slope);
            if (bias)
                vstore(gb1 + u, vload(gb1 + u) + back);
            dz = DS_COOP_MEAN_FIELD ? back * scale : back;
            DS_UNROLL for (i = 0; i < DS_COOP_INPUTS; i++)
                vstore(g1 + i * units + u, vload(g1 + i * units + u) + xs[i] * dz);
        }
    }
    return loss / n_terms;
}

/* ds_network_evaluate of a classifier with the mse loss (one output, two classes, predicted z > 0.5) on the group's
 * network: every thread gets the same accuracy, collapse and classes predicted */
DS_INLINE void DS_NAME(ds_coop_evaluate)(const ds_problem *pb, const DS_T *th, const DS_T *c, double *accuracy,
                                         signed char *collapsed, short *classes_predicted)
{
    const ptrdiff_t samples = pb->samples;
    const DS_T *x = (const DS_T *)pb->data;
    ptrdiff_t n, i, correct = 0, first = -1;
    short distinct = 0;
    int same = 1, finite = 1, seen[2] = {0, 0};
    (void)c;
    if (((const DS_T *)pb->consts)[DS_NET_CLASSIFIER] == 0)
        return;
    for (n = 0; n < samples; n++) {
        vec xs[DS_COOP_INPUTS], pre[DS_COOP_UNITS], act[DS_COOP_UNITS];
        ptrdiff_t best;
        DS_T out;
        DS_UNROLL for (i = 0; i < DS_COOP_INPUTS; i++)
            xs[i] = DS_NAME(ds_sample)(x + i * samples, n, NULL);
        out = DS_NAME(ds_coop_forward)(pb, th, c, xs, pre, act).v;
        finite &= isfinite(out) != 0;
        best = out > (DS_T)0.5;
        correct += best == (ptrdiff_t)x[DS_COOP_INPUTS * samples + n];
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

/* offset_mode every_step: the drift added to this thread's W1 entries (ds_network_drift) */
DS_INLINE void DS_NAME(ds_coop_drift)(const ds_problem *pb, DS_T *th, const DS_T *c, vmask go)
{
    const DS_T *row0 = (const DS_T *)pb->consts;
    const vec drift = vload(c + DS_NET_DRIFT);
    ptrdiff_t i;
    if (row0[DS_NET_EVERY_STEP] == 0)
        return;
    DS_UNROLL for (i = 0; i < DS_COOP_INPUTS * DS_COOP_UNITS; i++)
        if (ds_param_at(pb, i) >= 0)
            vstore(th + i, vselect(go, vload(th + i) + drift, vload(th + i)));
}
