// activations_impl.h - activations forward and backward for T = float / double.

NN_INLINE T NN_T(sigmoid)(T z) {
    // Never exp of a large positive number: no overflow, no 1 - 1 cancellation.
    if (z >= 0) return 1 / (1 + NN_T(nn_expz)(-z));
    T e = NN_T(nn_expz)(z);
    return e / (1 + e);
}

// y = act(x) over n contiguous elements; y may alias x. Not softmax.
static void NN_T(act_row)(T *y, const T *x, nn_int n, int act, T alpha) {
    switch (act) {
    case NN_ACT_RELU:  // x < 0 ? 0 : x keeps NaN visible
        for (nn_int i = 0; i < n; i++) y[i] = x[i] < 0 ? 0 : x[i];
        break;
    case NN_ACT_LEAKY_RELU:
        for (nn_int i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : alpha * x[i];
        break;
    case NN_ACT_SIGMOID:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(sigmoid)(x[i]);
        break;
    case NN_ACT_TANH:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(nn_tanh)(x[i]);
        break;
    case NN_ACT_GELU:
        for (nn_int i = 0; i < n; i++)
            y[i] = (T)0.5 * x[i] * (1 + NN_T(nn_erf)(x[i] * (T)0.70710678118654752440));
        break;
    default:  // identity
        if (y != x) memmove(y, x, (size_t)n * sizeof(T));
    }
}

// dz = dy * act'(z) over n contiguous elements; dz may alias dy. Not softmax.
static void NN_T(act_grad_row)(T *dz, const T *dy, const T *y, const T *z, nn_int n, int act,
                               T alpha) {
    switch (act) {
    // Load dy unconditionally: a conditional load keeps the loop a branch (mispredicted half
    // the time on real activations); this form becomes a vector compare and blend.
    case NN_ACT_RELU:
        for (nn_int i = 0; i < n; i++) {
            T g = dy[i];
            dz[i] = y[i] > 0 ? g : 0;
        }
        break;
    case NN_ACT_LEAKY_RELU: {
        const T *s = z != NULL ? z : y;
        for (nn_int i = 0; i < n; i++) {
            T g = dy[i];
            dz[i] = s[i] > 0 ? g : alpha * g;
        }
        break;
    }
    case NN_ACT_SIGMOID:
        for (nn_int i = 0; i < n; i++) dz[i] = dy[i] * y[i] * (1 - y[i]);
        break;
    case NN_ACT_TANH:
        for (nn_int i = 0; i < n; i++) dz[i] = dy[i] * (1 - y[i] * y[i]);
        break;
    case NN_ACT_GELU:  // d/dz z Phi(z) = Phi(z) + z phi(z)
        for (nn_int i = 0; i < n; i++) {
            T cdf = (T)0.5 * (1 + NN_T(nn_erf)(z[i] * (T)0.70710678118654752440));
            T pdf = (T)0.39894228040143267794 * NN_T(nn_expz)((T)-0.5 * z[i] * z[i]);
            dz[i] = dy[i] * (cdf + z[i] * pdf);
        }
        break;
    default:  // identity
        if (dz != dy) memmove(dz, dy, (size_t)n * sizeof(T));
    }
}

static void NN_T(softmax_row)(T *y, const T *x, nn_int n) {
    T mx = x[0];
    for (nn_int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    T s = 0;
    for (nn_int i = 0; i < n; i++) {
        y[i] = NN_T(nn_expz)(x[i] - mx);
        s += y[i];
    }
    T inv = 1 / s;
    for (nn_int i = 0; i < n; i++) y[i] *= inv;
}

static void NN_T(softmax_grad_row)(T *dz, const T *dy, const T *y, nn_int n) {
    T s = 0;
    for (nn_int i = 0; i < n; i++) s += dy[i] * y[i];
    for (nn_int i = 0; i < n; i++) dz[i] = y[i] * (dy[i] - s);
}

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
