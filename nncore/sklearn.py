"""scikit-learn estimators: :class:`NNClassifier` and :class:`NNRegressor`.

They wrap a :class:`nncore.Sequential` multi-layer perceptron so that it works with
scikit-learn's pipelines, grid search, cross-validation, ``clone`` and pickle::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from nncore.sklearn import NNClassifier

    clf = make_pipeline(StandardScaler(), NNClassifier(hidden_layer_sizes=(100,)))
    clf.fit(X_train, y_train).score(X_test, y_test)

This module imports scikit-learn; ``import nncore`` does not import it (scikit-learn is only
needed when these classes are used).

Differences from :class:`sklearn.neural_network.MLPClassifier` worth knowing:

* Inputs are not scaled: like scikit-learn's MLP, the estimators train on X as given. Put a
  ``StandardScaler`` in front of them (a Pipeline) when the features have different scales.
  Regression targets are not scaled either (use ``TransformedTargetRegressor`` for targets
  far from unit scale).
* ``optimizer`` is ``"adam"``, ``"adamw"`` or ``"sgd"`` (PyTorch's update formulas, see
  :mod:`nncore.optimizers`); ``weight_decay`` plays the role of MLP's ``alpha``.
* Early stopping (``early_stopping=True``) watches the validation *loss* and puts back the
  weights of the best epoch.
* ``dtype`` defaults to float64 so that predictions are stable to rounding (scikit-learn's
  conventions compare them closely); ``dtype="float32"`` is faster.
* For deployment, prefer ``est.model_.save(path)`` (safetensors, no code runs on loading)
  over pickle; pickle works because it is the scikit-learn convention.
* A call that fails leaves the estimator exactly as it was: not fitted after a failed first
  ``fit`` or ``partial_fit``, the previous fit intact (``model_``, ``classes_``,
  ``n_iter_``, ``loss_curve_``, ...) after a failed refit. This includes a fit that
  diverges: when a loss or a weight becomes NaN or infinite, ``fit`` and ``partial_fit``
  raise ValueError naming the learning rate. (scikit-learn's MLP raises "Solver produced
  non-finite parameter weights" but keeps the non-finite weights as its fitted state.)
"""

import contextlib
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight, check_is_fitted, column_or_1d, validate_data,
)

from . import _threads
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from .models import Sequential

__all__ = ["NNClassifier", "NNRegressor"]

_OPTIMIZERS = ("adam", "adamw", "sgd")
_ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "silu", "leaky_relu",
                "identity")
_DTYPES = ("float32", "float64", "mixed_bfloat16")


def _array_dtype(dtype):
    """The dtype of the arrays a model of dtype (a policy name) takes: mixed_bfloat16's is
    float32."""
    return "float32" if dtype == "mixed_bfloat16" else dtype
# Everything a fit sets on the estimator. A call builds the new values aside and assigns them
# together only when it succeeds (_commit), so a failed call leaves them as they were.
_INPUT_ATTRS = ("n_features_in_", "feature_names_in_")  # set by validate_data(reset=True)
_FITTED = _INPUT_ATTRS + ("model_", "classes_", "_label_binarizer", "_multilabel", "_y_ndim",
                          "loss_curve_", "validation_loss_curve_", "n_iter_", "best_loss_")


@contextlib.contextmanager
def _num_threads(n):
    """Run the block with nncore's default thread count set to n (None: leave it). The
    setting is process-wide while the block runs; the previous count is put back after."""
    if n is None:
        yield
        return
    before = _threads.get_num_threads()
    _threads.set_num_threads(n)
    try:
        yield
    finally:
        _threads.set_num_threads(None)
        if _threads.get_num_threads() != before:  # a count had been set explicitly
            _threads.set_num_threads(before)


def _model_state(model):
    """A picklable description of a compiled Sequential: architecture, weights, compile
    settings, optimizer state and random streams (what a model file holds)."""
    return {"config": model.get_config(), "dtype": model.policy,
            "params": model.state_dict(), "loss": model.loss.get_config(),
            "optimizer": model.optimizer.state_dict(), "rng": model._rng_state()}


def _model_from_state(state):
    model = Sequential.from_config(state["config"], dtype=state["dtype"])
    model.load_state_dict(state["params"])
    opt = state["optimizer"]
    model.compile(_optimizers.get(opt["config"]), _losses.get(state["loss"]))
    model.optimizer.load_state_dict(opt)
    model._set_rng_state(state["rng"])
    return model


@contextlib.contextmanager
def _undone_on_error(model):
    """Run the block, which trains model in place (partial_fit), and on any error put the
    model back as it was: weights, optimizer state and random streams (what _model_state
    holds; pickling relies on them to resume training the same), and its history."""
    params = model.params.copy()
    opt, rng = model.optimizer.state_dict(), model._rng_state()
    history, stop = model.history, model.stop_training
    try:
        yield
    except BaseException:
        np.copyto(model.params, params)
        model.optimizer.load_state_dict(opt)
        model._set_rng_state(rng)
        model.history, model.stop_training = history, stop
        raise


def _scaled(w):
    """w (non-negative, finite) times the power of two that brings its maximum into
    [0.5, 1). The scaling is exact, so a weighted loss ``sum w_i l_i / sum w_i`` keeps every
    bit, while the sum of the weights can no longer overflow and a float32 copy of them no
    longer flushes small ones (1e-45) to zero."""
    top = float(np.max(w)) if np.size(w) else 0.0
    return np.ldexp(w, -np.frexp(top)[1]) if top > 0 else w


class _Divergence(_callbacks.Callback):
    """Stops a fit at the end of the first epoch whose loss or validation loss is NaN or
    infinite (EarlyStopping alone reads NaN as "no improvement" and trains on), and says
    where."""

    def __init__(self):
        self.found = None  # (epoch, log key, value)

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            v = (logs or {}).get(key)
            if v is not None and not math.isfinite(v):
                self.found = (epoch, key, v)
                self.model.stop_training = True
                return


class _BaseNN(BaseEstimator):
    """Shared parameters, validation and training loop of NNClassifier and NNRegressor."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, weight_decay=0.0, batch_size="auto",
                 max_epochs=200, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, dropout=0.0, batch_norm=False,
                 dtype="float64", n_threads=None, random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.dtype = dtype
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ---- parameters ---------------------------------------------------------------------
    def _check_params(self):
        """Validate the constructor parameters (at fit time, as scikit-learn requires)."""
        name = type(self).__name__
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(isinstance(h, numbers.Integral) and not isinstance(
                h, bool) and h >= 1 for h in sizes):
            raise ValueError(f"{name}: hidden_layer_sizes must be a tuple of positive "
                             f"integers such as (100,) or (64, 32) (or () for none), got "
                             f"{self.hidden_layer_sizes!r}")

        def choice(attr, options):
            v = getattr(self, attr)
            if not isinstance(v, str) or v.lower() not in options:
                raise ValueError(f"{name}: {attr} must be one of {options}, got {v!r}")
            return v.lower()

        def number(attr, lo, hi=None, lo_open=False, hi_open=False, integer=False):
            v = getattr(self, attr)
            kind = numbers.Integral if integer else numbers.Real
            ok = isinstance(v, kind) and not isinstance(v, bool) and np.isfinite(v)
            if ok:
                ok = (v > lo if lo_open else v >= lo) and (
                    hi is None or (v < hi if hi_open else v <= hi))
            if not ok:
                what = "an integer" if integer else "a number"
                rng = (("(" if lo_open else "[") + f"{lo}, "
                       + ("inf)" if hi is None else f"{hi}" + (")" if hi_open else "]")))
                raise ValueError(f"{name}: {attr} must be {what} in {rng}, got {v!r}")
            return int(v) if integer else float(v)

        p = {"sizes": tuple(int(h) for h in sizes),
             "activation": choice("activation", _ACTIVATIONS),
             "optimizer": choice("optimizer", _OPTIMIZERS),
             "dtype": choice("dtype", _DTYPES),
             "learning_rate": number("learning_rate", 0, lo_open=True),
             "momentum": number("momentum", 0, 1, hi_open=True),
             "weight_decay": number("weight_decay", 0),
             "max_epochs": number("max_epochs", 1, integer=True),
             "validation_fraction": number("validation_fraction", 0, 1, True, True),
             "n_iter_no_change": number("n_iter_no_change", 1, integer=True),
             "tol": number("tol", 0),
             "dropout": number("dropout", 0, 1, hi_open=True),
             "loss": choice("loss", self._LOSSES)}
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"{name}: batch_norm must be True or False, got "
                             f"{self.batch_norm!r}")
        p["batch_norm"] = bool(self.batch_norm)
        bs = self.batch_size
        if not (isinstance(bs, str) and bs == "auto") and not (
                isinstance(bs, numbers.Integral) and not isinstance(bs, bool) and bs >= 1):
            raise ValueError(f"{name}: batch_size must be a positive integer or 'auto' "
                             f"(min(200, n_samples)), got {bs!r}")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"{name}: early_stopping must be True or False, got "
                             f"{self.early_stopping!r}")
        nt = self.n_threads
        if nt is not None and not (isinstance(nt, numbers.Integral) and not isinstance(
                nt, bool) and nt >= 1):
            raise ValueError(f"{name}: n_threads must be a positive integer or None (the "
                             f"nncore default, nncore.get_num_threads()), got {nt!r}")
        if not isinstance(self.verbose, (numbers.Integral, bool, np.bool_)):
            raise ValueError(f"{name}: verbose must be an integer (0 silent, 1 one line "
                             f"per epoch), got {self.verbose!r}")
        return p

    def _batch_size(self, n):
        bs = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        if self.batch_norm:  # batch norm needs 2 rows a batch: no last batch of one
            while bs > 2 and n % bs == 1:
                bs -= 1
        return bs

    # ---- building ---------------------------------------------------------------------------
    def _new_model(self, p, n_features, n_outputs, loss):
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        layers, n_in = [], n_features
        for h in p["sizes"]:
            if p["batch_norm"]:  # Dense, BatchNorm, activation: the usual order
                layers += [_layers.Dense(n_in, h), _layers.BatchNorm(h),
                           _layers.Activation(p["activation"])]
            else:
                layers.append(_layers.Dense(n_in, h, activation=p["activation"]))
            if p["dropout"] > 0:
                layers.append(_layers.Dropout(p["dropout"]))
            n_in = h
        layers.append(_layers.Dense(n_in, n_outputs))
        model = Sequential(layers, dtype=p["dtype"], seed=seed)
        lr, wd = p["learning_rate"], p["weight_decay"]
        if p["optimizer"] == "sgd":
            opt = _optimizers.SGD(lr, momentum=p["momentum"], weight_decay=wd)
        elif p["optimizer"] == "adamw":
            opt = _optimizers.AdamW(lr, weight_decay=wd)
        else:
            opt = _optimizers.Adam(lr, weight_decay=wd)
        model.compile(opt, loss)
        return model

    # ---- training ---------------------------------------------------------------------------
    @staticmethod
    def _drop_zero_weights(X, Y, W):
        """Rows of weight 0 teach nothing: drop them; equal weights are the same as none."""
        if W is None:
            return X, Y, None
        keep = W > 0
        if not keep.all():
            X, Y, W = X[keep], Y[keep], W[keep]
        if W.size and np.all(W == W[0]):
            W = None
        return X, Y, W

    def _fit_model(self, p, model, X, Y, W, epochs, val=None, callbacks=()):
        """model.fit, refusing a result whose loss or weights are not finite (the callers
        assign the fitted attributes only when this returns)."""
        watch = _Divergence()
        with _num_threads(self.n_threads):
            hist = model.fit(X, Y, epochs=epochs, batch_size=self._batch_size(X.shape[0]),
                             validation_data=val, sample_weight=W,
                             callbacks=[watch, *callbacks], verbose=2 if self.verbose else 0)
        if watch.found is None and np.isfinite(model.params).all():
            return hist
        if watch.found is not None:
            epoch, key, v = watch.found
            what = (f"the {'validation' if key == 'val_loss' else 'training'} loss became "
                    f"{v!r} in epoch {epoch + 1}")
        else:
            what = "the weights became non-finite"
        opt = model.optimizer  # partial_fit goes on with the settings of its first call
        lr = opt.lr
        raise ValueError(
            f"{type(self).__name__}: training diverged: {what} with optimizer="
            f"{type(opt).__name__.lower()!r} and learning_rate={lr!r}. Use a smaller "
            f"learning_rate "
            f"(e.g. {lr / 10:g}), or {self._SCALE_HINT} if they hold large values. The "
            f"estimator was left as it was before this call ("
            f"{'the previous fit is kept' if hasattr(self, 'model_') else 'not fitted'}).")

    def _train(self, p, model, X, Y, W, stratified):
        """Train the new network model from its initial weights on encoded targets Y; return
        the fitted attributes (model_ and the training record)."""
        X, Y, W = self._drop_zero_weights(X, Y, W)
        val = None
        if self.early_stopping:
            stratify = Y.reshape(X.shape[0], -1)[:, 0] if stratified else None
            n_val = int(np.ceil(p["validation_fraction"] * X.shape[0]))
            if n_val < 1 or X.shape[0] - n_val < 1:
                raise ValueError(f"early_stopping=True with validation_fraction="
                                 f"{self.validation_fraction} leaves no samples for training "
                                 f"or validation out of {X.shape[0]}; use more samples, "
                                 f"another validation_fraction, or early_stopping=False")
            if stratify is not None:
                counts = np.unique(stratify, return_counts=True)[1]
                if counts.min() < 2 or n_val < len(counts):
                    stratify = None
            parts = train_test_split(
                *(a for a in (X, Y, W) if a is not None), test_size=n_val,
                random_state=int(model.seed_value % (2**32 - 1)), stratify=stratify)
            X, Xv, Y, Yv = parts[:4]
            W, Wv = (parts[4], parts[5]) if W is not None else (None, None)
            val = (Xv, Yv) if Wv is None else (Xv, Yv, Wv)
            monitor = "val_loss"
        else:
            monitor = "loss"
        stopper = _callbacks.EarlyStopping(monitor, min_delta=p["tol"],
                                           patience=p["n_iter_no_change"],
                                           restore_best_weights=self.early_stopping)
        hist = self._fit_model(p, model, X, Y, W, p["max_epochs"], val, [stopper])
        h = hist.history
        loss_curve = [float(v) for v in h["loss"]]
        if not model.stop_training:
            warnings.warn(f"{type(self).__name__}: max_epochs={p['max_epochs']} reached "
                          f"and the optimization hasn't converged yet ({monitor} still "
                          f"improves by more than tol={p['tol']}); increase max_epochs",
                          ConvergenceWarning)
        return {"model_": model, "loss_curve_": loss_curve,
                "validation_loss_curve_": ([float(v) for v in h["val_loss"]]
                                           if val is not None else None),
                "n_iter_": len(loss_curve), "best_loss_": float(stopper.best)}

    def _train_one_epoch(self, p, model, X, Y, W, first):
        """partial_fit's epoch: on the first call, of the new network model; after it, of
        model_, in place and undone if the call fails. Returns the fitted attributes."""
        X, Y, W = self._drop_zero_weights(X, Y, W)
        if first:
            curve, n_iter, best, val_curve = [], 0, np.inf, None
        else:
            curve, n_iter, best = list(self.loss_curve_), self.n_iter_, self.best_loss_
            val_curve = self.validation_loss_curve_
        if X.shape[0]:  # a batch whose weights are all 0 teaches nothing: no epoch
            with contextlib.nullcontext() if first else _undone_on_error(model):
                hist = self._fit_model(p, model, X, Y, W, 1)
            curve.append(float(hist.history["loss"][0]))
            n_iter += 1
            best = min(best, curve[-1])
        return {"model_": model, "loss_curve_": curve, "validation_loss_curve_": val_curve,
                "n_iter_": n_iter, "best_loss_": best}

    _SCALE_HINT = "scale X (StandardScaler)"  # what the divergence error suggests

    def _sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        return _scaled(_check_sample_weight(sample_weight, X, dtype=np.float64,
                                            ensure_non_negative=True, copy=True))

    def _validate_new(self, X, y, dtype):
        """_validate_xy for a call that starts a new fit, without touching the fitted state:
        validate_data(reset=True) records n_features_in_ (and feature_names_in_) on the
        estimator, so the new values are taken back out and returned for _commit."""
        saved = {k: self.__dict__.pop(k) for k in _INPUT_ATTRS if k in self.__dict__}
        try:
            out = self._validate_xy(X, y, True, dtype)
            seen = {k: self.__dict__[k] for k in _INPUT_ATTRS if k in self.__dict__}
        finally:
            for k in _INPUT_ATTRS:
                self.__dict__.pop(k, None)
            self.__dict__.update(saved)
        return out, seen

    def _commit(self, fitted, new):
        """Make a successful call's results the fitted state, in one step at its very end.
        new (fit, a first partial_fit): the attributes of an earlier fit go first."""
        if new:
            for k in _FITTED:
                self.__dict__.pop(k, None)
        self.__dict__.update(fitted)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=self.model_.dtype)
        with _num_threads(self.n_threads):
            return self.model_.predict(X)

    # ---- pickling ---------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            state["_model_state"] = _model_state(model)
        return state

    def __setstate__(self, state):
        state = dict(state)
        model_state = state.pop("_model_state", None)
        super().__setstate__(state)
        if model_state is not None:
            self.model_ = _model_from_state(model_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Units of each hidden Dense layer, first to last (``()`` for none: a linear model).
    activation : {"relu", "tanh", "sigmoid", "gelu", "gelu_tanh", "silu", "leaky_relu", \
"identity"}, default "relu"
        Activation of the hidden layers (the output layer has none).
    optimizer : {"adam", "adamw", "sgd"}, default "adam"
        :class:`nncore.Adam`, :class:`nncore.AdamW` or :class:`nncore.SGD`.
    learning_rate : float, default 1e-3
    momentum : float, default 0.9
        SGD's momentum (used by ``optimizer="sgd"`` only).
    weight_decay : float, default 0
        L2 penalty (Adam, SGD) or decoupled weight decay (AdamW).
    batch_size : int or "auto", default "auto"
        Rows per update; "auto" is ``min(200, n_samples)`` as in scikit-learn's MLP.
    max_epochs : int, default 200
        Passes over the training data at most.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data ({split}), stop when the
        validation loss has not improved by more than ``tol`` for ``n_iter_no_change``
        epochs, and keep the weights of the best epoch. Without it, training stops when the
        training loss has not improved by more than ``tol`` for ``n_iter_no_change`` epochs.
    validation_fraction : float, default 0.1
        In (0, 1); used with ``early_stopping=True``.
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
    dropout : float, default 0
        Dropout rate after each hidden layer (0 for none).
    batch_norm : bool, default False
        A :class:`nncore.BatchNorm` between each hidden Dense layer and its activation
        (training batches then keep at least 2 rows: a last batch of one row is avoided by
        a batch one row smaller). The batch statistics are unweighted, as PyTorch's: a
        sample weight is then not the same as repeating the sample.
    dtype : {"float64", "float32", "mixed_bfloat16"}, default "float64"
        Precision of the weights and of all computation. float32 is faster; float64 gives
        predictions that are stable to rounding, which scikit-learn's checks expect;
        "mixed_bfloat16" keeps float32 weights and takes the products on bfloat16 operands
        (see :class:`nncore.Sequential`).
    n_threads : int or None, default None
        Threads for the compiled kernels during fit and predict (None: nncore's default,
        :func:`nncore.get_num_threads`). The setting is process-wide while the call runs.
    random_state : int, RandomState instance or None, default None
        Seeds the initial weights, the shuffling, the dropout masks and the validation
        split: an int gives reproducible fits; None gives different ones each fit.
    verbose : int, default 0
        Non-zero prints one line per epoch.
"""

_ATTRS_DOC = """
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names (a pandas DataFrame).
    loss_curve_ : list of float
        Training loss of each epoch (on the encoded targets).
    validation_loss_curve_ : list of float or None
        Validation loss of each epoch with ``early_stopping=True``.
    best_loss_ : float
        Best value of the monitored loss (validation loss with early stopping).
    n_iter_ : int
        Epochs run.
    model_ : nncore.Sequential
        The trained network (its last layer has no activation: it outputs logits or the
        regression values). Save it with ``est.model_.save(path)``.
"""


class NNClassifier(ClassifierMixin, _BaseNN):
    __doc__ = ("""Multi-layer perceptron classifier trained by nncore's compiled core.

    Binary problems use one output and ``bce_with_logits``; multiclass problems one output per
    class and ``cross_entropy``; multilabel problems (y a 0/1 indicator matrix) one output per
    label and ``bce_with_logits``. Labels may be any values (strings too); ``classes_`` holds
    them sorted.
""" + _PARAMS_DOC.replace(
    "{split}", "stratified by class when every class has two or more samples")
        + """    class_weight : dict, "balanced" or None, default None
        Weights per class (``{label: weight}``), multiplied into ``sample_weight``;
        "balanced" uses ``n_samples / (n_classes * count(class))``. Not for multilabel y.
    loss : {"log_loss"}, default "log_loss"
        The cross-entropy (softmax for classes, sigmoid for binary and multilabel y).

    Attributes
    ----------
    classes_ : ndarray
        The class labels (multilabel: ``arange(n_labels)``).""" + _ATTRS_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from nncore.sklearn import NNClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), NNClassifier(
    ...     hidden_layer_sizes=(32,), learning_rate=1e-2, batch_size=16, random_state=0))
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
""")

    _LOSSES = ("log_loss",)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, weight_decay=0.0, batch_size="auto",
                 max_epochs=200, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, dropout=0.0, batch_norm=False,
                 dtype="float64", n_threads=None, random_state=None, verbose=0,
                 class_weight=None, loss="log_loss"):
        super().__init__(
            hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
            momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            tol=tol, dropout=dropout, batch_norm=batch_norm, dtype=dtype,
            n_threads=n_threads, random_state=random_state, verbose=verbose)
        self.class_weight = class_weight
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    # ---- parameters and targets -----------------------------------------------------------
    def _check_params(self):
        p = super()._check_params()
        cw = self.class_weight
        if cw is None or (isinstance(cw, str) and cw == "balanced"):
            return p
        if not isinstance(cw, dict):
            raise ValueError(f"{type(self).__name__}: class_weight must be a dict "
                             f"{{label: weight}}, 'balanced' or None, got {cw!r}")
        for label, w in cw.items():
            if not (isinstance(w, numbers.Real) and not isinstance(w, (bool, np.bool_))
                    and math.isfinite(w) and w >= 0):
                raise ValueError(f"{type(self).__name__}: class_weight[{label!r}] must be a "
                                 f"finite number >= 0, got {w!r}; give class {label!r} a "
                                 f"weight such as 1.0 (0 leaves its samples out)")
        return p

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        return X, y

    @staticmethod
    def _targets(y):
        """The fitted attributes that describe the labels of y (or of a list of classes)."""
        lb = LabelBinarizer()
        lb.fit(y)
        return {"_label_binarizer": lb, "classes_": lb.classes_,
                "_multilabel": lb.y_type_.startswith("multilabel")}

    @staticmethod
    def _encode(y, t):
        """Targets in the form the model's loss takes (t: the _targets)."""
        classes = t["classes_"]
        if t["_multilabel"]:
            if type_of_target(y) != "multilabel-indicator" or y.shape[1] != len(classes):
                raise ValueError(f"y must be a multilabel indicator matrix with "
                                 f"{len(classes)} columns, as in the first fit, got "
                                 f"{type_of_target(y)!r} y of shape {y.shape}")
            return np.asarray(y, dtype=np.float64)
        if type_of_target(y).startswith("multilabel") or (
                np.ndim(y) == 2 and y.shape[1] > 1):
            raise ValueError(f"y has shape {np.shape(y)} but this classifier was set up for "
                             f"1-D class labels {classes!r}")
        unseen = np.setdiff1d(y, classes)
        if unseen.size:
            raise ValueError(f"y contains labels {unseen.tolist()} not in classes_ "
                             f"{classes.tolist()}; pass every label in classes= on the "
                             f"first partial_fit call")
        codes = np.searchsorted(classes, y)
        if len(classes) == 2:
            return codes.astype(np.float64).reshape(-1, 1)
        return codes.astype(np.int64)

    @staticmethod
    def _loss_and_outputs(t):
        if t["_multilabel"]:
            return "bce_with_logits", len(t["classes_"])
        if len(t["classes_"]) == 2:
            return "bce_with_logits", 1
        return "cross_entropy", len(t["classes_"])

    def _require_a_weight(self, W, sample_weight):
        """fit needs a sample of positive weight (partial_fit skips a batch without one).
        sample_weight alone is never all 0 (_check_sample_weight refuses it); class_weight,
        alone or times sample_weight, may be."""
        if W is not None and not W.any():
            given = ("sample_weight and " if sample_weight is not None else "") + (
                f"class_weight={self.class_weight!r}")
            raise ValueError(f"{type(self).__name__}: every sample has a weight of 0 (from "
                             f"{given}): nothing to train on; give at least one sample a "
                             f"positive weight")

    def _weights(self, y, sample_weight, X, t):
        sw = self._sample_weight(sample_weight, X)
        if self.class_weight is not None:
            if t["_multilabel"]:
                raise ValueError("class_weight is not supported for multilabel y; pass "
                                 "sample_weight instead, or class_weight=None")
            cw = _scaled(compute_sample_weight(self.class_weight, y))
            sw = cw if sw is None else _scaled(sw * cw)  # both in [0, 1): no overflow
        return sw

    # ---- API ----------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Real features (not scaled by the estimator).
        y : array_like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multilabel classification.
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights; the loss is ``sum w_i l_i / sum w_i``. With a batch that
            covers all samples, integer weights are the same as repeating rows.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad parameters or data, and when training diverges (a loss or weight
            becomes NaN or infinite: lower ``learning_rate`` or scale X). The estimator is
            then left as it was: not fitted, or with its previous fit intact.
        """
        p = self._check_params()
        (X, y), seen = self._validate_new(X, y, _array_dtype(p["dtype"]))
        t = self._targets(y)
        if len(t["classes_"]) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, "
                             f"but y has only one class: {t['classes_'].tolist()}")
        W = self._weights(y, sample_weight, X, t)
        self._require_a_weight(W, sample_weight)
        Y = self._encode(y, t)
        loss, n_out = self._loss_and_outputs(t)
        model = self._new_model(p, X.shape[1], n_out, loss)
        fitted = self._train(p, model, X, Y, W, not t["_multilabel"])
        self._commit({**seen, **t, **fitted}, new=True)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch on (X, y), continuing from the current weights and optimizer
        state (a new network on the first call). ``early_stopping`` is ignored.

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        classes : array_like, optional
            Every class label; required on the first call (for multilabel y it may be
            omitted: the columns of y are the labels).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As for :meth:`fit`; the estimator is then left as it was before the call.
        """
        first = not hasattr(self, "model_")
        p = self._check_params()
        if first:
            (X, y), seen = self._validate_new(X, y, _array_dtype(p["dtype"]))
            multilabel = type_of_target(y).startswith("multilabel")
            if classes is None and not multilabel:
                raise ValueError("classes must be passed on the first call to partial_fit: "
                                 "every label the classifier will see, e.g. "
                                 "classes=numpy.unique(y_all)")
            t = self._targets(y if multilabel else np.asarray(classes))
            if len(t["classes_"]) < 2:
                raise ValueError(f"classes must hold at least 2 classes, got "
                                 f"{t['classes_'].tolist()}")
            loss, n_out = self._loss_and_outputs(t)
            model = self._new_model(p, X.shape[1], n_out, loss)
        else:
            X, y = self._validate_xy(X, y, False, self.model_.dtype)
            seen, model = {}, self.model_
            t = {"classes_": self.classes_, "_multilabel": self._multilabel}
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={np.asarray(classes).tolist()} differs from "
                                 f"classes_ {self.classes_.tolist()} of the first partial_fit "
                                 f"call; pass the same classes (or none after the first call)")
        W = self._weights(y, sample_weight, X, t)
        fitted = self._train_one_epoch(p, model, X, self._encode(y, t), W, first)
        self._commit({**seen, **t, **fitted} if first else fitted, new=first)
        return self

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; for multilabel y, each column is the probability of
            its label (the rows need not sum to 1).
        """
        logits = self._forward(X)
        if self._multilabel:
            return _sigmoid(logits)
        if len(self.classes_) == 2:
            p1 = _sigmoid(logits[:, 0])
            return np.column_stack([1.0 - p1, p1])
        z = logits - logits.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels (multilabel: a 0/1 indicator matrix).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
        """
        proba = self.predict_proba(X)
        if self._multilabel:
            return (proba > 0.5).astype(int)
        return self.classes_[np.argmax(proba, axis=1)]


def _sigmoid(z):
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


class NNRegressor(RegressorMixin, _BaseNN):
    __doc__ = ("""Multi-layer perceptron regressor trained by nncore's compiled core.

    The network has one linear output per target and is trained with the mean squared error,
    or ``loss="absolute_error"``, ``"huber"`` (delta 1) or ``"poisson"`` (y >= 0: the network
    gives the log of the mean and :meth:`predict` its exp, as scikit-learn's Poisson
    regressors). Neither X nor y is scaled by the estimator.
""" + _PARAMS_DOC.replace("{split}", "a random split") + """    loss : {"squared_error", "absolute_error", "huber", "poisson"}, default "squared_error"
        The training loss (scikit-learn's names): nncore's ``"mse"``, ``"l1"``,
        ``nn.Huber(delta=1.0)`` and ``"poisson"``.

    Attributes
    ----------""" + _ATTRS_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> from nncore.sklearn import NNRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> reg = NNRegressor(hidden_layer_sizes=(32,), learning_rate=1e-2, random_state=0)
    >>> reg.fit(X, X[:, 0] ** 2).score(X, X[:, 0] ** 2) > 0.9
    True
""")

    _LOSSES = ("squared_error", "absolute_error", "huber", "poisson")
    _NNCORE_LOSS = {"squared_error": "mse", "absolute_error": "l1", "huber": "huber",
                    "poisson": "poisson"}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, optimizer="adam",
                 learning_rate=1e-3, momentum=0.9, weight_decay=0.0, batch_size="auto",
                 max_epochs=200, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=1e-4, dropout=0.0, batch_norm=False,
                 dtype="float64", n_threads=None, random_state=None, verbose=0,
                 loss="squared_error"):
        super().__init__(
            hidden_layer_sizes, activation, optimizer=optimizer, learning_rate=learning_rate,
            momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            tol=tol, dropout=dropout, batch_norm=batch_norm, dtype=dtype,
            n_threads=n_threads, random_state=random_state, verbose=verbose)
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    _SCALE_HINT = ("scale X (StandardScaler) and y (TransformedTargetRegressor with a "
                   "StandardScaler)")

    def _validate_xy(self, X, y, reset, dtype):
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                             y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            return X, y.reshape(-1, 1), 1
        return X, y, 2

    def fit(self, X, y, sample_weight=None):
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Real targets; :meth:`predict` returns the same shape.
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights; the loss is ``sum w_i l_i / sum w_i``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For bad parameters or data, and when training diverges (a loss or weight
            becomes NaN or infinite: lower ``learning_rate``, or scale X and y). The
            estimator is then left as it was: not fitted, or with its previous fit intact.
        """
        p = self._check_params()
        (X, Y, ndim), seen = self._validate_new(X, y, _array_dtype(p["dtype"]))
        W = self._sample_weight(sample_weight, X)
        model = self._new_model(p, X.shape[1], Y.shape[1], self._NNCORE_LOSS[p["loss"]])
        fitted = self._train(p, model, X, Y, W, False)
        self._commit({**seen, "_y_ndim": ndim, **fitted}, new=True)
        return self

    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch on (X, y), continuing from the current weights and optimizer
        state (a new network on the first call). ``early_stopping`` is ignored.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As for :meth:`fit`; the estimator is then left as it was before the call.
        """
        first = not hasattr(self, "model_")
        p = self._check_params()
        if first:
            (X, Y, ndim), seen = self._validate_new(X, y, _array_dtype(p["dtype"]))
            model = self._new_model(p, X.shape[1], Y.shape[1], self._NNCORE_LOSS[p["loss"]])
            seen["_y_ndim"] = ndim
        else:
            X, Y, _ = self._validate_xy(X, y, False, self.model_.dtype)
            seen, model = {}, self.model_
            if Y.shape[1] != model.n_outputs:
                raise ValueError(f"y has {Y.shape[1]} outputs but the first partial_fit call "
                                 f"had {model.n_outputs}; pass y of the same width")
        W = self._sample_weight(sample_weight, X)
        fitted = self._train_one_epoch(p, model, X, Y, W, first)
        self._commit({**seen, **fitted}, new=first)
        return self

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when the model was fitted on a 1-D y.
        """
        out = self._forward(X)
        if self.model_.loss.name == "poisson":  # the network gives the log of the mean
            out = np.exp(out)
        return out[:, 0] if self._y_ndim == 1 else out
