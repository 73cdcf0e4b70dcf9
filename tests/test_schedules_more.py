"""LinearLR, SequentialLR and ReduceLROnPlateau against torch's schedulers."""

import numpy as np
import pytest

import nncore as nn


def torch_lrs(make, epochs, base=0.1, values=None):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(torch, opt)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(values[e]) if values is not None else sched.step()
    return out


def test_linear_lr_and_sequential_lr_match_torch():
    s = nn.LinearLR(start_factor=0.25, end_factor=1.0, total_iters=4)
    want = torch_lrs(lambda t, o: t.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 4), 9)
    np.testing.assert_allclose([s(e, 0.1) for e in range(9)], want, rtol=1e-12)
    seq = nn.SequentialLR([nn.LinearLR(0.1, total_iters=3), nn.CosineAnnealingLR(T_max=6)],
                          milestones=[3])
    want = torch_lrs(lambda t, o: t.optim.lr_scheduler.SequentialLR(
        o, [t.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=3),
            t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6)], milestones=[3]), 10)
    np.testing.assert_allclose([seq(e, 0.1) for e in range(10)], want, rtol=1e-9)
    again = nn.schedules.get(seq.get_config())
    assert [again(e, 0.1) for e in range(10)] == [seq(e, 0.1) for e in range(10)]


def test_schedule_checks():
    with pytest.raises(ValueError, match="start_factor"):
        nn.LinearLR(start_factor=0.0)
    with pytest.raises(ValueError, match="milestones"):
        nn.SequentialLR([nn.StepLR(2), nn.StepLR(3)], milestones=[])
    with pytest.raises(TypeError, match="schedules"):
        nn.SequentialLR([], milestones=[])


@pytest.mark.parametrize("mode,threshold_mode,cooldown", [("min", "rel", 0),
                                                          ("max", "abs", 2)])
def test_reduce_lr_on_plateau_matches_torch(mode, threshold_mode, cooldown):
    values = [1.0, 0.9, 0.9, 0.91, 0.95, 0.89, 0.95, 0.96, 0.97, 0.97, 0.98, 0.5, 0.5, 0.5,
              0.5, 0.5]
    if mode == "max":
        values = [-v for v in values]
    want = torch_lrs(lambda t, o: t.optim.lr_scheduler.ReduceLROnPlateau(
        o, mode=mode, factor=0.5, patience=2, threshold=1e-3, threshold_mode=threshold_mode,
        cooldown=cooldown, min_lr=0.02), len(values), values=values)
    cb = nn.ReduceLROnPlateau("val_loss", factor=0.5, patience=2, mode=mode, threshold=1e-3,
                              threshold_mode=threshold_mode, cooldown=cooldown, min_lr=0.02)

    class Model:
        class optimizer:  # noqa: N801
            lr, schedule = 0.1, None

    cb.set_model(Model) if hasattr(cb, "set_model") else setattr(cb, "model", Model)
    cb.on_train_begin()
    got = []
    for e, v in enumerate(values):
        got.append(Model.optimizer.lr)
        cb.on_epoch_end(e, {"val_loss": v})
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_reduce_lr_on_plateau_in_fit(rng):
    X, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    m = nn.Sequential([nn.Dense(3, 2)], seed=0)
    m.compile(nn.SGD(lr=0.1), "cross_entropy")
    h = m.fit(X, y, epochs=6, batch_size=16, verbose=0,
              callbacks=[nn.ReduceLROnPlateau("loss", factor=0.5, patience=0,
                                              threshold=10.0)])  # never "better": halve
    assert h.history["lr"][:4] == [0.1, 0.1, 0.05, 0.025]  # the first epoch sets the best
    m.compile(nn.SGD(lr=0.1, schedule=nn.StepLR(2)), "cross_entropy")
    with pytest.raises(ValueError, match="schedule"):
        m.fit(X, y, epochs=1, verbose=0, callbacks=[nn.ReduceLROnPlateau("loss")])


@pytest.mark.parametrize("kw", [dict(), dict(anneal_strategy="linear", three_phase=True),
                                dict(pct_start=0.5, div_factor=10.0, final_div_factor=100.0)])
def test_one_cycle_matches_torch(kw):
    torch = pytest.importorskip("torch")
    s = nn.OneCycleLR(0.5, total_steps=40, **kw)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.5, total_steps=40, **kw)
    for step in range(40):
        lr, mom = s.at(step)
        assert np.isclose(lr, opt.param_groups[0]["lr"], rtol=1e-12)
        assert np.isclose(mom, opt.param_groups[0]["momentum"], rtol=1e-12)
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="past total_steps"):
        s.at(40)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_one_cycle_training_matches_torch_and_the_python_loop(rng, opt):
    torch = pytest.importorskip("torch")
    from test_plan import python_loop
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 3, 80)
    runs = []
    for use_plan in (True, False):
        m = nn.Sequential([nn.Dense(4, 16, activation="relu"), nn.LayerNorm(16),
                           nn.Dense(16, 3)], dtype="float64", seed=0)
        if not use_plan:
            python_loop(m)
        sched = nn.OneCycleLR(0.05, epochs=3, steps_per_epoch=5)
        o = (nn.SGD(lr=0.01, momentum=0.9, schedule=sched) if opt == "sgd" else
             nn.Adam(lr=0.01, schedule=sched))
        m.compile(o, "cross_entropy")
        h = m.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        runs.append((m.params.copy(), h.history["lr"], m))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    m = runs[0][2]
    t = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.LayerNorm(16),
                            torch.nn.Linear(16, 3)).double()
    fresh = nn.Sequential([nn.Dense(4, 16, activation="relu"), nn.LayerNorm(16),
                           nn.Dense(16, 3)], dtype="float64", seed=0)
    with torch.no_grad():
        for k, layer in ((0, fresh[0]), (3, fresh[2])):
            t[k].weight.copy_(torch.tensor(layer.W.T))
            t[k].bias.copy_(torch.tensor(layer.b))
    topt = (torch.optim.SGD(t.parameters(), lr=0.01, momentum=0.9) if opt == "sgd" else
            torch.optim.Adam(t.parameters(), lr=0.01))
    ts = torch.optim.lr_scheduler.OneCycleLR(topt, 0.05, epochs=3, steps_per_epoch=5)
    tx, ty = torch.tensor(X), torch.tensor(y)
    for _ in range(3):
        for s in range(0, 80, 16):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(t(tx[s:s + 16]), ty[s:s + 16]).backward()
            topt.step()
            ts.step()
    np.testing.assert_allclose(m[2].W, t[3].weight.detach().numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m[0].b, t[0].bias.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_one_cycle_errors(rng):
    X, y = rng.normal(size=(32, 2)), rng.integers(0, 2, 32)
    m = nn.Sequential([nn.Dense(2, 2)], seed=0)
    m.compile(nn.SGD(momentum=0.9, schedule=nn.OneCycleLR(0.1, total_steps=5)), "cross_entropy")
    with pytest.raises(ValueError, match="total_steps=5"):
        m.fit(X, y, epochs=2, batch_size=8, verbose=0)  # 8 steps
    m.compile(nn.SGD(schedule=nn.OneCycleLR(0.1, total_steps=50)), "cross_entropy")
    with pytest.raises(ValueError, match="momentum > 0"):
        m.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="every step"):
        m.compile(nn.SGD(), "cross_entropy")
        m.fit(X, y, verbose=0, callbacks=[nn.LearningRateScheduler(
            nn.OneCycleLR(0.1, total_steps=50))])
    again = nn.schedules.get(nn.OneCycleLR(0.1, epochs=2, steps_per_epoch=3).get_config())
    assert again.total_steps == 6
