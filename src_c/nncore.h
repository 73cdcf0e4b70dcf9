// nncore.h - the one public C API of nncore.
//
// Conventions
//   * Arrays are C-contiguous (row-major) unless a leading dimension is given.
//   * Every kernel exists for float (_f32) and double (_f64); the two bodies are one source.
//   * Argument order: outputs first, const inputs next, sizes, options, n_threads last.
//   * n_threads <= 0 means "the library default" (nn_get_num_threads()).
//   * Results never depend on n_threads: no two threads write the same output and every
//     reduction runs in a fixed order.
//   * Functions that can fail return an nn_status; the others cannot fail on valid input.
#ifndef NNCORE_H
#define NNCORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t nn_int;  // every size and index: 64-bit, so n * d never overflows

enum nn_status {
    NN_OK = 0,
    NN_ERR_ARG = 1,     // an argument is out of its documented range
    NN_ERR_LABEL = 2,   // a class label is outside [0, n_classes)
    NN_ERR_NOMEM = 3,   // a workspace could not be allocated
    NN_ERR_CPU = 4,     // the requested CPU path is not available on this machine
    NN_ERR_HOOK = 5,    // a training plan's hook asked it to stop (its caller knows why)
};

// ---------------------------------------------------------------------------------------------
// CPU paths, dispatch and threads (cpu.c, runtime.c)

enum nn_cpu_path { NN_CPU_GENERIC = 0, NN_CPU_AVX2 = 1, NN_CPU_AVX512 = 2, NN_CPU_N_PATHS = 3 };

// Detect the CPU and select the best path, or the one NNCORE_CPU names (generic|avx2|avx512;
// avx512_bf16, avx512_amx: avx512 with that bfloat16 kernel, see nn_cpu_bf16_kernel).
// Idempotent. Returns NN_ERR_ARG for an unknown name, NN_ERR_CPU for a path this CPU lacks
// (the best path stays selected in both cases).
int nn_cpu_init(void);
int nn_cpu_compiled(int path);          // 1 if this build has the path's kernels
int nn_cpu_supported(int path);         // 1 if the path is compiled in and this CPU runs it
int nn_cpu_best(void);                  // the fastest supported path
int nn_cpu_get_path(void);              // the path in use
int nn_cpu_set_path(int path);          // NN_OK, NN_ERR_ARG or NN_ERR_CPU
const char *nn_cpu_path_name(int path); // "generic", "avx2", "avx512"; NULL if out of range

int nn_openmp_enabled(void);            // 1 if built with OpenMP
void nn_set_num_threads(int n);         // default thread count; n <= 0: OpenMP's own default
int nn_get_num_threads(void);           // the default actually in force (>= 1)

// Subnormal numbers: nn_fp_flush_begin() makes the calling thread flush subnormal results to
// zero and read subnormal inputs as zero (x86-64 FTZ | DAZ; elsewhere it changes nothing) and
// returns the mode it had, which nn_fp_restore(mode) puts back. nn_plan_train and
// nn_plan_forward do this themselves; a parallel region's threads always take their
// caller's mode, so results do not depend on the thread count either way.
unsigned nn_fp_flush_begin(void);
void nn_fp_restore(unsigned mode);

// ---------------------------------------------------------------------------------------------
// GEMM (gemm.c): c (m, n) = op(a) (m, k) . op(b) (k, n)  [+ c if accumulate]
//   op(a) = a (m, k) with row stride lda, or a^T where a is (k, m) (trans_a)
//   op(b) = b (k, n) with row stride ldb, or b^T where b is (n, k) (trans_b)
// Packed, cache-blocked, SIMD micro-kernels from the selected CPU path, OpenMP over blocks.
// Returns NN_OK or NN_ERR_NOMEM.

int nn_gemm_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                int n_threads);
int nn_gemm_f64(double *c, const double *a, const double *b, nn_int m, nn_int n, nn_int k,
                nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                int n_threads);

// bfloat16 products (bf16.c): c (m, n) = bf16(op(a)) . bf16(op(b)) [+ c if accumulate], the
// operands rounded to bfloat16 (to nearest, ties to even) as they are packed, their products
// summed in float32: within a k block of the packing, pairs of k steps as VDPBF16PS sums them
// (the odd step's product added first, then the even one's), then each block's sum added to
// c (AMX: its tiles' own order within a block, from c itself with accumulate). Returns NN_OK
// or NN_ERR_NOMEM.
int nn_gemm_bf16(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                 nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b, int accumulate,
                 int n_threads);
// x rounded to bfloat16 (the high 16 bits of a float32; NaN stays NaN).
uint16_t nn_bf16_round(float x);
// The bfloat16 products' kernels: VDPBF16PS (AVX512_BF16), AMX tiles (AMX-BF16, where the
// OS grants them), or float32 multiply-adds of the rounded operands on every CPU. The best
// supported one is used on the avx512 path, the emulation on the others; NNCORE_CPU=
// avx512_bf16 / avx512_amx forces one, a plain path name the emulation.
enum nn_bf16_kernel { NN_BF16_EMULATED = 0, NN_BF16_AVX512 = 1, NN_BF16_AMX = 2,
                      NN_BF16_N_KERNELS = 3 };
int nn_cpu_bf16_supported(int kernel);   // 1 if this CPU (and OS) runs it
int nn_cpu_bf16_kernel(void);            // the kernel in use
int nn_cpu_set_bf16_kernel(int kernel);  // NN_OK, NN_ERR_ARG or NN_ERR_CPU
const char *nn_bf16_kernel_name(int kernel);  // "emulated", "avx512_bf16", "amx"; or NULL

// The triple loop: ground truth and fallback. Same arguments, one thread.
void nn_gemm_naive_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                       nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                       int accumulate);
void nn_gemm_naive_f64(double *c, const double *a, const double *b, nn_int m, nn_int n,
                       nn_int k, nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                       int accumulate);

// ---------------------------------------------------------------------------------------------
// Activations (activations.c)
//   identity  y = z
//   relu      y = max(z, 0)
//   leaky     y = z if z > 0 else alpha * z
//   sigmoid   y = 1 / (1 + exp(-z))
//   tanh      y = tanh(z)
//   gelu      y = z/2 * (1 + erf(z / sqrt(2)))      (the exact form, PyTorch's default)
//   softmax   y = exp(z - max_row) / sum_row(...)     (row-wise over the last axis, stable)
//   silu      y = z * sigmoid(z)                      (swish)
//   gelu_tanh y = z/2 * (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))  (PyTorch's "tanh" form)
//   exp       y = exp(z)                              (a rate from its log: the Poisson loss)

enum nn_activation {
    NN_ACT_IDENTITY = 0,
    NN_ACT_RELU = 1,
    NN_ACT_LEAKY_RELU = 2,
    NN_ACT_SIGMOID = 3,
    NN_ACT_TANH = 4,
    NN_ACT_GELU = 5,
    NN_ACT_SOFTMAX = 6,
    NN_ACT_SILU = 7,
    NN_ACT_GELU_TANH = 8,
    NN_ACT_EXP = 9,
    NN_ACT_N = 10,
};

// 1 if the backward pass of act needs the pre-activation z; otherwise y alone suffices.
// (gelu, silu and gelu_tanh always; leaky_relu when alpha < 0, where the sign of y no longer
// gives the sign of z.)
int nn_activation_needs_z(int act, double alpha);

// x, y (rows, cols); y may alias x.
void nn_activation_forward_f32(float *y, const float *x, nn_int rows, nn_int cols, int act,
                               float alpha, int n_threads);
void nn_activation_forward_f64(double *y, const double *x, nn_int rows, nn_int cols, int act,
                               double alpha, int n_threads);

// dz = dy * act'(z), from y (and z where nn_activation_needs_z); all (rows, cols);
// z may be NULL when not needed; dz may alias dy. For softmax: dz = y * (dy - sum_row(dy * y)).
void nn_activation_backward_f32(float *dz, const float *dy, const float *y, const float *z,
                                nn_int rows, nn_int cols, int act, float alpha, int n_threads);
void nn_activation_backward_f64(double *dz, const double *dy, const double *y,
                                const double *z, nn_int rows, nn_int cols, int act,
                                double alpha, int n_threads);

// ---------------------------------------------------------------------------------------------
// Dense layer (dense.c), W of shape (in, out) so that y = act(x . W + b).

// x (n, in), w (in, out), b (out) or NULL, y (n, out), z (n, out) or NULL.
// Bias and activation are applied in the GEMM write-back; z, if given, receives x . W + b.
// Returns NN_OK or NN_ERR_NOMEM.
int nn_dense_forward_f32(float *y, float *z, const float *x, const float *w, const float *b,
                         nn_int n, nn_int in, nn_int out, int act, float alpha, int n_threads);
int nn_dense_forward_f64(double *y, double *z, const double *x, const double *w,
                         const double *b, nn_int n, nn_int in, nn_int out, int act,
                         double alpha, int n_threads);

// From dy (n, out) and the forward's x, y (and z where needed):
//   dz = dy * act'   (n, out) workspace; may alias dy
//   dw = x^T . dz    (in, out)        [+= if accumulate]
//   db = colsum(dz)  (out) or NULL    [+= if accumulate]
//   dx = dz . w^T    (n, in) or NULL (skip it for the first layer)
// Returns NN_OK or NN_ERR_NOMEM.
int nn_dense_backward_f32(float *dx, float *dw, float *db, float *dz, const float *dy,
                          const float *x, const float *w, const float *y, const float *z,
                          nn_int n, nn_int in, nn_int out, int act, float alpha, int accumulate,
                          int n_threads);
int nn_dense_backward_f64(double *dx, double *dw, double *db, double *dz, const double *dy,
                          const double *x, const double *w, const double *y, const double *z,
                          nn_int n, nn_int in, nn_int out, int act, double alpha,
                          int accumulate, int n_threads);
// The same with the products in bfloat16 (nn_gemm_bf16: operands rounded, sums in float32);
// the bias, activation and column sums in float32. float32 only: mixed_bfloat16 models.
int nn_dense_forward_bf16(float *y, float *z, const float *x, const float *w, const float *b,
                          nn_int n, nn_int in, nn_int out, int act, float alpha, int n_threads);
int nn_dense_backward_bf16(float *dx, float *dw, float *db, float *dz, const float *dy,
                           const float *x, const float *w, const float *y, const float *z,
                           nn_int n, nn_int in, nn_int out, int act, float alpha,
                           int accumulate, int n_threads);

// ---------------------------------------------------------------------------------------------
// Normalisation (norm.c). x, y (n, d); gamma, beta (d) or NULL (1 and 0). With the statistics
// of a feature (batch norm: over the n rows) or of a row (layer norm: over the d features),
// xhat = (x - mean) invstd, invstd = 1 / sqrt(var + eps), var biased, and y = gamma xhat + beta.

// torch.nn.BatchNorm1d. training: the batch's statistics (n >= 2), saved in mean, invstd (d)
// for the backward pass; running_mean and running_var (d; or both NULL) become
// (1 - momentum) running + momentum stat, with the unbiased variance. Inference (training 0):
// running_mean and running_var normalise; mean and invstd are not used. y may alias x.
// Returns NN_OK, or NN_ERR_ARG for eps <= 0, momentum outside [0, 1] or an array missing.
int nn_batchnorm_forward_f32(float *y, float *mean, float *invstd, float *running_mean,
                             float *running_var, const float *x, const float *gamma,
                             const float *beta, nn_int n, nn_int d, double eps,
                             double momentum, int training, int n_threads);
int nn_batchnorm_forward_f64(double *y, double *mean, double *invstd, double *running_mean,
                             double *running_var, const double *x, const double *gamma,
                             const double *beta, nn_int n, nn_int d, double eps,
                             double momentum, int training, int n_threads);
// From dy (n, d), the forward's x and its saved mean, invstd (d): dgamma = sum_i dy xhat,
// dbeta = sum_i dy (each NULL to skip; added to when accumulate), and dx (or NULL) =
// gamma invstd (dy - mean_i(dy) - xhat mean_i(dy xhat)). dx may alias dy.
void nn_batchnorm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *mean, const float *invstd,
                               const float *gamma, nn_int n, nn_int d, int accumulate,
                               int n_threads);
void nn_batchnorm_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                               const double *x, const double *mean, const double *invstd,
                               const double *gamma, nn_int n, nn_int d, int accumulate,
                               int n_threads);

// torch.nn.LayerNorm over the last axis: mean, invstd (n) saved when not NULL (training).
// y may alias x. Returns NN_OK, or NN_ERR_ARG for eps <= 0 or d < 1.
int nn_layernorm_forward_f32(float *y, float *mean, float *invstd, const float *x,
                             const float *gamma, const float *beta, nn_int n, nn_int d,
                             double eps, int n_threads);
int nn_layernorm_forward_f64(double *y, double *mean, double *invstd, const double *x,
                             const double *gamma, const double *beta, nn_int n, nn_int d,
                             double eps, int n_threads);
// dgamma, dbeta as for batch norm; dx = invstd (g - mean_j(g) - xhat mean_j(g xhat)) with
// g = gamma dy, from the saved mean, invstd (n). dx may alias dy.
void nn_layernorm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *mean, const float *invstd,
                               const float *gamma, nn_int n, nn_int d, int accumulate,
                               int n_threads);
void nn_layernorm_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                               const double *x, const double *mean, const double *invstd,
                               const double *gamma, nn_int n, nn_int d, int accumulate,
                               int n_threads);

// ---------------------------------------------------------------------------------------------
// Losses (losses.c): value and gradient in one pass.
// weight (n) per-sample weights >= 0, or NULL for all ones. With e_ij the element loss:
//   sum:  L = sum_i w_i sum_j e_ij
//   mean: L = sum_i w_i sum_j e_ij / (d * sum_i w_i)     (PyTorch's mean when w is NULL)
// (d = 1 for the cross-entropy, whose row is one sample's loss). The element losses of x
// (n, d) against target t (n, d), or labels (n) in [0, d) for the cross-entropy:

enum nn_loss {
    NN_LOSS_MSE = 0,            // e = (x - t)^2
    NN_LOSS_BCE_LOGITS = 1,     // e = max(x, 0) - x t + log1p(exp(-|x|)), t in [0, 1];
                                //   de/dx = sigmoid(x) - t
    NN_LOSS_CROSS_ENTROPY = 2,  // e_i = logsumexp(x_i) - (1 - s) x_i[label_i] - s mean_j x_ij
                                //   (s: label smoothing, param); de/dx = softmax(x_i) -
                                //   (1 - s) onehot(label_i) - s / d
    NN_LOSS_L1 = 3,             // e = |x - t|; de/dx = sign(x - t), 0 at 0
    NN_LOSS_HUBER = 4,          // e = (x - t)^2 / 2 if |x - t| < delta (param) else
                                //   delta (|x - t| - delta / 2); de/dx = clamp(x - t, +-delta)
    NN_LOSS_POISSON = 5,        // e = exp(x) - t x (x the log rate; torch's PoissonNLLLoss
                                //   with log_input, not full); de/dx = exp(x) - t
    NN_LOSS_N = 6,
};
enum nn_reduction { NN_REDUCE_MEAN = 0, NN_REDUCE_SUM = 1 };

// param: huber's delta (> 0, finite), the cross-entropy's label smoothing (in [0, 1]), else 0.
// grad (n, d) receives dL/dx, or is skipped when NULL; it must not overlap the inputs.
// *loss is accumulated in double for both dtypes. Returns NN_OK, NN_ERR_ARG (a bad kind or
// param, t or labels missing, or mean with sum_i w_i == 0) or NN_ERR_LABEL.
int nn_loss_f32(double *loss, float *grad, const float *x, const float *t,
                const int64_t *labels, const float *weight, nn_int n, nn_int d, int kind,
                double param, int reduction, int n_threads);
int nn_loss_f64(double *loss, double *grad, const double *x, const double *t,
                const int64_t *labels, const double *weight, nn_int n, nn_int d, int kind,
                double param, int reduction, int n_threads);

// ---------------------------------------------------------------------------------------------
// Optimizer updates (optim.c): in place, one fused pass over a flat parameter buffer.
// Hyper-parameters are double for both dtypes; derived scalars are computed in double.

// torch.optim.SGD: g = grad + weight_decay * p;
//   if momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g;
//                g = g + momentum * buf if nesterov else buf
//   p -= lr * g.        p, buf, grad (n); buf unused when momentum == 0.
void nn_sgd_update_f32(float *p, float *buf, const float *grad, nn_int n, double lr,
                       double momentum, double dampening, double weight_decay, int nesterov,
                       int first_step, int n_threads);
void nn_sgd_update_f64(double *p, double *buf, const double *grad, nn_int n, double lr,
                       double momentum, double dampening, double weight_decay, int nesterov,
                       int first_step, int n_threads);

// torch.optim.Adam (decoupled = 0: g = grad + weight_decay * p) and
// torch.optim.AdamW (decoupled = 1: p *= 1 - lr * weight_decay), then
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  vmax = max(vmax, v) if amsgrad
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)
// p, m, v, grad (n); vmax (n) only with amsgrad (else may be NULL); step t >= 1. m is updated
// as m + (1 - b1)(g - m), torch's lerp. No two of the arrays may overlap.
void nn_adam_update_f32(float *p, float *m, float *v, float *vmax, const float *grad, nn_int n,
                        double lr, double beta1, double beta2, double eps, double weight_decay,
                        int64_t step, int amsgrad, int decoupled, int n_threads);
void nn_adam_update_f64(double *p, double *m, double *v, double *vmax, const double *grad,
                        nn_int n, double lr, double beta1, double beta2, double eps,
                        double weight_decay, int64_t step, int amsgrad, int decoupled,
                        int n_threads);

// Gradient clipping before an update, in place on g (n), as torch.nn.utils does: clipvalue > 0
// clamps each element to [-clipvalue, clipvalue] (clip_grad_value_); then clipnorm > 0
// scales g by clipnorm / (||g|| + 1e-6) when that is below 1 (clip_grad_norm_: the L2 norm
// of all the gradients, summed in double in a fixed order). 0 turns either off. *norm
// receives ||g|| before the scaling (0 without clipnorm). Returns NN_OK, NN_ERR_ARG (a
// negative or non-finite setting) or NN_ERR_NOMEM.
int nn_clip_grads_f32(double *norm, float *g, nn_int n, double clipnorm, double clipvalue,
                      int n_threads);
int nn_clip_grads_f64(double *norm, double *g, nn_int n, double clipnorm, double clipvalue,
                      int n_threads);

// ---------------------------------------------------------------------------------------------
// Random numbers (rng.c) and dropout (dropout.c)
// Counter-based: element i of a call draws from (seed, offset + i) alone, so results do not
// depend on threads or on how a stream is cut into calls.

// u[i] uniform in [0, 1): the top 53 bits of nn_rng_hash(seed, offset + i), times 2^-53.
void nn_rng_uniform_f64(double *u, nn_int n, uint64_t seed, uint64_t offset);
uint64_t nn_rng_hash(uint64_t seed, uint64_t counter);

// Inverted dropout: mask[i] = (u_i >= p), y = x * mask / (1 - p); x, y, mask (n); 0 <= p < 1;
// y may alias x. The scale is computed once as (T)(1 / (1 - p)).
void nn_dropout_forward_f32(float *y, uint8_t *mask, const float *x, nn_int n, double p,
                            uint64_t seed, uint64_t offset, int n_threads);
void nn_dropout_forward_f64(double *y, uint8_t *mask, const double *x, nn_int n, double p,
                            uint64_t seed, uint64_t offset, int n_threads);
// dx = dy * mask / (1 - p); dx may alias dy.
void nn_dropout_backward_f32(float *dx, const float *dy, const uint8_t *mask, nn_int n,
                             double p, int n_threads);
void nn_dropout_backward_f64(double *dx, const double *dy, const uint8_t *mask, nn_int n,
                             double p, int n_threads);

// ---------------------------------------------------------------------------------------------
// Checks (checks.c)

// The index of the first NaN or infinity in x (n), or -1 when every value is finite.
nn_int nn_first_nonfinite_f32(const float *x, nn_int n);
nn_int nn_first_nonfinite_f64(const double *x, nn_int n);

// ---------------------------------------------------------------------------------------------
// The training plan (plan.c): a whole model's training step - forward, loss, backward,
// optimizer update - for many mini-batches in one call, with no allocation. The caller owns
// every buffer; the plan only points at them. It calls the kernels above in the same order as
// a step taken kernel by kernel, so the results are bitwise the same.

enum nn_layer_kind {
    NN_LAYER_DENSE = 0,
    NN_LAYER_DROPOUT = 1,
    NN_LAYER_ACTIVATION = 2,
    NN_LAYER_BATCHNORM = 3,  // w, b: gamma, beta; dw, db: their gradients
    NN_LAYER_LAYERNORM = 4,
    // A residual block y = x + f(x): its layers f between a begin and an end marker, each
    // with the other's index in link. Forward: the end's y = its input + the begin's input.
    // Backward: the end keeps dy in its dx (f's layers may overwrite dy); the begin's dx =
    // f's input gradient + that copy.
    NN_LAYER_RESIDUAL_BEGIN = 5,
    NN_LAYER_RESIDUAL_END = 6,
};
enum nn_optimizer { NN_OPT_SGD = 0, NN_OPT_ADAM = 1 };
enum nn_metric { NN_METRIC_ACCURACY = 0, NN_METRIC_MSE = 1, NN_METRIC_MAE = 2 };
#define NN_PLAN_MAX_METRICS 8

typedef struct {
    int kind;             // nn_layer_kind
    int act;              // dense and activation layers: nn_activation
    double alpha;         // leaky_relu slope
    double p;             // dropout rate
    nn_int in, out;       // features in and out
    void *w, *b;          // dense: w (in, out), b (out) or NULL
    void *dw, *db;        // dense: their gradients
    int link;             // residual markers: the other marker's index
    double eps, momentum; // norms: nn_batchnorm_forward's
    void *stats;          // norms in training: mean then invstd, (out) each for batch norm,
                          // (capacity) each for layer norm
    void *running_mean, *running_var;  // batch norm: (out) each
    void *y;              // (capacity, out): the output (dense, activation, norms; dropout
                          // if p > 0)
    void *z;              // (capacity, out): dense pre-activation, or NULL when not needed
    void *dx;             // (capacity, in): the input gradient, or NULL (below first_param)
    uint8_t *mask;        // dropout: (capacity, out)
    const void *x;        // the layer's input in the batch being run (set by the plan)
    int hook;             // data-parallel: the hook hears NN_HOOK_LAYER after this layer's
                          // backward pass (to start sending the gradients that are final)
    void (*tiny_fwd)(void), (*tiny_bwd)(void), (*tiny_bwd_first)(void);  // set by the plan
} nn_plan_layer;

// Data-parallel training: each rank runs the same plan over its share of every global batch,
// and the plan's hook, given by the caller, sums what the ranks computed. Its events, in order,
// in each batch that every rank runs (also a rank whose share is empty):
enum nn_plan_event {
    NN_HOOK_LAYER = 0,    // `layer`'s backward pass is done (layers with hook set, last first)
    NN_HOOK_GRADS = 1,    // the backward pass is done: sum the ranks' gradients into grads (at
                          // least over the update range) and the ranks' *loss (each the sum of
                          // its rows' share of the global mean) into *loss
    NN_HOOK_UPDATED = 2,  // the update range is updated, or put back by the NaN guard
};
typedef int (*nn_plan_hook)(void *ctx, int event, int layer, double *loss);

typedef struct {
    int n_layers;
    nn_plan_layer *layers;
    int first_param;      // backward stops at this layer (the first with parameters)
    nn_int n_features, n_outputs, capacity;  // capacity: the most rows a batch may have
    void *grad;           // (capacity, n_outputs): the loss gradient
    void *scratch;        // (capacity, n_outputs): predictions for the metrics
    int loss;             // nn_loss
    double loss_param;    // its param (nn_loss_f32)
    int prob_act;         // outputs -> predictions for mse/mae metrics (identity, sigmoid,
                          // softmax)
    int n_metrics, metrics[NN_PLAN_MAX_METRICS];
    int optimizer;        // nn_optimizer, with the hyper-parameters of nn_sgd_update or
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;  // nn_adam_update
    double clipnorm, clipvalue;  // nn_clip_grads before each update (0: off)
    // A per-step schedule (or NULL): step s takes lr = step_lr[s - step_origin] and, with
    // step_momentum, SGD's momentum or Adam's beta1 from it; s - step_origin must stay below
    // step_len (the caller fills the table for the steps a call may take).
    const double *step_lr, *step_momentum;
    int64_t step_origin, step_len;
    int nesterov, amsgrad, decoupled;
    void *params, *grads; // the flat buffers the layers' w, b, dw, db point into
    void *state1, *state2, *state3;  // SGD: momentum buffer; Adam: m, v, vmax
    nn_int n_params;
    int64_t steps;        // optimizer steps taken so far
    uint64_t dropout_seed, rng_counter;  // dropout draws (seed, rng_counter + i)
    void *backup;         // (n_params) or NULL: with it, a non-finite loss stops training and
    int backup_valid;     // puts back the parameters that gave the last finite loss
    void *state, *state_backup;  // (n_state): the layers' untrained state (batch norm's
    nn_int n_state;              // running statistics) and, with backup, its copy as the
                                 // batch of the last finite loss left it
    void *rows_x, *rows_t, *rows_w;  // (capacity, n_features), (capacity, n_outputs),
    int64_t *rows_labels;            // (capacity), (capacity): a batch's rows gathered through
                                     // nn_plan_train's perm; NULL where not needed
    int n_threads;
    int bf16;             // float32 plans: the dense layers' products in bfloat16
                          // (nn_dense_forward_bf16; a mixed_bfloat16 model)
    nn_int update_lo, update_hi;  // the parameters this plan updates, and the NaN guard keeps
    // Data-parallel training when hook is set: rank shard_rank of shard_size runs rows
    // [rows * rank / size, rows * (rank + 1) / size) of each global batch of `rows` rows, each
    // row's weight w / (d * the global batch's weight) (d: 1 for labels, else n_outputs) with
    // the loss summed, and the dropout draws of those rows; the hook sums over the ranks before
    // the update. The general kernels only (never the tiny step's), rows_w set.
    nn_plan_hook hook;
    void *hook_ctx;
    int shard_rank, shard_size;
    const void *const *peers;  // data-parallel: other ranks' gradient buffers (n_params each)
    int n_peers;               // added to grads over the update range before the update
} nn_plan;

typedef struct {  // sums over the batches run so far (zero it at the start of an epoch)
    double loss_sum, weight_sum;
    double metric_sum[NN_PLAN_MAX_METRICS];
    int64_t metric_count[NN_PLAN_MAX_METRICS];
    int64_t batches;          // batches that updated the parameters
    int64_t nonfinite_batch;  // the batch whose loss was not finite, or -1
    double last_loss;         // its loss, or (nonfinite_state) the state's bad value
    int nonfinite_state;      // 1: the loss was finite, the layer state (nn_plan.state) not
} nn_plan_stats;

// Train on batches b0 .. b1 - 1 of x (n, n_features): batch i is rows [i bs, min((i+1) bs, n)).
// Targets t (n, n_outputs) for mse/bce, or labels (n) for cross-entropy; w (n) or NULL.
// With perm (n) (NULL: rows in order), batch i is rows perm[i bs .. min((i+1) bs, n)) instead,
// the same bits as on arrays permuted beforehand; they are gathered into the plan's rows_*
// buffers (those the given arrays need must be set), and the perm entries of batches b0 .. b1 - 1
// must be in [0, n): the caller checks them. A batch whose weights sum to 0 is skipped.
// Returns NN_OK, NN_ERR_NOMEM, or NN_ERR_ARG when a non-finite loss stopped training
// (stats->nonfinite_batch says which batch) or, before any batch, when a rows_* buffer perm
// needs is NULL.
int nn_plan_train_f32(nn_plan *plan, nn_plan_stats *stats, const float *x, const float *t,
                      const int64_t *labels, const float *w, const int64_t *perm, nn_int n,
                      nn_int batch_size, nn_int b0, nn_int b1);
int nn_plan_train_f64(nn_plan *plan, nn_plan_stats *stats, const double *x, const double *t,
                      const int64_t *labels, const double *w, const int64_t *perm, nn_int n,
                      nn_int batch_size, nn_int b0, nn_int b1);

// Inference (no dropout) over x (n, n_features) in batches of capacity rows: out (n, n_outputs)
// receives the outputs when not NULL; with targets (t or labels), stats receives the summed
// loss (weights as in training) and the metric sums.
int nn_plan_forward_f32(nn_plan *plan, nn_plan_stats *stats, float *out, const float *x,
                        const float *t, const int64_t *labels, const float *w, nn_int n);
int nn_plan_forward_f64(nn_plan *plan, nn_plan_stats *stats, double *out, const double *x,
                        const double *t, const int64_t *labels, const double *w, nn_int n);

#ifdef __cplusplus
}
#endif
#endif  // NNCORE_H
