/* descentsim's GPU kernels: the CPU engine's maths (trajectory.h and the headers it includes), one trajectory per
 * GPU thread (lanes.h's one-lane types). backends/gpu.py compiles this file at run time with NVRTC and --fmad=false,
 * so that, as on the CPU, every operation rounds once and the results agree with the NumPy reference bit for bit.
 *
 * Compile-time definitions:
 *   DS_WORK_VALUES, DS_MEMORY_VALUES  the two parts of one thread's work space (ds_train_points_with), in values
 *                   (one lane: vectors are values), held in the thread's local memory (the first in registers where
 *                   its indices are constants)
 *   DS_FIXED_MODEL, DS_FIXED_OPTIMIZER, DS_FIXED_P, DS_FIXED_CONSTS, DS_FIXED_HYPER, DS_FIXED_K_MAX  optional, all
 *                   or none: the group's kernel ids and sizes as constants, so that loops over parameters unroll and
 *                   θ, ∇L and the optimiser state of a small model stay in registers (the values must be the
 *                   group's: the kernel is compiled for it)
 *   DS_COOP_THREADS, DS_COOP_LAYERS, DS_COOP_N0 … DS_COOP_N<layers>, DS_COOP_BIAS, DS_COOP_ACTIVATION,
 *                   DS_COOP_MEAN_FIELD, DS_COOP_LOSS  all or none: build the cooperative kernels (coop.h: G =
 *                   DS_COOP_THREADS threads train one dense network of this shape, each holding a share of θ)
 *                   instead, ds_coop_train_f32/_f64; DS_FIXED_* are then required, DS_FIXED_P the share's size
 *                   (DS_COOP_P). The kernels take DS_COOP_MIRROR values of the precision a group of dynamic shared
 *                   memory (the mirror of the weights, coop.h's general path; none on its shallow path), the block's
 *                   groups one after another: blockDim.x / G groups a block, each its own
 *   DS_ONE_LANE     set by lanes.h under CUDA; a C++ compiler given it and not CUDA builds the host copy instead:
 *                   the same per-thread code called point by point (ds_host_train_*), which the tests run on
 *                   machines without a GPU so that only the launch is left for one

 * Entry points, per precision (f32, f64): point i < n of the group (ds_problem) is trained and classified by thread
 * i, its fields written to out (ds_outputs, arrays of the group's n points).
 */
#if defined(DS_COOP_THREADS)
#define DS_COOP 1 /* the cooperative kernels alone (coop.h) */
#endif
#include "lanes.h"

#define DS_PRECISION 32
#include "trajectory.h"
#undef DS_PRECISION

#define DS_PRECISION 64
#include "trajectory.h"
#undef DS_PRECISION

#if !defined(DS_WORK_VALUES)
#define DS_WORK_VALUES 1
#define DS_MEMORY_VALUES 1
#endif

/* the group as the kernel was compiled for it: its kernel ids and sizes constants where DS_FIXED_P is defined */
DS_INLINE void ds_fixed(const ds_problem *pb, const ds_rules *rules, ds_problem *fixed_pb, ds_rules *fixed_rules)
{
    *fixed_pb = *pb;
    *fixed_rules = *rules;
#if defined(DS_FIXED_P)
    fixed_pb->model = DS_FIXED_MODEL;
    fixed_pb->optimizer = DS_FIXED_OPTIMIZER;
    fixed_pb->p = DS_FIXED_P;
    fixed_pb->n_consts = DS_FIXED_CONSTS;
    fixed_pb->n_hyper = DS_FIXED_HYPER;
    fixed_rules->k_max = DS_FIXED_K_MAX;
#endif
}

#if defined(DS_COOP)
/* A group's view of its network, as thread `rank` of the group sees it (coop.h) */
DS_INLINE void ds_coop_view(const ds_problem *pb, const ds_rules *rules, int rank, ds_coop *co, ds_rules *fixed_rules)
{
    ds_fixed(pb, rules, &co->pb, fixed_rules);
    ds_coop_begin(co, pb, rank);
}
#endif

#if defined(__CUDACC__) && defined(DS_COOP)
/* the block's dynamic shared memory: each group's mirror (coop.h), DS_COOP_MIRROR values of the precision */
extern __shared__ double ds_coop_shared[];

/* the G = DS_COOP_THREADS threads i·G … i·G + G − 1 (consecutive lanes of a warp; blocks a multiple of G) train
 * point i together (ds_train_points_with_##suffix: trajectory.h's training loop built for coop.h) */
#define DS_GPU_KERNEL(T, suffix)                                                                                      \
    extern "C" __global__ void ds_coop_train_##suffix(const ds_problem *pb, const ds_rules *rules,                   \
                                                      const ds_outputs *out, ptrdiff_t n)                             \
    {                                                                                                                 \
        const ptrdiff_t thread = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x, i = thread / DS_COOP_THREADS;    \
        ds_coop co;                                                                                                   \
        ds_rules fixed_rules;                                                                                         \
        T work[DS_WORK_VALUES], memory[DS_MEMORY_VALUES];                                                             \
        if (i >= n)                                                                                                   \
            return;                                                                                                   \
        ds_coop_view(pb, rules, (int)(thread % DS_COOP_THREADS), &co, &fixed_rules);                                \
        co.mirror = (T *)ds_coop_shared + threadIdx.x / DS_COOP_THREADS * DS_COOP_MIRROR;                           \
        ds_train_points_with_##suffix(&co.pb, &fixed_rules, i, i + 1, work, memory, out);                            \
    }
DS_GPU_KERNEL(float, f32)
DS_GPU_KERNEL(double, f64)
#elif defined(DS_COOP)
/* the host copy of the cooperative kernels: a group's G threads as G fibers of the calling thread (ds_team), each
 * training the points one after another with its own work space (sized as the GPU's) on a stack of its own */
#include <memory>
#include <vector>
#define DS_HOST_STACK_BYTES (1 << 20)
struct ds_host_job {
    const ds_problem *pb;
    const ds_rules *rules;
    const ds_outputs *out;
    ptrdiff_t n;
    ds_team *team;
    int rank;
};

#define DS_HOST_KERNEL(T, suffix)                                                                                     \
    /* fiber `job->rank` of the group (makecontext passes its job's address as two ints) */                         \
    static void ds_host_coop_fiber_##suffix(unsigned high, unsigned low)                                             \
    {                                                                                                                 \
        const ds_host_job *job = (const ds_host_job *)(((uintptr_t)high << 32) | (uintptr_t)low);                    \
        std::vector<T> work(DS_WORK_VALUES), memory(DS_MEMORY_VALUES);                                                \
        ds_coop co;                                                                                                   \
        ds_rules fixed_rules;                                                                                         \
        ds_coop_view(job->pb, job->rules, job->rank, &co, &fixed_rules);                                              \
        co.team = job->team;                                                                                          \
        co.mirror = job->team->mirror;                                                                                \
        co.turn = 0;                                                                                                  \
        for (ptrdiff_t i = 0; i < job->n; i++)                                                                        \
            ds_train_points_with_##suffix(&co.pb, &fixed_rules, i, i + 1, work.data(), memory.data(), job->out);     \
    }                                                                                                                 \
    extern "C" void ds_host_coop_train_##suffix(const ds_problem *pb, const ds_rules *rules, const ds_outputs *out, \
                                                ptrdiff_t n)                                                          \
    {                                                                                                                 \
        std::unique_ptr<ds_team> team(new ds_team);                                                                   \
        std::vector<ds_host_job> jobs(DS_COOP_THREADS);                                                               \
        std::vector<std::vector<char>> stacks(DS_COOP_THREADS, std::vector<char>(DS_HOST_STACK_BYTES));               \
        for (int rank = 0; rank < DS_COOP_THREADS; rank++) {                                                          \
            const uintptr_t at = (uintptr_t)&jobs[rank];                                                              \
            ucontext_t *fiber = &team->fibers[rank];                                                                  \
            jobs[rank] = ds_host_job{pb, rules, out, n, team.get(), rank};                                            \
            getcontext(fiber);                                                                                        \
            fiber->uc_stack.ss_sp = stacks[rank].data();                                                              \
            fiber->uc_stack.ss_size = stacks[rank].size();                                                            \
            fiber->uc_link = &team->host;                                                                             \
            makecontext(fiber, (void (*)(void))ds_host_coop_fiber_##suffix, 2, (unsigned)(at >> 32), (unsigned)at);  \
        }                                                                                                             \
        /* fiber 0 runs first; each, its points done, returns here, and the next (waiting at the meeting the last    \
         * ran past) goes on to its end */                                                                            \
        for (int rank = 0; rank < DS_COOP_THREADS; rank++)                                                            \
            swapcontext(&team->host, &team->fibers[rank]);                                                            \
    }
DS_HOST_KERNEL(float, f32)
DS_HOST_KERNEL(double, f64)
#elif defined(__CUDACC__)
/* thread i trains point i (ds_train_points_with_##suffix is trajectory.h's training loop of that precision) */
#define DS_GPU_KERNEL(T, suffix)                                                                                      \
    extern "C" __global__ void ds_train_##suffix(const ds_problem *pb, const ds_rules *rules, const ds_outputs *out, \
                                                 ptrdiff_t n)                                                         \
    {                                                                                                                 \
        const ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x;                                        \
        ds_problem fixed_pb;                                                                                          \
        ds_rules fixed_rules;                                                                                         \
        T work[DS_WORK_VALUES], memory[DS_MEMORY_VALUES];                                                             \
        if (i >= n)                                                                                                   \
            return;                                                                                                   \
        ds_fixed(pb, rules, &fixed_pb, &fixed_rules);                                                                 \
        ds_train_points_with_##suffix(&fixed_pb, &fixed_rules, i, i + 1, work, memory, out);                          \
    }
DS_GPU_KERNEL(float, f32)
DS_GPU_KERNEL(double, f64)
#else
/* the host copy: thread i's work, point after point, in the two parts of one work space (sized as the GPU's) */
#define DS_HOST_KERNEL(T, suffix)                                                                                     \
    extern "C" void ds_host_train_##suffix(const ds_problem *pb, const ds_rules *rules, const ds_outputs *out,      \
                                           ptrdiff_t n, T *work, T *memory)                                           \
    {                                                                                                                 \
        ds_problem fixed_pb;                                                                                          \
        ds_rules fixed_rules;                                                                                         \
        ds_fixed(pb, rules, &fixed_pb, &fixed_rules);                                                                 \
        for (ptrdiff_t i = 0; i < n; i++)                                                                             \
            ds_train_points_with_##suffix(&fixed_pb, &fixed_rules, i, i + 1, work, memory, out);                      \
    }
DS_HOST_KERNEL(float, f32)
DS_HOST_KERNEL(double, f64)
#endif
