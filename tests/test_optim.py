"""Optimizer updates vs PyTorch's documented formulas (always) and torch.optim (if installed)."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01),
    dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1),
]
ADAM_CASES = [
    dict(lr=1e-3),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=1e-2, weight_decay=0.1, decoupled=True),
    dict(lr=1e-2, amsgrad=True),
    dict(lr=1e-2, amsgrad=True, weight_decay=0.05, decoupled=True),
]
TOL = {np.float32: 2e-6, np.float64: 1e-14}


def torch_sgd_by_formula(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                         nesterov=False):
    """The algorithm box of torch.optim.SGD's documentation, line by line."""
    b = None
    for t, g in enumerate(grads, start=1):
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            b = g if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
    return p


def torch_adam_by_formula(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                          amsgrad=False, decoupled=False):
    """The algorithm boxes of torch.optim.Adam / AdamW (amsgrad as the implementation:
    running max of v, bias-corrected afterwards)."""
    b1, b2 = betas
    m = v = vmax = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay != 0:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            vhat = vmax / (1 - b2 ** t)
        else:
            vhat = v / (1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    return p


def run_sgd(p0, grads, dtype, n_threads=None, **kw):
    p = p0.astype(dtype)
    buf = np.zeros_like(p)
    for t, g in enumerate(grads):
        _core.sgd_update(p, g.astype(dtype), buf, first_step=t == 0, n_threads=n_threads, **kw)
    return p


def run_adam(p0, grads, dtype, n_threads=None, **kw):
    p = p0.astype(dtype)
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        _core.adam_update(p, g.astype(dtype), m, v, vmax, step=t, n_threads=n_threads, **kw)
    return p


def data(rng, n=1001, steps=6):
    return rng.normal(size=n), [rng.normal(size=n) for _ in range(steps)]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_formula(cpu_path, dtype, rng, kw):
    p0, grads = data(rng)
    expect = torch_sgd_by_formula(p0, grads, **kw)
    np.testing.assert_allclose(run_sgd(p0, grads, dtype, **kw), expect, rtol=TOL[dtype] * 10,
                               atol=TOL[dtype])
    # and the twin agrees
    p, buf = p0, None
    for t, g in enumerate(grads):
        p, buf = ref.sgd_update(p, g, buf, first_step=t == 0, **kw)
    np.testing.assert_allclose(p, expect, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_matches_formula(cpu_path, dtype, rng, kw):
    p0, grads = data(rng)
    expect = torch_adam_by_formula(p0, grads, **kw)
    np.testing.assert_allclose(run_adam(p0, grads, dtype, **kw), expect, rtol=TOL[dtype] * 10,
                               atol=TOL[dtype] * 10)
    p, m, v, vmax = p0, np.zeros_like(p0), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        p, m, v, vmax = ref.adam_update(p, g, m, v, vmax, step=t, **kw)
    np.testing.assert_allclose(p, expect, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_torch(dtype, rng, kw):
    torch = pytest.importorskip("torch")
    p0, grads = data(rng, n=257)
    tp = torch.nn.Parameter(torch.tensor(p0.astype(dtype)))
    opt = torch.optim.SGD([tp], **kw)
    for g in grads:
        tp.grad = torch.tensor(g.astype(dtype))
        opt.step()
    np.testing.assert_allclose(run_sgd(p0, grads, dtype, **kw), tp.detach().numpy(),
                               rtol=TOL[dtype] * 10, atol=TOL[dtype])


@pytest.mark.parametrize("kw", ADAM_CASES)
def test_adam_matches_torch(dtype, rng, kw):
    torch = pytest.importorskip("torch")
    p0, grads = data(rng, n=257)
    tp = torch.nn.Parameter(torch.tensor(p0.astype(dtype)))
    kw2 = dict(kw)
    cls = torch.optim.AdamW if kw2.pop("decoupled", False) else torch.optim.Adam
    kw2.setdefault("weight_decay", 0.0)
    opt = cls([tp], **kw2)
    for g in grads:
        tp.grad = torch.tensor(g.astype(dtype))
        opt.step()
    np.testing.assert_allclose(run_adam(p0, grads, dtype, **kw), tp.detach().numpy(),
                               rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_every_cpu_path_gives_the_same_bits(dtype, rng):
    # The update loops are compiled once per path; each element's arithmetic is exactly
    # rounded, so the vector width must not change a bit (n = 1001: every path has a tail).
    p0, grads = data(rng)
    old = _core.get_cpu_path()
    results = []
    try:
        for path in _core.available_cpu_paths():
            _core.set_cpu_path(path)
            results.append([run_sgd(p0, grads, dtype, **kw) for kw in SGD_CASES] +
                           [run_adam(p0, grads, dtype, **kw) for kw in ADAM_CASES])
    finally:
        _core.set_cpu_path(old)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_thread_count_does_not_change_bits(dtype, rng):
    p0, grads = data(rng, n=300_001, steps=3)
    for nt in (2, 3):
        np.testing.assert_array_equal(run_sgd(p0, grads, dtype, nt, lr=0.1, momentum=0.9),
                                      run_sgd(p0, grads, dtype, 1, lr=0.1, momentum=0.9))
        np.testing.assert_array_equal(run_adam(p0, grads, dtype, nt, amsgrad=True),
                                      run_adam(p0, grads, dtype, 1, amsgrad=True))


def test_plain_sgd_needs_no_buffer():
    p = np.ones(3)
    _core.sgd_update(p, np.ones(3), lr=0.5)
    np.testing.assert_array_equal(p, 0.5)


@pytest.mark.parametrize("call_,match", [
    (lambda: _core.sgd_update(np.ones(3), np.ones(3), lr=-1), "lr must be >= 0"),
    (lambda: _core.sgd_update(np.ones(3), np.ones(3), lr=float("nan")), "lr must be >= 0"),
    (lambda: _core.sgd_update(np.ones(3), np.ones(3), lr=1, momentum=0.9), "needs buf"),
    (lambda: _core.sgd_update(np.ones(3), np.ones(3), np.ones(3), lr=1, nesterov=True), "nesterov"),
    (lambda: _core.sgd_update(np.ones(3), np.ones(4), lr=1), r"grad must have shape \(3,\)"),
    (lambda: _core.sgd_update(np.ones((3, 1)), np.ones(3), lr=1), "p must be 1-D"),
    (lambda: _core.adam_update(*[np.ones(3) for _ in range(4)], step=0), "step must be an integer >= 1"),
    (lambda: _core.adam_update(*[np.ones(3) for _ in range(4)], step=1, betas=(1.0, 0.9)), r"betas must lie in \[0, 1\)"),
    (lambda: _core.adam_update(*[np.ones(3) for _ in range(4)], step=1, amsgrad=True), "needs vmax"),
    (lambda: _core.adam_update(*[np.ones(3)] * 4, step=1), "overlaps"),
])
def test_bad_input(call_, match):
    with pytest.raises(ValueError, match=match):
        call_()


def test_read_only_parameters():
    p = np.ones(3)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.sgd_update(p, np.ones(3), lr=1)


def test_decayed_state_flushes_to_zero_not_subnormal(dtype):
    # A momentum buffer (or Adam's m and v) whose gradient stays 0 decays geometrically; it
    # must reach 0 without lingering in the subnormals (slow on every CPU), like the twin.
    tiny = np.finfo(dtype).tiny
    p, g = np.ones(33, dtype), np.zeros(33, dtype)
    buf = np.full(33, tiny * 1.05, dtype)
    _core.sgd_update(p, g, buf, lr=0.1, momentum=0.9, first_step=False)
    assert (buf == 0).all()
    assert (ref.sgd_update(p, g, np.full(33, tiny * 1.05, dtype), lr=0.1, momentum=0.9,
                           first_step=False)[1] == 0).all()
    m, v = np.full(33, tiny * 1.05, dtype), np.full(33, tiny * 1.0005, dtype)
    _core.adam_update(p, g, m, v, np.zeros_like(p), step=5)
    assert (m == 0).all() and (v == 0).all()
    # normal values are not touched
    buf = np.full(33, tiny * 2, dtype)
    _core.sgd_update(p, g, buf, lr=0.1, momentum=0.9, first_step=False)
    assert (buf == dtype(tiny * 2) * dtype(0.9)).all()
