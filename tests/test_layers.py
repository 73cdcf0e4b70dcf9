"""Layers, activations and initialisers: shapes, memory sharing, assignment, errors."""

import numpy as np
import pytest

import nncore as nn
from nncore import _reference as ref


def test_dense_shapes_and_defaults():
    layer = nn.Dense(4, 3)
    assert layer.W.shape == (4, 3) and layer.b.shape == (3,)
    assert layer.dW.shape == (4, 3) and layer.db.shape == (3,)
    assert layer.W.dtype == np.float64  # a standalone layer's own arrays
    assert layer.n_params == 15
    assert layer.activation == nn.Identity()
    assert repr(layer) == "Dense(4, 3)"
    assert repr(nn.Dense(4, 3, activation="relu", bias=False)) == \
        "Dense(4, 3, activation='relu', bias=False)"


def test_dense_without_bias():
    layer = nn.Dense(4, 3, bias=False)
    assert layer.b is None and layer.db is None and layer.n_params == 12
    with pytest.raises(ValueError, match="no bias"):
        layer.b = np.zeros(3)


def test_standalone_layer_forward_matches_reference(rng):
    layer = nn.Dense(5, 4, activation="tanh", seed=1)
    x = rng.standard_normal((6, 5))
    y, _ = ref.dense_forward(x, layer.W, layer.b, "tanh")
    np.testing.assert_allclose(layer(x), y, rtol=1e-12, atol=1e-14)


def test_assignment_copies_into_the_same_memory():
    model = nn.Sequential([nn.Dense(2, 3), nn.Dense(3, 1)], dtype="float64", seed=0)
    layer = model.layers[0]
    W = layer.W
    new = np.arange(6.0).reshape(2, 3)
    layer.W = new
    assert layer.W is W  # never rebound
    np.testing.assert_array_equal(W, new)
    assert np.shares_memory(layer.W, model.params)
    layer.W[0, 0] = 42.0  # in place, visible in the flat buffer
    assert 42.0 in model.params
    layer.b = [1, 2, 3]  # lists and ints are converted
    np.testing.assert_array_equal(layer.b, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("value, err", [
    (np.zeros((3, 2)), ValueError),    # transposed
    (np.zeros(6), ValueError),
    (np.array([["a", "b", "c"], ["d", "e", "f"]]), TypeError),
])
def test_assignment_errors(value, err):
    layer = nn.Dense(2, 3)
    before = layer.W.copy()
    with pytest.raises(err, match="W"):
        layer.W = value
    np.testing.assert_array_equal(layer.W, before)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"in_features": 0, "out_features": 3}, ValueError, "in_features"),
    ({"in_features": 2.0, "out_features": 3}, TypeError, "in_features"),
    ({"in_features": 2, "out_features": 3, "activation": "relu6"}, ValueError, "relu6"),
    ({"in_features": 2, "out_features": 3, "init": "lecun"}, ValueError, "lecun"),
    ({"in_features": 2, "out_features": 3, "bias": "yes"}, TypeError, "bias"),
])
def test_dense_argument_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        nn.Dense(**kwargs)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_p_range(p):
    with pytest.raises(ValueError, match="Dropout p"):
        nn.Dropout(p)


def test_layer_in_two_models_is_refused():
    layer = nn.Dense(2, 2)
    nn.Sequential([layer])
    with pytest.raises(ValueError, match="another model"):
        nn.Sequential([layer])


def test_user_values_survive_adoption_in_model_dtype():
    layer = nn.Dense(2, 3)
    layer.W[...] = [[1, 2, 3], [4, 5, 6]]
    layer.b[...] = [0.5, 0.25, 0.125]
    model = nn.Sequential([layer, nn.Dense(3, 1)], dtype="float32", seed=0)
    assert layer.W.dtype == np.float32 and np.shares_memory(layer.W, model.params)
    np.testing.assert_array_equal(layer.W, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(layer.b, [0.5, 0.25, 0.125])


def test_untouched_layers_take_the_model_seed():
    a = nn.Sequential([nn.Dense(3, 4), nn.Dense(4, 2)], seed=7)
    b = nn.Sequential([nn.Dense(3, 4), nn.Dense(4, 2)], seed=7)
    c = nn.Sequential([nn.Dense(3, 4), nn.Dense(4, 2)], seed=8)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_layer_seed_overrides_the_model_seed():
    a = nn.Sequential([nn.Dense(3, 4, seed=5)], seed=1)
    b = nn.Sequential([nn.Dense(3, 4, seed=5)], seed=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(nn.Dense(3, 4, seed=5).W.astype(np.float32), a.layers[0].W)


def test_same_seed_same_weights_across_dtypes():
    a = nn.Sequential([nn.Dense(3, 4)], dtype="float32", seed=3)
    b = nn.Sequential([nn.Dense(3, 4)], dtype="float64", seed=3)
    np.testing.assert_array_equal(a.layers[0].W, b.layers[0].W.astype(np.float32))


@pytest.mark.parametrize("init, mean_b, std_w", [
    ("he_normal", 0.0, np.sqrt(2 / 400)),
    ("he_uniform", 0.0, np.sqrt(6 / 400) / np.sqrt(3)),
    ("glorot_normal", 0.0, np.sqrt(2 / 700)),
    ("glorot_uniform", 0.0, np.sqrt(6 / 700) / np.sqrt(3)),
    ("default", None, 1 / np.sqrt(400) / np.sqrt(3)),
])
def test_initialiser_statistics(init, mean_b, std_w):
    layer = nn.Dense(400, 300, init=init, seed=0)
    assert abs(layer.W.mean()) < 0.02 * std_w * 10
    assert layer.W.std() == pytest.approx(std_w, rel=0.02)
    if mean_b is not None:
        assert not layer.b.any()  # He/Glorot: zero biases
    else:  # PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias too
        assert np.abs(layer.b).max() <= 1 / np.sqrt(400) and layer.b.std() > 0
    if "uniform" in init or init == "default":
        bound = np.sqrt(3) * std_w
        assert np.abs(layer.W).max() <= bound


@pytest.mark.parametrize("name", ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu",
                                  "softmax", "silu", "gelu_tanh", "exp"])
def test_activations_by_name_and_object(name, rng):
    act = nn.activations.get(name)
    assert act.name == name and nn.activations.get(act) is act
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(act(x), ref.activation_forward(x, name), rtol=1e-12,
                               atol=1e-14)
    layer = nn.Dense(4, 3, activation=act)
    assert layer.activation is act


def test_leaky_relu_alpha():
    act = nn.LeakyReLU(0.2)
    np.testing.assert_allclose(act(np.array([[-1.0, 2.0]])), [[-0.2, 2.0]])
    assert nn.activations.get(act.get_config()) == act
    assert nn.activations.get(None) == nn.Identity()
    assert nn.activations.get("linear") == nn.Identity()


def test_unknown_activation_names_choices():
    with pytest.raises(ValueError, match="relu"):
        nn.activations.get("mish")


def test_activation_layer_equals_fused_activation(rng):
    x = rng.standard_normal((8, 3))
    fused = nn.Sequential([nn.Dense(3, 4, activation="gelu")], dtype="float64", seed=0)
    split = nn.Sequential([nn.Dense(3, 4), nn.Activation("gelu")], dtype="float64", seed=0)
    np.testing.assert_allclose(split.predict(x), fused.predict(x), rtol=1e-13, atol=1e-15)


def test_layer_call_checks_features():
    with pytest.raises(ValueError, match="expects 3"):
        nn.Dense(3, 2)(np.zeros((4, 5)))


def _fitted(rng, p=0.0, activation="relu"):
    model = nn.Sequential([nn.Dense(4, 8, activation=activation), nn.Dropout(p),
                           nn.Dense(8, 3)], seed=0)
    model.compile(nn.Adam(1e-2), "cross_entropy")
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    model.predict(X)
    return model, X, y


@pytest.mark.parametrize("name, value, p, act", [
    ("p", 0.3, 0.0, "relu"), ("p", 0.0, 0.3, "relu"),       # mask buffers appear / go away
    ("activation", "gelu", 0.0, "relu"),                    # gelu's backward needs z
    ("activation", "relu", 0.0, "gelu"),
    ("activation", nn.activations.LeakyReLU(-0.5), 0.0, "relu"),
])
def test_a_changed_layer_attribute_takes_effect_on_the_next_call(rng, name, value, p, act):
    """The same bits as a model built with the new value from the start."""
    model, X, y = _fitted(rng, p, act)
    layer = model[1] if name == "p" else model[0]
    setattr(layer, name, value)
    fresh = nn.Sequential.from_config(model.get_config())
    fresh.load_state_dict(model.state_dict())
    fresh.compile(nn.Adam(1e-2), "cross_entropy")
    fresh.optimizer.load_state_dict(model.optimizer.state_dict())
    fresh._set_rng_state(model._rng_state())
    for m in (model, fresh):
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert model.params.tobytes() == fresh.params.tobytes()
    np.testing.assert_array_equal(model.predict(X), fresh.predict(X))


@pytest.mark.parametrize("value", [1.0, 5, -0.5, float("nan"), "0.1", None])
def test_dropout_p_assignments_are_checked(rng, value):
    model, X, y = _fitted(rng, 0.2)
    with pytest.raises((ValueError, TypeError), match="p must"):
        model[1].p = value
    assert model[1].p == 0.2
    model.fit(X, y, epochs=1, verbose=0)


def test_layer_assignments_are_checked_and_fixed_ones_refused(rng):
    model, X, y = _fitted(rng)
    with pytest.raises(ValueError, match="'mish' is not an activation"):
        model[0].activation = "mish"
    with pytest.raises(ValueError, match="cross_entropy.*logits"):  # the loss still holds
        model[2].activation = "softmax"
    assert model[2].activation.name == "identity"
    with pytest.raises(AttributeError, match="bias is fixed"):
        model[0].bias = False
    with pytest.raises(AttributeError, match="cannot be changed in place"):
        model[0].activation.alpha = 3.0
    with pytest.raises(ValueError, match="not an initialiser"):
        model[0].init = "bogus"
    with pytest.raises(ValueError, match="seed must be at least 0"):
        model[0].seed = -1
    model.fit(X, y, epochs=1, verbose=0)
