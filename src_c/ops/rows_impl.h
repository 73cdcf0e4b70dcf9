// rows_impl.h - the per-element and per-row bodies of the activations and losses, for
// T = float / double: included by activations_impl.h, losses_impl.h and plan_impl.h (the
// plan's fused step for tiny networks), so that the kernels and the plan do the same
// arithmetic by construction. No include guard: it is included once per dtype.

NN_INLINE T NN_T(sigmoid)(T z) {
    // Never exp of a large positive number: no overflow, no 1 - 1 cancellation.
    if (z >= 0) return 1 / (1 + NN_T(nn_expz)(-z));
    T e = NN_T(nn_expz)(z);
    return e / (1 + e);
}

// ---- element-wise activations: each formula once, for the row loops and for one element ----

NN_INLINE T NN_T(relu_fwd)(T x) { return x < 0 ? 0 : x; }  // keeps NaN visible
NN_INLINE T NN_T(leaky_fwd)(T x, T alpha) { return x > 0 ? x : alpha * x; }
NN_INLINE T NN_T(gelu_fwd)(T x) {
    return (T)0.5 * x * (1 + NN_T(nn_erf)(x * (T)0.70710678118654752440));
}
NN_INLINE T NN_T(silu_fwd)(T x) { return x * NN_T(sigmoid)(x); }
// PyTorch's gelu(approximate="tanh"): sqrt(2/pi) and 0.044715 as its kBeta and kKappa.
#define NN_GELU_BETA ((T)0.79788456080286535588)
#define NN_GELU_KAPPA ((T)0.044715)
NN_INLINE T NN_T(gelu_tanh_fwd)(T x) {
    T inner = NN_GELU_BETA * (x + NN_GELU_KAPPA * x * x * x);
    return (T)0.5 * x * (1 + NN_T(nn_tanh)(inner));
}
// dz from dy (g) and the forward's y, or z (s: z where nn_activation_needs_z, else y).
NN_INLINE T NN_T(relu_bwd)(T g, T y) { return y > 0 ? g : 0; }
NN_INLINE T NN_T(leaky_bwd)(T g, T s, T alpha) { return s > 0 ? g : alpha * g; }
NN_INLINE T NN_T(sigmoid_bwd)(T g, T y) { return g * y * (1 - y); }
NN_INLINE T NN_T(tanh_bwd)(T g, T y) { return g * (1 - y * y); }
NN_INLINE T NN_T(gelu_bwd)(T g, T z) {  // d/dz z Phi(z) = Phi(z) + z phi(z)
    T cdf = (T)0.5 * (1 + NN_T(nn_erf)(z * (T)0.70710678118654752440));
    T pdf = (T)0.39894228040143267794 * NN_T(nn_expz)((T)-0.5 * z * z);
    return g * (cdf + z * pdf);
}
NN_INLINE T NN_T(silu_bwd)(T g, T z) {  // d/dz z s(z) = s (1 + z (1 - s))
    T s = NN_T(sigmoid)(z);
    return g * (s * (1 + z * (1 - s)));
}
NN_INLINE T NN_T(gelu_tanh_bwd)(T g, T z) {  // PyTorch's GeluBackward, approximate="tanh"
    T z2 = z * z, th = NN_T(nn_tanh)(NN_GELU_BETA * (z + NN_GELU_KAPPA * z2 * z));
    T left = (T)0.5 * z, right = 1 + th;
    T dleft = (T)0.5 * right, dright = left * (1 - th * th) * NN_GELU_BETA *
                                       (1 + 3 * NN_GELU_KAPPA * z2);
    return g * (dleft + dright);
}
#undef NN_GELU_BETA
#undef NN_GELU_KAPPA

// y = act(x) over n contiguous elements; y may alias x. Not softmax.
NN_INLINE void NN_T(act_row)(T *y, const T *x, nn_int n, int act, T alpha) {
    switch (act) {
    case NN_ACT_RELU:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(relu_fwd)(x[i]);
        break;
    case NN_ACT_LEAKY_RELU:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(leaky_fwd)(x[i], alpha);
        break;
    case NN_ACT_SIGMOID:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(sigmoid)(x[i]);
        break;
    case NN_ACT_TANH:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(nn_tanh)(x[i]);
        break;
    case NN_ACT_GELU:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(gelu_fwd)(x[i]);
        break;
    case NN_ACT_SILU:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(silu_fwd)(x[i]);
        break;
    case NN_ACT_GELU_TANH:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(gelu_tanh_fwd)(x[i]);
        break;
    case NN_ACT_EXP:
        for (nn_int i = 0; i < n; i++) y[i] = NN_T(nn_expz)(x[i]);
        break;
    default:  // identity
        if (y != x) memmove(y, x, (size_t)n * sizeof(T));
    }
}

// dz = dy * act'(z) over n contiguous elements; dz may alias dy. Not softmax. z may be NULL
// unless nn_activation_needs_z.
NN_INLINE void NN_T(act_grad_row)(T *dz, const T *dy, const T *y, const T *z, nn_int n,
                                   int act, T alpha) {
    switch (act) {
    // Load dy unconditionally: a conditional load keeps the loop a branch (mispredicted half
    // the time on real activations); this form becomes a vector compare and blend.
    case NN_ACT_RELU:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(relu_bwd)(dy[i], y[i]);
        break;
    case NN_ACT_LEAKY_RELU: {
        const T *s = z != NULL ? z : y;
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(leaky_bwd)(dy[i], s[i], alpha);
        break;
    }
    case NN_ACT_SIGMOID:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(sigmoid_bwd)(dy[i], y[i]);
        break;
    case NN_ACT_TANH:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(tanh_bwd)(dy[i], y[i]);
        break;
    case NN_ACT_GELU:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(gelu_bwd)(dy[i], z[i]);
        break;
    case NN_ACT_SILU:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(silu_bwd)(dy[i], z[i]);
        break;
    case NN_ACT_GELU_TANH:
        for (nn_int i = 0; i < n; i++) dz[i] = NN_T(gelu_tanh_bwd)(dy[i], z[i]);
        break;
    case NN_ACT_EXP:
        for (nn_int i = 0; i < n; i++) dz[i] = dy[i] * y[i];
        break;
    default:  // identity
        if (dz != dy) memmove(dz, dy, (size_t)n * sizeof(T));
    }
}

NN_INLINE void NN_T(softmax_row)(T *y, const T *x, nn_int n) {
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

NN_INLINE void NN_T(softmax_grad_row)(T *dz, const T *dy, const T *y, nn_int n) {
    T s = 0;
    for (nn_int i = 0; i < n; i++) s += dy[i] * y[i];
    for (nn_int i = 0; i < n; i++) dz[i] = y[i] * (dy[i] - s);
}

// The loss of one row (before its weight) and, if g is not NULL, its gradient times gscale.
// param: huber's delta, cross-entropy's label smoothing (nn_loss_f32).
NN_INLINE double NN_T(row_loss)(int kind, T param, T *g, const T *x, const T *t, int64_t label,
                              nn_int d, T gscale) {
    double l = 0;
    if (kind == NN_LOSS_MSE) {
        for (nn_int j = 0; j < d; j++) {
            T diff = x[j] - t[j];
            l += (double)diff * diff;
            if (g) g[j] = 2 * diff * gscale;
        }
    } else if (kind == NN_LOSS_BCE_LOGITS) {  // max(x, 0) - x t + log1p(exp(-|x|))
        for (nn_int j = 0; j < d; j++) {
            T xj = x[j], e = NN_T(nn_expz)(-(xj < 0 ? -xj : xj));
            l += (double)((xj > 0 ? xj : 0) - xj * t[j] + NN_T(nn_log1p_unit)(e));
            if (g) {  // sigmoid(x) from the same e: 1/(1+e) for x >= 0, e/(1+e) below
                T sig = xj >= 0 ? 1 / (1 + e) : e / (1 + e);
                g[j] = (sig - t[j]) * gscale;
            }
        }
    } else if (kind == NN_LOSS_L1) {  // |x - t|; its gradient's sign is 0 at 0, as torch's
        for (nn_int j = 0; j < d; j++) {
            T diff = x[j] - t[j];
            l += (double)(diff < 0 ? -diff : diff);
            if (g) g[j] = (diff > 0 ? 1 : diff < 0 ? -1 : diff) * gscale;  // NaN passes
        }
    } else if (kind == NN_LOSS_HUBER) {  // r^2 / 2 within delta, delta (|r| - delta / 2) out
        for (nn_int j = 0; j < d; j++) {
            T diff = x[j] - t[j], a = diff < 0 ? -diff : diff;
            l += (double)(a < param ? (T)0.5 * diff * diff : param * (a - (T)0.5 * param));
            if (g) g[j] = (diff < -param ? -param : diff > param ? param : diff) * gscale;
        }
    } else if (kind == NN_LOSS_POISSON) {  // exp(x) - t x, x the log rate
        for (nn_int j = 0; j < d; j++) {
            T e = NN_T(nn_expz)(x[j]);
            l += (double)(e - t[j] * x[j]);
            if (g) g[j] = (e - t[j]) * gscale;
        }
    } else if (param != 0) {  // cross-entropy with label smoothing s: the target is
        // (1 - s) onehot + s / d, so e = logsumexp(x) - (1 - s) x[label] - s mean(x)
        T mx = x[0];
        for (nn_int j = 1; j < d; j++) mx = x[j] > mx ? x[j] : mx;
        double s = 0, xsum = 0;
        for (nn_int j = 0; j < d; j++) xsum += (double)x[j];
        if (g) {
            for (nn_int j = 0; j < d; j++) g[j] = NN_T(nn_expz)(x[j] - mx);
            for (nn_int j = 0; j < d; j++) s += g[j];
            T scale = (T)((double)gscale / s), off = (T)((double)param / (double)d) * gscale;
            for (nn_int j = 0; j < d; j++) g[j] = g[j] * scale - off;
            g[label] -= (1 - param) * gscale;
        } else {
            for (nn_int j = 0; j < d; j++) s += NN_T(nn_expz)(x[j] - mx);
        }
        l = (double)mx + log(s) - (1 - (double)param) * (double)x[label] -
            (double)param * xsum / (double)d;
    } else {  // softmax cross-entropy: logsumexp(x) - x[label], shifted by the row max;
              // the gradient softmax(x) - onehot from the same exponentials (one exp each)
        T mx = x[0];
        for (nn_int j = 1; j < d; j++) mx = x[j] > mx ? x[j] : mx;
        double s = 0;
        if (g) {
            for (nn_int j = 0; j < d; j++) g[j] = NN_T(nn_expz)(x[j] - mx);  // vectorised
            for (nn_int j = 0; j < d; j++) s += g[j];
            T scale = (T)((double)gscale / s);
            for (nn_int j = 0; j < d; j++) g[j] *= scale;
            g[label] -= gscale;
        } else {
            for (nn_int j = 0; j < d; j++) s += NN_T(nn_expz)(x[j] - mx);
        }
        l = (double)mx + log(s) - (double)x[label];
    }
    return l;
}

// The weighted sum of the losses of rows [i0, i1) of x (n, d), each row's gradient scaled by
// w_i / norm (grad may be NULL): one chunk of the loss kernels, in row order.
NN_INLINE double NN_T(loss_rows)(int kind, T param, T *grad, const T *x, const T *t,
                               const int64_t *labels, const T *weight, nn_int d,
                               double norm, nn_int i0, nn_int i1) {
    double s = 0;
    for (nn_int i = i0; i < i1; i++) {
        double w = weight ? (double)weight[i] : 1.0;
        T gscale = (T)(w / norm);
        s += w * NN_T(row_loss)(kind, param, grad ? grad + i * d : NULL, x + i * d,
                                t ? t + i * d : NULL, labels ? labels[i] : 0, d, gscale);
    }
    return s;
}
