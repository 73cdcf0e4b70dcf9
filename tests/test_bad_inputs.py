"""The bad-input catalogue: every public entry point (constructors, compile, fit, evaluate,
predict, save/load, the kernels' wrappers, the command line) given wrong shapes and dtypes,
NaN/inf, empty, object and string arrays, labels out of range or fractional, impossible
hyper-parameters, corrupt model files, allocations that cannot succeed. Each raises a
documented exception type whose message names the problem, and the model is left exactly as
it was (parameters bitwise, optimizer state, History, random streams: ``snapshot``).

Related: test_core_errors.py (more wrapper cases), test_io.py (file round trips),
test_fuzz_model_files.py (mutated files). ``len(CATALOGUE)`` below counts the distinct cases.
"""

import json
import struct

import numpy as np
import pytest

import nncore as nn
from nncore import _core
from nncore.cli import main as cli_main

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
    ("masked X", lambda X, y: dict(X=np.ma.masked_array(X, X > 1), y=y), TypeError,
     ["X is a masked array", "filled"]),
    ("NaN in big-endian X", lambda X, y: dict(X=with_nan(X).astype(">f8"), y=y), ValueError,
     ["X contains nan", "row 2, column 1"]),
    ("subnormal weights", lambda X, y: dict(X=X, y=y, sample_weight=np.full(N, 1e-45)),
     ValueError, ["sample_weight is all zeros", "smallest normal float32"]),
    ("zero weights on the validation part", lambda X, y: dict(
        X=X, y=y, validation_split=0.25, sample_weight=(np.arange(N) < 18).astype(float)),
     ValueError, ["all zeros on the validation part", "last 6 rows"]),
    ("callback class", lambda X, y: dict(X=X, y=y, callbacks=nn.EarlyStopping), TypeError,
     ["the class EarlyStopping", "nn.EarlyStopping()"]),
    ("callback classes in a list", lambda X, y: dict(X=X, y=y, callbacks=[nn.TerminateOnNaN]),
     TypeError, ["callbacks[0] is the class TerminateOnNaN"]),
    ("callbacks not a list", lambda X, y: dict(X=X, y=y, callbacks=3), TypeError,
     ["callbacks must be a list"]),
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
    (np.ma.masked_array(np.zeros((2, 4)), [[1, 0, 0, 0], [0] * 4]), TypeError, "masked array"),
    (with_nan(np.zeros((4, 4)), 3, 2).astype(">f4"), ValueError, "X contains nan at row 3"),
    (np.zeros(4), ValueError, "X must be 2-D"),
    (np.zeros((2, 5)), ValueError, "X has 5 features"),
    (np.zeros((0, 4)), ValueError, "X is empty"),
    (np.array([["1", "2", "3", "4"]]), TypeError, "X has dtype"),
    (np.full((2, 4), np.inf), ValueError, "X contains inf"),
])
def test_predict_and_evaluate_reject_bad_input(trained, X, err, fragment):
    model, _, _ = trained
    model.predict(np.zeros((1, 4)))  # the compiled plan is cached: predict's fast path is on
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


def test_non_native_byte_order_gives_the_native_answer(trained):
    """Big-endian arrays (from a file written elsewhere) are converted: every entry point
    gives the bits of native data, the predict fast path included (it is tried first)."""
    model, X, y = trained
    for dt in (">f4", ">f8"):
        for _ in range(2):  # the second call takes the cached plan's fast path
            np.testing.assert_array_equal(model.predict(X.astype(dt)), model.predict(X))
        assert model.evaluate(X.astype(dt), y.astype(">i8")) == model.evaluate(X, y)
    model, other = (nn.Sequential([nn.Dense(4, 6, activation="relu"), nn.Dropout(0.2),
                                   nn.Dense(6, 3)], seed=0) for _ in range(2))
    for m in (model, other):
        m.compile(nn.Adam(1e-2), "cross_entropy", ["accuracy"])
    w = np.linspace(0.5, 1.5, N)
    model.fit(X.astype(">f8"), y.astype(">i8"), sample_weight=w.astype(">f8"), epochs=2,
              batch_size=8, verbose=0, validation_data=(X.astype(">f4"), y.astype(">i4")))
    other.fit(X, y, sample_weight=w, epochs=2, batch_size=8, verbose=0,
              validation_data=(X, y))
    assert model.params.tobytes() == other.params.tobytes()
    assert model.history.history == other.history.history


def test_float64_weights_whose_sum_overflows_are_refused(rng):
    model = nn.Sequential([nn.Dense(4, 2)], dtype="float64", seed=0)
    model.compile("sgd", "mse")
    before = model.params.tobytes()
    X, Y = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    with pytest.raises(ValueError, match="sample_weight sums to inf.*ratios"):
        model.fit(X, Y, sample_weight=np.full(6, 1e308), verbose=0)
    with pytest.raises(ValueError, match="sample_weight sums to inf"):
        model.evaluate(X, Y, sample_weight=np.full(6, 1e308))
    assert model.params.tobytes() == before and model.optimizer.steps == 0


def test_load_state_dict_refuses_non_finite_and_overflowing_values(trained):
    model, _, _ = trained
    before = snapshot(model)
    for value, match in ((np.nan, "contains nan"), (np.inf, "contains inf"),
                         (1e300, "1e\\+300.*overflows float32")):
        sd = model.state_dict()
        sd["0.W"] = with_nan(sd["0.W"].astype(np.float64), 1, 2, value)
        with pytest.raises(ValueError, match=match):
            model.load_state_dict(sd)
        assert snapshot(model) == before
    sd["0.W"] = with_nan(sd["0.W"], 1, 2, np.nan)
    model.load_state_dict(sd, allow_nonfinite=True)  # as load_model(allow_nonfinite=True)
    assert np.isnan(model[0].W[1, 2])


def test_load_state_dict_failure_changes_nothing(trained):
    model, _, _ = trained
    before = model.params.copy()
    sd = model.state_dict()
    sd["0.W"] = sd["0.W"] + 1
    sd["2.b"] = np.zeros(4)  # wrong shape, checked before anything is copied
    with pytest.raises(ValueError, match=r"2\.b.*shape"):
        model.load_state_dict(sd)
    np.testing.assert_array_equal(model.params, before)


# ---- constructors and hyper-parameters ---------------------------------------------------------
CONSTRUCTOR_CASES = [
    ("Dense in_features 0", lambda: nn.Dense(0, 3), ValueError, "in_features must be at least 1"),
    ("Dense in_features float", lambda: nn.Dense(2.5, 3), TypeError, "in_features must be an integer"),
    ("Dense unknown activation", lambda: nn.Dense(2, 3, activation="mish"), ValueError, "'mish' is not an activation"),
    ("Dense unknown init", lambda: nn.Dense(2, 3, init="bogus"), ValueError, "'bogus' is not an initialiser"),
    ("Dropout rate 1.0", lambda: nn.Dropout(1.0), ValueError, r"p must be in \[0, 1\), got 1.0"),
    ("Dropout rate NaN", lambda: nn.Dropout(float("nan")), ValueError, "p must be finite"),
    ("SGD negative lr", lambda: nn.SGD(lr=-0.1), ValueError, "lr must be at least 0.0, got -0.1"),
    ("SGD NaN lr", lambda: nn.SGD(lr=float("nan")), ValueError, "lr must be finite"),
    ("SGD nesterov without momentum", lambda: nn.SGD(0.1, nesterov=True), ValueError, "nesterov=True needs momentum"),
    ("Adam beta 1.0", lambda: nn.Adam(betas=(0.9, 1.0)), ValueError, "betas must be in"),
    ("Adam negative eps", lambda: nn.Adam(eps=-1), ValueError, "eps must be at least 0"),
    ("model dtype int32", lambda: nn.Sequential([nn.Dense(2, 3)], dtype="int32"), ValueError, "dtype must be 'float32', 'float64' or 'mixed_bfloat16'"),
    ("model negative seed", lambda: nn.Sequential([nn.Dense(2, 3)], seed=-1), ValueError, "seed must be at least 0"),
    ("model layers not a list", lambda: nn.Sequential(nn.Dense(2, 3)), TypeError, "layers must be a list"),
    ("layer chain mismatch", lambda: nn.Sequential([nn.Dense(2, 3), nn.Dense(4, 1)]), ValueError, "expects 4 input features"),
    ("EarlyStopping negative patience", lambda: nn.EarlyStopping(patience=-1), ValueError, "patience must be at least 0"),
    ("ModelCheckpoint mode", lambda: nn.ModelCheckpoint("m.safetensors", mode="up"), ValueError, "mode must be"),
    ("StepLR step_size 0", lambda: nn.StepLR(step_size=0), ValueError, "step_size must be at least 1"),
]


@pytest.mark.parametrize("call, err, match", [c[1:] for c in CONSTRUCTOR_CASES],
                         ids=[c[0] for c in CONSTRUCTOR_CASES])
def test_constructors_reject_bad_hyper_parameters(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ---- compile ---------------------------------------------------------------------------------
COMPILE_CASES = [
    ("unknown loss", dict(optimizer="adam", loss="hinge"), ValueError, "hinge"),
    ("unknown optimizer", dict(optimizer="rmsprop", loss="cross_entropy"), ValueError, "rmsprop"),
    ("unknown metric", dict(optimizer="adam", loss="cross_entropy", metrics=["f1"]), ValueError, "f1"),
    ("metric twice", dict(optimizer="adam", loss="cross_entropy", metrics=["accuracy", "accuracy"]), ValueError, "twice"),
    ("optimizer not an optimizer", dict(optimizer=3.0, loss="mse"), ValueError, "3.0 is not an optimizer"),
]


@pytest.mark.parametrize("kwargs, err, match", [c[1:] for c in COMPILE_CASES],
                         ids=[c[0] for c in COMPILE_CASES])
def test_compile_rejects_bad_settings_and_changes_nothing(trained, kwargs, err, match):
    model, _, _ = trained
    before = snapshot(model)
    opt = model.optimizer
    with pytest.raises(err, match=match):
        model.compile(**kwargs)
    assert snapshot(model) == before and model.optimizer is opt


def test_compile_classification_loss_on_an_activated_output(rng):
    model = nn.Sequential([nn.Dense(4, 3, activation="softmax")], seed=0)
    before = model.params.tobytes()
    with pytest.raises(ValueError, match="logits"):
        model.compile("adam", "cross_entropy")
    assert model.params.tobytes() == before and model.loss is None


# ---- fit: the rest ---------------------------------------------------------------------------
def test_fit_on_nan_value(trained):
    model, X, y = trained
    before = snapshot(model)
    with pytest.raises(ValueError, match="on_nan must be one of"):
        model.fit(X, y, on_nan="warn", verbose=0)
    assert snapshot(model) == before


def test_read_only_and_strided_inputs_are_accepted_and_not_modified(trained):
    """Not bad input: read-only, non-contiguous and Fortran-ordered arrays work like a
    C-contiguous copy, and are never written to."""
    model, X, y = trained
    big = np.repeat(X, 2, axis=0)[::2]      # strided rows
    ro = X.copy()
    ro.flags.writeable = False
    for arr in (big, ro, np.asfortranarray(X)):
        np.testing.assert_array_equal(model.predict(arr), model.predict(X.copy()))
        assert model.evaluate(arr, y) == model.evaluate(X, y)
    model.fit(ro, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(ro, X)


# ---- the kernels' wrappers -------------------------------------------------------------------
F = np.float32
KERNEL_CASES = [
    ("gemm object arrays", lambda: _core.gemm(np.ones((2, 2), object), np.ones((2, 2), object)), TypeError, "float32 or float64, got object"),
    ("gemm string arrays", lambda: _core.gemm(np.ones((2, 2), "U1"), np.ones((2, 2), "U1")), TypeError, "float32 or float64"),
    ("cross_entropy label out of range", lambda: _core.cross_entropy_loss(np.ones((2, 3), F), np.array([0, 3])), ValueError, r"labels must lie in \[0, 3\)"),
    ("cross_entropy float labels", lambda: _core.cross_entropy_loss(np.ones((2, 3), F), np.array([0.0, 1.0])), TypeError, "integer dtype"),
    ("mse shape mismatch", lambda: _core.mse_loss(np.ones((2, 3), F), np.ones((2, 2), F)), ValueError, r"target must have shape \(2, 3\)"),
    ("dropout rate 1.0", lambda: _core.dropout_forward(np.ones((2, 2), F), 1.0, seed=0), ValueError, r"dropout p must lie in \[0, 1\)"),
    ("sgd_update negative lr", lambda: _core.sgd_update(np.ones(3, F), np.ones(3, F), lr=-1), ValueError, "lr must be >= 0"),
    ("gemm big-endian a", lambda: _core.gemm(np.ones((2, 2), ">f4"), np.ones((2, 2), F)), TypeError, "not in this machine's byte order"),
    ("gemm big-endian out", lambda: _core.gemm(np.ones((2, 2), F), np.ones((2, 2), F), out=np.ones((2, 2), ">f4")), TypeError, "out has dtype '>f4'"),
    ("first_nonfinite big-endian", lambda: _core.first_nonfinite(np.ones(3, ">f8")), TypeError, "newbyteorder"),
    ("mse big-endian target", lambda: _core.mse_loss(np.ones((2, 3), F), np.ones((2, 3), ">f4")), TypeError, "target has dtype '>f4'"),
]


@pytest.mark.parametrize("call, err, match", [c[1:] for c in KERNEL_CASES],
                         ids=[c[0] for c in KERNEL_CASES])
def test_kernel_wrappers_reject_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_kernel_read_only_output_is_refused_and_untouched():
    out = np.full((2, 4), 7, F)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.dense_forward(np.ones((2, 3), F), np.ones((3, 4), F), out=out)
    assert np.all(out == 7)


# ---- save / load -----------------------------------------------------------------------------
@pytest.fixture
def model_file(trained, tmp_path):
    model, _, _ = trained
    path = tmp_path / "good.safetensors"
    model.save(path)
    return path


def _split(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header, body):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def _edit_header(fn):
    def make(data):
        header, body = _split(data)
        fn(header)
        return _join(header, body)
    return make


def _edit_arch(fn):
    def edit(header):
        arch = json.loads(header["__metadata__"]["architecture"])
        fn(arch)
        header["__metadata__"]["architecture"] = json.dumps(arch)
    return _edit_header(edit)


def _set(d, k, v):
    d[k] = v


def _nan_weight(data):
    header, body = _split(data)
    a = header["0.W"]["data_offsets"][0]
    body = bytearray(body)
    body[a:a + 4] = np.array([np.nan], np.float32).tobytes()
    return _join(header, bytes(body))


def _rename_tensor(old, new):
    def edit(header):
        header[new] = header.pop(old)
    return _edit_header(edit)


FILE_CASES = [
    ("truncated", lambda d: d[:-100], "truncated"),
    ("header length lies (too long)", lambda d: struct.pack("<Q", _split_len(d) + 9) + d[8:], "not a valid safetensors"),
    ("header length lies (too short)", lambda d: struct.pack("<Q", _split_len(d) - 20) + d[8:], "header is not valid JSON"),
    ("oversize header", lambda d: struct.pack("<Q", 2 ** 40) + d[8:], "header claims 1099511627776 bytes"),
    ("shape mismatch with offsets", _edit_header(lambda h: _set(h["0.W"], "shape", [4, 7])), "needs 112 bytes"),
    ("dtype mismatch with offsets", _edit_header(lambda h: _set(h["0.W"], "dtype", "F64")), "needs"),
    ("offsets out of bounds", _edit_header(lambda h: _set(h["2.b"], "data_offsets", [0, 10 ** 9])), "span|ends at byte"),
    ("overlapping offsets", _edit_header(lambda h: _set(h["0.b"], "data_offsets", h["0.W"]["data_offsets"][:1] + [h["0.W"]["data_offsets"][0] + 24])), "overlapping|starts at"),
    ("architecture asking for terabytes", _edit_arch(lambda a: _set(a["layers"][0]["config"], "out_features", 2 ** 40)), "do not match its architecture"),
    ("unknown layer type", _edit_arch(lambda a: _set(a["layers"][1], "class", "Conv2D")), "architecture cannot be rebuilt"),
    ("missing tensor", _rename_tensor("2.b", "optimizer.junk"), "optimizer tensors|do not match"),
    ("extra tensor", _rename_tensor("optimizer.exp_avg", "9.W"), "do not match its architecture"),
    ("non-finite weight", _nan_weight, r"tensor '0.W' holds .*nan.*allow_nonfinite=True"),
    ("not JSON metadata", _edit_header(lambda h: _set(h["__metadata__"], "compile", "{")), "not valid JSON"),
    ("foreign format", _edit_header(lambda h: _set(h["__metadata__"], "format", "keras")), "not written by nncore"),
]


def _split_len(data):
    return struct.unpack("<Q", data[:8])[0]


@pytest.mark.parametrize("make, match", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_loader_rejects_bad_files(model_file, tmp_path, make, match):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(make(model_file.read_bytes()))
    with pytest.raises(nn.ModelFileError, match=match):
        nn.load_model(bad)


def test_non_finite_weights_load_when_allowed(model_file, tmp_path):
    bad = tmp_path / "nan.safetensors"
    bad.write_bytes(_nan_weight(model_file.read_bytes()))
    model = nn.load_model(bad, allow_nonfinite=True)
    assert np.isnan(model[0].W[0, 0])


SAVE_CASES = [
    ("missing folder", lambda tmp: dict(path=tmp / "no" / "such" / "m.safetensors"), FileNotFoundError, "No such file"),
    ("metadata not str", lambda tmp: dict(path=tmp / "m.safetensors", metadata={"a": 1}), TypeError, "metadata must be a dict of str to str"),
    ("path is a folder", lambda tmp: dict(path=tmp), IsADirectoryError, "Is a directory"),
]


@pytest.mark.parametrize("make, err, match", [c[1:] for c in SAVE_CASES],
                         ids=[c[0] for c in SAVE_CASES])
def test_save_rejects_bad_destinations_and_leaves_no_litter(trained, tmp_path, make, err,
                                                            match):
    model, _, _ = trained
    before = snapshot(model)
    with pytest.raises(err, match=match):
        model.save(**make(tmp_path))
    assert snapshot(model) == before
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ---- the command line ------------------------------------------------------------------------
CLI_CASES = [
    ("negative learning rate", ["train", "--lr", "-1", "-q"], "lr must be at least 0.0"),
    ("batch size 0", ["train", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ("epochs 0", ["train", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("threads 0", ["train", "--threads", "0"], "--threads must be at least 1, got 0"),
    ("dropout rate 1.0", ["train", "--dropout", "1.0", "-q"], "p must be in [0, 1)"),
    ("hidden size 0", ["train", "--hidden", "0", "-q"], "--hidden sizes must be positive"),
    ("missing model file", ["predict", "missing.safetensors", "x.csv"], "no model file"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_reports_bad_input_in_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert code == 1 and message in err and "Traceback" not in err
    assert "Compiled:" not in out  # refused before any work


def test_cli_predict_with_wrong_feature_count(capsys, tmp_path, trained):
    model, _, _ = trained
    model.save(tmp_path / "m.safetensors")
    np.savez(tmp_path / "x.npz", X=np.zeros((3, 7)))
    code = cli_main(["predict", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "7 features" in err and "expects 4" in err


# ---- limits ----------------------------------------------------------------------------------
def test_a_model_too_large_to_allocate_raises_memory_error():
    # 10^12 parameters (4 TB): more than the address space the OS will grant, so the
    # allocation fails at once instead of swapping.
    with pytest.raises(MemoryError):
        nn.Sequential([nn.Dense(10 ** 6, 10 ** 6)])


def test_a_batch_too_large_to_allocate_raises_memory_error_and_changes_nothing():
    model = nn.Sequential([nn.Dense(4, 10 ** 5), nn.Dense(10 ** 5, 1)], seed=0)
    model.compile(nn.SGD(0.1, momentum=0.9), "mse")
    before = (model.params.tobytes(), model.optimizer.state["momentum_buffer"].tobytes())
    X, y = np.zeros((10 ** 5, 4)), np.zeros(10 ** 5)
    with pytest.raises(MemoryError):  # the hidden layer's output: 10^10 floats, 37 GiB
        model.predict(X, batch_size=10 ** 5)
    with pytest.raises(MemoryError):
        model.fit(X, y, batch_size=10 ** 5, verbose=0)
    assert (model.params.tobytes(), model.optimizer.state["momentum_buffer"].tobytes()) \
        == before
    assert model.predict(X[:2]).shape == (2, 1)  # and the model still works


def test_parameter_counts_are_exact_and_impossible_sizes_raise_memory_error():
    layer = nn.Dense(2 ** 40, 2 ** 40)
    assert layer.n_params == 2 ** 80 + 2 ** 40  # int64 would wrap around
    with pytest.raises(MemoryError, match="more than can be allocated"):
        layer.W
    for n in (2 ** 31, 2 ** 40):
        with pytest.raises(MemoryError, match="more than can be allocated"):
            nn.Sequential([nn.Dense(n, n)])


def test_a_model_of_any_depth_runs():
    """More layers than the compiled plan once had room for (256)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    layers = [nn.Dense(3, 3, activation="tanh") for _ in range(300)] + [nn.Dense(3, 1)]
    model = nn.Sequential(layers, dtype="float64", seed=0)
    model.compile(nn.SGD(0.01), "mse")
    ref = nn.Sequential.from_config(model.get_config())
    ref.load_state_dict(model.state_dict())
    ref.compile(nn.SGD(0.01), _MSE())  # a loss subclass: the kernel-by-kernel loop
    for m in (model, ref):
        m.fit(X, y, epochs=2, batch_size=4, verbose=0)
    assert model.params.tobytes() == ref.params.tobytes()
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))
    assert model.evaluate(X, y) == ref.evaluate(X, y)


class _MSE(nn.MSELoss):
    """A subclass: the compiled plan steps aside and the Python loop runs."""


def test_gemm_whose_operand_exceeds_2_to_31_elements_is_exact():
    """Sizes and offsets are 64-bit: a has 2^31 + 98305 elements (8 GiB of untouched zero
    pages: no physical memory), and its last element sits past any 32-bit index."""
    m, k = 2 ** 16 + 1, 2 ** 15 + 1
    try:
        a = np.zeros((m, k), np.float32)
    except MemoryError:
        pytest.skip("cannot map 8 GiB of address space here")
    b = np.zeros((k, 1), np.float32)
    a[0, 0], b[0, 0], a[-1, -1], b[-1, 0] = 1, 1, 2, 3
    c = _core.gemm(a, b)
    assert c[0, 0] == 1 and c[-1, 0] == 6 and c.sum() == 7


CATALOGUE = [(area, c[0]) for area, cases in [
    ("fit", FIT_CASES), ("constructor", CONSTRUCTOR_CASES), ("compile", COMPILE_CASES),
    ("kernel", KERNEL_CASES), ("model file", FILE_CASES), ("save", SAVE_CASES),
    ("cli", CLI_CASES)] for c in cases]


def test_the_catalogue_has_at_least_40_distinct_cases():
    assert len(set(CATALOGUE)) == len(CATALOGUE) >= 40
