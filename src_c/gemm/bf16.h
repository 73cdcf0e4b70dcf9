// bf16.h - the bfloat16 products' micro-kernels (bf16.c, kernels/avx512_bf16.c).
#ifndef NN_GEMM_BF16_H
#define NN_GEMM_BF16_H

#include "internal/port.h"
#include "internal/update.h"

// nn_gemm_bf16 with the float GEMM's epilogue and step (gemm.h: nn_gemm_ex, nn_gemm_upd):
// after a tile's last k block, c = act(c + bias) (z (ldz) receives c + bias; act element-wise)
// and then upd's step on it (c a block of upd->origin). NULL / NN_ACT_IDENTITY: none.
int nn_gemm_bf16_ex(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const float *bias, float *z, nn_int ldz, int act,
                    float alpha, const nn_update *upd, int n_threads);

// c (m, n; row stride ldc) (+)= A . B over kp pairs of k steps, from a packed panel of A
// ([k pair][mr], a word per pair of bfloat16) and one of B ([k pair][nr]); m <= mr, n <= nr.
typedef void (*nn_bf16_ukr_t)(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                              nn_int ldc, int m, int n, int accumulate);

// A kernel and its tile. amx: its A panels are [row][k pair] (a tile row is 32 k steps of
// one row of A) and both panels' k pairs are padded with zeros to a multiple of
// NN_AMX_PAIRS; the calling thread runs nn_bf16_amx_begin before and nn_bf16_amx_end after.
struct nn_bf16_ukr_info {
    nn_bf16_ukr_t ukr;
    int mr, nr, amx;
    // The packing of A and B for this tile (bf16.c), compiled for the path.
    void (*pack_a)(uint32_t *dst, const float *a, nn_int lda, int trans, nn_int i0, nn_int mb,
                   nn_int p0, nn_int kb, nn_int kpad, int mr, int amx);
    void (*pack_b)(uint32_t *dst, const float *b, nn_int ldb, int trans, nn_int p0, nn_int kb,
                   nn_int kpad, nn_int j0, nn_int nb, int nr);
};
#define NN_AMX_PAIRS 16  // k pairs a tile multiply takes (a tile row: 64 bytes)

#ifdef NN_X86_64
// VDPBF16PS, 12 x 32 (kernels/avx512_bf16.c).
void nn_bf16_ukr_avx512_bf16(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                             nn_int ldc, int m, int n, int accumulate);
// AMX, 32 x 32: four 16 x 16 accumulator tiles (kernels/amx.c).
void nn_bf16_ukr_avx512_amx(nn_int kp, const uint32_t *a, const uint32_t *b, float *c,
                            nn_int ldc, int m, int n, int accumulate);
void nn_bf16_amx_begin(void);  // the tile configuration, on the calling thread
void nn_bf16_amx_end(void);    // the tiles released
#endif

#endif  // NN_GEMM_BF16_H
