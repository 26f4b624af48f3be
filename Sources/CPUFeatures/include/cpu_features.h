#ifndef PGAN_CPU_FEATURES_H
#define PGAN_CPU_FEATURES_H

/// 1 when the CPU and the operating system support AVX-512F (zmm registers are saved on context switches), else 0.
int pgan_cpu_supports_avx512f(void);
/// 1 when the CPU supports AVX2 and FMA, else 0.
int pgan_cpu_supports_avx2_fma(void);

/// A spin-wait hint (x86 `pause`): lets the sibling hardware thread run and saves power while a worker waits for
/// the next phase.
static inline void pgan_cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
typedef float pgan_float8 __attribute__((ext_vector_type(8)));

/// Lane-wise IEEE square root (sqrtps; Swift imports pgan_float8 as SIMD8<Float>). Swift's SIMD8.squareRoot()
/// compiles to eight scalar square roots with checks.
static inline pgan_float8 pgan_square_root8(pgan_float8 x) {
    return __builtin_elementwise_sqrt(x);
}

#endif
}

typedef float pgan_float8 __attribute__((ext_vector_type(8)));

/// Lane-wise IEEE square root (sqrtps; Swift imports pgan_float8 as SIMD8<Float>). Swift's SIMD8.squareRoot()
/// compiles to eight scalar square roots with checks.
static inline pgan_float8 pgan_square_root8(pgan_float8 x) {
    return __builtin_elementwise_sqrt(x);
}

#endif
