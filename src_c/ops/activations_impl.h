// activations_impl.h - activations forward and backward for T = float / double.
// The per-row bodies (act_row, act_grad_row, softmax_row, ...) are in rows_impl.h, shared
// with the training plan's fused step.

#include "rows_impl.h"

// The epilogue of a dense layer's tile for the identity and relu (nearly every hidden and
// output layer): bias, z and the activation in one pass over the tile (in L1), compiled for
// each CPU path - exactly rounded, so the same bits on every path. Two passes in baseline
// SSE2 cost about three times as much.
struct NN_T(tile_args) {
    T *y, *z;
    const T *bias;
    nn_int ldy, ldz, cols;
    int relu;
};

NN_INLINE void NN_T(tile_body)(const struct NN_T(tile_args) *a, nn_int i0, nn_int i1) {
    const nn_int cols = a->cols;
    const T *b = a->bias;
    for (nn_int i = i0; i < i1; i++) {
        T *y = a->y + i * a->ldy, *z = a->z != NULL ? a->z + i * a->ldz : NULL;
        if (b != NULL && z != NULL) {
            for (nn_int j = 0; j < cols; j++) {
                T v = y[j] + b[j];
                z[j] = v;
                y[j] = a->relu ? NN_T(relu_fwd)(v) : v;
            }
        } else if (b != NULL) {
            if (a->relu)
                for (nn_int j = 0; j < cols; j++) y[j] = NN_T(relu_fwd)(y[j] + b[j]);
            else
                for (nn_int j = 0; j < cols; j++) y[j] += b[j];
        } else {
            if (z != NULL) memcpy(z, y, (size_t)cols * sizeof(T));
            if (a->relu)
                for (nn_int j = 0; j < cols; j++) y[j] = NN_T(relu_fwd)(y[j]);
        }
    }
}

NN_ISA_VARIANTS(NN_T(tile), const struct NN_T(tile_args) *, NN_T(tile_body))

void NN_T(nn_act_tile)(T *y, nn_int ldy, T *z, nn_int ldz, const T *bias, nn_int rows,
                       nn_int cols, int act, T alpha) {
    if (act == NN_ACT_IDENTITY || act == NN_ACT_RELU) {
        struct NN_T(tile_args) a = {y, z, bias, ldy, ldz, cols, act == NN_ACT_RELU};
        NN_ISA_PICK(NN_T(tile))(&a, 0, rows);
        return;
    }
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
