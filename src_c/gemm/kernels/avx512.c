// avx512.c - AVX-512 GEMM kernels: 12 x 32 floats, 12 x 16 doubles (24 zmm
// accumulators of the 32); edges with lane masks; inner products 4 x 4.
#include "internal/port.h"
#include "internal/dispatch.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define ISA avx512
#define TARGET NN_TARGET_AVX512

// In-register transposes of a VL x VL tile (the packing of a transposed operand).
NN_INLINE TARGET void transpose_f32(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int k = 0; k < 8; k++) {  // pairs of rows interleaved
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int b = 0; b < 16; b += 4) {  // u[b + q], 128-bit lane L: rows b..b+3 of column 4L+q
        u[b] = _mm512_shuffle_ps(t[b], t[b + 2], 0x44);
        u[b + 1] = _mm512_shuffle_ps(t[b], t[b + 2], 0xEE);
        u[b + 2] = _mm512_shuffle_ps(t[b + 1], t[b + 3], 0x44);
        u[b + 3] = _mm512_shuffle_ps(t[b + 1], t[b + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {  // a 4 x 4 transpose of 128-bit lanes
        __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + q] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

NN_INLINE TARGET void transpose_f64(__m512d r[8]) {
    __m512d t[8];
    for (int k = 0; k < 4; k++) {  // t[2k + q], 128-bit lane L: rows 2k, 2k+1 of column 2L+q
        t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);
    }
    for (int q = 0; q < 2; q++) {  // a 4 x 4 transpose of 128-bit lanes
        __m512d v0 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0x44);
        __m512d v1 = _mm512_shuffle_f64x2(t[q], t[2 + q], 0xEE);
        __m512d v2 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0x44);
        __m512d v3 = _mm512_shuffle_f64x2(t[4 + q], t[6 + q], 0xEE);
        r[q] = _mm512_shuffle_f64x2(v0, v2, 0x88);
        r[2 + q] = _mm512_shuffle_f64x2(v0, v2, 0xDD);
        r[4 + q] = _mm512_shuffle_f64x2(v1, v3, 0x88);
        r[6 + q] = _mm512_shuffle_f64x2(v1, v3, 0xDD);
    }
}

#define T float
#define SUF f32
#define V __m512
#define VL 16
#define VM __mmask16
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, mk) _mm512_maskz_loadu_ps(mk, p)
#define VMASK_HI(n) ((__mmask16)~VMASK(16 - (n)))
#define VROTATE(v, s)                                                                        \
    _mm512_permutexvar_ps(_mm512_and_si512(_mm512_add_epi32(_mm512_setr_epi32(               \
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(s)),          \
        _mm512_set1_epi32(15)), v)
#define VSTOREM(p, mk, v) _mm512_mask_storeu_ps(p, mk, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#define VTRANSPOSE(r) transpose_f32(r)
#define MR_MAIN 12
#define NR_MAIN 32
#define DOT_N 4
#include "gemm/gemm_isa_impl.h"

#define T double
#define SUF f64
#define V __m512d
#define VL 8
#define VM __mmask8
#define VZERO() _mm512_setzero_pd()
#define VSET1(x) _mm512_set1_pd(x)
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VMASK(n) ((__mmask8)((1u << (n)) - 1u))
#define VLOADM(p, mk) _mm512_maskz_loadu_pd(mk, p)
#define VMASK_HI(n) ((__mmask8)~VMASK(8 - (n)))
#define VROTATE(v, s)                                                                        \
    _mm512_permutexvar_pd(_mm512_and_si512(_mm512_add_epi64(_mm512_setr_epi64(               \
        0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64(s)), _mm512_set1_epi64(7)), v)
#define VSTOREM(p, mk, v) _mm512_mask_storeu_pd(p, mk, v)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VADD(a, b) _mm512_add_pd(a, b)
#define VHSUM(v) _mm512_reduce_add_pd(v)
#define VTRANSPOSE(r) transpose_f64(r)
#define MR_MAIN 12
#define NR_MAIN 16
#define DOT_N 4
#include "gemm/gemm_isa_impl.h"
#endif
