// common.h - private helpers shared by the C sources: portability macros, dtype templating,
// OpenMP guards, workspaces and the dispatch table. Not part of the public API.
#ifndef NNCORE_COMMON_H
#define NNCORE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nncore.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// ---- portability ----------------------------------------------------------------------------

#if defined(_MSC_VER) && !defined(__clang__)
#define NN_RESTRICT __restrict
#define NN_THREAD_LOCAL __declspec(thread)
#define NN_INLINE static __forceinline
#else
#define NN_RESTRICT __restrict__
#define NN_THREAD_LOCAL __thread
#define NN_INLINE static inline __attribute__((always_inline))
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)
#define NN_X86_64 1
#endif

// Per-function ISA targets: the SIMD kernels are compiled for their ISA with a target
// attribute, the rest of the library for the baseline, and cpu.c picks at run time.
// MSVC needs no attribute to emit AVX intrinsics.
#if defined(__GNUC__) || defined(__clang__)
#define NN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#else
#define NN_TARGET_AVX2
#define NN_TARGET_AVX512
#endif

#define NN_ALIGNMENT 64

// 2^53, the numbers a double holds exactly (a decimal literal: older MSVC C has no hex floats).
#define NN_TWO_POW_53 9007199254740992.0

#if defined(_MSC_VER) && !defined(__clang__)
#define NN_PRAGMA(x) __pragma(x)
#else
#define NN_PRAGMA(x) _Pragma(#x)
#endif

// Unroll the next loop n times. GCC and clang spell it differently; other compilers (MSVC)
// warn about pragmas they do not know, so they get none and unroll on their own.
#if defined(__clang__)
#define NN_UNROLL(n) NN_PRAGMA(unroll n)
#elif defined(__GNUC__)
#define NN_UNROLL(n) NN_PRAGMA(GCC unroll n)
#else
#define NN_UNROLL(n)
#endif

// NN_PREFETCH: for reading; NN_PREFETCH_W: for writing.
#if defined(__GNUC__) || defined(__clang__)
#define NN_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define NN_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#elif defined(NN_X86_64)
#include <xmmintrin.h>
#define NN_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define NN_PREFETCH_W(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define NN_PREFETCH(p) ((void)(p))
#define NN_PREFETCH_W(p) ((void)(p))
#endif

// ---- dtype templating -----------------------------------------------------------------------
// A body is written once in a *_impl.h that uses T (the scalar type) and NN_T(name); its .c
// file compiles it for both types with  #define NN_IMPL "x_impl.h"  #include "instantiate.h"
// (T = float, SUF = f32, then T = double, SUF = f64).

#define NN_CAT_(a, b) a##_##b
#define NN_CAT(a, b) NN_CAT_(a, b)
#define NN_T(name) NN_CAT(name, SUF)

// ---- type-generic libm: NN_T(nn_exp)(x) is expf for float, exp for double -------------------

#include <float.h>
#include <math.h>
NN_INLINE float nn_exp_f32(float x) { return expf(x); }
NN_INLINE double nn_exp_f64(double x) { return exp(x); }
// exp that returns 0 instead of a subnormal (x < log of the smallest normal number):
// subnormals change nothing a network computes but cost a slow path in exp and in every
// later multiplication (training digits slowed 3x once its logits spread past 88).
// float: inline and branch-free, so that a row of them (softmax) is vectorised - libm's expf
// through the PLT, one at a time, was 2/3 of the softmax cross-entropy and 10% of a
// 64-128-10 training step. In double: 2^(x log2 e) = 2^k 2^r, k the nearest integer (by the
// 1.5 2^52 rounding trick), |r| <= 1/2, 2^r by its Taylor series to degree 8 (relative error
// below 3e-10), 2^k put into the exponent bits, then rounded once to float: within 0.504 ulp
// (tools/check_expf.c, against exp in double at every float in [-87.34, 88.72]; glibc's expf
// gives another float for 1 in 12,000 of them).
// -inf and x < -87.34 give 0, +inf and x > 88.72 give inf, NaN gives NaN.
NN_INLINE float nn_expz_f32(float x) {
    double t = (double)x * 1.4426950408889634;
    t = t < -150.0 ? -150.0 : t;  // 2^-150 rounds to 0 in float, 2^150 to inf
    t = t > 150.0 ? 150.0 : t;    // (NaN passes both)
    double kd = t + 6755399441055744.0;  // 1.5 2^52: the low bits now hold round(t)
    uint64_t bits;
    memcpy(&bits, &kd, sizeof bits);
    kd -= 6755399441055744.0;
    const double u = (t - kd) * 0.6931471805599453;  // r ln 2, |u| <= 0.347
    double p = 1.0 / 5040 + u * (1.0 / 40320);
    p = 1.0 / 720 + u * p;
    p = 1.0 / 120 + u * p;
    p = 1.0 / 24 + u * p;
    p = 1.0 / 6 + u * p;
    p = 0.5 + u * p;
    p = 1.0 + u * p;
    p = 1.0 + u * p;
    bits = (bits + 1023) << 52;  // 2^k: k + 1023 in the exponent field
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = (float)(p * scale);
    return x < -87.336544f ? 0.0f : y;
}
NN_INLINE double nn_expz_f64(double x) { return x < -708.39641853226408 ? 0.0 : exp(x); }
// x, or 0 when x is subnormal (NaN passes): for state that decays geometrically, like a
// momentum buffer whose gradient is 0 (a dead relu unit): 0.9^n x reaches the subnormals
// after ~800 steps and stays there for ~200 more, each multiply on the slow path (a 16-16-10
// network's SGD update went from 0.1 to 7 us).
// FLT_MIN and DBL_MIN are the smallest normal numbers, 2^-126 and 2^-1022. (fabs, not a pair
// of comparisons joined by &&: that is control flow, which stops the compiler from
// vectorising the loop around it.)
#define nn_min_normal_f32 FLT_MIN
#define nn_min_normal_f64 DBL_MIN
NN_INLINE float nn_flush_f32(float x) { return fabsf(x) < FLT_MIN ? 0.0f : x; }
NN_INLINE double nn_flush_f64(double x) { return fabs(x) < DBL_MIN ? 0.0 : x; }
NN_INLINE float nn_fabs_f32(float x) { return fabsf(x); }
NN_INLINE double nn_fabs_f64(double x) { return fabs(x); }
NN_INLINE float nn_log1p_f32(float x) { return log1pf(x); }
NN_INLINE double nn_log1p_f64(double x) { return log1p(x); }
// log1p(e) for 0 <= e <= 1 (NaN passes): the softplus term log1p(exp(-|x|)) of the BCE loss.
// float: inline, in double: s = e / (2 + e) <= 1/3, log1p(e) = 2 atanh(s) = 2 s (1 + s^2/3 +
// s^4/5 + ... + s^14/15) (relative error below 2e-9), rounded once to float: within 0.52 ulp
// (checked against log1p in double at every 7th float in [0, 1]).
// glibc's log1pf took 24 of 125 ns per sample of the seed network's training step (2-3-1,
// batch 1): it is on the loss's dependency chain, and the step is bound by its chains' latency
// (hence Estrin's scheme below, not Horner's). double: glibc's log1p.
NN_INLINE float nn_log1p_unit_f32(float e) {
    double d = e, s = d / (2 + d), s2 = s * s, s4 = s2 * s2;
    // 1 + s2/3 + ... + s14/15 by Estrin's scheme: a short dependency chain
    double p01 = 1 + s2 * (1.0 / 3), p23 = 1.0 / 5 + s2 * (1.0 / 7);
    double p45 = 1.0 / 9 + s2 * (1.0 / 11), p67 = 1.0 / 13 + s2 * (1.0 / 15);
    double p = (p01 + s4 * p23) + (s4 * s4) * (p45 + s4 * p67);
    return (float)(2 * s * p);
}
NN_INLINE double nn_log1p_unit_f64(double e) { return log1p(e); }
NN_INLINE float nn_log_f32(float x) { return logf(x); }
NN_INLINE double nn_log_f64(double x) { return log(x); }
NN_INLINE float nn_tanh_f32(float x) { return tanhf(x); }
NN_INLINE double nn_tanh_f64(double x) { return tanh(x); }
NN_INLINE float nn_erf_f32(float x) { return erff(x); }
NN_INLINE double nn_erf_f64(double x) { return erf(x); }
NN_INLINE float nn_sqrt_f32(float x) { return sqrtf(x); }
NN_INLINE double nn_sqrt_f64(double x) { return sqrt(x); }

// nn_activation_needs_z, inline (activations.c exports it).
NN_INLINE int nn_act_needs_z(int act, double alpha) {
    return act == NN_ACT_GELU || (act == NN_ACT_LEAKY_RELU && alpha < 0);
}

// ---- threads --------------------------------------------------------------------------------

// Below this much work per thread a parallel region costs more than it saves (an OpenMP fork
// and join costs microseconds). Measured on 2 cores (Sapphire Rapids): a GEMM gains from a
// second thread from about 2^20 multiply-adds (64x128x128: 10.7 -> 8.3 us) and loses below
// (64x128x64: 6.2 -> 7.3 us); an element-wise pass from about 2^16 elements.
#define NN_PAR_MIN_ELEMS ((nn_int)1 << 15)  // element-wise kernels, per thread
#define NN_PAR_MIN_FLOPS ((nn_int)1 << 19)  // GEMM multiply-adds per thread
// One row of C (a one-sample predict) is bound by reading B, not by arithmetic: two threads
// each read half of B's columns, from their own core's cache when it stays there, from 2^15
// multiply-adds a thread (128 KiB of float32 B). Two threads, B in L2/L3 (us): 1x256x784
// 7.6-9.0 -> 4.5-5.2, 1x512x512 10.8-12.2 -> 6.3-7.4, 1x1024x64 2.5-2.7 -> 2.1-2.25 (2^16 a
// thread: 2.5); 1x256x128 (2^14 a thread) 1.30 -> 1.5: one thread.
#define NN_PAR_MIN_ROW_FLOPS ((nn_int)1 << 15)

// How many threads to use for `work` units when each thread should get at least `grain`.
int nn_threads_for(int n_threads, nn_int work, nn_int grain);


// ---- subnormal numbers ---------------------------------------------------------------------
// The floating-point control bits that flush subnormal results to zero and read subnormal
// inputs as zero (x86-64 MXCSR: FTZ | DAZ). The compiled plan sets them for its calls
// (nn_plan_train, nn_plan_forward), as XLA and oneDNN do: late in training, gradients of
// well-learnt samples fall below the smallest normal number and every multiply-add on them
// takes a microcode assist (digits 64-128-10 fell from 1.25 M to 0.61 M samples/s within 30
// epochs). Only values below 2^-126 (float) / 2^-1022 (double) change. A parallel region's
// workers take their caller's bits (NN_FP_INHERIT), so results never depend on the thread
// count; the kernels called on their own keep whatever mode the caller has (IEEE by default).
#if defined(NN_X86_64)
#include <xmmintrin.h>
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

// ---- memory ---------------------------------------------------------------------------------

void *nn_aligned_alloc(size_t bytes);
void nn_aligned_free(void *p);

// A per-thread scratch buffer, kept and grown across calls (slot 0..NN_WS_SLOTS-1).
// Returns NULL when it cannot be allocated. Valid until the same thread asks again for
// the same slot.
#define NN_WS_SLOTS 6
void *nn_workspace(int slot, size_t bytes);

// ---- the dispatch table (filled in cpu.c) ---------------------------------------------------

// A GEMM micro-kernel computes one MR x NR tile, edges included:
//   c (m, n; row stride ldc)  (+)=  A (m, k) . B (k, n),   m <= MR, n <= NR
// with A(i, p) = a[i * rs_a + p * cs_a] and row p of B at b + p * ldb. Two forms per path:
// the packed one reads zero-padded panels (rs_a = 1, cs_a = MR, ldb = NR) and ignores the
// strides; the direct one reads the operands in place, takes rows i >= m from row m - 1
// and masks the columns j >= n of B (no read past them). Rows >= m and columns >= n of c are
// never written. With accumulate the sum is formed first and then added to c.
typedef void (*nn_ukr_f32_t)(nn_int k, const float *a, nn_int rs_a, nn_int cs_a,
                             const float *b, nn_int ldb, float *c, nn_int ldc, int m, int n,
                             int accumulate);
typedef void (*nn_ukr_f64_t)(nn_int k, const double *a, nn_int rs_a, nn_int cs_a,
                             const double *b, nn_int ldb, double *c, nn_int ldc, int m, int n,
                             int accumulate);
// The inner-product form, for c = A . B^T with both operands contiguous along k and few rows
// (dX = dZ . W^T at batch 1 to 4):  c (m, n) (+)= a (m, k) . b (n, k)^T, m <= NN_MR_SHORT,
// n <= dot_n (the path's), rows of a at a + i * lda, rows of b at b + j * ldb.
typedef void (*nn_dot_f32_t)(nn_int k, const float *a, nn_int lda, const float *b, nn_int ldb,
                             float *c, nn_int ldc, int m, int n, int accumulate);
typedef void (*nn_dot_f64_t)(nn_int k, const double *a, nn_int lda, const double *b,
                             nn_int ldb, double *c, nn_int ldc, int m, int n, int accumulate);

#define NN_MR_SHORT 4  // rows of the short kernels and of the inner-product kernel

// One dtype's GEMM kernels on one path. direct[s][w]: s = 0 for mr rows, 1 for the short form
// (NN_MR_SHORT rows), 2 for the row form (1 row, nr_row columns); w = 1 for the narrow form
// (one vector, nr_narrow columns, instead of nr or nr_row). stream: one row against a B that
// comes from L3 or memory, n a multiple of one vector (gemm_isa_impl.h).
#define NN_GEMM_KERNELS(T, SUF)                                                               \
    struct nn_gemm_kernels_##SUF {                                                            \
        int mr, nr, nr_row;    /* micro-tile; the row form's width */                         \
        int nr_narrow, dot_n;  /* the narrow form's width (one vector); the dot kernel's n */ \
        nn_int mc, kc, nc;     /* cache blocks: A block mc x kc in L2, B kc x nc in L3 */     \
        nn_ukr_##SUF##_t packed, direct[3][2], stream;                                        \
        nn_dot_##SUF##_t dot;                                                                 \
        void (*transpose)(T *dst, nn_int ldd, const T *src, nn_int lds, nn_int rows,          \
                          nn_int cols); /* dst(c, r) = src(r, c) */                           \
    };
NN_GEMM_KERNELS(float, f32)
NN_GEMM_KERNELS(double, f64)

struct nn_dispatch {
    int path;
    struct nn_gemm_kernels_f32 gemm_f32;
    struct nn_gemm_kernels_f64 gemm_f64;
};

const struct nn_dispatch *nn_dispatch_get(void);

// The kernels of each path (gemm_kernels_*.c), named nn_<form>_<isa>_<dtype>: forms packed,
// direct, direct_short, direct_narrow, direct_short_narrow, direct_row, direct_row_narrow and
// stream (nn_ukr_*_t), dot (nn_dot_*_t) and transpose.
#define NN_DECLARE_GEMM_KERNELS_T(isa, T, SUF)                                                \
    void nn_packed_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_direct_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_direct_short_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int,  \
                                       T *, nn_int, int, int, int);                           \
    void nn_direct_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, \
                                        T *, nn_int, int, int, int);                          \
    void nn_direct_short_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *,   \
                                              nn_int, T *, nn_int, int, int, int);            \
    void nn_direct_row_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int,    \
                                     T *, nn_int, int, int, int);                             \
    void nn_direct_row_narrow_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *,     \
                                            nn_int, T *, nn_int, int, int, int);              \
    void nn_stream_##isa##_##SUF(nn_int, const T *, nn_int, nn_int, const T *, nn_int, T *,   \
                                 nn_int, int, int, int);                                      \
    void nn_dot_##isa##_##SUF(nn_int, const T *, nn_int, const T *, nn_int, T *, nn_int, int, \
                              int, int);                                                      \
    void nn_transpose_##isa##_##SUF(T *, nn_int, const T *, nn_int, nn_int, nn_int);
#define NN_DECLARE_GEMM_KERNELS(isa)                                                          \
    NN_DECLARE_GEMM_KERNELS_T(isa, float, f32) NN_DECLARE_GEMM_KERNELS_T(isa, double, f64)
// The table entry of one dtype on one path (blocking mc, kc, nc from cpu.c).
#define NN_GEMM_ENTRY(isa, SUF, mr, nr, nr_narrow, dot_n, mc, kc, nc)                         \
    {mr, nr, 4 * (nr), nr_narrow, dot_n, mc, kc, nc, nn_packed_##isa##_##SUF,                 \
     {{nn_direct_##isa##_##SUF, nn_direct_narrow_##isa##_##SUF},                              \
      {nn_direct_short_##isa##_##SUF, nn_direct_short_narrow_##isa##_##SUF},                  \
      {nn_direct_row_##isa##_##SUF, nn_direct_row_narrow_##isa##_##SUF}},                     \
     nn_stream_##isa##_##SUF, nn_dot_##isa##_##SUF, nn_transpose_##isa##_##SUF}

NN_DECLARE_GEMM_KERNELS(generic)
#ifdef NN_X86_64
NN_DECLARE_GEMM_KERNELS(avx2)
NN_DECLARE_GEMM_KERNELS(avx512)
#endif

// ---- internal kernels shared between files --------------------------------------------------

// An optimizer step applied to a block of parameters as soon as its gradient is final: the
// compiled plan's dW tiles update W while they are still in L1, instead of a pass over all the
// parameters after the backward pass (which re-reads every gradient from memory).
// fn(args, off, rows, cols, ld, grad, ldg) updates the elements off + r * ld + [0, cols) for
// r < rows; offsets count elements from origin, the start of the gradient buffer (parameters,
// their gradients and the optimizer state share offsets). Row r's gradients are read at
// grad + r * ldg, or with grad NULL from the gradient buffer itself.
// With scratch set, the gradient buffer need not receive the gradients the step reads: a GEMM
// may then form a panel of dW in a small buffer of its own and step from there, so that dW
// is never written out (784-256-128-10 at batch 64: 0.8 MB a step less through the caches,
// beside W and its momentum). The plan sets it except on the last batch of a call (the
// model's grads are then the last batch's when it returns) and under the NaN guard.
// arrays lists what the step reads and writes at the same offsets (the parameters and the
// optimizer's state; NULL-terminated, may be empty): a GEMM may fetch the rows of its next
// block ahead (see gemm_block_packed).
typedef struct {
    void (*fn)(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
               const void *grad, nn_int ldg);
    const void *args;
    const void *origin;
    int scratch;
    const void *arrays[5];
} nn_update;

// The range functions for nn_update (optim.c): args is a struct sgd_args / adam_args of
// optim_body_impl.h for the dtype; the update of the selected CPU path.
void nn_sgd_tile_f32(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                     const void *grad, nn_int ldg);
void nn_sgd_tile_f64(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                     const void *grad, nn_int ldg);
void nn_adam_tile_f32(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                      const void *grad, nn_int ldg);
void nn_adam_tile_f64(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                      const void *grad, nn_int ldg);

// The GEMM with an epilogue, applied to each tile right after its last k block, while the
// tile is in L1: c = act(c + bias) (bias (n) or NULL); z (ldz), if not NULL, receives the
// pre-activation c + bias. act must not be softmax (it needs whole rows).
int nn_gemm_ex_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                   nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                   const float *bias, float *z, nn_int ldz, int act, float alpha,
                   int n_threads);
int nn_gemm_ex_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                   nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                   int accumulate, const double *bias, double *z, nn_int ldz, int act,
                   double alpha, int n_threads);

// A dense layer's forward product y = act(x . w + bias) (nn_gemm_ex's epilogue), with its
// sums split over k in two where the backward updates w in two halves of rows (gemm.c).
int nn_gemm_forward_f32(float *y, const float *x, const float *w, nn_int m, nn_int n,
                        nn_int k, const float *bias, float *z, int act, float alpha,
                        int n_threads);
int nn_gemm_forward_f64(double *y, const double *x, const double *w, nn_int m, nn_int n,
                        nn_int k, const double *bias, double *z, int act, double alpha,
                        int n_threads);

// The GEMM of nn_gemm (no epilogue) applying upd (not NULL) to each block of c once it is
// final: c is a block of the gradient buffer upd->origin.
int nn_gemm_upd_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const nn_update *upd, int n_threads);
int nn_gemm_upd_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const nn_update *upd, int n_threads);

// nn_dense_backward applying upd (or NULL) to dw and db once each is final (dense.c).
int nn_dense_backward_upd_f32(float *dx, float *dw, float *db, float *dz, const float *dy,
                              const float *x, const float *w, const float *y, const float *z,
                              nn_int n, nn_int in, nn_int out, int act, float alpha,
                              int accumulate, const nn_update *upd, int n_threads);
int nn_dense_backward_upd_f64(double *dx, double *dw, double *db, double *dz, const double *dy,
                              const double *x, const double *w, const double *y,
                              const double *z, nn_int n, nn_int in, nn_int out, int act,
                              double alpha, int accumulate, const nn_update *upd,
                              int n_threads);

// The GEMM of nn_gemm_ex as plain loops, for products of at most NN_GEMM_TINY multiply-adds
// (gemm.c): nn_gemm_ex takes it by itself; callers that know their product is that small may
// call it directly (same sums, none of the dispatch).
#ifndef NN_GEMM_TINY
#define NN_GEMM_TINY 64  // multiply-adds; measured: 8x8 at batch 1 gains, 16x16 loses
#endif
int nn_gemm_tiny_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                     nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                     int accumulate, const float *bias, float *z, nn_int ldz, int act,
                     float alpha);
int nn_gemm_tiny_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                     nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                     int accumulate, const double *bias, double *z, nn_int ldz, int act,
                     double alpha);

// The tile epilogue (activations.c): y (rows, cols; row stride ldy) = act(y + bias), storing
// y + bias into z (row stride ldz) first when z is not NULL. Element-wise acts only.
void nn_act_tile_f32(float *y, nn_int ldy, float *z, nn_int ldz, const float *bias,
                     nn_int rows, nn_int cols, int act, float alpha);
void nn_act_tile_f64(double *y, nn_int ldy, double *z, nn_int ldz, const double *bias,
                     nn_int rows, nn_int cols, int act, double alpha);

#endif  // NNCORE_COMMON_H
