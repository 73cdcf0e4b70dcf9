// plan_tiny_impl.h - the training plan's fused step for tiny networks, for T = float / double
// (included by plan_impl.h).
//
// When every dense product of a batch is at most NN_GEMM_TINY multiply-adds (the seed network
// 2-3-1 at batch 1 to 10), every GEMM of the kernel-by-kernel step is nn_gemm_tiny, and the
// whole step is a few dozen flops behind a dozen kernel calls, each with its argument set-up,
// nn_threads_for, CPU-path pick and workspace lookup: those cost more than the arithmetic.
// This step does the same operations in the same order without them: the products as
// nn_gemm_tiny's loops (s = 0, s += a b in k order, c = s; then c + bias, z, act), and the
// activation, loss and optimizer bodies of the kernels themselves (rows_impl.h,
// optim_body_impl.h). Its arithmetic is plain scalar loops and exactly rounded element-wise
// updates, so it gives the kernels' bits on every CPU path; tests/test_plan.py checks it
// against the kernels called one by one.

// 1 when every dense product of a batch of bs (or fewer) rows takes nn_gemm_tiny.
static int NN_T(tiny_fits)(const nn_plan *pl, nn_int bs) {
    for (int i = 0; i < pl->n_layers; i++) {
        const nn_plan_layer *L = &pl->layers[i];
        if (L->kind == NN_LAYER_DENSE &&
            !(L->in > 0 && L->out > 0 && bs * L->in * L->out <= NN_GEMM_TINY))
            return 0;
    }
    return 1;
}

// nn_activation_forward / _backward on one thread: x, y, dy, dz (m, d); y may alias x, dz dy.
static inline void NN_T(tiny_act_fwd)(T *y, const T *x, nn_int m, nn_int d, int act, T alpha) {
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++) NN_T(softmax_row)(y + i * d, x + i * d, d);
    } else {
        NN_T(act_row)(y, x, m * d, act, alpha);
    }
}

static inline void NN_T(tiny_act_bwd)(T *dz, const T *dy, const T *y, const T *z, nn_int m,
                                      nn_int d, int act, T alpha) {
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++)
            NN_T(softmax_grad_row)(dz + i * d, dy + i * d, y + i * d, d);
    } else {
        NN_T(act_grad_row)(dz, dy, y, nn_activation_needs_z(act, alpha) ? z : NULL, m * d, act,
                           alpha);
    }
}

// nn_dense_forward of a tiny layer: x (m, in), w (in, out), b (out) or NULL, y and z (m, out).
// nn_gemm_tiny(y, x, w, m, out, in, ...): y = s (s = 0, s += x w in k order), then its
// epilogue y += b, z = y, y = act(y): one element at a time here (the same operations; a
// vector read of values just stored one by one would stall on store forwarding).
static inline void NN_T(tiny_dense_fwd)(T *y, T *z, const T *x, const T *w, const T *b,
                                        nn_int m, nn_int in, nn_int out, int act, T alpha) {
    const int row_act = act == NN_ACT_SOFTMAX ? NN_ACT_IDENTITY : act;  // softmax: rows below
    for (nn_int i = 0; i < m; i++) {
        const T *xi = x + i * in;
        for (nn_int j = 0; j < out; j++) {
            T s = 0;
            for (nn_int p = 0; p < in; p++) s += xi[p] * w[p * out + j];
            if (b != NULL) s += b[j];
            if (z != NULL) z[i * out + j] = s;
            y[i * out + j] = NN_T(act_one)(s, row_act, alpha);
        }
    }
    if (act == NN_ACT_SOFTMAX)
        for (nn_int i = 0; i < m; i++) NN_T(softmax_row)(y + i * out, y + i * out, out);
}

// Where the fused step finds a dense layer's parameters in the flat buffers, and the SGD
// update it applies to each element as soon as its gradient is known (after the layer's dx,
// the last use of its w in the step: the same values as the kernel's pass over all
// parameters at the end, whose every element depends on its own p, g and buffer alone).
struct NN_T(tiny_sgd) {
    T *buf;  // the momentum buffer (NULL without momentum)
    T lr, mom, keep, wd;
    int use_wd, use_mom, nesterov, first, on;  // on: update here, else at the end
};

// nn_dense_backward's tiny branch with dz = dy (in place) and accumulate = 0: dz (m, out),
// x (m, in), w and dw (in, out), b and db (out) or NULL, dx (m, in) or NULL. With u->on, the
// SGD update of w and b (at offsets ow, ob of the flat buffers) follows.
static inline void NN_T(tiny_dense_bwd)(T *dx, T *dw, T *db, T *dz, const T *x, T *w, T *b,
                                        const T *y, const T *z, nn_int m, nn_int in,
                                        nn_int out, int act, T alpha,
                                        const struct NN_T(tiny_sgd) *u, nn_int ow, nn_int ob) {
    if (act == NN_ACT_SOFTMAX) {
        for (nn_int i = 0; i < m; i++)
            NN_T(softmax_grad_row)(dz + i * out, dz + i * out, y + i * out, out);
    } else if (act != NN_ACT_IDENTITY) {
        const int needs_z = nn_activation_needs_z(act, alpha);
        for (nn_int e = 0; e < m * out; e++)
            dz[e] = NN_T(act_grad_one)(dz[e], y[e], needs_z ? z[e] : 0, act, alpha, needs_z);
    }
    // dx = dz . w^T: nn_gemm_tiny(dx, dz, w, m, in, out, trans_b)
    if (dx != NULL)
        for (nn_int i = 0; i < m; i++)
            for (nn_int j = 0; j < in; j++) {
                T s = 0;
                for (nn_int p = 0; p < out; p++) s += dz[i * out + p] * w[j * out + p];
                dx[i * in + j] = s;
            }
    // dw = x^T . dz: nn_gemm_tiny(dw, x, dz, in, out, m, trans_a)
    for (nn_int i = 0; i < in; i++)
        for (nn_int j = 0; j < out; j++) {
            T s = 0;
            for (nn_int p = 0; p < m; p++) s += x[p * in + i] * dz[p * out + j];
            nn_int k = i * out + j;
            dw[k] = s;
            if (u->on)
                w[k] = NN_T(sgd_one)(w[k], s, u->buf, ow + k, u->lr, u->mom, u->keep, u->wd,
                                     u->use_wd, u->use_mom, u->nesterov, u->first);
        }
    if (db != NULL)  // colsum's order
        for (nn_int j = 0; j < out; j++) {
            T s = 0;
            for (nn_int i = 0; i < m; i++) s += dz[i * out + j];
            db[j] = s;
            if (u->on)
                b[j] = NN_T(sgd_one)(b[j], s, u->buf, ob + j, u->lr, u->mom, u->keep, u->wd,
                                     u->use_wd, u->use_mom, u->nesterov, u->first);
        }
}

// Whether the SGD update can be fused into the backward pass: every dense layer's w, b lie
// in the flat params at the offsets of its dw, db in grads, and every other element of the
// buffers (alignment padding) is +0 in params, grads and the momentum buffer, which the
// update leaves as it is.
static int NN_T(tiny_sgd_fusable)(const nn_plan *pl) {
    const T *params = (const T *)pl->params, *grads = (const T *)pl->grads;
    const T *buf = (const T *)pl->state1;
    const nn_int np = pl->n_params;
    nn_int covered = 0, next = 0;  // layers' parameters come in order in the buffer
    for (int i = 0; i < pl->n_layers; i++) {
        const nn_plan_layer *L = &pl->layers[i];
        if (L->kind != NN_LAYER_DENSE) continue;
        const T *part[2] = {(const T *)L->w, (const T *)L->b};
        const T *gpart[2] = {(const T *)L->dw, (const T *)L->db};
        nn_int size[2] = {L->in * L->out, L->out};
        for (int k = 0; k < 2; k++) {
            if (part[k] == NULL) continue;
            nn_int off = part[k] - params;
            if (part[k] < params || off < next || off + size[k] > np ||
                gpart[k] != grads + off)
                return 0;
            for (nn_int e = next; e < off; e++) {  // the gap before this part
                const T *v[3] = {params + e, grads + e, buf ? buf + e : params + e};
                for (int q = 0; q < 3; q++) {
                    T zero = 0;
                    if (memcmp(v[q], &zero, sizeof(T)) != 0) return 0;
                }
            }
            next = off + size[k];
            covered += size[k];
        }
    }
    for (nn_int e = next; e < np; e++) {
        const T *v[3] = {params + e, grads + e, buf ? buf + e : params + e};
        for (int q = 0; q < 3; q++) {
            T zero = 0;
            if (memcmp(v[q], &zero, sizeof(T)) != 0) return 0;
        }
    }
    return covered > 0 || np == 0;
}

// The loss kernel (mean reduction) on one thread: one chunk of rows; wsum = sum of the
// batch's weights (m without weights) in row order, as the kernel sums them.
static inline int NN_T(tiny_loss)(const nn_plan *pl, double *loss, T *grad, const T *out,
                                  const T *t, const int64_t *labels, const T *w, nn_int m,
                                  double wsum) {
    const nn_int d = pl->n_outputs;
    if (pl->loss == NN_LOSS_CROSS_ENTROPY)
        for (nn_int i = 0; i < m; i++)
            if (labels[i] < 0 || labels[i] >= d) return NN_ERR_LABEL;
    double norm = (pl->loss == NN_LOSS_CROSS_ENTROPY ? 1 : (double)d) * wsum;
    if (!(norm > 0)) return NN_ERR_ARG;
    double total = 0;
    total += NN_T(loss_rows)(pl->loss, grad, out, t, labels, w, d, norm, 0, m);
    *loss = total / norm;
    return NN_OK;
}

// nn_plan_train for a plan where tiny_fits(pl, bs).
static int NN_T(plan_train_tiny)(nn_plan *pl, nn_plan_stats *st, const T *x, const T *t,
                                 const int64_t *labels, const T *w, nn_int n, nn_int bs,
                                 nn_int b0, nn_int b1) {
    const nn_int nf = pl->n_features, d = pl->n_outputs;
    const T *inputs[NN_PLAN_MAX_LAYERS];
    T *params = (T *)pl->params;
    struct NN_T(sgd_args) sgd =
        NN_T(sgd_args_make)(params, (T *)pl->state1, (const T *)pl->grads, pl->lr,
                            pl->momentum, pl->dampening, pl->weight_decay, pl->nesterov, 0);
    struct NN_T(tiny_sgd) u = {sgd.buf, sgd.lr, sgd.mom, sgd.keep, sgd.wd, sgd.use_wd,
                               sgd.use_mom, sgd.nesterov, 0,
                               pl->optimizer == NN_OPT_SGD && NN_T(tiny_sgd_fusable)(pl)};
    for (nn_int b = b0; b < b1; b++) {
        nn_int start = b * bs, m = n - start < bs ? n - start : bs;
        const T *xb = x + start * nf, *tb = t ? t + start * d : NULL;
        const int64_t *lb = labels ? labels + start : NULL;
        const T *wb = w ? w + start : NULL;
        double bw = (double)m;
        if (wb != NULL) {
            bw = 0;
            for (nn_int i = 0; i < m; i++) bw += (double)wb[i];
            if (bw == 0) continue;  // nothing to learn from; the weighted mean is undefined
        }
        const T *h = xb;
        for (int i = 0; i < pl->n_layers; i++) {
            nn_plan_layer *L = &pl->layers[i];
            inputs[i] = h;
            if (L->kind == NN_LAYER_DENSE) {
                NN_T(tiny_dense_fwd)((T *)L->y, (T *)L->z, h, (const T *)L->w, (const T *)L->b,
                                     m, L->in, L->out, L->act, (T)L->alpha);
                h = (const T *)L->y;
            } else if (L->kind == NN_LAYER_ACTIVATION) {
                NN_T(tiny_act_fwd)((T *)L->y, h, m, L->out, L->act, (T)L->alpha);
                h = (const T *)L->y;
            } else if (L->p > 0) {
                NN_T(nn_dropout_forward)((T *)L->y, L->mask, h, m * L->out, L->p,
                                         pl->dropout_seed, pl->rng_counter, 1);
                pl->rng_counter += (uint64_t)(m * L->out);
                h = (const T *)L->y;
            }
        }
        double loss = 0;
        int status = NN_T(tiny_loss)(pl, &loss, (T *)pl->grad, h, tb, lb, wb, m, bw);
        if (status != NN_OK) return status;
        if (pl->backup != NULL) {
            if (!isfinite(loss)) {
                if (pl->backup_valid)
                    memcpy(pl->params, pl->backup, (size_t)pl->n_params * sizeof(T));
                st->nonfinite_batch = b;
                st->last_loss = loss;
                return NN_ERR_ARG;
            }
            memcpy(pl->backup, pl->params, (size_t)pl->n_params * sizeof(T));
            pl->backup_valid = 1;
        }
        st->loss_sum += loss * bw;
        st->weight_sum += bw;
        if (pl->n_metrics > 0) NN_T(plan_metrics)(pl, st, h, tb, lb, m);

        u.first = pl->steps == 0;
        T *g = (T *)pl->grad;
        for (int i = pl->n_layers - 1; i >= pl->first_param; i--) {
            nn_plan_layer *L = &pl->layers[i];
            if (L->kind == NN_LAYER_DENSE) {
                NN_T(tiny_dense_bwd)((T *)L->dx, (T *)L->dw, (T *)L->db, g, inputs[i],
                                     (T *)L->w, (T *)L->b, (const T *)L->y, (const T *)L->z,
                                     m, L->in, L->out, L->act, (T)L->alpha, &u,
                                     (T *)L->w - params, L->b ? (T *)L->b - params : 0);
                g = (T *)L->dx;
            } else if (L->kind == NN_LAYER_ACTIVATION) {
                NN_T(tiny_act_bwd)((T *)L->dx, g, (const T *)L->y, inputs[i], m, L->out,
                                   L->act, (T)L->alpha);
                g = (T *)L->dx;
            } else if (L->p > 0) {
                NN_T(nn_dropout_backward)(g, g, L->mask, m * L->out, L->p, 1);
            }
        }
        if (pl->optimizer == NN_OPT_SGD) {
            if (!u.on) {
                sgd.first_step = pl->steps == 0;
                NN_T(sgd_body)(&sgd, 0, pl->n_params);
            }
        } else {
            struct NN_T(adam_args) adam = NN_T(adam_args_make)(
                params, (T *)pl->state1, (T *)pl->state2, (T *)pl->state3,
                (const T *)pl->grads, pl->lr, pl->beta1, pl->beta2, pl->eps, pl->weight_decay,
                pl->steps + 1, pl->amsgrad, pl->decoupled);
            NN_T(adam_body)(&adam, 0, pl->n_params);
        }
        pl->steps++;
        st->batches++;
        st->last_loss = loss;
    }
    return NN_OK;
}
