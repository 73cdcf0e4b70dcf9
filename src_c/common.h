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

#if defined(__GNUC__) || defined(__clang__)
#define NN_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#elif defined(NN_X86_64)
#include <xmmintrin.h>
#define NN_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define NN_PREFETCH(p) ((void)(p))
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
NN_INLINE float nn_expz_f32(float x) { return x < -87.336544f ? 0.0f : expf(x); }
NN_INLINE double nn_expz_f64(double x) { return x < -708.39641853226408 ? 0.0 : exp(x); }
// x, or 0 when x is subnormal (NaN passes): for state that decays geometrically, like a
// momentum buffer whose gradient is 0 (a dead relu unit): 0.9^n x reaches the subnormals
// after ~800 steps and stays there for ~200 more, each multiply on the slow path (a 16-16-10
// network's SGD update went from 0.1 to 7 us).
// FLT_MIN and DBL_MIN are the smallest normal numbers, 2^-126 and 2^-1022.
NN_INLINE float nn_flush_f32(float x) { return x > -FLT_MIN && x < FLT_MIN ? 0.0f : x; }
NN_INLINE double nn_flush_f64(double x) { return x > -DBL_MIN && x < DBL_MIN ? 0.0 : x; }
NN_INLINE float nn_log1p_f32(float x) { return log1pf(x); }
NN_INLINE double nn_log1p_f64(double x) { return log1p(x); }
NN_INLINE float nn_log_f32(float x) { return logf(x); }
NN_INLINE double nn_log_f64(double x) { return log(x); }
NN_INLINE float nn_tanh_f32(float x) { return tanhf(x); }
NN_INLINE double nn_tanh_f64(double x) { return tanh(x); }
NN_INLINE float nn_erf_f32(float x) { return erff(x); }
NN_INLINE double nn_erf_f64(double x) { return erf(x); }
NN_INLINE float nn_sqrt_f32(float x) { return sqrtf(x); }
NN_INLINE double nn_sqrt_f64(double x) { return sqrt(x); }

// ---- threads --------------------------------------------------------------------------------

// Below this much work per thread a parallel region costs more than it saves (an OpenMP fork
// and join costs microseconds). Measured on 2 cores (Sapphire Rapids): a GEMM gains from a
// second thread from about 2^20 multiply-adds (64x128x128: 10.7 -> 8.3 us) and loses below
// (64x128x64: 6.2 -> 7.3 us); an element-wise pass from about 2^16 elements.
#define NN_PAR_MIN_ELEMS ((nn_int)1 << 15)  // element-wise kernels, per thread
#define NN_PAR_MIN_FLOPS ((nn_int)1 << 19)  // GEMM multiply-adds per thread

// How many threads to use for `work` units when each thread should get at least `grain`.
int nn_threads_for(int n_threads, nn_int work, nn_int grain);


// for (nn_int i = 0; i < n; i++) { body }, split statically over nt threads, or inline when
// nt <= 1: a region is never entered for one thread, because even `if (0)` makes libgomp
// allocate and free a team (malloc + memalign + free: most of a tiny network's step).
#define NN_PARALLEL_FOR(nt, i, n, ...)                                                        \
    do {                                                                                      \
        if ((nt) > 1) {                                                                       \
            NN_PRAGMA(omp parallel for num_threads(nt) schedule(static))                      \
            for (nn_int i = 0; i < (n); i++) { __VA_ARGS__ }                                  \
        } else {                                                                              \
            for (nn_int i = 0; i < (n); i++) { __VA_ARGS__ }                                  \
        }                                                                                     \
    } while (0)

// ---- memory ---------------------------------------------------------------------------------

void *nn_aligned_alloc(size_t bytes);
void nn_aligned_free(void *p);

// A per-thread scratch buffer, kept and grown across calls (slot 0..NN_WS_SLOTS-1).
// Returns NULL when it cannot be allocated. Valid until the same thread asks again for
// the same slot.
#define NN_WS_SLOTS 4
void *nn_workspace(int slot, size_t bytes);

// ---- the dispatch table (filled in cpu.c) ---------------------------------------------------

// A GEMM micro-kernel computes one MR x NR tile:
//   c (MR, NR; row stride ldc)  (+)=  A (MR, k) . B (k, NR)
// with A(i, p) = a[i * rs_a + p * cs_a] and row p of B at b + p * ldb. Two forms per path:
// the packed one reads zero-padded panels (rs_a = 1, cs_a = MR, ldb = NR) and ignores the
// strides; the direct one reads the operands in place and takes rows i >= m from row m - 1.
// With accumulate the sum is formed first and then added to c, so an element's value does
// not depend on whether its tile is full or an edge tile computed into a scratch buffer.
typedef void (*nn_ukr_f32_t)(nn_int k, const float *a, nn_int rs_a, nn_int cs_a,
                             const float *b, nn_int ldb, float *c, nn_int ldc, int m,
                             int accumulate);
typedef void (*nn_ukr_f64_t)(nn_int k, const double *a, nn_int rs_a, nn_int cs_a,
                             const double *b, nn_int ldb, double *c, nn_int ldc, int m,
                             int accumulate);

struct nn_gemm_shape {
    int mr, nr;            // micro-tile
    nn_int mc, kc, nc;     // cache blocks: A block mc x kc in L2, B panel kc x nc in L3
};

struct nn_dispatch {
    int path;
    struct nn_gemm_shape gemm_f32, gemm_f64;
    // packed; direct; direct one vector wide (nr_narrow columns) for narrow column edges;
    // direct with 4 rows (nr columns) for short row edges
    nn_ukr_f32_t ukr_f32, ukr_direct_f32, ukr_narrow_f32, ukr_short_f32;
    nn_ukr_f64_t ukr_f64, ukr_direct_f64, ukr_narrow_f64, ukr_short_f64;
    int nr_narrow_f32, nr_narrow_f64;
};

const struct nn_dispatch *nn_dispatch_get(void);

// The micro-kernels of each path (gemm_kernels_*.c).
#define NN_MR_SHORT 4  // rows of the short kernels
#define NN_DECLARE_UKR(name)                                                                  \
    void name##_f32(nn_int k, const float *a, nn_int rs_a, nn_int cs_a, const float *b,       \
                    nn_int ldb, float *c, nn_int ldc, int m, int accumulate);                  \
    void name##_f64(nn_int k, const double *a, nn_int rs_a, nn_int cs_a, const double *b,     \
                    nn_int ldb, double *c, nn_int ldc, int m, int accumulate);
NN_DECLARE_UKR(nn_ukr_generic)
#ifdef NN_X86_64
NN_DECLARE_UKR(nn_ukr_avx2)
NN_DECLARE_UKR(nn_ukr_avx512)
#define NN_DECLARE_DIRECT(name, T)                                                            \
    void name(nn_int k, const T *a, nn_int rs_a, nn_int cs_a, const T *b, nn_int ldb, T *c,   \
              nn_int ldc, int m, int accumulate);
NN_DECLARE_DIRECT(nn_ukr_avx2_f32_direct_short, float)
NN_DECLARE_DIRECT(nn_ukr_avx2_f64_direct_short, double)
NN_DECLARE_DIRECT(nn_ukr_avx512_f32_direct_short, float)
NN_DECLARE_DIRECT(nn_ukr_avx512_f64_direct_short, double)
NN_DECLARE_DIRECT(nn_ukr_avx2_f32_direct_narrow, float)
NN_DECLARE_DIRECT(nn_ukr_avx2_f64_direct_narrow, double)
NN_DECLARE_DIRECT(nn_ukr_avx512_f32_direct_narrow, float)
NN_DECLARE_DIRECT(nn_ukr_avx512_f64_direct_narrow, double)
void nn_ukr_avx2_f32_direct(nn_int k, const float *a, nn_int rs_a, nn_int cs_a,
                            const float *b, nn_int ldb, float *c, nn_int ldc, int m,
                            int accumulate);
void nn_ukr_avx2_f64_direct(nn_int k, const double *a, nn_int rs_a, nn_int cs_a,
                            const double *b, nn_int ldb, double *c, nn_int ldc, int m,
                            int accumulate);
void nn_ukr_avx512_f32_direct(nn_int k, const float *a, nn_int rs_a, nn_int cs_a,
                              const float *b, nn_int ldb, float *c, nn_int ldc, int m,
                              int accumulate);
void nn_ukr_avx512_f64_direct(nn_int k, const double *a, nn_int rs_a, nn_int cs_a,
                              const double *b, nn_int ldb, double *c, nn_int ldc, int m,
                              int accumulate);
#endif

// ---- internal kernels shared between files --------------------------------------------------

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

// The tile epilogue (activations.c): y (rows, cols; row stride ldy) = act(y + bias), storing
// y + bias into z (row stride ldz) first when z is not NULL. Element-wise acts only.
void nn_act_tile_f32(float *y, nn_int ldy, float *z, nn_int ldz, const float *bias,
                     nn_int rows, nn_int cols, int act, float alpha);
void nn_act_tile_f64(double *y, nn_int ldy, double *z, nn_int ldz, const double *bias,
                     nn_int rows, nn_int cols, int act, double alpha);

#endif  // NNCORE_COMMON_H
