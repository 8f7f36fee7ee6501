"""Compiled engine: one gradient-descent trajectory per grid point, OpenMP threads over points.

The maths and the outcome rules mirror ``descentsim.backends.reference`` (the definition) line for
line; each trajectory touches only its own scratch row, so results do not depend on the thread count
or on which points share a call.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport fabs, isfinite, INFINITY
from libc.string cimport memcpy
from libc.float cimport DBL_MIN, FLT_MIN

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

# Kernel ids; the Python models and optimisers refer to them by name.
cdef enum:
    QUADRATIC = 0
    DOUBLE_WELL = 1
    UV = 2
    RELU_NEURON = 3
    GD = 0

MODEL_IDS = {"quadratic": QUADRATIC, "double_well": DOUBLE_WELL, "uv": UV, "relu_neuron": RELU_NEURON}
OPTIMIZER_IDS = {"gd": GD}
OPENMP = bool(DS_OPENMP)

# Outcome codes (descentsim.Outcome) and score constants (descentsim.outcome).
cdef enum:
    CONVERGED = 1
    DIVERGED = 2
    STUCK = 3
    CYCLING = 4
    UNRESOLVED = 5
cdef double SCORE_CLIP = 1e6
cdef Py_ssize_t SCORE_WINDOW = 20


def max_threads():
    """Threads OpenMP would use by default (1 without OpenMP)."""
    return ds_max_threads()


cdef struct Rules:
    Py_ssize_t steps
    double converge_loss
    double diverge_factor
    double stuck_tol
    double cycle_tol
    Py_ssize_t k_max          # cycle lags checked: 1..k_max
    Py_ssize_t window_start   # first step of the STUCK window
    Py_ssize_t last_start     # first step of the score's final window


cdef struct Result:
    unsigned char outcome
    int steps
    int period
    int attractor
    double final_loss
    double loss_sum
    double score


# ---- models: loss L(θ), gradient into g ----------------------------------------------------------

cdef inline floating quadratic(const floating* th, floating* g, const floating* c) noexcept nogil:
    # L = ½·a·w², ∇L = a·w
    cdef floating w = th[0], a = c[0]
    g[0] = a * w
    return <floating>0.5 * a * w * w


cdef inline floating double_well(const floating* th, floating* g) noexcept nogil:
    # L = ¼·(w² − 1)², ∇L = w·(w² − 1)
    cdef floating w = th[0]
    cdef floating q = w * w - 1
    g[0] = w * q
    return <floating>0.25 * q * q


cdef inline floating uv(const floating* th, floating* g, const floating* c, Py_ssize_t p) noexcept nogil:
    # f = vᵀu/√m, L = ½·(f − target)², ∇u = (f − target)·v/√m, ∇v = (f − target)·u/√m
    cdef Py_ssize_t m = p // 2, i
    cdef floating dot = 0, r, s
    for i in range(m):
        dot = dot + th[i] * th[m + i]
    r = dot * c[1] - c[0]
    s = r * c[1]
    for i in range(m):
        g[i] = s * th[m + i]
        g[m + i] = s * th[i]
    return <floating>0.5 * r * r


cdef extern from "relu_neuron.h" nogil:
    void ds_relu_neuron_sums_f32(const float* th, const float* x, const float* y, Py_ssize_t samples,
                                 int w_only, float* out)
    void ds_relu_neuron_sums_f64(const double* th, const double* x, const double* y, Py_ssize_t samples,
                                 int w_only, double* out)


cdef inline floating relu_neuron(const floating* th, floating* g, const floating* x, const floating* y,
                                 Py_ssize_t samples, bint w_only) noexcept nogil:
    # ŷ = a·relu(w·x + b) + c, e = ŷ − y, L = ½·mean(e²), relu'(0) = 0; sums in relu_neuron.h
    cdef floating sums[5]
    if floating is float:
        ds_relu_neuron_sums_f32(th, x, y, samples, w_only, sums)
    else:
        ds_relu_neuron_sums_f64(th, x, y, samples, w_only, sums)
    g[0] = sums[1] / samples
    g[1] = sums[2] / samples
    g[2] = sums[3] / samples
    g[3] = sums[4] / samples
    return <floating>0.5 * (sums[0] / samples)


cdef inline floating loss_grad(int model, const floating* th, floating* g, const floating* c,
                               const floating* data, Py_ssize_t p, Py_ssize_t samples,
                               bint w_only) noexcept nogil:
    if model == QUADRATIC:
        return quadratic(th, g, c)
    if model == DOUBLE_WELL:
        return double_well(th, g)
    if model == UV:
        return uv(th, g, c, p)
    return relu_neuron(th, g, data, data + samples, samples, w_only)


cdef inline int attractor(int model, const floating* th) noexcept nogil:
    if model == DOUBLE_WELL:
        return 1 if th[0] > 0 else 0
    return -1


# ---- optimisers ----------------------------------------------------------------------------------

cdef inline void optimizer_step(int optimizer, floating* th, const floating* g, const floating* hyper,
                                const unsigned char* trainable, Py_ssize_t p) noexcept nogil:
    # gd: θ ← θ − lr·∇L on the trainable parameters
    cdef floating lr = hyper[0]
    cdef Py_ssize_t i
    for i in range(p):
        if trainable[i]:
            th[i] = th[i] - lr * g[i]


# ---- one trajectory ------------------------------------------------------------------------------

cdef inline void flush_subnormal(floating* th, Py_ssize_t p) noexcept nogil:
    # parameters below the smallest normal number become 0: gradual underflow must not carry a
    # parameter across zero (in exact arithmetic a dead ReLU decays towards 0 and never crosses)
    cdef floating tiny
    cdef Py_ssize_t i
    if floating is float:
        tiny = FLT_MIN
    else:
        tiny = DBL_MIN
    for i in range(p):
        if fabs(th[i]) < tiny:
            th[i] = 0

cdef inline double normalised_loss(double loss, double loss0) noexcept nogil:
    # v = L/L_0, non-finite → 1e6, clipped at 1e6; 0 where L_0 = 0
    cdef double v = loss / loss0 if loss0 > 0 else 0.0
    if not isfinite(v) or v > SCORE_CLIP:
        return SCORE_CLIP
    return v


cdef Result train_one(int model, int optimizer, Py_ssize_t p, Py_ssize_t samples, bint w_only,
                      const floating* theta0, const floating* c, const floating* data,
                      const floating* hyper, const unsigned char* trainable, Rules* rules,
                      floating* th, floating* g, floating* history) noexcept nogil:
    cdef Result res
    cdef Py_ssize_t steps = rules.steps, t, i, lag
    cdef double loss = 0, loss0 = 0, v, final_v = 0, gap, tol, biggest
    cdef double loss_sum = 0, sum_v = 0, sum_inv = 0, last_sum = 0
    cdef double window_max = -INFINITY, window_min = INFINITY
    cdef double total, last_mean, held, held_last
    res.outcome = UNRESOLVED
    res.period = 0
    res.attractor = -1
    memcpy(th, theta0, p * sizeof(floating))

    t = 0
    while True:
        loss = <double>loss_grad(model, th, g, c, data, p, samples, w_only)
        if t == 0:
            loss0 = loss
        if not isfinite(loss) or loss > rules.diverge_factor * loss0:
            res.outcome = DIVERGED
            break
        if loss <= rules.converge_loss:
            res.outcome = CONVERGED
            res.attractor = attractor(model, th)
            break
        if t >= rules.window_start:
            window_max = loss if loss > window_max else window_max
            window_min = loss if loss < window_min else window_min
        if t >= steps - rules.k_max:
            memcpy(history + (steps - t) * p, th, p * sizeof(floating))
        if t == steps:
            # budget spent: the smallest lag that repeats θ, else a plateau, else unresolved
            biggest = 0
            for i in range(p):
                biggest = fabs(th[i]) if fabs(th[i]) > biggest else biggest
            tol = rules.cycle_tol * (1 + biggest)
            for lag in range(1, rules.k_max + 1):
                gap = 0
                for i in range(p):
                    v = fabs(<double>th[i] - <double>history[lag * p + i])
                    gap = v if v > gap else gap
                if gap <= tol:
                    res.period = <int>lag
                    break
            if res.period >= 2:
                res.outcome = CYCLING
            else:
                res.period = 0
                if window_max - window_min <= rules.stuck_tol * window_max:
                    res.outcome = STUCK
            break
        v = normalised_loss(loss, loss0)
        loss_sum = loss_sum + loss / loss0
        sum_v = sum_v + v
        sum_inv = sum_inv + 1 / (v if v > 1 / SCORE_CLIP else 1 / SCORE_CLIP)
        if t >= rules.last_start:
            last_sum = last_sum + v
        optimizer_step(optimizer, th, g, hyper, trainable, p)
        flush_subnormal(th, p)
        t = t + 1

    # t is the deciding step T; the score holds v_T for t ∈ [T, steps)
    final_v = normalised_loss(loss, loss0)
    held = <double>(steps - t)
    held_last = <double>(steps - (t if t > rules.last_start else rules.last_start))
    total = sum_v + held * final_v
    last_mean = (last_sum + held_last * final_v) / <double>(steps - rules.last_start if steps > rules.last_start else 1)
    if steps > 0 and last_mean < 1:
        res.score = -total
    else:
        res.score = sum_inv + held / (final_v if final_v > 1 / SCORE_CLIP else 1 / SCORE_CLIP)
    res.steps = <int>t
    res.final_loss = loss
    res.loss_sum = loss_sum
    return res


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
    int[::1] attractor_out,               # OUT (n,)
    double[::1] score,                    # OUT (n,)
):
    """Train every row of theta0 and classify it (see descentsim.outcome for the rules)."""
    cdef int model = MODEL_IDS[model_name]
    cdef int optimizer = OPTIMIZER_IDS[optimizer_name]
    cdef Py_ssize_t n = theta0.shape[0], p = theta0.shape[1], samples = data.shape[1]
    cdef int n_threads = <int>scratch.shape[0]
    cdef bint w_only = model == RELU_NEURON and not (trainable[1] or trainable[2] or trainable[3])
    cdef Rules rules
    cdef Result res
    cdef Py_ssize_t i, k_max = max_period if max_period < steps else steps
    cdef int tid
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
        tid = threadid()
        work = &scratch[tid, 0]
        res = train_one(model, optimizer, p, samples, w_only, &theta0[i, 0], &consts[i, 0], &data[0, 0],
                        &hyper[i, 0], &trainable[0], &rules, work, work + p, work + 2 * p)
        outcome[i] = res.outcome
        steps_out[i] = res.steps
        final_loss[i] = res.final_loss
        loss_sum[i] = res.loss_sum
        period[i] = res.period
        attractor_out[i] = res.attractor
        score[i] = res.score
