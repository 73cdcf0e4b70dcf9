// threads.h - when to use threads, the floating-point mode a parallel region inherits, and
// the one parallel-for macro.
#ifndef NN_INTERNAL_THREADS_H
#define NN_INTERNAL_THREADS_H

#include "internal/port.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(NN_X86_64)
#include <xmmintrin.h>
#endif

// ---- threads --------------------------------------------------------------------------------

// Below this much work per thread a parallel region costs more than it saves (an OpenMP fork
// and join costs microseconds): each is where a second thread starts to pay.
#define NN_PAR_MIN_ELEMS ((nn_int)1 << 15)  // element-wise kernels, per thread
#define NN_PAR_MIN_FLOPS ((nn_int)1 << 19)  // GEMM multiply-adds per thread
// One row of C (a one-sample predict) is bound by reading B, not by arithmetic: two threads
// each read half of B's columns, from their own core's cache when it stays there, and pay
// from 2^15 multiply-adds a thread (128 KiB of float32 B).
#define NN_PAR_MIN_ROW_FLOPS ((nn_int)1 << 15)

// How many threads to use for `work` units when each thread should get at least `grain`.
int nn_threads_for(int n_threads, nn_int work, nn_int grain);


// ---- subnormal numbers ---------------------------------------------------------------------
// The floating-point control bits that flush subnormal results to zero and read subnormal
// inputs as zero (x86-64 MXCSR: FTZ | DAZ). The compiled plan sets them for its calls
// (nn_plan_train, nn_plan_forward), as XLA and oneDNN do: late in training, gradients of
// well-learnt samples fall below the smallest normal number and every multiply-add on them
// takes a microcode assist. Only values below 2^-126 (float) / 2^-1022 (double) change. A
// parallel region's workers take their caller's bits (nn_fp_inherit), so results never depend
// on the thread count; the kernels called on their own keep whatever mode the caller has
// (IEEE by default).
#if defined(NN_X86_64)
#define NN_FP_FLUSH 0x8040u  // FTZ (bit 15) | DAZ (bit 6)
NN_INLINE unsigned nn_fp_get(void) { return _mm_getcsr(); }
NN_INLINE void nn_fp_set(unsigned mode) { _mm_setcsr(mode); }
#else  // elsewhere the mode is left as it is (IEEE subnormals)
#define NN_FP_FLUSH 0u
NN_INLINE unsigned nn_fp_get(void) { return 0; }
NN_INLINE void nn_fp_set(unsigned mode) { (void)mode; }
#endif
// In a worker of a parallel region: take the flush bits `caller` (read before the region)
// and return this thread's mode, to be put back with nn_fp_set at the region's end.
NN_INLINE unsigned nn_fp_inherit(unsigned caller) {
    unsigned mine = nn_fp_get();
    if ((mine & NN_FP_FLUSH) != (caller & NN_FP_FLUSH))
        nn_fp_set((mine & ~NN_FP_FLUSH) | (caller & NN_FP_FLUSH));
    return mine;
}

// for (nn_int i = 0; i < n; i++) { body }, split statically over nt threads, or inline when
// nt <= 1: a region is never entered for one thread, because even `if (0)` makes libgomp
// allocate and free a team (malloc + memalign + free: most of a tiny network's step).
#define NN_PARALLEL_FOR(nt, i, n, ...)                                                        \
    do {                                                                                      \
        if ((nt) > 1) {                                                                       \
            const unsigned nn_caller_fp_ = nn_fp_get();                                       \
            NN_PRAGMA(omp parallel num_threads(nt)) {                                         \
                const unsigned nn_own_fp_ = nn_fp_inherit(nn_caller_fp_);                     \
                NN_PRAGMA(omp for schedule(static))                                           \
                for (nn_int i = 0; i < (n); i++) { __VA_ARGS__ }                              \
                nn_fp_set(nn_own_fp_);                                                        \
            }                                                                                 \
        } else {                                                                              \
            for (nn_int i = 0; i < (n); i++) { __VA_ARGS__ }                                  \
        }                                                                                     \
    } while (0)

#endif  // NN_INTERNAL_THREADS_H
