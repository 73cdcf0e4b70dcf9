"""mixed_bfloat16 models: float32 parameters with the dense products on bfloat16 operands.
The dense kernels against the NumPy twin within the float32 summation bound, on every path
and bfloat16 kernel; the compiled plan bitwise the Python loop; accuracy within a point of
float32 on three bundled datasets; files, state dicts, scikit-learn and the CLI."""

import re

import numpy as np
import pytest

import nncore as nn
from nncore import _core
from nncore import _reference as ref


def rounded(a):
    return ref.bf16_value(ref.bf16_round(a)).astype(np.float64)


@pytest.mark.parametrize("n,n_in,n_out", [(1, 1, 1), (7, 13, 5), (64, 100, 33), (37, 64, 70)])
@pytest.mark.parametrize("act", ["relu", "tanh", "softmax", "gelu"])
def test_dense_kernels_within_the_bound(cpu_path, bf16_kernel, rng, n, n_in, n_out, act):
    x = rng.standard_normal((n, n_in)).astype(np.float32)
    w = rng.standard_normal((n_in, n_out)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    z = np.empty((n, n_out), np.float32)
    y = _core.dense_forward(x, w, b, act, z=z, bf16=True)
    want_z = rounded(x) @ rounded(w) + b
    bound = ref.gemm_bf16_bound(x, w) + 2 ** -24 * np.abs(want_z)
    assert (np.abs(z - want_z) <= bound).all()
    np.testing.assert_allclose(y, ref.activation_forward(z.astype(np.float64), act),
                               rtol=2e-6, atol=1e-6)
    dy = rng.standard_normal((n, n_out)).astype(np.float32)
    dx, dw, db = _core.dense_backward(dy, x, w, y, z, act, bf16=True)
    dz = ref.activation_backward(dy.astype(np.float64), y.astype(np.float64),
                                 z.astype(np.float64), act)
    # dz in float32 as the kernel forms it, then the products of its rounding
    dz32 = _core.activation_backward(dy, y, z, act)
    np.testing.assert_allclose(dz32, dz, rtol=1e-5, atol=1e-6)
    assert (np.abs(dx - rounded(dz32) @ rounded(w).T)
            <= ref.gemm_bf16_bound(dz32, w, trans_b=True) * 1.01).all()
    assert (np.abs(dw - rounded(x).T @ rounded(dz32))
            <= ref.gemm_bf16_bound(x, dz32, trans_a=True) * 1.01).all()
    np.testing.assert_allclose(db, dz32.sum(axis=0, dtype=np.float64), rtol=1e-5, atol=1e-5)


def test_bf16_needs_float32():
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="float32"):
        _core.dense_forward(x, np.ones((3, 2)), bf16=True)


def build(seed=1, dtype="mixed_bfloat16"):
    return nn.Sequential([
        nn.Dense(12, 48, activation="relu"),
        nn.BatchNorm(48),
        nn.Residual([nn.LayerNorm(48), nn.Dense(48, 48, activation="gelu"), nn.Dropout(0.1),
                     nn.Dense(48, 48)]),
        nn.Dense(48, 5),
    ], dtype=dtype, seed=seed)


def python_loop(model):
    model._engine.plan = lambda ws, guard=None: None
    model._engine.reset()
    return model


@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("threads", [1, 2])
def test_plan_is_bitwise_the_python_loop(bf16_kernel, rng, opt, threads):
    X = rng.standard_normal((301, 12)).astype(np.float32)
    y = rng.integers(0, 5, 301)
    results = []
    nn.set_num_threads(threads)
    try:
        for use_plan in (True, False):
            m = build()
            if not use_plan:
                python_loop(m)
            o = nn.SGD(lr=0.05, momentum=0.9) if opt == "sgd" else nn.Adam(lr=1e-3)
            m.compile(o, "cross_entropy", ["accuracy"])
            h = m.fit(X, y, epochs=2, batch_size=64, validation_split=0.2, verbose=0)
            if use_plan:
                assert m._engine.plans[True][1] is not None
            results.append((m.params.copy(), m.state.copy(), h.history, m.predict(X[:9])))
    finally:
        nn.set_num_threads(None)
    (p1, s1, h1, o1), (p2, s2, h2, o2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(o1, o2)
    assert h1 == h2


def test_the_products_are_bfloat16s(rng):
    # A weight that bfloat16 rounds away: float32 sees it, mixed_bfloat16 does not.
    m = {}
    for dt in ("float32", "mixed_bfloat16"):
        m[dt] = nn.Sequential([nn.Dense(1, 1, bias=False)], dtype=dt)
        m[dt].layers[0].W[...] = 1 + 2 ** -10
    x = np.ones((1, 1), np.float32)
    assert m["float32"].predict(x)[0, 0] == np.float32(1 + 2 ** -10)
    assert m["mixed_bfloat16"].predict(x)[0, 0] == 1.0
    assert m["mixed_bfloat16"].layers[0].W.dtype == np.float32  # the weights stay float32


def _accuracy(dtype, X, y, seed):
    X = ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32)
    Xtr, Xte, ytr, yte = nn.datasets.train_test_split(X, y, test_size=0.25, seed=seed,
                                                      stratify=y)
    k = int(y.max()) + 1
    m = nn.Sequential([nn.Dense(X.shape[1], 64, activation="relu"),
                       nn.Dense(64, 64, activation="relu"), nn.Dense(64, k)],
                      dtype=dtype, seed=seed)
    m.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
    m.fit(Xtr, ytr, epochs=30, batch_size=32, verbose=0)
    return float(np.mean(m.predict(Xte).argmax(axis=1) == yte))


@pytest.mark.parametrize("dataset", ["digits", "breast_cancer", "wine"])
def test_accuracy_within_a_point_of_float32(dataset):
    if dataset == "digits":
        X, y = nn.datasets.load_digits()
    else:
        sk = pytest.importorskip("sklearn.datasets")
        X, y = getattr(sk, f"load_{dataset}")(return_X_y=True)
    # The mean over three seeds: one test sample is 0.2 to 2.2 points of a single split.
    a32 = np.mean([_accuracy("float32", X, y, seed) for seed in range(3)])
    a16 = np.mean([_accuracy("mixed_bfloat16", X, y, seed) for seed in range(3)])
    assert abs(a16 - a32) <= 0.01, (a32, a16)


def test_file_state_dict_summary_and_copy(tmp_path, rng, capsys):
    m = build()
    m.compile(nn.Adam(1e-3), "cross_entropy")
    X = rng.standard_normal((64, 12)).astype(np.float32)
    m.fit(X, rng.integers(0, 5, 64), epochs=1, verbose=0)
    path = tmp_path / "m.safetensors"
    m.save(path)
    m2 = nn.load_model(path)
    assert m2.policy == "mixed_bfloat16" and m2.dtype == np.float32
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    m.summary()
    assert "(mixed_bfloat16, seed" in capsys.readouterr().out and "mixed_bfloat16" in repr(m)
    fresh = build(seed=9)
    fresh.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(fresh.predict(X), m.predict(X))
    assert nn.Sequential.from_config(m.get_config()).policy == "mixed_bfloat16"
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        nn.Sequential([nn.Dense(2, 2)], dtype="bfloat16")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimators_take_it():
    pytest.importorskip("sklearn")
    from nncore.sklearn import NNClassifier, NNRegressor
    X, y = nn.datasets.load_digits()
    X = X / 16.0
    clf = NNClassifier(hidden_layer_sizes=(64,), dtype="mixed_bfloat16", max_epochs=30,
                       random_state=0).fit(X, y)
    assert clf.model_.policy == "mixed_bfloat16" and clf.score(X, y) > 0.9
    reg = NNRegressor(hidden_layer_sizes=(32,), dtype="mixed_bfloat16", max_epochs=20,
                      random_state=0).fit(X, X[:, :3].sum(axis=1))
    assert reg.model_.policy == "mixed_bfloat16" and reg.score(X, X[:, :3].sum(axis=1)) > 0.9


def test_cli_trains_in_mixed_bfloat16(capsys, tmp_path):
    from nncore.cli import main
    path = tmp_path / "digits.safetensors"
    code = main(["train", "--dtype", "mixed_bfloat16", "--epochs", "10", "--out", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert float(re.search(r"test accuracy: ([\d.]+)%", out).group(1)) >= 93.0
    assert nn.load_model(path).policy == "mixed_bfloat16"


def test_plan_refuses_bf16_in_float64():
    m = build(dtype="float64")
    m.compile(nn.SGD(0.1), "cross_entropy")
    with pytest.raises(ValueError, match="float32"):
        _core.Plan("float64", [], first_param=0, n_features=1, n_outputs=1, capacity=1,
                   grad=None, scratch=None, loss="mse", prob_act=None, metrics=[],
                   optimizer="sgd", hyper={}, params=m.params, grads=m.grads, state=(),
                   dropout_seed=0, bf16=True)
