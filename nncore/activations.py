"""Activation functions, by name or object: identity, relu, leaky_relu, sigmoid, tanh, gelu,
softmax, silu (swish), gelu_tanh and exp.

An activation is usually fused into a :class:`~nncore.Dense` layer
(``nn.Dense(64, 128, activation="relu")``), where the compiled kernel applies it in the GEMM
write-back. The objects here describe that choice and can also be applied on their own::

    >>> import numpy as np, nncore as nn
    >>> nn.activations.get("relu")(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
"""

import numpy as np

from . import _core

__all__ = [
    "Activation", "Identity", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "GELUTanh",
    "SiLU", "Exp", "Softmax", "get", "NAMES",
]


class Activation:
    """Base class of the activation functions.

    Attributes
    ----------
    name : str
        The name the compiled kernels know it by (``"relu"``, ...).
    alpha : float
        The slope for negative inputs (only :class:`LeakyReLU` uses it).
    """

    name = "identity"
    alpha = 0.01

    def __setattr__(self, name, value):
        # Layers and compiled plans hold activations; one changed in place would not reach
        # them (nor the buffers that depend on it): a new one is assigned instead.
        raise AttributeError(f"activations cannot be changed in place; assign a new one, "
                             f"e.g. layer.activation = nn.activations.LeakyReLU(0.2)")

    @property
    def code(self):
        """The activation's number in the C API (``enum nn_activation``)."""
        return _core.ACTIVATIONS[self.name]

    @property
    def needs_z(self):
        """True if the backward pass needs the pre-activation as well as the output."""
        return _core.activation_needs_z(self.name, self.alpha)

    def __call__(self, x):
        """Apply the activation to ``x`` (float32 or float64; softmax along the last axis).

        Parameters
        ----------
        x : ndarray
            Input; a NumPy array of float32 or float64 (other inputs are converted to
            float64).

        Returns
        -------
        ndarray
            A new array of the same shape and dtype.
        """
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        return _core.activation_forward(np.ascontiguousarray(x), self.name, self.alpha)

    def backward(self, dy, y, z=None):
        """The gradient with respect to the input, ``dy * act'(z)``, from the forward output
        ``y`` (and the input ``z`` when :attr:`needs_z`)."""
        return _core.activation_backward(dy, y, z, self.name, self.alpha)

    def get_config(self):
        """The activation as a JSON-able dict (``{"name": ..., "alpha": ...}``)."""
        cfg = {"name": self.name}
        if self.name == "leaky_relu":
            cfg["alpha"] = self.alpha
        return cfg

    def __eq__(self, other):
        return (isinstance(other, Activation) and other.name == self.name
                and (self.name != "leaky_relu" or other.alpha == self.alpha))

    def __hash__(self):
        return hash((self.name, self.alpha))

    def __repr__(self):
        return f"{type(self).__name__}()"


class Identity(Activation):
    """``y = x`` (no activation; the usual choice for an output layer producing logits)."""
    name = "identity"


class ReLU(Activation):
    """``y = max(x, 0)``."""
    name = "relu"


class LeakyReLU(Activation):
    """``y = x if x > 0 else alpha * x``.

    Parameters
    ----------
    alpha : float, default 0.01
        Slope for negative inputs (PyTorch's ``negative_slope``).
    """
    name = "leaky_relu"

    def __init__(self, alpha=0.01):
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise TypeError(f"alpha must be a number, got {alpha!r}") from None
        if not np.isfinite(alpha):
            raise ValueError(f"alpha must be finite, got {alpha!r}")
        object.__setattr__(self, "alpha", alpha)

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha!r})"


class Sigmoid(Activation):
    """``y = 1 / (1 + exp(-x))``."""
    name = "sigmoid"


class Tanh(Activation):
    """``y = tanh(x)``."""
    name = "tanh"


class GELU(Activation):
    """``y = x/2 * (1 + erf(x / sqrt(2)))`` (the exact form, PyTorch's default)."""
    name = "gelu"


class GELUTanh(Activation):
    """``y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``: the tanh approximation of
    GELU, PyTorch's ``nn.GELU(approximate="tanh")``."""
    name = "gelu_tanh"


class SiLU(Activation):
    """``y = x * sigmoid(x)`` (also called swish), PyTorch's ``nn.SiLU``."""
    name = "silu"


class Exp(Activation):
    """``y = exp(x)``: a positive output from its log, e.g. a rate (Keras's
    ``"exponential"``)."""
    name = "exp"


class Softmax(Activation):
    """``y = exp(x - max) / sum(exp(x - max))`` along each row."""
    name = "softmax"


_CLASSES = {c.name: c for c in (Identity, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, SiLU,
                                 GELUTanh, Exp)}
#: The names :func:`get` accepts ("linear" and None also mean identity, "swish" silu,
#: "exponential" exp).
NAMES = tuple(_CLASSES)


def get(activation):
    """An :class:`Activation` from a name, an object or ``None`` (identity).

    Parameters
    ----------
    activation : str, Activation, dict or None
        ``"identity"`` (or ``"linear"``, ``None``), ``"relu"``, ``"leaky_relu"``,
        ``"sigmoid"``, ``"tanh"``, ``"gelu"``, ``"softmax"``, ``"silu"`` (or ``"swish"``),
        ``"gelu_tanh"``, ``"exp"`` (or ``"exponential"``); an :class:`Activation`
        (returned as is); or a config dict from :meth:`Activation.get_config`.

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(activation, Activation):
        return activation
    if activation is None or activation == "linear":
        return Identity()
    if isinstance(activation, dict):
        cfg = dict(activation)
        name = cfg.pop("name", None)
        if name not in _CLASSES:
            raise ValueError(f"unknown activation config {activation!r}")
        return _CLASSES[name](**cfg)
    if isinstance(activation, str) and activation.lower() in ("swish", "exponential"):
        return SiLU() if activation.lower() == "swish" else Exp()
    if isinstance(activation, str) and activation.lower() in _CLASSES:
        return _CLASSES[activation.lower()]()
    raise ValueError(f"activation={activation!r} is not an activation; use one of "
                     f"{', '.join(repr(n) for n in NAMES)}, an nncore.activations object "
                     f"or None")
