/* What the kernels are given and what they write: the models' and optimisers' kernel ids, a group of
 * trajectories (ds_problem), the outcome rules' thresholds (ds_rules) and the fields (ds_outputs), alike in every
 * precision and on both engines. */
#ifndef DESCENTSIM_PROBLEM_H
#define DESCENTSIM_PROBLEM_H

#include "lanes.h"

enum {
    DS_QUADRATIC = 0, DS_DOUBLE_WELL = 1, DS_UV = 2, DS_RELU_NEURON = 3, DS_FORMULA = 6, DS_NETWORK = 7
};
enum { DS_GD = 0, DS_MOMENTUM = 1, DS_NESTEROV = 2, DS_ADAM = 3, DS_ADAMW = 4, DS_RMSPROP = 5 };
enum { DS_CONVERGED = 1, DS_DIVERGED = 2, DS_STUCK = 3, DS_CYCLING = 4, DS_UNRESOLVED = 5 };

#define DS_SCORE_CLIP 1e6 /* normalised losses above this (and non-finite ones) count as this */
#define DS_SCORE_WINDOW 20 /* the score's trainability test averages this many final values */
/* trajectories run in the lanes of DS_VECTOR_BYTES-byte SIMD vectors (lanes.h): 8 in float, 4 in double at 32 */
#define DS_LANES_OF(T) ((ptrdiff_t)(DS_VECTOR_BYTES / sizeof(T)))
#define DS_LANES_F32 DS_LANES_OF(float)
#define DS_LANES_F64 DS_LANES_OF(double)

typedef struct {
    ptrdiff_t steps;        /* budget of updates */
    double converge_loss;   /* CONVERGED when L_t <= this ... */
    ptrdiff_t converge_window; /* ... at each of this many steps in a row */
    double diverge_factor;  /* DIVERGED when L_t > this·L_0 or not finite */
    double stuck_tol;       /* STUCK when max L − min L <= this·max L over the final window */
    double cycle_tol;       /* CYCLING tolerance, relative to 1 + max|θ| */
    ptrdiff_t k_max;        /* cycle lags checked: 1..k_max */
    ptrdiff_t window_start; /* first step of the STUCK window */
    ptrdiff_t last_start;   /* first step of the score's final window */
    ptrdiff_t converge_from; /* CONVERGED only from this step on: the learning-rate factor never rises after it */
    ptrdiff_t diverge_from;  /* DIVERGED by the bound only from this step on: the factor never falls after it */
} ds_rules;

/* One group of trajectories: a model, an optimiser, and arrays in the precision being run. */
typedef struct {
    int model, optimizer;
    ptrdiff_t p, samples, data_rows, n_consts, n_hyper;
    const void *theta0; /* (n, p) initial parameters */
    const void *consts; /* (n, n_consts) per-point model constants */
    const void *data;   /* (data_rows, samples) shared data */
    const void *hyper;  /* (n, n_hyper) per-point optimiser hyperparameters, lr first */
    const double *lr_factors; /* (steps,) learning-rate schedule f(t), or NULL for f = 1 */
    const void *lr_scale; /* (n, p) per-parameter learning-rate multipliers, or NULL for 1 */
    const unsigned char *trainable; /* (p,) which parameters move */
    ptrdiff_t batch_size;           /* samples per minibatch, 0 for the full batch */
    uint64_t batch_seed;
    int batch_per_point;            /* 1: each grid point its own sequence (point_id), 0: one for all */
    int batch_sequential;           /* 1: update t takes samples t·batch_size + j (mod samples) */
    const long long *point_id;      /* (n,) grid index of each row, or NULL */
    ptrdiff_t eval_count;           /* samples of the full-data loss the rules judge (the first ones) */
} ds_problem;

/* Where the fields of point i go, and the recorded curves of every point when asked for: the full-data
 * loss L_t (loss_path, (n, steps + 1)), θ_t (theta_path, (n, steps + 1, p)) and the training accuracy at
 * t = 0, stride, 2·stride, ... (accuracy_path, (n, steps / stride + 1)); NULL where not recorded. */
typedef struct {
    unsigned char *outcome;
    int *steps, *period, *attractor;
    double *final_loss, *loss_sum, *score, *accuracy, *batch_loss;
    signed char *collapsed;
    short *classes_predicted;
    double *loss_path, *theta_path, *accuracy_path;
    ptrdiff_t stride;
} ds_outputs;

#if !defined(DS_COOP)
/* Hooks of the cooperative kernel (coop.h), where each thread of a group holds a share of one network's θ; where a
 * lane holds the whole of θ they are what they say. ds_param_value: a lane's parameter i from the row of θ at
 * rows + start (theta0, lr_scale), `none` where it has no such parameter; ds_param_store: a lane's parameter i
 * written to row `at` of rows of p (theta_path; the cooperative kernel's rows are the network's); ds_params: a
 * point's parameter count (a row's length); ds_group_max: the largest v of the threads sharing the point;
 * ds_writes: whether this thread writes the point's fields. */
#define ds_param_value(pb, rows, start, i, none) ((rows)[start + i])
#define ds_param_store(pb, rows, at, p, i, value) ((rows)[(at) * p + i] = (value))
#define ds_params(pb) ((pb)->p)
#define ds_group_max(pb, v) (v)
#define ds_writes(pb) 1
#endif

/* Minibatches (descentsim.sampling): SplitMix64's finaliser, arithmetic modulo 2^64 */
DS_INLINE uint64_t ds_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* key(t, p) = mix(mix(seed ^ golden) + t·0xD1B54A32D192ED03 + p·0x8CB92BA72F3D8DD7); index_j = mix(key + j) mod n */
DS_INLINE uint64_t ds_batch_key(uint64_t seed, uint64_t t, uint64_t point)
{
    return ds_mix(ds_mix(seed ^ 0x9E3779B97F4A7C15ULL) + t * 0xD1B54A32D192ED03ULL + point * 0x8CB92BA72F3D8DD7ULL);
}

/* v = L/L_0 for the score: non-finite → 1e6, clipped at 1e6 (ratio = L/L_0, or 0 where L_0 = 0) */
DS_INLINE double ds_clip_ratio(double ratio)
{
    return (!isfinite(ratio) || ratio > DS_SCORE_CLIP) ? DS_SCORE_CLIP : ratio;
}

#endif
