// plan_impl.h - the compiled training plan for T = float / double: the layer loop, loss,
// metrics, backward loop and optimizer update of a Sequential model, batch after batch.

#include "ops/rows_impl.h"
#include "ops/optim_body_impl.h"

static int NN_T(plan_loss)(const nn_plan *pl, double *loss, T *grad, const T *out, const T *t,
                           const int64_t *labels, const T *w, nn_int m, int reduction) {
    return NN_T(nn_loss)(loss, grad, out, t, labels, w, m, pl->n_outputs, pl->loss,
                         pl->loss_param, reduction, pl->n_threads);
}

static nn_int NN_T(argmax)(const T *v, nn_int d) {
    nn_int best = 0;  // the first of equal maxima, as numpy.argmax
    for (nn_int j = 1; j < d; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

// Metric sums of one batch of outputs (m, d) against its targets.
static void NN_T(plan_metrics)(const nn_plan *pl, nn_plan_stats *st, const T *out, const T *t,
                               const int64_t *labels, nn_int m) {
    const nn_int d = pl->n_outputs;
    const T *pred = out;
    for (int k = 0; k < pl->n_metrics; k++) {
        int metric = pl->metrics[k];
        if (metric == NN_METRIC_ACCURACY) {
            int64_t hits = 0, count = m;
            if (labels != NULL) {
                for (nn_int i = 0; i < m; i++) hits += NN_T(argmax)(out + i * d, d) == labels[i];
            } else if (pl->loss == NN_LOSS_BCE_LOGITS) {
                count = m * d;
                for (nn_int i = 0; i < m * d; i++) hits += (out[i] > 0) == (t[i] >= (T)0.5);
            } else {
                for (nn_int i = 0; i < m; i++)
                    hits += NN_T(argmax)(out + i * d, d) == NN_T(argmax)(t + i * d, d);
            }
            st->metric_sum[k] += (double)hits;
            st->metric_count[k] += count;
            continue;
        }
        if (pred == out && pl->prob_act != NN_ACT_IDENTITY) {  // predictions, once per batch
            NN_T(nn_activation_forward)((T *)pl->scratch, out, m, d, pl->prob_act, 0, 1);
            pred = (const T *)pl->scratch;
        }
        double s = 0;
        for (nn_int i = 0; i < m; i++)
            for (nn_int j = 0; j < d; j++) {
                T target = labels != NULL ? (T)(labels[i] == j) : t[i * d + j];
                double e = (double)(pred[i * d + j] - target);
                s += metric == NN_METRIC_MSE ? e * e : (e < 0 ? -e : e);
            }
        st->metric_sum[k] += s;
        st->metric_count[k] += m * d;
    }
}

#include "plan_tiny_impl.h"

// A dense layer's forward and backward (with the step u, or NULL) on m rows: float32 plans of
// mixed_bfloat16 models take the bfloat16 products.
static int NN_T(plan_dense_forward)(const nn_plan *pl, nn_plan_layer *L, const T *h, nn_int m,
                                    int training) {
    T *z = training ? (T *)L->z : NULL;
#if NN_F32
    if (pl->bf16)
        return nn_dense_forward_bf16((T *)L->y, z, h, (const T *)L->w, (const T *)L->b, m,
                                     L->in, L->out, L->act, (T)L->alpha, pl->n_threads);
#endif
    return NN_T(nn_dense_forward)((T *)L->y, z, h, (const T *)L->w, (const T *)L->b, m, L->in,
                                  L->out, L->act, (T)L->alpha, pl->n_threads);
}

static int NN_T(plan_dense_backward)(const nn_plan *pl, nn_plan_layer *L, T *g, nn_int m,
                                     const nn_update *u) {
#if NN_F32
    if (pl->bf16)
        return nn_dense_backward_bf16_upd((T *)L->dx, (T *)L->dw, (T *)L->db, g, g,
                                          (const T *)L->x, (const T *)L->w, (const T *)L->y,
                                          (const T *)L->z, m, L->in, L->out, L->act,
                                          (T)L->alpha, 0, u, pl->n_threads);
#endif
    return NN_T(nn_dense_backward_upd)((T *)L->dx, (T *)L->dw, (T *)L->db, g, g,
                                       (const T *)L->x, (const T *)L->w, (const T *)L->y,
                                       (const T *)L->z, m, L->in, L->out, L->act, (T)L->alpha,
                                       0, u, pl->n_threads);
}

// The forward pass of m rows; layer i's input is left in layers[i].x. Returns the output.
// tiny (a constant where it is inlined): the tiny step's one-thread loops for dense layers
// and activations instead of the kernels (plan_tiny_impl.h); the same arithmetic. The rows
// are rows skip .. skip + m - 1 of a batch of `rows` (data-parallel: this rank's share) for
// the dropout draws.
NN_INLINE const T *NN_T(plan_fwd)(nn_plan *pl, const T *x, nn_int m, nn_int skip,
                                  nn_int rows, int training, int *status,
                                  const struct NN_T(tiny) *tt, const int tiny) {
    const T *h = x;
    nn_plan_layer *const layers = pl->layers;
    const int n_layers = pl->n_layers;
    for (int i = 0; i < n_layers; i++) {
        nn_plan_layer *L = &layers[i];
        L->x = h;
        if (L->kind == NN_LAYER_DENSE) {
            if (tiny) {
                ((NN_T(tiny_fwd_fn))L->tiny_fwd)(L, h, m);
            } else {
                int s = NN_T(plan_dense_forward)(pl, L, h, m, training);
                if (s != NN_OK) {
                    *status = s;
                    return NULL;
                }
            }
            h = (const T *)L->y;
        } else if (L->kind == NN_LAYER_RESIDUAL_END) {
            const T *skip = (const T *)layers[L->link].x;
            T *y = (T *)L->y;
            const nn_int n = m * L->out;
            for (nn_int k = 0; k < n; k++) y[k] = h[k] + skip[k];
            h = y;
        } else if (L->kind == NN_LAYER_BATCHNORM || L->kind == NN_LAYER_LAYERNORM) {
            T *mu = training ? (T *)L->stats : NULL;
            T *is = mu ? mu + (L->kind == NN_LAYER_BATCHNORM ? L->out : pl->capacity) : NULL;
            int s = L->kind == NN_LAYER_BATCHNORM
                        ? NN_T(nn_batchnorm_forward)((T *)L->y, mu, is, (T *)L->running_mean,
                                                     (T *)L->running_var, h, (const T *)L->w,
                                                     (const T *)L->b, m, L->out, L->eps,
                                                     L->momentum, training, pl->n_threads)
                        : NN_T(nn_layernorm_forward)((T *)L->y, mu, is, h, (const T *)L->w,
                                                     (const T *)L->b, m, L->out, L->eps,
                                                     pl->n_threads);
            if (s != NN_OK) {
                *status = s;
                return NULL;
            }
            h = (const T *)L->y;
        } else if (L->kind == NN_LAYER_ACTIVATION) {
            if (tiny)
                NN_T(tiny_act_fwd)((T *)L->y, h, m, L->out, L->act, (T)L->alpha);
            else
                NN_T(nn_activation_forward)((T *)L->y, h, m, L->out, L->act, (T)L->alpha,
                                            pl->n_threads);
            h = (const T *)L->y;
        } else if (training && L->p > 0) {  // dropout; the identity when not training
            NN_T(nn_dropout_forward)((T *)L->y, L->mask, h, m * L->out, L->p, pl->dropout_seed,
                                     pl->rng_counter + (uint64_t)(skip * L->out),
                                     tiny ? 1 : pl->n_threads);
            pl->rng_counter += (uint64_t)(rows * L->out);
            h = (const T *)L->y;
        }
    }
    return h;
}

// Rows [start, start + m) of a call's arrays, and the sum of their weights (m without). With
// perm, the rows perm[start .. start + m) instead, gathered into the plan's rows_* buffers: the
// batch's pointers are then the same as for arrays permuted beforehand, and so are its bits.
struct NN_T(rows) {
    const T *x, *t, *w;
    const int64_t *labels;
    double weight;
};

// Rows perm[0 .. m) of x (rows of f values) into dst. They come from all over the data set
// (memory, not cache), so what counts is how many lines are on their way at once. Rows of
// 1 KiB or more are copied NN_GATHER_ROWS at a time, a line of each in turn, while the next
// NN_GATHER_ROWS rows are prefetched line by line: eight rows in flight (groups of 8 are
// slower). Shorter rows are copied one after the other, the row after next prefetched in one
// burst: for them the groups are slower. With enough to copy, the rows are shared out over
// the threads (64 rows of 784 floats, 200 KB, copied by one thread keep the other waiting).
#ifndef NN_GATHER_ROWS
#define NN_GATHER_ROWS 4
#endif
static void NN_T(gather_rows)(T *dst, const T *x, const int64_t *perm, nn_int m, nn_int f,
                              int n_threads) {
    const nn_int line = 64 / (nn_int)sizeof(T), G = NN_GATHER_ROWS;
    int nt = nn_threads_for(n_threads, m * f, NN_PAR_MIN_ELEMS / 4);
    if (f < 16 * line) {  // short rows: one at a time, the row after next prefetched
        const int far = f >= 4 * line;
        NN_PARALLEL_FOR(nt, i, m, {
            if (far && i + 2 < m)
                for (nn_int j = 0; j < f; j += line) NN_PREFETCH(x + perm[i + 2] * f + j);
            const T *src = x + perm[i] * f;
            T *row = dst + i * f;
            for (nn_int j = 0; j < f; j++) row[j] = src[j];
        });
        return;
    }
    NN_PARALLEL_FOR(nt, g, (m + G - 1) / G, {
        const nn_int i0 = g * G, rows = m - i0 < G ? m - i0 : G;
        const nn_int left = m - i0 - rows, next = left < G ? left : G;
        const T *src[NN_GATHER_ROWS], *ahead[NN_GATHER_ROWS];
        for (nn_int q = 0; q < rows; q++) src[q] = x + perm[i0 + q] * f;
        for (nn_int q = 0; q < next; q++) ahead[q] = x + perm[i0 + rows + q] * f;
        nn_int j = 0;
        for (; j + line <= f; j += line) {
            for (nn_int q = 0; q < next; q++) NN_PREFETCH(ahead[q] + j);
            for (nn_int q = 0; q < rows; q++) memcpy(dst + (i0 + q) * f + j, src[q] + j, 64);
        }
        for (; j < f; j++)
            for (nn_int q = 0; q < rows; q++) dst[(i0 + q) * f + j] = src[q][j];
    });
}

static inline struct NN_T(rows) NN_T(plan_rows)(const nn_plan *pl, const T *x, const T *t,
                                                const int64_t *labels, const T *w,
                                                const int64_t *perm, nn_int start, nn_int m) {
    const nn_int f = pl->n_features, d = pl->n_outputs;
    if (perm != NULL && m == 1) start = perm[start], perm = NULL;  // one row: in place
    struct NN_T(rows) r = {x + start * f, t ? t + start * d : NULL, w ? w + start : NULL,
                           labels ? labels + start : NULL, (double)m};
    if (perm != NULL) {
        T *gx = (T *)pl->rows_x, *gt = t ? (T *)pl->rows_t : NULL;
        T *gw = w ? (T *)pl->rows_w : NULL;
        int64_t *gl = labels ? pl->rows_labels : NULL;
        // Element loops, not memcpy: for the tiny step's rows of a few values a memcpy call
        // per row costs more than the copy.
        NN_T(gather_rows)(gx, x, perm + start, m, f, pl->n_threads);
        for (nn_int i = 0; i < m; i++) {
            const int64_t k = perm[start + i];
            for (nn_int j = 0; gt != NULL && j < d; j++) gt[i * d + j] = t[k * d + j];
            if (gw != NULL) gw[i] = w[k];
            if (gl != NULL) gl[i] = labels[k];
        }
        r.x = gx, r.t = gt, r.w = gw, r.labels = gl;
    }
    if (r.w != NULL) {
        r.weight = 0;
        for (nn_int i = 0; i < m; i++) r.weight += (double)r.w[i];
    }
    return r;
}

// After a batch's loss: with the NaN guard, a non-finite loss puts back the parameters of
// the last finite one (and the state as its batch left it) and stops (NN_ERR_ARG), a finite
// one saves them; then the loss joins the epoch's sums.
static int NN_T(plan_account)(nn_plan *pl, nn_plan_stats *st, double loss, double bw,
                              nn_int b) {
    if (pl->backup != NULL) {
        T *params = (T *)pl->params + pl->update_lo, *backup = (T *)pl->backup + pl->update_lo;
        const size_t bytes = (size_t)(pl->update_hi - pl->update_lo) * sizeof(T);
        const size_t state_bytes = (size_t)pl->n_state * sizeof(T);
        // A running variance can overflow while the loss stays finite (batch norm
        // normalises it away): that batch stops training as a non-finite loss does.
        const nn_int bad = isfinite(loss) && state_bytes
                               ? NN_T(nn_first_nonfinite)((const T *)pl->state, pl->n_state)
                               : -1;
        if (!isfinite(loss) || bad >= 0) {
            if (pl->backup_valid) memcpy(params, backup, bytes);
            st->nonfinite_state = bad >= 0;
            st->last_loss = bad >= 0 ? (double)((const T *)pl->state)[bad] : loss;
            if (state_bytes) memcpy(pl->state, pl->state_backup, state_bytes);
            st->nonfinite_batch = b;
            return NN_ERR_ARG;
        }
        memcpy(backup, params, bytes);
        if (state_bytes) memcpy(pl->state_backup, pl->state, state_bytes);
        pl->backup_valid = 1;
    }
    st->loss_sum += loss * bw;
    st->weight_sum += bw;
    return NN_OK;
}

// Whether the optimizer step can run inside the backward pass (nn_update): every layer's
// parameters and gradients (a dense layer's W and b, a norm's gamma and beta) lie at the same
// offsets of params and grads. What lies between them (alignment) is zero, and stays zero
// either way.
static int NN_T(plan_fusable)(const nn_plan *pl) {
    for (int i = 0; i < pl->n_layers; i++) {
        const nn_plan_layer *L = &pl->layers[i];
        if (L->kind != NN_LAYER_DENSE && L->kind != NN_LAYER_BATCHNORM &&
            L->kind != NN_LAYER_LAYERNORM)
            continue;
        if ((const T *)L->w - (const T *)pl->params != (T *)L->dw - (T *)pl->grads) return 0;
        if (L->b != NULL &&
            (const T *)L->b - (const T *)pl->params != (T *)L->db - (T *)pl->grads)
            return 0;
    }
    return 1;
}

// The backward pass of m rows from the loss gradient in pl->grad, with the optimizer step
// inside it where it can run as each layer's gradient is final (u, or the tiny step's
// per-element update in tt; first: the first step); plan_update runs it otherwise.
// Data-parallel: the layers with hook set are announced to the hook as they are done.
NN_INLINE int NN_T(plan_bwd)(nn_plan *pl, nn_int m, const nn_update *u,
                             const struct NN_T(tiny) *tt, int first, const int tiny) {
    T *params = (T *)pl->params;
    T *g = (T *)pl->grad;
    nn_plan_layer *const layers = pl->layers;
    const int first_param = pl->first_param;
    for (int i = pl->n_layers - 1; i >= first_param; i--) {
        nn_plan_layer *L = &layers[i];
        if (L->kind == NN_LAYER_DENSE) {
            if (tiny) {
                ((NN_T(tiny_bwd_fn))(first ? L->tiny_bwd_first : L->tiny_bwd))(L, g, params, m,
                                                                               &tt->u);
            } else {
                int s = NN_T(plan_dense_backward)(pl, L, g, m, u);
                if (s != NN_OK) return s;
            }
            g = (T *)L->dx;
        } else if (L->kind == NN_LAYER_RESIDUAL_END) {
            memcpy(L->dx, g, (size_t)(m * L->out) * sizeof(T));  // f may overwrite g
        } else if (L->kind == NN_LAYER_RESIDUAL_BEGIN) {
            const T *skip = (const T *)layers[L->link].dx;
            T *dx = (T *)L->dx;
            const nn_int n = m * L->out;
            for (nn_int k = 0; k < n; k++) dx[k] = g[k] + skip[k];
            g = dx;
        } else if (L->kind == NN_LAYER_BATCHNORM || L->kind == NN_LAYER_LAYERNORM) {
            const T *mu = (const T *)L->stats;
            const T *is = mu + (L->kind == NN_LAYER_BATCHNORM ? L->out : pl->capacity);
            if (L->kind == NN_LAYER_BATCHNORM)
                NN_T(nn_batchnorm_backward)((T *)L->dx, (T *)L->dw, (T *)L->db, g,
                                            (const T *)L->x, mu, is, (const T *)L->w, m,
                                            L->out, 0, pl->n_threads);
            else
                NN_T(nn_layernorm_backward)((T *)L->dx, (T *)L->dw, (T *)L->db, g,
                                            (const T *)L->x, mu, is, (const T *)L->w, m,
                                            L->out, 0, pl->n_threads);
            if (u != NULL) {  // gamma and beta, from their gradients in grads
                u->fn(u->args, (const T *)L->w - params, 1, L->out, L->out, NULL, 0);
                u->fn(u->args, (const T *)L->b - params, 1, L->out, L->out, NULL, 0);
            }
            g = (T *)L->dx;
        } else if (L->kind == NN_LAYER_ACTIVATION) {
            const T *z = nn_activation_needs_z(L->act, L->alpha) ? (const T *)L->x : NULL;
            if (tiny)
                NN_T(tiny_act_bwd)((T *)L->dx, g, (const T *)L->y, (const T *)L->x, m, L->out,
                                   L->act, (T)L->alpha);
            else
                NN_T(nn_activation_backward)((T *)L->dx, g, (const T *)L->y, z, m, L->out,
                                             L->act, (T)L->alpha, pl->n_threads);
            g = (T *)L->dx;
        } else if (L->p > 0) {
            NN_T(nn_dropout_backward)(g, g, L->mask, m * L->out, L->p,
                                      tiny ? 1 : pl->n_threads);
        }
        if (!tiny && L->hook && pl->hook(pl->hook_ctx, NN_HOOK_LAYER, i, NULL) != NN_OK)
            return NN_ERR_HOOK;
    }
    return NN_OK;
}

// The optimizer step of elements [lo, lo + n) with their gradients g, after the backward pass
// (the tiny step: its body on this thread).
static void NN_T(plan_update_span)(nn_plan *pl, nn_int lo, nn_int n, const T *g,
                                   const int tiny) {
    T *p = (T *)pl->params + lo, *s1 = (T *)pl->state1, *s2 = (T *)pl->state2;
    T *s3 = (T *)pl->state3;
    s1 = s1 ? s1 + lo : NULL, s2 = s2 ? s2 + lo : NULL, s3 = s3 ? s3 + lo : NULL;
    if (pl->optimizer == NN_OPT_SGD) {
        if (tiny) {
            struct NN_T(sgd_args) a = NN_T(sgd_args_make)(
                p, s1, g, pl->lr, pl->momentum, pl->dampening, pl->weight_decay, pl->nesterov,
                pl->steps == 0);
            NN_T(sgd_body)(&a, 0, n);
        } else {
            NN_T(nn_sgd_update)(p, s1, g, n, pl->lr, pl->momentum, pl->dampening,
                                pl->weight_decay, pl->nesterov, pl->steps == 0, pl->n_threads);
        }
    } else if (tiny) {
        struct NN_T(adam_args) a = NN_T(adam_args_make)(
            p, s1, s2, s3, g, pl->lr, pl->beta1, pl->beta2, pl->eps, pl->weight_decay,
            pl->steps + 1, pl->amsgrad, pl->decoupled);
        NN_T(adam_body)(&a, 0, n);
    } else {
        NN_T(nn_adam_update)(p, s1, s2, s3, g, n, pl->lr, pl->beta1, pl->beta2, pl->eps,
                             pl->weight_decay, pl->steps + 1, pl->amsgrad, pl->decoupled,
                             pl->n_threads);
    }
}

// The optimizer step over the update range. Data-parallel with peers: their gradients are
// added first (g + peer 0 + peer 1 ..., element by element), a tile at a time into a buffer
// in L1 that the update reads, so the sums are not written to memory and read back (they
// reach grads when keep is set); on one thread, where the tiles cost no parallel regions.
#define NN_PEER_TILE 2048
static void NN_T(plan_update)(nn_plan *pl, int keep, const int tiny) {
    const nn_int lo = pl->update_lo, hi = pl->update_hi;
    T *grads = (T *)pl->grads;
    if (pl->n_peers == 0 || pl->n_threads > 1) {
        for (int k = 0; k < pl->n_peers; k++) {
            const T *peer = (const T *)pl->peers[k];
            for (nn_int i = lo; i < hi; i++) grads[i] += peer[i];
        }
        NN_T(plan_update_span)(pl, lo, hi - lo, grads + lo, tiny);
        return;
    }
    T tile[NN_PEER_TILE];
    for (nn_int t0 = lo; t0 < hi; t0 += NN_PEER_TILE) {
        const nn_int n = hi - t0 < NN_PEER_TILE ? hi - t0 : NN_PEER_TILE;
        const T *peer = (const T *)pl->peers[0] + t0;
        for (nn_int i = 0; i < n; i++) tile[i] = grads[t0 + i] + peer[i];
        for (int k = 1; k < pl->n_peers; k++) {
            peer = (const T *)pl->peers[k] + t0;
            for (nn_int i = 0; i < n; i++) tile[i] += peer[i];
        }
        if (keep) memcpy(grads + t0, tile, (size_t)n * sizeof(T));
        NN_T(plan_update_span)(pl, t0, n, tile, tiny);
    }
}

// Data-parallel: this rank's share of the global batch of `rows` rows at start (see nn_plan),
// with the global batch's weight in .weight; *skip and *m: where its rows start in the batch
// and how many there are.
static struct NN_T(rows) NN_T(plan_shard)(const nn_plan *pl, const T *x, const T *t,
                                          const int64_t *labels, const T *w,
                                          const int64_t *perm, nn_int start, nn_int rows,
                                          nn_int *skip, nn_int *m_out) {
    double bw = (double)rows;
    if (w != NULL) {  // in order, in double, as one process sums them
        bw = 0;
        for (nn_int i = 0; i < rows; i++) bw += (double)w[perm ? perm[start + i] : start + i];
    }
    const nn_int lo = rows * pl->shard_rank / pl->shard_size;
    const nn_int m = rows * (pl->shard_rank + 1) / pl->shard_size - lo;
    *skip = lo, *m_out = m;
    struct NN_T(rows) r = {NULL, NULL, NULL, NULL, 0.0};
    if (m > 0) r = NN_T(plan_rows)(pl, x, t, labels, w, perm, start + lo, m);
    r.weight = bw;
    if (m == 0 || bw == 0) return r;
    const double norm = (labels != NULL ? 1.0 : (double)pl->n_outputs) * bw;
    T *scaled = (T *)pl->rows_w;  // may be r.w itself (gathered): element by element in place
    for (nn_int i = 0; i < m; i++)
        scaled[i] = r.w != NULL ? (T)((double)r.w[i] / norm) : (T)(1.0 / norm);
    r.w = scaled;
    return r;
}

// Data-parallel, a rank with no rows in a batch: zero gradients, the dropout draws of the batch
// passed, and the hook's layer events as the other ranks send them.
static int NN_T(plan_idle)(nn_plan *pl, nn_int rows) {
    memset(pl->grads, 0, (size_t)pl->n_params * sizeof(T));
    for (int i = 0; i < pl->n_layers; i++)
        if (pl->layers[i].kind == NN_LAYER_DROPOUT && pl->layers[i].p > 0)
            pl->rng_counter += (uint64_t)(rows * pl->layers[i].out);
    for (int i = pl->n_layers - 1; i >= pl->first_param; i--)
        if (pl->layers[i].hook && pl->hook(pl->hook_ctx, NN_HOOK_LAYER, i, NULL) != NN_OK)
            return NN_ERR_HOOK;
    return NN_OK;
}

// The optimizer step run inside the backward pass (plan_fusable): its arguments for this
// batch in *f, and the nn_update that plan_bwd passes to the dense kernels. The gradients need
// not reach pl->grads, except on a call's last batch (they are the model's grads when the
// call returns) and with the NaN guard (a stop leaves the last finite batch's).
struct NN_T(fused_update) {
    struct NN_T(sgd_args) sgd;
    struct NN_T(adam_args) adam;
    nn_update upd;
};
static const nn_update *NN_T(plan_fused_update)(const nn_plan *pl, struct NN_T(fused_update) *f,
                                               int last) {
    nn_update u = {NN_T(nn_sgd_tile), &f->sgd, pl->grads, !last && pl->backup == NULL,
                   {pl->params, pl->momentum != 0 ? pl->state1 : NULL}};
    if (pl->optimizer == NN_OPT_SGD) {
        f->sgd = NN_T(sgd_args_make)((T *)pl->params, (T *)pl->state1, (const T *)pl->grads,
                                     pl->lr, pl->momentum, pl->dampening, pl->weight_decay,
                                     pl->nesterov, pl->steps == 0);
    } else {
        u.arrays[1] = pl->state1, u.arrays[2] = pl->state2;
        u.arrays[3] = pl->amsgrad ? pl->state3 : NULL;
        f->adam = NN_T(adam_args_make)((T *)pl->params, (T *)pl->state1, (T *)pl->state2,
                                       (T *)pl->state3, (const T *)pl->grads, pl->lr,
                                       pl->beta1, pl->beta2, pl->eps, pl->weight_decay,
                                       pl->steps + 1, pl->amsgrad, pl->decoupled);
        u.fn = NN_T(nn_adam_tile), u.args = &f->adam;
    }
    f->upd = u;
    return &f->upd;
}

// The batch loop: batches b0 .. b1 - 1 of nn_plan_train's arrays, each gathered, forward,
// loss, accounted, measured, backward with the optimizer step. tiny is a constant at each
// call, so the loop is compiled once for tiny networks (every product at most NN_GEMM_TINY
// multiply-adds: plain loops on one thread, no kernel set-up) and once for the rest.
// Data-parallel (a hook): the loss and gradients are summed over the ranks before the NaN
// guard, the metrics and the update.
NN_INLINE int NN_T(plan_batches)(nn_plan *pl, nn_plan_stats *st, const T *x, const T *t,
                                 const int64_t *labels, const T *w, const int64_t *perm,
                                 nn_int n, nn_int bs, nn_int b0, nn_int b1, const int tiny) {
    // The optimizer step: see plan_bwd. The general step runs it inside the backward pass when
    // every dense layer's parameters and gradients share offsets (nn_update: tile by tile, in
    // L1, on several threads); the tiny step fuses plain SGD element by element.
    const int dp = !tiny && pl->hook != NULL;
    const int clip = pl->clipnorm > 0 || pl->clipvalue > 0;  // needs every gradient first
    const int fused = !tiny && !dp && !clip && NN_T(plan_fusable)(pl);
    struct NN_T(tiny) tt = {0};
    if (tiny) NN_T(tiny_setup)(pl, bs, &tt);
    const int after = tiny ? tt.mode == NN_TINY_SGD_END : !fused;  // plan_update after backward
    for (nn_int b = b0; b < b1; b++) {
        nn_int start = b * bs, rows = n - start < bs ? n - start : bs, m = rows, skip = 0;
        struct NN_T(rows) r =
            dp ? NN_T(plan_shard)(pl, x, t, labels, w, perm, start, rows, &skip, &m)
               : NN_T(plan_rows)(pl, x, t, labels, w, perm, start, m);
        const T *tb = r.t, *wb = r.w;
        const int64_t *lb = r.labels;
        double bw = r.weight;
        if (bw == 0) continue;  // weights that sum to 0: the weighted mean is undefined
        int status = NN_OK;
        double loss = 0;
        const T *out = NULL;
        if (m > 0) {
            out = NN_T(plan_fwd)(pl, r.x, m, skip, rows, 1, &status, &tt, tiny);
            if (out == NULL) return status;
            status = tiny ? NN_T(tiny_loss)(pl, &loss, (T *)pl->grad, out, tb, lb, wb, m, bw)
                          : NN_T(plan_loss)(pl, &loss, (T *)pl->grad, out, tb, lb, wb, m,
                                            dp ? NN_REDUCE_SUM : NN_REDUCE_MEAN);
            if (status != NN_OK) return status;
        }
        if (!dp) {
            status = NN_T(plan_account)(pl, st, loss, bw, b);
            if (status != NN_OK) return status;
            if (pl->n_metrics > 0) NN_T(plan_metrics)(pl, st, out, tb, lb, m);
        }

        if (pl->step_lr != NULL) {  // this step's rate (and momentum) from the schedule
            const int64_t k = pl->steps - pl->step_origin;
            if (k < 0 || k >= pl->step_len) return NN_ERR_ARG;
            pl->lr = pl->step_lr[k];
            if (pl->step_momentum != NULL) {
                if (pl->optimizer == NN_OPT_SGD)
                    pl->momentum = pl->step_momentum[k];
                else
                    pl->beta1 = pl->step_momentum[k];
            }
        }
        struct NN_T(fused_update) fu;
        const nn_update *u = fused ? NN_T(plan_fused_update)(pl, &fu, b + 1 == b1) : NULL;
        const int first = pl->steps == 0;  // (the tiny step's first starts the buffers)
        if (tiny) tt.u.first = first;
        status = m > 0 ? NN_T(plan_bwd)(pl, m, u, &tt, first, tiny) : NN_T(plan_idle)(pl, rows);
        if (status != NN_OK) return status;
        if (dp) {
            if (pl->hook(pl->hook_ctx, NN_HOOK_GRADS, -1, &loss) != NN_OK) return NN_ERR_HOOK;
            status = NN_T(plan_account)(pl, st, loss, bw, b);
            if (status == NN_OK && m > 0 && pl->n_metrics > 0)
                NN_T(plan_metrics)(pl, st, out, tb, lb, m);
        }
        if (status == NN_OK && clip) {  // (data-parallel: the ranks' sums, all of them)
            double norm;
            status = NN_T(nn_clip_grads)(&norm, (T *)pl->grads, pl->n_params, pl->clipnorm,
                                         pl->clipvalue, pl->n_threads);
        }
        // (the summed gradients are the model's when the call returns, and with the guard)
        if (status == NN_OK && after)
            NN_T(plan_update)(pl, b + 1 == b1 || pl->backup != NULL, tiny);
        if (dp && pl->hook(pl->hook_ctx, NN_HOOK_UPDATED, -1, NULL) != NN_OK)
            return NN_ERR_HOOK;
        if (status != NN_OK) return status;
        pl->steps++;
        st->batches++;
        st->last_loss = loss;
    }
    return NN_OK;
}

static int NN_T(plan_train)(nn_plan *pl, nn_plan_stats *st, const T *x, const T *t,
                           const int64_t *labels, const T *w, const int64_t *perm, nn_int n,
                           nn_int bs, nn_int b0, nn_int b1) {
    // x (n, n_features); t (n, n_outputs) or labels (n); w (n) or NULL; perm (n) or NULL
    if (perm != NULL && (pl->rows_x == NULL || (t != NULL && pl->rows_t == NULL) ||
                         (labels != NULL && pl->rows_labels == NULL) ||
                         (w != NULL && pl->rows_w == NULL)))
        return NN_ERR_ARG;
    if (pl->hook != NULL && pl->rows_w == NULL) return NN_ERR_ARG;
    // Clipping needs the whole summed gradient: data-parallel, every rank updating all of it
    // from its own sums (no peers' buffers added range by range).
    const int clip = pl->clipnorm > 0 || pl->clipvalue > 0;
    if (!(pl->clipnorm >= 0 && pl->clipnorm < INFINITY) ||
        !(pl->clipvalue >= 0 && pl->clipvalue < INFINITY) ||
        (clip && pl->hook != NULL &&
         (pl->n_peers > 0 || pl->update_lo != 0 || pl->update_hi != pl->n_params)))
        return NN_ERR_ARG;
    // (the tiny step takes its settings once per call: not with per-step ones)
    if (pl->bf16 && !NN_F32) return NN_ERR_ARG;  // bfloat16 products: float32 plans only
    if (pl->hook == NULL && !clip && pl->step_lr == NULL && !pl->bf16 && NN_T(tiny_fits)(pl, bs))
        return NN_T(plan_batches)(pl, st, x, t, labels, w, perm, n, bs, b0, b1, 1);
    return NN_T(plan_batches)(pl, st, x, t, labels, w, perm, n, bs, b0, b1, 0);
}

static int NN_T(plan_forward)(nn_plan *pl, nn_plan_stats *st, T *out, const T *x, const T *t,
                             const int64_t *labels, const T *w, nn_int n) {
    // out, t (n, n_outputs); x (n, n_features); labels, w (n)
    const nn_int d = pl->n_outputs, cap = pl->capacity;
    if (pl->bf16 && !NN_F32) return NN_ERR_ARG;
    for (nn_int start = 0; start < n; start += cap) {
        nn_int m = n - start < cap ? n - start : cap;
        int status = NN_OK;
        struct NN_T(rows) r = NN_T(plan_rows)(pl, x, t, labels, w, NULL, start, m);
        const T *h = NN_T(plan_fwd)(pl, r.x, m, 0, m, 0, &status, NULL, 0);
        if (h == NULL) return status;
        if (out != NULL) memcpy(out + start * d, h, (size_t)(m * d) * sizeof(T));
        if (st == NULL || (t == NULL && labels == NULL)) continue;
        double loss = 0;
        status = NN_T(plan_loss)(pl, &loss, NULL, h, r.t, r.labels, r.w, m, NN_REDUCE_SUM);
        if (status != NN_OK) return status;
        st->loss_sum += loss;
        st->weight_sum += r.weight;
        st->batches++;
        NN_T(plan_metrics)(pl, st, h, r.t, r.labels, m);
    }
    return NN_OK;
}

// The entry points: the plan's work runs with subnormals flushed (see NN_FP_FLUSH in
// internal/threads.h), and the caller's floating-point mode is put back before returning.
int NN_T(nn_plan_train)(nn_plan *pl, nn_plan_stats *st, const T *x, const T *t,
                        const int64_t *labels, const T *w, const int64_t *perm, nn_int n,
                        nn_int bs, nn_int b0, nn_int b1) {
    const unsigned fp = nn_fp_get();
    nn_fp_set(fp | NN_FP_FLUSH);
    int s = NN_T(plan_train)(pl, st, x, t, labels, w, perm, n, bs, b0, b1);
    nn_fp_set(fp);
    return s;
}

int NN_T(nn_plan_forward)(nn_plan *pl, nn_plan_stats *st, T *out, const T *x, const T *t,
                          const int64_t *labels, const T *w, nn_int n) {
    const unsigned fp = nn_fp_get();
    nn_fp_set(fp | NN_FP_FLUSH);
    int s = NN_T(plan_forward)(pl, st, out, x, t, labels, w, n);
    nn_fp_set(fp);
    return s;
}
