"""Mutated model files (byte flips, truncation, lying header lengths, JSON and metadata edits,
NaN weights, edits of the optimizer state and the random state): the loader either loads a
model that predicts and trains on, in a state training can take, or raises ModelFileError;
never anything else, never a crash. A short hypothesis run; ``tools/fuzz_model_files.py --n
10000`` is the long one with the same mutations."""

import importlib.util
import os
import random

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                     "fuzz_model_files.py")
if not os.path.exists(_TOOL):
    pytest.skip("tools/fuzz_model_files.py (the mutations) is not next to the tests",
                allow_module_level=True)
_spec = importlib.util.spec_from_file_location("fuzz_model_files", _TOOL)
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

SEEDS = fuzz.seed_files()


def test_seed_files_load():
    assert [fuzz.load_one(d) for d in SEEDS] == ["ok"] * len(SEEDS)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SEEDS) - 1), seed=st.integers(0, 2 ** 32 - 1))
def test_mutated_files_load_or_raise_model_file_error(which, seed):
    kind, data = fuzz.mutate(SEEDS[which], random.Random(seed))
    assert fuzz.load_one(data) in ("ok", "rejected"), kind


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(SEEDS) - 1), seed=st.integers(0, 2 ** 32 - 1))
def test_state_edits_load_and_train_or_raise_model_file_error(which, seed):
    """Edits of the optimizer state (lr, steps, epochs, its tensors' values, dtypes and
    shapes) and of the random state: the file is refused, or it loads in a valid state and
    trains (load_one fits two epochs)."""
    _, data = fuzz.mutate(SEEDS[which], random.Random(seed), kind="state")
    assert fuzz.load_one(data) in ("ok", "rejected")


@pytest.mark.parametrize("field, value", [("lr", float("nan")), ("steps", -1),
                                          ("steps", 2 ** 70)])
def test_load_one_catches_a_state_that_loads_but_breaks_training(monkeypatch, field, value):
    """The fuzzer's own check: if the loader let such a state through, load_one would fail
    (it checks the loaded state and trains), as it did on the loader before issue 22."""
    from nncore import optimizers

    monkeypatch.setattr(optimizers.Optimizer, "_checked_state", _unchecked)
    header, body = fuzz.split(SEEDS[0])
    st_ = fuzz.json.loads(header["__metadata__"]["optimizer_state"])
    st_[field] = value
    header["__metadata__"]["optimizer_state"] = fuzz.json.dumps(st_)
    with pytest.raises((AssertionError, OverflowError)):
        fuzz.load_one(fuzz.join(header, body))


def _unchecked(self, state, allow_nonfinite=False):
    """Optimizer._checked_state as it was before issue 22: values taken as they come."""
    return state["lr"], state["steps"], state["epochs"], state["state"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.binary(max_size=512))
def test_random_bytes_are_rejected(data):
    assert fuzz.load_one(data) == "rejected"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(n=st.integers(0, 2 ** 64 - 1), which=st.integers(0, len(SEEDS) - 1))
def test_any_header_length_but_the_true_one_is_rejected(n, which):
    data = SEEDS[which]
    true_n = int.from_bytes(data[:8], "little")
    result = fuzz.load_one(n.to_bytes(8, "little") + data[8:])
    assert result == ("ok" if n == true_n else "rejected")
