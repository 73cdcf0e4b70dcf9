"""Sequential: the flat buffer, forward/backward against the NumPy twins, fit semantics,
reproducibility, History, evaluate/predict, summary."""

import numpy as np
import pytest

import nncore as nn
from nncore import _reference as ref

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}


def mlp(dtype="float64", seed=0, dropout=None, out=3, act="relu", last=None):
    layers = [nn.Dense(4, 8, activation=act)]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(8, out, activation=last))
    return nn.Sequential(layers, dtype=dtype, seed=seed)


def data(rng, n=40, classes=3):
    X = rng.standard_normal((n, 4))
    y = rng.integers(0, classes, n)
    return X, y


# ---- structure ------------------------------------------------------------------------------

def test_flat_buffer_views(dtype):
    model = mlp(dtype)
    assert model.params.ndim == 1 and model.params.dtype == dtype
    assert model.grads.shape == model.params.shape
    assert model.params.ctypes.data % 64 == 0
    for layer in model.layers:
        if isinstance(layer, nn.Dense):
            for a in (layer.W, layer.b):
                assert np.shares_memory(a, model.params)
                assert a.ctypes.data % 64 == 0  # each segment starts on a cache line
            for g in (layer.dW, layer.db):
                assert np.shares_memory(g, model.grads)
    assert model.n_params == 4 * 8 + 8 + 8 * 3 + 3 == model.count_params()
    # every parameter is in the buffer exactly once; padding stays zero
    total = sum(np.abs(a).sum() for a in model.state_dict().values())
    assert np.abs(model.params).sum() == pytest.approx(total)


def test_layer_chain_mismatch_is_explained():
    with pytest.raises(ValueError, match=r"expects 5 input features.*outputs 8"):
        nn.Sequential([nn.Dense(4, 8), nn.Dropout(0.5), nn.Dense(5, 2)])


@pytest.mark.parametrize("layers, err", [
    ([nn.Dense(2, 2), "relu"], TypeError),
    (nn.Dense(2, 2), TypeError),
])
def test_bad_layer_lists(layers, err):
    with pytest.raises(err, match="layer"):
        nn.Sequential(layers)


def test_bad_dtype():
    with pytest.raises(ValueError, match="float32"):
        nn.Sequential([nn.Dense(2, 2)], dtype="float16")


def test_add_keeps_weights_and_grows_the_buffer():
    model = nn.Sequential([nn.Dense(3, 4)], seed=0)
    W = model.layers[0].W.copy()
    model.add(nn.Dense(4, 2))
    np.testing.assert_array_equal(model.layers[0].W, W)
    assert model.n_outputs == 2 and np.shares_memory(model.layers[1].W, model.params)
    assert len(model) == 2 and model[1] is model.layers[1]


def test_add_after_compile_needs_a_new_compile():
    model = nn.Sequential([nn.Dense(3, 4)], seed=0)
    model.compile("sgd", "cross_entropy")
    with pytest.raises(ValueError, match="expects 5"):
        model.add(nn.Dense(5, 2))
    assert model.loss is not None  # a failed add changes nothing
    model.add(nn.Dense(4, 1))
    assert model.loss is None and model.optimizer is None
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((2, 3)), np.zeros(2), verbose=0)
    model.compile("sgd", "mse")
    model.fit(np.zeros((2, 3)), np.zeros(2), verbose=0)


def test_forward_matches_reference(dtype, rng):
    model = mlp(dtype, dropout=0.5, act="tanh", last="sigmoid")
    X = rng.standard_normal((9, 4)).astype(dtype)
    l1, _, l2 = model.layers
    h, _ = ref.dense_forward(X, l1.W, l1.b, "tanh")  # dropout is off at inference
    y, _ = ref.dense_forward(h, l2.W, l2.b, "sigmoid")
    np.testing.assert_allclose(model.predict(X), y, **TOL[dtype])
    assert model.predict(X).dtype == dtype


def test_predict_batch_size_does_not_change_results(rng):
    model = mlp("float64")
    X = rng.standard_normal((50, 4))
    np.testing.assert_allclose(model.predict(X, batch_size=7), model.predict(X), rtol=1e-14,
                               atol=1e-15)


def test_predict_converts_other_float_dtypes(rng):
    model = mlp("float32")
    X = rng.standard_normal((5, 4))
    np.testing.assert_array_equal(model.predict(X), model.predict(X.astype(np.float32)))
    assert model.predict([[1, 2, 3, 4]]).shape == (1, 3)  # lists and ints too


# ---- training semantics ---------------------------------------------------------------------

def numpy_sgd_epoch(params, X, Y, batch_size, lr):
    """The seed-snippet way: plain NumPy forward/backward, mse, SGD, batches in order."""
    W1, b1, W2, b2 = [p.copy() for p in params]
    losses, sizes = [], []
    for s in range(0, len(X), batch_size):
        x, t = X[s:s + batch_size], Y[s:s + batch_size]
        h, _ = ref.dense_forward(x, W1, b1, "relu")
        out, _ = ref.dense_forward(h, W2, b2)
        losses.append(np.mean((out - t) ** 2))
        sizes.append(len(x))
        g = 2 * (out - t) / out.size
        dh, dW2, db2 = ref.dense_backward(g, h, W2, out)
        _, dW1, db1 = ref.dense_backward(dh, x, W1, h, activation="relu")
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return (W1, b1, W2, b2), np.average(losses, weights=sizes)


def test_fit_in_order_with_partial_last_batch_matches_numpy(rng):
    model = mlp("float64", out=2)
    X = rng.standard_normal((10, 4))
    Y = rng.standard_normal((10, 2))
    start = [model.layers[0].W, model.layers[0].b, model.layers[1].W, model.layers[1].b]
    expected, loss = numpy_sgd_epoch(start, X, Y, batch_size=4, lr=0.1)  # 4 + 4 + 2 rows
    model.compile(nn.SGD(lr=0.1), "mse")
    hist = model.fit(X, Y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    got = [model.layers[0].W, model.layers[0].b, model.layers[1].W, model.layers[1].b]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    assert hist.history["loss"][0] == pytest.approx(loss, rel=1e-12)
    assert hist.params["steps"] == 3


@pytest.mark.parametrize("use_plan", [True, False], ids=["plan", "kernel-by-kernel"])
@pytest.mark.parametrize("tiny", [False, True], ids=["general", "tiny"])
def test_shuffle_trains_on_a_new_permutation_each_epoch(dtype, rng, use_plan, tiny):
    """fit(shuffle=True) is, bit for bit, one in-order epoch on X[perm], y[perm], w[perm]
    per epoch, perm drawn from the model's shuffle stream (seeded by its seed)."""
    n, seed = 45, 5
    X, y = data(rng, n=n)
    if tiny:  # the compiled plan's fused step for tiny networks
        X, y = X[:, :2], (y > 0).astype(np.int64)
    w = rng.uniform(0, 2, n)

    def make():
        m = (nn.Sequential([nn.Dense(2, 3, activation="tanh"), nn.Dense(3, 2)], dtype=dtype,
                           seed=seed) if tiny else mlp(dtype, seed=seed, dropout=0.3))
        if not use_plan:
            m._engine.plan = lambda ws, guard=None: None
        m.compile(nn.SGD(0.05, momentum=0.9), "cross_entropy", ["accuracy"])
        return m

    bs = 2 if tiny else 8  # a smaller last batch
    model = make()
    h = model.fit(X, y, epochs=3, batch_size=bs, sample_weight=w, verbose=0)
    manual, shuffle_rng, losses = make(), np.random.default_rng([seed, 1]), []
    for _ in range(3):
        perm = shuffle_rng.permutation(n)
        hm = manual.fit(X[perm], y[perm], epochs=1, batch_size=bs, sample_weight=w[perm],
                        shuffle=False, verbose=0)
        losses += hm.history["loss"]
    np.testing.assert_array_equal(model.params, manual.params)
    assert h.history["loss"] == losses
    assert model._rng_counter == manual._rng_counter
    in_order = make()
    in_order.fit(X, y, epochs=3, batch_size=bs, sample_weight=w, shuffle=False, verbose=0)
    assert not np.array_equal(in_order.params, model.params)


def test_same_seed_identical_history_and_weights(dtype, rng):
    X, y = data(rng)
    runs = []
    for _ in range(2):
        model = mlp(dtype, seed=3, dropout=0.3)
        model.compile(nn.Adam(1e-2), "cross_entropy", ["accuracy"])
        h = model.fit(X, y, epochs=4, batch_size=8, validation_split=0.25, verbose=0)
        runs.append((h.history, model.params.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = mlp(dtype, seed=4, dropout=0.3)
    other.compile(nn.Adam(1e-2), "cross_entropy", ["accuracy"])
    h = other.fit(X, y, epochs=4, batch_size=8, validation_split=0.25, verbose=0)
    assert h.history != runs[0][0]


def test_results_do_not_depend_on_thread_count(rng):
    X, y = data(rng, n=64)
    out = []
    for threads in (1, 2):
        nn.set_num_threads(threads)
        try:
            model = mlp("float32", seed=1, dropout=0.2)
            model.compile(nn.SGD(0.1, momentum=0.9), "cross_entropy")
            out.append(model.fit(X, y, epochs=2, batch_size=16, verbose=0).history)
        finally:
            nn.set_num_threads(None)
    assert out[0] == out[1]


def test_history_contents(rng):
    X, y = data(rng)
    model = mlp()
    model.compile(nn.SGD(0.05), "cross_entropy", ["accuracy", "mse", "mae"])
    h = model.fit(X, y, epochs=3, batch_size=16, validation_data=(X[:10], y[:10]), verbose=0)
    assert model.history is h
    assert list(h.history) == ["loss", "accuracy", "mse", "mae", "val_loss", "val_accuracy",
                               "val_mse", "val_mae"]
    assert all(len(v) == 3 for v in h.history.values()) and h.epoch == [0, 1, 2]
    assert all(0 <= a <= 1 for a in h.history["accuracy"])
    assert h.params == {"epochs": 3, "batch_size": 16, "samples": 40, "steps": 3,
                        "verbose": 0}
    # validation numbers are what evaluate reports on the same data at the end
    assert h.history["val_loss"][-1] == pytest.approx(model.evaluate(X[:10], y[:10])["loss"],
                                                      rel=1e-12)


def test_training_reduces_the_loss(rng):
    X, y = nn.datasets.make_moons(200, noise=0.1, seed=0)
    model = nn.Sequential([nn.Dense(2, 16, activation="tanh"), nn.Dense(16, 2)], seed=0)
    model.compile(nn.Adam(0.02), "cross_entropy", ["accuracy"])
    h = model.fit(X, y, epochs=60, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < 0.3 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.95


def test_sample_weights_scale_free_and_zero_means_absent(rng):
    X = rng.standard_normal((12, 4))
    Y = rng.standard_normal((12, 3))

    def train(Xt, Yt, w):
        model = mlp("float64", seed=0)
        model.compile(nn.SGD(0.1), "mse")
        h = model.fit(Xt, Yt, epochs=2, batch_size=100, sample_weight=w, verbose=0)
        return model.params.copy(), h.history["loss"]

    p1, l1 = train(X, Y, None)
    p2, l2 = train(X, Y, np.full(12, 2.5))
    np.testing.assert_allclose(p2, p1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l2, l1, rtol=1e-12)
    w = np.ones(12)
    w[8:] = 0
    p3, l3 = train(X, Y, w)
    p4, l4 = train(X[:8], Y[:8], None)
    np.testing.assert_allclose(p3, p4, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l3, l4, rtol=1e-12)


def test_mse_targets_1d_for_one_output(rng):
    model = nn.Sequential([nn.Dense(4, 1)], seed=0)
    model.compile("sgd", "mse", ["mae"])
    X = rng.standard_normal((20, 4))
    model.fit(X, X.sum(axis=1), epochs=2, verbose=0)
    assert set(model.evaluate(X, X.sum(axis=1))) == {"loss", "mae"}


def test_evaluate_is_the_exact_weighted_mean(dtype, rng):
    model = mlp(dtype)
    model.compile("sgd", "cross_entropy", ["accuracy"])
    X, y = data(rng, n=30)
    X = X.astype(dtype)
    w = rng.uniform(0, 2, 30)
    logits = model.predict(X).astype(np.float64)
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    per = lse - logits[np.arange(30), y]
    got = model.evaluate(X, y, sample_weight=w, batch_size=7)
    assert got["loss"] == pytest.approx(np.sum(w * per) / np.sum(w),
                                        rel=1e-5 if dtype == np.float32 else 1e-12)
    assert got["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_predict_proba(rng):
    X, y = data(rng)
    model = mlp()
    model.compile("adam", "cross_entropy")
    p = model.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, ref.activation_forward(model.predict(X), "softmax"),
                               rtol=1e-12)
    b = nn.Sequential([nn.Dense(4, 2)], dtype="float64", seed=0)
    b.compile("adam", "bce_with_logits")
    np.testing.assert_allclose(b.predict_proba(X), 1 / (1 + np.exp(-b.predict(X))),
                               rtol=1e-12)
    r = mlp()
    r.compile("sgd", "mse")
    with pytest.raises(ValueError, match="predict_proba"):
        r.predict_proba(X)


def test_bce_with_logits_training(rng):
    X, y = nn.datasets.make_xor(200, seed=1)
    model = nn.Sequential([nn.Dense(2, 16, activation="relu"), nn.Dense(16, 1)], seed=0)
    model.compile(nn.Adam(0.02), "bce_with_logits", ["accuracy"])
    h = model.fit(X, y.astype(float), epochs=80, batch_size=20, verbose=0)
    assert h.history["accuracy"][-1] > 0.9


def test_compile_checks_output_layer():
    with pytest.raises(ValueError, match="logits"):
        mlp(last="softmax").compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="logits"):
        mlp(out=1, last="sigmoid").compile("adam", "bce_with_logits")
    with pytest.raises(ValueError, match="one output per class"):
        mlp(out=1).compile("adam", "cross_entropy")
    with pytest.raises(ValueError, match="accuracy"):
        mlp(out=1).compile("adam", "mse", ["accuracy"])
    with pytest.raises(ValueError, match="optimizer"):
        mlp().compile("rmsprop", "mse")
    with pytest.raises(ValueError, match="loss"):
        mlp().compile("adam", "hinge")
    mlp(last="softmax").compile("adam", "mse")  # softmax output with mse is fine


def test_one_optimizer_one_model():
    opt = nn.SGD(0.1)
    first = mlp()  # kept alive: the optimizer holds its model weakly
    first.compile(opt, "mse")
    with pytest.raises(ValueError, match="another model"):
        mlp().compile(opt, "mse")
    assert first.optimizer is opt


def test_summary(capsys):
    model = nn.Sequential([nn.Dense(64, 128, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(128, 10)], seed=0)
    model.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy", ["accuracy"])
    model.summary()
    out = capsys.readouterr().out
    for text in ["Dense(64, 128, activation='relu')", "(None, 128)", "8,320", "Dropout(0.1)",
                 "1,290", "Total params: 9,610", "cross_entropy", "accuracy"]:
        assert text in out


def test_digits_reach_95_percent():
    X, y = nn.datasets.load_digits()
    X_tr, X_te, y_tr, y_te = nn.datasets.train_test_split(X / 16, y, test_size=0.25, seed=0,
                                                          stratify=y)
    model = nn.Sequential([nn.Dense(64, 128, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(128, 10)], seed=0)
    model.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy", ["accuracy"])
    model.fit(X_tr, y_tr, epochs=25, batch_size=32, verbose=0)
    assert model.evaluate(X_te, y_te)["accuracy"] >= 0.95


def test_fit_runs_each_epoch_through_run_epoch(rng):
    """The seam a compiled training plan replaces: fit hands each epoch's validated arrays
    and its shuffle permutation to the engine's run_epoch and builds History from its
    result."""
    X, y = data(rng, n=20)
    model = mlp(seed=0)
    model.compile(nn.SGD(0.1), "cross_entropy", ["accuracy"])
    calls, perms = [], []
    real = model._engine.run_epoch

    def spy(Xe, Ye, We, batch_size, on_batch=None, guard=None, perm=None):
        calls.append((Xe.shape, Ye.dtype, batch_size, Xe.flags.c_contiguous, perm.dtype))
        perms.append(perm)
        return real(Xe, Ye, We, batch_size, on_batch, guard, perm)

    model._engine.run_epoch = spy
    h = model.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert calls == [((20, 4), np.int64, 8, True, np.int64)] * 3
    for perm in perms:  # a new permutation of the rows each epoch; the data is not copied
        assert sorted(perm) == list(range(20))
    assert not np.array_equal(perms[0], perms[1])
    assert len(h.history["loss"]) == 3
