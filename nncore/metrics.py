"""Metrics: accuracy, mse, mae.

In ``model.compile(metrics=[...])`` a metric is reported per epoch in the History (and with a
``val_`` prefix on validation data). Metrics compare the model's *predictions* with the
targets: for the classification losses the predictions are probabilities (softmax or sigmoid
of the logits) and integer labels are one-hot encoded for ``mse``/``mae``; for the Poisson
loss they are the rates ``exp(output)``; accuracy compares classes. Metrics are not weighted by ``sample_weight``.

The functions :func:`accuracy`, :func:`mse` and :func:`mae` work on plain arrays.
"""

import numpy as np

from . import _core

__all__ = ["Metric", "Accuracy", "MeanSquaredError", "MeanAbsoluteError", "get", "accuracy",
           "mse", "mae"]


class Metric:
    """Base class: a running mean over batches, ``sum / count``.

    Subclasses implement ``_batch(out, target) -> (sum, count)`` for the model's raw outputs
    ``out`` and its (checked) targets, once :meth:`_setup` has seen the loss.
    """

    name = None

    def _setup(self, loss, n_outputs):
        """Check that the metric makes sense with this loss; raise ValueError if not."""
        self._loss = loss

    def _predictions(self, out):
        p = self._loss.prediction
        return out if p is None else _core.activation_forward(out, p)

    def _errors(self, out, target):
        pred = self._predictions(out)
        if self._loss.labels:
            diff = pred.copy()
            diff[np.arange(diff.shape[0]), target] -= 1
            return diff
        return pred - target

    def __repr__(self):
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Fraction of correct predictions: the argmax of the outputs against the labels
    (cross_entropy), outputs > 0 against targets >= 0.5 per element (bce_with_logits), or the
    argmax of outputs and one-hot targets (mse with more than one output)."""

    name = "accuracy"

    def _setup(self, loss, n_outputs):
        super()._setup(loss, n_outputs)
        if loss.name == "poisson" or (not loss.labels and loss.name != "bce_with_logits"
                                      and n_outputs < 2):
            raise ValueError(f"metric 'accuracy' with loss={loss.name!r} needs one-hot "
                             f"targets (a model with 2 or more outputs and loss='mse', 'l1' "
                             f"or 'huber'); for classification use loss='cross_entropy' or "
                             f"'bce_with_logits'")

    def _batch(self, out, target):
        if self._loss.labels:
            return int(np.count_nonzero(out.argmax(axis=1) == target)), out.shape[0]
        if self._loss.name == "bce_with_logits":
            return int(np.count_nonzero((out > 0) == (target >= 0.5))), out.size
        return int(np.count_nonzero(out.argmax(axis=1) == target.argmax(axis=1))), out.shape[0]


class MeanSquaredError(Metric):
    """Mean of the squared differences between predictions and targets."""

    name = "mse"

    def _batch(self, out, target):
        d = self._errors(out, target)
        return float(np.vdot(d, d)), d.size


class MeanAbsoluteError(Metric):
    """Mean of the absolute differences between predictions and targets."""

    name = "mae"

    def _batch(self, out, target):
        d = self._errors(out, target)
        return float(np.abs(d).sum(dtype=np.float64)), d.size


_CLASSES = {"accuracy": Accuracy, "mse": MeanSquaredError, "mae": MeanAbsoluteError}
_ALIASES = {"acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae"}


def get(metric):
    """A :class:`Metric` from a name (``"accuracy"``/``"acc"``, ``"mse"``, ``"mae"``) or an
    object."""
    if isinstance(metric, Metric):
        return type(metric)()
    if isinstance(metric, str):
        name = _ALIASES.get(metric.lower(), metric.lower())
        if name in _CLASSES:
            return _CLASSES[name]()
    raise ValueError(f"metric {metric!r} is unknown; use 'accuracy', 'mse' or 'mae'")


# ---- plain functions ------------------------------------------------------------------------

def accuracy(y_true, y_pred):
    """Fraction of samples whose predicted class equals the true class.

    Parameters
    ----------
    y_true : array_like, shape (n,) or (n, c)
        Class labels, or one-hot rows (argmax taken).
    y_pred : array_like, shape (n,) or (n, c)
        Predicted labels, or scores/probabilities per class (argmax taken).

    Returns
    -------
    float
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim == 2 and t.shape[1] > 1:
        t = t.argmax(axis=1)
    if p.ndim == 2 and p.shape[1] > 1:
        p = p.argmax(axis=1)
    t, p = t.reshape(-1), p.reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} labels but y_pred has {p.shape[0]}")
    return float(np.mean(t == p))


def mse(y_true, y_pred):
    """Mean squared error over all elements (shapes must match)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean((p - t) ** 2))


def mae(y_true, y_pred):
    """Mean absolute error over all elements (shapes must match)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def _pair(y_true, y_pred):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape and t.size == p.size:
        t = t.reshape(p.shape)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    return t, p
