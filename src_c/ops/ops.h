// ops.h - the layer kernels' entry points for the rest of the core: the dense backward
// with an optimizer step per final block, and the activation tile epilogue.
#ifndef NN_OPS_OPS_H
#define NN_OPS_OPS_H

#include "internal/update.h"

// nn_dense_backward applying upd (or NULL) to dw and db once each is final (dense.c).
int nn_dense_backward_upd_f32(float *dx, float *dw, float *db, float *dz, const float *dy,
                              const float *x, const float *w, const float *y, const float *z,
                              nn_int n, nn_int in, nn_int out, int act, float alpha,
                              int accumulate, const nn_update *upd, int n_threads);
int nn_dense_backward_upd_f64(double *dx, double *dw, double *db, double *dz, const double *dy,
                              const double *x, const double *w, const double *y,
                              const double *z, nn_int n, nn_int in, nn_int out, int act,
                              double alpha, int accumulate, const nn_update *upd,
                              int n_threads);

// db (out) (+)= the column sums of dz (n, out), rows in order whatever the threads (dense.c).
void nn_colsum_f32(float *db, const float *dz, nn_int n, nn_int out, int accumulate,
                   int n_threads);
void nn_colsum_f64(double *db, const double *dz, nn_int n, nn_int out, int accumulate,
                   int n_threads);

// The dense layer with bfloat16 products (dense_bf16.c): nn_dense_forward_bf16 and
// nn_dense_backward_bf16 of nncore.h, the latter applying upd (or NULL) as
// nn_dense_backward_upd does.
int nn_dense_backward_bf16_upd(float *dx, float *dw, float *db, float *dz, const float *dy,
                               const float *x, const float *w, const float *y, const float *z,
                               nn_int n, nn_int in, nn_int out, int act, float alpha,
                               int accumulate, const nn_update *upd, int n_threads);

// The tile epilogue (activations.c): y (rows, cols; row stride ldy) = act(y + bias), storing
// y + bias into z (row stride ldz) first when z is not NULL. Element-wise acts only.
void nn_act_tile_f32(float *y, nn_int ldy, float *z, nn_int ldz, const float *bias,
                     nn_int rows, nn_int cols, int act, float alpha);
void nn_act_tile_f64(double *y, nn_int ldy, double *z, nn_int ldz, const double *bias,
                     nn_int rows, nn_int cols, int act, double alpha);

#endif  // NN_OPS_OPS_H
