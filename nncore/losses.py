"""Loss functions, by name or object: ``"mse"``, ``"l1"``, ``"huber"``, ``"poisson"``,
``"bce_with_logits"``, ``"cross_entropy"``.

Each loss computes its value and its gradient with respect to the model's outputs in one
compiled pass. Per-sample weights ``w`` are supported; with element losses ``e_ij``
(``j`` over the ``d`` outputs; ``d = 1`` for cross-entropy)::

    mean:  L = sum_i w_i sum_j e_ij / (d * sum_i w_i)     (PyTorch's mean when w is None)
    sum:   L = sum_i w_i sum_j e_ij

The classification losses work on *logits*: the model's last layer should have no activation
(``"identity"``); :meth:`nncore.Sequential.predict_proba` applies the softmax or sigmoid.
The Poisson loss works on the *log* of the rate, so the last layer has no activation either.

A loss object cannot be changed once made (a compiled model holds it): to train with another
``delta`` or ``label_smoothing``, compile with a new one.
"""

import math

from . import _core
from ._docs import inherit_docs
from ._validation import check_labels, check_targets

__all__ = ["Loss", "MSELoss", "L1Loss", "HuberLoss", "Huber", "PoissonNLLLoss",
           "BCEWithLogitsLoss", "CrossEntropyLoss", "CrossEntropy", "get", "NAMES"]


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
    prediction : str or None
        The activation that turns the outputs into the predictions the ``mse`` and ``mae``
        metrics compare with the targets: the probabilities, or the rate ``"exp"`` of the
        Poisson loss; None for the outputs themselves.
    """

    name = None
    labels = False
    probability = None
    _kernel = None

    @property
    def prediction(self):
        return self.probability

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    def __setattr__(self, name, value):
        # A compiled model and its plans hold the loss: one changed in place would not reach
        # them. Subclasses set their parameters once, in __init__, through object.__setattr__.
        raise AttributeError("losses cannot be changed in place; compile with a new one, e.g. "
                             "model.compile(optimizer, nn.Huber(delta=2.0))")

    @property
    def param(self):
        """The loss's parameter in the C API (``nn_loss_f32``): huber's delta, the
        cross-entropy's label smoothing, else 0."""
        return 0.0

    def _check_output(self, n_outputs, last_activation, what):
        if last_activation not in (None, "identity"):
            raise ValueError(
                f"loss={self.name!r} works on {what}, but the model's last layer has "
                f"activation {last_activation!r}; use activation='identity' on the last "
                f"Dense layer")

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
        """The loss as a JSON-able dict (``{"name": ...}`` and its parameters)."""
        return {"name": self.name}

    def __eq__(self, other):
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _number(value, name, lo, hi, lo_open):
    """value as a float in (lo, hi] / [lo, hi], or a clear error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (lo < value if lo_open else lo <= value) or not value <= hi:
        rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must lie in {rng}, got {value!r}")
    return value


class MSELoss(Loss):
    """Mean squared error, ``e = (pred - target)^2``; targets of shape (n, d)
    (or (n,) for a single output)."""

    name = "mse"
    _kernel = staticmethod(_core.mse_loss)


class L1Loss(Loss):
    """Mean absolute error, ``e = |pred - target|`` (``torch.nn.L1Loss``); its gradient is
    ``sign(pred - target)``, 0 where the two are equal. Targets of shape (n, d) (or (n,) for a
    single output)."""

    name = "l1"
    _kernel = staticmethod(_core.l1_loss)


class HuberLoss(Loss):
    """The Huber loss (``torch.nn.HuberLoss``): with ``r = pred - target``,
    ``e = r^2 / 2`` where ``|r| < delta``, else ``delta * (|r| - delta / 2)``: squared near
    the target, absolute far from it, so that outliers pull with a bounded force.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns from squared to absolute (> 0).
    """

    name = "huber"

    def __init__(self, delta=1.0):
        object.__setattr__(self, "delta", _number(delta, "delta", 0.0, math.inf, True))
        if self.delta == math.inf:
            raise ValueError("delta must be finite (for the squared loss use loss='mse')")

    @property
    def param(self):
        return self.delta

    def forward(self, pred, target, sample_weight=None, reduction="mean", *, grad=None,
                need_grad=True):
        return _core.huber_loss(pred, target, sample_weight, reduction, delta=self.delta,
                                grad=grad, need_grad=need_grad)

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


#: ``nn.Huber(delta=1.0)``: the name Keras gives :class:`HuberLoss`.
Huber = HuberLoss


class PoissonNLLLoss(Loss):
    """Poisson negative log-likelihood for counts, on the *log* of the rate:
    ``e = exp(x) - t x`` (``torch.nn.PoissonNLLLoss(log_input=True, full=False)``; the
    constant ``log(t!)`` is left out). The model's output ``x`` is the log rate, so the last
    layer has no activation; the predicted rate is ``exp(x)``. Targets are counts (real
    numbers >= 0) of shape (n, d) (or (n,) for a single output)."""

    name = "poisson"
    prediction = "exp"
    _kernel = staticmethod(_core.poisson_nll_loss)

    def check_targets(self, y, name, n_outputs, dtype):
        return check_targets(y, name, n_outputs, dtype, self.name, nonnegative=True)

    def check_model(self, n_outputs, last_activation):
        self._check_output(n_outputs, last_activation, "the log of the rate")


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
    ``e_i = logsumexp(x_i) - x_i[label_i]``; labels of shape (n,) in [0, n_classes).

    Parameters
    ----------
    label_smoothing : float, default 0.0
        In [0, 1]: the target becomes ``(1 - s) * onehot + s / n_classes``, exactly as in
        ``torch.nn.CrossEntropyLoss(label_smoothing=s)``:
        ``e_i = logsumexp(x_i) - (1 - s) x_i[label_i] - s mean_j x_ij``.
    """

    name = "cross_entropy"
    labels = True
    probability = "softmax"

    def __init__(self, label_smoothing=0.0):
        object.__setattr__(self, "label_smoothing",
                           _number(label_smoothing, "label_smoothing", 0.0, 1.0, False))

    @property
    def param(self):
        return self.label_smoothing

    def forward(self, pred, target, sample_weight=None, reduction="mean", *, grad=None,
                need_grad=True):
        return _core.cross_entropy_loss(pred, target, sample_weight, reduction,
                                        label_smoothing=self.label_smoothing, grad=grad,
                                        need_grad=need_grad)

    def get_config(self):
        cfg = {"name": self.name}
        if self.label_smoothing:
            cfg["label_smoothing"] = self.label_smoothing
        return cfg

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


#: ``nn.CrossEntropy(label_smoothing=0.0)``: a short name for :class:`CrossEntropyLoss`.
CrossEntropy = CrossEntropyLoss

_CLASSES = {c.name: c for c in (MSELoss, L1Loss, HuberLoss, PoissonNLLLoss, BCEWithLogitsLoss,
                                CrossEntropyLoss)}
_ALIASES = {"mean_squared_error": "mse", "squared_error": "mse",
            "mae": "l1", "mean_absolute_error": "l1", "absolute_error": "l1",
            "poisson_nll": "poisson",
            "binary_cross_entropy_with_logits": "bce_with_logits",
            "bce": "bce_with_logits", "crossentropy": "cross_entropy", "ce": "cross_entropy",
            "sparse_categorical_crossentropy": "cross_entropy"}
#: The loss names :func:`get` accepts.
NAMES = tuple(_CLASSES)


def get(loss):
    """A :class:`Loss` from a name or an object.

    Parameters
    ----------
    loss : str, dict or Loss
        ``"mse"``, ``"l1"``, ``"huber"``, ``"poisson"``, ``"bce_with_logits"``,
        ``"cross_entropy"`` (aliases: ``"mean_squared_error"``, ``"squared_error"``,
        ``"mae"``, ``"mean_absolute_error"``, ``"absolute_error"``, ``"bce"``, ``"ce"``,
        ``"sparse_categorical_crossentropy"``), a config dict from :meth:`Loss.get_config`,
        or a :class:`Loss` instance.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, dict):
        cfg = dict(loss)
        name = cfg.pop("name", None)
        if isinstance(name, str) and name in _CLASSES:
            try:
                return _CLASSES[name](**cfg)
            except TypeError as e:
                raise ValueError(f"loss config {loss!r} is invalid: {e}") from None
        loss = name if cfg == {} else loss
    if isinstance(loss, str):
        name = _ALIASES.get(loss.lower(), loss.lower())
        if name in _CLASSES:
            return _CLASSES[name]()
    raise ValueError(f"loss={loss!r} is not a loss; use one of "
                     f"{', '.join(repr(n) for n in NAMES)} or an nncore.losses object")
