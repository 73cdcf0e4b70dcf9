"""Metrics (in fit/evaluate and as functions) and the datasets module."""

import numpy as np
import pytest

import nncore as nn


# ---- metrics --------------------------------------------------------------------------------

def test_metric_functions():
    assert nn.metrics.accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    assert nn.metrics.accuracy(np.eye(3), np.eye(3) * 5) == 1.0  # one-hot vs scores
    assert nn.metrics.mse([1, 2], [1, 4]) == 2.0
    assert nn.metrics.mae([[1], [2]], [1, 4]) == 1.0
    with pytest.raises(ValueError, match="y_true"):
        nn.metrics.mse([1, 2, 3], [1, 2])


def test_metrics_in_evaluate_match_the_functions(rng):
    X = rng.standard_normal((30, 4))
    y = rng.integers(0, 3, 30)
    model = nn.Sequential([nn.Dense(4, 3)], dtype="float64", seed=0)
    model.compile("sgd", "cross_entropy", ["acc", "mse", "mae"])
    got = model.evaluate(X, y, batch_size=7)
    proba = model.predict_proba(X)
    onehot = np.eye(3)[y]
    assert got["accuracy"] == pytest.approx(nn.metrics.accuracy(y, proba))
    assert got["mse"] == pytest.approx(nn.metrics.mse(onehot, proba), rel=1e-12)
    assert got["mae"] == pytest.approx(nn.metrics.mae(onehot, proba), rel=1e-12)


def test_metrics_for_bce_and_mse(rng):
    X = rng.standard_normal((20, 4))
    t = (rng.uniform(size=(20, 2)) > 0.5).astype(float)
    b = nn.Sequential([nn.Dense(4, 2)], dtype="float64", seed=0)
    b.compile("sgd", "bce_with_logits", ["accuracy", "mae"])
    got = b.evaluate(X, t)
    out = b.predict(X)
    assert got["accuracy"] == pytest.approx(np.mean((out > 0) == (t > 0.5)))
    assert got["mae"] == pytest.approx(np.mean(np.abs(1 / (1 + np.exp(-out)) - t)))
    r = nn.Sequential([nn.Dense(4, 2)], dtype="float64", seed=0)
    r.compile("sgd", "mse", ["mae", "accuracy"])  # accuracy on one-hot targets: argmax
    got = r.evaluate(X, t)
    assert got["loss"] == pytest.approx(np.mean((r.predict(X) - t) ** 2), rel=1e-12)
    assert got["mae"] == pytest.approx(np.mean(np.abs(r.predict(X) - t)), rel=1e-12)


def test_unknown_and_duplicate_metrics():
    model = nn.Sequential([nn.Dense(4, 3)])
    with pytest.raises(ValueError, match="f1"):
        model.compile("sgd", "cross_entropy", ["f1"])
    with pytest.raises(ValueError, match="twice"):
        model.compile("sgd", "cross_entropy", ["acc", "accuracy"])


# ---- datasets -------------------------------------------------------------------------------

def test_load_digits():
    X, y = nn.datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert sorted(np.unique(y)) == list(range(10))
    assert np.bincount(y).min() >= 170  # about 180 per digit


@pytest.mark.parametrize("make, kwargs, classes", [
    (nn.datasets.make_moons, dict(n_samples=101), 2),
    (nn.datasets.make_spirals, dict(n_samples=100, n_classes=4), 4),
    (nn.datasets.make_xor, dict(n_samples=50), 2),
])
def test_toy_datasets(make, kwargs, classes):
    X, y = make(seed=3, **kwargs)
    n = kwargs["n_samples"]
    assert X.shape == (n, 2) and y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(classes))
    assert abs(np.bincount(y).max() - np.bincount(y).min()) <= (1 if make is not
                                                               nn.datasets.make_xor else n)
    X2, y2 = make(seed=3, **kwargs)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(seed=4, **kwargs)
    assert not np.array_equal(X, X3)


def test_make_xor_labels():
    X, y = nn.datasets.make_xor(100, seed=0)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(int))


def test_train_test_split():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20)
    X_tr, X_te, y_tr, y_te = nn.datasets.train_test_split(X, y, test_size=0.25, seed=0)
    assert X_tr.shape == (15, 2) and X_te.shape == (5, 2)
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)  # rows stay paired
    assert sorted(np.concatenate([y_tr, y_te])) == list(range(20))
    a = nn.datasets.train_test_split(X, y, test_size=3, shuffle=False)
    np.testing.assert_array_equal(a[3], [17, 18, 19])
    with pytest.raises(ValueError, match="same number of rows"):
        nn.datasets.train_test_split(X, y[:5])
    with pytest.raises(ValueError, match="test_size"):
        nn.datasets.train_test_split(X, test_size=1.5)


def test_stratified_split_keeps_proportions():
    y = np.array([0] * 80 + [1] * 20)
    _, y_te = nn.datasets.train_test_split(y, test_size=0.2, stratify=y, seed=1)
    assert len(y_te) == 20 and np.sum(y_te == 1) == 4
    labels = np.array(["a", "b"] * 10)
    tr, te = nn.datasets.train_test_split(labels, test_size=0.5, stratify=labels, seed=0)
    assert sorted(te) == ["a"] * 5 + ["b"] * 5
