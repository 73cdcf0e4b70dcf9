"""BatchNorm and LayerNorm as layers: the plan bitwise the Python loop, torch's training
results, running statistics as state (saved, loaded, guarded), and clear errors."""

import numpy as np
import pytest

import nncore as nn


def build(dtype, seed=3, momentum=0.1):
    return nn.Sequential([
        nn.Dense(7, 16),
        nn.BatchNorm(16, momentum=momentum),
        nn.Activation("relu"),
        nn.Dense(16, 9, activation="tanh"),
        nn.LayerNorm(9),
        nn.Dropout(0.2),
        nn.Dense(9, 4),
    ], dtype=dtype, seed=seed)


def data(rng, n=203):
    return rng.normal(size=(n, 7)) * 2 + 1, rng.integers(0, 4, n)


def python_loop(model):
    model._engine.plan = lambda ws, guard=None: None
    model._engine.reset()
    return model


OPTIMIZERS = [lambda: nn.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
              lambda: nn.Adam(lr=1e-2)]


@pytest.mark.parametrize("opt", range(len(OPTIMIZERS)))
@pytest.mark.parametrize("threads", [1, 2])
def test_plan_is_bitwise_the_python_loop(dtype, cpu_path, rng, opt, threads):
    X, y = data(rng)
    w = rng.uniform(0, 2, len(X))
    results = []
    nn.set_num_threads(threads)
    try:
        for use_plan in (True, False):
            m = build(dtype)
            if not use_plan:
                python_loop(m)
            m.compile(OPTIMIZERS[opt](), "cross_entropy", ["accuracy"])
            h = m.fit(X, y, epochs=3, batch_size=32, sample_weight=w, validation_split=0.2,
                      verbose=0)
            if use_plan:
                assert m._engine.plans[True][1] is not None
            results.append((m.params.copy(), m.grads.copy(), m.state.copy(), h.history,
                            m.predict(X[:9])))
    finally:
        nn.set_num_threads(None)
    (p1, g1, s1, h1, o1), (p2, g2, s2, h2, o2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(o1, o2)
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]


def test_threads_give_the_same_bits(dtype, rng):
    X, y = data(rng, 300)
    out = []
    for threads in (1, 2):
        nn.set_num_threads(threads)
        try:
            m = build(dtype)
            m.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
            m.fit(X, y, epochs=2, batch_size=64, verbose=0)
            out.append((m.params.copy(), m.state.copy()))
        finally:
            nn.set_num_threads(None)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_training_matches_torch(rng):
    """Three SGD-momentum epochs of Dense-BatchNorm-ReLU-Dense-LayerNorm-Dense in float64,
    batches in order: the weights, running statistics and predictions of torch."""
    torch = pytest.importorskip("torch")
    X, y = data(rng, 96)
    m = nn.Sequential([nn.Dense(7, 16), nn.BatchNorm(16, momentum=0.3), nn.Activation("relu"),
                       nn.Dense(16, 9), nn.LayerNorm(9), nn.Dense(9, 4)], dtype="float64",
                      seed=1)
    m[1].gamma = rng.uniform(0.5, 1.5, 16)
    m[4].beta = rng.normal(size=9)
    t = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.BatchNorm1d(16, momentum=0.3),
                            torch.nn.ReLU(), torch.nn.Linear(16, 9), torch.nn.LayerNorm(9),
                            torch.nn.Linear(9, 4)).double()
    with torch.no_grad():
        for k in (0, 3, 5):
            t[k].weight.copy_(torch.tensor(m[k].W.T))
            t[k].bias.copy_(torch.tensor(m[k].b))
        for k in (1, 4):
            t[k].weight.copy_(torch.tensor(m[k].gamma))
            t[k].bias.copy_(torch.tensor(m[k].beta))
    m.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
    m.fit(X, y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    opt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=0.9)
    tx, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(3):
        for s in range(0, 96, 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(t(tx[s:s + 32]), ty[s:s + 32]).backward()
            opt.step()
    tol = dict(rtol=1e-10, atol=1e-12)
    for k in (0, 3, 5):
        np.testing.assert_allclose(m[k].W, t[k].weight.detach().numpy().T, **tol)
    for k in (1, 4):
        np.testing.assert_allclose(m[k].gamma, t[k].weight.detach().numpy(), **tol)
        np.testing.assert_allclose(m[k].beta, t[k].bias.detach().numpy(), **tol)
    np.testing.assert_allclose(m[1].running_mean, t[1].running_mean.numpy(), **tol)
    np.testing.assert_allclose(m[1].running_var, t[1].running_var.numpy(), **tol)
    t.eval()
    np.testing.assert_allclose(m.predict(X[:10]), t(tx[:10]).detach().numpy(), **tol)


def test_state_is_saved_loaded_and_in_the_state_dict(tmp_path, rng):
    X, y = data(rng)
    m = build("float32")
    m.compile(nn.Adam(1e-2), "cross_entropy")
    m.fit(X, y, epochs=2, batch_size=32, verbose=0)
    sd = m.state_dict()
    assert "1.running_mean" in sd and "1.running_var" in sd and "1.gamma" in sd
    assert "4.gamma" in sd and not any(k.startswith("4.running") for k in sd)
    assert m.n_params == sum(v.size for k, v in sd.items() if "running" not in k)
    assert not np.all(m[1].running_mean == 0) and not np.all(m[1].running_var == 1)
    m.save(tmp_path / "m.safetensors")
    m2 = nn.load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(m2.state, m.state)
    np.testing.assert_array_equal(m2.predict(X), m.predict(X))
    fresh = build("float32", seed=9)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.predict(X), m.predict(X))
    bad = dict(sd, **{"1.running_var": -np.ones(16, np.float32)})
    with pytest.raises(ValueError, match="negative"):
        fresh.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing keys"):
        fresh.load_state_dict({k: v for k, v in sd.items() if k != "1.running_mean"})


def test_inference_uses_the_running_statistics(rng):
    X, y = data(rng)
    m = build("float64")
    m.compile(nn.SGD(lr=0.05), "cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    bn = m[1]
    h = X @ m[0].W + m[0].b
    want = (h - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) * bn.gamma + bn.beta
    np.testing.assert_allclose(bn(h), want, rtol=1e-12, atol=1e-12)
    # evaluate and predict do not move the running statistics
    before = m.state.copy()
    m.predict(X)
    m.evaluate(X, y)
    np.testing.assert_array_equal(m.state, before)


def test_batches_of_one_row_are_refused_before_training(rng):
    X, y = data(rng, 65)
    m = build("float32")
    m.compile(nn.SGD(lr=0.05), "cross_entropy")
    before = (m.params.copy(), m.state.copy())
    with pytest.raises(ValueError, match="at least 2 rows.*last batch"):
        m.fit(X, y, epochs=1, batch_size=32, verbose=0)  # 65 = 2 x 32 + 1
    with pytest.raises(ValueError, match="at least 2 rows.*every batch"):
        m.fit(X, y, epochs=1, batch_size=1, verbose=0)
    np.testing.assert_array_equal(m.params, before[0])
    np.testing.assert_array_equal(m.state, before[1])
    m.fit(X, y, epochs=1, batch_size=33, verbose=0)  # 65 = 33 + 32: fine


def test_nan_guard_puts_back_the_running_statistics(rng):
    X, y = data(rng)
    m = build("float64")
    m.compile(nn.SGD(lr=0.05), "cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    X2 = X.copy()
    X2[100:, 0] = 1e300  # overflows in the products: a non-finite loss partway
    for use_plan in (True, False):
        m2 = build("float64")
        m2.load_state_dict(m.state_dict())
        if not use_plan:
            python_loop(m2)
        m2.compile(nn.SGD(lr=0.05), "cross_entropy")
        with pytest.raises(nn.NonFiniteLossError):
            m2.fit(X2, y, epochs=1, batch_size=32, shuffle=False, on_nan="raise", verbose=0)
        assert np.all(np.isfinite(m2.state)) and np.all(np.isfinite(m2.params))


def test_check_gradients(rng):
    m = nn.Sequential([nn.Dense(3, 5), nn.BatchNorm(5), nn.Activation("tanh"), nn.Dense(5, 4),
                       nn.LayerNorm(4), nn.Dense(4, 2)], dtype="float64", seed=0)
    m.compile(nn.SGD(lr=0.1), "mse")
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    err = nn.check_gradients(m, X, Y)
    assert err < 1e-6


def test_summary_config_and_assignments():
    m = build("float32")
    text = m._summary_text()
    assert "BatchNorm(16)" in text and "LayerNorm(9)" in text
    assert "Non-trainable state: 32" in text
    again = nn.Sequential.from_config(m.get_config())
    assert repr(again) == repr(m)
    with pytest.raises(ValueError, match="shape"):
        m[1].gamma = np.ones(3)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm(4, momentum=2.0)
    with pytest.raises(ValueError, match="eps"):
        nn.LayerNorm(4, eps=0.0)
    with pytest.raises(ValueError, match=r"BatchNorm\(8\) expects 8 input features.*outputs 16"):
        nn.Sequential([nn.Dense(3, 16), nn.BatchNorm(8)])
    assert repr(nn.BatchNorm(4, momentum=0.2)) == "BatchNorm(4, momentum=0.2)"
