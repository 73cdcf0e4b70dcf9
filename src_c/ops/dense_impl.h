// dense_impl.h - the dense layer forward and backward for T = float / double.

#ifndef NN_KSPLIT_MAX_M
#define NN_KSPLIT_MAX_M 256
#endif

// Where the forward product y (m, n) = x (m, k) . w (k, n) splits its sums over k (0: it does
// not). On two threads the backward's dW = x^T . dz (k, n) is split by rows of w, and each
// thread updates its rows of w as they are final (gemm_core); a forward split by columns of y
// would have each thread read half of the rows the other one had just written, moving w's
// lines from one core's cache to the other's twice a step. Split over k at the same row as
// dW, each thread reads the rows it updates. Chosen by shape alone (with dW's two-thread
// split), so the sums are the same on any number of threads:
// y = x[:, :k0] . w[:k0] + x[:, k0:] . w[k0:].
static nn_int NN_T(forward_k_split)(nn_int m, nn_int n, nn_int k) {
    if (m > NN_KSPLIT_MAX_M || m * n * k < 2 * NN_PAR_MIN_FLOPS) return 0;
    return NN_T(nn_gemm_row_split)(k, n);
}

// Rows [i0, i1) of y = act(y + t + bias), z = y + t + bias (y, t, z (m, n)).
static void NN_T(sum_rows)(T *y, const T *t, T *z, const T *bias, nn_int i0, nn_int i1,
                           nn_int n, int act, T alpha) {
    for (nn_int i = i0; i < i1; i++) {
        for (nn_int j = 0; j < n; j++) y[i * n + j] += t[i * n + j];
        NN_T(nn_act_tile)(y + i * n, n, z ? z + i * n : NULL, n, bias, 1, n, act, alpha);
    }
}

// Part 0 (y = x[:, :k0] . w[:k0]) or part 1 (t = x[:, k0:] . w[k0:]) of a split forward.
static int NN_T(forward_part)(int part, T *y, T *t, const T *x, const T *w, nn_int m, nn_int n,
                              nn_int k, nn_int k0, int n_threads) {
    return part == 0 ? NN_T(nn_gemm)(y, x, w, m, n, k0, k, n, n, 0, 0, 0, n_threads)
                     : NN_T(nn_gemm)(t, x + k0, w + k0 * n, m, n, k - k0, k, n, n, 0, 0, 0,
                                     n_threads);
}

// y = act(x . w + bias): x (m, k), w (k, n), y and z (m, n); the product's schedule over the
// threads (see forward_k_split).
static int NN_T(dense_product)(T *y, const T *x, const T *w, nn_int m, nn_int n, nn_int k,
                               const T *bias, T *z, int act, T alpha, int n_threads) {
    const nn_int k0 = NN_T(forward_k_split)(m, n, k);
    if (k0 == 0)
        return NN_T(nn_gemm_ex)(y, x, w, m, n, k, k, n, n, 0, 0, 0, bias, z, n, act, alpha,
                                n_threads);
    // y = the first part, t = the second, then y = act(y + t + bias) row by row.
    int nt = nn_threads_for(n_threads, m * n * k, NN_PAR_MIN_FLOPS), status = NN_OK;
    if (nt != 2 && m > NN_MR_SHORT && NN_T(nn_gemm_is_direct)(m, n, k - k0)) {
        // Not split over two threads, the second part on the direct path (whose mr-row
        // kernel sums all of k at once, then adds to c): it adds onto y itself, and the
        // bias and activation follow in its tiles, with no t and no pass over both.
        status = NN_T(nn_gemm)(y, x, w, m, n, k0, k, n, n, 0, 0, 0, nt);
        if (status != NN_OK) return status;
        return NN_T(nn_gemm_ex)(y, x + k0, w + k0 * n, m, n, k - k0, k, n, n, 0, 0, 1, bias, z,
                                n, act, alpha, nt);
    }
    T *t = (T *)nn_workspace(NN_WS_DENSE_SPLIT, (size_t)(m * n) * sizeof(T));
    if (t == NULL) return NN_ERR_NOMEM;
    if (nt != 2) {  // one thread, or more than two: each part on all of them
        for (int part = 0; part < 2 && status == NN_OK; part++)
            status = NN_T(forward_part)(part, y, t, x, w, m, n, k, k0, nt);
        if (status != NN_OK) return status;
        NN_PARALLEL_FOR(nn_threads_for(n_threads, m * n, NN_PAR_MIN_ELEMS), i, m, {
            NN_T(sum_rows)(y, t, z, bias, i, i + 1, n, act, alpha);
        });
        return NN_OK;
    }
    const unsigned caller_fp = nn_fp_get();
#pragma omp parallel num_threads(2)
    {
        const unsigned own_fp = nn_fp_inherit(caller_fp);
#ifdef _OPENMP
        const int id = omp_get_thread_num();
#else
        const int id = 0;
#endif
        int s = NN_T(forward_part)(id, y, t, x, w, m, n, k, k0, 1);
        if (s != NN_OK) {
#pragma omp critical(nn_gemm_status)
            status = s;
        }
#pragma omp barrier
        if (status == NN_OK)
            NN_T(sum_rows)(y, t, z, bias, m * id / 2, m * (id + 1) / 2, n, act, alpha);
        nn_fp_set(own_fp);
    }
    return status;
}

int NN_T(nn_dense_forward)(T *y, T *z, const T *x, const T *w, const T *b, nn_int n, nn_int in,
                           nn_int out, int act, T alpha, int n_threads) {
    // x (n, in), w (in, out), b (out), y and z (n, out)
    if (act != NN_ACT_SOFTMAX && n * in * out <= NN_GEMM_TINY && n > 0 && in > 0 && out > 0)
        return NN_T(nn_gemm_tiny)(y, x, w, n, out, in, in, out, out, 0, 0, 0, b, z, out, act,
                                  alpha);
    if (act == NN_ACT_SOFTMAX) {  // needs whole rows: GEMM + bias first, then row softmax
        int s = NN_T(dense_product)(y, x, w, n, out, in, b, z, NN_ACT_IDENTITY, 0,
                                      n_threads);
        if (s == NN_OK) NN_T(nn_activation_forward)(y, y, n, out, act, alpha, n_threads);
        return s;
    }
    return NN_T(dense_product)(y, x, w, n, out, in, b, z, act, alpha, n_threads);
}

// db (+)= column sums of dz (n, out). Threads own column blocks and sum rows in order, so the
// result does not depend on the thread count.
void NN_T(nn_colsum)(T *db, const T *dz, nn_int n, nn_int out, int accumulate,
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
        NN_T(nn_colsum)(db, dz, n, out, accumulate, n_threads);
        if (upd != NULL) upd->fn(upd->args, db - (const T *)upd->origin, 1, out, out, NULL, 0);
    }
    return s;
}
