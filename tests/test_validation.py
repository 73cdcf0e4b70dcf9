"""Bad input: each raises a clear error naming the argument, and the model is left exactly as
it was (parameters bitwise, optimizer state, History, random streams)."""

import numpy as np
import pytest

import nncore as nn

N = 24


@pytest.fixture
def trained(rng):
    model = nn.Sequential([nn.Dense(4, 6, activation="relu"), nn.Dropout(0.2),
                           nn.Dense(6, 3)], seed=0)
    model.compile(nn.Adam(1e-2), "cross_entropy", ["accuracy"])
    X = rng.standard_normal((N, 4))
    y = rng.integers(0, 3, N)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    return model, X, y


def snapshot(model):
    opt = model.optimizer
    return (model.params.tobytes(), {k: v.tobytes() for k, v in opt.state.items()},
            opt.steps, opt.epochs, opt.lr, model.history,
            repr(model._shuffle_rng.bit_generator.state), model._rng_counter,
            model.grads.tobytes())


def with_nan(X, i=2, j=1, value=np.nan):
    X = X.copy()
    X[i, j] = value
    return X


FIT_CASES = [
    # (id, function of (X, y) -> kwargs for fit, error type, message fragments)
    ("1-D X", lambda X, y: dict(X=X[:, 0], y=y), ValueError, ["X must be 2-D", "reshape"]),
    ("3-D X", lambda X, y: dict(X=X[:, :, None], y=y), ValueError, ["X must be 2-D"]),
    ("wrong feature count", lambda X, y: dict(X=X[:, :3], y=y), ValueError,
     ["X has 3 features", "expects 4", "(n_samples, 4)"]),
    ("string X", lambda X, y: dict(X=X.astype(str), y=y), TypeError, ["X has dtype", "<U"]),
    ("object X", lambda X, y: dict(X=X.astype(object), y=y), TypeError, ["X", "object"]),
    ("complex X", lambda X, y: dict(X=X + 1j, y=y), TypeError, ["X", "complex"]),
    ("ragged X", lambda X, y: dict(X=[[1, 2, 3, 4], [1, 2]], y=y[:2]), ValueError, ["X"]),
    ("NaN in X", lambda X, y: dict(X=with_nan(X), y=y), ValueError,
     ["X contains nan", "row 2, column 1", "finite"]),
    ("inf in X", lambda X, y: dict(X=with_nan(X, 5, 3, -np.inf), y=y), ValueError,
     ["X contains -inf", "row 5, column 3"]),
    ("float32 overflow", lambda X, y: dict(X=with_nan(X, 0, 0, 1e300), y=y), ValueError,
     ["X contains 1e+300", "overflows float32"]),
    ("empty X", lambda X, y: dict(X=X[:0], y=y[:0]), ValueError, ["X is empty", "(0, 4)"]),
    ("no features", lambda X, y: dict(X=X[:, :0], y=y), ValueError, ["X has no features"]),
    ("length mismatch", lambda X, y: dict(X=X, y=y[:-1]), ValueError,
     [f"X has {N} samples", f"y has {N - 1}"]),
    ("label too large", lambda X, y: dict(X=X, y=np.where(np.arange(N) == 7, 3, y)),
     ValueError, ["label 3", "index 7", "[0, 3)"]),
    ("negative label", lambda X, y: dict(X=X, y=np.where(np.arange(N) == 4, -1, y)),
     ValueError, ["label -1", "index 4"]),
    ("fractional label", lambda X, y: dict(X=X, y=y + 0.5), ValueError,
     ["y contains 0.5", "whole numbers"]),
    ("NaN label", lambda X, y: dict(X=X, y=with_nan(y.astype(float)[:, None], 3, 0)[:, 0]),
     ValueError, ["y contains nan"]),
    ("string labels", lambda X, y: dict(X=X, y=np.array(["a", "b", "c"] * 8)), TypeError,
     ["y has dtype", "encode"]),
    ("one-hot labels", lambda X, y: dict(X=X, y=np.eye(3)[y]), ValueError,
     ["1-D array of class labels", "argmax"]),
    ("negative weight", lambda X, y: dict(X=X, y=y, sample_weight=-np.ones(N)), ValueError,
     ["sample_weight", "negative"]),
    ("zero weights", lambda X, y: dict(X=X, y=y, sample_weight=np.zeros(N)), ValueError,
     ["sample_weight is all zeros"]),
    ("weight length", lambda X, y: dict(X=X, y=y, sample_weight=np.ones(3)), ValueError,
     ["sample_weight has 3 weights", f"{N} samples"]),
    ("NaN weight", lambda X, y: dict(X=X, y=y, sample_weight=with_nan(np.ones((N, 1)), 1, 0)
                                     [:, 0]), ValueError, ["sample_weight contains nan"]),
    ("epochs 0", lambda X, y: dict(X=X, y=y, epochs=0), ValueError, ["epochs must be at least"]),
    ("epochs float", lambda X, y: dict(X=X, y=y, epochs=2.5), TypeError, ["epochs", "2.5"]),
    ("batch_size 0", lambda X, y: dict(X=X, y=y, batch_size=0), ValueError, ["batch_size"]),
    ("split 1", lambda X, y: dict(X=X, y=y, validation_split=1.0), ValueError,
     ["validation_split"]),
    ("split too small", lambda X, y: dict(X=X, y=y, validation_split=1e-18), ValueError,
     ["validation_split", "0 for validation"]),
    ("split and data", lambda X, y: dict(X=X, y=y, validation_split=0.2,
                                         validation_data=(X, y)), ValueError, ["not both"]),
    ("validation features", lambda X, y: dict(X=X, y=y, validation_data=(X[:, :2], y)),
     ValueError, ["validation_data[0] has 2 features"]),
    ("validation labels", lambda X, y: dict(X=X, y=y, validation_data=(X, y + 5)),
     ValueError, ["validation_data[1] contains label"]),
    ("validation tuple", lambda X, y: dict(X=X, y=y, validation_data=X), ValueError,
     ["validation_data must be a tuple"]),
    ("callback type", lambda X, y: dict(X=X, y=y, callbacks=[print]), TypeError,
     ["callbacks[0]", "nncore callback"]),
    ("monitor missing", lambda X, y: dict(X=X, y=y, callbacks=[nn.EarlyStopping()]),
     ValueError, ["val_loss", "validation_split"]),
    ("checkpoint format", lambda X, y: dict(X=X, y=y, callbacks=[
        nn.ModelCheckpoint("m-{val_acc}.safetensors")]), ValueError, ["filepath"]),
    ("verbose", lambda X, y: dict(X=X, y=y, verbose=3), ValueError, ["verbose"]),
    ("shuffle", lambda X, y: dict(X=X, y=y, shuffle="yes"), TypeError, ["shuffle"]),
]


@pytest.mark.parametrize("make, err, fragments", [c[1:] for c in FIT_CASES],
                         ids=[c[0] for c in FIT_CASES])
def test_fit_rejects_bad_input_and_changes_nothing(trained, make, err, fragments):
    model, X, y = trained
    before = snapshot(model)
    kwargs = make(X, y)
    with pytest.raises(err) as info:
        model.fit(kwargs.pop("X"), kwargs.pop("y"), verbose=0, **kwargs) \
            if "verbose" not in kwargs else model.fit(kwargs.pop("X"), kwargs.pop("y"),
                                                      **kwargs)
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))
    assert snapshot(model) == before


@pytest.mark.parametrize("X, err, fragment", [
    (np.zeros(4), ValueError, "X must be 2-D"),
    (np.zeros((2, 5)), ValueError, "X has 5 features"),
    (np.zeros((0, 4)), ValueError, "X is empty"),
    (np.array([["1", "2", "3", "4"]]), TypeError, "X has dtype"),
    (np.full((2, 4), np.inf), ValueError, "X contains inf"),
])
def test_predict_and_evaluate_reject_bad_input(trained, X, err, fragment):
    model, _, _ = trained
    before = snapshot(model)
    with pytest.raises(err, match=fragment):
        model.predict(X)
    with pytest.raises(err, match=fragment):
        model.evaluate(X, np.zeros(len(X), int))
    assert snapshot(model) == before


def test_bce_targets_must_be_probabilities(rng):
    model = nn.Sequential([nn.Dense(4, 2)], seed=0)
    model.compile("adam", "bce_with_logits")
    X = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match=r"y contains 2\.0.*\[0, 1\]"):
        model.fit(X, np.full((5, 2), 2.0), verbose=0)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        model.fit(X, np.zeros(5), verbose=0)


def test_fit_and_evaluate_before_compile(rng):
    model = nn.Sequential([nn.Dense(4, 2)], seed=0)
    before = model.params.copy()
    X = rng.standard_normal((5, 4))
    for call in (lambda: model.fit(X, [0, 1, 0, 1, 0]), lambda: model.evaluate(X, [0] * 5)):
        with pytest.raises(RuntimeError, match=r"model\.compile\("):
            call()
    np.testing.assert_array_equal(model.params, before)
    assert model.predict(X).shape == (5, 2)  # predict works uncompiled


def test_empty_model():
    model = nn.Sequential()
    with pytest.raises(RuntimeError, match="Dense"):
        model.predict(np.zeros((1, 1)))
    with pytest.raises(RuntimeError, match="Dense"):
        model.compile("sgd", "mse")


def test_integer_float_labels_and_conversions_accepted(trained):
    model, X, y = trained
    model.fit(X.astype(np.float32), y.astype(np.float64), epochs=1, verbose=0)
    model.fit(X.tolist(), y.astype(np.uint8), epochs=1, verbose=0)
    model.fit(np.asfortranarray(X), y[:, None], epochs=1, verbose=0)


def test_compile_failure_keeps_previous_compile(trained):
    model, _, _ = trained
    opt, loss = model.optimizer, model.loss
    with pytest.raises(ValueError):
        model.compile("adam", "cross_entropy", ["f1"])
    assert model.optimizer is opt and model.loss is loss


def test_load_state_dict_failure_changes_nothing(trained):
    model, _, _ = trained
    before = model.params.copy()
    sd = model.state_dict()
    sd["0.W"] = sd["0.W"] + 1
    sd["2.b"] = np.zeros(4)  # wrong shape, checked before anything is copied
    with pytest.raises(ValueError, match=r"2\.b.*shape"):
        model.load_state_dict(sd)
    np.testing.assert_array_equal(model.params, before)
