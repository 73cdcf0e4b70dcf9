// dense_impl.h - the dense layer forward and backward for T = float / double.

int NN_T(nn_dense_forward)(T *y, T *z, const T *x, const T *w, const T *b, nn_int n, nn_int in,
                           nn_int out, int act, T alpha, int n_threads) {
    // x (n, in), w (in, out), b (out), y and z (n, out)
    if (act != NN_ACT_SOFTMAX && n * in * out <= NN_GEMM_TINY && n > 0 && in > 0 && out > 0)
        return NN_T(nn_gemm_tiny)(y, x, w, n, out, in, in, out, out, 0, 0, 0, b, z, out, act,
                                  alpha);
    if (act == NN_ACT_SOFTMAX) {  // needs whole rows: GEMM + bias first, then row softmax
        int s = NN_T(nn_gemm_forward)(y, x, w, n, out, in, b, z, NN_ACT_IDENTITY, 0,
                                      n_threads);
        if (s == NN_OK) NN_T(nn_activation_forward)(y, y, n, out, act, alpha, n_threads);
        return s;
    }
    return NN_T(nn_gemm_forward)(y, x, w, n, out, in, b, z, act, alpha, n_threads);
}

// db (+)= column sums of dz (n, out). Threads own column blocks and sum rows in order, so the
// result does not depend on the thread count.
static void NN_T(colsum)(T *db, const T *dz, nn_int n, nn_int out, int accumulate,
                         int n_threads) {
    const nn_int block = 256;
    nn_int n_blocks = (out + block - 1) / block;
    int nt = nn_threads_for(n_threads, n * out, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, cb, n_blocks, {
        nn_int j0 = cb * block, cols = out - j0 < block ? out - j0 : block;
        T s[256];
        for (nn_int j = 0; j < cols; j++) s[j] = 0;
        for (nn_int i = 0; i < n; i++) {
            const T *row = dz + i * out + j0;
            for (nn_int j = 0; j < cols; j++) s[j] += row[j];
        }
        for (nn_int j = 0; j < cols; j++) db[j0 + j] = accumulate ? db[j0 + j] + s[j] : s[j];
    });
}

int NN_T(nn_dense_backward)(T *dx, T *dw, T *db, T *dz, const T *dy, const T *x, const T *w,
                            const T *y, const T *z, nn_int n, nn_int in, nn_int out, int act,
                            T alpha, int accumulate, int n_threads) {
    return NN_T(nn_dense_backward_upd)(dx, dw, db, dz, dy, x, w, y, z, n, in, out, act, alpha,
                                       accumulate, NULL, n_threads);
}

int NN_T(nn_dense_backward_upd)(T *dx, T *dw, T *db, T *dz, const T *dy, const T *x,
                                const T *w, const T *y, const T *z, nn_int n, nn_int in,
                                nn_int out, int act, T alpha, int accumulate,
                                const nn_update *upd, int n_threads) {
    // dy, dz, y, z (n, out); x (n, in); w, dw (in, out); db (out); dx (n, in)
    // dx first: with upd, w is updated as dw's tiles are finished.
    NN_T(nn_activation_backward)(dz, dy, y, z, n, out, act, alpha, n_threads);
    if (n * in * out <= NN_GEMM_TINY && n > 0 && in > 0 && out > 0) {
        // A tiny layer (a seed network at batch 1): the products nn_gemm would take anyway,
        // without its dispatch, and the column sums in the same order as colsum.
        if (dx != NULL)
            NN_T(nn_gemm_tiny)(dx, dz, w, n, in, out, out, out, in, 0, 1, 0, NULL, NULL, 0,
                               NN_ACT_IDENTITY, 0);
        NN_T(nn_gemm_tiny)(dw, x, dz, in, out, n, in, out, out, 1, 0, accumulate, NULL, NULL,
                           0, NN_ACT_IDENTITY, 0);
        if (db != NULL)
            for (nn_int j = 0; j < out; j++) {
                T s = 0;
                for (nn_int i = 0; i < n; i++) s += dz[i * out + j];
                db[j] = accumulate ? db[j] + s : s;
            }
        if (upd != NULL) {
            upd->fn(upd->args, dw - (const T *)upd->origin, in, out, out, NULL, 0);
            if (db != NULL) upd->fn(upd->args, db - (const T *)upd->origin, 1, out, out, NULL, 0);
        }
        return NN_OK;
    }
    int s = NN_OK;
    // dx (n, in) = dz . w^T
    if (dx != NULL) s = NN_T(nn_gemm)(dx, dz, w, n, in, out, out, out, in, 0, 1, 0, n_threads);
    if (s != NN_OK) return s;
    // dw (in, out) = x^T . dz
    s = upd != NULL ? NN_T(nn_gemm_upd)(dw, x, dz, in, out, n, in, out, out, 1, 0, accumulate,
                                        upd, n_threads)
                    : NN_T(nn_gemm)(dw, x, dz, in, out, n, in, out, out, 1, 0, accumulate,
                                    n_threads);
    if (s != NN_OK) return s;
    if (db != NULL) {
        NN_T(colsum)(db, dz, n, out, accumulate, n_threads);
        if (upd != NULL) upd->fn(upd->args, db - (const T *)upd->origin, 1, out, out, NULL, 0);
    }
    return s;
}
