#include "built_in_data.h"

extern const unsigned char pgan_zeros_start[], pgan_zeros_end[];
extern const unsigned char pgan_classifier_start[], pgan_classifier_end[];

pgan_built_in_file pgan_built_in_zeros(void) {
    return (pgan_built_in_file){pgan_zeros_start, (size_t)(pgan_zeros_end - pgan_zeros_start)};
}

pgan_built_in_file pgan_built_in_classifier(void) {
    return (pgan_built_in_file){pgan_classifier_start, (size_t)(pgan_classifier_end - pgan_classifier_start)};
}
