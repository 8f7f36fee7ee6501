/* descentsim's CPU kernels: gradient-descent trajectories with the models, the optimisers and the outcome rules,
 * for float and double (trajectory.h, instantiated here once per precision).
 *
 * The maths and the rules mirror the NumPy reference (descentsim.backends.reference and the models' loss_grad)
 * operation for operation, including the order of every sum, so the engines agree bit for bit (the build disables
 * floating-point contraction). One thread runs DS_VECTOR_BYTES (32; 64 in the fast build) bytes' worth of trajectories at
 * once, one per SIMD lane (lanes.h: GCC/Clang vector extensions).
 *
 * Needs GCC >= 9 or Clang (vector extensions with __builtin_convertvector).
 */
#ifndef DESCENTSIM_KERNELS_H
#define DESCENTSIM_KERNELS_H

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 9
#error "descentsim's kernels need GCC 9 or newer (or Clang): load a newer compiler module"
#endif

#define DS_PRECISION 32
#include "trajectory.h"
#undef DS_PRECISION

#define DS_PRECISION 64
#include "trajectory.h"
#undef DS_PRECISION

#endif
