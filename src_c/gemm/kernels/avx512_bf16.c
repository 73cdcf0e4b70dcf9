// avx512_bf16.c - the bfloat16 micro-kernel with VDPBF16PS: 12 x 32 floats (24 zmm
// accumulators), each step a pair of k steps; edges with lane masks.
#include "internal/port.h"
#include "gemm/bf16.h"

#ifdef NN_X86_64
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,avx2,fma")))
enum { MR = 12, NR = 32 };

TARGET void nn_bf16_ukr_avx512_bf16(nn_int kp, const uint32_t *NN_RESTRICT a,
                                   const uint32_t *NN_RESTRICT b, float *NN_RESTRICT c,
                                   nn_int ldc, int m, int n, int accumulate) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (nn_int p = 0; p < kp; p++, a += MR, b += NR) {
        NN_PREFETCH(b + 16 * NR);
        NN_PREFETCH(b + 16 * NR + 16);
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
        for (int i = 0; i < MR; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    const int n0 = n < 16 ? n : 16, n1 = n - 16 < 0 ? 0 : n - 16;
    const __mmask16 k0 = (__mmask16)((1u << n0) - 1u), k1 = (__mmask16)((1u << n1) - 1u);
    for (int i = 0; i < m; i++) {
        float *r = c + i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(k0, r), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(k1, r + 16), v1);
        }
        _mm512_mask_storeu_ps(r, k0, v0);
        _mm512_mask_storeu_ps(r + 16, k1, v1);
    }
}
#endif
