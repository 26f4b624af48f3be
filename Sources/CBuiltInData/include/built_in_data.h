#ifndef PGAN_BUILT_IN_DATA_H
#define PGAN_BUILT_IN_DATA_H

#include <stddef.h>

/// Bytes pgan carries inside its binary (data/, assembled in by built_in_data.S), so the executable runs from any
/// directory without a resource folder beside it and without Foundation's Bundle to find one.
typedef struct {
    const unsigned char *bytes;
    size_t count;
} pgan_built_in_file;

/// data/mnist-train-zeros.idx3-ubyte.gz: the 5 923 MNIST training images of digit 0, gzipped IDX.
pgan_built_in_file pgan_built_in_zeros(void);
/// data/mnist-classifier.safetensors: the MNIST classifier (scripts/make-mnist-classifier.sh writes it).
pgan_built_in_file pgan_built_in_classifier(void);

/// Drops the file's pages from this process's resident memory once it has been read (they are the binary's own,
/// unmodified: a later read brings them back from the executable). Without it the 2.8 MB stay counted in RSS.
void pgan_built_in_release(pgan_built_in_file file);

#endif
