"""Callbacks for :meth:`nncore.Sequential.fit`, after Keras: a :class:`Callback` base class,
:class:`History`, :class:`EarlyStopping`, :class:`TerminateOnNaN`, :class:`ModelCheckpoint`,
:class:`LearningRateScheduler`, and the progress display.

A callback sees ``logs``: a dict of the epoch's numbers (``"loss"``, the metrics, ``"lr"``
when a schedule is in force, and the same with a ``val_`` prefix on validation data). It can
stop training by setting ``self.model.stop_training = True``.
"""

import math
import sys
import time
import warnings

import numpy as np

from . import _core
from . import schedules as _schedules
from ._docs import inherit_docs
from ._validation import check_int, check_number

__all__ = ["Callback", "History", "EarlyStopping", "TerminateOnNaN", "ModelCheckpoint",
           "LearningRateScheduler", "ReduceLROnPlateau", "ProgressBar"]


class Callback:
    """Base class of the callbacks. Override any of the ``on_*`` methods.

    Attributes
    ----------
    model : Sequential
        The model being trained (set by ``fit``).
    params : dict
        ``{"epochs", "batch_size", "samples", "steps", "verbose"}`` of the current fit.
    """

    model = None
    params = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    #: In distributed training, run this callback on rank 0 only (it writes files).
    _root_only = False

    def set_model(self, model):
        """Called by fit with the model being trained."""
        self.model = model

    def set_params(self, params):
        """Called by fit with its settings (see :attr:`params`)."""
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch (also after an early stop)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of each epoch (``epoch`` counts from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of each epoch with the epoch's logs."""

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with ``{"size": rows, "loss": batch loss}``.

        Only callbacks that override this method make ``fit`` call it, so that training
        without them runs with no per-batch Python callback at all.
        """

    def _check(self, keys):
        """Raise ValueError before training if the callback cannot work with these log
        keys (called by fit while the model is still untouched)."""


class History(Callback):
    """The record of a training run, returned by ``fit`` (also ``model.history``).

    Attributes
    ----------
    history : dict of str to list of float
        One value per epoch for ``"loss"``, each metric, ``"lr"`` (with a schedule) and the
        ``val_`` versions.
    epoch : list of int
        The epochs run (from 0).
    params : dict
        The fit's settings (epochs, batch_size, samples, steps, verbose).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def __repr__(self):
        keys = ", ".join(self.history)
        return f"<History: {len(self.epoch)} epochs; {keys}>"


def _resolve_mode(mode, monitor, who):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who} mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
    return mode


def _check_monitor(monitor, keys, who):
    if monitor not in keys:
        hint = ""
        if monitor.startswith("val_") and not any(k.startswith("val_") for k in keys):
            hint = "; pass validation_split or validation_data to fit"
        raise ValueError(f"{who} monitors {monitor!r}, which fit will not report (it "
                         f"reports {sorted(keys)}){hint}")


class EarlyStopping(Callback):
    """Stop training when a monitored quantity stops improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
        The log to watch (``"loss"``, ``"val_loss"``, ``"val_accuracy"``, ...).
    min_delta : float, default 0
        Smallest change that counts as an improvement.
    patience : int, default 0
        Epochs without improvement after which training stops.
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better; "auto" picks "max" for accuracies.
    restore_best_weights : bool, default False
        At the end of training (stopped early or not), put back the weights of the best
        epoch.
    verbose : int, default 0
        1 prints a line when training stops.

    Attributes
    ----------
    best : float
        Best value seen.
    best_epoch : int
        Epoch (from 0) of the best value.
    stopped_epoch : int
        Epoch at which training was stopped (0 if it was not).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 restore_best_weights=False, verbose=0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a log name such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.min_delta = abs(check_number(min_delta, "min_delta"))
        self.patience = check_int(patience, "patience", 0)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None

    def _check(self, keys):
        _check_monitor(self.monitor, keys, "EarlyStopping")

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.params.copy()
        self.wait += 1
        if not math.isnan(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                np.copyto(self.best_weights, self.model.params)
        elif self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({self.monitor} has not improved "
                      f"on {self.best:.6g} for {self.wait} epochs)")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            np.copyto(self.model.params, self.best_weights)
            if self.verbose:
                print(f"Restored the weights of epoch {self.best_epoch + 1} "
                      f"({self.monitor} = {self.best:.6g})")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite.

    The model stops inside the epoch, at the first such batch, and keeps the weights of the
    last batch whose loss was finite (the update that made the loss non-finite is undone;
    the optimizer's state is not rolled back). A ``RuntimeWarning`` says which batch and
    epoch; the History's last ``"loss"`` is the non-finite value. Costs one copy of the
    parameters per batch.
    """

    _nan_guard = True

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(loss):
            return
        info = getattr(self.model, "_nonfinite", None)
        where = f"batch {info[0] + 1} of epoch {epoch + 1}" if info else f"epoch {epoch + 1}"
        what = ("a weight became" if info and info[2:] == ("weights",) else
                "batch norm's running statistics became" if info and info[2:] == ("state",)
                else "the loss became")
        warnings.warn(f"TerminateOnNaN: {what} {loss!r} at {where}; training "
                      f"stopped and the weights of the last batch with a finite loss were "
                      f"kept. Try a smaller learning rate or check the data's scale.",
                      RuntimeWarning, stacklevel=2)
        self.model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model after each epoch (atomically: a temporary file renamed into place, so a
    crash never leaves a half-written file).

    Parameters
    ----------
    filepath : str or os.PathLike
        Where to save; may contain ``str.format`` fields ``{epoch}`` (from 1) and any log
        name, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.safetensors"``.
    monitor : str, default "val_loss"
        The log deciding which model is best (with ``save_best_only``).
    save_best_only : bool, default False
        Save only when the monitored value improves.
    mode : {"auto", "min", "max"}, default "auto"
    verbose : int, default 0
        1 prints a line per save.

    Notes
    -----
    In distributed training (``fit(..., distributed=True)``) only rank 0 saves.
    """

    _root_only = True

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto",
                 verbose=0):
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.verbose = verbose
        self.best = None

    def _check(self, keys):
        if self.save_best_only:
            _check_monitor(self.monitor, keys, "ModelCheckpoint")
        try:
            self.filepath.format(epoch=1, **{k: 0.0 for k in keys})
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} cannot be "
                             f"formatted ({e!r}); it may use {{epoch}} and the log names "
                             f"{sorted(keys)}") from None

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or math.isnan(value):
                return
            if self.best is not None and not (value < self.best if self.mode == "min"
                                               else value > self.best):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if _core.first_nonfinite(self.model.params) >= 0:  # save would refuse them
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} was not saved to {path}: the "
                          f"weights hold NaN or infinity (files saved before are kept); "
                          f"fit(..., on_nan='stop') ends training when the loss diverges",
                          RuntimeWarning, stacklevel=2)
            return
        self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the model to {path}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at the start of each epoch.

    Parameters
    ----------
    schedule : LRSchedule or callable
        An :mod:`nncore.schedules` object (``nn.StepLR``, ``nn.ExponentialLR``,
        ``nn.CosineAnnealingLR``), called with ``(epoch, base_lr)`` where base_lr is the
        learning rate when training started; or a function ``f(epoch, lr) -> new_lr`` (Keras'
        convention) given the current rate. Epochs count from 0 within this fit call.
    verbose : int, default 0
        1 prints the rate each epoch.
    """

    _sets_lr = True

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"schedule must be an nncore schedule (e.g. nn.StepLR(10)) or a "
                            f"function (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._base_lr = None

    def on_train_begin(self, logs=None):
        self._base_lr = self.model.optimizer.lr

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        if isinstance(self.schedule, _schedules.LRSchedule):
            lr = self.schedule(epoch, self._base_lr)
        else:
            lr = self.schedule(epoch, opt.lr)
        try:
            lr = check_number(lr, "the learning-rate schedule's result", 0.0)
        except (TypeError, ValueError) as e:
            raise type(e)(f"LearningRateScheduler: {e}") from None
        opt.lr = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")


class ReduceLROnPlateau(Callback):
    """Lower the learning rate when a monitored quantity stops improving
    (torch.optim.lr_scheduler.ReduceLROnPlateau, as Keras's callback of the same name).

    After ``patience`` epochs without improvement (better than the best by more than
    ``threshold``, relatively or absolutely), ``lr = max(lr * factor, min_lr)``, then
    ``cooldown`` epochs pass before counting again. A change smaller than 1e-8 is skipped,
    as torch does.

    Parameters
    ----------
    monitor : str, default "val_loss"
    factor : float, default 0.1
        In (0, 1).
    patience : int, default 10
    mode : {"auto", "min", "max"}, default "auto"
    threshold : float, default 1e-4
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
    min_lr : float, default 0
    verbose : int, default 0
        1 prints each change.
    """

    _sets_lr = True

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto",
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, verbose=0):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a log name such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.factor = check_number(factor, "factor")
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor!r}")
        self.patience = check_int(patience, "patience", 0)
        self.mode = _resolve_mode(mode, monitor, "ReduceLROnPlateau")
        self.threshold = check_number(threshold, "threshold", 0.0)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = check_int(cooldown, "cooldown", 0)
        self.min_lr = check_number(min_lr, "min_lr", 0.0)
        self.verbose = verbose
        self._reset()

    def _reset(self):
        self.best, self._bad, self._cool = None, 0, 0

    def _check(self, keys):
        _check_monitor(self.monitor, keys, "ReduceLROnPlateau")

    def _better(self, value):
        if self.best is None:
            return True
        t = self.threshold
        if self.mode == "min":
            bound = self.best * (1 - t) if self.threshold_mode == "rel" else self.best - t
            return value < bound
        bound = self.best * (1 + t) if self.threshold_mode == "rel" else self.best + t
        return value > bound

    def on_train_begin(self, logs=None):
        if self.model.optimizer.schedule is not None:
            raise ValueError("ReduceLROnPlateau sets the learning rate itself; the optimizer "
                             "has a schedule that would set it each epoch: use one of the two")
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self._better(value):
            self.best, self._bad = value, 0
        else:
            self._bad += 1
        if self._cool > 0:
            self._cool -= 1
            self._bad = 0
        if self._bad > self.patience:
            opt = self.model.optimizer
            new = max(opt.lr * self.factor, self.min_lr)
            if opt.lr - new > 1e-8:
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau lowers the learning rate "
                          f"to {new:.6g}")
                opt.lr = new
            self._cool, self._bad = self.cooldown, 0


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}" if (abs(v) >= 1e-3 or v == 0) else f"{v:.3e}"
    return str(v)


class ProgressBar(Callback):
    """The display of ``fit(verbose=...)``: 1 draws a tqdm bar per epoch (loss, metrics,
    samples/s); 2 prints one line per epoch. fit adds it itself; you rarely create one."""

    def __init__(self, verbose=1, file=None):
        self.verbose = verbose
        self.file = file
        self._bar = None

    def _out(self):
        return self.file if self.file is not None else sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self._seen = 0
        self._loss_sum = 0.0
        self._last = 0.0
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=self.params["samples"], unit="samples",
                             desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
                             file=self._out(), leave=True, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        n = logs["size"]
        self._seen += n
        self._loss_sum += logs["loss"] * n
        self._bar.update(n)
        now = time.perf_counter()
        if now - self._last > 0.1:
            self._last = now
            self._bar.set_postfix_str(f"loss={_fmt(self._loss_sum / self._seen)}",
                                      refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        dt = time.perf_counter() - self._t0
        rate = self.params["samples"] / dt if dt > 0 else float("inf")
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in (logs or {}).items())
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            parts = " - ".join(f"{k}: {_fmt(v)}" for k, v in (logs or {}).items())
            print(f"Epoch {epoch + 1}/{self.params['epochs']} - {dt:.2f}s - {parts} - "
                  f"{rate:,.0f} samples/s", file=self._out())

    def on_train_end(self, logs=None):
        if self._bar is not None:  # interrupted mid-epoch
            self._bar.close()
            self._bar = None


class _CallbackList:
    """Dispatches to the user's callbacks (and History, ProgressBar)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        self.batch_callbacks = [cb for cb in self.callbacks
                                if type(cb).on_train_batch_end is not Callback.on_train_batch_end]

    def on_train_begin(self):
        for cb in self.callbacks:
            cb.on_train_begin({})

    def on_train_end(self, logs):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def batch_hook(self):
        """A function (batch, size, loss) for the epoch loop, or None if nobody listens."""
        cbs = self.batch_callbacks
        if not cbs:
            return None

        def hook(batch, size, loss):
            logs = {"size": size, "loss": loss}
            for cb in cbs:
                cb.on_train_batch_end(batch, logs)
        # The progress bar is content with one call per chunk of batches (size: its rows,
        # loss: their mean); any other listener gets every batch.
        hook.per_batch = any(not isinstance(cb, ProgressBar) for cb in cbs)
        return hook
