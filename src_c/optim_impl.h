// optim_impl.h - SGD and Adam/AdamW updates for T = float / double, in the order of
// operations of torch.optim's implementations (scalars derived in double, then cast to T).

#define NN_OPTIM_CHUNK 4096

void NN_T(nn_sgd_update)(T *p, T *buf, const T *grad, nn_int n, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov, int first_step,
                         int n_threads) {
    // p, buf, grad (n)
    const T lr_ = (T)lr, mom = (T)momentum, keep = (T)(1 - dampening), wd = (T)weight_decay;
    const int use_wd = weight_decay != 0, use_mom = momentum != 0;
    nn_int n_chunks = (n + NN_OPTIM_CHUNK - 1) / NN_OPTIM_CHUNK;
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int i1 = (c + 1) * NN_OPTIM_CHUNK < n ? (c + 1) * NN_OPTIM_CHUNK : n;
        for (nn_int i = c * NN_OPTIM_CHUNK; i < i1; i++) {
            T g = grad[i];
            if (use_wd) g = g + wd * p[i];
            if (use_mom) {
                T b = first_step ? g : NN_T(nn_flush)(mom * buf[i] + keep * g);
                buf[i] = b;
                g = nesterov ? g + mom * b : b;
            }
            p[i] = p[i] - lr_ * g;
        }
    });
}

void NN_T(nn_adam_update)(T *p, T *m, T *v, T *vmax, const T *grad, nn_int n, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int64_t step, int amsgrad, int decoupled, int n_threads) {
    // p, m, v, vmax, grad (n)
    const double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    const T step_size = (T)(lr / bc1), bc2_sqrt = (T)sqrt(bc2), eps_ = (T)eps;
    const T w1 = (T)(1 - beta1), b2 = (T)beta2, w2 = (T)(1 - beta2);
    const T wd = (T)weight_decay, decay = (T)(1 - lr * weight_decay);
    const int use_wd = weight_decay != 0;
    nn_int n_chunks = (n + NN_OPTIM_CHUNK - 1) / NN_OPTIM_CHUNK;
    int nt = nn_threads_for(n_threads, n, NN_PAR_MIN_ELEMS / 4);
    NN_PARALLEL_FOR(nt, c, n_chunks, {
        nn_int i1 = (c + 1) * NN_OPTIM_CHUNK < n ? (c + 1) * NN_OPTIM_CHUNK : n;
        for (nn_int i = c * NN_OPTIM_CHUNK; i < i1; i++) {
            T g = grad[i], pi = p[i];
            if (use_wd) {
                if (decoupled) pi = pi * decay;
                else g = g + wd * pi;
            }
            T mi = NN_T(nn_flush)(m[i] + w1 * (g - m[i]));  // torch's lerp: b1 m + (1 - b1) g
            T vi = NN_T(nn_flush)(v[i] * b2 + w2 * (g * g));
            m[i] = mi;
            v[i] = vi;
            if (amsgrad) {
                vi = vmax[i] > vi ? vmax[i] : vi;
                vmax[i] = vi;
            }
            T denom = NN_T(nn_sqrt)(vi) / bc2_sqrt + eps_;
            p[i] = pi - step_size * (mi / denom);
        }
    });
}
