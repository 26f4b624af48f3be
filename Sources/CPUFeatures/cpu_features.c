#include "cpu_features.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

int pgan_cpu_supports_avx512f(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int pgan_cpu_supports_avx2_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

const char *pgan_cpu_requirement_error(int has_avx2, int has_fma) {
    if (has_avx2 && has_fma) return NULL;
    if (!has_avx2 && !has_fma) return "pgan: error: this CPU lacks AVX2 and FMA, which pgan's kernels need (an x86-64 CPU from 2013 or later: Intel Haswell, AMD Zen)\n";
    if (!has_avx2) return "pgan: error: this CPU lacks AVX2, which pgan's kernels need (an x86-64 CPU from 2013 or later: Intel Haswell, AMD Zen)\n";
    return "pgan: error: this CPU lacks FMA, which pgan's kernels need (an x86-64 CPU from 2013 or later: Intel Haswell, AMD Zen)\n";
}

#if defined(__x86_64__)
// Runs before main and before any Swift code, which is compiled for AVX2/FMA.
__attribute__((constructor)) static void pgan_require_avx2_fma(void) {
    __builtin_cpu_init();
    const char *error = pgan_cpu_requirement_error(__builtin_cpu_supports("avx2"), __builtin_cpu_supports("fma"));
    if (error != NULL) {
        ssize_t ignored = write(2, error, strlen(error));
        (void)ignored;
        _exit(1);
    }
}
#endif
