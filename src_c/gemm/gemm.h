// gemm.h - the GEMM's entry points for the rest of the core (beside nncore.h's nn_gemm):
// with an epilogue, with an optimizer step per final block, a dense layer's forward
// product, and plain loops for the tiniest products.
#ifndef NN_GEMM_GEMM_H
#define NN_GEMM_GEMM_H

#include "internal/update.h"

// The GEMM with an epilogue, applied to each tile right after its last k block, while the
// tile is in L1: c = act(c + bias) (bias (n) or NULL); z (ldz), if not NULL, receives the
// pre-activation c + bias. act must not be softmax (it needs whole rows).
int nn_gemm_ex_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                   nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                   const float *bias, float *z, nn_int ldz, int act, float alpha,
                   int n_threads);
int nn_gemm_ex_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                   nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                   int accumulate, const double *bias, double *z, nn_int ldz, int act,
                   double alpha, int n_threads);

// Where a two-thread product c (rows, cols) on the packed path splits its rows (the row), or
// 0 when it splits the columns or is one tile wide (the direct path then takes it). A dense
// layer's forward splits its sums over k at the row where its backward's dW = x^T . dz
// (in, out) splits, so each thread reads the rows of w it updates (ops/dense_impl.h).
nn_int nn_gemm_row_split_f32(nn_int rows, nn_int cols);
nn_int nn_gemm_row_split_f64(nn_int rows, nn_int cols);

// 1 when c (m, n) (+)= a (m, k) . b (k, n) takes the direct path, whose kernels form the whole
// sum over k before adding it to c: a second part of k then accumulates onto c in its tiles.
int nn_gemm_is_direct_f32(nn_int m, nn_int n, nn_int k);
int nn_gemm_is_direct_f64(nn_int m, nn_int n, nn_int k);

// The GEMM of nn_gemm (no epilogue) applying upd (not NULL) to each block of c once it is
// final: c is a block of the gradient buffer upd->origin.
int nn_gemm_upd_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const nn_update *upd, int n_threads);
int nn_gemm_upd_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, const nn_update *upd, int n_threads);

// The GEMM of nn_gemm_ex as plain loops, for products of at most NN_GEMM_TINY multiply-adds
// (gemm.c): nn_gemm_ex takes it by itself; callers that know their product is that small may
// call it directly (same sums, none of the dispatch).
#ifndef NN_GEMM_TINY
#define NN_GEMM_TINY 64  // multiply-adds; measured: 8x8 at batch 1 gains, 16x16 loses
#endif
int nn_gemm_tiny_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                     nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                     int accumulate, const float *bias, float *z, nn_int ldz, int act,
                     float alpha);
int nn_gemm_tiny_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                     nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                     int accumulate, const double *bias, double *z, nn_int ldz, int act,
                     double alpha);

#endif  // NN_GEMM_GEMM_H
