"""Residual blocks: y = x + f(x), nested, with dropout and norms; the compiled plan bitwise
the Python loop (also data-parallel), torch's training results, files, errors."""

import numpy as np
import pytest

import nncore as nn

from test_plan import _Ranks, python_loop


def resnet(dtype, seed=5, dropout=0.2, norm="batch", first_block=False):
    Norm = nn.BatchNorm if norm == "batch" else nn.LayerNorm  # noqa: N806
    block = [Norm(12), nn.Dense(12, 20, activation="relu"), nn.Dropout(dropout),
             nn.Dense(20, 12), nn.Dropout(dropout)]
    inner = nn.Residual([nn.Activation("tanh"), nn.Dense(12, 12)])
    layers = ([nn.Residual([nn.Dense(12, 12, activation="relu")])] if first_block else
              [nn.Dense(6, 12)])
    layers += [nn.Residual(block), nn.Residual([nn.LayerNorm(12), inner]), Norm(12),
               nn.Activation("relu"), nn.Dense(12, 3)]
    return nn.Sequential(layers, dtype=dtype, seed=seed)


def data(rng, n, n_in=6):
    return rng.normal(size=(n, n_in)), rng.integers(0, 3, n)


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("first_block", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_plan_is_bitwise_the_python_loop(dtype, cpu_path, rng, norm, first_block, threads):
    X, y = data(rng, 150, 12 if first_block else 6)
    w = rng.uniform(0, 2, len(X))
    results = []
    nn.set_num_threads(threads)
    try:
        for use_plan in (True, False):
            m = resnet(dtype, norm=norm, first_block=first_block)
            if not use_plan:
                python_loop(m)
            m.compile(nn.SGD(lr=0.05, momentum=0.9, weight_decay=1e-4), "cross_entropy",
                      ["accuracy"])
            h = m.fit(X, y, epochs=2, batch_size=32, sample_weight=w, verbose=0)
            if use_plan:
                assert m._engine.plans[True][1] is not None
            results.append((m.params.copy(), m.grads.copy(), m.state.copy(), h.history,
                            m.predict(X[:7]), m._rng_counter))
    finally:
        nn.set_num_threads(None)
    a, b = results
    for x1, x2 in zip(a[:3] + a[4:5], b[:3] + b[4:5]):
        np.testing.assert_array_equal(x1, x2)
    assert a[3]["loss"] == b[3]["loss"] and a[5] == b[5]


@pytest.mark.parametrize("rank,size", [(0, 1), (1, 2), (2, 3)])
def test_data_parallel_plan_is_bitwise_the_python_loop(dtype, rng, rank, size):
    """A rank's share of each batch through blocks with dropout (the draws of its rows) and
    layer norm; the hook hears the model's layers, a block as one."""
    X, y = data(rng, 41)
    perm = np.random.default_rng(1).permutation(len(X)).astype(np.int64)
    results = []
    for use_plan in (True, False):
        m = resnet(dtype, norm="layer")
        if not use_plan:
            python_loop(m)
        m.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
        X_, Y_, W_ = m._check_xy(X, y, None, "fit")
        shard = _Ranks(rank, size, (5, 2, 1), (0, m.params.size))
        res = m._engine.run_epoch(X_, Y_, W_, 10, None, None, perm, shard)
        results.append((m.params.copy(), res.loss_sum, res.batches, shard.events,
                        m._rng_counter))
    a, b = results
    for x1, x2 in zip(a, b):
        np.testing.assert_array_equal(x1, x2)
    assert a[3][:5] == [5, 2, 1, "grads", "updated"]


def test_training_matches_torch(rng):
    """Residual MLP (LayerNorm, BatchNorm inside blocks, a nested block), float64, SGD with
    momentum, batches in order: torch's weights, running statistics and predictions."""
    torch = pytest.importorskip("torch")
    X, y = data(rng, 96)
    m = resnet("float64", dropout=0.0)
    m.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
    T = torch.nn  # noqa: N806

    class Res(T.Module):
        def __init__(self, *layers):
            super().__init__()
            self.f = T.Sequential(*layers)

        def forward(self, x):
            return x + self.f(x)

    def lin(dense):
        lay = T.Linear(dense.in_features, dense.out_features).double()
        with torch.no_grad():
            lay.weight.copy_(torch.tensor(dense.W.T))
            lay.bias.copy_(torch.tensor(dense.b))
        return lay

    b1, b2 = m[1].layers, m[2].layers
    inner = b2[1].layers
    t = T.Sequential(
        lin(m[0]),
        Res(T.BatchNorm1d(12).double(), lin(b1[1]), T.ReLU(), lin(b1[3])),
        Res(T.LayerNorm(12).double(), Res(T.Tanh(), lin(inner[1]))),
        T.BatchNorm1d(12).double(), T.ReLU(), lin(m[5]))
    m.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    opt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9)
    tx, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(3):
        for s in range(0, 96, 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(t(tx[s:s + 32]), ty[s:s + 32]).backward()
            opt.step()
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m[0].W, t[0].weight.detach().numpy().T, **tol)
    np.testing.assert_allclose(b1[3].W, t[1].f[3].weight.detach().numpy().T, **tol)
    np.testing.assert_allclose(inner[1].W, t[2].f[1].f[1].weight.detach().numpy().T, **tol)
    np.testing.assert_allclose(b1[0].running_var, t[1].f[0].running_var.numpy(), **tol)
    t.eval()
    np.testing.assert_allclose(m.predict(X[:10]), t(tx[:10]).detach().numpy(), **tol)


def test_names_files_and_config(tmp_path, rng):
    X, y = data(rng, 64)
    m = resnet("float32")
    m.compile(nn.Adam(1e-2), "cross_entropy")
    m.fit(X, y, epochs=1, batch_size=16, verbose=0)
    sd = m.state_dict()
    assert {"1.1.W", "1.3.b", "1.0.running_mean", "2.1.1.W", "2.0.gamma"} <= set(sd)
    m.save(tmp_path / "r.safetensors")
    m2 = nn.load_model(tmp_path / "r.safetensors")
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    assert repr(m2) == repr(m)
    text = m._summary_text()
    assert "Residual([BatchNorm(12), Dense(12, 20" in text


def test_check_gradients(rng):
    m = nn.Sequential([nn.Dense(3, 4), nn.Residual([nn.LayerNorm(4), nn.Dense(4, 4,
                      activation="tanh"), nn.Residual([nn.Dense(4, 4)])]),
                       nn.Dense(4, 2)], dtype="float64", seed=0)
    m.compile(nn.SGD(lr=0.1), "mse")
    X, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    assert nn.check_gradients(m, X, Y) < 1e-6


def test_a_block_keeps_its_width_and_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Residual\(\[Dense\(4, 5\)\]\) takes 4 features"):
        nn.Sequential([nn.Dense(3, 4), nn.Residual([nn.Dense(4, 5)])])
    with pytest.raises(ValueError, match="expects 6 input features but receives 4"):
        nn.Sequential([nn.Dense(3, 4), nn.Residual([nn.Dense(4, 4), nn.Dense(6, 4)])])
    with pytest.raises(ValueError, match="at least one layer"):
        nn.Residual([])
    with pytest.raises(TypeError, match="list of layers"):
        nn.Residual(nn.Dense(2, 2))
    d = nn.Dense(4, 4)
    with pytest.raises(ValueError, match="appears twice"):
        nn.Sequential([d, nn.Residual([d])])


def test_batch_norm_in_a_block_refuses_one_row_batches(rng):
    X, y = data(rng, 33)
    m = resnet("float32")
    m.compile(nn.SGD(lr=0.1), "cross_entropy")
    with pytest.raises(ValueError, match="at least 2 rows"):
        m.fit(X, y, batch_size=16, verbose=0)


def test_a_block_on_its_own(rng):
    """Called outside a model (inference): x + f(x) with the layers' own arrays."""
    block = nn.Residual([nn.Dense(3, 5, activation="relu"), nn.Dropout(0.5),
                         nn.Residual([nn.LayerNorm(5)]), nn.Dense(5, 3)])
    x = rng.normal(size=(4, 3))
    a, ln, b = block.layers[0], block.layers[2].layers[0], block.layers[3]
    h = np.maximum(x @ a.W + a.b, 0)
    mu, var = h.mean(1, keepdims=True), h.var(1, keepdims=True)
    h = h + ((h - mu) / np.sqrt(var + ln.eps) * ln.gamma + ln.beta)
    np.testing.assert_allclose(block(x), x + h @ b.W + b.b, rtol=1e-12, atol=1e-12)
