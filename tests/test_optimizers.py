"""Optimizers and learning-rate schedules follow PyTorch: whole training runs are compared
with torch (float64) when it is installed, and with the documented formulas in NumPy."""

import math

import numpy as np
import pytest

import nncore as nn


def two_layer(seed=0):
    return nn.Sequential([nn.Dense(5, 7, activation="tanh"), nn.Dense(7, 3)],
                         dtype="float64", seed=seed)


OPTIMIZERS = [
    ("sgd", lambda: nn.SGD(lr=0.1), "SGD", dict(lr=0.1)),
    ("sgd-momentum", lambda: nn.SGD(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3),
     "SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("sgd-nesterov", lambda: nn.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2),
     "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-2)),
    ("adam", lambda: nn.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3),
     "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3)),
    ("adam-amsgrad", lambda: nn.Adam(lr=0.01, amsgrad=True), "Adam",
     dict(lr=0.01, amsgrad=True)),
    ("adamw", lambda: nn.AdamW(lr=0.01, weight_decay=0.1), "AdamW",
     dict(lr=0.01, weight_decay=0.1)),
    ("adamw-amsgrad", lambda: nn.AdamW(lr=0.01, amsgrad=True), "AdamW",
     dict(lr=0.01, amsgrad=True)),
]


@pytest.mark.parametrize("make, torch_name, torch_kwargs", [o[1:] for o in OPTIMIZERS],
                         ids=[o[0] for o in OPTIMIZERS])
def test_training_matches_pytorch(make, torch_name, torch_kwargs, rng):
    torch = pytest.importorskip("torch")
    X = rng.standard_normal((20, 5))
    y = rng.integers(0, 3, 20)
    model = two_layer()
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                              torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        for i, k in ((0, 0), (2, 1)):
            net[i].weight.copy_(torch.from_numpy(model.layers[k].W.T.copy()))
            net[i].bias.copy_(torch.from_numpy(model.layers[k].b.copy()))
    opt = getattr(torch.optim, torch_name)(net.parameters(), **torch_kwargs)
    lossf = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(3):  # epochs
        total = 0.0
        for s in range(0, 20, 6):  # batches of 6, 6, 6, 2 in order
            xb, yb = torch.from_numpy(X[s:s + 6]), torch.from_numpy(y[s:s + 6])
            opt.zero_grad()
            loss = lossf(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        losses.append(total / 20)
    model.compile(make(), "cross_entropy")
    hist = model.fit(X, y, epochs=3, batch_size=6, shuffle=False, verbose=0)
    np.testing.assert_allclose(hist.history["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(model.layers[0].W, net[0].weight.detach().numpy().T,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.layers[1].b, net[2].bias.detach().numpy(), rtol=1e-9,
                               atol=1e-12)


def test_sgd_momentum_formula_in_numpy():
    """Two SGD steps on a model with constant gradients, by the documented formula."""
    model = nn.Sequential([nn.Dense(2, 2)], dtype="float64", seed=0)
    opt = nn.SGD(lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)
    model.compile(opt, "mse")
    p0 = model.params.copy()
    g = np.linspace(-1, 1, model.params.size)
    model.grads[...] = g
    opt.step()
    buf = g + 0.01 * p0
    p1 = p0 - 0.1 * buf
    np.testing.assert_allclose(model.params, p1, rtol=1e-14, atol=1e-15)
    opt.step()
    buf = 0.9 * buf + 0.5 * (g + 0.01 * p1)
    np.testing.assert_allclose(model.params, p1 - 0.1 * buf, rtol=1e-14, atol=1e-15)
    assert opt.steps == 2


def test_adamw_formula_in_numpy():
    model = nn.Sequential([nn.Dense(2, 2)], dtype="float64", seed=0)
    opt = nn.AdamW(lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    model.compile(opt, "mse")
    p = model.params.copy()
    g = np.linspace(-1, 1, p.size)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in (1, 2):
        model.grads[...] = g
        opt.step()
        p = p * (1 - 0.01 * 0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        p = p - 0.01 / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.99 ** t) + 1e-8)
    np.testing.assert_allclose(model.params, p, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(lr=-1), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (dict(lr=0.1, nesterov=True), ValueError, "nesterov"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening"),
])
def test_sgd_argument_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        nn.SGD(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(betas=(0.9, 1.0)), "betas"), (dict(betas=0.9), "betas"), (dict(eps=-1), "eps"),
    (dict(weight_decay=-0.1), "weight_decay"),
])
def test_adam_argument_errors(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        nn.Adam(**kwargs)


def test_optimizer_by_name_and_defaults():
    assert isinstance(nn.optimizers.get("adamw"), nn.AdamW)
    assert nn.AdamW().weight_decay == 0.01 and nn.Adam().weight_decay == 0.0
    assert nn.Adam().lr == 1e-3 and nn.Adam().betas == (0.9, 0.999)
    cfg = nn.SGD(0.1, momentum=0.9, nesterov=True).get_config()
    again = nn.optimizers.get(cfg)
    assert again.get_config() == cfg


def test_optimizer_state_dict_round_trip(rng):
    X = rng.standard_normal((16, 5))
    y = rng.integers(0, 3, 16)
    model = two_layer()
    model.compile(nn.Adam(0.01, amsgrad=True), "cross_entropy")
    model.fit(X, y, epochs=2, batch_size=4, verbose=0)
    state = model.optimizer.state_dict()
    assert set(state["state"]) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state["steps"] == 8 and state["epochs"] == 2
    other = two_layer(seed=1)
    other.compile(nn.Adam(0.01, amsgrad=True), "cross_entropy")
    other.load_state_dict(model.state_dict())
    other.optimizer.load_state_dict(state)
    model.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    other.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_array_equal(model.params, other.params)
    sgd = two_layer()
    sgd.compile(nn.SGD(0.1, momentum=0.9), "mse")
    with pytest.raises(ValueError, match="another optimizer"):
        sgd.optimizer.load_state_dict(state)


# ---- schedules ------------------------------------------------------------------------------

SCHEDULES = [
    (lambda: nn.StepLR(step_size=3, gamma=0.5), "StepLR", dict(step_size=3, gamma=0.5)),
    (lambda: nn.ExponentialLR(gamma=0.9), "ExponentialLR", dict(gamma=0.9)),
    (lambda: nn.CosineAnnealingLR(T_max=5, eta_min=0.01), "CosineAnnealingLR",
     dict(T_max=5, eta_min=0.01)),
]


@pytest.mark.parametrize("make, torch_name, kwargs", SCHEDULES,
                         ids=[s[1] for s in SCHEDULES])
def test_schedules_match_pytorch(make, torch_name, kwargs):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = getattr(torch.optim.lr_scheduler, torch_name)(opt, **kwargs)
    expected = []
    for _ in range(9):  # within T_max and beyond it
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = make()
    np.testing.assert_allclose([ours(e, 0.2) for e in range(9)], expected, rtol=1e-12)


def test_schedule_as_optimizer_option_spans_fit_calls(rng):
    X = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)
    model = two_layer()
    model.compile(nn.SGD(0.1, schedule=nn.StepLR(1, gamma=0.5)), "cross_entropy")
    h1 = model.fit(X, y, epochs=2, verbose=0)
    h2 = model.fit(X, y, epochs=2, verbose=0)
    assert h1.history["lr"] == [0.1, 0.05] and h2.history["lr"] == [0.025, 0.0125]


def test_scheduler_callback(rng):
    X = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)
    model = two_layer()
    model.compile(nn.SGD(0.1), "cross_entropy")
    cos = nn.CosineAnnealingLR(T_max=4)
    h = model.fit(X, y, epochs=4, verbose=0, callbacks=[nn.LearningRateScheduler(cos)])
    assert h.history["lr"] == pytest.approx([cos(e, 0.1) for e in range(4)])
    lr0 = model.optimizer.lr  # the rate a callback set stays in force after fit
    assert lr0 == pytest.approx(cos(3, 0.1))
    h = model.fit(X, y, epochs=3, verbose=0, callbacks=[
        nn.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert h.history["lr"] == pytest.approx([lr0 / 2, lr0 / 4, lr0 / 8])
    with pytest.raises(ValueError, match="LearningRateScheduler"):
        model.fit(X, y, epochs=1, verbose=0,
                  callbacks=[nn.LearningRateScheduler(lambda e, lr: math.nan)])


def test_schedule_argument_errors():
    with pytest.raises(ValueError, match="step_size"):
        nn.StepLR(0)
    with pytest.raises(ValueError, match="T_max"):
        nn.CosineAnnealingLR(0)
    with pytest.raises(TypeError, match="schedule"):
        nn.SGD(0.1, schedule="cosine")
