// optim_impl.h - SGD and Adam/AdamW updates for T = float / double, in the order of
// operations of torch.optim's implementations (scalars derived in double, then cast to T).
// Each element's update uses only exactly rounded operations (no contraction), so the
// result is the same bits whatever the vector width: the loops are compiled for each CPU
// path (NN_ISA_VARIANTS) and run on the selected one.

#define NN_OPTIM_CHUNK 4096

#include "optim_body_impl.h"

// run(&args, i0, i1) over elements [0, n): on one thread, or in chunks of NN_OPTIM_CHUNK
// over the threads when there are at least min_elems (no two threads write one element).
#ifndef NN_OPTIM_RUN
#define NN_OPTIM_RUN(run, args, n, min_elems, n_threads)                                      \
    do {                                                                                      \
        nn_int n_chunks_ = ((n) + NN_OPTIM_CHUNK - 1) / NN_OPTIM_CHUNK;                       \
        int nt_ = nn_threads_for((n_threads), (n), (min_elems));                              \
        if (nt_ <= 1) {                                                                       \
            run(&(args), 0, (n));                                                             \
        } else {                                                                              \
            NN_PARALLEL_FOR(nt_, c, n_chunks_, {                                              \
                nn_int i1 = (c + 1) * NN_OPTIM_CHUNK < (n) ? (c + 1) * NN_OPTIM_CHUNK : (n);  \
                run(&(args), c * NN_OPTIM_CHUNK, i1);                                         \
            });                                                                               \
        }                                                                                     \
    } while (0)
#endif

NN_ISA_VARIANTS(NN_T(sgd), const struct NN_T(sgd_args) *, NN_T(sgd_body))
NN_ISA_VARIANTS(NN_T(adam), const struct NN_T(adam_args) *, NN_T(adam_body))

void NN_T(nn_sgd_update)(T *p, T *buf, const T *grad, nn_int n, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov, int first_step,
                         int n_threads) {
    // p, buf, grad (n)
    struct NN_T(sgd_args) a = NN_T(sgd_args_make)(p, buf, grad, lr, momentum, dampening,
                                                  weight_decay, nesterov, first_step);
    void (*run)(const struct NN_T(sgd_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(sgd));
    NN_OPTIM_RUN(run, a, n, NN_PAR_MIN_ELEMS, n_threads);
}

void NN_T(nn_adam_update)(T *p, T *m, T *v, T *vmax, const T *grad, nn_int n, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int64_t step, int amsgrad, int decoupled, int n_threads) {
    // p, m, v, vmax, grad (n)
    struct NN_T(adam_args) a = NN_T(adam_args_make)(p, m, v, vmax, grad, lr, beta1, beta2, eps,
                                                    weight_decay, step, amsgrad, decoupled);
    void (*run)(const struct NN_T(adam_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(adam));
    NN_OPTIM_RUN(run, a, n, NN_PAR_MIN_ELEMS / 4, n_threads);
}

// Gradient clipping: a chunk's clamp to [-clipvalue, clipvalue] (0: none) and its sum of
// squares in NN_CLIP_LANES interleaved partial sums, added in lane order (the same bits on
// every path and thread count: the chunks are fixed and their sums added in order).
#define NN_CLIP_LANES 8
struct NN_T(clip_args) {
    T *g;
    T value;
    double *part;
    int need_sum;
};

NN_INLINE void NN_T(clip_chunk_body)(const struct NN_T(clip_args) *a, nn_int i0, nn_int i1) {
    T *g = a->g;
    if (a->value > 0) {
        const T v = a->value;
        for (nn_int i = i0; i < i1; i++) g[i] = g[i] > v ? v : g[i] < -v ? -v : g[i];
    }
    if (!a->need_sum) return;
    double acc[NN_CLIP_LANES] = {0};
    nn_int i = i0;
    for (; i + NN_CLIP_LANES <= i1; i += NN_CLIP_LANES)
        for (int q = 0; q < NN_CLIP_LANES; q++) acc[q] += (double)g[i + q] * (double)g[i + q];
    for (int q = 0; i < i1; i++, q++) acc[q] += (double)g[i] * (double)g[i];
    double s = 0;
    for (int q = 0; q < NN_CLIP_LANES; q++) s += acc[q];
    a->part[i0 / NN_OPTIM_CHUNK] = s;
}

NN_INLINE void NN_T(scale_body)(const struct NN_T(clip_args) *a, nn_int i0, nn_int i1) {
    const T c = a->value;
    for (nn_int i = i0; i < i1; i++) a->g[i] *= c;
}

NN_ISA_VARIANTS(NN_T(clip_chunk), const struct NN_T(clip_args) *, NN_T(clip_chunk_body))
NN_ISA_VARIANTS(NN_T(scale), const struct NN_T(clip_args) *, NN_T(scale_body))

int NN_T(nn_clip_grads)(double *norm, T *g, nn_int n, double clipnorm, double clipvalue,
                        int n_threads) {
    // g (n)
    if (!(clipnorm >= 0 && clipnorm < INFINITY) || !(clipvalue >= 0 && clipvalue < INFINITY))
        return NN_ERR_ARG;
    *norm = 0;
    if (n <= 0 || (clipnorm == 0 && clipvalue == 0)) return NN_OK;
    const nn_int n_chunks = (n + NN_OPTIM_CHUNK - 1) / NN_OPTIM_CHUNK;
    double *part = NULL;
    if (clipnorm > 0) {
        part = (double *)nn_workspace(NN_WS_CLIP_CHUNKS, (size_t)n_chunks * sizeof(double));
        if (part == NULL) return NN_ERR_NOMEM;
    }
    struct NN_T(clip_args) a = {g, (T)clipvalue, part, clipnorm > 0};
    void (*run)(const struct NN_T(clip_args) *, nn_int, nn_int) = NN_ISA_PICK(NN_T(clip_chunk));
    const int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int i1 = (c + 1) * NN_OPTIM_CHUNK < n ? (c + 1) * NN_OPTIM_CHUNK : n;
        run(&a, c * NN_OPTIM_CHUNK, i1);
    });
    if (clipnorm == 0) return NN_OK;
    double s = 0;
    for (nn_int c = 0; c < n_chunks; c++) s += part[c];
    *norm = sqrt(s);
    // torch.nn.utils.clip_grad_norm_: coef = max_norm / (total_norm + 1e-6), clamped to 1
    const double coef = clipnorm / (*norm + 1e-6);
    if (coef < 1) {
        struct NN_T(clip_args) k = {g, (T)coef, NULL, 0};
        NN_OPTIM_RUN(NN_ISA_PICK(NN_T(scale)), k, n, NN_PAR_MIN_ELEMS, n_threads);
    }
    return NN_OK;
}

// nn_update's range functions (internal/update.h): the update of the selected CPU path over
// the rows of a block - the compiled plan's dW tiles, while they are in L1. The loop over the
// rows is compiled into each path's variant: a call per row costs more than a 32-wide row's
// update. Row r's gradients are at grad + r * ldg, or with grad NULL at the args' own
// gradient buffer (at off + r * ld, like the parameters).
struct NN_T(block) {
    const void *args;
    nn_int rows, cols, ld;
    const T *grad;
    nn_int ldg;
};

NN_INLINE void NN_T(sgd_block_body)(const struct NN_T(block) *k, nn_int off, nn_int unused) {
    (void)unused;
    const struct NN_T(sgd_args) *a = (const struct NN_T(sgd_args) *)k->args;
    for (nn_int r = 0; r < k->rows; r++)
        NN_T(sgd_span)(a, off + r * k->ld, k->cols,
                       k->grad ? k->grad + r * k->ldg : a->grad + off + r * k->ld);
}

NN_INLINE void NN_T(adam_block_body)(const struct NN_T(block) *k, nn_int off, nn_int unused) {
    (void)unused;
    const struct NN_T(adam_args) *a = (const struct NN_T(adam_args) *)k->args;
    for (nn_int r = 0; r < k->rows; r++)
        NN_T(adam_span)(a, off + r * k->ld, k->cols,
                        k->grad ? k->grad + r * k->ldg : a->grad + off + r * k->ld);
}

NN_ISA_VARIANTS(NN_T(sgd_block), const struct NN_T(block) *, NN_T(sgd_block_body))
NN_ISA_VARIANTS(NN_T(adam_block), const struct NN_T(block) *, NN_T(adam_block_body))

// One range when the rows are contiguous (a whole matrix, its gradients alike).
static struct NN_T(block) NN_T(block_make)(const void *args, nn_int rows, nn_int cols,
                                           nn_int ld, const void *grad, nn_int ldg) {
    int whole = cols == ld && (grad == NULL || ldg == ld);
    struct NN_T(block) k = {args, whole ? 1 : rows, whole ? rows * cols : cols, ld,
                            (const T *)grad, ldg};
    return k;
}

void NN_T(nn_sgd_tile)(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                       const void *grad, nn_int ldg) {
    struct NN_T(block) k = NN_T(block_make)(args, rows, cols, ld, grad, ldg);
    NN_ISA_PICK(NN_T(sgd_block))(&k, off, 0);
}

void NN_T(nn_adam_tile)(const void *args, nn_int off, nn_int rows, nn_int cols, nn_int ld,
                        const void *grad, nn_int ldg) {
    struct NN_T(block) k = NN_T(block_make)(args, rows, cols, ld, grad, ldg);
    NN_ISA_PICK(NN_T(adam_block))(&k, off, 0);
}
