// gemm_kernels_avx512.c - AVX-512 micro-kernels: 12 x 32 floats, 12 x 16 doubles
// (24 zmm accumulators of the 32).
#include "common.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define TARGET NN_TARGET_AVX512
#define MR 12
#define VZERO() _mm512_setzero_ps()

#define T float
#define UKR nn_ukr_avx512_f32
#define NR 32
#define V __m512
#define VL 16
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define PACKED 1
#include "gemm_ukr_impl.h"
#undef PACKED
#undef UKR
#define UKR nn_ukr_avx512_f32_direct
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
// Four rows, for short row edges (batch 1 to 4): stream B once without 12-row waste.
#undef UKR
#undef MR
#define UKR nn_ukr_avx512_f32_direct_short
#define MR 4
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#undef MR
#define MR 12
// The one-vector-wide form, for narrow column edges (an output layer of 10).
#undef UKR
#undef NR
#define UKR nn_ukr_avx512_f32_direct_narrow
#define NR 16
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
#define UKR nn_ukr_avx512_f64
#define NR 16
#define V __m512d
#define VL 8
#define VZERO() _mm512_setzero_pd()
#define VSET1(x) _mm512_set1_pd(x)
#define VLOAD(p) _mm512_loadu_pd(p)
#define VSTORE(p, v) _mm512_storeu_pd(p, v)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VADD(a, b) _mm512_add_pd(a, b)
#define PACKED 1
#include "gemm_ukr_impl.h"
#undef PACKED
#undef UKR
#define UKR nn_ukr_avx512_f64_direct
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
// Four rows, for short row edges (batch 1 to 4): stream B once without 12-row waste.
#undef UKR
#undef MR
#define UKR nn_ukr_avx512_f64_direct_short
#define MR 4
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#undef MR
#define MR 12
// The one-vector-wide form, for narrow column edges (an output layer of 10).
#undef UKR
#undef NR
#define UKR nn_ukr_avx512_f64_direct_narrow
#define NR 8
#define PACKED 0
#include "gemm_ukr_impl.h"
#undef PACKED
#endif
