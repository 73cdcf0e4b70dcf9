"""Mutated model files (byte flips, truncation, lying header lengths, JSON and metadata edits,
NaN weights): the loader either loads a working model or raises ModelFileError, never
anything else, never a crash. A short hypothesis run; ``tools/fuzz_model_files.py --n 10000``
is the long one with the same mutations."""

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
