"""Model files and state dicts: round trips, resumed training, clear errors for bad files."""

import json
import os
import struct

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


# ---- crafted optimizer and random state (issue 22, item 10) ---------------------------------

def edit_json(path, out, key, edit):
    """path rewritten to out with its metadata JSON ``key`` changed by edit(dict)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        value = json.loads(f.metadata()[key])
    edit(value)
    return rewrite(path, out, meta_update={key: json.dumps(value)})


@pytest.fixture
def trained_file(data, tmp_path):
    """A float32 AdamW(amsgrad) model with dropout, trained two epochs, saved."""
    X, y = data
    model = make_model("float32")
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "trained.safetensors"
    model.save(path)
    return path


@pytest.mark.parametrize("field, value, match", [
    ("lr", float("nan"), "lr must be finite, got nan"),
    ("lr", float("inf"), "lr must be finite, got inf"),
    ("lr", -1, "lr must be at least 0.0, got -1.0"),
    ("lr", "0.01", "lr must be a number, got '0.01'"),
    ("lr", True, "lr must be a number, got True"),
    ("steps", -1, "steps must be at least 0, got -1"),
    ("steps", 2 ** 70, f"steps must be at most 2\\*\\*62 .*got {2 ** 70}"),
    ("steps", 1.5, "steps must be an integer, got 1.5"),
    ("epochs", -1, "epochs must be at least 0, got -1"),
    ("epochs", 2 ** 63, f"epochs must be at most 2\\*\\*62 .*got {2 ** 63}"),
])
def test_crafted_optimizer_counters_are_refused(trained_file, tmp_path, field, value, match):
    """Each loaded before (NaN/inf/-1 lr and -1 steps poisoned training; 2**70 steps
    failed in fit with OverflowError); now refused with the constructor's rule."""
    bad = edit_json(trained_file, tmp_path / "bad.safetensors", "optimizer_state",
                    lambda st: st.__setitem__(field, value))
    with pytest.raises(nn.ModelFileError, match="its optimizer state is invalid: " + match):
        nn.load_model(bad)


@pytest.mark.parametrize("name, make, match", [
    ("exp_avg_sq", lambda a: -np.abs(a) - 1, r"'exp_avg_sq' holds -\d.* at index 0; .*>= 0"),
    ("max_exp_avg_sq", lambda a: np.where(np.arange(a.size) == 5, -0.5, a).astype(a.dtype),
     r"'max_exp_avg_sq' holds -0.5 at index 5"),
    ("exp_avg", lambda a: a.astype(np.int32), r"'exp_avg' is int32, but the model's "
                                              r"parameters are float32"),
    ("exp_avg_sq", lambda a: a.astype(np.float64), r"'exp_avg_sq' is float64"),
    ("exp_avg", lambda a: a.astype(np.float16), r"'exp_avg' is float16"),
])
def test_crafted_optimizer_tensors_are_refused(trained_file, tmp_path, name, make, match):
    """Negative squared averages and integer (or other float) state tensors loaded before
    (cast silently); now refused, naming the tensor, the value and the rule."""
    a = load_file(trained_file)["optimizer." + name]
    bad = rewrite(trained_file, tmp_path / "bad.safetensors",
                  tensors={"optimizer." + name: make(a)})
    with pytest.raises(nn.ModelFileError, match="optimizer state is invalid: .*" + match):
        nn.load_model(bad)


def _shuffle(**changes):
    def edit(rng):
        for k, v in changes.items():
            target = rng["shuffle"]["state"] if k in ("state", "inc") else rng["shuffle"]
            target[k] = v
    return edit


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.__setitem__("dropout_counter", -1), "dropout_counter must be at least 0, "
                                                     "got -1"),
    (lambda r: r.__setitem__("dropout_counter", 2 ** 64),
     f"dropout_counter must be at most 2\\*\\*63 .*got {2 ** 64}"),
    (lambda r: r.__setitem__("dropout_counter", 7.0), "dropout_counter must be an integer"),
    (lambda r: r.__setitem__("seed_value", -3), "seed_value must be at least 0, got -3"),
    (lambda r: r.pop("shuffle"), "it must be a JSON object with exactly"),
    (_shuffle(inc=4), "shuffle.state.inc must be odd .*got 4"),
    (_shuffle(state=2 ** 128), f"shuffle.state.state must be below 2\\*\\*128 .*got "
                               f"{2 ** 128}"),
    (_shuffle(state=-5), "shuffle.state.state must be at least 0, got -5"),
    (_shuffle(has_uint32=2), "shuffle.has_uint32 must be 0 or 1, got 2"),
    (_shuffle(uinteger=2 ** 32), "shuffle.uinteger must be below 2\\*\\*32"),
    (_shuffle(bit_generator="MT19937"), "shuffle must be the state of numpy's PCG64"),
])
def test_crafted_random_state_is_refused(trained_file, tmp_path, edit, match):
    """A -1 or 2**64 dropout counter loaded before and failed in fit with OverflowError;
    an even PCG64 increment loaded silently; now all are refused."""
    bad = edit_json(trained_file, tmp_path / "bad.safetensors", "rng_state", edit)
    with pytest.raises(nn.ModelFileError, match=r"random-stream state \(rng_state\) is "
                                                r"invalid: " + match):
        nn.load_model(bad)


def test_state_at_the_edges_of_the_ranges_loads_and_trains(trained_file, tmp_path, data):
    """The largest counters the checks allow still train (the C core has room for them)."""
    X, y = data
    a = edit_json(trained_file, tmp_path / "a.safetensors", "optimizer_state",
                  lambda st: st.update(steps=2 ** 62, epochs=2 ** 62, lr=0.0))
    b = edit_json(a, tmp_path / "b.safetensors", "rng_state",
                  lambda r: r.update(dropout_counter=2 ** 63, seed_value=2 ** 200))
    model = nn.load_model(b)
    assert model.optimizer.steps == 2 ** 62 and model._rng_counter == 2 ** 63
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert model.optimizer.steps == 2 ** 62 + 5 and np.isfinite(model.params).all()


def test_nonfinite_optimizer_state_loads_when_allowed(trained_file, tmp_path):
    a = load_file(trained_file)["optimizer.exp_avg"]
    a[3] = np.nan
    bad = rewrite(trained_file, tmp_path / "nan.safetensors", tensors={"optimizer.exp_avg": a})
    with pytest.raises(nn.ModelFileError, match=r"'optimizer.exp_avg' holds nan \(flat index 3\)"):
        nn.load_model(bad)
    assert np.isnan(nn.load_model(bad, allow_nonfinite=True).optimizer.state["exp_avg"][3])


@pytest.mark.parametrize("change, err, match", [
    (dict(lr=float("nan")), ValueError, "lr must be finite"),
    (dict(steps=-1), ValueError, "steps must be at least 0"),
    (dict(epochs=2 ** 64), ValueError, "epochs must be at most"),
    ("int", TypeError, "'exp_avg' is int64, but the model's parameters are float64"),
    ("negative", ValueError, "'max_exp_avg_sq' holds -1.0 at index 2"),
    ("nan", ValueError, "'exp_avg' holds nan at index 0; it must be finite"),
])
def test_optimizer_load_state_dict_checks_everything_first(data, change, err, match):
    """Optimizer.load_state_dict applies the same rules (it is what load_model calls) and
    changes nothing when one fails."""
    X, y = data
    model = make_model("float64")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    opt = model.optimizer
    state = opt.state_dict()
    if change == "int":
        state["state"]["exp_avg"] = state["state"]["exp_avg"].astype(np.int64)
    elif change == "negative":
        state["state"]["max_exp_avg_sq"][2] = -1.0
    elif change == "nan":
        state["state"]["exp_avg"][0] = np.nan
    else:
        state.update(change)
    before = opt.state_dict()
    state["state"]["exp_avg_sq"] = state["state"]["exp_avg_sq"] + 1  # would change state
    with pytest.raises(err, match=match):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert (after["lr"], after["steps"], after["epochs"]) == (
        before["lr"], before["steps"], before["epochs"])
    for k in before["state"]:
        np.testing.assert_array_equal(after["state"][k], before["state"][k])


# ---- reading: size first (issue 22, item 13) -------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_symlink_to_a_device_is_refused_without_reading(tmp_path):
    """Before, load_model read /dev/zero to the end (until memory ran out)."""
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    with pytest.raises(nn.ModelFileError, match="not a regular file .*character device"):
        nn.load_model(link)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_waiting(tmp_path):
    """Before, opening a FIFO waited for a writer forever."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(nn.ModelFileError, match="not a regular file .*named pipe"):
        nn.load_model(fifo)


@pytest.mark.parametrize("case", ["lying header length", "junk after the data"])
def test_only_what_the_header_promises_is_read(saved, tmp_path, case):
    """A file with 64 MiB past what its header describes (sparse: no disk used) is refused
    after reading the header only; before, all of it was read into memory first."""
    import tracemalloc

    bad = tmp_path / "big.safetensors"
    data = saved.read_bytes()
    if case == "lying header length":
        data = struct.pack("<Q", 2 ** 40) + data[8:]
    bad.write_bytes(data)
    with open(bad, "r+b") as f:
        f.truncate(len(data) + 64 * 2 ** 20)
    tracemalloc.start()
    try:
        with pytest.raises(nn.ModelFileError, match="header claims|data section has"):
            nn.load_model(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2 ** 20


# ---- save refuses what load_model refuses (issue 22, item 6) ---------------------------------

def test_save_refuses_nonfinite_weights_and_writes_nothing(tmp_path, rng):
    """The issue's reproducer: SGD(lr=1e30) on targets of 1e10 leaves +-inf weights; save
    wrote a file load_model then refused. Now save refuses, naming the parameter, and
    writes nothing; allow_nonfinite=True writes it for load_model(allow_nonfinite=True)."""
    from nncore import io

    X = rng.standard_normal((8, 3))
    model = nn.Sequential([nn.Dense(3, 1)], seed=0)
    model.compile(nn.SGD(lr=1e30), "mse")
    model.fit(X, np.full((8, 1), 1e10), epochs=1, batch_size=8, verbose=0)
    assert not np.isfinite(model.params).all()
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"the model's parameter '0.W' holds -?inf at index "
                                         r"\(0, 0\) .*nothing was written.*"
                                         r"allow_nonfinite=True"):
        model.save(path)
    assert list(tmp_path.iterdir()) == []
    io.save_model(model, path, allow_nonfinite=True)
    with pytest.raises(nn.ModelFileError, match="allow_nonfinite=True"):
        nn.load_model(path)
    np.testing.assert_array_equal(nn.load_model(path, allow_nonfinite=True).params,
                                  model.params)


def test_save_refuses_nonfinite_or_invalid_optimizer_state(data, tmp_path):
    X, y = data
    model = make_model("float32")
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.safetensors"
    model.optimizer.state["exp_avg"][4] = np.inf
    with pytest.raises(ValueError, match="optimizer state 'exp_avg' holds inf at index 4"):
        model.save(path)
    model.save(path, include_optimizer=False)  # the weights alone are fine
    model.optimizer.state["exp_avg"][4] = 0
    model.optimizer.lr = float("nan")  # e.g. set by a callback
    with pytest.raises(ValueError, match="cannot save the optimizer's state: lr must be "
                                         "finite, got nan.*include_optimizer=False"):
        model.save(path)
    assert nn.load_model(path).optimizer.steps == 0  # the file saved above, untouched
