#ifndef PGAN_CPU_FEATURES_H
#define PGAN_CPU_FEATURES_H

/// 1 when the CPU and the operating system support AVX-512F (zmm registers are saved on context switches), else 0.
int pgan_cpu_supports_avx512f(void);
/// 1 when the CPU supports AVX2 and FMA, else 0.
int pgan_cpu_supports_avx2_fma(void);

/// The one-line error pgan gives on an x86-64 CPU with these features, or NULL when they are enough. pgan's kernels
/// are compiled for AVX2 and FMA (Package.swift: -target-cpu haswell), so without them the first kernel would die of
/// SIGILL; a constructor in cpu_features.c checks before any Swift code runs and exits with this message instead.
const char *pgan_cpu_requirement_error(int has_avx2, int has_fma);

/// A spin-wait hint (x86 `pause`, Arm `yield`): lets the sibling hardware thread run and saves power while a worker
/// waits for the next phase.
static inline void pgan_cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef float pgan_float8 __attribute__((ext_vector_type(8)));

/// Lane-wise IEEE square root (sqrtps; Swift imports pgan_float8 as SIMD8<Float>). Swift's SIMD8.squareRoot()
/// compiles to eight scalar square roots with checks.
static inline pgan_float8 pgan_square_root8(pgan_float8 x) {
    return __builtin_elementwise_sqrt(x);
}

#endif
