"""The compiled engine with arithmetic = "fast": the same source as descentsim._kernels (included whole), built
with floating-point contraction (-ffp-contract=fast) and DS_ARITHMETIC_FAST, so that on a CPU with AVX2 and FMA
the kernels fuse multiply-adds (one rounding instead of two) and divide many values by one (the count,
mean-field's √n·√n, a softmax's sum) by multiplying with its reciprocal (numerics.h, ds_divide); tanh is a
rational function in float32 and the exact one's exp with fewer operations in float64 (numerics.h, ds_tanh). Never
-ffast-math: NaN and infinity behave as IEEE says, so divergence is still detected."""

include "_kernels.pyx"
