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
#include <stdint.h>
#include <string.h>

enum {
    DS_QUADRATIC = 0, DS_DOUBLE_WELL = 1, DS_UV = 2, DS_RELU_NEURON = 3, DS_FORMULA = 6, DS_NETWORK = 7
};
/* The formula model's operations (descentsim.formula.OPS, in this order): instruction k of the program writes
 * register k from registers a, b (or parameter/knob a, or its literal) */
enum {
    DS_OP_CONST, DS_OP_PARAM, DS_OP_KNOB, DS_OP_COPY, DS_OP_ADD, DS_OP_SUB, DS_OP_MUL, DS_OP_DIV, DS_OP_NEG,
    DS_OP_SQRT, DS_OP_ABS, DS_OP_SIGN, DS_OP_SIN, DS_OP_COS, DS_OP_EXP, DS_OP_LOG, DS_OP_TANH
};
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

/* tanh, exp and log from + − × ÷ alone (Cephes' exp, atanh series): the constants of descentsim.numerics */
static const double DS_LOG2E = 1.4426950408889634, DS_LN2_HI = 6.93145751953125e-1,
                    DS_LN2_LO = 1.42860682030941723212e-6, DS_TANH_CAP = 22.0, DS_EXP_FLOOR = -87.0,
                    DS_SQRT_HALF = 0.70710678118654752440, DS_SQRT2 = 1.4142135623730951;
/* R(w) = Σ_{i=0..9} w^i/(2i + 3), highest power first */
static const double DS_ATANH_R[10] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13,
                                      1.0 / 11, 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3};
static const double DS_EXP_P[3] = {1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1};
static const double DS_EXP_Q[4] = {3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
                                   2.00000000000000000009e0};
/* sin and cos (descentsim.numerics: Cephes sin.c's polynomials, reduction by π/2) */
static const double DS_TWO_OVER_PI = 0.63661977236758134308;
static const double DS_SIN_C[6] = {1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
                                   -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1};
static const double DS_COS_C[6] = {-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
                                   2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2};
enum { DS_GD = 0, DS_MOMENTUM = 1, DS_NESTEROV = 2, DS_ADAM = 3, DS_ADAMW = 4, DS_RMSPROP = 5 };
enum { DS_CONVERGED = 1, DS_DIVERGED = 2, DS_STUCK = 3, DS_CYCLING = 4, DS_UNRESOLVED = 5 };

#define DS_SCORE_CLIP 1e6 /* normalised losses above this (and non-finite ones) count as this */
#define DS_SCORE_WINDOW 20 /* the score's trainability test averages this many final values */
/* trajectories run in the lanes of 32-byte SIMD vectors: 8 in float, 4 in double */
#define DS_LANES_OF(T) ((ptrdiff_t)(32 / sizeof(T)))
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

/* Minibatches (descentsim.sampling): SplitMix64's finaliser, arithmetic modulo 2^64 */
static inline uint64_t ds_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* key(t, p) = mix(mix(seed ^ golden) + t·0xD1B54A32D192ED03 + p·0x8CB92BA72F3D8DD7); index_j = mix(key + j) mod n */
static inline uint64_t ds_batch_key(uint64_t seed, uint64_t t, uint64_t point)
{
    return ds_mix(ds_mix(seed ^ 0x9E3779B97F4A7C15ULL) + t * 0xD1B54A32D192ED03ULL + point * 0x8CB92BA72F3D8DD7ULL);
}

/* A network with one hidden layer and the mse loss (ds_network_shallow) takes DS_NET_UNITS hidden units and
 * DS_NET_POINTS samples at a time. */
#define DS_NET_UNITS 8
#define DS_NET_POINTS 8

/* Model work space per trajectory, in vectors of lanes. The network: a_0 … a_{L−1} and z_1 … z_L (each at most
 * the weights), two error buffers (<= 2·p); with one hidden layer, its pre-activations, activations and errors
 * for DS_NET_POINTS samples (the width n_1 <= p/(n_0 + 1), the data's rows). The formula: one register per
 * instruction of the program (the data's rows). */
static inline ptrdiff_t ds_model_vectors(int model, ptrdiff_t p, ptrdiff_t data_rows)
{
    switch (model) {
    case DS_NETWORK:
        return 4 * p + 3 * DS_NET_POINTS * (p / data_rows);
    case DS_FORMULA:
        return data_rows;
    default:
        return 0;
    }
}

/* Optimiser state per trajectory, in vectors of lanes: momentum and nesterov a velocity per parameter;
 * rmsprop the mean square v per parameter; adam and adamw the moments m and v per parameter, then the
 * bias-correction products c1 and c2. */
static inline ptrdiff_t ds_state_vectors(int optimizer, ptrdiff_t p)
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

/* Work space of one thread, in vectors of lanes: θ, ∇L, learning-rate scales and k_max + 1 past θ
 * (p each), constants, hyperparameters, optimiser state and model work space (ds_train_points carves it). */
static inline ptrdiff_t ds_work_vectors(int model, int optimizer, ptrdiff_t p, ptrdiff_t n_consts, ptrdiff_t n_hyper,
                                        ptrdiff_t data_rows, ptrdiff_t k_max)
{
    return (k_max + 4) * p + n_consts + n_hyper + ds_state_vectors(optimizer, p) + ds_model_vectors(model, p, data_rows);
}

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

/* a loop of constant length unrolled, so that arrays indexed by it can live in registers */
#if defined(__clang__)
#define DS_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DS_UNROLL _Pragma("GCC unroll 16")
#else
#define DS_UNROLL
#endif

/* helpers are forced inline so that each clone of ds_train_points compiles them for its own target */
#define DS_INLINE static inline __attribute__((always_inline))

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#if defined(DS_ARITHMETIC_FAST) /* arithmetic = "fast": built with contraction, so the clone fuses multiply-adds */
#define DS_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define DS_CLONES __attribute__((target_clones("avx2", "default")))
#endif
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
#define DS_EXPONENT_BIAS 127
#define DS_MANTISSA_BITS 23
/* descentsim.numerics' per-precision constants: EXP_RANGE, SIN_COS_PIO2, SIN_COS_MAX */
#define DS_EXP_LOW (-104.0)
#define DS_EXP_HIGH 89.0
#define DS_PIO2_1 1.5703125
#define DS_PIO2_2 4.837512969970703125e-4
#define DS_PIO2_3 7.54978995489188216e-8
#define DS_SIN_COS_MAX 32768.0
#include "trajectory.h"

#define DS_T double
#define DS_MASK_T long long
#define DS_NAME(name) name##_f64
#define DS_TINY DBL_MIN
#define DS_SQRT sqrt
#define DS_EXPONENT_BIAS 1023
#define DS_MANTISSA_BITS 52
#define DS_EXP_LOW (-746.0)
#define DS_EXP_HIGH 710.0
#define DS_PIO2_1 1.57079625129699707031e0
#define DS_PIO2_2 7.54978941586159635335e-8
#define DS_PIO2_3 5.39030285815811905290e-15
#define DS_SIN_COS_MAX 536870912.0
#include "trajectory.h"

#endif
