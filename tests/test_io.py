"""Model files and state dicts: round trips, resumed training, clear errors for bad files."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import nncore as nn


def make_model(dtype, seed=0):
    model = nn.Sequential([nn.Dense(4, 8, activation="gelu"), nn.Dropout(0.25),
                           nn.Dense(8, 8, activation=nn.LeakyReLU(0.2), init="he_normal"),
                           nn.Dense(8, 3, bias=False)], dtype=dtype, seed=seed)
    model.compile(nn.AdamW(0.01, amsgrad=True, schedule=nn.StepLR(2)), "cross_entropy",
                  ["accuracy", "mae"])
    return model


@pytest.fixture
def data(rng):
    return rng.standard_normal((40, 4)), rng.integers(0, 3, 40)


def test_save_load_identical_predictions(dtype, data, tmp_path):
    X, y = data
    model = make_model(dtype)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    same = nn.load_model(path)
    assert same.dtype == dtype and repr(same) == repr(model)
    np.testing.assert_array_equal(same.predict(X), model.predict(X))
    assert same.loss.name == "cross_entropy" and [m.name for m in same.metrics] == [
        "accuracy", "mae"]
    assert same.optimizer.get_config() == model.optimizer.get_config()
    assert same.evaluate(X, y) == model.evaluate(X, y)
    assert str(path).endswith(".safetensors")


@pytest.mark.parametrize("seed", [0, None])
def test_resumed_training_equals_uninterrupted(data, tmp_path, seed):
    """Parameters, optimizer state, dropout counter and shuffling all resume: training on
    after a save/load is bitwise the same as training on without it."""
    X, y = data
    a = make_model("float64", seed=seed)
    a.fit(X, y, epochs=2, batch_size=8, verbose=0)
    a.save(tmp_path / "a.safetensors")
    b = nn.load_model(tmp_path / "a.safetensors")
    assert b.optimizer.steps == a.optimizer.steps == 10 and b.optimizer.epochs == 2
    assert b.seed_value == a.seed_value
    ha = a.fit(X, y, epochs=3, batch_size=8, verbose=0)
    hb = b.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert ha.history == hb.history
    np.testing.assert_array_equal(a.params, b.params)


def test_file_layout_and_metadata(data, tmp_path):
    model = make_model("float32")
    path = tmp_path / "m.safetensors"
    model.save(path, metadata={"author": "me"})
    tensors = load_file(path)
    assert {"0.W", "0.b", "2.W", "2.b", "3.W"} <= set(tensors)
    assert "3.b" not in tensors
    assert {k for k in tensors if k.startswith("optimizer.")} == {
        "optimizer.exp_avg", "optimizer.exp_avg_sq", "optimizer.max_exp_avg_sq"}
    np.testing.assert_array_equal(tensors["2.W"], model.layers[2].W)
    assert nn.load_model(path).metadata == {"author": "me"}
    model.save(path, include_optimizer=False)
    assert not any(k.startswith("optimizer.") for k in load_file(path))
    nn.load_model(path)  # loads, with a fresh optimizer state
    with pytest.raises(TypeError, match="metadata"):
        model.save(path, metadata={"n": 1})


def test_uncompiled_model_round_trip(tmp_path, rng):
    model = nn.Sequential([nn.Dense(3, 2, activation="tanh")], dtype="float64", seed=1)
    model.save(tmp_path / "u.safetensors")
    same = nn.load_model(tmp_path / "u.safetensors")
    assert same.loss is None
    X = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(same.predict(X), model.predict(X))


def test_state_dict_round_trip(dtype, data):
    X, _ = data
    model = make_model(dtype)
    sd = model.state_dict()
    assert list(sd) == ["0.W", "0.b", "2.W", "2.b", "3.W"]
    assert sd["0.W"].shape == (4, 8) and sd["3.W"].shape == (8, 3)
    sd["0.W"][...] = 0  # copies: the model is unaffected
    assert model.layers[0].W.any()
    other = make_model(dtype, seed=5)
    assert not np.array_equal(other.predict(X), model.predict(X))
    result = other.load_state_dict(model.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(other.predict(X), model.predict(X))


def test_load_state_dict_strictness():
    model = make_model("float64")
    sd = model.state_dict()
    del sd["3.W"]
    sd["9.W"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"missing keys \['3\.W'\].*unexpected keys "
                                         r"\['9\.W'\]"):
        model.load_state_dict(sd)
    res = model.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["3.W"] and res.unexpected_keys == ["9.W"]
    with pytest.raises(TypeError, match="state_dict"):
        model.load_state_dict([1, 2])


def test_load_weights(tmp_path, data):
    X, _ = data
    a, b = make_model("float32", 0), make_model("float32", 1)
    a.save(tmp_path / "a.safetensors")
    b.load_weights(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    small = nn.Sequential([nn.Dense(4, 3)])
    with pytest.raises(ValueError, match="does not match"):
        small.load_weights(tmp_path / "a.safetensors")


# ---- bad files --------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.safetensors"
    make_model("float32").save(path)
    return path


def rewrite(path, out, tensors=None, meta_update=None):
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        t = {k: f.get_tensor(k) for k in f.keys()}
    if tensors:
        t.update(tensors)
    if meta_update:
        meta.update(meta_update)
    save_file(t, str(out), metadata=meta)
    return out


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        nn.load_model(tmp_path / "nope.safetensors")


def test_truncated_file(saved, tmp_path):
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(nn.ModelFileError, match="truncated or corrupt"):
        nn.load_model(bad)


@pytest.mark.parametrize("content", [b"", b"hello world, not a model",
                                     b"\xff" * 8 + b"{}", b"\x08\x00\x00\x00\x00\x00\x00\x00{"])
def test_garbage_files(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(nn.ModelFileError, match="not a (valid|readable) safetensors"):
        nn.load_model(bad)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": np.zeros((2, 2), np.float32)}, str(path))
    with pytest.raises(nn.ModelFileError, match="not written by nncore"):
        nn.load_model(path)


def test_mismatched_architecture(saved, tmp_path):
    arch = nn.load_model(saved).get_config()
    arch["layers"][0]["config"]["out_features"] = 9
    arch["layers"][2]["config"]["in_features"] = 9
    bad = rewrite(saved, tmp_path / "arch.safetensors",
                  meta_update={"architecture": json.dumps(arch)})
    with pytest.raises(nn.ModelFileError, match="do not match its architecture"):
        nn.load_model(bad)


def test_wrong_tensor_dtype_and_shape(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "dtype.safetensors",
                  tensors={"0.W": np.zeros((4, 8), np.float64)})
    with pytest.raises(nn.ModelFileError, match="0.W"):
        nn.load_model(bad)
    bad = rewrite(saved, tmp_path / "shape.safetensors",
                  tensors={"0.W": np.zeros((8, 4), np.float32)})
    with pytest.raises(nn.ModelFileError, match="shape"):
        nn.load_model(bad)


@pytest.mark.parametrize("meta, match", [
    ({"architecture": "{not json"}, "not valid JSON"),
    ({"dtype": "int8"}, "dtype"),
    ({"format_version": "99"}, "format version"),
    ({"compile": json.dumps({"loss": {"name": "hinge"}, "optimizer": {"name": "sgd"}})},
     "compile settings"),
])
def test_corrupt_metadata(saved, tmp_path, meta, match):
    bad = rewrite(saved, tmp_path / "meta.safetensors", meta_update=meta)
    with pytest.raises(nn.ModelFileError, match=match):
        nn.load_model(bad)
