/* descentsim's compiled kernels: gradient-descent trajectories with the models, the optimisers and
 * the outcome rules, for float and double.
 *
 * The maths and the rules mirror the NumPy reference (descentsim.backends.reference and the models'
 * loss_grad) operation for operation, including the order of every sum, so the engines agree bit for
 * bit (the build disables floating-point contraction). One thread runs 32 bytes' worth of
 * trajectories at once, one per SIMD lane (GCC/Clang vector extensions). trajectory.h is the body, instantiated here
 * once per precision. On x86-64 Linux (glibc) with GCC, ds_train_points_* also gets an AVX2 clone
 * chosen at run time: the same IEEE operations on wider registers, hence the same bits.
 *
 * Needs GCC >= 9 or Clang (vector extensions with __builtin_convertvector).
 */
#ifndef DESCENTSIM_KERNELS_H
#define DESCENTSIM_KERNELS_H

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 9
#error "descentsim's kernels need GCC 9 or newer (or Clang): load a newer compiler module"
#endif

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

enum { DS_QUADRATIC = 0, DS_DOUBLE_WELL = 1, DS_UV = 2, DS_RELU_NEURON = 3 };
enum { DS_GD = 0, DS_MOMENTUM = 1, DS_NESTEROV = 2, DS_ADAM = 3 };
enum { DS_CONVERGED = 1, DS_DIVERGED = 2, DS_STUCK = 3, DS_CYCLING = 4, DS_UNRESOLVED = 5 };

#define DS_SCORE_CLIP 1e6 /* normalised losses above this (and non-finite ones) count as this */
#define DS_SCORE_WINDOW 20 /* the score's trainability test averages this many final values */
/* trajectories run in the lanes of 32-byte SIMD vectors: 8 in float, 4 in double */
#define DS_LANES_OF(T) ((ptrdiff_t)(32 / sizeof(T)))
#define DS_LANES_F32 DS_LANES_OF(float)
#define DS_LANES_F64 DS_LANES_OF(double)

typedef struct {
    ptrdiff_t steps;        /* budget of updates */
    double converge_loss;   /* CONVERGED when L_t <= this */
    double diverge_factor;  /* DIVERGED when L_t > this·L_0 or not finite */
    double stuck_tol;       /* STUCK when max L − min L <= this·max L over the final window */
    double cycle_tol;       /* CYCLING tolerance, relative to 1 + max|θ| */
    ptrdiff_t k_max;        /* cycle lags checked: 1..k_max */
    ptrdiff_t window_start; /* first step of the STUCK window */
    ptrdiff_t last_start;   /* first step of the score's final window */
} ds_rules;

/* One group of trajectories: a model, an optimiser, and arrays in the precision being run. */
typedef struct {
    int model, optimizer, w_only;
    ptrdiff_t p, samples, n_consts, n_hyper;
    const void *theta0; /* (n, p) initial parameters */
    const void *consts; /* (n, n_consts) per-point model constants */
    const void *data;   /* (D, samples) shared data */
    const void *hyper;  /* (n, n_hyper) per-point optimiser hyperparameters, lr first */
    const double *lr_factors; /* (steps,) learning-rate schedule f(t), or NULL for f = 1 */
    const unsigned char *trainable; /* (p,) which parameters move */
} ds_problem;

/* Optimiser state per trajectory, in vectors of lanes: momentum and nesterov a velocity per parameter;
 * adam the moments m and v per parameter, then the bias-correction products c1 and c2. */
static inline ptrdiff_t ds_state_vectors(int optimizer, ptrdiff_t p)
{
    switch (optimizer) {
    case DS_MOMENTUM:
    case DS_NESTEROV:
        return p;
    case DS_ADAM:
        return 2 * p + 2;
    default:
        return 0;
    }
}

/* Where the fields of point i go. */
typedef struct {
    unsigned char *outcome;
    int *steps, *period, *attractor;
    double *final_loss, *loss_sum, *score;
} ds_outputs;

/* helpers are forced inline so that each clone of ds_train_points compiles them for its own target */
#define DS_INLINE static inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define DS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DS_CLONES
#endif

/* v = L/L_0 for the score: non-finite → 1e6, clipped at 1e6 (ratio = L/L_0, or 0 where L_0 = 0) */
DS_INLINE double ds_clip_ratio(double ratio)
{
    return (!isfinite(ratio) || ratio > DS_SCORE_CLIP) ? DS_SCORE_CLIP : ratio;
}

#define DS_T float
#define DS_MASK_T int
#define DS_NAME(name) name##_f32
#define DS_TINY FLT_MIN
#define DS_SQRT sqrtf
#include "trajectory.h"
#undef DS_T
#undef DS_MASK_T
#undef DS_NAME
#undef DS_TINY
#undef DS_SQRT

#define DS_T double
#define DS_MASK_T long long
#define DS_NAME(name) name##_f64
#define DS_TINY DBL_MIN
#define DS_SQRT sqrt
#include "trajectory.h"
#undef DS_T
#undef DS_MASK_T
#undef DS_NAME
#undef DS_TINY
#undef DS_SQRT

#endif
