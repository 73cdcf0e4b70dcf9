"""A learning rate that blows up: fit(..., on_nan="raise") raises NonFiniteLossError naming
the epoch and batch, with the weights of the last finite batch; on_nan="stop" behaves like
TerminateOnNaN. Same result through the compiled plan and the Python loop."""

import math
import warnings

import numpy as np
import pytest

import nncore as nn


class _MSE(nn.MSELoss):
    """A subclass: the compiled plan steps aside and the Python loop runs."""


def make(loss_cls):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(8, 16, activation="relu"), nn.Dense(16, 2)],
                          dtype="float32", seed=0)
    model.compile(nn.SGD(lr=0.5), loss_cls())
    return model, X, Y


def run(loss_cls, **kw):
    model, X, Y = make(loss_cls)
    try:
        model.fit(X, Y, epochs=20, batch_size=8, shuffle=False, verbose=0, **kw)
        err = None
    except nn.NonFiniteLossError as e:
        err = e
    return model, err


@pytest.mark.parametrize("loss_cls", [nn.MSELoss, _MSE], ids=["plan", "python"])
def test_on_nan_raise_names_epoch_and_batch_and_restores_weights(loss_cls):
    model, err = run(loss_cls, on_nan="raise")
    assert err is not None, "the loss never became non-finite"
    assert not math.isfinite(err.loss)
    assert f"epoch {err.epoch + 1}, batch {err.batch + 1}" in str(err)
    assert np.isfinite(model.params).all()
    # the same weights as TerminateOnNaN keeps (the last batch with a finite loss)
    ref, _ = run(loss_cls, callbacks=[nn.TerminateOnNaN()])
    assert model.params.tobytes() == ref.params.tobytes()
    assert model._nonfinite[0] == err.batch
    # exactly the weights that gave the last finite loss: those before batch err.batch - 1
    assert err.epoch == 0 and err.batch >= 1
    free, X, Y = make(loss_cls)
    seen = [free.params.copy()]

    class Record(nn.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(free.params.copy())

    free.fit(X, Y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[Record()])
    assert model.params.tobytes() == seen[err.batch - 1].tobytes()


def test_plan_and_python_loop_agree_on_where_and_what():
    (m1, e1), (m2, e2) = run(nn.MSELoss, on_nan="raise"), run(_MSE, on_nan="raise")
    assert (e1.epoch, e1.batch) == (e2.epoch, e2.batch)
    assert m1.params.tobytes() == m2.params.tobytes()


def test_on_nan_stop_is_terminate_on_nan():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model, err = run(nn.MSELoss, on_nan="stop")
    assert err is None and any("TerminateOnNaN" in str(x.message) for x in w)
    ref, _ = run(nn.MSELoss, callbacks=[nn.TerminateOnNaN()])
    assert model.params.tobytes() == ref.params.tobytes()
    assert model.history.history == ref.history.history


def test_on_nan_ignore_keeps_going():
    model, err = run(nn.MSELoss)
    assert err is None and len(model.history.history["loss"]) == 20
    assert not np.isfinite(model.params).all()


@pytest.mark.parametrize("loss_cls", [nn.MSELoss, _MSE], ids=["plan", "python"])
@pytest.mark.parametrize("mode", ["raise", "stop", "callback"])
def test_the_last_update_of_a_fit_is_checked(loss_cls, mode):
    """One batch per epoch: each update is its fit's last, with no next loss to show that it
    made the weights infinite. The weights are checked instead, with the same outcome as a
    non-finite loss: the weights before that update, and an error or a warning."""
    model = nn.Sequential([nn.Dense(1, 1)], seed=0)
    model.compile(nn.SGD(lr=1e30), loss_cls())
    before = model.params.copy()
    X, Y = np.ones((4, 1)), np.full((4, 1), 1e10)
    kw = (dict(callbacks=[nn.TerminateOnNaN()]) if mode == "callback" else dict(on_nan=mode))
    if mode == "raise":
        with pytest.raises(nn.NonFiniteLossError, match="a weight became inf in the update "
                                                        "of epoch 1, batch 1") as info:
            model.fit(X, Y, batch_size=4, verbose=0, **kw)
        assert (info.value.epoch, info.value.batch) == (0, 0)
    else:
        with pytest.warns(RuntimeWarning, match="TerminateOnNaN: a weight became inf at "
                                                "batch 1 of epoch 1"):
            model.fit(X, Y, epochs=3, batch_size=4, verbose=0, **kw)
        assert len(model.history.history["loss"]) == 1
    np.testing.assert_array_equal(model.params, before)
