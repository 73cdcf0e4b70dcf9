// isa.h - element-wise loops compiled once per CPU path and picked at run time.
#ifndef NN_INTERNAL_ISA_H
#define NN_INTERNAL_ISA_H

#include "internal/port.h"

// ---- element-wise loops on each CPU path ------------------------------------------------------
// NN_ISA_VARIANTS(name, A, body) defines name_generic, name_avx2 and name_avx512, each
// void (A args, nn_int i0, nn_int i1) running the always-inline body(args, i0, i1) compiled
// for its path (the compiler vectorises it to that width); NN_ISA_PICK(name) is the one for
// the selected CPU path (nn_cpu_get_path: the dispatch table's choice, NNCORE_CPU included).
// For loops whose per-element arithmetic is exactly rounded, every variant gives the same bits.
#ifdef NN_X86_64
#define NN_ISA_VARIANTS(name, A, body)                                                        \
    static void NN_CAT(name, generic)(A args, nn_int i0, nn_int i1) { body(args, i0, i1); }   \
    static NN_TARGET_AVX2 void NN_CAT(name, avx2)(A args, nn_int i0, nn_int i1) {             \
        body(args, i0, i1);                                                                   \
    }                                                                                         \
    static NN_TARGET_AVX512 void NN_CAT(name, avx512)(A args, nn_int i0, nn_int i1) {         \
        body(args, i0, i1);                                                                   \
    }
#define NN_ISA_PICK(name)                                                                     \
    (nn_cpu_get_path() == NN_CPU_AVX512 ? NN_CAT(name, avx512)                                \
     : nn_cpu_get_path() == NN_CPU_AVX2 ? NN_CAT(name, avx2)                                  \
                                        : NN_CAT(name, generic))
#else
#define NN_ISA_VARIANTS(name, A, body)                                                        \
    static void NN_CAT(name, generic)(A args, nn_int i0, nn_int i1) { body(args, i0, i1); }
#define NN_ISA_PICK(name) NN_CAT(name, generic)
#endif

#endif  // NN_INTERNAL_ISA_H
