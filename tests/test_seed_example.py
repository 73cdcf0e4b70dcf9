"""examples/seed_network.py: nncore reproduces the NumPy seed network exactly."""

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


EXAMPLE = os.path.join(ROOT, "examples", "seed_network.py")
pytestmark = pytest.mark.skipif(not os.path.exists(EXAMPLE),
                                reason="examples/seed_network.py is not next to the tests")


@pytest.fixture(scope="module")
def seed():
    spec = importlib.util.spec_from_file_location("seed_network", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_output_as_numpy(seed):
    model = seed.build_model()
    expected = seed.numpy_forward(seed.X, seed.W1, seed.b1, seed.W2, seed.b2)
    got = model.predict(seed.X)
    assert got.dtype == np.float64 and got.shape == (4, 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_changing_a_weight_by_hand_moves_the_output(seed):
    model = seed.build_model()
    before = model.predict(seed.X)
    model.layers[1].W[1, 0] = -0.2
    W2 = seed.W2.copy()
    W2[1, 0] = -0.2
    after = model.predict(seed.X)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, seed.numpy_forward(seed.X, seed.W1, seed.b1, W2, seed.b2),
                               rtol=0, atol=1e-12)


def test_main_runs_and_learns_xor(seed, capsys):
    model = seed.main()
    out = capsys.readouterr().out
    assert "largest difference" in out
    pred = model.predict(seed.X)
    assert np.all((pred > 0.5) == (seed.Y_XOR > 0.5))
