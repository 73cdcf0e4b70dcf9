// avx2.c - AVX2+FMA GEMM kernels: 6 x 16 floats, 6 x 8 doubles (12 ymm
// accumulators of the 16); edges with maskload/maskstore; inner products 4 x 2.
#include "internal/port.h"
#include "internal/dispatch.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define ISA avx2
#define TARGET NN_TARGET_AVX2

NN_INLINE TARGET float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

NN_INLINE TARGET double hsum_f64(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// In-register transposes of a VL x VL tile (the packing of a transposed operand).
NN_INLINE TARGET void transpose_f32(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int k = 0; k < 4; k++) {  // pairs of rows interleaved
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int b = 0; b < 8; b += 4) {  // u[b + q], 128-bit lane L: rows b..b+3 of column 4L+q
        u[b] = _mm256_shuffle_ps(t[b], t[b + 2], 0x44);
        u[b + 1] = _mm256_shuffle_ps(t[b], t[b + 2], 0xEE);
        u[b + 2] = _mm256_shuffle_ps(t[b + 1], t[b + 3], 0x44);
        u[b + 3] = _mm256_shuffle_ps(t[b + 1], t[b + 3], 0xEE);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
        r[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
    }
}

NN_INLINE TARGET void transpose_f64(__m256d r[4]) {
    __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
    __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

#define T float
#define SUF f32
#define V __m256
#define VL 8
#define VM __m256i
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, mk) _mm256_maskload_ps(p, mk)
#define VMASK_HI(n) \
    _mm256_cmpgt_epi32(_mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8), _mm256_set1_epi32(8 - (n)))
#define VROTATE(v, s)                                                                        \
    _mm256_permutevar8x32_ps(v, _mm256_and_si256(_mm256_add_epi32(_mm256_setr_epi32(         \
        0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(s)), _mm256_set1_epi32(7)))
#define VSTOREM(p, mk, v) _mm256_maskstore_ps(p, mk, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VHSUM(v) hsum_f32(v)
#define VTRANSPOSE(r) transpose_f32(r)
#define MR_MAIN 6
#define NR_MAIN 16
#define DOT_N 2
#include "gemm/gemm_isa_impl.h"

#define T double
#define SUF f64
#define V __m256d
#define VL 4
#define VM __m256i
#define VZERO() _mm256_setzero_pd()
#define VSET1(x) _mm256_set1_pd(x)
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VMASK(n) _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3))
#define VLOADM(p, mk) _mm256_maskload_pd(p, mk)
#define VMASK_HI(n) \
    _mm256_cmpgt_epi64(_mm256_setr_epi64x(1, 2, 3, 4), _mm256_set1_epi64x(4 - (n)))
// Lanes of two floats each: 32-bit lane j goes to 2 * ((j / 2 + s) % 4) + j % 2.
#define VROTATE(v, s)                                                                        \
    _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), _mm256_and_si256(          \
        _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),                            \
                         _mm256_set1_epi32(2 * (s))), _mm256_set1_epi32(7))))
#define VSTOREM(p, mk, v) _mm256_maskstore_pd(p, mk, v)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VADD(a, b) _mm256_add_pd(a, b)
#define VHSUM(v) hsum_f64(v)
#define VTRANSPOSE(r) transpose_f64(r)
#define MR_MAIN 6
#define NR_MAIN 8
#define DOT_N 2
#include "gemm/gemm_isa_impl.h"
#endif
