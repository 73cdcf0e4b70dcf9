// gemm_kernels_avx2.c - AVX2+FMA micro-kernels: 6 x 16 floats, 6 x 8 doubles
// (12 ymm accumulators of the 16).
#include "common.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define TARGET NN_TARGET_AVX2
#define MR 6
#define VZERO() _mm256_setzero_ps()

#define T float
#define UKR nn_ukr_avx2_f32
#define NR 16
#define V __m256
#define VL 8
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define PACKED 1
#include "gemm_ukr_impl.h"
#undef PACKED
#undef UKR
#define UKR nn_ukr_avx2_f32_direct
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
// Four rows, for short row edges (batch 1 to 4): stream B once without 12-row waste.
#undef UKR
#undef MR
#define UKR nn_ukr_avx2_f32_direct_short
#define MR 4
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#undef MR
#define MR 6
// The one-vector-wide form, for narrow column edges (an output layer of 10).
#undef UKR
#undef NR
#define UKR nn_ukr_avx2_f32_direct_narrow
#define NR 8
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#undef T
#undef UKR
#undef NR
#undef V
#undef VL
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VFMA
#undef VADD
#undef VZERO

#define T double
#define UKR nn_ukr_avx2_f64
#define NR 8
#define V __m256d
#define VL 4
#define VZERO() _mm256_setzero_pd()
#define VSET1(x) _mm256_set1_pd(x)
#define VLOAD(p) _mm256_loadu_pd(p)
#define VSTORE(p, v) _mm256_storeu_pd(p, v)
#define VFMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define VADD(a, b) _mm256_add_pd(a, b)
#define PACKED 1
#include "gemm_ukr_impl.h"
#undef PACKED
#undef UKR
#define UKR nn_ukr_avx2_f64_direct
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
// Four rows, for short row edges (batch 1 to 4): stream B once without 12-row waste.
#undef UKR
#undef MR
#define UKR nn_ukr_avx2_f64_direct_short
#define MR 4
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#undef MR
#define MR 6
// The one-vector-wide form, for narrow column edges (an output layer of 10).
#undef UKR
#undef NR
#define UKR nn_ukr_avx2_f64_direct_narrow
#define NR 4
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#endif
