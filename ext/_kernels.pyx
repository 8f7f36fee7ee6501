"""Compiled engine: OpenMP threads over chunks of grid points; kernels.h does the maths.

Each thread trains its chunk in SIMD lanes, one trajectory per lane; lanes never mix, so results do
not depend on the thread count, the chunking or which points share a call.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid

cdef extern from *:
    """
    #ifdef _OPENMP
    #define DS_OPENMP 1
    #else
    #define DS_OPENMP 0
    #endif
    /* whether the CPU has AVX-512 as x86-64-v4 defines it (the fast build's 64-byte lanes run there) */
    static int ds_cpu_has_avx512(void)
    {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    #else
        return 0;
    #endif
    }
    """
    int DS_OPENMP
    int ds_cpu_has_avx512()

cdef extern from "kernels.h" nogil:
    double DS_SCORE_CLIP
    int DS_SCORE_WINDOW
    enum:
        DS_QUADRATIC
        DS_DOUBLE_WELL
        DS_UV
        DS_RELU_NEURON
        DS_FORMULA
        DS_NETWORK
        DS_NET_IDENTITY
        DS_NET_RELU
        DS_NET_LEAKY_RELU
        DS_NET_TANH
        DS_NET_SIGMOID
        DS_NET_TANH_SQRT2
        DS_NET_RELU_SQRT2
        DS_NET_MSE
        DS_NET_SOFTMAX_CE
        DS_NET_SIGMOID_BCE
        DS_NET_ACTIVATION
        DS_NET_LOSS
        DS_NET_BIAS
        DS_NET_PARAM
        DS_NET_CLASSIFIER
        DS_NET_SLOPE
        DS_NET_DRIFT
        DS_NET_EVERY_STEP
        DS_NET_LAYERS
        DS_NET_WIDTHS
        DS_NET_MAX_LAYERS
        DS_OP_CONST
        DS_OP_TANH
        DS_GD
        DS_MOMENTUM
        DS_NESTEROV
        DS_ADAM
        DS_ADAMW
        DS_RMSPROP
    Py_ssize_t ds_work_vectors(int model, int optimizer, Py_ssize_t p, Py_ssize_t n_consts, Py_ssize_t n_hyper,
                               Py_ssize_t data_rows, Py_ssize_t k_max)
    Py_ssize_t ds_state_space(int optimizer, Py_ssize_t p, Py_ssize_t n_consts, Py_ssize_t n_hyper)
    ctypedef struct ds_rules:
        Py_ssize_t steps
        double converge_loss
        Py_ssize_t converge_window
        double diverge_factor
        double stuck_tol
        double cycle_tol
        Py_ssize_t k_max
        Py_ssize_t window_start
        Py_ssize_t last_start
        Py_ssize_t converge_from
        Py_ssize_t diverge_from
    ctypedef struct ds_problem:
        int model, optimizer
        Py_ssize_t p, samples, data_rows, n_consts, n_hyper
        const void* theta0
        const void* consts
        const void* data
        const void* hyper
        const double* lr_factors
        const void* lr_scale
        const unsigned char* trainable
        Py_ssize_t batch_size
        unsigned long long batch_seed
        int batch_per_point
        int batch_sequential
        const long long* point_id
        Py_ssize_t eval_count
    ctypedef struct ds_outputs:
        unsigned char* outcome
        int* steps
        int* period
        int* attractor
        double* final_loss
        double* loss_sum
        double* score
        double* accuracy
        double* batch_loss
        signed char* collapsed
        short* classes_predicted
        double* loss_path
        double* theta_path
        double* accuracy_path
        Py_ssize_t stride
    const Py_ssize_t DS_LANES_F32
    const Py_ssize_t DS_LANES_F64
    void ds_train_points_f32(const ds_problem* pb, const ds_rules* rules, Py_ssize_t first, Py_ssize_t last,
                             float* work, const ds_outputs* out)
    void ds_train_points_f64(const ds_problem* pb, const ds_rules* rules, Py_ssize_t first, Py_ssize_t last,
                             double* work, const ds_outputs* out)

# Kernel ids; the Python models and optimisers refer to them by name.
MODEL_IDS = {"quadratic": DS_QUADRATIC, "double_well": DS_DOUBLE_WELL, "uv": DS_UV, "relu_neuron": DS_RELU_NEURON,
             "formula": DS_FORMULA, "network": DS_NETWORK}
#: The network's codes and consts columns as the kernel reads them (tests hold them to descentsim.models.network).
NETWORK_ACTIVATION_IDS = {"identity": DS_NET_IDENTITY, "relu": DS_NET_RELU, "leaky_relu": DS_NET_LEAKY_RELU,
                          "tanh": DS_NET_TANH, "sigmoid": DS_NET_SIGMOID, "tanh_sqrt2": DS_NET_TANH_SQRT2,
                          "relu_sqrt2": DS_NET_RELU_SQRT2}
NETWORK_LOSS_IDS = {"mse": DS_NET_MSE, "softmax_ce": DS_NET_SOFTMAX_CE, "sigmoid_bce": DS_NET_SIGMOID_BCE}
NETWORK_COLUMNS = (DS_NET_ACTIVATION, DS_NET_LOSS, DS_NET_BIAS, DS_NET_PARAM, DS_NET_CLASSIFIER, DS_NET_SLOPE,
                   DS_NET_DRIFT, DS_NET_EVERY_STEP, DS_NET_LAYERS, DS_NET_WIDTHS)
NETWORK_MAX_LAYERS = DS_NET_MAX_LAYERS
#: The formula model's operation codes run from DS_OP_CONST to DS_OP_TANH (descentsim.formula.OPS, tested).
FORMULA_OP_COUNT = DS_OP_TANH - DS_OP_CONST + 1
OPTIMIZER_IDS = {"gd": DS_GD, "momentum": DS_MOMENTUM, "nesterov": DS_NESTEROV, "adam": DS_ADAM, "adamw": DS_ADAMW,
                 "rmsprop": DS_RMSPROP}
OPENMP = bool(DS_OPENMP)
#: Whether this CPU has AVX-512 (x86-64-v4): descentsim.backends.compiled then runs fast arithmetic in _kernels_fast_wide.
CPU_HAS_AVX512 = bool(ds_cpu_has_avx512())
# The score's constants as the kernels use them (tests check them against descentsim.outcome).
SCORE_CLIP = DS_SCORE_CLIP
SCORE_WINDOW = DS_SCORE_WINDOW
#: Trajectories one thread runs at once in SIMD lanes, by precision.
LANES = {"float32": DS_LANES_F32, "float64": DS_LANES_F64}


def scratch_size(dtype: str, model: str, optimizer: str, p: int, data_rows: int, n_consts: int, n_hyper: int,
                 max_period: int, steps: int) -> int:
    """Work-space values one thread needs (ds_work_vectors lane vectors)."""
    k_max = min(max_period, steps)
    return LANES[dtype] * ds_work_vectors(MODEL_IDS[model], OPTIMIZER_IDS[optimizer], p, n_consts, n_hyper,
                                          data_rows, k_max)

cdef ds_rules make_rules(Py_ssize_t steps, double converge_loss, Py_ssize_t converge_window, double diverge_factor,
                         Py_ssize_t stuck_window, double stuck_tol, Py_ssize_t max_period, double cycle_tol,
                         Py_ssize_t converge_from, Py_ssize_t diverge_from):
    cdef ds_rules rules
    rules.steps = steps
    rules.converge_loss = converge_loss
    rules.converge_window = converge_window
    rules.diverge_factor = diverge_factor
    rules.stuck_tol = stuck_tol
    rules.cycle_tol = cycle_tol
    rules.k_max = max_period if max_period < steps else steps
    rules.window_start = steps - stuck_window if steps > stuck_window else 0
    rules.last_start = steps - DS_SCORE_WINDOW if steps > DS_SCORE_WINDOW else 0
    rules.converge_from = converge_from
    rules.diverge_from = diverge_from
    return rules


def rules(Py_ssize_t steps, double converge_loss, Py_ssize_t converge_window, double diverge_factor,
          Py_ssize_t stuck_window, double stuck_tol, Py_ssize_t max_period, double cycle_tol, Py_ssize_t converge_from,
          Py_ssize_t diverge_from) -> dict:
    """The outcome rules as the kernels take them (ds_rules, a dict of its fields): the thresholds, with the cycle
    lags k_max and the first steps of the stuck and score windows derived, as train derives them."""
    return make_rules(steps, converge_loss, converge_window, diverge_factor, stuck_window, stuck_tol, max_period,
                      cycle_tol, converge_from, diverge_from)


def work_parts(model: str, optimizer: str, p: int, data_rows: int, n_consts: int, n_hyper: int, max_period: int,
               steps: int) -> tuple[int, int]:
    """The two parts of one trajectory's work space, in values (ds_train_points_with): θ, ∇L, constants,
    hyperparameters, learning-rate scales and optimiser state, each at a fixed place; then the model's work space
    and the past θ."""
    k_max = min(max_period, steps)
    total = ds_work_vectors(MODEL_IDS[model], OPTIMIZER_IDS[optimizer], p, n_consts, n_hyper, data_rows, k_max)
    fixed = ds_state_space(OPTIMIZER_IDS[optimizer], p, n_consts, n_hyper)
    return fixed, total - fixed

cdef enum:
    CHUNK = 32  # points a thread takes at a time (dynamic: trajectory costs differ by orders of magnitude)


def train(
    str model_name,
    str optimizer_name,
    const floating[:, ::1] theta0,        # IN (n, P) initial parameters
    const floating[:, ::1] consts,        # IN (n, C) per-point model constants
    const floating[:, ::1] data,          # IN (D, S) shared data
    const floating[:, ::1] hyper,         # IN (n, H) per-point optimiser hyperparameters, lr first
    const double[::1] lr_factors,         # IN (steps,) learning-rate schedule f(t), or None for f = 1
    const floating[:, ::1] lr_scale,      # IN (n, P) per-parameter learning-rate multipliers, or None
    Py_ssize_t batch_size, unsigned long long batch_seed, int batch_per_point, int batch_sequential,  # IN minibatches (size 0: none)
    const long long[::1] point_id,        # IN (n,) grid index of each row (per-point minibatches), or None
    Py_ssize_t eval_count,                # IN the rules' full-data loss is over the first eval_count samples
    const unsigned char[::1] trainable,   # IN (P,) which parameters move
    Py_ssize_t steps,                     # IN budget of updates
    double converge_loss, Py_ssize_t converge_window, double diverge_factor, Py_ssize_t stuck_window, double stuck_tol,
    Py_ssize_t max_period, double cycle_tol,  # IN outcome thresholds
    Py_ssize_t converge_from, Py_ssize_t diverge_from,  # IN first steps that may be CONVERGED / DIVERGED by the bound
    floating[:, ::1] scratch,             # IN/OUT (threads, scratch_size(...)) work space
    unsigned char[::1] outcome,           # OUT (n,)
    int[::1] steps_out,                   # OUT (n,)
    double[::1] final_loss,               # OUT (n,)
    double[::1] loss_sum,                 # OUT (n,)
    int[::1] period,                      # OUT (n,)
    int[::1] attractor,                   # OUT (n,)
    double[::1] score,                    # OUT (n,)
    double[::1] accuracy,                 # OUT (n,)
    signed char[::1] collapsed,           # OUT (n,)
    double[::1] batch_loss,               # OUT (n,)
    short[::1] classes_predicted,         # OUT (n,)
    double[:, ::1] loss_path=None,        # OUT (n, steps + 1) L_t up to each row's deciding step, or None
    double[:, :, ::1] theta_path=None,    # OUT (n, steps + 1, P) θ_t likewise, or None (needs loss_path)
    double[:, ::1] accuracy_path=None,    # OUT (n, steps // stride + 1) accuracy at t = 0, stride, ..., or None
    Py_ssize_t stride=1,                  # IN the accuracy's stride
):
    """Train every row of theta0 and classify it (see descentsim.outcome for the rules); the paths, where
    given, receive the recorded curves (rows past their deciding step are left as they were)."""
    cdef Py_ssize_t n = theta0.shape[0], p = theta0.shape[1]
    cdef Py_ssize_t k_max = max_period if max_period < steps else steps
    cdef Py_ssize_t chunk, n_chunks = (n + CHUNK - 1) // CHUNK, first, last
    cdef int n_threads = <int>scratch.shape[0]
    cdef ds_rules rules
    cdef ds_problem pb
    cdef ds_outputs out
    if n == 0:
        return
    cdef Py_ssize_t lanes = DS_LANES_F32 if floating is float else DS_LANES_F64
    if scratch.shape[1] < lanes * ds_work_vectors(MODEL_IDS[model_name], OPTIMIZER_IDS[optimizer_name], p,
                                                  consts.shape[1], hyper.shape[1], data.shape[0], k_max):
        raise ValueError("scratch is too small")
    if lr_factors is not None and lr_factors.shape[0] < steps:
        raise ValueError("lr_factors is shorter than steps")
    if stride < 1:
        raise ValueError("stride must be >= 1")
    if converge_window < 1:
        raise ValueError("converge_window must be >= 1")
    if loss_path is None and (theta_path is not None or accuracy_path is not None):
        raise ValueError("theta_path and accuracy_path need loss_path")
    if loss_path is not None and (loss_path.shape[0] != n or loss_path.shape[1] != steps + 1):
        raise ValueError("loss_path must be (n, steps + 1)")
    if theta_path is not None and (theta_path.shape[0] != n or theta_path.shape[1] != steps + 1
                                   or theta_path.shape[2] != p):
        raise ValueError("theta_path must be (n, steps + 1, P)")
    if accuracy_path is not None and (accuracy_path.shape[0] != n or accuracy_path.shape[1] != steps // stride + 1):
        raise ValueError("accuracy_path must be (n, steps // stride + 1)")
    pb.model = MODEL_IDS[model_name]
    pb.optimizer = OPTIMIZER_IDS[optimizer_name]
    pb.p = p
    pb.samples = data.shape[1]
    pb.data_rows = data.shape[0]
    pb.n_consts = consts.shape[1]
    pb.n_hyper = hyper.shape[1]
    pb.theta0 = &theta0[0, 0]
    pb.consts = &consts[0, 0]
    pb.data = &data[0, 0]
    pb.hyper = &hyper[0, 0]
    pb.lr_factors = &lr_factors[0] if lr_factors is not None and steps > 0 else NULL
    pb.lr_scale = &lr_scale[0, 0] if lr_scale is not None else NULL
    pb.batch_size = batch_size
    pb.batch_seed = batch_seed
    pb.batch_per_point = batch_per_point
    pb.batch_sequential = batch_sequential
    pb.point_id = &point_id[0] if point_id is not None else NULL
    if not 1 <= eval_count <= data.shape[1] or (batch_size == 0 and eval_count != data.shape[1]):
        raise ValueError("eval_count must be 1..samples, and all samples without minibatches")
    pb.eval_count = eval_count
    if batch_size > 0 and batch_per_point and point_id is None:
        raise ValueError("per-point minibatches need point_id")
    pb.trainable = &trainable[0]
    rules = make_rules(steps, converge_loss, converge_window, diverge_factor, stuck_window, stuck_tol, max_period,
                       cycle_tol, converge_from, diverge_from)
    out.outcome = &outcome[0]
    out.steps = &steps_out[0]
    out.final_loss = &final_loss[0]
    out.loss_sum = &loss_sum[0]
    out.period = &period[0]
    out.attractor = &attractor[0]
    out.score = &score[0]
    out.accuracy = &accuracy[0]
    out.collapsed = &collapsed[0]
    out.batch_loss = &batch_loss[0]
    out.classes_predicted = &classes_predicted[0]
    out.loss_path = &loss_path[0, 0] if loss_path is not None else NULL
    out.theta_path = &theta_path[0, 0, 0] if theta_path is not None and p > 0 else NULL
    out.accuracy_path = &accuracy_path[0, 0] if accuracy_path is not None else NULL
    out.stride = stride

    for chunk in prange(n_chunks, nogil=True, schedule="dynamic", num_threads=n_threads):
        first = chunk * CHUNK
        last = first + CHUNK if first + CHUNK < n else n
        if floating is float:
            ds_train_points_f32(&pb, &rules, first, last, &scratch[threadid(), 0], &out)
        else:
            ds_train_points_f64(&pb, &rules, first, last, &scratch[threadid(), 0], &out)
