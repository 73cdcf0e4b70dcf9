// norm_impl.h - batch and layer normalisation, forward and backward, for T = float / double.
// Sums are formed in double, each in a fixed order whatever the thread count: a column's sum
// (over the rows) row by row, within a column block that one thread owns; a row's sum (over
// the columns) in NN_NORM_LANES interleaved partial sums added in lane order at the end, which
// vectorises on every path with the same bits. The per-element arithmetic is in T, exactly
// rounded, so every CPU path gives the same results.

// Column sums over the rows, row by row: o1[j - j0] = sum_i E1(i, j) and o2[j - j0] =
// sum_i E2(i, j) for j in [j0, j1), E1 and E2 macros of the row and the column (two: a
// constant, 0 for o1 alone). The rows are read in order, each along the block (the sums stay
// in L1), rather than down strips of columns: the rows are d apart, often a multiple of 1
// KiB, and a walk down a column maps to a quarter of the cache sets.
#define NN_COL_SUMS_(o1, o2, two_, n, j0, j1, E1, E2)                                         \
    do {                                                                                      \
        const nn_int w_ = (j1) - (j0);                                                        \
        double *NN_RESTRICT s1_ = (o1), *NN_RESTRICT s2_ = (o2);                              \
        for (nn_int q_ = 0; q_ < w_; q_++) s1_[q_] = 0;                                       \
        if (two_)                                                                             \
            for (nn_int q_ = 0; q_ < w_; q_++) s2_[q_] = 0;                                   \
        for (nn_int i_ = 0; i_ < (n); i_++)                                                   \
            for (nn_int q_ = 0; q_ < w_; q_++) {                                              \
                const nn_int jj_ = (j0) + q_;                                                 \
                s1_[q_] += (double)(E1(i_, jj_));                                             \
                if (two_) s2_[q_] += (double)(E2(i_, jj_));                                   \
            }                                                                                 \
    } while (0)
#define NN_NO_SUM(i, j) 0
#define NN_COL_SUMS(o1, n, j0, j1, E1) NN_COL_SUMS_(o1, o1, 0, n, j0, j1, E1, NN_NO_SUM)
#define NN_COL_SUMS2(o1, o2, n, j0, j1, E1, E2) NN_COL_SUMS_(o1, o2, 1, n, j0, j1, E1, E2)

// The lanes of a row sum added pairwise, in the same order everywhere (the halves, then the
// halves of those): a chain of log2(NN_NORM_LANES) additions instead of NN_NORM_LANES.
NN_INLINE double NN_T(lanes_sum)(double *acc) {
    for (int h = NN_NORM_LANES / 2; h > 0; h /= 2)
        for (int q = 0; q < h; q++) acc[q] += acc[q + h];
    return acc[0];
}

// Row sums over j in [0, d): lane q sums EXPR(j) for the j = q mod NN_NORM_LANES in order
// (NN_NORM_LANES / 8 independent vectors of doubles), then lanes_sum. ROW_SUM2 forms two
// sums in the one pass.
#define NN_ROW_SUM2(r1, r2, d, E1, E2)                                                        \
    do {                                                                                      \
        double a1_[NN_NORM_LANES] = {0}, a2_[NN_NORM_LANES] = {0};                            \
        nn_int j_ = 0;                                                                        \
        for (; j_ + NN_NORM_LANES <= (d); j_ += NN_NORM_LANES)                                \
            for (int q_ = 0; q_ < NN_NORM_LANES; q_++) {                                      \
                const nn_int jj_ = j_ + q_;                                                   \
                a1_[q_] += (double)(E1(jj_));                                                 \
                a2_[q_] += (double)(E2(jj_));                                                 \
            }                                                                                 \
        for (int q_ = 0; j_ < (d); j_++, q_++) {                                              \
            a1_[q_] += (double)(E1(j_));                                                      \
            a2_[q_] += (double)(E2(j_));                                                      \
        }                                                                                     \
        (r1) = NN_T(lanes_sum)(a1_);                                                          \
        (r2) = NN_T(lanes_sum)(a2_);                                                          \
    } while (0)
#define NN_ROW_SUM(r, d, E)                                                                   \
    do {                                                                                      \
        double a1_[NN_NORM_LANES] = {0};                                                      \
        nn_int j_ = 0;                                                                        \
        for (; j_ + NN_NORM_LANES <= (d); j_ += NN_NORM_LANES)                                \
            for (int q_ = 0; q_ < NN_NORM_LANES; q_++) {                                      \
                const nn_int jj_ = j_ + q_;                                                   \
                a1_[q_] += (double)(E(jj_));                                                  \
            }                                                                                 \
        for (int q_ = 0; j_ < (d); j_++, q_++) a1_[q_] += (double)(E(j_));                    \
        (r) = NN_T(lanes_sum)(a1_);                                                           \
    } while (0)

// y = gamma xhat + beta for the given gamma and beta, or xhat and xhat + 0 without them: the
// callers branch once on which they have and inline this with constants (AFFINE(g, b)).
#define NN_AFFINE(xh, gamma, beta, j, has_g, has_b)                                           \
    (((has_g) ? (gamma)[j] * (xh) : (xh)) + ((has_b) ? (beta)[j] : (T)0))
#define NN_AFFINE_CASES(call)                                                                 \
    do {                                                                                      \
        if (a->gamma && a->beta) {                                                            \
            call(1, 1);                                                                       \
        } else if (a->gamma) {                                                                \
            call(1, 0);                                                                       \
        } else if (a->beta) {                                                                 \
            call(0, 1);                                                                       \
        } else {                                                                              \
            call(0, 0);                                                                       \
        }                                                                                     \
    } while (0)

// ---- batch normalisation --------------------------------------------------------------------

struct NN_T(bn_args) {
    T *y, *mean, *invstd, *rmean, *rvar;
    const T *x, *gamma, *beta;
    nn_int n, d;
    double eps, momentum;
    int training;
};

// Columns [j0, j1): statistics (training), then y. The block is read three times while it is
// in cache: its sums, its centred squares, its normalised values.
NN_INLINE void NN_T(bn_fwd_block)(const struct NN_T(bn_args) *a, nn_int j0, nn_int j1) {
    const nn_int n = a->n, d = a->d;
    const T *x = a->x;
    T mu[NN_NORM_BLOCK], is[NN_NORM_BLOCK];
    if (a->training) {
        double s[NN_NORM_BLOCK], q[NN_NORM_BLOCK];
#define NN_X_AT(i, j) x[(i) * d + (j)]
        NN_COL_SUMS(s, n, j0, j1, NN_X_AT);
#undef NN_X_AT
        for (nn_int j = j0; j < j1; j++) s[j - j0] /= (double)n;
#define NN_SQ_AT(i, j) (((double)x[(i) * d + (j)] - s[(j) - j0]) * ((double)x[(i) * d + (j)] - s[(j) - j0]))
        NN_COL_SUMS(q, n, j0, j1, NN_SQ_AT);
#undef NN_SQ_AT
        for (nn_int j = j0; j < j1; j++) {
            const double var = q[j - j0] / (double)n;
            mu[j - j0] = (T)s[j - j0];
            is[j - j0] = (T)(1 / sqrt(var + a->eps));
            a->mean[j] = mu[j - j0], a->invstd[j] = is[j - j0];
            if (a->rmean != NULL) {  // the unbiased variance, as torch
                const double m = a->momentum;
                a->rmean[j] = (T)((1 - m) * (double)a->rmean[j] + m * s[j - j0]);
                a->rvar[j] = (T)((1 - m) * (double)a->rvar[j] +
                                 m * (q[j - j0] / (double)(n - 1)));
            }
        }
    } else {
        for (nn_int j = j0; j < j1; j++) {
            mu[j - j0] = a->rmean[j];
            is[j - j0] = (T)(1 / sqrt((double)a->rvar[j] + a->eps));
        }
    }
    const T *gm = a->gamma ? a->gamma + j0 : NULL, *bt = a->beta ? a->beta + j0 : NULL;
#define NN_BN_OUT(has_g, has_b)                                                               \
    for (nn_int i = 0; i < n; i++) {                                                          \
        const T *r = x + i * d + j0;                                                          \
        T *out = a->y + i * d + j0;                                                           \
        for (nn_int j = 0; j < j1 - j0; j++) {                                                \
            const T xh = (r[j] - mu[j]) * is[j];                                              \
            out[j] = NN_AFFINE(xh, gm, bt, j, has_g, has_b);                                  \
        }                                                                                     \
    }
    NN_AFFINE_CASES(NN_BN_OUT);
#undef NN_BN_OUT
}

NN_ISA_VARIANTS(NN_T(bn_fwd), const struct NN_T(bn_args) *, NN_T(bn_fwd_block))

int NN_T(nn_batchnorm_forward)(T *y, T *mean, T *invstd, T *running_mean, T *running_var,
                               const T *x, const T *gamma, const T *beta, nn_int n, nn_int d,
                               double eps, double momentum, int training, int n_threads) {
    // x, y (n, d); mean, invstd, running_mean, running_var, gamma, beta (d)
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1) || n < 1 ||
        (training && (n < 2 || mean == NULL || invstd == NULL)) ||
        (!training && (running_mean == NULL || running_var == NULL)) ||
        ((running_mean == NULL) != (running_var == NULL)))
        return NN_ERR_ARG;
    struct NN_T(bn_args) a = {y, mean, invstd, running_mean, running_var, x, gamma, beta,
                              n, d, eps, momentum, training};
    void (*run)(const struct NN_T(bn_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(bn_fwd));
    NN_NORM_COLUMNS(run, a, n, d, n_threads);
    return NN_OK;
}

// The backward pass of either norm: the statistics are per column (batch norm) or per row.
struct NN_T(norm_bwd_args) {
    T *dx, *dgamma, *dbeta;
    const T *dy, *x, *mean, *invstd, *gamma;
    nn_int n, d;
    int accumulate;
};

// Columns [j0, j1): sb = sum_i dy, sg = sum_i dy xhat in one pass, and dgamma, dbeta from
// them. per_row (a constant where inlined): the statistics are the rows' (layer norm).
NN_INLINE void NN_T(norm_param_sums)(const struct NN_T(norm_bwd_args) *a, double *sg,
                                     double *sb, nn_int j0, nn_int j1, const int per_row) {
    const nn_int n = a->n, d = a->d;
    const T *dy = a->dy, *x = a->x, *mn = a->mean, *is = a->invstd;
#define NN_DY_AT(i, j) dy[(i) * d + (j)]
#define NN_XH_AT(i, j) (per_row ? (x[(i) * d + (j)] - mn[i]) * is[i]                          \
                                : (x[(i) * d + (j)] - mn[j]) * is[j])
#define NN_DY_XH_AT(i, j) (NN_DY_AT(i, j) * NN_XH_AT(i, j))
    NN_COL_SUMS2(sb, sg, n, j0, j1, NN_DY_AT, NN_DY_XH_AT);
#undef NN_DY_AT
#undef NN_XH_AT
#undef NN_DY_XH_AT
    for (nn_int j = j0; j < j1; j++) {
        const T dg = (T)sg[j - j0], db = (T)sb[j - j0];
        if (a->dgamma) a->dgamma[j] = a->accumulate ? a->dgamma[j] + dg : dg;
        if (a->dbeta) a->dbeta[j] = a->accumulate ? a->dbeta[j] + db : db;
    }
}

// Columns [j0, j1): the parameters' sums, then dx.
NN_INLINE void NN_T(bn_bwd_block)(const struct NN_T(norm_bwd_args) *a, nn_int j0, nn_int j1) {
    const nn_int n = a->n, d = a->d;
    double sg[NN_NORM_BLOCK], sb[NN_NORM_BLOCK];
    NN_T(norm_param_sums)(a, sg, sb, j0, j1, 0);
    T k[NN_NORM_BLOCK], tb[NN_NORM_BLOCK], tg[NN_NORM_BLOCK];
    for (nn_int j = j0; j < j1; j++) {
        // dx = gamma invstd (dy - mean_i(dy) - xhat mean_i(dy xhat))
        k[j - j0] = (a->gamma ? a->gamma[j] : 1) * a->invstd[j];
        tb[j - j0] = (T)(sb[j - j0] / (double)n);
        tg[j - j0] = (T)(sg[j - j0] / (double)n);
    }
    if (a->dx == NULL) return;
    for (nn_int i = 0; i < n; i++) {
        const T *g = a->dy + i * d, *r = a->x + i * d;
        T *o = a->dx + i * d;
        for (nn_int j = j0; j < j1; j++) {
            const T xh = (r[j] - a->mean[j]) * a->invstd[j];
            o[j] = k[j - j0] * (g[j] - tb[j - j0] - xh * tg[j - j0]);
        }
    }
}

NN_ISA_VARIANTS(NN_T(bn_bwd), const struct NN_T(norm_bwd_args) *, NN_T(bn_bwd_block))

void NN_T(nn_batchnorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x,
                                 const T *mean, const T *invstd, const T *gamma, nn_int n,
                                 nn_int d, int accumulate, int n_threads) {
    // dx, dy, x (n, d); dgamma, dbeta, mean, invstd, gamma (d). dx may alias dy: each
    // block reads its columns of dy in full before it writes them.
    struct NN_T(norm_bwd_args) a = {dx, dgamma, dbeta, dy, x, mean, invstd, gamma, n, d,
                                    accumulate};
    void (*run)(const struct NN_T(norm_bwd_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(bn_bwd));
    NN_NORM_COLUMNS(run, a, n, d, n_threads);
}

// ---- layer normalisation --------------------------------------------------------------------

struct NN_T(ln_args) {
    T *y, *mean, *invstd;
    const T *x, *gamma, *beta;
    nn_int d;
    double eps;
};

NN_INLINE void NN_T(ln_fwd_body)(const struct NN_T(ln_args) *a, nn_int i0, nn_int i1) {
    const nn_int d = a->d;
    for (nn_int i = i0; i < i1; i++) {
        const T *r = a->x + i * d;
        T *out = a->y + i * d;
        double s, q;
#define NN_X_AT(j) r[j]
        NN_ROW_SUM(s, d, NN_X_AT);
#undef NN_X_AT
        const double mu = s / (double)d;
#define NN_SQ_AT(j) (((double)r[j] - mu) * ((double)r[j] - mu))
        NN_ROW_SUM(q, d, NN_SQ_AT);
#undef NN_SQ_AT
        const T m = (T)mu, is = (T)(1 / sqrt(q / (double)d + a->eps));
        if (a->mean) a->mean[i] = m, a->invstd[i] = is;
        for (nn_int j = 0; j < d; j++) {
            const T xh = (r[j] - m) * is;
            out[j] = (a->gamma ? a->gamma[j] * xh : xh) + (a->beta ? a->beta[j] : 0);
        }
    }
}

NN_ISA_VARIANTS(NN_T(ln_fwd), const struct NN_T(ln_args) *, NN_T(ln_fwd_body))

int NN_T(nn_layernorm_forward)(T *y, T *mean, T *invstd, const T *x, const T *gamma,
                               const T *beta, nn_int n, nn_int d, double eps, int n_threads) {
    // x, y (n, d); mean, invstd (n) or NULL (inference); gamma, beta (d)
    if (!(eps > 0) || d < 1 || (mean == NULL) != (invstd == NULL)) return NN_ERR_ARG;
    struct NN_T(ln_args) a = {y, mean, invstd, x, gamma, beta, d, eps};
    void (*run)(const struct NN_T(ln_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(ln_fwd));
    const nn_int chunk = NN_NORM_ROWS;
    int nt = nn_threads_for(n_threads, n * d, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, c, (n + chunk - 1) / chunk,
                    run(&a, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n););
    return NN_OK;
}

// dgamma, dbeta: columns [j0, j1).
NN_INLINE void NN_T(ln_params_body)(const struct NN_T(norm_bwd_args) *a, nn_int j0,
                                    nn_int j1) {
    double sg[NN_NORM_BLOCK], sb[NN_NORM_BLOCK];
    NN_T(norm_param_sums)(a, sg, sb, j0, j1, 1);
}

// dx, rows [i0, i1): invstd (dxhat - mean_j(dxhat) - xhat mean_j(dxhat xhat)), dxhat = gamma dy.
NN_INLINE void NN_T(ln_dx_body)(const struct NN_T(norm_bwd_args) *a, nn_int i0, nn_int i1) {
    const nn_int d = a->d;
    const T *gm = a->gamma;
    for (nn_int i = i0; i < i1; i++) {
        const T *g = a->dy + i * d, *r = a->x + i * d;
        T *o = a->dx + i * d;
        const T m = a->mean[i], is = a->invstd[i];
        double s1, s2;
#define NN_DXH_AT(j) (gm ? gm[j] * g[j] : g[j])
#define NN_DXH_XH_AT(j) (NN_DXH_AT(j) * ((r[j] - m) * is))
        NN_ROW_SUM(s1, d, NN_DXH_AT);
        NN_ROW_SUM(s2, d, NN_DXH_XH_AT);
        const T t1 = (T)(s1 / (double)d), t2 = (T)(s2 / (double)d);
        for (nn_int j = 0; j < d; j++) o[j] = is * (NN_DXH_AT(j) - t1 - ((r[j] - m) * is) * t2);
#undef NN_DXH_AT
#undef NN_DXH_XH_AT
    }
}

NN_ISA_VARIANTS(NN_T(ln_params), const struct NN_T(norm_bwd_args) *, NN_T(ln_params_body))
NN_ISA_VARIANTS(NN_T(ln_dx), const struct NN_T(norm_bwd_args) *, NN_T(ln_dx_body))

void NN_T(nn_layernorm_backward)(T *dx, T *dgamma, T *dbeta, const T *dy, const T *x,
                                 const T *mean, const T *invstd, const T *gamma, nn_int n,
                                 nn_int d, int accumulate, int n_threads) {
    // dx, dy, x (n, d); mean, invstd (n); dgamma, dbeta, gamma (d). dx may alias dy: the
    // parameters' sums read all of dy first, then each row's dx reads only its own row.
    struct NN_T(norm_bwd_args) a = {dx, dgamma, dbeta, dy, x, mean, invstd, gamma, n, d,
                                  accumulate};
    int nt = nn_threads_for(n_threads, n * d, NN_PAR_MIN_ELEMS);
    if (dgamma != NULL || dbeta != NULL) {
        void (*run)(const struct NN_T(norm_bwd_args) *, nn_int, nn_int) =
            NN_ISA_PICK(NN_T(ln_params));
        NN_NORM_COLUMNS(run, a, n, d, n_threads);
    }
    if (dx != NULL) {
        void (*run)(const struct NN_T(norm_bwd_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(ln_dx));
        const nn_int chunk = NN_NORM_ROWS;
        NN_PARALLEL_FOR(nt, c, (n + chunk - 1) / chunk,
                        run(&a, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n););
    }
}

#undef NN_ROW_SUM
