/* The files of data/, assembled into read-only data. `.incbin` finds them through the target's header search path
   (Package.swift: cSettings headerSearchPath("data")); built_in_data.c hands them to Swift. */
#if defined(__APPLE__)
    .section __TEXT,__const
    .globl _pgan_zeros_start, _pgan_zeros_end, _pgan_classifier_start, _pgan_classifier_end
    .p2align 6
_pgan_zeros_start:
    .incbin "mnist-train-zeros.idx3-ubyte.gz"
_pgan_zeros_end:
    .p2align 6
_pgan_classifier_start:
    .incbin "mnist-classifier.safetensors"
_pgan_classifier_end:
#else
    .section .rodata
    .globl pgan_zeros_start, pgan_zeros_end, pgan_classifier_start, pgan_classifier_end
    .hidden pgan_zeros_start, pgan_zeros_end, pgan_classifier_start, pgan_classifier_end
    .balign 64
pgan_zeros_start:
    .incbin "mnist-train-zeros.idx3-ubyte.gz"
pgan_zeros_end:
    .balign 64
pgan_classifier_start:
    .incbin "mnist-classifier.safetensors"
pgan_classifier_end:
    /* No executable stack for this object. */
    .section .note.GNU-stack,"",@progbits
#endif
