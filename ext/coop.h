/* The cooperative layout of the GPU engine (gpu_kernels.cu built with DS_COOP_THREADS): a group of G GPU threads
 * trains one dense network (descentsim.models.network: any depth, activation, bias, parameterisation and loss), where
 * one thread cannot hold a network (Sohl-Dickstein's map: 272 float64 parameters; scikit-learn's digits through hidden
 * widths 25, 12 and softmax: 2067). Per precision, included by trajectory.h in such a build only (DS_COOP), after
 * models/network.h; no include guard but the common part's.
 *
 * The network's shape is compiled in: G = DS_COOP_THREADS (a power of two <= 32: consecutive lanes of one warp),
 * L = DS_COOP_LAYERS (1 … DS_COOP_MAX_LAYERS), the widths n_0 … n_L (DS_COOP_N0, DS_COOP_N1, …), DS_COOP_BIAS,
 * DS_COOP_ACTIVATION, DS_COOP_MEAN_FIELD and DS_COOP_LOSS (network.h's codes). A thread's share of θ, its "compact"
 * parameters (DS_COOP_P of them, a compile-time size, so that they live in registers where few), in one of two
 * layouts; both compute every value with the operations of ds_network, in its order, so that each thread gets the
 * reference's bits:
 *
 * The shallow path (one hidden layer, the mse loss, one output: ds_network_shallow_with's network; the SD map).
 *   Hidden unit j belongs to thread r = j mod G, its unit u = j div G (U = DS_COOP_UNITS units a thread; units
 *   j >= width are empty: held at 0, never trained). The share: W1[i][j] at i·U + u, b1[j] at d·U + u (bias), w2[j]
 *   at (d + bias)·U + u, b2 at (d + bias + 1)·U (bias: every thread holds it, and its gradient, alike in all). Per
 *   sample each thread computes its units' pre-activations, activations and products h_j·w2_j; the output
 *   Σ_j h_j·w2_j is summed by every thread in index order from 0, product j fetched from its owner
 *   (ds_coop_share). W2 split by hidden unit, the backward pass needs no exchange at all: each thread's error
 *   φ'(w2_j·∂acc) is its own.
 *
 * The general path (every other network). Output unit j of layer l (n_l inputs → n_{l+1} outputs) belongs to
 *   thread j mod G, its unit u = j div G (U_l = ⌈n_{l+1}/G⌉ units a thread, empty ones held at 0 and never
 *   trained); the share holds, layer after layer, the columns W_l[i][j] of its units at at_l + i·U_l + u, then
 *   b_l[j] at at_l + n_l·U_l + u (bias). Per sample, layer by layer: each thread computes its units' pre-activations
 *   Σ_i a_i·W_ij from 0 in index order (ds_network_forward's sum) from the layer's whole input, then (hidden) their
 *   activations, and the group shares the layer's outputs (ds_coop_gather: n_{l+1} warp shuffles), so that every
 *   thread holds every layer's input, and, at the top, every logit: each thread computes the same loss (the max,
 *   the exp sum in class order, the picked logit, as ds_network), so the group's threads take the same branches
 *   throughout. Backward, layer l from the top down to the lowest that trains: the owner of output j adds
 *   a_i·∂acc_j to its gradient entries (sample after sample, as ds_network); the error of input i,
 *   φ'(Σ_j W_ij·∂acc_j) summed in index order j, is the owner of i's, which needs row i of W_l while its share holds
 *   columns: the group keeps a mirror of W_1 … W_{L−1} (the layers whose inputs get errors; W_0's never do) in
 *   shared memory, written from the shares at the start of each loss evaluation with a gradient (θ changes between
 *   evaluations only) and read between two syncs of the group (ds_coop_sync: __syncwarp over the group's lanes).
 *   Rows rather than columns for every layer would spare the mirror but share n_{l+1} sums each of n_l products
 *   per layer, not n_{l+1} values; one thread a layer's row and the other's column would hold W twice.
 *   The mirror is Σ_{l=1}^{L−1} n_l·n_{l+1} values a group (DS_COOP_MIRROR; 420 for the digits network), in the
 *   block's dynamic shared memory (backends/gpu.py sizes it, and the block's groups, to the device's limit; a
 *   network whose mirror does not fit takes the one-thread kernel).
 *
 * The training loop of trajectory.h runs unchanged in every thread of the group on its share, with the problem's
 * p the share's size and trainable the share's flags (ds_coop); its hooks (problem.h) map the share to θ
 * (ds_begin, ds_record), take the group's largest value (ds_classify_end) and leave the writing of the point's
 * fields to thread 0 (a shared value, the shallow path's b2, written by thread 0 alone).
 *
 * The group's exchanges: on a GPU warp shuffles within the group's lanes and the mirror in shared memory; on the
 * host (the tests' emulation) the group's G threads are G fibers of one host thread in lockstep, exchanging through
 * slots and a mirror between meetings (ds_team).
 */
#ifndef DS_COOP_COMMON
#define DS_COOP_COMMON
#if !defined(DS_COOP_THREADS) || !defined(DS_COOP_LAYERS) || !defined(DS_COOP_N0) || !defined(DS_COOP_N1) ||      \
    !defined(DS_COOP_BIAS) || !defined(DS_COOP_ACTIVATION) || !defined(DS_COOP_MEAN_FIELD) || !defined(DS_COOP_LOSS)
#error "the cooperative kernel needs the network's shape: DS_COOP_THREADS, _LAYERS, _N0 … _N<layers>, _BIAS, _ACTIVATION, _MEAN_FIELD, _LOSS"
#endif
#define DS_COOP_MAX_LAYERS 16 /* backends/gpu.py: COOP_MAX_LAYERS */
#if DS_COOP_LAYERS < 1 || DS_COOP_LAYERS > DS_COOP_MAX_LAYERS
#error "the cooperative kernel takes 1 to DS_COOP_MAX_LAYERS layers"
#endif
/* the widths past n_L: none */
#ifndef DS_COOP_N2
#define DS_COOP_N2 0
#endif
#ifndef DS_COOP_N3
#define DS_COOP_N3 0
#endif
#ifndef DS_COOP_N4
#define DS_COOP_N4 0
#endif
#ifndef DS_COOP_N5
#define DS_COOP_N5 0
#endif
#ifndef DS_COOP_N6
#define DS_COOP_N6 0
#endif
#ifndef DS_COOP_N7
#define DS_COOP_N7 0
#endif
#ifndef DS_COOP_N8
#define DS_COOP_N8 0
#endif
#ifndef DS_COOP_N9
#define DS_COOP_N9 0
#endif
#ifndef DS_COOP_N10
#define DS_COOP_N10 0
#endif
#ifndef DS_COOP_N11
#define DS_COOP_N11 0
#endif
#ifndef DS_COOP_N12
#define DS_COOP_N12 0
#endif
#ifndef DS_COOP_N13
#define DS_COOP_N13 0
#endif
#ifndef DS_COOP_N14
#define DS_COOP_N14 0
#endif
#ifndef DS_COOP_N15
#define DS_COOP_N15 0
#endif
#ifndef DS_COOP_N16
#define DS_COOP_N16 0
#endif

/* the shallow path: one hidden layer, the mse loss (code 0, DS_NET_MSE) and one output */
#define DS_COOP_SHALLOW (DS_COOP_LAYERS == 2 && DS_COOP_LOSS == 0 && DS_COOP_N2 == 1)

/* the shape's sizes, constants wherever their arguments are (also evaluated at run time, outside the hot loops) */
#if defined(__CUDACC__)
#define DS_COOP_CONSTEXPR __host__ __device__ constexpr
#else
#define DS_COOP_CONSTEXPR constexpr
#endif

/* n_l */
DS_COOP_CONSTEXPR ptrdiff_t ds_coop_n(int l)
{
    return l == 0 ? DS_COOP_N0 : l == 1 ? DS_COOP_N1 : l == 2 ? DS_COOP_N2 : l == 3 ? DS_COOP_N3 : l == 4 ? DS_COOP_N4
         : l == 5 ? DS_COOP_N5 : l == 6 ? DS_COOP_N6 : l == 7 ? DS_COOP_N7 : l == 8 ? DS_COOP_N8 : l == 9 ? DS_COOP_N9
         : l == 10 ? DS_COOP_N10 : l == 11 ? DS_COOP_N11 : l == 12 ? DS_COOP_N12 : l == 13 ? DS_COOP_N13
         : l == 14 ? DS_COOP_N14 : l == 15 ? DS_COOP_N15 : l == 16 ? DS_COOP_N16 : 0;
}

/* U_l: a thread's units of layer l's outputs */
DS_COOP_CONSTEXPR ptrdiff_t ds_coop_units(int l) { return (ds_coop_n(l + 1) + DS_COOP_THREADS - 1) / DS_COOP_THREADS; }

/* where layer l starts: in a thread's share (general path), in the network's θ (W_l; b_l follows it), in the mirror
 * (W_l, l >= 1, row-major as in θ), among the hidden activations a_1 … a_{L−1} every thread holds in full, and
 * among its own hidden units' (u of each layer) */
DS_COOP_CONSTEXPR ptrdiff_t ds_coop_at(int l)
{
    ptrdiff_t at = 0;
    for (int m = 0; m < l; m++)
        at += (ds_coop_n(m) + DS_COOP_BIAS) * ds_coop_units(m);
    return at;
}

DS_COOP_CONSTEXPR ptrdiff_t ds_coop_w_at(int l)
{
    ptrdiff_t at = 0;
    for (int m = 0; m < l; m++)
        at += (ds_coop_n(m) + DS_COOP_BIAS) * ds_coop_n(m + 1);
    return at;
}

DS_COOP_CONSTEXPR ptrdiff_t ds_coop_mirror_at(int l)
{
    ptrdiff_t at = 0;
    for (int m = 1; m < l; m++)
        at += ds_coop_n(m) * ds_coop_n(m + 1);
    return at;
}

DS_COOP_CONSTEXPR ptrdiff_t ds_coop_act_at(int l)
{
    ptrdiff_t at = 0;
    for (int m = 1; m < l; m++)
        at += ds_coop_n(m);
    return at;
}

DS_COOP_CONSTEXPR ptrdiff_t ds_coop_own_at(int l)
{
    ptrdiff_t at = 0;
    for (int m = 0; m < l; m++)
        at += ds_coop_units(m);
    return at;
}

/* the most units a thread holds in any layer */
DS_COOP_CONSTEXPR ptrdiff_t ds_coop_most_units(void)
{
    ptrdiff_t most = 1;
    for (int l = 0; l < DS_COOP_LAYERS; l++)
        most = ds_coop_units(l) > most ? ds_coop_units(l) : most;
    return most;
}

#if DS_COOP_SHALLOW
#define DS_COOP_INPUTS DS_COOP_N0
#define DS_COOP_WIDTH DS_COOP_N1
#define DS_COOP_UNITS ((DS_COOP_WIDTH + DS_COOP_THREADS - 1) / DS_COOP_THREADS)
#define DS_COOP_P (DS_COOP_UNITS * (DS_COOP_INPUTS + DS_COOP_BIAS + 1) + DS_COOP_BIAS)
#define DS_COOP_MIRROR 0
#else
#define DS_COOP_P ds_coop_at(DS_COOP_LAYERS)
#define DS_COOP_MIRROR ds_coop_mirror_at(DS_COOP_LAYERS)
#endif
/* values one exchange of the host's group passes (ds_team's slots) */
#define DS_COOP_SLOTS (DS_COOP_THREADS * ds_coop_most_units())

#if !defined(__CUDACC__)
#include <ucontext.h>
/* the host's group: G fibers of one host thread (gpu_kernels.cu's host copy), each running one GPU thread's code
 * until it meets the others (ds_coop_meet), then handing over to the next in turn, so that a fiber going on from a
 * meeting knows that every fiber has come to it (a barrier: what each wrote before it, all see after it) and none
 * has passed the next. Cheaper than G host threads at a barrier by orders of magnitude where the cores are fewer than
 * the threads (a thread switch a meeting, each through the kernel). They exchange values through two sets of slots
 * (used in turn, so that one meeting an exchange suffices: a set is written again only after every fiber has come to
 * the next meeting, hence read it) and the general path's mirror (a float held in a double's place). */
struct ds_team {
    ucontext_t fibers[DS_COOP_THREADS], host; /* host: the caller's, where each fiber returns once it has done */
    double slots[2][DS_COOP_SLOTS];
    double mirror[DS_COOP_MIRROR > 0 ? DS_COOP_MIRROR : 1];
};
#endif

/* one thread's view of its network: the problem as the training loop sees it (p: the share's size, trainable: the
 * share's flags) first, then the network's own */
typedef struct {
    ds_problem pb;
    const unsigned char *trainable; /* the network's flags (all its parameters) */
    ptrdiff_t p;                    /* the network's parameter count */
    int rank;                       /* this thread's place in the group, 0 … G − 1 */
    void *mirror;                   /* the group's mirror of W_1 … W_{L−1} (general path), DS_COOP_MIRROR values */
    unsigned char flags[DS_COOP_P];
#if !defined(__CUDACC__)
    ds_team *team;
    int turn; /* the set of slots the next exchange writes */
#endif
} ds_coop;

DS_INLINE const ds_coop *ds_coop_of(const ds_problem *pb) { return (const ds_coop *)pb; }

#if !defined(__CUDACC__)
/* the host's fiber `rank` meets the group's others (ds_team) */
DS_INLINE void ds_coop_meet(const ds_coop *co)
{
    swapcontext(&co->team->fibers[co->rank], &co->team->fibers[(co->rank + 1) % DS_COOP_THREADS]);
}
#endif

/* the θ index of the thread's compact parameter c, or −1 where c is a unit it does not have */
DS_INLINE ptrdiff_t ds_param_at(const ds_problem *pb, ptrdiff_t c)
{
#if DS_COOP_SHALLOW
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
#else
    int l;
    for (l = 0; l < DS_COOP_LAYERS; l++) {
        const ptrdiff_t fan_in = ds_coop_n(l), fan_out = ds_coop_n(l + 1), units = ds_coop_units(l),
                        k = c - ds_coop_at(l);
        if (k < (fan_in + DS_COOP_BIAS) * units) {
            const ptrdiff_t j = ds_coop_of(pb)->rank + (k % units) * DS_COOP_THREADS;
            if (j >= fan_out)
                return -1;
            return ds_coop_w_at(l) + (k < fan_in * units ? (k / units) * fan_out : fan_in * fan_out) + j;
        }
    }
    return -1;
#endif
}

/* the θ index this thread writes its compact parameter c to (theta_path): the shallow path's b2 by thread 0 alone */
DS_INLINE ptrdiff_t ds_param_out(const ds_problem *pb, ptrdiff_t c)
{
    return DS_COOP_SHALLOW && DS_COOP_BIAS && c == DS_COOP_P - 1 && ds_coop_of(pb)->rank != 0 ? -1
                                                                                              : ds_param_at(pb, c);
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
    ds_coop_meet(co);
    for (r = 0; r < DS_COOP_THREADS; r++)
        v = slots[r] > v ? slots[r] : v;
    return v;
#endif
}

/* the group's threads meet: what each wrote to the mirror before is seen by all after */
DS_INLINE void ds_coop_sync(const ds_problem *pb)
{
#if defined(__CUDACC__)
    (void)pb;
    __syncwarp(ds_coop_mask());
#else
    ds_coop_meet(ds_coop_of(pb));
#endif
}

/* the classifier's bookkeeping of ds_network_evaluate, alike in every thread of the group: each sample's prediction
 * counted (ds_coop_tally_add), then the fields (ds_coop_tally_end) */
#define DS_COOP_CLASSES (ds_coop_n(DS_COOP_LAYERS) > 2 ? ds_coop_n(DS_COOP_LAYERS) : 2)
typedef struct {
    ptrdiff_t correct, first;
    short distinct;
    int same, finite;
    unsigned char seen[DS_COOP_CLASSES];
} ds_coop_tally;

DS_INLINE void ds_coop_tally_begin(ds_coop_tally *tally)
{
    ptrdiff_t cl;
    tally->correct = tally->distinct = 0;
    tally->first = -1;
    tally->same = tally->finite = 1;
    for (cl = 0; cl < DS_COOP_CLASSES; cl++)
        tally->seen[cl] = 0;
}

/* a sample predicted as class best, labelled label, its outputs finite or not */
DS_INLINE void ds_coop_tally_add(ds_coop_tally *tally, ptrdiff_t best, ptrdiff_t label, int finite)
{
    tally->finite &= finite;
    tally->correct += best == label;
    tally->distinct += tally->seen[best] == 0;
    tally->seen[best] = 1;
    if (tally->first < 0)
        tally->first = best;
    tally->same &= best == tally->first;
}

DS_INLINE void ds_coop_tally_end(const ds_coop_tally *tally, ptrdiff_t samples, double *accuracy,
                                 signed char *collapsed, short *classes_predicted)
{
    *accuracy = tally->finite ? (double)tally->correct / (double)samples : DS_NAN;
    *collapsed = (signed char)(tally->finite && tally->same);
    *classes_predicted = tally->finite ? tally->distinct : 0;
}
#endif /* DS_COOP_COMMON */

/* ---- the cooperative network (per precision) ---------------------------------------------------------------- */

#if DS_COOP_SHALLOW /* ---- the shallow path ---- */

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
    ds_coop_meet(co);
    for (u = 0; u < DS_COOP_UNITS; u++)
        for (r = 0; r < DS_COOP_THREADS; r++)
            all[u * DS_COOP_THREADS + r].v = (DS_T)slots[u * DS_COOP_THREADS + r];
#endif
}

/* The forward pass of one sample xs (d inputs) as ds_network_shallow_with computes it (in exact arithmetic: fast
 * folds tanh_sqrt2's √2 there, not here): this thread's units' pre-activations pre[u] (Σ_i x_i·W1[i][j] from 0 in
 * index order, ·(1/√d) (mean_field), + b1[j] (bias)) and activations act[u]; returned: the output Σ_j h_j·w2_j
 * summed in index order from 0 (/√n_1/√n_1 (mean_field), + b2 (bias)), alike in every thread of the group. */
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
        s = DS_NAME(ds_divide)(s, root, 1 / (root * root), 2);
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
    const vec terms_inverse = 1 / n_terms, out_inverse = 1 / (root * root); /* fast arithmetic's (ds_divide) */
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
        delta = DS_NAME(ds_divide)((DS_T)2 * e, n_terms, terms_inverse, 1);
        dacc = DS_COOP_MEAN_FIELD ? DS_NAME(ds_divide)(delta, root, out_inverse, 2) : delta;
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
    ptrdiff_t n, i;
    ds_coop_tally tally;
    if (((const DS_T *)pb->consts)[DS_NET_CLASSIFIER] == 0)
        return;
    ds_coop_tally_begin(&tally);
    for (n = 0; n < samples; n++) {
        vec xs[DS_COOP_INPUTS], pre[DS_COOP_UNITS], act[DS_COOP_UNITS];
        DS_T out;
        DS_UNROLL for (i = 0; i < DS_COOP_INPUTS; i++)
            xs[i] = DS_NAME(ds_sample)(x + i * samples, n, NULL);
        out = DS_NAME(ds_coop_forward)(pb, th, c, xs, pre, act).v;
        ds_coop_tally_add(&tally, out > (DS_T)0.5, (ptrdiff_t)x[DS_COOP_INPUTS * samples + n], isfinite(out) != 0);
    }
    ds_coop_tally_end(&tally, samples, accuracy, collapsed, classes_predicted);
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

#else /* ---- the general path ---- */

/* the n outputs of a layer to every thread of the group: all[j] = unit j's value, mine[j div G] of thread j mod G */
template <ptrdiff_t n> DS_INLINE void DS_NAME(ds_coop_gather)(const ds_problem *pb, const vec *mine, vec *all)
{
    ptrdiff_t j;
#if defined(__CUDACC__)
    const unsigned mask = ds_coop_mask();
    (void)pb;
    DS_UNROLL for (j = 0; j < n; j++)
        all[j].v = __shfl_sync(mask, mine[j / DS_COOP_THREADS].v, (int)(j % DS_COOP_THREADS), DS_COOP_THREADS);
#else
    ds_coop *co = (ds_coop *)pb;
    double *slots = co->team->slots[co->turn];
    ptrdiff_t u;
    co->turn ^= 1;
    for (u = 0; u < (n + DS_COOP_THREADS - 1) / DS_COOP_THREADS; u++)
        slots[u * DS_COOP_THREADS + co->rank] = (double)mine[u].v; /* a float is exact in double */
    ds_coop_meet(co);
    for (j = 0; j < n; j++)
        all[j].v = (DS_T)slots[j];
#endif
}

/* Layer l's forward pass of one sample and the layers' above (ds_network_forward's operations): this thread's units'
 * pre-activations acc_j = Σ_i a_i·W_ij (from 0, in index order, over the layer's whole input: xs for layer 0, else
 * acts), then ·(1/√n_l) (mean_field, hidden) or /√n_l/√n_l (mean_field, output), then + b_j (bias); hidden: their
 * pre-activations and activations φ(z) kept (pre, act: own units), the activations shared into acts; the output
 * layer: the logits shared into outs, alike in every thread. */
template <int l>
DS_INLINE void DS_NAME(ds_coop_forward)(const ds_problem *pb, const DS_T *th, const DS_T *c, const vec *xs,
                                        vec *acts, vec *pre, vec *act, vec *outs)
{
    constexpr int last = DS_COOP_LAYERS - 1;
    constexpr ptrdiff_t fan_in = ds_coop_n(l), fan_out = ds_coop_n(l + 1), units = ds_coop_units(l),
                        own = ds_coop_own_at(l);
    const ptrdiff_t rank = ds_coop_of(pb)->rank;
    const DS_T *w = th + ds_coop_at(l), *b = w + fan_in * units;
    const vec *in = l == 0 ? xs : acts + ds_coop_act_at(l);
    const vec zero = {0}, slope = vload(c + DS_NET_SLOPE), scale = vload(c + DS_NET_WIDTHS + DS_COOP_LAYERS + 1 + l),
              root = vload(c + DS_NET_WIDTHS + 2 * DS_COOP_LAYERS + 1 + l);
    const vec root_inverse = 1 / (root * root); /* fast arithmetic's (ds_divide), the output layer's */
    vec mine[units];
    ptrdiff_t u, i;
    DS_UNROLL for (u = 0; u < units; u++) {
        vec acc = zero;
        if (rank + u * DS_COOP_THREADS < fan_out) { /* a unit the network has */
            for (i = 0; i < fan_in; i++)
                acc = acc + in[i] * vload(w + i * units + u);
            if (DS_COOP_MEAN_FIELD)
                acc = l == last ? DS_NAME(ds_divide)(acc, root, root_inverse, 2) : acc * scale;
            if (DS_COOP_BIAS)
                acc = acc + vload(b + u);
        }
        mine[u] = acc;
        if (l < last) {
            pre[own + u] = acc;
            act[own + u] = mine[u] = DS_NAME(ds_network_phi)(DS_COOP_ACTIVATION, acc, slope);
        }
    }
    DS_NAME(ds_coop_gather)<fan_out>(pb, mine, l == last ? outs : acts + ds_coop_act_at(l + 1));
    if constexpr (l < last)
        DS_NAME(ds_coop_forward)<l + 1>(pb, th, c, xs, acts, pre, act, outs);
}

/* Layer l's backward pass of one sample and the layers' below it down to `lowest` (ds_network's): delta, the errors
 * δ_j of this thread's units of layer l's outputs; ∂acc_j = δ_j·(1/√n_l) (mean_field, hidden) or δ_j/√n_l/√n_l
 * (mean_field, output); where the layer trains, each gradient entry gets the sample's term a_i·∂acc_j (and δ_j, the
 * bias's); the errors of the layer's inputs, φ'(Σ_j W_ij·∂acc_j) in index order j, from the mirror's row i and every
 * ∂acc_j (shared), at the owner of input i. */
template <int l>
DS_INLINE void DS_NAME(ds_coop_backward)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c,
                                         const vec *xs, const vec *acts, const vec *pre, const vec *act,
                                         const vec *delta, ptrdiff_t lowest)
{
    constexpr int last = DS_COOP_LAYERS - 1;
    constexpr ptrdiff_t fan_in = ds_coop_n(l), fan_out = ds_coop_n(l + 1), units = ds_coop_units(l);
    const ds_coop *co = ds_coop_of(pb);
    const ptrdiff_t rank = co->rank;
    const vec *in = l == 0 ? xs : acts + ds_coop_act_at(l);
    DS_T *gw = g + ds_coop_at(l), *gb = gw + fan_in * units;
    const vec scale = vload(c + DS_NET_WIDTHS + DS_COOP_LAYERS + 1 + l),
              root = vload(c + DS_NET_WIDTHS + 2 * DS_COOP_LAYERS + 1 + l);
    const vec root_inverse = 1 / (root * root); /* fast arithmetic's (ds_divide), the output layer's */
    vec dacc[units];
    ptrdiff_t u, i;
    DS_UNROLL for (u = 0; u < units; u++)
        dacc[u] = DS_COOP_MEAN_FIELD
                      ? (l == last ? DS_NAME(ds_divide)(delta[u], root, root_inverse, 2) : delta[u] * scale)
                      : delta[u];
    if (co->trainable[ds_coop_w_at(l)]) {
        DS_UNROLL for (u = 0; u < units; u++) {
            if (rank + u * DS_COOP_THREADS >= fan_out) /* a unit the network does not have */
                continue;
            for (i = 0; i < fan_in; i++)
                vstore(gw + i * units + u, vload(gw + i * units + u) + in[i] * dacc[u]);
            if (DS_COOP_BIAS)
                vstore(gb + u, vload(gb + u) + delta[u]);
        }
    }
    if (l == lowest)
        return;
    if constexpr (l > 0) {
        constexpr ptrdiff_t below = ds_coop_units(l - 1), own = ds_coop_own_at(l - 1);
        const DS_T *w = (const DS_T *)co->mirror + ds_coop_mirror_at(l);
        const vec zero = {0}, slope = vload(c + DS_NET_SLOPE);
        vec all[fan_out], next[below];
        ptrdiff_t j;
        DS_NAME(ds_coop_gather)<fan_out>(pb, dacc, all);
        DS_UNROLL for (u = 0; u < below; u++) {
            const ptrdiff_t input = rank + u * DS_COOP_THREADS;
            vec acc = zero;
            if (input < fan_in) {
                for (j = 0; j < fan_out; j++)
                    acc = acc + vload(w + input * fan_out + j) * all[j];
                acc = DS_NAME(ds_network_phi_backward)(DS_COOP_ACTIVATION, acc, pre[own + u], act[own + u], slope);
            }
            next[u] = acc;
        }
        DS_NAME(ds_coop_backward)<l - 1>(pb, th, g, c, xs, acts, pre, act, next, lowest);
    }
}

/* the mirror of W_1 … W_{L−1} from the group's shares: written once every thread has done reading it (the group's
 * first sync), read once every thread has written its columns (the second) */
DS_INLINE void DS_NAME(ds_coop_mirror)(const ds_problem *pb, const DS_T *th)
{
    const ptrdiff_t rank = ds_coop_of(pb)->rank;
    DS_T *mirror = (DS_T *)ds_coop_of(pb)->mirror;
    ptrdiff_t i, u;
    int l;
    ds_coop_sync(pb);
    for (l = 1; l < DS_COOP_LAYERS; l++) {
        const ptrdiff_t fan_in = ds_coop_n(l), fan_out = ds_coop_n(l + 1), units = ds_coop_units(l);
        const DS_T *w = th + ds_coop_at(l);
        DS_T *to = mirror + ds_coop_mirror_at(l);
        for (u = 0; u < units && rank + u * DS_COOP_THREADS < fan_out; u++)
            for (i = 0; i < fan_in; i++)
                to[i * fan_out + rank + u * DS_COOP_THREADS] = w[i * units + u];
    }
    ds_coop_sync(pb);
}

/* the lowest layer that trains: errors go no further down (ds_network's) */
DS_INLINE ptrdiff_t DS_NAME(ds_coop_lowest)(const ds_problem *pb)
{
    ptrdiff_t lowest;
    for (lowest = 0; lowest < DS_COOP_LAYERS - 1 && !ds_coop_of(pb)->trainable[ds_coop_w_at((int)lowest)]; lowest++)
        ;
    return lowest;
}

/* ds_network on this thread's share: the loss (alike in the group: each thread computes it from every logit, as
 * ds_network does) and, where g is not NULL, the gradient of the share (each entry its samples' terms added in
 * sample order, as there). keys as ds_network. */
DS_INLINE vec DS_NAME(ds_coop_network)(const ds_problem *pb, const DS_T *th, DS_T *g, const DS_T *c,
                                       const uint64_t *keys)
{
    constexpr int last = DS_COOP_LAYERS - 1;
    constexpr ptrdiff_t d = DS_COOP_N0, outputs = ds_coop_n(DS_COOP_LAYERS), top_units = ds_coop_units(last);
    constexpr ptrdiff_t hidden = ds_coop_act_at(DS_COOP_LAYERS), own = ds_coop_own_at(last);
    const ptrdiff_t rank = ds_coop_of(pb)->rank, lowest = DS_NAME(ds_coop_lowest)(pb);
    const ptrdiff_t samples = pb->samples, batch = keys != NULL ? pb->batch_size : 0;
    const ptrdiff_t count = batch > 0 ? batch : pb->eval_count;
    const DS_T *x = (const DS_T *)pb->data, *y = x + d * samples;
    const vec zero = {0}, n_terms = zero + (DS_T)count, terms_inverse = 1 / n_terms; /* fast's (ds_divide) */
    vec loss = zero;
    ptrdiff_t n, i, u, cl, index[1];
    for (i = 0; g != NULL && i < DS_COOP_P; i++)
        g[i] = 0;
    if (g != NULL && lowest < last)
        DS_NAME(ds_coop_mirror)(pb, th);
    for (n = 0; n < count; n++) {
        const ptrdiff_t *at = DS_NAME(ds_lane_samples)(pb, keys, batch, n, index), column = at != NULL ? at[0] : n;
        vec xs[d], acts[hidden > 0 ? hidden : 1], pre[own > 0 ? own : 1], act[own > 0 ? own : 1], outs[outputs],
            errors[outputs], delta[top_units];
        vec target;
        for (i = 0; i < d; i++) { /* ds_sample's values, the sample's column found once */
            const vec value = {x[i * samples + column]};
            xs[i] = at != NULL ? value : zero + value;
        }
        DS_NAME(ds_coop_forward)<0>(pb, th, c, xs, acts, pre, act, outs);
        target = DS_NAME(ds_sample)(y, n, at);
        if (DS_COOP_LOSS == DS_NET_MSE) {
            const vec e = outs[0] - target;
            loss = loss + e * e;
            errors[0] = DS_NAME(ds_divide)((DS_T)2 * e, n_terms, terms_inverse, 1);
        } else if (DS_COOP_LOSS == DS_NET_SIGMOID_BCE) {
            const vec v = outs[0];
            const vec a = DS_NAME(ds_exp_nonpositive)((vec)((vmask)v | (vmask)(-zero))); /* −|v| */
            const vec sigma = vselect(v >= zero, 1 / (1 + a), a / (1 + a));
            loss = loss + (((vec)((v > zero) & (vmask)v) - v * target) + DS_NAME(ds_log_at_least_one)(1 + a));
            errors[0] = DS_NAME(ds_divide)(sigma - target, n_terms, terms_inverse, 1);
        } else { /* softmax_ce: μ the first largest logit, s = Σ exp(z − μ) in class order */
            vec top = outs[0], s = zero;
            for (cl = 1; cl < outputs; cl++)
                top = vselect(outs[cl] > top, outs[cl], top);
            for (cl = 0; cl < outputs; cl++) {
                errors[cl] = DS_NAME(ds_exp_nonpositive)(outs[cl] - top);
                s = s + errors[cl];
            }
            loss = loss + ((top + DS_NAME(ds_log_at_least_one)(s)) - outs[(ptrdiff_t)target.v]);
            if (g != NULL) {
                const vec s_inverse = 1 / s; /* fast arithmetic's (ds_divide) */
                for (cl = 0; cl < outputs; cl++) {
                    const vec onehot = (vec)((target == (DS_T)cl) & (vmask)(zero + 1));
                    const vec softmax = DS_NAME(ds_divide)(errors[cl], s, s_inverse, 1);
                    errors[cl] = DS_NAME(ds_divide)(softmax - onehot, n_terms, terms_inverse, 1);
                }
            }
        }
        if (g == NULL)
            continue;
        DS_UNROLL for (u = 0; u < top_units; u++) {
            const ptrdiff_t j = rank + u * DS_COOP_THREADS;
            delta[u] = j < outputs ? errors[j] : zero;
        }
        DS_NAME(ds_coop_backward)<last>(pb, th, g, c, xs, acts, pre, act, delta, lowest);
    }
    return loss / n_terms;
}

/* ds_network_evaluate on the group's network (every thread gets the same accuracy, collapse and classes predicted):
 * the prediction the first largest logit (softmax_ce), z > 0 (sigmoid_bce), z > 0.5 (mse) */
DS_INLINE void DS_NAME(ds_coop_evaluate)(const ds_problem *pb, const DS_T *th, const DS_T *c, double *accuracy,
                                         signed char *collapsed, short *classes_predicted)
{
    constexpr int last = DS_COOP_LAYERS - 1;
    constexpr ptrdiff_t d = DS_COOP_N0, outputs = ds_coop_n(DS_COOP_LAYERS);
    constexpr ptrdiff_t hidden = ds_coop_act_at(DS_COOP_LAYERS), own = ds_coop_own_at(last);
    const ptrdiff_t samples = pb->samples;
    const DS_T *x = (const DS_T *)pb->data;
    ptrdiff_t n, i, cl;
    ds_coop_tally tally;
    if (((const DS_T *)pb->consts)[DS_NET_CLASSIFIER] == 0)
        return;
    ds_coop_tally_begin(&tally);
    for (n = 0; n < samples; n++) {
        vec xs[d], acts[hidden > 0 ? hidden : 1], pre[own > 0 ? own : 1], act[own > 0 ? own : 1], outs[outputs];
        ptrdiff_t best = 0;
        int finite = 1;
        for (i = 0; i < d; i++)
            xs[i] = DS_NAME(ds_sample)(x + i * samples, n, NULL);
        DS_NAME(ds_coop_forward)<0>(pb, th, c, xs, acts, pre, act, outs);
        for (cl = 0; cl < outputs; cl++) {
            finite &= isfinite(outs[cl].v) != 0;
            if (outs[cl].v > outs[best].v)
                best = cl;
        }
        if (DS_COOP_LOSS != DS_NET_SOFTMAX_CE)
            best = outs[0].v > (DS_COOP_LOSS == DS_NET_SIGMOID_BCE ? (DS_T)0 : (DS_T)0.5);
        ds_coop_tally_add(&tally, best, (ptrdiff_t)x[d * samples + n], finite);
    }
    ds_coop_tally_end(&tally, samples, accuracy, collapsed, classes_predicted);
}

/* offset_mode every_step: the drift added to this thread's W_0 entries (ds_network_drift) */
DS_INLINE void DS_NAME(ds_coop_drift)(const ds_problem *pb, DS_T *th, const DS_T *c, vmask go)
{
    const DS_T *row0 = (const DS_T *)pb->consts;
    const vec drift = vload(c + DS_NET_DRIFT);
    const ptrdiff_t rank = ds_coop_of(pb)->rank, units = ds_coop_units(0);
    ptrdiff_t i;
    if (row0[DS_NET_EVERY_STEP] == 0)
        return;
    for (i = 0; i < DS_COOP_N0 * units; i++)
        if (rank + (i % units) * DS_COOP_THREADS < DS_COOP_N1)
            vstore(th + i, vselect(go, vload(th + i) + drift, vload(th + i)));
}
#endif
