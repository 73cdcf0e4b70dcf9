"""Gradient clipping (global_clipnorm, clipvalue): the kernel vs its NumPy twin and torch,
and in training: the plan bitwise the Python loop, torch's clipped training."""

import numpy as np
import pytest

import nncore as nn
from nncore import _core
from nncore import _reference as ref

from conftest import EPS
from test_plan import python_loop


@pytest.mark.parametrize("n", [1, 7, 4097, 20_001])
@pytest.mark.parametrize("clipnorm,clipvalue", [(0.0, 0.5), (3.0, 0.0), (3.0, 0.5),
                                                (1e6, 0.0)])
def test_kernel_matches_twin(cpu_path, dtype, rng, n, clipnorm, clipvalue):
    g = (rng.normal(size=n) * 2).astype(dtype)
    want, want_norm = ref.clip_grads(g.astype(np.float64), clipnorm, clipvalue)
    got = g.copy()
    norm = _core.clip_grads(got, clipnorm, clipvalue)
    assert abs(norm - want_norm) <= 8 * EPS[dtype] * max(want_norm, 1) * np.sqrt(n)
    np.testing.assert_allclose(got, want, rtol=4 * EPS[dtype], atol=0)


def test_threads_and_paths_give_the_same_bits(dtype, rng):
    g = rng.normal(size=300_001).astype(dtype)
    out, old = [], _core.get_cpu_path()
    try:
        for path in _core.available_cpu_paths():
            _core.set_cpu_path(path)
            for nt in (1, 2, 3):
                x = g.copy()
                out.append((_core.clip_grads(x, 10.0, 1.5, n_threads=nt), x))
    finally:
        _core.set_cpu_path(old)
    for norm, x in out[1:]:
        assert norm == out[0][0]
        np.testing.assert_array_equal(x, out[0][1])


def test_matches_torch(dtype, rng):
    torch = pytest.importorskip("torch")
    gs = [rng.normal(size=s).astype(dtype) for s in ((5, 3), (3,), (3, 2))]
    ps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.tensor(g).dtype)) for g in gs]
    for p, g in zip(ps, gs):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(ps, 0.8)
    total = torch.nn.utils.clip_grad_norm_(ps, 1.0)
    flat = np.concatenate([g.ravel() for g in gs])
    norm = _core.clip_grads(flat, 1.0, 0.8)
    want = np.concatenate([p.grad.numpy().ravel() for p in ps])
    assert np.isclose(norm, total.item(), rtol=16 * EPS[dtype])
    np.testing.assert_allclose(flat, want, rtol=16 * EPS[dtype], atol=0)


OPTS = [lambda: nn.SGD(lr=0.1, momentum=0.9, global_clipnorm=0.5),
        lambda: nn.SGD(lr=0.1, clipvalue=0.01),
        lambda: nn.Adam(lr=1e-2, global_clipnorm=0.3, clipvalue=0.05)]


@pytest.mark.parametrize("opt", range(len(OPTS)))
@pytest.mark.parametrize("tiny", [False, True])
def test_plan_is_bitwise_the_python_loop(dtype, cpu_path, rng, opt, tiny):
    n_in = 2 if tiny else 9
    X, y = rng.normal(size=(77, n_in)) * 3, rng.integers(0, 2, 77)
    out = []
    for use_plan in (True, False):
        layers = ([nn.Dense(2, 3, activation="relu"), nn.Dense(3, 2)] if tiny else
                  [nn.Dense(9, 32, activation="relu"), nn.LayerNorm(32), nn.Dense(32, 2)])
        m = nn.Sequential(layers, dtype=dtype, seed=2)
        if not use_plan:
            python_loop(m)
        m.compile(OPTS[opt](), "cross_entropy")
        h = m.fit(X, y, epochs=2, batch_size=1 if tiny else 16, verbose=0)
        out.append((m.params.copy(), m.grads.copy(), h.history["loss"]))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert out[0][2] == out[1][2]


def test_training_matches_torch(rng):
    torch = pytest.importorskip("torch")
    X, y = rng.normal(size=(64, 5)) * 4, rng.integers(0, 3, 64)
    m = nn.Sequential([nn.Dense(5, 8, activation="relu"), nn.Dense(8, 3)], dtype="float64",
                      seed=0)
    t = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    t = t.double()
    with torch.no_grad():
        for k, layer in ((0, m[0]), (2, m[1])):
            t[k].weight.copy_(torch.tensor(layer.W.T))
            t[k].bias.copy_(torch.tensor(layer.b))
    m.compile(nn.SGD(lr=0.2, momentum=0.9, global_clipnorm=0.25, clipvalue=0.1),
              "cross_entropy")
    m.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    opt = torch.optim.SGD(t.parameters(), lr=0.2, momentum=0.9)
    tx, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(3):
        for s in range(0, 64, 16):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(t(tx[s:s + 16]), ty[s:s + 16]).backward()
            torch.nn.utils.clip_grad_value_(t.parameters(), 0.1)
            torch.nn.utils.clip_grad_norm_(t.parameters(), 0.25)
            opt.step()
    np.testing.assert_allclose(m[0].W, t[0].weight.detach().numpy().T, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(m[1].b, t[2].bias.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_settings_are_checked_and_saved(tmp_path):
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="global_clipnorm must be"):
            nn.SGD(global_clipnorm=bad)
        with pytest.raises(ValueError, match="clipvalue must be"):
            nn.Adam(clipvalue=bad)
    opt = nn.AdamW(1e-3, global_clipnorm=1.0, clipvalue=0.5)
    again = nn.optimizers.get(opt.get_config())
    assert (again.global_clipnorm, again.clipvalue) == (1.0, 0.5)
    m = nn.Sequential([nn.Dense(2, 2)], seed=0)
    m.compile(opt, "mse")
    m.save(tmp_path / "c.safetensors")
    assert nn.load_model(tmp_path / "c.safetensors").optimizer.global_clipnorm == 1.0
    with pytest.raises(ValueError, match="finite and >= 0"):
        _core.clip_grads(np.ones(3), -1.0)
