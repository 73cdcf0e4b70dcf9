// activations_impl.h - activations forward and backward for T = float / double.
// The per-row bodies (act_row, act_grad_row, softmax_row, ...) are in rows_impl.h, shared
// with the training plan's fused step.

#include "rows_impl.h"

void NN_T(nn_act_tile)(T *y, nn_int ldy, T *z, nn_int ldz, const T *bias, nn_int rows,
                       nn_int cols, int act, T alpha) {
    for (nn_int i = 0; i < rows; i++) {
        T *yr = y + i * ldy;
        if (bias != NULL)
            for (nn_int j = 0; j < cols; j++) yr[j] += bias[j];
        if (z != NULL) memcpy(z + i * ldz, yr, (size_t)cols * sizeof(T));
        NN_T(act_row)(yr, yr, cols, act, alpha);
    }
}

void NN_T(nn_activation_forward)(T *y, const T *x, nn_int rows, nn_int cols, int act, T alpha,
                                 int n_threads) {
    // x, y (rows, cols)
    if (act == NN_ACT_SOFTMAX) {
        int nt = nn_threads_for(n_threads, rows * cols, NN_PAR_MIN_ELEMS);
        NN_PARALLEL_FOR(nt, i, rows, NN_T(softmax_row)(y + i * cols, x + i * cols, cols););
        return;
    }
    // Element-wise: split the flat buffer into fixed chunks, whatever the thread count.
    nn_int n = rows * cols, chunk = NN_PAR_MIN_ELEMS / 4;
    nn_int n_chunks = (n + chunk - 1) / chunk;
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        NN_T(act_row)(y + lo, x + lo, len, act, alpha);
    });
}

void NN_T(nn_activation_backward)(T *dz, const T *dy, const T *y, const T *z, nn_int rows,
                                  nn_int cols, int act, T alpha, int n_threads) {
    // dz, dy, y, z (rows, cols)
    if (act == NN_ACT_SOFTMAX) {
        int nt = nn_threads_for(n_threads, rows * cols, NN_PAR_MIN_ELEMS);
        NN_PARALLEL_FOR(nt, i, rows,
                        NN_T(softmax_grad_row)(dz + i * cols, dy + i * cols, y + i * cols, cols););
        return;
    }
    if (!nn_activation_needs_z(act, alpha)) z = NULL;
    nn_int n = rows * cols, chunk = NN_PAR_MIN_ELEMS / 4;
    nn_int n_chunks = (n + chunk - 1) / chunk;
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        NN_T(act_grad_row)(dz + lo, dy + lo, y + lo, z ? z + lo : NULL, len, act, alpha);
    });
}
