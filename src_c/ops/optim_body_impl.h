// optim_body_impl.h - the per-element SGD and Adam/AdamW updates for T = float / double, and
// the scalars they take: included by optim_impl.h (the update kernels, one variant per CPU
// path) and plan_impl.h (the plan's fused step for tiny networks), so both do the same
// arithmetic by construction. Every operation is exactly rounded (no contraction), so any
// vector width gives the same bits. No include guard: it is included once per dtype.

struct NN_T(sgd_args) {
    T *p, *buf;
    const T *grad;
    T lr, mom, keep, wd;
    int use_wd, use_mom, nesterov, first_step;
};

// The arguments of one nn_sgd_update call (the hyper-parameters cast to T once).
NN_INLINE struct NN_T(sgd_args) NN_T(sgd_args_make)(T *p, T *buf, const T *grad, double lr,
                                                    double momentum, double dampening,
                                                    double weight_decay, int nesterov,
                                                    int first_step) {
    struct NN_T(sgd_args) a = {p, buf, grad, (T)lr, (T)momentum, (T)(1 - dampening),
                               (T)weight_decay, weight_decay != 0, momentum != 0, nesterov,
                               first_step};
    return a;
}

// One element of the SGD update: returns the new p from p and its gradient g; buf[i] is its
// momentum buffer element (read and written only with momentum).
NN_INLINE T NN_T(sgd_one)(T p, T g, T *buf, nn_int i, T lr, T mom, T keep, T wd, int use_wd,
                          int use_mom, int nesterov, int first) {
    if (use_wd) g = g + wd * p;
    if (use_mom) {
        T b = first ? g : NN_T(nn_flush)(mom * buf[i] + keep * g);
        buf[i] = b;
        g = nesterov ? g + mom * b : b;
    }
    return p - lr * g;
}

// Elements [i0, i0 + n) with their gradients at grad[0 .. n): a->grad + i0, or a row of a
// gradient tile held elsewhere (see nn_update).
NN_INLINE void NN_T(sgd_span)(const struct NN_T(sgd_args) *a, nn_int i0, nn_int n,
                              const T *NN_RESTRICT grad) {
    T *NN_RESTRICT p = a->p + i0, *NN_RESTRICT buf = a->use_mom ? a->buf + i0 : NULL;
    const T lr = a->lr, mom = a->mom, keep = a->keep, wd = a->wd;
    const int use_wd = a->use_wd, use_mom = a->use_mom, nesterov = a->nesterov;
    const int first = a->first_step;
    for (nn_int i = 0; i < n; i++)
        p[i] = NN_T(sgd_one)(p[i], grad[i], buf, i, lr, mom, keep, wd, use_wd, use_mom,
                             nesterov, first);
}

NN_INLINE void NN_T(sgd_body)(const struct NN_T(sgd_args) *a, nn_int i0, nn_int i1) {
    NN_T(sgd_span)(a, i0, i1 - i0, a->grad + i0);
}

struct NN_T(adam_args) {
    T *p, *m, *v, *vmax;
    const T *grad;
    T step_size, bc2_sqrt, eps, w1, b2, w2, wd, decay, g_min;
    int use_wd, decoupled, amsgrad;
};

// The arguments of one nn_adam_update call at step t >= 1 (scalars derived in double).
// Below g_min, (1 - beta2) g^2 is subnormal: it is taken as 0. It could not change a
// normal v, and forming it costs a microcode assist per element.
static inline struct NN_T(adam_args) NN_T(adam_args_make)(T *p, T *m, T *v, T *vmax,
                                                          const T *grad, double lr,
                                                          double beta1, double beta2,
                                                          double eps, double weight_decay,
                                                          int64_t step, int amsgrad,
                                                          int decoupled) {
    const double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    struct NN_T(adam_args) a = {p, m, v, vmax, grad, (T)(lr / bc1), (T)sqrt(bc2), (T)eps,
                                (T)(1 - beta1), (T)beta2, (T)(1 - beta2), (T)weight_decay,
                                (T)(1 - lr * weight_decay),
                                (T)sqrt(NN_T(nn_min_normal) / (1 - beta2)),
                                weight_decay != 0, decoupled, amsgrad};
    return a;
}

// wd_mode: 0 no weight decay, 1 L2 (Adam), 2 decoupled (AdamW). The flags are constants in
// each call below, so every loop is straight-line code the compiler vectorises.
// Elements [i0, i0 + n), gradients at grad[0 .. n) (as sgd_span).
NN_INLINE void NN_T(adam_loop)(const struct NN_T(adam_args) *a, nn_int i0, nn_int n,
                               const T *NN_RESTRICT grad, const int amsgrad,
                               const int wd_mode) {
    T *NN_RESTRICT p = a->p + i0, *NN_RESTRICT m = a->m + i0, *NN_RESTRICT v = a->v + i0;
    T *NN_RESTRICT vmax = amsgrad ? a->vmax + i0 : NULL;
    const T step_size = a->step_size, bc2_sqrt = a->bc2_sqrt, eps = a->eps, w1 = a->w1;
    const T b2 = a->b2, w2 = a->w2, wd = a->wd, decay = a->decay, g_min = a->g_min;
    const int l2 = wd_mode == 1, decoupled = wd_mode == 2;
    for (nn_int i = 0; i < n; i++) {
        T g = grad[i], pi = p[i];
        pi = decoupled ? pi * decay : pi;
        g = l2 ? g + wd * pi : g;
        T mi = NN_T(nn_flush)(m[i] + w1 * (g - m[i]));  // torch's lerp: b1 m + (1 - b1) g
        T gv = g * (NN_T(nn_fabs)(g) < g_min ? (T)0 : (T)1);  // a product, not a select: a
        // compiler may turn a select after the square into a square of every lane
        T vi = NN_T(nn_flush)(v[i] * b2 + w2 * (gv * gv));
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            vi = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = vi;
        }
        T denom = NN_T(nn_sqrt)(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

NN_INLINE void NN_T(adam_span)(const struct NN_T(adam_args) *a, nn_int i0, nn_int n,
                               const T *grad) {
    int mode = a->use_wd ? (a->decoupled ? 2 : 1) : 0;
    if (a->amsgrad) {
        if (mode == 0) NN_T(adam_loop)(a, i0, n, grad, 1, 0);
        else if (mode == 1) NN_T(adam_loop)(a, i0, n, grad, 1, 1);
        else NN_T(adam_loop)(a, i0, n, grad, 1, 2);
    } else {
        if (mode == 0) NN_T(adam_loop)(a, i0, n, grad, 0, 0);
        else if (mode == 1) NN_T(adam_loop)(a, i0, n, grad, 0, 1);
        else NN_T(adam_loop)(a, i0, n, grad, 0, 2);
    }
}

NN_INLINE void NN_T(adam_body)(const struct NN_T(adam_args) *a, nn_int i0, nn_int i1) {
    NN_T(adam_span)(a, i0, i1 - i0, a->grad + i0);
}
