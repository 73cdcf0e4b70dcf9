# The C API of nncore, declared once (mirrors src_c/nncore.h).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint64_t

cdef extern from "nncore.h" nogil:
    ctypedef int64_t nn_int

    enum nn_status:
        NN_OK
        NN_ERR_ARG
        NN_ERR_LABEL
        NN_ERR_NOMEM
        NN_ERR_CPU
        NN_ERR_HOOK

    enum nn_cpu_path:
        NN_CPU_GENERIC
        NN_CPU_AVX2
        NN_CPU_AVX512
        NN_CPU_N_PATHS

    int nn_cpu_init()
    int nn_cpu_compiled(int path)
    int nn_cpu_supported(int path)
    int nn_cpu_best()
    int nn_cpu_get_path()
    int nn_cpu_set_path(int path)
    const char *nn_cpu_path_name(int path)
    int nn_openmp_enabled()
    void nn_set_num_threads(int n)
    int nn_get_num_threads()
    unsigned nn_fp_flush_begin()
    void nn_fp_restore(unsigned mode)

    int nn_gemm_f32(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                    nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, int n_threads)
    int nn_gemm_f64(double *c, const double *a, const double *b, nn_int m, nn_int n,
                    nn_int k, nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                    int accumulate, int n_threads)
    int nn_gemm_bf16(float *c, const float *a, const float *b, nn_int m, nn_int n, nn_int k,
                     nn_int lda, nn_int ldb, nn_int ldc, int trans_a, int trans_b,
                     int accumulate, int n_threads)
    uint16_t nn_bf16_round(float x)
    int nn_cpu_bf16_supported(int kernel)
    int nn_cpu_bf16_kernel()
    int nn_cpu_set_bf16_kernel(int kernel)
    const char *nn_bf16_kernel_name(int kernel)
    void nn_gemm_naive_f32(float *c, const float *a, const float *b, nn_int m, nn_int n,
                           nn_int k, nn_int lda, nn_int ldb, nn_int ldc, int trans_a,
                           int trans_b, int accumulate)
    void nn_gemm_naive_f64(double *c, const double *a, const double *b, nn_int m, nn_int n,
                           nn_int k, nn_int lda, nn_int ldb, nn_int ldc, int trans_a,
                           int trans_b, int accumulate)

    enum nn_activation:
        NN_ACT_IDENTITY
        NN_ACT_RELU
        NN_ACT_LEAKY_RELU
        NN_ACT_SIGMOID
        NN_ACT_TANH
        NN_ACT_GELU
        NN_ACT_SOFTMAX
        NN_ACT_SILU
        NN_ACT_GELU_TANH
        NN_ACT_EXP
        NN_ACT_N

    int nn_activation_needs_z(int act, double alpha)
    void nn_activation_forward_f32(float *y, const float *x, nn_int rows, nn_int cols, int act,
                                   float alpha, int n_threads)
    void nn_activation_forward_f64(double *y, const double *x, nn_int rows, nn_int cols,
                                   int act, double alpha, int n_threads)
    void nn_activation_backward_f32(float *dz, const float *dy, const float *y, const float *z,
                                    nn_int rows, nn_int cols, int act, float alpha,
                                    int n_threads)
    void nn_activation_backward_f64(double *dz, const double *dy, const double *y,
                                    const double *z, nn_int rows, nn_int cols, int act,
                                    double alpha, int n_threads)

    int nn_dense_forward_f32(float *y, float *z, const float *x, const float *w,
                             const float *b, nn_int n, nn_int in_, nn_int out, int act,
                             float alpha, int n_threads)
    int nn_dense_forward_f64(double *y, double *z, const double *x, const double *w,
                             const double *b, nn_int n, nn_int in_, nn_int out, int act,
                             double alpha, int n_threads)
    int nn_dense_backward_f32(float *dx, float *dw, float *db, float *dz, const float *dy,
                              const float *x, const float *w, const float *y, const float *z,
                              nn_int n, nn_int in_, nn_int out, int act, float alpha,
                              int accumulate, int n_threads)
    int nn_dense_backward_f64(double *dx, double *dw, double *db, double *dz,
                              const double *dy, const double *x, const double *w,
                              const double *y, const double *z, nn_int n, nn_int in_,
                              nn_int out, int act, double alpha, int accumulate,
                              int n_threads)
    int nn_dense_forward_bf16(float *y, float *z, const float *x, const float *w,
                              const float *b, nn_int n, nn_int in_, nn_int out, int act,
                              float alpha, int n_threads)
    int nn_dense_backward_bf16(float *dx, float *dw, float *db, float *dz, const float *dy,
                               const float *x, const float *w, const float *y, const float *z,
                               nn_int n, nn_int in_, nn_int out, int act, float alpha,
                               int accumulate, int n_threads)

    enum nn_reduction:
        NN_REDUCE_MEAN
        NN_REDUCE_SUM

    int nn_batchnorm_forward_f32(float *y, float *mean, float *invstd, float *running_mean,
                                 float *running_var, const float *x, const float *gamma,
                                 const float *beta, nn_int n, nn_int d, double eps,
                                 double momentum, int training, int n_threads)
    int nn_batchnorm_forward_f64(double *y, double *mean, double *invstd,
                                 double *running_mean, double *running_var, const double *x,
                                 const double *gamma, const double *beta, nn_int n, nn_int d,
                                 double eps, double momentum, int training, int n_threads)
    void nn_batchnorm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                                   const float *x, const float *mean, const float *invstd,
                                   const float *gamma, nn_int n, nn_int d, int accumulate,
                                   int n_threads)
    void nn_batchnorm_backward_f64(double *dx, double *dgamma, double *dbeta,
                                   const double *dy, const double *x, const double *mean,
                                   const double *invstd, const double *gamma, nn_int n,
                                   nn_int d, int accumulate, int n_threads)
    int nn_layernorm_forward_f32(float *y, float *mean, float *invstd, const float *x,
                                 const float *gamma, const float *beta, nn_int n, nn_int d,
                                 double eps, int n_threads)
    int nn_layernorm_forward_f64(double *y, double *mean, double *invstd, const double *x,
                                 const double *gamma, const double *beta, nn_int n, nn_int d,
                                 double eps, int n_threads)
    void nn_layernorm_backward_f32(float *dx, float *dgamma, float *dbeta, const float *dy,
                                   const float *x, const float *mean, const float *invstd,
                                   const float *gamma, nn_int n, nn_int d, int accumulate,
                                   int n_threads)
    void nn_layernorm_backward_f64(double *dx, double *dgamma, double *dbeta,
                                   const double *dy, const double *x, const double *mean,
                                   const double *invstd, const double *gamma, nn_int n,
                                   nn_int d, int accumulate, int n_threads)

    enum nn_loss:
        NN_LOSS_MSE
        NN_LOSS_BCE_LOGITS
        NN_LOSS_CROSS_ENTROPY
        NN_LOSS_L1
        NN_LOSS_HUBER
        NN_LOSS_POISSON
        NN_LOSS_N
    int nn_loss_f32(double *loss, float *grad, const float *x, const float *t,
                    const int64_t *labels, const float *weight, nn_int n, nn_int d, int kind,
                    double param, int reduction, int n_threads)
    int nn_loss_f64(double *loss, double *grad, const double *x, const double *t,
                    const int64_t *labels, const double *weight, nn_int n, nn_int d, int kind,
                    double param, int reduction, int n_threads)

    int nn_clip_grads_f32(double *norm, float *g, nn_int n, double clipnorm, double clipvalue,
                          int n_threads)
    int nn_clip_grads_f64(double *norm, double *g, nn_int n, double clipnorm,
                          double clipvalue, int n_threads)
    void nn_sgd_update_f32(float *p, float *buf, const float *grad, nn_int n, double lr,
                           double momentum, double dampening, double weight_decay,
                           int nesterov, int first_step, int n_threads)
    void nn_sgd_update_f64(double *p, double *buf, const double *grad, nn_int n, double lr,
                           double momentum, double dampening, double weight_decay,
                           int nesterov, int first_step, int n_threads)
    void nn_adam_update_f32(float *p, float *m, float *v, float *vmax, const float *grad,
                            nn_int n, double lr, double beta1, double beta2, double eps,
                            double weight_decay, int64_t step, int amsgrad, int decoupled,
                            int n_threads)
    void nn_adam_update_f64(double *p, double *m, double *v, double *vmax,
                            const double *grad, nn_int n, double lr, double beta1,
                            double beta2, double eps, double weight_decay, int64_t step,
                            int amsgrad, int decoupled, int n_threads)

    void nn_rng_uniform_f64(double *u, nn_int n, uint64_t seed, uint64_t offset)
    uint64_t nn_rng_hash(uint64_t seed, uint64_t counter)
    void nn_dropout_forward_f32(float *y, uint8_t *mask, const float *x, nn_int n, double p,
                                uint64_t seed, uint64_t offset, int n_threads)
    void nn_dropout_forward_f64(double *y, uint8_t *mask, const double *x, nn_int n,
                                double p, uint64_t seed, uint64_t offset, int n_threads)
    void nn_dropout_backward_f32(float *dx, const float *dy, const uint8_t *mask, nn_int n,
                                 double p, int n_threads)
    void nn_dropout_backward_f64(double *dx, const double *dy, const uint8_t *mask,
                                 nn_int n, double p, int n_threads)

    enum nn_layer_kind:
        NN_LAYER_DENSE
        NN_LAYER_DROPOUT
        NN_LAYER_ACTIVATION
        NN_LAYER_BATCHNORM
        NN_LAYER_LAYERNORM
        NN_LAYER_RESIDUAL_BEGIN
        NN_LAYER_RESIDUAL_END
    enum nn_optimizer:
        NN_OPT_SGD
        NN_OPT_ADAM
    enum nn_metric:
        NN_METRIC_ACCURACY
        NN_METRIC_MSE
        NN_METRIC_MAE
    enum:
        NN_PLAN_MAX_METRICS

    ctypedef struct nn_plan_layer:
        int kind
        int act
        double alpha
        double p
        nn_int in_ "in"
        nn_int out
        void *w
        void *b
        void *dw
        void *db
        int link
        double eps, momentum
        void *stats
        void *running_mean
        void *running_var
        void *y
        void *z
        void *dx
        uint8_t *mask
        const void *x
        int hook

    enum:
        NN_HOOK_LAYER
        NN_HOOK_GRADS
        NN_HOOK_UPDATED
    ctypedef int (*nn_plan_hook)(void *ctx, int event, int layer, double *loss) noexcept nogil

    ctypedef struct nn_plan:
        int n_layers
        nn_plan_layer *layers
        int first_param
        nn_int n_features, n_outputs, capacity
        void *grad
        void *scratch
        int loss
        double loss_param
        int prob_act
        int n_metrics
        int metrics[8]
        int optimizer
        double lr, momentum, dampening, weight_decay, beta1, beta2, eps
        double clipnorm, clipvalue
        const double *step_lr
        const double *step_momentum
        int64_t step_origin, step_len
        int nesterov, amsgrad, decoupled
        void *params
        void *grads
        void *state1
        void *state2
        void *state3
        nn_int n_params
        int64_t steps
        uint64_t dropout_seed, rng_counter
        void *backup
        int backup_valid
        void *state
        void *state_backup
        nn_int n_state
        void *rows_x
        void *rows_t
        void *rows_w
        int64_t *rows_labels
        int n_threads
        int bf16
        nn_int update_lo, update_hi
        nn_plan_hook hook
        void *hook_ctx
        int shard_rank, shard_size
        const void *const *peers
        int n_peers

    ctypedef struct nn_plan_stats:
        double loss_sum, weight_sum
        double metric_sum[8]
        int64_t metric_count[8]
        int64_t batches
        int64_t nonfinite_batch
        double last_loss
        int nonfinite_state

    nn_int nn_first_nonfinite_f32(const float *x, nn_int n)
    nn_int nn_first_nonfinite_f64(const double *x, nn_int n)

    int nn_plan_train_f32(nn_plan *plan, nn_plan_stats *stats, const float *x, const float *t,
                          const int64_t *labels, const float *w, const int64_t *perm,
                          nn_int n, nn_int batch_size, nn_int b0, nn_int b1)
    int nn_plan_train_f64(nn_plan *plan, nn_plan_stats *stats, const double *x,
                          const double *t, const int64_t *labels, const double *w,
                          const int64_t *perm, nn_int n, nn_int batch_size, nn_int b0,
                          nn_int b1)
    int nn_plan_forward_f32(nn_plan *plan, nn_plan_stats *stats, float *out, const float *x,
                            const float *t, const int64_t *labels, const float *w, nn_int n)
    int nn_plan_forward_f64(nn_plan *plan, nn_plan_stats *stats, double *out,
                            const double *x, const double *t, const int64_t *labels,
                            const double *w, nn_int n)
