/* descentsim's GPU kernels: the CPU engine's maths (trajectory.h and the headers it includes), one trajectory per
 * GPU thread (lanes.h's one-lane types). CuPy compiles this file at run time with NVRTC and --fmad=false, so that,
 * as on the CPU, every operation rounds once and the results agree with the NumPy reference bit for bit.
 *
 * Compile-time definitions:
 *   DS_WORK_VALUES, DS_MEMORY_VALUES  the two parts of one thread's work space (ds_train_points_with), in values
 *                   (one lane: vectors are values), held in the thread's local memory (the first in registers where
 *                   its indices are constants)
 *   DS_FIXED_MODEL, DS_FIXED_OPTIMIZER, DS_FIXED_P, DS_FIXED_CONSTS, DS_FIXED_HYPER, DS_FIXED_K_MAX  optional, all
 *                   or none: the group's kernel ids and sizes as constants, so that loops over parameters unroll and
 *                   θ, ∇L and the optimiser state of a small model stay in registers (the values must be the
 *                   group's: the kernel is compiled for it)
 *   DS_ONE_LANE     set by lanes.h under CUDA; a C++ compiler given it and not CUDA builds the host copy instead:
 *                   the same per-thread code called point by point (ds_host_train_*), which the tests run on
 *                   machines without a GPU so that only the launch is left for one

 * Entry points, per precision (f32, f64): point i < n of the group (ds_problem) is trained and classified by thread
 * i, its fields written to out (ds_outputs, arrays of the group's n points).
 */
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

#if defined(__CUDACC__)
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
