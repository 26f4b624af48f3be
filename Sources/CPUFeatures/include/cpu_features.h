#ifndef PGAN_CPU_FEATURES_H
#define PGAN_CPU_FEATURES_H

/// 1 when the CPU and the operating system support AVX-512F (zmm registers are saved on context switches), else 0.
int pgan_cpu_supports_avx512f(void);
/// 1 when the CPU supports AVX2 and FMA, else 0.
int pgan_cpu_supports_avx2_fma(void);

#endif
