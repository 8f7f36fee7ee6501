"""The compiled engine with arithmetic = "fast" on CPUs with AVX-512: descentsim._kernels_fast's source (included
whole) built with 64-byte lanes (16 float or 8 double trajectories a thread, one zmm register) and an AVX-512 clone.
descentsim.backends.compiled runs it where the CPU has AVX-512 (CPU_HAS_AVX512), _kernels_fast elsewhere."""

include "_kernels.pyx"
