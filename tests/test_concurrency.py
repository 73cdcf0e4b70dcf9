"""Threads: predict from many threads at once equals serial predict; fit refuses predict,
evaluate, save, compile, load_state_dict and a second fit from other threads while it runs
(a clear RuntimeError)."""

import threading

import numpy as np
import pytest

import nncore as nn


@pytest.fixture
def model_and_data(rng):
    model = nn.Sequential([nn.Dense(16, 64, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(64, 5)], seed=0)
    model.compile(nn.Adam(1e-2), "cross_entropy", ["accuracy"])
    X = rng.standard_normal((300, 16))
    y = rng.integers(0, 5, 300)
    model.fit(X, y, epochs=1, batch_size=32, verbose=0)
    return model, X, y


@pytest.mark.parametrize("batch_size", [None, 7])  # the fast path; the chunked path
def test_four_threads_predicting_at_once_match_serial_calls(model_and_data, rng, batch_size):
    model, _, _ = model_and_data
    inputs = [rng.standard_normal((n, 16)) for n in (1, 5, 64, 300)]
    serial = [model.predict(x, batch_size=batch_size) for x in inputs]
    results = [[None] * 50 for _ in range(4)]
    start = threading.Barrier(4)
    errors = []

    def work(t):
        try:
            start.wait()
            for i in range(50):
                results[t][i] = model.predict(inputs[(t + i) % 4], batch_size=batch_size)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for t in range(4):
        for i in range(50):
            np.testing.assert_array_equal(results[t][i], serial[(t + i) % 4])


class _PauseInFit(nn.Callback):
    """Holds fit inside its first batch until the test has tried its calls."""

    def __init__(self):
        self.running = threading.Event()
        self.release = threading.Event()

    def on_train_batch_end(self, batch, logs=None):
        if not self.running.is_set():
            self.running.set()
            assert self.release.wait(60), "the test never released fit"


def test_calls_from_other_threads_during_fit_are_refused(model_and_data, tmp_path):
    model, X, y = model_and_data
    pause = _PauseInFit()
    errors = []
    state = model.state_dict()

    def fit():
        try:
            model.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[pause])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=fit)
    th.start()
    try:
        assert pause.running.wait(60)
        calls = {
            "predict": lambda: model.predict(X),
            "evaluate": lambda: model.evaluate(X, y),
            "save": lambda: model.save(tmp_path / "m.safetensors"),
            "fit": lambda: model.fit(X, y, verbose=0),
            "compile": lambda: model.compile("sgd", "cross_entropy"),
            "load_state_dict": lambda: model.load_state_dict(state),
        }
        for name, call in calls.items():
            with pytest.raises(RuntimeError, match=f"{name} was called while fit is"):
                call()
    finally:
        pause.release.set()
        th.join()
    assert not errors
    assert not (tmp_path / "m.safetensors").exists()
    # afterwards everything works again, and fit ran to completion
    assert len(model.history.history["loss"]) == 2
    model.predict(X)
    model.save(tmp_path / "m.safetensors")


def test_callbacks_in_fits_own_thread_may_predict_and_save(model_and_data, tmp_path):
    model, X, y = model_and_data
    seen = []

    class Probe(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.predict(X[:3]).shape)

    model.fit(X, y, epochs=2, verbose=0, validation_split=0.1,
              callbacks=[Probe(), nn.ModelCheckpoint(tmp_path / "c.safetensors")])
    assert seen == [(3, 5), (3, 5)]
    np.testing.assert_array_equal(nn.load_model(tmp_path / "c.safetensors").predict(X),
                                  model.predict(X))


def test_fit_from_a_callback_is_refused(model_and_data):
    model, X, y = model_and_data

    class Refit(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.fit(X, y, verbose=0)

    with pytest.raises(RuntimeError, match="fit is already running"):
        model.fit(X, y, epochs=1, verbose=0, callbacks=[Refit()])
    model.fit(X, y, epochs=1, verbose=0)  # the flag was cleared


class _BlockingReLU(nn.Activation):
    """A ReLU whose inference pass waits for an event (a subclass: the Python loop runs)."""

    def __init__(self):
        super().__init__("relu")
        self.entered = threading.Event()
        self.release = threading.Event()

    def _forward(self, x, buf, training, model):
        if not training and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(60), "the test never released predict"
        return super()._forward(x, buf, training, model)


def test_fit_waits_for_a_predict_already_running(rng):
    block = _BlockingReLU()
    model = nn.Sequential([nn.Dense(4, 8), block, nn.Dense(8, 2)], seed=0)
    model.compile(nn.SGD(0.1), "cross_entropy")
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 2, 40)
    block.entered.set()
    expected = model.predict(X)   # before any training
    block.entered.clear()
    out, errors = {}, []

    def run(name, call):
        try:
            out[name] = call()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    p = threading.Thread(target=run, args=("predict", lambda: model.predict(X)))
    f = threading.Thread(target=run, args=("fit", lambda: model.fit(X, y, epochs=2,
                                                                   verbose=0)))
    p.start()
    try:
        assert block.entered.wait(60)          # predict is inside the model, halfway through
        f.start()                              # fit must wait for it: had fit trained now,
        assert model._fit_thread is None       # predict's second layer would see new weights
    finally:
        block.release.set()
        p.join()
        if f.ident is not None:  # started
            f.join()
    assert not errors
    np.testing.assert_array_equal(out["predict"], expected)  # untouched by the training
    assert len(out["fit"].history["loss"]) == 2


def test_structure_changes_during_fit_are_refused_in_every_thread(model_and_data):
    """add and compile would replace the buffers or the optimizer that the running fit uses:
    refused from another thread and from fit's own callbacks alike; a layer setting from
    another thread is refused too (from a callback it takes effect in the next epoch)."""
    model, X, y = model_and_data
    before = len(model)
    tried = []

    class Change(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            for name, call in (("add", lambda: model.add(nn.Dense(5, 5))),
                               ("compile", lambda: model.compile("sgd", "cross_entropy"))):
                with pytest.raises(RuntimeError, match=f"{name} was called while fit is"):
                    call()
                tried.append(name)

    model.fit(X, y, epochs=1, verbose=0, callbacks=[Change()])
    assert tried == ["add", "compile"] and len(model) == before

    pause = _PauseInFit()
    th = threading.Thread(target=lambda: model.fit(X, y, epochs=1, verbose=0,
                                                   callbacks=[pause]))
    th.start()
    try:
        assert pause.running.wait(60)
        with pytest.raises(RuntimeError, match="add was called while fit is"):
            model.add(nn.Dense(5, 5))
        with pytest.raises(RuntimeError, match="setting Dropout.p was called while fit"):
            model[1].p = 0.5
    finally:
        pause.release.set()
        th.join()
    assert len(model) == before and model[1].p == 0.1
    model.add(nn.Dense(5, 5))  # after fit: fine
