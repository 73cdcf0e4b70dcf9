"""Loss functions, by name or object: ``"mse"``, ``"bce_with_logits"``, ``"cross_entropy"``.

Each loss computes its value and its gradient with respect to the model's outputs in one
compiled pass. Per-sample weights ``w`` are supported; with element losses ``e_ij``
(``j`` over the ``d`` outputs; ``d = 1`` for cross-entropy)::

    mean:  L = sum_i w_i sum_j e_ij / (d * sum_i w_i)     (PyTorch's mean when w is None)
    sum:   L = sum_i w_i sum_j e_ij

The classification losses work on *logits*: the model's last layer should have no activation
(``"identity"``); :meth:`nncore.Sequential.predict_proba` applies the softmax or sigmoid.
"""

from . import _core
from ._docs import inherit_docs
from ._validation import check_labels, check_targets

__all__ = ["Loss", "MSELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "get", "NAMES"]


class Loss:
    """Base class of the losses.

    Attributes
    ----------
    name : str
        The name used in ``compile(loss=...)`` and in model files.
    labels : bool
        True if the targets are integer class labels (cross-entropy), False if they are real
        arrays shaped like the outputs.
    probability : str or None
        The activation that turns the outputs into probabilities (``"softmax"``,
        ``"sigmoid"``) for :meth:`~nncore.Sequential.predict_proba`, or None.
    """

    name = None
    labels = False
    probability = None
    _kernel = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    def __call__(self, pred, target, sample_weight=None, reduction="mean"):
        """The loss value of outputs ``pred`` against ``target`` (a float).

        Parameters
        ----------
        pred : ndarray, shape (n, d)
            The model's outputs (logits for the classification losses), float32 or float64.
        target : ndarray
            Targets: shape (n, d) in pred's dtype, or (n,) int64 labels for cross-entropy.
        sample_weight : ndarray, shape (n,), optional
            Non-negative per-sample weights in pred's dtype.
        reduction : {"mean", "sum"}
        """
        return self.forward(pred, target, sample_weight, reduction, need_grad=False)[0]

    def forward(self, pred, target, sample_weight=None, reduction="mean", *, grad=None,
                need_grad=True):
        """Value and gradient: returns ``(loss, dL/dpred)`` (the gradient is written into
        ``grad`` if given; None when ``need_grad`` is False)."""
        return type(self)._kernel(pred, target, sample_weight, reduction, grad=grad,
                                  need_grad=need_grad)

    def check_targets(self, y, name, n_outputs, dtype):
        """y converted and checked for a model with n_outputs outputs (clear errors)."""
        return check_targets(y, name, n_outputs, dtype, self.name)

    def check_model(self, n_outputs, last_activation):
        """Raise ValueError if a model with these outputs cannot use this loss."""

    def get_config(self):
        """The loss as a JSON-able dict (``{"name": ...}``)."""
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}()"


class MSELoss(Loss):
    """Mean squared error, ``e = (pred - target)^2``; targets of shape (n, d)
    (or (n,) for a single output)."""

    name = "mse"
    _kernel = staticmethod(_core.mse_loss)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits (the numerically stable form of sigmoid followed by
    BCE): ``e = max(x, 0) - x t + log(1 + exp(-|x|))``; targets in [0, 1], shape (n, d)
    (or (n,) for a single output)."""

    name = "bce_with_logits"
    probability = "sigmoid"
    _kernel = staticmethod(_core.bce_with_logits_loss)

    def check_targets(self, y, name, n_outputs, dtype):
        return check_targets(y, name, n_outputs, dtype, self.name, unit_interval=True)

    def check_model(self, n_outputs, last_activation):
        if last_activation not in (None, "identity"):
            raise ValueError(
                f"loss='bce_with_logits' works on logits, but the model's last layer has "
                f"activation {last_activation!r}; use activation='identity' on the last "
                f"Dense layer (predict_proba applies the sigmoid)")


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits with integer labels:
    ``e_i = logsumexp(x_i) - x_i[label_i]``; labels of shape (n,) in [0, n_classes)."""

    name = "cross_entropy"
    labels = True
    probability = "softmax"
    _kernel = staticmethod(_core.cross_entropy_loss)

    def check_targets(self, y, name, n_outputs, dtype):
        return check_labels(y, name, n_outputs)

    def check_model(self, n_outputs, last_activation):
        if last_activation not in (None, "identity"):
            raise ValueError(
                f"loss='cross_entropy' works on logits, but the model's last layer has "
                f"activation {last_activation!r}; use activation='identity' on the last "
                f"Dense layer (predict_proba applies the softmax)")
        if n_outputs < 2:
            raise ValueError(
                f"loss='cross_entropy' needs one output per class (at least 2), but the "
                f"model has {n_outputs} output; for two classes use Dense(..., 2) or "
                f"loss='bce_with_logits' with one output")


_CLASSES = {c.name: c for c in (MSELoss, BCEWithLogitsLoss, CrossEntropyLoss)}
_ALIASES = {"mean_squared_error": "mse", "binary_cross_entropy_with_logits": "bce_with_logits",
            "bce": "bce_with_logits", "crossentropy": "cross_entropy", "ce": "cross_entropy",
            "sparse_categorical_crossentropy": "cross_entropy"}
#: The loss names :func:`get` accepts.
NAMES = tuple(_CLASSES)


def get(loss):
    """A :class:`Loss` from a name or an object.

    Parameters
    ----------
    loss : str or Loss
        ``"mse"``, ``"bce_with_logits"``, ``"cross_entropy"`` (aliases:
        ``"mean_squared_error"``, ``"bce"``, ``"ce"``, ``"sparse_categorical_crossentropy"``)
        or a :class:`Loss` instance.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, dict):
        loss = loss.get("name")
    if isinstance(loss, str):
        name = _ALIASES.get(loss.lower(), loss.lower())
        if name in _CLASSES:
            return _CLASSES[name]()
    raise ValueError(f"loss={loss!r} is not a loss; use one of "
                     f"{', '.join(repr(n) for n in NAMES)} or an nncore.losses object")
