/* The float64 tanh of ext/numerics.h alone, in the loop the one-hidden-layer kernel runs it in (load a
 * pre-activation, store its tanh, add tanh·w to the output), against the same loop with one division in the tanh's
 * place: ns per vector of lanes. README, Benchmark: why fast float64 stops at 48-49 % of the np.dot peak.
 *
 *   gcc -O3 -std=c11 -march=native -ffp-contract=fast -DDS_VECTOR_BYTES=64 -DDS_ARITHMETIC_FAST=1 -Iext \
 *       bench/tanh_loop.c -o /tmp/tanh_loop -lm && /tmp/tanh_loop
 *
 * Leave out -DDS_ARITHMETIC_FAST=1 (and -ffp-contract=fast) for the exact tanh; -DDS_VECTOR_BYTES=32 on a CPU
 * without AVX-512. */
#define _POSIX_C_SOURCE 199309L
#include "problem.h"
#define DS_PRECISION 64
#include "precision.h"
#include "numerics.h"
#include <stdio.h>
#include <time.h>

#define UNITS 128 /* a block's pre-activations: 8 samples × 16 units */
#define REPEATS 200000L

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* the kernel's loop: h_j = f(z_j), s += h_j·w_j, with f the tanh or one division (z / (z + 3)) */
#define KERNEL_LOOP(name, f)                                                                                       \
    __attribute__((noinline)) static vec name(const double *pre, double *h, const double *w)                     \
    {                                                                                                              \
        vec s = {0};                                                                                               \
        long r;                                                                                                    \
        int j;                                                                                                     \
        for (r = 0; r < REPEATS; r++)                                                                              \
            for (j = 0; j < UNITS; j++) {                                                                          \
                const vec z = vload(pre + j * DS_LANES), a = f;                                                    \
                vstore(h + j * DS_LANES, a);                                                                       \
                s = s + a * vload(w + (j % 16) * DS_LANES);                                                        \
            }                                                                                                      \
        return s;                                                                                                  \
    }
KERNEL_LOOP(run_tanh, ds_tanh_f64(z))
KERNEL_LOOP(run_division, z / (z + 3))

int main(void)
{
    static double pre[UNITS * DS_LANES], h[UNITS * DS_LANES], w[16 * DS_LANES];
    vec (*const runs[2])(const double *, double *, const double *) = {run_tanh, run_division};
    const char *names[2] = {"tanh", "one division"};
    int i, k;
    for (i = 0; i < UNITS * DS_LANES; i++)
        pre[i] = 3 * sin(0.37 * i); /* pre-activations of the SD map's size */
    for (i = 0; i < 16 * DS_LANES; i++)
        w[i] = 0.01 * i;
    for (k = 0; k < 2; k++) {
        const double start = now();
        const vec s = runs[k](pre, h, w);
        printf("%-13s %.3f ns per %d-lane vector (checksum %g)\n", names[k],
               (now() - start) / ((double)REPEATS * UNITS) * 1e9, (int)DS_LANES, (double)s[0]);
    }
    return 0;
}
