"""Compiled engine: OpenMP threads over grid points, one trajectory each (kernels.h does the maths).

Each trajectory touches only its own scratch row, so results do not depend on the thread count or on
which points share a call.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define DS_OPENMP 1
    #define ds_max_threads() omp_get_max_threads()
    #else
    #define DS_OPENMP 0
    #define ds_max_threads() 1
    #endif
    """
    int DS_OPENMP
    int ds_max_threads() nogil

cdef extern from "kernels.h" nogil:
    enum:
        DS_QUADRATIC
        DS_DOUBLE_WELL
        DS_UV
        DS_RELU_NEURON
        DS_GD
    ctypedef struct ds_rules:
        Py_ssize_t steps
        double converge_loss
        double diverge_factor
        double stuck_tol
        double cycle_tol
        Py_ssize_t k_max
        Py_ssize_t window_start
        Py_ssize_t last_start
    ctypedef struct ds_result:
        unsigned char outcome
        int steps
        int period
        int attractor
        double final_loss
        double loss_sum
        double score
    ds_result ds_train_one_f32(int model, int optimizer, Py_ssize_t p, Py_ssize_t samples, int w_only,
                               const float* theta0, const float* c, const float* data, const float* hyper,
                               const unsigned char* trainable, const ds_rules* rules,
                               float* th, float* g, float* history)
    ds_result ds_train_one_f64(int model, int optimizer, Py_ssize_t p, Py_ssize_t samples, int w_only,
                               const double* theta0, const double* c, const double* data, const double* hyper,
                               const unsigned char* trainable, const ds_rules* rules,
                               double* th, double* g, double* history)

# Kernel ids; the Python models and optimisers refer to them by name.
MODEL_IDS = {"quadratic": DS_QUADRATIC, "double_well": DS_DOUBLE_WELL, "uv": DS_UV, "relu_neuron": DS_RELU_NEURON}
OPTIMIZER_IDS = {"gd": DS_GD}
OPENMP = bool(DS_OPENMP)
SCORE_WINDOW = 20


def max_threads():
    """Threads OpenMP would use by default (1 without OpenMP)."""
    return ds_max_threads()


def train(
    str model_name,
    str optimizer_name,
    const floating[:, ::1] theta0,        # IN (n, P) initial parameters
    const floating[:, ::1] consts,        # IN (n, C) per-point model constants
    const floating[:, ::1] data,          # IN (D, S) shared data
    const floating[:, ::1] hyper,         # IN (n, H) per-point optimiser hyperparameters
    const unsigned char[::1] trainable,   # IN (P,) which parameters move
    Py_ssize_t steps,                     # IN budget of updates
    double converge_loss, double diverge_factor, Py_ssize_t stuck_window, double stuck_tol,
    Py_ssize_t max_period, double cycle_tol,  # IN outcome thresholds
    floating[:, ::1] scratch,             # IN/OUT (threads, (max_period + 3)·P) per-thread work space
    unsigned char[::1] outcome,           # OUT (n,)
    int[::1] steps_out,                   # OUT (n,)
    double[::1] final_loss,               # OUT (n,)
    double[::1] loss_sum,                 # OUT (n,)
    int[::1] period,                      # OUT (n,)
    int[::1] attractor,                   # OUT (n,)
    double[::1] score,                    # OUT (n,)
):
    """Train every row of theta0 and classify it (see descentsim.outcome for the rules)."""
    cdef int model = MODEL_IDS[model_name]
    cdef int optimizer = OPTIMIZER_IDS[optimizer_name]
    cdef Py_ssize_t n = theta0.shape[0], p = theta0.shape[1], samples = data.shape[1]
    cdef int n_threads = <int>scratch.shape[0]
    cdef int w_only = model == DS_RELU_NEURON and not (trainable[1] or trainable[2] or trainable[3])
    cdef ds_rules rules
    cdef ds_result res
    cdef Py_ssize_t i, k_max = max_period if max_period < steps else steps
    cdef floating* work
    if scratch.shape[1] < (k_max + 3) * p:
        raise ValueError("scratch is too small")
    rules.steps = steps
    rules.converge_loss = converge_loss
    rules.diverge_factor = diverge_factor
    rules.stuck_tol = stuck_tol
    rules.cycle_tol = cycle_tol
    rules.k_max = k_max
    rules.window_start = steps - stuck_window if steps > stuck_window else 0
    rules.last_start = steps - SCORE_WINDOW if steps > SCORE_WINDOW else 0

    for i in prange(n, nogil=True, schedule="dynamic", chunksize=1, num_threads=n_threads):
        work = &scratch[threadid(), 0]
        if floating is float:
            res = ds_train_one_f32(model, optimizer, p, samples, w_only, &theta0[i, 0], &consts[i, 0],
                                   &data[0, 0], &hyper[i, 0], &trainable[0], &rules, work, work + p, work + 2 * p)
        else:
            res = ds_train_one_f64(model, optimizer, p, samples, w_only, &theta0[i, 0], &consts[i, 0],
                                   &data[0, 0], &hyper[i, 0], &trainable[0], &rules, work, work + p, work + 2 * p)
        outcome[i] = res.outcome
        steps_out[i] = res.steps
        final_loss[i] = res.final_loss
        loss_sum[i] = res.loss_sum
        period[i] = res.period
        attractor[i] = res.attractor
        score[i] = res.score
