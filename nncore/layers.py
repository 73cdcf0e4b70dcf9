"""Layers: Dense (fully connected, fused activation), Dropout, Activation, BatchNorm and
LayerNorm.

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

__all__ = ["Layer", "Dense", "Dropout", "Activation", "BatchNorm", "LayerNorm", "Residual",
           "get"]

_dense_forward = _core.dense_forward
_dense_backward = _core.dense_backward


def _bf16(model):
    """Whether a layer run by model takes bfloat16 products (a mixed_bfloat16 model)."""
    return model is not None and model.policy == "mixed_bfloat16"
_act_forward = _core.activation_forward
_act_backward = _core.activation_backward
_dropout_forward = _core.dropout_forward
_dropout_backward = _core.dropout_backward


# Layer attributes that the workspaces and the compiled plan depend on: an assignment is
# checked as the constructor checks it, and the model then rebuilds both on its next call.
_PLAN_ATTRS = frozenset({"activation", "p"})


class _Buffers:
    """One layer's workspace for a batch: output y, pre-activation z, input gradient dx,
    dropout mask, a norm's saved statistics (mean, invstd: per feature, or per row when
    row_stats). Views of the first n rows are cheap (C-contiguous row slices)."""

    __slots__ = ("y", "z", "dx", "mask", "stats", "mean", "invstd", "row_stats")

    def __init__(self, y=None, z=None, dx=None, mask=None, stats=None, row_stats=False):
        self.y, self.z, self.dx, self.mask = y, z, dx, mask
        # stats (2, k): the mean and invstd of k features, or of k rows when row_stats
        self.stats, self.row_stats = stats, row_stats
        self.mean, self.invstd = (None, None) if stats is None else (stats[0], stats[1])

    def rows(self, n):
        def cut(a):
            return None if a is None else a[:n]

        v = _Buffers(cut(self.y), cut(self.z), cut(self.dx), cut(self.mask), self.stats,
                     self.row_stats)
        if self.row_stats and self.stats is not None:
            v.mean, v.invstd = self.stats[0, :n], self.stats[1, :n]
        return v


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

    def _buffer_shapes(self):
        """(name, shape) of the layer's state that is not trained (batch norm's running
        statistics): saved, loaded and in state_dict, never touched by the optimizer."""
        return []

    def _attach_state(self, arrays):
        """Take views of the model's state buffer (one per _buffer_shapes entry)."""

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
        return _dense_forward(x, self._W, self._b, a.name, a.alpha, out=buf.y, z=buf.z,
                              bf16=_bf16(model))

    def _backward(self, dy, x, buf, model):
        a = self.activation
        return _dense_backward(dy, x, self._W, buf.y, buf.z, a.name, a.alpha, dx=buf.dx,
                               dw=self._dW, db=self._db, dz=dy, need_dx=buf.dx is not None,
                               need_db=self.bias, bf16=_bf16(model))[0]

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
        # A batch's draws are its rows' in order; data-parallel, these x are rows skip ..
        # of a global batch of `rows` (model._dropout_rows), whose draws all pass.
        c, w = model._rng_counter, x.shape[1]
        skip, rows = model._dropout_rows or (0, x.shape[0])
        y = _dropout_forward(x, self.p, model._dropout_seed, c + skip * w, out=buf.y,
                             mask=buf.mask)[0]
        model._rng_counter = c + rows * w
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


def _norm_array(attr, doc, assignable=True, nonnegative=False):
    """A norm layer's array attribute: the layer's own array until it joins a model, then a
    view of the model's buffer; assignment copies into it (shape-checked)."""
    def get(self):
        if self._gamma is None:
            self._materialize()
        return getattr(self, attr)

    def set(self, value):
        if not assignable:
            raise AttributeError(f"{attr[1:]} is computed by training; it cannot be assigned")
        value = np.asarray(value)
        if nonnegative and value.dtype.kind in "biuf" and np.any(value < 0):
            raise ValueError(f"{attr[1:]} must be >= 0 (a variance)")
        _assign(get(self), value, attr[1:], "(n_features,)")

    return property(get, set, doc=doc)


class _Norm(Layer):
    """Normalisation with a learnt scale gamma (ones) and shift beta (zeros) per feature."""

    has_params = True
    _kind = None  # "batch" or "layer": the kernels' name

    def __init__(self, n_features, eps=1e-5):
        super().__init__()
        self._d = check_int(n_features, "n_features", 1)
        eps = check_number(eps, "eps")
        if not 0 < eps < math.inf:
            raise ValueError(f"eps must be positive and finite, got {eps!r}")
        object.__setattr__(self, "_eps", eps)
        self._gamma = self._beta = self._dgamma = self._dbeta = None

    @property
    def eps(self):
        """Added to the variance before its square root (fixed at construction)."""
        return self._eps

    @property
    def in_features(self):
        """Number of features (in and out)."""
        return self._d

    @property
    def n_features(self):
        """Number of features (in and out)."""
        return self._d

    def output_features(self, in_features):
        return self._d

    def _param_shapes(self):
        return [("gamma", (self._d,)), ("beta", (self._d,))]

    def _dtype(self):
        return self._gamma.dtype if self._gamma is not None else np.dtype(np.float64)

    def _materialize(self):
        self._gamma, self._beta = np.ones(self._d), np.zeros(self._d)
        self._dgamma, self._dbeta = np.zeros(self._d), np.zeros(self._d)

    def _attach(self, model, params, grads, rng):
        super()._attach(model, params, grads, rng)
        if self._gamma is not None:  # the user's (or a previous buffer's) values win
            params["gamma"][...], params["beta"][...] = self._gamma, self._beta
        else:
            params["gamma"][...], params["beta"][...] = 1, 0
        self._gamma, self._beta = params["gamma"], params["beta"]
        self._dgamma, self._dbeta = grads["gamma"], grads["beta"]

    def _named_params(self):
        return [("gamma", self.gamma), ("beta", self.beta)]

    def _named_grads(self):
        return [("gamma", self.dgamma), ("beta", self.dbeta)]

    gamma = _norm_array("_gamma", "The scale, shape (n_features,): read, write in place, or "
                        "assign (copied in).")
    beta = _norm_array("_beta", "The shift, shape (n_features,); assignable like gamma.")
    dgamma = _norm_array("_dgamma", "Gradient of the loss with respect to gamma from the last "
                         "training batch.", assignable=False)
    dbeta = _norm_array("_dbeta", "Gradient of the loss with respect to beta from the last "
                        "training batch.", assignable=False)

    def __call__(self, x):
        self.gamma  # noqa: B018 - materialise the layer's own arrays if it has none yet
        return super().__call__(x)

    __call__.__doc__ = Layer.__call__.__doc__

    def _backward(self, dy, x, buf, model):
        return _core.norm_backward(self._kind, dy, x, buf.mean, buf.invstd, self._gamma,
                                   dx=buf.dx, dgamma=self._dgamma, dbeta=self._dbeta,
                                   need_dx=buf.dx is not None)[0]


class BatchNorm(_Norm):
    """Batch normalisation, ``torch.nn.BatchNorm1d``: each feature normalised by its mean
    and variance, then scaled and shifted, ``y = gamma * (x - mean) / sqrt(var + eps) +
    beta``.

    In training the mean and the (biased) variance are the batch's, and the running
    statistics move towards them: ``running = (1 - momentum) * running + momentum * stat``,
    with the *unbiased* variance for ``running_var``. In inference (``predict``,
    ``evaluate``, validation) the running statistics normalise. Training batches need at
    least 2 rows.

    Parameters
    ----------
    n_features : int
        Number of features (in and out).
    momentum : float, default 0.1
        Weight of the batch's statistics in the running ones, in [0, 1].
    eps : float, default 1e-5
        Added to the variance.

    Attributes
    ----------
    gamma, beta : ndarray, shape (n_features,)
        The learnt scale (ones) and shift (zeros); assignable like Dense.W.
    running_mean, running_var : ndarray, shape (n_features,)
        The running statistics (zeros, ones): buffers, not parameters (saved, loaded and in
        ``state_dict``; the optimizer and weight decay never touch them).
    """

    _kind = "batch"

    def __init__(self, n_features, momentum=0.1, eps=1e-5):
        super().__init__(n_features, eps)
        momentum = check_number(momentum, "momentum")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum!r}")
        object.__setattr__(self, "_momentum", momentum)
        self._running_mean = self._running_var = None

    @property
    def momentum(self):
        """The running statistics' momentum (fixed at construction)."""
        return self._momentum

    def _buffer_shapes(self):
        return [("running_mean", (self._d,)), ("running_var", (self._d,))]

    def _materialize(self):
        super()._materialize()
        self._running_mean, self._running_var = np.zeros(self._d), np.ones(self._d)

    def _attach_state(self, arrays):
        if self._running_mean is not None:
            arrays["running_mean"][...] = self._running_mean
            arrays["running_var"][...] = self._running_var
        else:
            arrays["running_mean"][...], arrays["running_var"][...] = 0, 1
        self._running_mean, self._running_var = arrays["running_mean"], arrays["running_var"]

    running_mean = _norm_array("_running_mean", "The running mean, shape (n_features,); "
                               "assignable like gamma.")
    running_var = _norm_array("_running_var", "The running (unbiased) variance, shape "
                              "(n_features,); assignable like gamma (values >= 0).",
                              nonnegative=True)

    def _buffers(self, n, n_in, dtype, training, need_dx):
        d = self._d
        return _Buffers(y=np.empty((n, d), dtype),
                        dx=np.empty((n, d), dtype) if training and need_dx else None,
                        stats=np.empty((2, d), dtype) if training else None)

    def _forward(self, x, buf, training, model):
        if training and x.shape[0] < 2:
            raise ValueError(f"{self!r} in training needs batches of at least 2 rows to "
                             f"estimate a variance, got {x.shape[0]}")
        return _core.norm_forward("batch", x, self._gamma, self._beta,
                                  running_mean=self._running_mean,
                                  running_var=self._running_var, eps=self._eps,
                                  momentum=self._momentum, training=training, out=buf.y,
                                  mean=buf.mean, invstd=buf.invstd)[0]

    def get_config(self):
        return {"n_features": self._d, "momentum": self._momentum, "eps": self._eps}

    def __repr__(self):
        extra = "" if self._momentum == 0.1 else f", momentum={self._momentum!r}"
        extra += "" if self._eps == 1e-5 else f", eps={self._eps!r}"
        return f"BatchNorm({self._d}{extra})"


class LayerNorm(_Norm):
    """Layer normalisation, ``torch.nn.LayerNorm`` over the features: each row normalised by
    its own mean and (biased) variance, then scaled and shifted per feature,
    ``y = gamma * (x - mean) / sqrt(var + eps) + beta``. The same in training and inference.

    Parameters
    ----------
    n_features : int
        Number of features (in and out).
    eps : float, default 1e-5
        Added to the variance.

    Attributes
    ----------
    gamma, beta : ndarray, shape (n_features,)
        The learnt scale (ones) and shift (zeros); assignable like Dense.W.
    """

    _kind = "layer"

    def _buffers(self, n, n_in, dtype, training, need_dx):
        d = self._d
        return _Buffers(y=np.empty((n, d), dtype),
                        dx=np.empty((n, d), dtype) if training and need_dx else None,
                        stats=np.empty((2, n), dtype) if training else None, row_stats=True)

    def _forward(self, x, buf, training, model):
        return _core.norm_forward("layer", x, self._gamma, self._beta, eps=self._eps,
                                  training=training, out=buf.y, mean=buf.mean,
                                  invstd=buf.invstd)[0]

    def get_config(self):
        return {"n_features": self._d, "eps": self._eps}

    def __repr__(self):
        extra = "" if self._eps == 1e-5 else f", eps={self._eps!r}"
        return f"LayerNorm({self._d}{extra})"


class _ResidualBuffers:
    """A Residual's workspace: its layers' buffers, their inputs in the current batch, the
    output y and, in training, the skip path's copy of dy and the input gradient dx."""

    __slots__ = ("subs", "inputs", "y", "skip", "dx")

    def __init__(self, subs, y, skip=None, dx=None):
        self.subs, self.y, self.skip, self.dx = subs, y, skip, dx
        self.inputs = [None] * len(subs)

    def rows(self, n):
        def cut(a):
            return None if a is None else a[:n]

        return _ResidualBuffers([b.rows(n) for b in self.subs], cut(self.y), cut(self.skip),
                                cut(self.dx))


class Residual(Layer):
    """A residual block: ``y = x + f(x)``, with ``f`` the given layers in a row (which must
    give as many features as they take). Blocks nest, and may hold Dropout and norms.

    The ResNet block of "Revisiting Deep Learning Models for Tabular Data"::

        nn.Residual([nn.BatchNorm(d), nn.Dense(d, h, activation="relu"), nn.Dropout(0.1),
                     nn.Dense(h, d), nn.Dropout(0.1)])

    Parameters
    ----------
    layers : list of Layer
        The layers of ``f``, first to last (at least one).

    Attributes
    ----------
    layers : list of Layer
        The same layers; their parameters are named ``"<block>.<k>.<name>"`` in the model's
        ``state_dict`` (``"1.0.W"``: the first layer's W in the block at index 1).
    """

    def __init__(self, layers):
        super().__init__()
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"Residual takes a list of layers, got {type(layers).__name__}; "
                            f"write Residual([layer, ...])")
        layers = list(layers)
        if not layers:
            raise ValueError("Residual needs at least one layer (y = x + f(x))")
        for k, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual layers[{k}] is {layer!r}, not an nncore layer")
        if len(set(map(id, layers))) != len(layers):
            raise ValueError("the same layer object appears twice in a Residual; create "
                             "separate layers")
        object.__setattr__(self, "_layers", layers)

    @property
    def layers(self):
        """The block's layers (a new list)."""
        return list(self._layers)

    @property
    def has_params(self):
        """True when a layer of the block holds parameters."""
        return any(layer.has_params for layer in self._layers)

    @property
    def in_features(self):
        """The first fixed input width of the block's layers, or None."""
        for layer in self._layers:
            if layer.in_features is not None:
                return layer.in_features
        return None

    def output_features(self, in_features):
        n = in_features
        for k, layer in enumerate(self._layers):
            need = layer.in_features
            if need is not None and n is not None and need != n:
                raise ValueError(f"{self!r}: layers[{k}] {layer!r} expects {need} input "
                                 f"features but receives {n}")
            n = layer.output_features(n if n is not None else need)
        if in_features is not None and n != in_features:
            raise ValueError(f"{self!r} takes {in_features} features but its layers give "
                             f"{n}: x + f(x) needs f to keep the width")
        return in_features if in_features is not None else n

    def _param_shapes(self):
        return [(f"{k}.{name}", shape) for k, layer in enumerate(self._layers)
                for name, shape in layer._param_shapes()]

    def _buffer_shapes(self):
        return [(f"{k}.{name}", shape) for k, layer in enumerate(self._layers)
                for name, shape in layer._buffer_shapes()]

    @staticmethod
    def _part(arrays, k):
        prefix = f"{k}."
        return {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}

    def _attach(self, model, params, grads, rng):
        super()._attach(model, params, grads, rng)
        for k, layer in enumerate(self._layers):
            layer._attach(model, self._part(params, k), self._part(grads, k), rng)

    def _attach_state(self, arrays):
        for k, layer in enumerate(self._layers):
            part = self._part(arrays, k)
            if part:
                layer._attach_state(part)

    def _named_params(self):
        return [(f"{k}.{name}", a) for k, layer in enumerate(self._layers)
                for name, a in layer._named_params()]

    def _named_grads(self):
        return [(f"{k}.{name}", a) for k, layer in enumerate(self._layers)
                for name, a in layer._named_grads()]

    def _inner_first(self):
        """The index of the first layer with parameters (len when none)."""
        return next((k for k, layer in enumerate(self._layers) if layer.has_params),
                    len(self._layers))

    def _dtype(self):
        for layer in self._layers:
            if layer.has_params:
                return layer._dtype()
        return np.dtype(np.float64)

    def __call__(self, x):
        for layer in self._layers:  # their own arrays, if they have none yet (not in a model)
            if layer.has_params and layer._model is None:
                layer._named_params()
        return super().__call__(x)

    __call__.__doc__ = Layer.__call__.__doc__

    def _buffers(self, n, n_in, dtype, training, need_dx):
        first, subs, d = self._inner_first(), [], n_in
        for k, layer in enumerate(self._layers):
            subs.append(layer._buffers(n, d, dtype, training, need_dx or k > first))
            d = layer.output_features(d)
        return _ResidualBuffers(
            subs, np.empty((n, n_in), dtype),
            skip=np.empty((n, n_in), dtype) if training else None,
            dx=np.empty((n, n_in), dtype) if training and need_dx else None)

    def _forward(self, x, buf, training, model):
        h = x
        for k, layer in enumerate(self._layers):
            buf.inputs[k] = h
            h = layer._forward(h, buf.subs[k], training, model)
        return np.add(h, x, out=buf.y)

    def _backward(self, dy, x, buf, model):
        # With dx wanted, the gradient goes through every layer of f to the block's input;
        # without, down to f's first layer with parameters.
        np.copyto(buf.skip, dy)  # the layers may overwrite dy (dz in place)
        g, last = dy, 0 if buf.dx is not None else self._inner_first()
        for k in range(len(self._layers) - 1, last - 1, -1):
            g = self._layers[k]._backward(g, buf.inputs[k], buf.subs[k], model)
        return None if buf.dx is None else np.add(g, buf.skip, out=buf.dx)

    def get_config(self):
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._layers]}

    @classmethod
    def from_config(cls, config):
        return cls([get(c) for c in config.get("layers", [])])

    def __repr__(self):
        return f"Residual([{', '.join(repr(layer) for layer in self._layers)}])"


_LAYERS = {"Dense": Dense, "Dropout": Dropout, "Activation": Activation,
           "BatchNorm": BatchNorm, "LayerNorm": LayerNorm, "Residual": Residual}


def get(config):
    """A layer from ``{"class": name, "config": {...}}`` (as written in model files)."""
    try:
        cls = _LAYERS[config["class"]]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer description {config!r}; known layers: "
                         f"{sorted(_LAYERS)}") from None
    return cls.from_config(dict(config.get("config", {})))


def _walk(layers):
    """Every layer of ``layers`` in order, those inside residual blocks included."""
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _walk(layer._layers)


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
