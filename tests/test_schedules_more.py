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
