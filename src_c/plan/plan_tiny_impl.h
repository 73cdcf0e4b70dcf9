// plan_tiny_impl.h - the training plan's fused step for tiny networks, for T = float / double
// (included by plan_impl.h).
//
// When every dense product of a batch is at most NN_GEMM_TINY multiply-adds (the seed network
// 2-3-1 at batch 1 to 10), every GEMM of the kernel-by-kernel step is nn_gemm_tiny, and the
// whole step is a few dozen flops behind a dozen kernel calls, each with its argument set-up,
// nn_threads_for, CPU-path pick and workspace lookup: those cost more than the arithmetic.
// This step does the same operations in the same order without them: the products as
// nn_gemm_tiny's sums (s = 0, s += a b in k order; then + bias, z, act), and the activation,
// loss and optimizer bodies of the kernels themselves (rows_impl.h, optim_body_impl.h). Its
// arithmetic is scalar and every element-wise update exactly rounded, so it gives the
// kernels' bits on every CPU path; tests/test_plan.py checks it against the kernels called
// one by one.
//
// Each layer's forward and backward pass is a small function with the layer width, the
// common SGD settings (NN_TINY_SGD_*) and, for one row, the activation as constants, picked
// from a table once per plan_train call into the layer's tiny_* fields: the step's choice of
// kernels, with no second batch loop. The row bodies are always inlined, and nothing is
// auto-vectorised: a vector load of values just stored one by one stalls on store
// forwarding, and setting up vector loops costs more than 1-8 elements gain.

#ifndef NN_PLAN_TINY_ONCE  // dtype-independent definitions, once
#define NN_PLAN_TINY_ONCE

#define NN_TINY_MAX_OUT 8  // layer widths with their own copy of the loops

// How the fused step applies SGD: after the backward pass over all parameters, as the
// kernel does (NN_TINY_SGD_END: Adam, or parameters not where tiny_sgd_fusable wants them),
// or to each element as soon as its gradient is known: after the layer's dx, the last use of
// its w in the step, which gives the same values (every element's update depends on its own
// p, g and buffer alone). The common settings are constants of the loops (MOMENTUM: plain
// momentum without dampening, from the second step on; the first, which starts the buffers,
// takes ANY).
enum { NN_TINY_SGD_END = 0, NN_TINY_SGD_PLAIN = 1, NN_TINY_SGD_MOMENTUM = 2,
       NN_TINY_SGD_ANY = 3 };

// call(k) for each width with its own copy of the loops, 0 (any width) first.
#define NN_TINY_WIDTHS(call) \
    call(0) call(1) call(2) call(3) call(4) call(5) call(6) call(7) call(8)

// The forms of a layer's loops, each a copy for every width: any number of rows and any
// activation (0), then one row (batch 1: no row loops) with any activation (1), none (2) or
// relu (3): call(OUT, form, M, ACT), with M the rows (0: any) and ACT the activation (-1:
// any) as constants.
#define NN_TINY_N_FORMS 4
#define NN_TINY_FORMS(call, OUT)                                                              \
    call(OUT, 0, 0, -1) call(OUT, 1, 1, -1) call(OUT, 2, 1, NN_ACT_IDENTITY)                  \
        call(OUT, 3, 1, NN_ACT_RELU)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-tree-vectorize")
#endif

// 1 when every dense product of a batch of bs (or fewer) rows takes nn_gemm_tiny and every
// layer is a dense, activation or dropout layer (norms and residual blocks take the general
// step).
static int NN_T(tiny_fits)(const nn_plan *pl, nn_int bs) {
    for (int i = 0; i < pl->n_layers; i++) {
        const nn_plan_layer *L = &pl->layers[i];
        if (L->kind == NN_LAYER_DENSE &&
            !(L->in > 0 && L->out > 0 && bs * L->in * L->out <= NN_GEMM_TINY))
            return 0;
        if (L->kind != NN_LAYER_DENSE && L->kind != NN_LAYER_ACTIVATION &&
            L->kind != NN_LAYER_DROPOUT)
            return 0;
    }
    return 1;
}

// nn_activation_forward / _backward on one thread: x, y, dy, dz (m, d); y may alias x, dz dy.
static void NN_T(tiny_act_fwd)(T *y, const T *x, nn_int m, nn_int d, int act, T alpha) {
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++) NN_T(softmax_row)(y + i * d, x + i * d, d);
    } else {
        NN_T(act_row)(y, x, m * d, act, alpha);
    }
}

static void NN_T(tiny_act_bwd)(T *dz, const T *dy, const T *y, const T *z, nn_int m, nn_int d,
                               int act, T alpha) {
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++)
            NN_T(softmax_grad_row)(dz + i * d, dy + i * d, y + i * d, d);
    } else {
        NN_T(act_grad_row)(dz, dy, y, nn_act_needs_z(act, alpha) ? z : NULL, m * d, act,
                           alpha);
    }
}

// nn_dense_forward of a tiny layer: x (m, in), w (in, out), b (out) or NULL, y and z (m, out);
// OUT is out as a constant, or 0; M likewise for m. nn_gemm_tiny(y, x, w, m, out, in, ...):
// each y = s (s = 0, s += x w in k order), then its epilogue y += b, z = y, y = act(y)
// (softmax: rows after).
NN_INLINE void NN_T(tiny_dense_fwd_n)(T *y, T *z, const T *x, const T *w, const T *b,
                                      nn_int m_rt, nn_int in, nn_int out_rt, int act, T alpha,
                                      const int OUT, const int M) {
    const nn_int out = OUT ? OUT : out_rt, m = M ? M : m_rt;
    const int row_act = act == NN_ACT_SOFTMAX ? NN_ACT_IDENTITY : act;
    for (nn_int i = 0; i < m; i++) {
        const T *xi = x + i * in;
        T s[NN_TINY_MAX_OUT];  // registers
        for (nn_int j0 = 0; j0 < out; j0 += NN_TINY_MAX_OUT) {  // once when OUT > 0
            nn_int nj = out - j0 < NN_TINY_MAX_OUT ? out - j0 : NN_TINY_MAX_OUT;
            if (OUT) nj = OUT;
            for (nn_int j = 0; j < nj; j++) s[j] = 0;
            for (nn_int p = 0; p < in; p++) {  // each s[j] still sums over p in order
                const T xp = xi[p], *wp = w + p * out + j0;
                for (nn_int j = 0; j < nj; j++) s[j] += xp * wp[j];
            }
            if (b != NULL)
                for (nn_int j = 0; j < nj; j++) s[j] += b[j0 + j];
            if (z != NULL)
                for (nn_int j = 0; j < nj; j++) z[i * out + j0 + j] = s[j];
            // The activation's choice out of the element loops, relu and identity inline.
            T *yi = y + i * out + j0;
            if (row_act == NN_ACT_RELU)
                for (nn_int j = 0; j < nj; j++) yi[j] = NN_T(relu_fwd)(s[j]);
            else if (row_act == NN_ACT_IDENTITY)
                for (nn_int j = 0; j < nj; j++) yi[j] = s[j];
            else
                NN_T(act_row)(yi, s, nj, row_act, alpha);
        }
    }
    if (act == NN_ACT_SOFTMAX)
        for (nn_int i = 0; i < m; i++) NN_T(softmax_row)(y + i * out, y + i * out, out);
}

// A dense layer's forward pass on rows x (m, in), the layer's fields read here; one function
// per width OUT (0: any) and form (NN_TINY_FORMS), picked from a table, so that each is
// small enough to keep its values in registers.
NN_INLINE void NN_T(tiny_dense_fwd_L)(const nn_plan_layer *L, const T *x, nn_int m,
                                      const int OUT, const int M, const int ACT) {
    NN_T(tiny_dense_fwd_n)((T *)L->y, (T *)L->z, x, (const T *)L->w, (const T *)L->b, m, L->in,
                           L->out, ACT >= 0 ? ACT : L->act, ACT >= 0 ? 0 : (T)L->alpha, OUT,
                           M);
}

typedef void (*NN_T(tiny_fwd_fn))(const nn_plan_layer *L, const T *x, nn_int m);
#define NN_TINY_FWD_DEF(OUT, F, M, ACT)                                                       \
    static void NN_T(tiny_fwd_##OUT##_##F)(const nn_plan_layer *L, const T *x, nn_int m) {     \
        NN_T(tiny_dense_fwd_L)(L, x, m, OUT, M, ACT);                                         \
    }
#define NN_TINY_FWD_DEFS(OUT) NN_TINY_FORMS(NN_TINY_FWD_DEF, OUT)
NN_TINY_WIDTHS(NN_TINY_FWD_DEFS)
#undef NN_TINY_FWD_DEFS
#undef NN_TINY_FWD_DEF

#define NN_TINY_FWD_FORM(OUT, F, M, ACT) NN_T(tiny_fwd_##OUT##_##F),
#define NN_TINY_FWD_ENTRY(OUT) {NN_TINY_FORMS(NN_TINY_FWD_FORM, OUT)},
static const NN_T(tiny_fwd_fn) NN_T(tiny_fwd_table)[NN_TINY_MAX_OUT + 1][NN_TINY_N_FORMS] = {
    NN_TINY_WIDTHS(NN_TINY_FWD_ENTRY)};
#undef NN_TINY_FWD_ENTRY
#undef NN_TINY_FWD_FORM


struct NN_T(tiny_sgd) {
    T *buf;  // the momentum buffer (NULL without momentum)
    T lr, mom, keep, wd;
    int use_wd, use_mom, nesterov, first;
};

// p = the SGD update of *p with gradient g, element k of the flat buffers (mode: a constant;
// u: the settings in locals of the caller, so that they stay in registers across the stores).
NN_INLINE void NN_T(tiny_update)(T *p, T g, nn_int k, struct NN_T(tiny_sgd) u, const int mode) {
    if (mode == NN_TINY_SGD_PLAIN)
        *p = NN_T(sgd_one)(*p, g, u.buf, k, u.lr, u.mom, u.keep, u.wd, 0, 0, 0, 0);
    else if (mode == NN_TINY_SGD_MOMENTUM)  // keep = 1 - dampening = 1: keep g is g
        *p = NN_T(sgd_one)(*p, g, u.buf, k, u.lr, u.mom, 1, u.wd, 0, 1, 0, 0);
    else if (mode == NN_TINY_SGD_ANY)
        *p = NN_T(sgd_one)(*p, g, u.buf, k, u.lr, u.mom, u.keep, u.wd, u.use_wd, u.use_mom,
                           u.nesterov, u.first);
}

// nn_dense_backward's tiny branch with dz = dy (in place) and accumulate = 0: dz (m, out),
// x (m, in), w and dw (in, out), b and db (out) or NULL, dx (m, in) or NULL; OUT is out as a
// constant, or 0; M likewise for m. Then the SGD update of w and b (at offsets ow, ob of the
// flat buffers) unless mode is NN_TINY_SGD_END.
NN_INLINE void NN_T(tiny_dense_bwd_n)(T *dx, T *dw, T *db, T *dz, const T *x, T *w, T *b,
                                      const T *y, const T *z, nn_int m_rt, nn_int in,
                                      nn_int out_rt, int act, T alpha,
                                      const struct NN_T(tiny_sgd) *su, nn_int ow, nn_int ob,
                                      const int mode, const int OUT, const int M) {
    const nn_int out = OUT ? OUT : out_rt, m = M ? M : m_rt;
    const struct NN_T(tiny_sgd) u = *su;
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++)
            NN_T(softmax_grad_row)(dz + i * out, dz + i * out, y + i * out, out);
    } else {  // (the identity leaves dz as it is)
        NN_T(act_grad_row)(dz, dz, y, nn_act_needs_z(act, alpha) ? z : NULL, m * out, act,
                           alpha);
    }
    // One row of a constant width: dz in registers from here on, not reloaded after each
    // store that might alias it.
    T dz1[NN_TINY_MAX_OUT];
    const T *g = dz;
    if (M == 1 && OUT > 0) {
        for (nn_int j = 0; j < OUT; j++) dz1[j] = dz[j];
        g = dz1;
    }
    // dx = dz . w^T: nn_gemm_tiny(dx, dz, w, m, in, out, trans_b)
    if (dx != NULL)
        for (nn_int i = 0; i < m; i++)
            for (nn_int j = 0; j < in; j++) {
                T s = 0;
                for (nn_int p = 0; p < out; p++) s += g[i * out + p] * w[j * out + p];
                dx[i * in + j] = s;
            }
    // dw = x^T . dz: nn_gemm_tiny(dw, x, dz, in, out, m, trans_a)
    for (nn_int i = 0; i < in; i++) {
        const T xi = x[i];  // row 0's (the only one when M == 1)
        for (nn_int j = 0; j < out; j++) {
            T s = 0;
            if (M == 1)
                s += xi * g[j];
            else
                for (nn_int p = 0; p < m; p++) s += x[p * in + i] * g[p * out + j];
            dw[i * out + j] = s;
            NN_T(tiny_update)(w + i * out + j, s, ow + i * out + j, u, mode);
        }
    }
    if (db != NULL)  // colsum's order
        for (nn_int j = 0; j < out; j++) {
            T s = 0;
            for (nn_int i = 0; i < m; i++) s += g[i * out + j];
            db[j] = s;
            NN_T(tiny_update)(b + j, s, ob + j, u, mode);
        }
}

// A dense layer's backward pass from dz (m, out), in place, with the update of mode (params:
// the flat buffer its w and b are in); one function per mode, width and form, as the forward
// pass.
NN_INLINE void NN_T(tiny_dense_bwd_L)(const nn_plan_layer *L, T *dz, const T *params, nn_int m,
                                      const struct NN_T(tiny_sgd) *u, const int mode,
                                      const int OUT, const int M, const int ACT) {
    T *w = (T *)L->w, *b = (T *)L->b;
    NN_T(tiny_dense_bwd_n)((T *)L->dx, (T *)L->dw, (T *)L->db, dz, (const T *)L->x, w, b,
                           (const T *)L->y, ACT >= 0 ? NULL : (const T *)L->z, m, L->in, L->out,
                           ACT >= 0 ? ACT : L->act, ACT >= 0 ? 0 : (T)L->alpha, u, w - params,
                           b ? b - params : 0, mode, OUT, M);
}

typedef void (*NN_T(tiny_bwd_fn))(const nn_plan_layer *L, T *dz, const T *params, nn_int m,
                                  const struct NN_T(tiny_sgd) *u);
#define NN_TINY_BWD_DEF(MODE, OUT, F, M, ACT)                                                 \
    static void NN_T(tiny_bwd_##MODE##_##OUT##_##F)(const nn_plan_layer *L, T *dz,            \
                                                    const T *params, nn_int m,                \
                                                    const struct NN_T(tiny_sgd) *u) {         \
        NN_T(tiny_dense_bwd_L)(L, dz, params, m, u, NN_TINY_SGD_##MODE, OUT, M, ACT);         \
    }
#define NN_TINY_BWD_END(OUT, F, M, ACT) NN_TINY_BWD_DEF(END, OUT, F, M, ACT)
#define NN_TINY_BWD_PLAIN(OUT, F, M, ACT) NN_TINY_BWD_DEF(PLAIN, OUT, F, M, ACT)
#define NN_TINY_BWD_MOMENTUM(OUT, F, M, ACT) NN_TINY_BWD_DEF(MOMENTUM, OUT, F, M, ACT)
#define NN_TINY_BWD_ANY(OUT, F, M, ACT) NN_TINY_BWD_DEF(ANY, OUT, F, M, ACT)
#define NN_TINY_BWD_DEFS(OUT)                                                                 \
    NN_TINY_FORMS(NN_TINY_BWD_END, OUT) NN_TINY_FORMS(NN_TINY_BWD_PLAIN, OUT)                 \
    NN_TINY_FORMS(NN_TINY_BWD_MOMENTUM, OUT) NN_TINY_FORMS(NN_TINY_BWD_ANY, OUT)
NN_TINY_WIDTHS(NN_TINY_BWD_DEFS)
#undef NN_TINY_BWD_DEFS
#undef NN_TINY_BWD_END
#undef NN_TINY_BWD_PLAIN
#undef NN_TINY_BWD_MOMENTUM
#undef NN_TINY_BWD_ANY
#undef NN_TINY_BWD_DEF

// [mode][width][form], mode in the order of the NN_TINY_SGD_* values
#define NN_TINY_BWD_FORM(MODE, OUT, F) NN_T(tiny_bwd_##MODE##_##OUT##_##F),
#define NN_TINY_BWD_END(OUT, F, M, ACT) NN_TINY_BWD_FORM(END, OUT, F)
#define NN_TINY_BWD_PLAIN(OUT, F, M, ACT) NN_TINY_BWD_FORM(PLAIN, OUT, F)
#define NN_TINY_BWD_MOMENTUM(OUT, F, M, ACT) NN_TINY_BWD_FORM(MOMENTUM, OUT, F)
#define NN_TINY_BWD_ANY(OUT, F, M, ACT) NN_TINY_BWD_FORM(ANY, OUT, F)
#define NN_TINY_BWD_END_W(OUT) {NN_TINY_FORMS(NN_TINY_BWD_END, OUT)},
#define NN_TINY_BWD_PLAIN_W(OUT) {NN_TINY_FORMS(NN_TINY_BWD_PLAIN, OUT)},
#define NN_TINY_BWD_MOMENTUM_W(OUT) {NN_TINY_FORMS(NN_TINY_BWD_MOMENTUM, OUT)},
#define NN_TINY_BWD_ANY_W(OUT) {NN_TINY_FORMS(NN_TINY_BWD_ANY, OUT)},
static const NN_T(tiny_bwd_fn)
    NN_T(tiny_bwd_table)[4][NN_TINY_MAX_OUT + 1][NN_TINY_N_FORMS] = {
        {NN_TINY_WIDTHS(NN_TINY_BWD_END_W)},
        {NN_TINY_WIDTHS(NN_TINY_BWD_PLAIN_W)},
        {NN_TINY_WIDTHS(NN_TINY_BWD_MOMENTUM_W)},
        {NN_TINY_WIDTHS(NN_TINY_BWD_ANY_W)}};
#undef NN_TINY_BWD_END_W
#undef NN_TINY_BWD_PLAIN_W
#undef NN_TINY_BWD_MOMENTUM_W
#undef NN_TINY_BWD_ANY_W
#undef NN_TINY_BWD_END
#undef NN_TINY_BWD_PLAIN
#undef NN_TINY_BWD_MOMENTUM
#undef NN_TINY_BWD_ANY
#undef NN_TINY_BWD_FORM


// 1 if x[i0 .. i1) are all +0 (bit for bit), or x is NULL.
static int NN_T(tiny_all_zero)(const T *x, nn_int i0, nn_int i1) {
    const T zero = 0;
    for (nn_int i = i0; x != NULL && i < i1; i++)
        if (memcmp(x + i, &zero, sizeof(T)) != 0) return 0;
    return 1;
}

// Whether the SGD update can be fused into the backward pass: each dense layer's w and b lie
// in the flat params, in layer order, at the offsets of its dw and db in grads, and every
// other element of the buffers (alignment padding) is +0 in params, grads and the momentum
// buffer: the update leaves those as they are, so the fused step may skip them.
static int NN_T(tiny_sgd_fusable)(const nn_plan *pl) {
    const T *params = (const T *)pl->params, *grads = (const T *)pl->grads;
    const T *buf = (const T *)pl->state1;
    nn_int next = 0;
    for (int i = 0; i < pl->n_layers; i++) {
        const nn_plan_layer *L = &pl->layers[i];
        if (L->kind != NN_LAYER_DENSE) continue;
        const T *part[2] = {(const T *)L->w, (const T *)L->b};
        const T *gpart[2] = {(const T *)L->dw, (const T *)L->db};
        nn_int size[2] = {L->in * L->out, L->out};
        for (int k = 0; k < 2; k++) {
            if (part[k] == NULL) continue;
            nn_int off = part[k] - params;
            if (off < next || off + size[k] > pl->n_params || gpart[k] != grads + off)
                return 0;
            if (!NN_T(tiny_all_zero)(params, next, off) ||
                !NN_T(tiny_all_zero)(grads, next, off) || !NN_T(tiny_all_zero)(buf, next, off))
                return 0;
            next = off + size[k];
        }
    }
    return NN_T(tiny_all_zero)(params, next, pl->n_params) &&
           NN_T(tiny_all_zero)(grads, next, pl->n_params) &&
           NN_T(tiny_all_zero)(buf, next, pl->n_params);
}

// The loss kernel (mean reduction) on one thread: one chunk of rows; wsum = sum of the
// batch's weights (m without weights) in row order, as the kernel sums them.
NN_INLINE int NN_T(tiny_loss)(const nn_plan *pl, double *loss, T *grad, const T *out,
                              const T *t, const int64_t *labels, const T *w, nn_int m,
                              double wsum) {
    const nn_int d = pl->n_outputs;
    if (pl->loss == NN_LOSS_CROSS_ENTROPY)
        for (nn_int i = 0; i < m; i++)
            if (labels[i] < 0 || labels[i] >= d) return NN_ERR_LABEL;
    double norm = (pl->loss == NN_LOSS_CROSS_ENTROPY ? 1 : (double)d) * wsum;
    if (!(norm > 0)) return NN_ERR_ARG;
    double total = 0;
    const T param = (T)pl->loss_param;
    if (pl->loss == NN_LOSS_BCE_LOGITS)  // constant kinds: straight-line row losses
        total += NN_T(loss_rows)(NN_LOSS_BCE_LOGITS, 0, grad, out, t, labels, w, d, norm, 0, m);
    else if (pl->loss == NN_LOSS_MSE)
        total += NN_T(loss_rows)(NN_LOSS_MSE, 0, grad, out, t, labels, w, d, norm, 0, m);
    else if (pl->loss == NN_LOSS_CROSS_ENTROPY && param == 0)
        total += NN_T(loss_rows)(NN_LOSS_CROSS_ENTROPY, 0, grad, out, t, labels, w, d, norm,
                                 0, m);
    else
        total += NN_T(loss_rows)(pl->loss, param, grad, out, t, labels, w, d, norm, 0, m);
    *loss = total / norm;
    return NN_OK;
}

// The tiny step's choices for one plan_train call: the SGD settings and how it applies them
// (an NN_TINY_SGD_* mode). Each layer's functions go into its tiny_* fields (tiny_bwd_first:
// the first step's, which starts the momentum buffers), picked once so that a step calls
// them directly.
struct NN_T(tiny) {
    struct NN_T(tiny_sgd) u;
    int mode;
};

// The tiny step's SGD settings (tu) and how it applies them (an NN_TINY_SGD_* mode).
static int NN_T(tiny_mode)(const nn_plan *pl, struct NN_T(tiny_sgd) *tu) {
    struct NN_T(sgd_args) a =
        NN_T(sgd_args_make)((T *)pl->params, (T *)pl->state1, (const T *)pl->grads, pl->lr,
                            pl->momentum, pl->dampening, pl->weight_decay, pl->nesterov, 0);
    struct NN_T(tiny_sgd) u = {a.buf, a.lr, a.mom, a.keep, a.wd, a.use_wd, a.use_mom,
                               a.nesterov, 0};
    *tu = u;
    if (pl->optimizer != NN_OPT_SGD || !NN_T(tiny_sgd_fusable)(pl)) return NN_TINY_SGD_END;
    return a.use_wd || a.nesterov || (a.use_mom && a.keep != 1) ? NN_TINY_SGD_ANY
           : a.use_mom                                         ? NN_TINY_SGD_MOMENTUM
                                                               : NN_TINY_SGD_PLAIN;
}

// Fills tt, and each layer's functions, for batches of bs rows. The one-row forms take
// batches of 1 (every batch then has one row).
static void NN_T(tiny_setup)(nn_plan *pl, nn_int bs, struct NN_T(tiny) *tt) {
    tt->mode = NN_T(tiny_mode)(pl, &tt->u);
    const int first = tt->mode == NN_TINY_SGD_MOMENTUM ? NN_TINY_SGD_ANY : tt->mode;
    for (int i = 0; i < pl->n_layers; i++) {
        nn_plan_layer *L = &pl->layers[i];
        const int w = L->out > 0 && L->out <= NN_TINY_MAX_OUT ? (int)L->out : 0;
        const int form = bs != 1                       ? 0
                         : L->act == NN_ACT_IDENTITY ? 2
                         : L->act == NN_ACT_RELU     ? 3
                                                     : 1;
        L->tiny_fwd = (void (*)(void))NN_T(tiny_fwd_table)[w][form];
        L->tiny_bwd = (void (*)(void))NN_T(tiny_bwd_table)[tt->mode][w][form];
        L->tiny_bwd_first = (void (*)(void))NN_T(tiny_bwd_table)[first][w][form];
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
