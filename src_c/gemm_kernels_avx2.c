// gemm_kernels_avx2.c - AVX2+FMA GEMM kernels: 6 x 16 floats, 6 x 8 doubles (12 ymm
// accumulators of the 16); edges with maskload/maskstore; inner products 4 x 2.
#include "common.h"

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
#define VSTOREM(p, mk, v) _mm256_maskstore_ps(p, mk, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VHSUM(v) hsum_f32(v)
#define MR_MAIN 6
#define NR_MAIN 16
#define DOT_N 2
#include "gemm_isa_impl.h"

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
#define VSTOREM(p, mk, v) _mm256_maskstore_pd(p, mk, v)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VADD(a, b) _mm256_add_pd(a, b)
#define VHSUM(v) hsum_f64(v)
#define MR_MAIN 6
#define NR_MAIN 8
#define DOT_N 2
#include "gemm_isa_impl.h"
#endif
