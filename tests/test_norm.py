"""Batch and layer normalisation kernels vs their NumPy twins, finite differences and torch."""

import numpy as np
import pytest
from conftest import assert_close

from nncore import _core
from nncore import _reference as ref

KINDS = ["batch", "layer"]
SHAPES = [(2, 1), (5, 3), (17, 33), (64, 65), (3, 130), (300, 7)]  # 65, 130: past a block


def inputs(rng, n, d, dtype):
    x = (rng.normal(size=(n, d)) * 3 + rng.normal(size=d) * 5).astype(dtype)
    gamma = rng.uniform(0.5, 2, d).astype(dtype)
    beta = rng.normal(size=d).astype(dtype)
    return x, gamma, beta


def f64(a):
    return None if a is None else a.astype(np.float64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_matches_twin(cpu_path, dtype, rng, kind, n, d, affine):
    x, gamma, beta = inputs(rng, n, d, dtype)
    if not affine:
        gamma = beta = None
    rm, rv = rng.normal(size=d).astype(dtype), rng.uniform(0.5, 2, d).astype(dtype)
    stats = dict(running_mean=rm.copy(), running_var=rv.copy()) if kind == "batch" else {}
    y, mean, invstd = _core.norm_forward(kind, x, gamma, beta, eps=1e-3, momentum=0.2, **stats)
    ry, rmean, rinv, rrm, rrv = ref.norm_forward(
        kind, f64(x), f64(gamma), f64(beta), running_mean=f64(rm), running_var=f64(rv),
        eps=1e-3, momentum=0.2)
    terms = n if kind == "batch" else d
    assert_close(mean, rmean, dtype, terms=terms)
    assert_close(invstd, rinv, dtype, terms=terms, scale=float(np.abs(rinv).max()))
    assert_close(y, ry, dtype, terms=terms)
    if kind == "batch":
        assert_close(stats["running_mean"], rrm, dtype, terms=n)
        assert_close(stats["running_var"], rrv, dtype, terms=n, scale=float(rrv.max()))
    dy = rng.normal(size=(n, d)).astype(dtype)
    dx, dg, db = _core.norm_backward(kind, dy, x, mean, invstd, gamma)
    rdx, rdg, rdb = ref.norm_backward(kind, f64(dy), f64(x), f64(mean), f64(invstd), f64(gamma))
    assert_close(dx, rdx, dtype, terms=terms, scale=float(np.abs(rdx).max()) + 1)
    assert_close(dg, rdg, dtype, terms=n, scale=float(np.abs(rdg).max()) + 1)
    assert_close(db, rdb, dtype, terms=n, scale=float(np.abs(rdb).max()) + 1)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_norm_inference_uses_running_statistics(dtype, rng, kind):
    if kind == "layer":  # layer norm has no running statistics: inference is training's y
        x, gamma, beta = inputs(rng, 6, 5, dtype)
        y1 = _core.norm_forward(kind, x, gamma, beta)[0]
        y2, m, s = _core.norm_forward(kind, x, gamma, beta, training=False)
        np.testing.assert_array_equal(y1, y2)
        assert m is None and s is None
        return
    x, gamma, beta = inputs(rng, 6, 5, dtype)
    rm, rv = rng.normal(size=5).astype(dtype), rng.uniform(0.5, 2, 5).astype(dtype)
    y, m, s = _core.norm_forward(kind, x, gamma, beta, running_mean=rm.copy(),
                                 running_var=rv.copy(), training=False)
    assert m is None and s is None
    want = ref.norm_forward(kind, f64(x), f64(gamma), f64(beta), running_mean=f64(rm),
                            running_var=f64(rv), training=False)[0]
    assert_close(y, want, dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_by_finite_differences(rng, kind):
    """d sum(r y) / d x, gamma, beta through the batch's statistics, in float64."""
    x, gamma, beta = inputs(rng, 5, 4, np.float64)
    r = rng.normal(size=x.shape)

    def value(x, gamma, beta):
        return np.sum(r * _core.norm_forward(kind, x, gamma, beta)[0])

    _, mean, invstd = _core.norm_forward(kind, x, gamma, beta)
    dx, dg, db = _core.norm_backward(kind, r, x, mean, invstd, gamma)
    for arr, grad in ((x, dx), (gamma, dg), (beta, db)):
        h, num = 1e-6, np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + h
            up = value(x, gamma, beta)
            arr[i] = old - h
            down = value(x, gamma, beta)
            arr[i] = old
            num[i] = (up - down) / (2 * h)
        assert np.max(np.abs(num - grad)) < 1e-7 * max(1, np.abs(num).max())


@pytest.mark.parametrize("kind", KINDS)
def test_match_torch(dtype, rng, kind):
    torch = pytest.importorskip("torch")
    x, gamma, beta = inputs(rng, 33, 70, dtype)
    rm, rv = np.zeros(70, dtype), np.ones(70, dtype)
    tx = torch.tensor(x, requires_grad=True)
    tg, tb = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    if kind == "batch":
        ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True,
                                            momentum=0.1, eps=1e-5)
        stats = dict(running_mean=rm, running_var=rv)
    else:
        ty = torch.nn.functional.layer_norm(tx, (70,), tg, tb, eps=1e-5)
        stats = {}
    dy = rng.normal(size=x.shape).astype(dtype)
    ty.backward(torch.tensor(dy))
    y, mean, invstd = _core.norm_forward(kind, x, gamma, beta, **stats)
    dx, dg, db = _core.norm_backward(kind, dy, x, mean, invstd, gamma)
    terms = 33 if kind == "batch" else 70
    assert_close(y, ty.detach().numpy().astype(np.float64), dtype, terms=terms)
    assert_close(dx, tx.grad.numpy().astype(np.float64), dtype, terms=terms,
                 scale=float(np.abs(tx.grad.numpy()).max()))
    assert_close(dg, tg.grad.numpy().astype(np.float64), dtype, terms=terms,
                 scale=float(np.abs(tg.grad.numpy()).max()))
    assert_close(db, tb.grad.numpy().astype(np.float64), dtype, terms=terms,
                 scale=float(np.abs(tb.grad.numpy()).max()))
    if kind == "batch":
        assert_close(rm, trm.numpy().astype(np.float64), dtype, terms=33)
        assert_close(rv, trv.numpy().astype(np.float64), dtype, terms=33)


@pytest.mark.parametrize("kind", KINDS)
def test_threads_paths_and_aliasing_give_the_same_bits(dtype, rng, kind):
    x, gamma, beta = inputs(rng, 300, 1000, dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    results = []
    old = _core.get_cpu_path()
    try:
        for path in _core.available_cpu_paths():
            _core.set_cpu_path(path)
            for nt in (1, 2, 3):
                y, m, s = _core.norm_forward(kind, x, gamma, beta, n_threads=nt)
                g = _core.norm_backward(kind, dy, x, m, s, gamma, n_threads=nt)
                results.append((y, m, s) + g)
    finally:
        _core.set_cpu_path(old)
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            np.testing.assert_array_equal(a, b)
    y, m, s = results[0][:3]
    dy2 = dy.copy()  # dx written over dy
    dx, dg, db = _core.norm_backward(kind, dy2, x, m, s, gamma, dx=dy2)
    assert dx is dy2
    np.testing.assert_array_equal(dx, results[0][3])
    np.testing.assert_array_equal(dg, results[0][4])
    dg2, db2 = np.ones_like(dg), np.ones_like(db)  # accumulate adds
    _core.norm_backward(kind, dy, x, m, s, gamma, dgamma=dg2, dbeta=db2, accumulate=True,
                        need_dx=False)
    np.testing.assert_array_equal(dg2, dg + 1)
    np.testing.assert_array_equal(db2, db + 1)


def test_constant_column_and_row_stay_finite(dtype):
    x = np.ones((4, 3), dtype)
    for kind in KINDS:
        y, _, s = _core.norm_forward(kind, x, eps=1e-5)
        assert np.all(y == 0) and np.all(np.isfinite(s))


@pytest.mark.parametrize("call_,match", [
    (lambda: _core.norm_forward("batch", np.zeros((1, 3))), "at least 2 rows"),
    (lambda: _core.norm_forward("batch", np.zeros((4, 3)), eps=0.0), "eps"),
    (lambda: _core.norm_forward("batch", np.zeros((4, 3)), momentum=1.5), "momentum"),
    (lambda: _core.norm_forward("batch", np.zeros((4, 3)), training=False), "running_mean"),
    (lambda: _core.norm_forward("batch", np.zeros((4, 3)), running_mean=np.zeros(3)), "together"),
    (lambda: _core.norm_forward("batch", np.zeros((4, 3)), np.ones(4)), r"gamma must have shape \(3,\)"),
    (lambda: _core.norm_forward("group", np.zeros((4, 3))), "kind"),
    (lambda: _core.norm_backward("layer", np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(3), np.zeros(3)), r"mean must have shape \(4,\)"),
])
def test_bad_input(call_, match):
    with pytest.raises(ValueError, match=match):
        call_()
