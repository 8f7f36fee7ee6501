/* The relu-neuron's data loop: loss and gradient sums over the full batch.
 *
 * Sums run in DS_LANES interleaved partial sums (sample i goes to lane i mod DS_LANES, in order),
 * combined as ((s0 + s1) + (s2 + s3)). That order is part of the definition: the NumPy reference
 * (descentsim.models.relu_neuron) sums the same way, so the engines agree bit for bit. The lanes are
 * independent chains held in one SIMD vector (GCC/Clang vector extensions), so nothing is reassociated;
 * on x86-64 Linux an AVX2 clone is chosen at run time (same IEEE operations, same bits).
 */
#ifndef DESCENTSIM_RELU_NEURON_H
#define DESCENTSIM_RELU_NEURON_H

#include <stddef.h>

#define DS_LANES 4

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DS_CLONES
#endif

/* Sums over the samples of one (w, b, a, c):
 * out[0] = Σe², out[1] = Σ e·a·[z>0]·x, out[2] = Σ e·a·[z>0], out[3] = Σ e·relu(z), out[4] = Σ e
 * (with w_only, out[2..4] are not computed). Vector lane k holds samples i ≡ k (mod 4).
 */
#define DS_RELU_NEURON_SUMS(NAME, T, VT, VI)                                                          \
    DS_CLONES static void NAME(const T *th, const T *x, const T *y, ptrdiff_t samples, int w_only,    \
                               T *out)                                                                \
    {                                                                                                 \
        typedef T VT __attribute__((vector_size(DS_LANES * sizeof(T))));                              \
        typedef VI VT##_mask __attribute__((vector_size(DS_LANES * sizeof(T))));                      \
        const T w = th[0], b = th[1], a = th[2], c = th[3];                                           \
        const VT zero = {0}, wv = zero + w, bv = zero + b, av = zero + a, cv = zero + c;              \
        VT loss = zero, gw = zero, gb = zero, ga = zero, gc = zero, xv, yv;                           \
        T lanes[5][DS_LANES];                                                                         \
        ptrdiff_t i, k, full = samples - samples % DS_LANES;                                          \
        for (i = 0; i < full; i += DS_LANES) {                                                        \
            __builtin_memcpy(&xv, x + i, sizeof xv);                                                  \
            __builtin_memcpy(&yv, y + i, sizeof yv);                                                  \
            VT z = wv * xv + bv;                                                                      \
            VT##_mask active = z > zero;                                                              \
            VT h = (VT)((VT##_mask)z & active);                                                       \
            VT e = av * h + cv - yv;                                                                  \
            VT ea = (VT)((VT##_mask)(e * av) & active);                                               \
            loss = loss + e * e;                                                                      \
            gw = gw + ea * xv;                                                                        \
            if (!w_only) {                                                                            \
                gb = gb + ea;                                                                         \
                ga = ga + e * h;                                                                      \
                gc = gc + e;                                                                          \
            }                                                                                         \
        }                                                                                             \
        __builtin_memcpy(lanes[0], &loss, sizeof loss);                                               \
        __builtin_memcpy(lanes[1], &gw, sizeof gw);                                                   \
        __builtin_memcpy(lanes[2], &gb, sizeof gb);                                                   \
        __builtin_memcpy(lanes[3], &ga, sizeof ga);                                                   \
        __builtin_memcpy(lanes[4], &gc, sizeof gc);                                                   \
        for (i = full; i < samples; i++) {                                                            \
            k = i % DS_LANES;                                                                         \
            T z = w * x[i] + b;                                                                       \
            T h = z > 0 ? z : (T)0;                                                                   \
            T e = a * h + c - y[i];                                                                   \
            T ea = z > 0 ? e * a : (T)0;                                                              \
            lanes[0][k] = lanes[0][k] + e * e;                                                        \
            lanes[1][k] = lanes[1][k] + ea * x[i];                                                    \
            lanes[2][k] = lanes[2][k] + ea;                                                           \
            lanes[3][k] = lanes[3][k] + e * h;                                                        \
            lanes[4][k] = lanes[4][k] + e;                                                            \
        }                                                                                             \
        for (k = 0; k < 5; k++)                                                                       \
            out[k] = (lanes[k][0] + lanes[k][1]) + (lanes[k][2] + lanes[k][3]);                       \
    }

DS_RELU_NEURON_SUMS(ds_relu_neuron_sums_f32, float, ds_v4f, int)
DS_RELU_NEURON_SUMS(ds_relu_neuron_sums_f64, double, ds_v4d, long long)

#endif
