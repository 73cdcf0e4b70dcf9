"""Pure-NumPy twins of every compiled kernel: readable, slow, and the ground truth the tests
compare against. Each function mirrors one wrapper of nncore._core (same arguments, same
results up to rounding) and documents the math.
"""

import math

import numpy as np

# ---- GEMM -----------------------------------------------------------------------------------


def gemm(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False):
    """out = op(a) @ op(b) (+ out), op(x) = x.T when trans_x."""
    c = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if accumulate:
        c = out + c
    return c


def bf16_round(x):
    """float32 x rounded to bfloat16 with integer operations: the high 16 bits of
    x + 0x7FFF + (bit 16 of x), nearest with ties to even (NaN stays a quiet NaN). Returns
    the uint16 bit patterns."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)


def bf16_value(bits):
    """The float32 values of bfloat16 bit patterns (uint16)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def gemm_bf16(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False):
    """out = bf16(op(a)) @ bf16(op(b)) (+ out), summed here in float64: the compiled kernels
    sum in float32, so they agree within gemm_bf16_bound."""
    a = bf16_value(bf16_round(a.T if trans_a else a)).astype(np.float64)
    b = bf16_value(bf16_round(b.T if trans_b else b)).astype(np.float64)
    c = a @ b
    if accumulate:
        c = out + c
    return c


def gemm_bf16_bound(a, b, *, trans_a=False, trans_b=False):
    """How far a float32 sum of the bf16 products may be from gemm_bf16's: each of the k
    products is exact in float32 (8-bit by 8-bit significands); the sum rounds at most k + 1
    times (a block's sum is added to c), each by at most 2^-24 of a partial sum, itself at
    most sum_p |a_ip b_pj|."""
    a = np.abs(bf16_value(bf16_round(a.T if trans_a else a)).astype(np.float64))
    b = np.abs(bf16_value(bf16_round(b.T if trans_b else b)).astype(np.float64))
    return (a.shape[1] + 1) * 2.0 ** -24 * (a @ b)


# ---- activations ----------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function, element-wise (math.erf; NumPy has none)."""
    return _erf(x).astype(x.dtype)


_GELU_BETA = math.sqrt(2 / math.pi)


def activation_forward(x, activation, alpha=0.01):
    """y = act(x); softmax is taken along the last axis."""
    if activation in ("identity", "linear", None):
        return x.copy()
    if activation == "relu":
        return np.where(x < 0, 0, x).astype(x.dtype)
    if activation == "leaky_relu":
        return np.where(x > 0, x, alpha * x).astype(x.dtype)
    if activation == "sigmoid":  # never exp of a large positive number
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
    if activation == "tanh":
        return np.tanh(x)
    if activation == "gelu":  # exact: x * Phi(x)
        return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(x.dtype)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if activation == "silu":  # x * sigmoid(x)
        return x * activation_forward(x, "sigmoid")
    if activation == "exp":
        return np.exp(x)
    if activation == "gelu_tanh":  # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        return (0.5 * x * (1 + np.tanh(_GELU_BETA * (x + 0.044715 * x ** 3)))).astype(x.dtype)
    raise ValueError(f"unknown activation {activation!r}")


def activation_backward(dy, y, z=None, activation="identity", alpha=0.01):
    """dz = dy * act'(z), written with the forward output y where that suffices."""
    if activation in ("identity", "linear", None):
        return dy.copy()
    if activation == "relu":
        return np.where(y > 0, dy, 0).astype(dy.dtype)
    if activation == "leaky_relu":
        pos = (z > 0) if alpha < 0 else (y > 0)
        return np.where(pos, dy, alpha * dy).astype(dy.dtype)
    if activation == "sigmoid":
        return dy * y * (1 - y)
    if activation == "tanh":
        return dy * (1 - y * y)
    if activation == "gelu":  # Phi(z) + z phi(z)
        cdf = 0.5 * (1 + erf(z / np.sqrt(2)))
        pdf = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        return (dy * (cdf + z * pdf)).astype(dy.dtype)
    if activation == "softmax":  # y * (dy - <dy, y>) per row
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    if activation == "exp":
        return dy * y
    if activation == "silu":  # s (1 + z (1 - s)), s = sigmoid(z)
        s = activation_forward(z, "sigmoid")
        return dy * (s * (1 + z * (1 - s)))
    if activation == "gelu_tanh":  # product rule on z/2 and 1 + tanh(u(z))
        th = np.tanh(_GELU_BETA * (z + 0.044715 * z ** 3))
        d = 0.5 * (1 + th) + 0.5 * z * (1 - th * th) * _GELU_BETA * (1 + 3 * 0.044715 * z * z)
        return (dy * d).astype(dy.dtype)
    raise ValueError(f"unknown activation {activation!r}")


# ---- dense layer ----------------------------------------------------------------------------


def dense_forward(x, w, b=None, activation="identity", alpha=0.01):
    """y = act(x @ w + b), w of shape (in, out). Returns (y, z) with z the pre-activation."""
    z = x @ w
    if b is not None:
        z = z + b
    return activation_forward(z, activation, alpha), z


def dense_backward(dy, x, w, y, z=None, activation="identity", alpha=0.01):
    """Returns (dx, dw, db): dz = dy * act', dw = x.T @ dz, db = sum of dz over rows,
    dx = dz @ w.T."""
    dz = activation_backward(dy, y, z, activation, alpha)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


# ---- normalisation --------------------------------------------------------------------------


def norm_forward(kind, x, gamma=None, beta=None, *, running_mean=None, running_var=None,
                 eps=1e-5, momentum=0.1, training=True):
    """Batch norm (statistics of each column over the rows) or layer norm (of each row over
    the columns): xhat = (x - mean) / sqrt(var + eps), var biased; y = gamma xhat + beta.
    Returns (y, mean, invstd, running_mean, running_var): batch norm's running statistics
    become (1 - momentum) running + momentum stat (the unbiased variance) in training."""
    axis = 0 if kind == "batch" else 1
    if kind == "batch" and not training:
        mean, var = running_mean, running_var
    else:
        mean = x.mean(axis=axis)
        var = ((x - np.expand_dims(mean, axis)) ** 2).mean(axis=axis)
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - np.expand_dims(mean, axis)) * np.expand_dims(invstd, axis)
    y = xhat * (1 if gamma is None else gamma) + (0 if beta is None else beta)
    if kind == "batch" and training and running_mean is not None:
        n = x.shape[0]
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return y, mean, invstd, running_mean, running_var


def norm_backward(kind, dy, x, mean, invstd, gamma=None):
    """Returns (dx, dgamma, dbeta) of norm_forward in training: dgamma = sum_rows dy xhat,
    dbeta = sum_rows dy; dx = invstd (g - mean(g) - xhat mean(g xhat)), g = gamma dy, the
    means over the axis the statistics were taken on."""
    axis = 0 if kind == "batch" else 1
    xhat = (x - np.expand_dims(mean, axis)) * np.expand_dims(invstd, axis)
    g = dy * (1 if gamma is None else gamma)
    dx = np.expand_dims(invstd, axis) * (g - g.mean(axis=axis, keepdims=True)
                                         - xhat * (g * xhat).mean(axis=axis, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


# ---- losses, optimizers, random numbers, dropout --------------------------------------------


def _reduce(elem, weight, reduction, per_row):
    """sum_i w_i sum_j e_ij, divided by (per_row * sum_i w_i) for the mean."""
    w = np.ones(elem.shape[0]) if weight is None else weight.astype(np.float64)
    total = float(np.sum(w * elem.reshape(elem.shape[0], -1).sum(axis=1)))
    norm = per_row * w.sum() if reduction == "mean" else 1.0
    return total / norm, w / norm


def mse_loss(pred, target, weight=None, reduction="mean"):
    """e = (pred - target)^2. Returns (loss, dL/dpred)."""
    diff = pred - target
    loss, scale = _reduce(diff.astype(np.float64) ** 2, weight, reduction, pred.shape[1])
    return loss, (2 * diff * scale[:, None]).astype(pred.dtype)


def l1_loss(pred, target, weight=None, reduction="mean"):
    """e = |pred - target|; de/dpred = sign(pred - target), 0 where equal."""
    diff = pred - target
    loss, scale = _reduce(np.abs(diff.astype(np.float64)), weight, reduction, pred.shape[1])
    return loss, (np.sign(diff) * scale[:, None]).astype(pred.dtype)


def huber_loss(pred, target, weight=None, reduction="mean", *, delta=1.0):
    """e = r^2 / 2 where |r| < delta, else delta (|r| - delta / 2); de/dr = clip(r, +-delta)."""
    r = (pred - target).astype(np.float64)
    a = np.abs(r)
    elem = np.where(a < delta, 0.5 * r * r, delta * (a - 0.5 * delta))
    loss, scale = _reduce(elem, weight, reduction, pred.shape[1])
    return loss, (np.clip(r, -delta, delta) * scale[:, None]).astype(pred.dtype)


def poisson_nll_loss(log_rate, target, weight=None, reduction="mean"):
    """e = exp(x) - t x (x the log rate, log(t!) left out); de/dx = exp(x) - t."""
    x = log_rate.astype(np.float64)
    e = np.exp(x)
    loss, scale = _reduce(e - target * x, weight, reduction, log_rate.shape[1])
    return loss, ((e - target) * scale[:, None]).astype(log_rate.dtype)


def bce_with_logits_loss(logits, target, weight=None, reduction="mean"):
    """e = max(x, 0) - x t + log(1 + exp(-|x|)); de/dx = sigmoid(x) - t."""
    x = logits.astype(np.float64)
    elem = np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))
    loss, scale = _reduce(elem, weight, reduction, logits.shape[1])
    sig = activation_forward(x, "sigmoid")
    return loss, ((sig - target) * scale[:, None]).astype(logits.dtype)


def cross_entropy_loss(logits, labels, weight=None, reduction="mean", *, label_smoothing=0.0):
    """With the smoothed target q = (1 - s) onehot(label_i) + s / c:
    e_i = logsumexp(x_i) - sum_j q_j x_ij; de/dx = softmax(x_i) - q."""
    x = logits.astype(np.float64)
    mx = x.max(axis=1, keepdims=True)
    lse = mx + np.log(np.exp(x - mx).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    q = np.full(x.shape, label_smoothing / x.shape[1])
    q[rows, labels] += 1 - label_smoothing
    loss, scale = _reduce(lse[:, 0] - (q * x).sum(axis=1), weight, reduction, 1)
    grad = np.exp(x - lse) - q
    return loss, (grad * scale[:, None]).astype(logits.dtype)


def _flush(x):
    """x with its subnormal values set to 0: optimizer state that decays geometrically would
    otherwise sit in the subnormals, each multiply on the CPU's slow path."""
    return np.where(np.abs(x) < np.finfo(x.dtype).tiny, np.zeros((), x.dtype), x)


def clip_grads(g, clipnorm=0.0, clipvalue=0.0):
    """torch.nn.utils.clip_grad_value_ (clipvalue > 0), then clip_grad_norm_ (clipnorm > 0:
    g * clipnorm / (||g|| + 1e-6) when that factor is below 1). Returns (g, ||g||)."""
    if clipvalue:
        g = np.clip(g, -clipvalue, clipvalue)
    norm = float(np.sqrt(np.sum(g.astype(np.float64) ** 2))) if clipnorm else 0.0
    if clipnorm and clipnorm / (norm + 1e-6) < 1:
        g = g * g.dtype.type(clipnorm / (norm + 1e-6))
    return g, norm


def sgd_update(p, grad, buf=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, first_step=True):
    """torch.optim.SGD, one step. Returns the new (p, buf); the inputs are not changed."""
    g = grad + weight_decay * p if weight_decay else grad
    if momentum:
        buf = g.copy() if first_step else _flush(momentum * buf + (1 - dampening) * g)
        g = g + momentum * buf if nesterov else buf
    return p - lr * g, buf


def adam_update(p, grad, m, v, vmax=None, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.0, step, amsgrad=False, decoupled=False):
    """torch.optim.Adam (AdamW when decoupled), one step. Returns the new (p, m, v, vmax)."""
    b1, b2 = betas
    g = grad
    if weight_decay:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = _flush(b1 * m + (1 - b1) * g)
    v = _flush(b2 * v + (1 - b2) * g * g)
    vhat = v
    if amsgrad:
        vmax = np.maximum(vmax, v)
        vhat = vmax
    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
    p = p - (lr / bc1) * m / (np.sqrt(vhat) / np.sqrt(bc2) + eps)
    return p, m, v, vmax


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), \
    np.uint64(0x9E3779B97F4A7C15)


def _mix(z):
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def rng_hash(seed, counter):
    """mix(mix(seed + golden) ^ counter), element-wise over counter."""
    with np.errstate(over="ignore"):
        key = _mix(np.asarray(seed, dtype=np.uint64) + _GOLDEN)
    return _mix(key ^ np.asarray(counter, dtype=np.uint64))


def rng_uniform(n, seed, offset=0):
    """Values offset .. offset + n - 1 of stream seed, uniform in [0, 1)."""
    h = rng_hash(seed, np.arange(n, dtype=np.uint64) + np.uint64(offset))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def dropout_forward(x, p, seed, offset=0):
    """Inverted dropout: keep where u >= p, scale by 1 / (1 - p). Returns (y, mask)."""
    mask = (rng_uniform(x.size, seed, offset) >= p).reshape(x.shape)
    scale = x.dtype.type(1 / (1 - p))
    return x * np.where(mask, scale, x.dtype.type(0)), mask.astype(np.uint8)


def dropout_backward(dy, mask, p):
    scale = dy.dtype.type(1 / (1 - p))
    return dy * np.where(mask.astype(bool), scale, dy.dtype.type(0))
