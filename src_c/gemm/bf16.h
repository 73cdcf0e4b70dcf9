// bf16.h - the bfloat16 products' micro-kernels (bf16.c, kernels/avx512_bf16.c).
#ifndef NN_GEMM_BF16_H
#define NN_GEMM_BF16_H

#include "internal/port.h"

// c (m, n; row stride ldc) (+)= A . B over kp pairs of k steps, from a packed panel of A
// ([k pair][mr], a word per pair of bfloat16) and one of B ([k pair][nr]); m <= mr, n <= nr.
typedef void (*nn_bf16_ukr_t)(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                              nn_int ldc, int m, int n, int accumulate);

struct nn_bf16_kernel {
    nn_bf16_ukr_t ukr;
    int mr, nr;
};

#ifdef NN_X86_64
// VDPBF16PS, 12 x 32 (kernels/avx512_bf16.c).
void nn_bf16_ukr_avx512_bf16(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                            nn_int ldc, int m, int n, int accumulate);
#endif

#endif  // NN_GEMM_BF16_H
