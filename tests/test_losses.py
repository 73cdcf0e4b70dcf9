"""Losses vs their NumPy twins: values, gradients, reductions, weights, stability, errors."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

from conftest import EPS, assert_close

SHAPES = [(1, 1), (1, 5), (7, 1), (13, 3), (64, 10), (3001, 7)]
LOSSES = ["mse", "bce", "ce", "l1", "huber", "poisson", "ce_smooth"]
# The keyword arguments of the losses with a parameter.
PARAMS = {"huber": {"delta": 1.5}, "ce_smooth": {"label_smoothing": 0.1}}


def make(kind, rng, n, d, dtype):
    x = (rng.normal(size=(n, d)) * 3).astype(dtype)
    if kind in ("mse", "l1", "huber"):
        return x, rng.normal(size=(n, d)).astype(dtype)
    if kind == "bce":
        return x, rng.uniform(0, 1, (n, d)).astype(dtype)
    if kind == "poisson":
        return (x / 3).astype(dtype), rng.poisson(2.0, (n, d)).astype(dtype)
    return x, rng.integers(0, d, n)


def call(kind, x, t, weight=None, reduction="mean", **kw):
    fn = {"mse": _core.mse_loss, "bce": _core.bce_with_logits_loss,
          "ce": _core.cross_entropy_loss, "l1": _core.l1_loss, "huber": _core.huber_loss,
          "poisson": _core.poisson_nll_loss, "ce_smooth": _core.cross_entropy_loss}[kind]
    return fn(x, t, weight, reduction, **PARAMS.get(kind, {}), **kw)


def twin(kind, x, t, weight=None, reduction="mean"):
    fn = {"mse": ref.mse_loss, "bce": ref.bce_with_logits_loss,
          "ce": ref.cross_entropy_loss, "l1": ref.l1_loss, "huber": ref.huber_loss,
          "poisson": ref.poisson_nll_loss, "ce_smooth": ref.cross_entropy_loss}[kind]
    f = lambda a: a if a is None or a.dtype.kind in "iu" else a.astype(np.float64)  # noqa
    return fn(f(x), f(t), f(weight), reduction, **PARAMS.get(kind, {}))


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_twin(cpu_path, dtype, rng, kind, n, d, reduction, weighted):
    x, t = make(kind, rng, n, d, dtype)
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    loss, grad = call(kind, x, t, w, reduction)
    loss_r, grad_r = twin(kind, x, t, w, reduction)
    scale = abs(loss_r) + 1
    assert abs(loss - loss_r) <= 64 * EPS[dtype] * scale * np.sqrt(n * d), (loss, loss_r)
    # (one class smoothed: the gradient is 0 up to the rounding of its w / n terms)
    tiny = 1.0 / n if kind == "ce_smooth" and d == 1 else 1e-30
    assert_close(grad, grad_r, dtype, terms=d, scale=np.abs(grad_r).max() + tiny)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("n,d", [(64, 10), (33, 37), (5, 1)])
def test_every_cpu_path_gives_the_same_bits(dtype, rng, kind, n, d):
    """The loss kernels are compiled for each CPU path (losses_impl.h, loss_chunk); every
    operation is exactly rounded, so every path gives the same loss and gradient bits."""
    x, t = make(kind, rng, n, d, dtype)
    x[0, 0] = 80 if dtype == np.float32 else 700  # exponentials near the top of the range
    w = rng.uniform(0, 2, n).astype(dtype)
    old, results = _core.get_cpu_path(), []
    try:
        for path in _core.available_cpu_paths():
            _core.set_cpu_path(path)
            results.append(call(kind, x, t, w, "mean"))
    finally:
        _core.set_cpu_path(old)
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])


@pytest.mark.parametrize("kind", LOSSES)
def test_value_only_and_out(dtype, rng, kind):
    x, t = make(kind, rng, 9, 4, dtype)
    loss, grad = call(kind, x, t)
    loss2, none = call(kind, x, t, need_grad=False)
    assert none is None and loss2 == loss
    out = np.full_like(x, np.nan)
    loss3, g3 = call(kind, x, t, grad=out)
    assert g3 is out and loss3 == loss
    np.testing.assert_array_equal(out, grad)


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_by_finite_differences(rng, kind, reduction):
    x, t = make(kind, rng, 5, 4, np.float64)
    w = rng.uniform(0.5, 2, 5)
    _, grad = call(kind, x, t, w, reduction)
    h, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (call(kind, xp, t, w, reduction)[0] - call(kind, xm, t, w, reduction)[0]) / (2 * h)
    assert np.max(np.abs(num - grad)) <= 1e-7 * max(1.0, np.abs(num).max())


@pytest.mark.parametrize("kind", ["mse", "bce", "ce", "l1", "huber", "poisson", "ce_smooth"])
@pytest.mark.parametrize("weighted", [False, True])
def test_match_torch(dtype, rng, kind, weighted):
    """Value and gradient of torch.nn.functional's losses (mean reduction; with per-sample
    weights, torch's per-element losses weighted and averaged as nncore documents)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, t = make(kind, rng, 37, 5, dtype)
    x[0, :2] = t[0, :2] if kind in ("l1", "huber") else x[0, :2]  # the kinks: r = 0
    w = rng.uniform(0.1, 2, 37).astype(dtype) if weighted else None
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(t)
    elem = {"mse": lambda: F.mse_loss(tx, tt, reduction="none"),
            "bce": lambda: F.binary_cross_entropy_with_logits(tx, tt, reduction="none"),
            "l1": lambda: F.l1_loss(tx, tt, reduction="none"),
            "huber": lambda: F.huber_loss(tx, tt, reduction="none", delta=1.5),
            "poisson": lambda: F.poisson_nll_loss(tx, tt, log_input=True, full=False,
                                                  reduction="none"),
            "ce": lambda: F.cross_entropy(tx, tt, reduction="none")[:, None],
            "ce_smooth": lambda: F.cross_entropy(tx, tt, reduction="none",
                                                 label_smoothing=0.1)[:, None]}[kind]()
    tw = torch.ones(37, dtype=tx.dtype) if w is None else torch.tensor(w)
    total = (elem.sum(dim=1) * tw).sum() / (tw.sum() * elem.shape[1])
    total.backward()
    loss, grad = call(kind, x, t, w)
    assert np.isclose(loss, total.item(), rtol=64 * EPS[dtype], atol=0)
    assert_close(grad, tx.grad.numpy().astype(np.float64), dtype, terms=5,
                 scale=float(np.abs(tx.grad.numpy()).max()))


def test_label_smoothing_zero_is_the_plain_cross_entropy(dtype, rng):
    x, t = make("ce", rng, 50, 7, dtype)
    plain = _core.cross_entropy_loss(x, t)
    zero = _core.cross_entropy_loss(x, t, label_smoothing=0.0)
    assert plain[0] == zero[0]
    np.testing.assert_array_equal(plain[1], zero[1])


def test_huber_is_mse_and_l1_at_its_ends(rng):
    """Huber with a delta above every residual is half the MSE; far below, delta times L1
    minus a constant."""
    x, t = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    assert np.isclose(_core.huber_loss(x, t, delta=100.0)[0], 0.5 * _core.mse_loss(x, t)[0])
    d = 1e-3
    assert np.isclose(_core.huber_loss(x, t, delta=d)[0],
                      d * (_core.l1_loss(x, t)[0] - d / 2), rtol=1e-9)


def test_unweighted_mean_is_pytorchs_mean(rng):
    x, t = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    assert np.isclose(_core.mse_loss(x, t)[0], np.mean((x - t) ** 2), rtol=1e-14)
    labels = rng.integers(0, 3, 6)
    lse = np.log(np.exp(x).sum(axis=1))
    assert np.isclose(_core.cross_entropy_loss(x, labels)[0],
                      np.mean(lse - x[np.arange(6), labels]), rtol=1e-14)


def test_weights_are_a_weighted_average(rng):
    x, labels = rng.normal(size=(4, 3)), np.array([0, 1, 2, 1])
    per = [_core.cross_entropy_loss(x[i:i + 1], labels[i:i + 1])[0] for i in range(4)]
    w = np.array([1.0, 0.0, 3.0, 2.0])
    assert np.isclose(_core.cross_entropy_loss(x, labels, w)[0], np.dot(w, per) / w.sum())
    assert np.isclose(_core.cross_entropy_loss(x, labels, w, "sum")[0], np.dot(w, per))


def test_stable_for_huge_logits(dtype):
    big = 1e4 if dtype == np.float64 else 100.0
    x = np.array([[big, -big, 0], [-big, big, big], [-big, -big, -big]], dtype=dtype)
    loss, grad = _core.cross_entropy_loss(x, np.array([0, 0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # Row 0 is right with certainty (0), row 1 wrong by 2 big (log 2 + 2 big), row 2 uniform.
    expect = (0 + (2 * big + np.log(2)) + np.log(3)) / 3
    assert np.isclose(loss, expect, rtol=1e-6)
    loss, grad = _core.bce_with_logits_loss(x, np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]], dtype))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    # Every element is confidently right (loss ~ 0) except x = 0 with t = 1 (log 2).
    assert np.isclose(loss, np.log(2) / 9, rtol=1e-6)
    np.testing.assert_allclose(grad[0], np.array([0, 0, -0.5]) / 9, atol=1e-7)


def test_thread_count_does_not_change_bits(dtype, rng):
    for kind in LOSSES:
        x, t = make(kind, rng, 200_003, 3, dtype)
        l1, g1 = call(kind, x, t, n_threads=1)
        for nt in (2, 3):
            l2, g2 = call(kind, x, t, n_threads=nt)
            assert l2 == l1
            np.testing.assert_array_equal(g2, g1)


@pytest.mark.parametrize("call_,exc,match", [
    (lambda: _core.cross_entropy_loss(np.zeros((3, 4)), np.array([0, 4, 1])), ValueError, r"\[0, 4\).*got 4"),
    (lambda: _core.cross_entropy_loss(np.zeros((3, 4)), np.array([0, -1, 1])), ValueError, "got -1"),
    (lambda: _core.cross_entropy_loss(np.zeros((3, 4)), np.array([0.0, 1.0, 1.0])), TypeError, "integer dtype"),
    (lambda: _core.cross_entropy_loss(np.zeros((3, 4)), np.array([0, 1])), ValueError, r"labels must have shape \(3,\)"),
    (lambda: _core.cross_entropy_loss(np.zeros((3, 4)), [0, 1, 2]), TypeError, "numpy.ndarray"),
    (lambda: _core.mse_loss(np.zeros((3, 4)), np.zeros((3, 5))), ValueError, r"target must have shape \(3, 4\)"),
    (lambda: _core.mse_loss(np.zeros((3, 4)), np.zeros((3, 4), np.float32)), TypeError, "float64"),
    (lambda: _core.mse_loss(np.zeros((3, 4)), np.zeros((3, 4)), np.array([1.0, -1, 1])), ValueError, ">= 0"),
    (lambda: _core.mse_loss(np.zeros((3, 4)), np.zeros((3, 4)), np.zeros(3)), ValueError, "sum to 0"),
    (lambda: _core.mse_loss(np.zeros((3, 4)), np.zeros((3, 4)), reduction="max"), ValueError, "reduction"),
    (lambda: _core.mse_loss(np.zeros((0, 4)), np.zeros((0, 4))), ValueError, "empty"),
    (lambda: _core.bce_with_logits_loss(np.zeros((2, 2)), np.full((2, 2), 2.0)), ValueError, r"\[0, 1\]"),
    (lambda: _core.huber_loss(np.zeros((2, 2)), np.zeros((2, 2)), delta=0.0), ValueError, "delta"),
    (lambda: _core.huber_loss(np.zeros((2, 2)), np.zeros((2, 2)), delta=np.inf), ValueError, "delta"),
    (lambda: _core.huber_loss(np.zeros((2, 2)), np.zeros((2, 2)), delta=np.nan), ValueError, "delta"),
    (lambda: _core.cross_entropy_loss(np.zeros((2, 2)), np.array([0, 1]), label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: _core.cross_entropy_loss(np.zeros((2, 2)), np.array([0, 1]), label_smoothing=-0.1), ValueError, "label_smoothing"),
])
def test_bad_input(call_, exc, match):
    with pytest.raises(exc, match=match):
        call_()


def test_bad_label_leaves_grad_untouched():
    out = np.full((2, 3), 7.0)
    with pytest.raises(ValueError):
        _core.cross_entropy_loss(np.zeros((2, 3)), np.array([0, 3]), grad=out)
    assert np.all(out == 7)
