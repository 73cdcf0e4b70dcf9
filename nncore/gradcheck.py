"""Finite-difference check of a whole model's gradients."""

import numpy as np

from . import losses as _losses
from ._validation import check_int, check_number

__all__ = ["check_gradients"]


def check_gradients(model, X, y, sample_weight=None, *, loss=None, eps=1e-5, atol=1e-5,
                    max_params=None, seed=0):
    """Compare the model's backpropagated gradients with central finite differences.

    The check runs on a float64 copy of the model (the model itself is not changed), in
    training mode with fixed dropout masks, on the whole of X as one batch, with the mean
    loss. For each parameter ``p``::

        numeric = (L(p + eps) - L(p - eps)) / (2 eps)
        error   = |analytic - numeric| / max(|analytic|, |numeric|, atol)

    Parameters
    ----------
    model : Sequential
        Compiled, or give ``loss``.
    X, y, sample_weight
        As for ``fit`` (keep X small: two forward passes per parameter checked).
    loss : str or Loss, optional
        The loss to differentiate (default: the model's).
    eps : float, default 1e-5
        Finite-difference step.
    atol : float, default 1e-5
        Gradients smaller than this are compared absolutely rather than relatively.
    max_params : int, optional
        Check a random subset of this many parameters (default: all).
    seed : int, default 0
        Seed of that subset.

    Returns
    -------
    float
        The largest error over the parameters checked: below about 1e-6 for correct
        gradients (unless a step crosses a kink such as relu's 0); a wrong gradient shows
        up as 1e-2 or more.
    """
    from .models import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an nncore.Sequential, got {type(model).__name__}")
    eps = check_number(eps, "eps", 0.0)
    atol = check_number(atol, "atol", 0.0)
    if eps == 0:
        raise ValueError("eps must be positive")
    if loss is None and model.loss is None:
        raise RuntimeError("check_gradients needs a loss: compile the model first or pass "
                           "loss='mse' (or another loss name)")
    m = model._copy("float64")
    if loss is not None or m.loss is None:
        from .optimizers import SGD
        m.compile(SGD(lr=0.0), _losses.get(loss) if loss is not None else model.loss)
    Xc, Yc, Wc = m._check_xy(X, y, sample_weight, "check_gradients")
    offset = model._rng_counter
    m._engine.loss_and_grads(Xc, Yc, Wc, dropout_offset=offset)
    analytic = m.grads.copy()
    slots = np.concatenate([np.arange(s.offset, s.offset + s.size) for s in m._slots]) \
        if m._slots else np.empty(0, np.int64)
    if max_params is not None:
        max_params = check_int(max_params, "max_params", 1)
        if max_params < slots.size:
            slots = np.sort(np.random.default_rng(seed).choice(slots, max_params,
                                                               replace=False))
    p = m.params
    worst = 0.0
    for j in slots:
        old = p[j]
        p[j] = old + eps
        lp = m._engine.loss_and_grads(Xc, Yc, Wc, dropout_offset=offset)
        p[j] = old - eps
        lm = m._engine.loss_and_grads(Xc, Yc, Wc, dropout_offset=offset)
        p[j] = old
        num = (lp - lm) / (2 * eps)
        a = analytic[j]
        err = abs(a - num) / max(abs(a), abs(num), atol)
        worst = max(worst, err)
    return float(worst)
