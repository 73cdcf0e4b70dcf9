// dense_bf16.c - the dense layer of a mixed_bfloat16 model: nn_dense_forward / _backward with
// the three products in bfloat16 (nn_gemm_bf16_ex: the operands rounded as they are packed,
// the sums in float32); the bias, the activation, its derivative and db in float32.
#include "internal/port.h"
#include "internal/update.h"
#include "gemm/bf16.h"
#include "ops/ops.h"

int nn_dense_forward_bf16(float *y, float *z, const float *x, const float *w, const float *b,
                          nn_int n, nn_int in, nn_int out, int act, float alpha,
                          int n_threads) {
    // x (n, in), w (in, out), b (out), y and z (n, out)
    if (act == NN_ACT_SOFTMAX) {  // needs whole rows: the product and bias first
        int s = nn_gemm_bf16_ex(y, x, w, n, out, in, in, out, out, 0, 0, 0, b, z, out,
                                NN_ACT_IDENTITY, 0.0f, NULL, n_threads);
        if (s == NN_OK) nn_activation_forward_f32(y, y, n, out, act, alpha, n_threads);
        return s;
    }
    return nn_gemm_bf16_ex(y, x, w, n, out, in, in, out, out, 0, 0, 0, b, z, out, act, alpha,
                           NULL, n_threads);
}

int nn_dense_backward_bf16_upd(float *dx, float *dw, float *db, float *dz, const float *dy,
                               const float *x, const float *w, const float *y, const float *z,
                               nn_int n, nn_int in, nn_int out, int act, float alpha,
                               int accumulate, const nn_update *upd, int n_threads) {
    // dy, dz, y, z (n, out); x (n, in); w, dw (in, out); db (out); dx (n, in)
    // dx first: with upd, w is updated as dw's tiles are finished.
    nn_activation_backward_f32(dz, dy, y, z, n, out, act, alpha, n_threads);
    int s = NN_OK;
    if (dx != NULL)  // dx (n, in) = dz . w^T
        s = nn_gemm_bf16_ex(dx, dz, w, n, in, out, out, out, in, 0, 1, 0, NULL, NULL, 0,
                            NN_ACT_IDENTITY, 0.0f, NULL, n_threads);
    if (s != NN_OK) return s;
    // dw (in, out) = x^T . dz
    s = nn_gemm_bf16_ex(dw, x, dz, in, out, n, in, out, out, 1, 0, accumulate, NULL, NULL, 0,
                        NN_ACT_IDENTITY, 0.0f, upd, n_threads);
    if (s != NN_OK) return s;
    if (db != NULL) {
        nn_colsum_f32(db, dz, n, out, accumulate, n_threads);
        if (upd != NULL) upd->fn(upd->args, db - (const float *)upd->origin, 1, out, out, NULL, 0);
    }
    return NN_OK;
}

int nn_dense_backward_bf16(float *dx, float *dw, float *db, float *dz, const float *dy,
                           const float *x, const float *w, const float *y, const float *z,
                           nn_int n, nn_int in, nn_int out, int act, float alpha,
                           int accumulate, int n_threads) {
    return nn_dense_backward_bf16_upd(dx, dw, db, dz, dy, x, w, y, z, n, in, out, act, alpha,
                                      accumulate, NULL, n_threads);
}
