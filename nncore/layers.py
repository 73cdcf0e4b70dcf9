"""Layers: Dense (fully connected, fused activation), Dropout and Activation.

A layer's parameters and gradients are NumPy arrays the user can read and write in place::

    layer = nn.Dense(2, 3, activation="relu")
    layer.W[...] = W1          # same memory as the compiled code uses
    layer.b = b1               # copies into the existing array (shape-checked)

A layer that is not yet part of a model holds its own arrays, created on first access (in
float64, or the ``dtype`` given). When a :class:`~nncore.Sequential` adopts the layer it copies
those values into its one flat parameter buffer, in the model's dtype, and the layer's
attributes become views of that buffer. Layers whose arrays were never touched are initialised
straight into the buffer from the model's seed (or the layer's own ``seed``, if given).
"""

import math

import numpy as np

from . import _core
from . import activations as _activations
from . import initializers as _initializers
from ._docs import inherit_docs
from ._validation import check_features, check_int, check_number

__all__ = ["Layer", "Dense", "Dropout", "Activation", "get"]

_dense_forward = _core.dense_forward
_dense_backward = _core.dense_backward
_act_forward = _core.activation_forward
_act_backward = _core.activation_backward
_dropout_forward = _core.dropout_forward
_dropout_backward = _core.dropout_backward


# Layer attributes that the workspaces and the compiled plan depend on: an assignment is
# checked as the constructor checks it, and the model then rebuilds both on its next call.
_PLAN_ATTRS = frozenset({"activation", "p"})


class _Buffers:
    """One layer's workspace for a batch: output y, pre-activation z, input gradient dx,
    dropout mask. Views of the first n rows are cheap (C-contiguous row slices)."""

    __slots__ = ("y", "z", "dx", "mask")

    def __init__(self, y=None, z=None, dx=None, mask=None):
        self.y, self.z, self.dx, self.mask = y, z, dx, mask

    def rows(self, n):
        return _Buffers(*(None if a is None else a[:n] for a in (self.y, self.z, self.dx,
                                                                   self.mask)))


class Layer:
    """Base class of nncore's layers.

    A layer maps a batch of shape ``(n, in_features)`` to ``(n, out_features)``. Subclasses
    implement the private hooks ``_forward`` / ``_backward`` (each a compiled-kernel call on
    preallocated buffers) and ``get_config``.
    """

    #: True for layers that hold parameters (their gradients are computed in backward).
    has_params = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    def __init__(self):
        self._model = None

    # -- shapes ---------------------------------------------------------------------------
    @property
    def in_features(self):
        """Number of input features, or None for a layer that keeps the shape."""
        return None

    def output_features(self, in_features):
        """The number of output features given ``in_features`` inputs."""
        return in_features

    @property
    def n_params(self):
        """Number of trainable parameters."""
        return sum(math.prod(s) for _, s in self._param_shapes())  # Python ints: exact

    def _param_shapes(self):
        return []

    def _named_params(self):
        return []

    def _named_grads(self):
        return []

    def __setattr__(self, name, value):
        check = getattr(type(self), f"_check_{name}", None)
        if check is not None:
            value = check(value)
        model = self.__dict__.get("_model")
        if model is not None and name in _PLAN_ATTRS:
            model._change_layer(self, name, value)
        else:
            object.__setattr__(self, name, value)

    def _attach(self, model, params, grads, rng):
        if self._model is not None and self._model is not model:
            raise ValueError(f"{self!r} already belongs to another model; a layer can be in "
                             f"one model only: create a new layer for this model")
        self._model = model

    # -- passes ---------------------------------------------------------------------------
    def _buffers(self, n, n_in, dtype, training, need_dx):
        return _Buffers()

    def _forward(self, x, buf, training, model):
        raise NotImplementedError

    def _backward(self, dy, x, buf, model):
        raise NotImplementedError

    def __call__(self, x):
        """Apply the layer to a batch ``x`` (inference mode: no dropout).

        Parameters
        ----------
        x : array_like, shape (n, in_features)

        Returns
        -------
        ndarray, shape (n, out_features)
        """
        x = check_features(x, "x", self._dtype(), self.in_features, "a layer")
        n_out = self.output_features(x.shape[1])
        buf = self._buffers(x.shape[0], x.shape[1], x.dtype, False, False)
        if buf.y is None:
            buf.y = np.empty((x.shape[0], n_out), x.dtype)
        return self._forward(x, buf, False, None).copy()

    def _dtype(self):
        return np.float64

    # -- config ---------------------------------------------------------------------------
    def get_config(self):
        """The layer's constructor arguments as a JSON-able dict."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Build a layer from :meth:`get_config`'s dict."""
        return cls(**config)


def _check_size(n, dtype, what):
    """MemoryError for n elements of dtype that no allocation can hold (NumPy would say
    ValueError "array is too big" past the address space)."""
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes > np.iinfo(np.intp).max // 2:
        raise MemoryError(f"{what} need {n:,} {np.dtype(dtype).name} values "
                          f"({nbytes / 2**40:,.0f} TiB), more than can be allocated; use "
                          f"smaller layers")


class Dense(Layer):
    """Fully connected layer: ``y = activation(x @ W + b)``.

    Parameters
    ----------
    in_features : int
        Number of input features (columns of ``x``).
    out_features : int
        Number of outputs.
    activation : str, Activation or None, default "identity"
        Fused into the layer's compiled kernel: ``"identity"``, ``"relu"``,
        ``"leaky_relu"``, ``"sigmoid"``, ``"tanh"``, ``"gelu"``, ``"gelu_tanh"``,
        ``"silu"``, ``"exp"``, ``"softmax"`` or an :mod:`nncore.activations` object such as
        ``LeakyReLU(0.2)``.
    bias : bool, default True
        Whether the layer has the bias ``b``.
    init : str, default "default"
        Weight initialiser: ``"default"`` (PyTorch's ``nn.Linear``), ``"he_normal"``,
        ``"he_uniform"``, ``"glorot_normal"``, ``"glorot_uniform"``, ``"zeros"``
        (see :mod:`nncore.initializers`).
    seed : int or None, default None
        Seed of this layer's initialiser. None: the model's seed decides.
    dtype : str or dtype, optional
        dtype of the layer's own arrays before it joins a model (default float64); a model
        always stores them in its own dtype.

    Attributes
    ----------
    W : ndarray, shape (in_features, out_features)
        Weights; assign in place (``layer.W[...] = v``) or with ``layer.W = v`` (copied in).
    b : ndarray, shape (out_features,), or None
        Bias.
    dW, db : ndarray
        Gradients of the loss with respect to W and b from the last training batch.
    """

    has_params = True

    def __init__(self, in_features, out_features, activation="identity", *, bias=True,
                 init="default", seed=None, dtype=None):
        super().__init__()
        self._in = check_int(in_features, "in_features", 1)
        self._out = check_int(out_features, "out_features", 1)
        self.activation = activation
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self._bias = bool(bias)
        self.init = init
        self.seed = seed
        self._own_dtype = None if dtype is None else _float_dtype(dtype, "dtype")
        self._W = self._b = self._dW = self._db = None

    # -- checked attributes (Layer.__setattr__ calls _check_<name>) ------------------------
    _check_activation = staticmethod(_activations.get)
    _check_init = staticmethod(_initializers.check)

    @staticmethod
    def _check_seed(seed):
        return None if seed is None else check_int(seed, "seed", 0)

    @property
    def bias(self):
        """Whether the layer has the bias ``b`` (fixed at construction: it sets the
        parameter layout)."""
        return self._bias

    @bias.setter
    def bias(self, value):
        raise AttributeError("Dense.bias is fixed when the layer is made (it sets the "
                             "parameter layout); create a new layer, e.g. Dense(in, out, "
                             "bias=False)")

    # -- shapes ---------------------------------------------------------------------------
    @property
    def in_features(self):
        """Number of input features."""
        return self._in

    @property
    def out_features(self):
        """Number of outputs."""
        return self._out

    def output_features(self, in_features):
        return self._out

    def _param_shapes(self):
        shapes = [("W", (self._in, self._out))]
        if self.bias:
            shapes.append(("b", (self._out,)))
        return shapes

    def _dtype(self):
        if self._W is not None:
            return self._W.dtype
        return self._own_dtype or np.dtype(np.float64)

    # -- parameters -----------------------------------------------------------------------
    def _materialize(self):
        """Create the layer's own arrays (it is not in a model yet)."""
        dtype = self._dtype()
        _check_size(self.n_params, dtype, f"{self!r}'s parameters")
        W, b = _initializers.initialize(self.init, np.random.default_rng(self.seed),
                                        self._in, self._out)
        self._W = W.astype(dtype)
        self._dW = np.zeros_like(self._W)
        if self.bias:
            self._b = b.astype(dtype)
            self._db = np.zeros_like(self._b)

    def _attach(self, model, params, grads, rng):
        super()._attach(model, params, grads, rng)
        if self._W is not None:  # the user's (or a previous buffer's) values win
            params["W"][...] = self._W
            if self.bias:
                params["b"][...] = self._b
        else:
            W, b = _initializers.initialize(
                self.init, rng if self.seed is None else np.random.default_rng(self.seed),
                self._in, self._out)
            params["W"][...] = W
            if self.bias:
                params["b"][...] = b
        self._W, self._dW = params["W"], grads["W"]
        if self.bias:
            self._b, self._db = params["b"], grads["b"]

    def _named_params(self):
        return [("W", self.W), ("b", self.b)] if self.bias else [("W", self.W)]

    def _named_grads(self):
        return [("W", self.dW), ("b", self.db)] if self.bias else [("W", self.dW)]

    @property
    def W(self):
        """Weights, shape (in_features, out_features): read, write in place, or assign (the
        value is copied into the existing array)."""
        if self._W is None:
            self._materialize()
        return self._W

    @W.setter
    def W(self, value):
        _assign(self.W, value, "W", "(in_features, out_features)")

    @property
    def b(self):
        """Bias, shape (out_features,), or None without bias; assignable like W."""
        if not self.bias:
            return None
        if self._W is None:
            self._materialize()
        return self._b

    @b.setter
    def b(self, value):
        if not self.bias:
            raise ValueError("this Dense layer has no bias (bias=False); create it with "
                             "bias=True to give it one")
        _assign(self.b, value, "b", "(out_features,)")

    @property
    def dW(self):
        """Gradient of the loss with respect to W from the last training batch."""
        if self._W is None:
            self._materialize()
        return self._dW

    @property
    def db(self):
        """Gradient of the loss with respect to b (None without bias)."""
        if not self.bias:
            return None
        if self._W is None:
            self._materialize()
        return self._db

    # -- passes ---------------------------------------------------------------------------
    def __call__(self, x):
        self.W  # noqa: B018 - materialise the layer's own arrays if it has none yet
        return super().__call__(x)

    __call__.__doc__ = Layer.__call__.__doc__

    def _buffers(self, n, n_in, dtype, training, need_dx):
        return _Buffers(
            y=np.empty((n, self._out), dtype),
            z=np.empty((n, self._out), dtype) if training and self.activation.needs_z else None,
            dx=np.empty((n, self._in), dtype) if training and need_dx else None)

    def _forward(self, x, buf, training, model):
        a = self.activation
        return _dense_forward(x, self._W, self._b, a.name, a.alpha, out=buf.y, z=buf.z)

    def _backward(self, dy, x, buf, model):
        a = self.activation
        return _dense_backward(dy, x, self._W, buf.y, buf.z, a.name, a.alpha, dx=buf.dx,
                               dw=self._dW, db=self._db, dz=dy, need_dx=buf.dx is not None,
                               need_db=self.bias)[0]

    def get_config(self):
        cfg = {"in_features": self._in, "out_features": self._out,
               "activation": self.activation.get_config(), "bias": self.bias,
               "init": self.init}
        if self.seed is not None:
            cfg["seed"] = self.seed
        return cfg

    def __repr__(self):
        extra = ""
        if self.activation.name != "identity":
            extra += f", activation={_act_repr(self.activation)}"
        if not self.bias:
            extra += ", bias=False"
        return f"Dense({self._in}, {self._out}{extra})"


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by ``1 / (1 - p)``; at inference, the identity.

    The mask comes from a counter-based generator seeded by the model's seed, so the same
    seed gives the same masks, whatever the thread count.

    Parameters
    ----------
    p : float, default 0.5
        Probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    @staticmethod
    def _check_p(p):
        p = check_number(p, "p")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout p must be in [0, 1), got {p!r}; p is the probability "
                             f"of dropping an element (0.1 drops 10%)")
        return p

    def _buffers(self, n, n_in, dtype, training, need_dx):
        if not training or self.p == 0.0:
            return _Buffers()
        return _Buffers(y=np.empty((n, n_in), dtype), mask=np.empty((n, n_in), np.uint8))

    def _forward(self, x, buf, training, model):
        if not training or self.p == 0.0:
            return x
        y = _dropout_forward(x, self.p, model._dropout_seed, model._rng_counter, out=buf.y,
                             mask=buf.mask)[0]
        model._rng_counter += x.size
        return y

    def _backward(self, dy, x, buf, model):
        if self.p == 0.0:
            return dy
        return _dropout_backward(dy, buf.mask, self.p, out=dy)  # in place

    def get_config(self):
        return {"p": self.p}

    def __repr__(self):
        return f"Dropout({self.p!r})"


class Activation(Layer):
    """An activation as a layer of its own: ``y = activation(x)``.

    Usually it is better fused into the previous :class:`Dense` layer
    (``Dense(..., activation="relu")``): one kernel call instead of two.

    Parameters
    ----------
    activation : str or Activation
        As for :class:`Dense`.
    """

    def __init__(self, activation):
        super().__init__()
        self.activation = activation

    _check_activation = staticmethod(_activations.get)

    def _buffers(self, n, n_in, dtype, training, need_dx):
        return _Buffers(y=np.empty((n, n_in), dtype),
                        dx=np.empty((n, n_in), dtype) if training and need_dx else None)

    def _forward(self, x, buf, training, model):
        a = self.activation
        return _act_forward(x, a.name, a.alpha, out=buf.y)

    def _backward(self, dy, x, buf, model):
        a = self.activation
        return _act_backward(dy, buf.y, x if a.needs_z else None, a.name, a.alpha,
                             out=buf.dx)

    def get_config(self):
        return {"activation": self.activation.get_config()}

    def __repr__(self):
        return f"Activation({_act_repr(self.activation)})"


_LAYERS = {"Dense": Dense, "Dropout": Dropout, "Activation": Activation}


def get(config):
    """A layer from ``{"class": name, "config": {...}}`` (as written in model files)."""
    try:
        cls = _LAYERS[config["class"]]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer description {config!r}; known layers: "
                         f"{sorted(_LAYERS)}") from None
    return cls.from_config(dict(config.get("config", {})))


def _act_repr(act):
    return repr(act.name) if act.name != "leaky_relu" else repr(act)


def _float_dtype(dtype, name):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _assign(target, value, name, layout):
    """Copy value into the existing array target (never rebinds), checking its shape."""
    try:
        arr = np.asarray(value)
    except Exception as e:  # ragged lists, ...
        raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__} "
                        f"({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.shape != target.shape:
        raise ValueError(f"{name} must have shape {target.shape} {layout}, got {arr.shape}; "
                         f"the array is copied into the layer's existing buffer")
    target[...] = arr
