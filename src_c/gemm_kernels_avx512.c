// gemm_kernels_avx512.c - AVX-512 GEMM kernels: 12 x 32 floats, 12 x 16 doubles (24 zmm
// accumulators of the 32); edges with lane masks; inner products 4 x 4.
#include "common.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define ISA avx512
#define TARGET NN_TARGET_AVX512

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
#define VSTOREM(p, mk, v) _mm512_mask_storeu_ps(p, mk, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#define MR_MAIN 12
#define NR_MAIN 32
#define DOT_N 4
#include "gemm_isa_impl.h"

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
#define VSTOREM(p, mk, v) _mm512_mask_storeu_pd(p, mk, v)
#define VFMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define VADD(a, b) _mm512_add_pd(a, b)
#define VHSUM(v) _mm512_reduce_add_pd(v)
#define MR_MAIN 12
#define NR_MAIN 16
#define DOT_N 4
#include "gemm_isa_impl.h"
#endif
