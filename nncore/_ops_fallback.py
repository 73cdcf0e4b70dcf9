"""TEMPORARY: NumPy stand-ins for the ops wrappers of nncore._core (branch `ops`), with their
signatures, used only until that branch is merged. Deleted at the merge."""

import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _check(*arrays):
    dt = arrays[0].dtype
    for a in arrays:
        if a is not None and (a.dtype != dt or not a.flags.c_contiguous):
            raise TypeError("fallback: arrays must be C-contiguous, one float dtype")


def _reduce(e, weight, reduction, d):
    per = e.sum(axis=1)
    if weight is None:
        return per.sum() / (e.size if reduction == "mean" else 1), None
    s = (weight.astype(np.float64) * per).sum()
    ws = weight.astype(np.float64).sum()
    if reduction == "mean":
        if ws == 0:
            raise ValueError("mean with zero total weight")
        return s / (d * ws), ws
    return s, ws


def _scale(weight, reduction, n, d):
    if weight is None:
        return 1.0 / (n * d) if reduction == "mean" else 1.0
    w = weight.astype(np.float64)[:, None]
    return w / (d * w.sum()) if reduction == "mean" else w


def _finish(grad, g, need_grad):
    if not need_grad:
        return None
    if grad is None:
        return g
    grad[...] = g
    return grad


def mse_loss(pred, target, weight=None, reduction="mean", *, grad=None, need_grad=True,
             n_threads=None):
    _check(pred, target, weight)
    p, t = pred.astype(np.float64), target.astype(np.float64)
    n, d = p.shape
    loss, _ = _reduce((p - t) ** 2, weight, reduction, d)
    g = (2 * (p - t) * _scale(weight, reduction, n, d)).astype(pred.dtype)
    return float(loss), _finish(grad, g, need_grad)


def bce_with_logits_loss(logits, target, weight=None, reduction="mean", *, grad=None,
                         need_grad=True, n_threads=None):
    _check(logits, target, weight)
    x, t = logits.astype(np.float64), target.astype(np.float64)
    n, d = x.shape
    e = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    loss, _ = _reduce(e, weight, reduction, d)
    s = 1 / (1 + np.exp(-x))
    g = ((s - t) * _scale(weight, reduction, n, d)).astype(logits.dtype)
    return float(loss), _finish(grad, g, need_grad)


def cross_entropy_loss(logits, labels, weight=None, reduction="mean", *, grad=None,
                       need_grad=True, n_threads=None):
    _check(logits, weight)
    x = logits.astype(np.float64)
    n, c = x.shape
    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError("cross_entropy_loss: a label is outside [0, n_classes)")
    mx = x.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(x - mx).sum(axis=1))
    e = (lse - x[np.arange(n), labels])[:, None]
    loss, _ = _reduce(e, weight, reduction, 1)
    sm = np.exp(x - lse[:, None])
    sm[np.arange(n), labels] -= 1
    g = (sm * _scale(weight, reduction, n, 1)).astype(logits.dtype)
    return float(loss), _finish(grad, g, need_grad)


def sgd_update(p, grad, buf=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False, first_step=True, n_threads=None):
    _check(p, grad, buf)
    g = grad.astype(np.float64) + weight_decay * p
    if momentum:
        if first_step:
            buf[...] = g
        else:
            buf[...] = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf.astype(np.float64)
    p[...] = p - lr * g


def adam_update(p, grad, m, v, vmax=None, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.0, step, amsgrad=False, decoupled=False, n_threads=None):
    _check(p, grad, m, v, vmax)
    b1, b2 = betas
    g = grad.astype(np.float64)
    if decoupled:
        p[...] = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g * g
    vv = v
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        vv = vmax
    bc1 = 1 - b1 ** step
    bc2 = 1 - b2 ** step
    p[...] = p - (lr / bc1) * m / (np.sqrt(vv.astype(np.float64)) / np.sqrt(bc2) + eps)


def rng_hash(seed, counter):
    z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.asarray(counter, np.uint64))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def rng_uniform(n, seed, offset=0):
    with np.errstate(over="ignore"):
        h = rng_hash(seed, np.arange(n, dtype=np.uint64) + np.uint64(offset))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def dropout_forward(x, p, seed, offset=0, *, out=None, mask=None, n_threads=None):
    _check(x)
    u = rng_uniform(x.size, seed, offset).reshape(x.shape)
    mk = (u >= p).astype(np.uint8)
    y = (x * mk / (1 - p)).astype(x.dtype)
    if out is not None:
        out[...] = y
        y = out
    if mask is not None:
        mask[...] = mk
        mk = mask
    return y, mk


def dropout_backward(dy, mask, p, *, out=None, n_threads=None):
    _check(dy)
    dx = (dy * mask / (1 - p)).astype(dy.dtype)
    if out is not None:
        out[...] = dx
        return out
    return dx
