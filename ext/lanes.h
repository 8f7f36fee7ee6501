/* The lane abstraction: descentsim's maths (models, optimisers, outcome rules) is written once against the types
 * vec (DS_LANES values of the precision DS_T, one trajectory each), vmask (a mask as wide, −1 for true, 0 for
 * false) and their double-precision pair dvec, dmask for the outcome bookkeeping, with GCC's vector-extension
 * semantics: element-wise + − × ÷, comparisons giving masks, scalars broadcast, (vmask)x and (vec)m reinterpreting
 * bits, v[k] for lane k. Two implementations:
 *
 *   - SIMD lanes (the CPU engine, C): GCC/Clang vector types of DS_VECTOR_BYTES bytes, 32 by default (8 float or
 *     4 double trajectories per thread), 64 in the fast build for AVX-512 CPUs (16 or 8: one zmm register); the
 *     bookkeeping runs in groups of 4 double lanes.
 *   - One lane (the GPU engine, CUDA C++, one trajectory per GPU thread; also the host build of the GPU code that
 *     the tests run): C++ structs holding one value, with operators that mean what GCC's vectors mean.
 *
 * Either way each lane computes exactly the scalar definition (the NumPy reference), operation for operation, so
 * both engines agree with it bit for bit when built without contraction (-ffp-contract=off, --fmad=false).
 * precision.h makes the per-precision types of the implementation chosen here.
 */
#ifndef DESCENTSIM_LANES_H
#define DESCENTSIM_LANES_H

#if defined(__CUDACC__) && !defined(DS_ONE_LANE)
#define DS_ONE_LANE 1
#endif

/* the bytes of one CPU vector of lanes (precision.h): 32 unless the build says otherwise (meson.build gives the fast
 * build for AVX-512 CPUs 64); a multiple of 32, so that the lanes fill whole groups of 4 double lanes in either
 * precision */
#ifndef DS_VECTOR_BYTES
#define DS_VECTOR_BYTES 32
#endif
#if DS_VECTOR_BYTES % 32 != 0
#error "DS_VECTOR_BYTES must be a multiple of 32"
#endif

#if defined(__CUDACC_RTC__) /* NVRTC: no C library headers; ptrdiff_t and the maths functions are built in */
typedef unsigned long long uint64_t;
#else
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#endif

#if defined(__CUDACC__)
#define DS_DEVICE __device__
/* helpers inline into the one entry point, as on the CPU */
#define DS_INLINE static __device__ __forceinline__
/* constant tables read by device code */
#define DS_TABLE static __constant__ const
/* the training loop of a group of trajectories */
#define DS_ENTRY static __device__
#define DS_UNROLL _Pragma("unroll")
#define DS_INFINITY __int_as_float(0x7f800000)
#define DS_NAN __int_as_float(0x7fc00000)
#else
#define DS_DEVICE
#define DS_TABLE static const
#define DS_INFINITY INFINITY
#define DS_NAN NAN
/* helpers are forced inline so that each clone of ds_train_points compiles them for its own target */
#define DS_INLINE static inline __attribute__((always_inline))
/* a loop of constant length unrolled, so that arrays indexed by it can live in registers */
#if defined(__clang__)
#define DS_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define DS_UNROLL _Pragma("GCC unroll 16")
#else
#define DS_UNROLL
#endif
/* On x86-64 Linux (glibc) with GCC, the training loop also gets an AVX2 clone chosen at run time: the same IEEE
 * operations on wider registers, hence the same bits. arithmetic = "fast" (DS_ARITHMETIC_FAST, built with
 * contraction) takes an AVX2 + FMA clone instead (x86-64-v3), and its 64-byte build an AVX-512 one (x86-64-v4), so
 * that multiply-adds fuse; both are dispatched by the CPU's features ("arch=haswell" would be dispatched by CPU model,
 * so that only Haswells ran it). The 64-byte build is run on AVX-512 CPUs only (descentsim.backends.compiled): without
 * AVX-512, GCC turns each comparison of 64-byte vectors into scalar compares, 6–7× slower (measured). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) && \
    !defined(DS_ONE_LANE)
#if defined(DS_ARITHMETIC_FAST)
#if DS_VECTOR_BYTES == 64
#define DS_ENTRY __attribute__((target_clones("arch=x86-64-v4", "default"))) static
#else
#define DS_ENTRY __attribute__((target_clones("arch=x86-64-v3", "default"))) static
#endif
#else
#define DS_ENTRY __attribute__((target_clones("avx2", "default"))) static
#endif
#else
#define DS_ENTRY static
#endif
#endif

#if defined(DS_ONE_LANE)
#if !defined(__cplusplus)
#error "the one-lane build of descentsim's kernels is C++ (CUDA, or the host build of the GPU code)"
#endif

/* the bits of x as the type To (as wide) */
template <class To, class From> DS_DEVICE inline To ds_bit_cast(From x)
{
    To to;
    memcpy(&to, &x, sizeof to);
    return to;
}

/* scalars that broadcast into a lane, as GCC's vectors take them */
template <class S> struct ds_scalar {};
#define DS_SCALAR(S)                                                                                                  \
    template <> struct ds_scalar<S> {                                                                                 \
        typedef int ok;                                                                                               \
    };
DS_SCALAR(int)
DS_SCALAR(unsigned)
DS_SCALAR(long)
DS_SCALAR(unsigned long)
DS_SCALAR(long long)
DS_SCALAR(unsigned long long)
DS_SCALAR(float)
DS_SCALAR(double)
#undef DS_SCALAR

template <class T, class M> struct ds_mask1;

/* one lane of T; M is the integer type as wide */
template <class T, class M> struct ds_lane1 {
    T v;
    DS_DEVICE T &operator[](ptrdiff_t) { return v; }
    DS_DEVICE const T &operator[](ptrdiff_t) const { return v; }
    DS_DEVICE explicit operator ds_mask1<T, M>() const;
};

/* one lane's mask (or integer), −1 for true */
template <class T, class M> struct ds_mask1 {
    M v;
    DS_DEVICE M &operator[](ptrdiff_t) { return v; }
    DS_DEVICE const M &operator[](ptrdiff_t) const { return v; }
    DS_DEVICE explicit operator ds_lane1<T, M>() const
    {
        ds_lane1<T, M> r = {ds_bit_cast<T>(v)};
        return r;
    }
};

template <class T, class M> DS_DEVICE inline ds_lane1<T, M>::operator ds_mask1<T, M>() const
{
    ds_mask1<T, M> r = {ds_bit_cast<M>(v)};
    return r;
}

#define DS_LANE1 ds_lane1<T, M>
#define DS_MASK1 ds_mask1<T, M>
#define DS_TM template <class T, class M>
#define DS_TMS template <class T, class M, class S, class = typename ds_scalar<S>::ok>
/* element-wise arithmetic and comparisons of lanes, with scalars on either side */
#define DS_ARITH(op)                                                                                                  \
    DS_TM DS_DEVICE inline DS_LANE1 operator op(DS_LANE1 a, DS_LANE1 b)                                               \
    {                                                                                                                 \
        DS_LANE1 r = {a.v op b.v};                                                                                    \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TMS DS_DEVICE inline DS_LANE1 operator op(DS_LANE1 a, S b)                                                     \
    {                                                                                                                 \
        DS_LANE1 r = {a.v op(T) b};                                                                                   \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TMS DS_DEVICE inline DS_LANE1 operator op(S a, DS_LANE1 b)                                                     \
    {                                                                                                                 \
        DS_LANE1 r = {(T)a op b.v};                                                                                   \
        return r;                                                                                                     \
    }
#define DS_COMPARE(op)                                                                                                \
    DS_TM DS_DEVICE inline DS_MASK1 operator op(DS_LANE1 a, DS_LANE1 b)                                               \
    {                                                                                                                 \
        DS_MASK1 r = {(M) - (M)(a.v op b.v)};                                                                         \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TMS DS_DEVICE inline DS_MASK1 operator op(DS_LANE1 a, S b)                                                     \
    {                                                                                                                 \
        DS_MASK1 r = {(M) - (M)(a.v op(T) b)};                                                                        \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TM DS_DEVICE inline DS_MASK1 operator op(DS_MASK1 a, DS_MASK1 b)                                               \
    {                                                                                                                 \
        DS_MASK1 r = {(M) - (M)(a.v op b.v)};                                                                         \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TMS DS_DEVICE inline DS_MASK1 operator op(DS_MASK1 a, S b)                                                     \
    {                                                                                                                 \
        DS_MASK1 r = {(M) - (M)(a.v op(M) b)};                                                                        \
        return r;                                                                                                     \
    }
/* integer operations of masks */
#define DS_INTEGER(op)                                                                                                \
    DS_TM DS_DEVICE inline DS_MASK1 operator op(DS_MASK1 a, DS_MASK1 b)                                               \
    {                                                                                                                 \
        DS_MASK1 r = {(M)(a.v op b.v)};                                                                               \
        return r;                                                                                                     \
    }                                                                                                                 \
    DS_TMS DS_DEVICE inline DS_MASK1 operator op(DS_MASK1 a, S b)                                                     \
    {                                                                                                                 \
        DS_MASK1 r = {(M)(a.v op(M) b)};                                                                              \
        return r;                                                                                                     \
    }
DS_ARITH(+)
DS_ARITH(-)
DS_ARITH(*)
DS_ARITH(/)
DS_COMPARE(<)
DS_COMPARE(<=)
DS_COMPARE(>)
DS_COMPARE(>=)
DS_COMPARE(==)
DS_COMPARE(!=)
DS_INTEGER(+)
DS_INTEGER(-)
DS_INTEGER(&)
DS_INTEGER(|)
DS_INTEGER(^)
DS_INTEGER(<<)
DS_INTEGER(>>)
DS_TM DS_DEVICE inline DS_LANE1 operator-(DS_LANE1 a)
{
    DS_LANE1 r = {-a.v};
    return r;
}
DS_TM DS_DEVICE inline DS_MASK1 operator~(DS_MASK1 a)
{
    DS_MASK1 r = {(M)~a.v};
    return r;
}
#undef DS_ARITH
#undef DS_COMPARE
#undef DS_INTEGER
#undef DS_LANE1
#undef DS_MASK1
#undef DS_TM
#undef DS_TMS
#endif /* DS_ONE_LANE */

#endif
