"""Finite-difference checks of whole models: every activation and loss, dropout, weights."""

import numpy as np
import pytest

import nncore as nn
from nncore import layers as layers_module

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "silu",
               "gelu_tanh", "exp"]
LOSSES = ["mse", "bce_with_logits", "cross_entropy"]


def targets(loss, rng, n=12, d=3):
    if loss == "cross_entropy":
        return rng.integers(0, d, n)
    return rng.uniform(0, 1, (n, d))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_whole_model_gradients(act, loss, dtype, rng):
    X = rng.standard_normal((12, 3))
    model = nn.Sequential([nn.Dense(3, 5, activation=act), nn.Dropout(0.3),
                           nn.Dense(5, 4, activation="tanh"), nn.Activation("sigmoid"),
                           nn.Dense(4, 3)], dtype=dtype, seed=1)
    model.compile("sgd", loss)
    before = model.params.copy()
    err = nn.check_gradients(model, X, targets(loss, rng), rng.uniform(0.5, 2, 12))
    assert err < 1e-5
    np.testing.assert_array_equal(model.params, before)  # checked on a float64 copy


def test_without_bias_and_with_loss_argument(rng):
    model = nn.Sequential([nn.Dense(3, 4, activation="gelu", bias=False), nn.Dense(4, 2)],
                          seed=0)
    err = nn.check_gradients(model, rng.standard_normal((6, 3)), rng.standard_normal((6, 2)),
                             loss="mse")
    assert err < 1e-5
    with pytest.raises(RuntimeError, match="loss"):
        nn.check_gradients(model, np.zeros((2, 3)), np.zeros((2, 2)))


def test_a_wrong_gradient_is_caught(rng, monkeypatch):
    real = layers_module._dense_backward

    def off_by_one_percent(*args, **kwargs):
        dx, dw, db = real(*args, **kwargs)
        dw *= 1.01
        return dx, dw, db

    monkeypatch.setattr(layers_module, "_dense_backward", off_by_one_percent)
    model = nn.Sequential([nn.Dense(3, 4, activation="tanh"), nn.Dense(4, 2)], seed=0)
    model.compile("sgd", "mse")
    err = nn.check_gradients(model, rng.standard_normal((6, 3)), rng.standard_normal((6, 2)))
    assert err > 5e-3


def test_subset_of_parameters(rng):
    model = nn.Sequential([nn.Dense(8, 16, activation="relu"), nn.Dense(16, 4)], seed=0)
    model.compile("adam", "cross_entropy")
    err = nn.check_gradients(model, rng.standard_normal((10, 8)), rng.integers(0, 4, 10),
                             max_params=20, seed=3)
    assert 0 <= err < 1e-5
