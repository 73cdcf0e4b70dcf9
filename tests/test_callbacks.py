"""Callbacks: hook order, EarlyStopping with best-weight restore, TerminateOnNaN on a
diverging run, ModelCheckpoint (atomic), progress display."""

import math
import os

import numpy as np
import pytest

import nncore as nn


class Recorder(nn.Callback):
    """Records the hooks called and the parameters after each epoch and batch."""

    def __init__(self):
        self.calls, self.epoch_params, self.batch_params, self.batch_losses = [], [], [], []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(f"batch {batch} {logs['size']}")
        self.batch_params.append(self.model.params.copy())
        self.batch_losses.append(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")
        self.epoch_params.append(self.model.params.copy())

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


@pytest.fixture
def problem(rng):
    X = rng.standard_normal((30, 4))
    y = rng.integers(0, 3, 30)
    model = nn.Sequential([nn.Dense(4, 16, activation="relu"), nn.Dense(16, 3)],
                          dtype="float64", seed=0)
    model.compile(nn.Adam(0.05), "cross_entropy", ["accuracy"])
    return model, X, y


def test_hook_order_and_params(problem):
    model, X, y = problem
    rec = Recorder()
    model.fit(X, y, epochs=2, batch_size=12, callbacks=[rec], verbose=0)
    keys = "['accuracy', 'loss']"
    assert rec.calls == ["train_begin", "epoch_begin 0", "batch 0 12", "batch 1 12",
                         "batch 2 6", f"epoch_end 0 {keys}", "epoch_begin 1", "batch 0 12",
                         "batch 1 12", "batch 2 6", f"epoch_end 1 {keys}", "train_end"]
    assert rec.params == {"epochs": 2, "batch_size": 12, "samples": 30, "steps": 3,
                          "verbose": 0}
    assert rec.model is model


def test_callback_can_stop_training(problem):
    model, X, y = problem

    class StopAfterTwo(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    h = model.fit(X, y, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert h.epoch == [0, 1]


def test_early_stopping_restores_best_weights(rng):
    # validation labels unrelated to the inputs: val_loss rises as the model fits the noise
    X = rng.standard_normal((60, 4))
    y = rng.integers(0, 3, 60)
    Xv, yv = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    model = nn.Sequential([nn.Dense(4, 64, activation="relu"), nn.Dense(64, 3)],
                          dtype="float64", seed=0)
    model.compile(nn.Adam(0.05), "cross_entropy")
    rec = Recorder()
    es = nn.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    h = model.fit(X, y, epochs=100, validation_data=(Xv, yv), callbacks=[rec, es], verbose=0)
    val = h.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 100 and len(val) == best + 4  # stopped after 3 epochs without gain
    assert es.best_epoch == best and es.best == val[best] and es.stopped_epoch == len(val) - 1
    np.testing.assert_array_equal(model.params, rec.epoch_params[best])
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(val[best], rel=1e-12)


def test_early_stopping_logic_min_delta_and_mode():
    class FakeModel:
        params = np.zeros(1)
        stop_training = False

    es = nn.EarlyStopping(monitor="val_accuracy", min_delta=0.01, patience=1)
    assert es.mode == "max"
    es.set_model(FakeModel())
    es.on_train_begin()
    for epoch, acc in enumerate([0.5, 0.505, 0.52, 0.525, 0.526]):
        es.on_epoch_end(epoch, {"val_accuracy": acc})
        if es.model.stop_training:
            break
    # 0.505 is within min_delta (wait 1 >= patience 1 -> stop at epoch 1)
    assert es.stopped_epoch == 1 and es.best == 0.5
    with pytest.raises(ValueError, match="mode"):
        nn.EarlyStopping(mode="up")


def test_terminate_on_nan_keeps_last_finite_weights(rng):
    X = rng.standard_normal((64, 4)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(4, 32, activation="relu"), nn.Dense(32, 2)],
                          dtype="float64", seed=0)
    model.compile(nn.SGD(lr=0.5), "mse")  # diverges within a few batches
    rec = Recorder()
    with pytest.warns(RuntimeWarning, match=r"TerminateOnNaN: the loss became (nan|inf) at "
                                            r"batch \d+ of epoch \d+"):
        h = model.fit(X, Y, epochs=50, batch_size=8, shuffle=False, verbose=0,
                      callbacks=[nn.TerminateOnNaN(), rec])
    assert len(h.epoch) < 50
    assert not math.isfinite(h.history["loss"][-1])
    assert np.isfinite(model.params).all()
    # the weights that produced the last finite batch loss: those before its update
    finite = [i for i, loss in enumerate(rec.batch_losses) if math.isfinite(loss)]
    last = finite[-1]
    assert last == len(rec.batch_losses) - 1  # the non-finite batch itself is not recorded
    expected = rec.batch_params[last - 1] if last > 0 else None
    np.testing.assert_array_equal(model.params, expected)


def test_without_terminate_on_nan_training_continues(rng):
    X = rng.standard_normal((64, 4)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(4, 32, activation="relu"), nn.Dense(32, 2)],
                          dtype="float64", seed=0)
    model.compile(nn.SGD(lr=0.5), "mse")
    with np.errstate(all="ignore"):
        h = model.fit(X, Y, epochs=5, batch_size=8, verbose=0)
    assert len(h.epoch) == 5 and not math.isfinite(h.history["loss"][-1])


def test_model_checkpoint_every_epoch_and_best_only(problem, tmp_path):
    model, X, y = problem
    every = nn.ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.3f}.safetensors",
                               monitor="loss")
    best = nn.ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_loss",
                              save_best_only=True)
    h = model.fit(X, y, epochs=3, validation_split=0.2, callbacks=[every, best], verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == sorted([f"m-{e + 1:02d}-{h.history['loss'][e]:.3f}.safetensors"
                            for e in range(3)] + ["best.safetensors"])
    saved = nn.load_model(tmp_path / "best.safetensors")
    i = int(np.argmin(h.history["val_loss"]))
    expected = h.history["val_loss"][i]
    Xv, yv = X[24:], y[24:]
    assert saved.evaluate(Xv, yv)["loss"] == pytest.approx(expected, rel=1e-12)


def test_save_is_atomic(problem, tmp_path, monkeypatch):
    model, X, y = problem
    path = tmp_path / "model.safetensors"
    model.save(path)
    before = path.read_bytes()
    model.fit(X, y, epochs=1, verbose=0)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["model.safetensors"]  # no temporary left behind


def test_progress_bar_and_epoch_lines(problem, capsys):
    model, X, y = problem
    model.fit(X, y, epochs=2, batch_size=8, verbose=1)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "samples/s" in text and "loss=" in text and "accuracy=" in text
    model.fit(X, y, epochs=2, batch_size=8, verbose=2, validation_split=0.2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Epoch")]
    assert len(lines) == 2
    assert all("loss:" in ln and "val_accuracy:" in ln and "samples/s" in ln for ln in lines)


def test_silent_fit_prints_nothing(problem, capsys):
    model, X, y = problem
    model.fit(X, y, epochs=2, verbose=0)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_model_checkpoint_skips_non_finite_weights_and_keeps_the_last_file(rng, tmp_path):
    """save refuses NaN weights; the checkpoint says so and fit goes on (on_nan='ignore')."""
    X = rng.standard_normal((64, 4)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(4, 32, activation="relu"), nn.Dense(32, 2)], seed=0)
    model.compile(nn.SGD(lr=0.5), "mse")
    path = tmp_path / "ckpt.safetensors"
    with pytest.warns(RuntimeWarning, match="ModelCheckpoint: epoch \\d+ was not saved"):
        model.fit(X, Y, epochs=5, batch_size=8, verbose=0,
                  callbacks=[nn.ModelCheckpoint(path)])
    assert len(model.history.history["loss"]) == 5
    with pytest.raises(ValueError, match="holds (nan|inf)"):
        model.save(tmp_path / "other.safetensors")
    model.save(tmp_path / "other.safetensors", allow_nonfinite=True)
    nn.load_model(tmp_path / "other.safetensors", allow_nonfinite=True)
