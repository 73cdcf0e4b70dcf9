// losses_impl.h - losses with value and gradient in one pass, for T = float / double.
// Rows are cut into fixed chunks whatever the thread count; each chunk's partial sum (double)
// lands in its own slot and the slots are added in order, so the loss is bitwise the same
// for any n_threads. The chunk loop is compiled for each CPU path (the exponentials
// vectorise wider); every operation is exactly rounded, so every path gives the same bits
// (tested).

#include "rows_impl.h"

// One chunk of rows [i0, i1): its sum into part[i0 / chunk], compiled for each CPU path.
struct NN_T(loss_args) {
    int kind;
    T param;
    T *grad;
    const T *x, *t;
    const int64_t *labels;
    const T *weight;
    nn_int d;
    double norm, *part;
    nn_int chunk;
};

NN_INLINE void NN_T(loss_chunk_body)(const struct NN_T(loss_args) *a, nn_int i0, nn_int i1) {
    a->part[i0 / a->chunk] = NN_T(loss_rows)(a->kind, a->param, a->grad, a->x, a->t, a->labels,
                                             a->weight, a->d, a->norm, i0, i1);
}

NN_ISA_VARIANTS(NN_T(loss_chunk), const struct NN_T(loss_args) *, NN_T(loss_chunk_body))

int NN_T(nn_loss)(double *loss, T *grad, const T *x, const T *t, const int64_t *labels,
                  const T *weight, nn_int n, nn_int d, int kind, double param, int reduction,
                  int n_threads) {
    // x, grad (n, d); t (n, d) or labels (n); weight (n) or NULL
    const int ce = kind == NN_LOSS_CROSS_ENTROPY;
    if (kind < 0 || kind >= NN_LOSS_N || (ce ? labels == NULL : t == NULL) ||
        !(kind == NN_LOSS_HUBER ? param > 0 && param < INFINITY
          : ce ? param >= 0 && param <= 1 : param == 0))
        return NN_ERR_ARG;
    if (labels != NULL && ce)  // all labels first: a bad one leaves grad untouched
        for (nn_int i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= d) return NN_ERR_LABEL;
    double wsum = (double)n;
    if (weight != NULL) {
        wsum = 0;
        for (nn_int i = 0; i < n; i++) wsum += weight[i];
    }
    // Element losses are summed over the row; the mean divides by d sum(w), except for the
    // cross-entropy, whose row is one sample's single loss.
    double per_row = ce ? 1 : (double)d;
    double norm = reduction == NN_REDUCE_MEAN ? per_row * wsum : 1;
    if (!(norm > 0)) return NN_ERR_ARG;

    const nn_int chunk = NN_LOSS_CHUNK_ELEMS / (d > 0 ? d : 1) + 1;
    nn_int n_chunks = (n + chunk - 1) / chunk;
    double *part =
        (double *)nn_workspace(NN_WS_LOSS_CHUNKS, (size_t)n_chunks * sizeof(double));
    if (part == NULL) return NN_ERR_NOMEM;
    int nt = nn_threads_for(n_threads, n * d, NN_PAR_MIN_ELEMS);
    struct NN_T(loss_args) la = {kind, (T)param, grad, x, ce ? NULL : t, ce ? labels : NULL,
                                 weight, d, norm, part, chunk};
    void (*run)(const struct NN_T(loss_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(loss_chunk));
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int i1 = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        run(&la, c * chunk, i1);
    });
    double total = 0;
    for (nn_int c = 0; c < n_chunks; c++) total += part[c];
    *loss = total / norm;
    return NN_OK;
}
