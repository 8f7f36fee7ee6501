/* descentsim's GPU kernels: the CPU engine's maths (trajectory.h and the headers it includes), one trajectory per
 * GPU thread (lanes.h's one-lane types). CuPy compiles this file at run time with NVRTC and --fmad=false, so that,
 * as on the CPU, every operation rounds once and the results agree with the NumPy reference bit for bit.
 *
 * Compile-time definitions:
 *   DS_WORK_VALUES  the work-space values of one thread (ds_work_vectors: one lane, so vectors are values), held in
 *                   the thread's local memory
 *   DS_ONE_LANE     set by lanes.h under CUDA; a C++ compiler given it and not CUDA builds the host copy instead:
 *                   the same per-thread code called point by point (ds_host_train_*), which the tests run on
 *                   machines without a GPU so that only the launch is left for one
 *
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

#if defined(__CUDACC__)
#if !defined(DS_WORK_VALUES)
#error "DS_WORK_VALUES (a thread's work-space values) must be defined"
#endif

/* thread i trains point i (ds_train_points_##suffix is trajectory.h's training loop of that precision) */
#define DS_GPU_KERNEL(T, suffix)                                                                                      \
    extern "C" __global__ void ds_train_##suffix(const ds_problem *pb, const ds_rules *rules, const ds_outputs *out, \
                                                 ptrdiff_t n)                                                         \
    {                                                                                                                 \
        const ptrdiff_t i = (ptrdiff_t)blockIdx.x * blockDim.x + threadIdx.x;                                        \
        T work[DS_WORK_VALUES];                                                                                       \
        if (i < n)                                                                                                    \
            ds_train_points_##suffix(pb, rules, i, i + 1, work, out);                                                 \
    }
DS_GPU_KERNEL(float, f32)
DS_GPU_KERNEL(double, f64)
#else
/* the host copy: thread i's work, point after point, in one work space of ds_work_vectors(...) values */
#define DS_HOST_KERNEL(T, suffix)                                                                                     \
    extern "C" void ds_host_train_##suffix(const ds_problem *pb, const ds_rules *rules, const ds_outputs *out,      \
                                           ptrdiff_t n, T *work)                                                      \
    {                                                                                                                 \
        for (ptrdiff_t i = 0; i < n; i++)                                                                             \
            ds_train_points_##suffix(pb, rules, i, i + 1, work, out);                                                 \
    }
DS_HOST_KERNEL(float, f32)
DS_HOST_KERNEL(double, f64)
#endif
