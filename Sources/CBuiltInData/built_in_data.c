#include "built_in_data.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

extern const unsigned char pgan_zeros_start[], pgan_zeros_end[];
extern const unsigned char pgan_classifier_start[], pgan_classifier_end[];

pgan_built_in_file pgan_built_in_zeros(void) {
    return (pgan_built_in_file){pgan_zeros_start, (size_t)(pgan_zeros_end - pgan_zeros_start)};
}

pgan_built_in_file pgan_built_in_classifier(void) {
    return (pgan_built_in_file){pgan_classifier_start, (size_t)(pgan_classifier_end - pgan_classifier_start)};
}

void pgan_built_in_release(pgan_built_in_file file) {
#if defined(__linux__)
    /* Whole pages inside the file only: its neighbours may be in use. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)file.bytes + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)file.bytes + file.count) & ~(page - 1);
    if (end > start) madvise((void *)start, end - start, MADV_DONTNEED);
#else
    (void)file;
#endif
}
