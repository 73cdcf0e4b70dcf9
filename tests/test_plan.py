"""The compiled training plan: bitwise the same as the same steps taken kernel by kernel."""

import numpy as np
import pytest

import nncore as nn


def build(dtype, activation="relu", dropout=0.2, seed=3, n_in=7, n_out=4):
    return nn.Sequential([
        nn.Dense(n_in, 16, activation=activation),
        nn.Dropout(dropout),
        nn.Dense(16, 9, activation="tanh"),
        nn.Activation("leaky_relu"),
        nn.Dense(9, n_out),
    ], dtype=dtype, seed=seed)


def data(rng, loss, n=203, n_in=7, n_out=4):
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        return X, rng.integers(0, n_out, n)
    if loss == "bce_with_logits":
        return X, (rng.uniform(size=(n, n_out)) > 0.5).astype(float)
    if loss == "poisson":
        return X, rng.poisson(1.5, size=(n, n_out)).astype(float)
    return X, rng.normal(size=(n, n_out))


def python_loop(model):
    """Force the kernel-by-kernel Python loop (the plan's reference)."""
    model._engine.plan = lambda ws, guard=None: None
    model._engine.reset()  # and no cached plan for predict's fast path
    return model


def test_python_loop_is_forced(rng):
    """The comparisons below compare two engines, not the plan with itself."""
    X, y = data(rng, "mse")
    m = python_loop(build(np.float64))
    m.compile(optimizer=nn.SGD(lr=0.01), loss="mse")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert not m._engine.plans


OPTIMIZERS = [lambda: nn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
              lambda: nn.SGD(lr=0.1),
              lambda: nn.Adam(lr=1e-2, amsgrad=True),
              lambda: nn.AdamW(lr=1e-2)]


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "mse"])
@pytest.mark.parametrize("opt", range(len(OPTIMIZERS)))
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_plan_is_bitwise_the_python_loop(dtype, rng, loss, opt, activation):
    X, y = data(rng, loss)
    w = rng.uniform(0, 2, len(X))
    results = []
    for use_plan in (True, False):
        m = build(dtype, activation)
        if not use_plan:
            python_loop(m)
        metrics = ["accuracy", "mae"] if loss != "mse" else ["mse", "mae"]
        m.compile(optimizer=OPTIMIZERS[opt](), loss=loss, metrics=metrics)
        h = m.fit(X, y, epochs=3, batch_size=17, sample_weight=w, verbose=0)
        results.append((m.params.copy(), h.history, m.optimizer.steps, m._rng_counter,
                        m.predict(X)))
    (p1, h1, s1, r1, o1), (p2, h2, s2, r2, o2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(o1, o2)
    assert (s1, r1) == (s2, r2)
    assert h1["loss"] == h2["loss"]
    for k in h1:  # metrics are summed in another order: equal to rounding
        np.testing.assert_allclose(h1[k], h2[k], rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_plan_thread_count_does_not_change_bits(rng):
    X, y = data(rng, "cross_entropy", n=600)
    params = []
    for threads in (1, 2):
        nn.set_num_threads(threads)
        try:
            m = build(np.float32)
            m.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
            m.fit(X, y, epochs=2, batch_size=64, verbose=0)
            params.append(m.params.copy())
        finally:
            nn.set_num_threads(None)
    np.testing.assert_array_equal(params[0], params[1])


def test_plan_is_used_and_rebuilt_when_the_model_changes(rng):
    X, y = data(rng, "cross_entropy")
    m = build(np.float64)
    m.compile(optimizer=nn.SGD(lr=0.05), loss="cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    plan = m._engine.plans[True][1]
    assert plan is not None
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert m._engine.plans[True][1] is plan  # reused across fits
    m.compile(optimizer=nn.Adam(), loss="cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert m._engine.plans[True][1] is not plan  # a new optimizer: a new plan
    m.fit(X, y, epochs=1, batch_size=64, verbose=0)  # a larger batch: a larger workspace
    assert m._engine.plans[True][1].steps == m.optimizer.steps


def test_custom_layer_falls_back_to_python(rng):
    class Doubler(nn.Activation):  # a subclass may compute something else
        pass

    X, y = data(rng, "cross_entropy")
    m = nn.Sequential([nn.Dense(7, 8, activation="relu"), Doubler("identity"), nn.Dense(8, 4)],
                      seed=0)
    m.compile(optimizer=nn.SGD(lr=0.05), loss="cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert m._engine.plans[True][1] is None


def test_predict_fast_path_agrees_and_follows_the_model(dtype, rng):
    m = nn.Sequential([nn.Dense(5, 6, activation="tanh"), nn.Dense(6, 3)], dtype=dtype, seed=1)
    X = rng.normal(size=(40, 5)).astype(dtype)
    first = m.predict(X)
    assert m.predict(X[:1]).dtype == dtype
    np.testing.assert_array_equal(m.predict(X), first)           # the fast path
    np.testing.assert_array_equal(m.predict(X, batch_size=7), first)  # the general path
    np.testing.assert_array_equal(m.predict(X.tolist()), first)  # converted, then checked
    m.layers[1].W[0, 0] += 1  # same memory: the next prediction sees it
    assert not np.array_equal(m.predict(X), first)
    m.add(nn.Dense(3, 2))  # a new structure: a new plan
    assert m.predict(X).shape == (40, 2)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"nan.*row 3"):
        m.predict(bad)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[:, :4])


def test_first_nonfinite(dtype):
    from nncore import _core
    for n in (1, 7, 256, 257, 1000):
        x = np.ones(n, dtype)
        assert _core.first_nonfinite(x) == -1
        for bad in (np.nan, np.inf, -np.inf):
            for i in {0, n // 2, n - 1}:
                y = x.copy()
                y[i] = bad
                assert _core.first_nonfinite(y) == i


def test_changing_a_layer_after_building_the_plan(rng):
    X, y = data(rng, "cross_entropy")
    m = build(np.float64)
    m.compile(optimizer=nn.SGD(lr=0.05), loss="cross_entropy")
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    before = m.predict(X)
    m.layers[0].activation = nn.activations.get("tanh")
    after = m.predict(X)
    assert not np.array_equal(before, after)
    python_loop(m)
    np.testing.assert_array_equal(m.predict(X), after)


def test_changing_optimizer_settings_between_fits(rng):
    X, y = data(rng, "cross_entropy")
    params = []
    for use_plan in (True, False):
        m = build(np.float64)
        if not use_plan:
            python_loop(m)
        m.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        m.fit(X, y, epochs=1, batch_size=32, verbose=0)
        m.optimizer.momentum = 0.5
        m.optimizer.lr = 0.01
        m.fit(X, y, epochs=1, batch_size=32, verbose=0)
        params.append(m.params.copy())
    np.testing.assert_array_equal(params[0], params[1])


# ---- the fused step for tiny networks -------------------------------------------------------
# When every dense product of a batch is at most 64 multiply-adds (NN_GEMM_TINY), the plan runs
# its fused step (src_c/plan/plan_tiny_impl.h) instead of calling the kernels: these networks and
# batch sizes (2-3-2 at batch 1 and 2, 2-3-3-2 with a Dropout or an Activation layer) take it.

TINY_OPTIMIZERS = [lambda: nn.SGD(lr=0.05),
                   lambda: nn.SGD(lr=0.05, momentum=0.9),
                   lambda: nn.SGD(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2),
                   lambda: nn.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
                   lambda: nn.Adam(lr=1e-2),
                   lambda: nn.Adam(lr=1e-2, amsgrad=True, weight_decay=1e-3),
                   lambda: nn.AdamW(lr=1e-2, weight_decay=0.1)]
ACTIVATIONS = ["identity", "relu", nn.LeakyReLU(0.1), nn.LeakyReLU(-0.5), "sigmoid", "tanh",
               "gelu", "softmax", "silu", "gelu_tanh", "exp"]


def tiny_data(rng, loss, n=37, n_in=2, n_out=2):
    X, y = data(rng, loss, n=n, n_in=n_in, n_out=n_out)
    w = rng.uniform(0, 2, n)
    w[[3, 4, 10]] = 0  # batches whose weights sum to 0 are skipped
    return X, y, w


def plan_and_loop(make, loss, X, y, opt, metrics=(), **fit):
    """Fit the same model through the plan and through the kernel-by-kernel loop; assert the
    parameters, optimizer state, gradients, counters and losses are the same bits."""
    results = []
    for use_plan in (True, False):
        m = make()
        if not use_plan:
            python_loop(m)
        m.compile(optimizer=opt(), loss=loss, metrics=list(metrics))
        h = m.fit(X, y, verbose=0, **fit)
        if use_plan:
            assert m._engine.plans[True][1] is not None
        state = [np.asarray(v).copy() for v in m.optimizer.state.values()]
        results.append((m.params.copy(), m.grads.copy(), state, h.history,
                        m.optimizer.steps, m._rng_counter))
    (p1, g1, s1, h1, n1, r1), (p2, g2, s2, h2, n2, r2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(g1, g2)
    for a, b in zip(s1, s2):
        np.testing.assert_array_equal(a, b)
    assert (n1, r1) == (n2, r2)
    assert h1["loss"] == h2["loss"]
    for k in h1:
        np.testing.assert_allclose(h1[k], h2[k], rtol=1e-5 if p1.dtype == np.float32 else 1e-12)
    return p1


@pytest.mark.parametrize("loss", ["bce_with_logits", "cross_entropy", "mse"])
@pytest.mark.parametrize("opt", range(len(TINY_OPTIMIZERS)))
@pytest.mark.parametrize("batch_size", [1, 2])
def test_tiny_plan_is_bitwise_the_python_loop(dtype, cpu_path, rng, loss, opt, batch_size):
    X, y, w = tiny_data(rng, loss)
    make = lambda: nn.Sequential([nn.Dense(2, 3, activation="relu"), nn.Dense(3, 2)],  # noqa
                                 dtype=dtype, seed=4)
    p = plan_and_loop(make, loss, X, y, TINY_OPTIMIZERS[opt], epochs=3,
                      batch_size=batch_size, sample_weight=w)
    assert np.isfinite(p).all()


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("loss", ["bce_with_logits", "cross_entropy", "mse"])
@pytest.mark.parametrize("batch_size", [1, 2])
def test_tiny_plan_every_activation(dtype, rng, activation, loss, batch_size):
    X, y, _ = tiny_data(rng, loss)
    make = lambda: nn.Sequential([nn.Dense(2, 3, activation=activation),  # noqa: E731
                                  nn.Dense(3, 2, activation="tanh" if loss == "mse" else None)],
                                 dtype=dtype, seed=6)
    metrics = ["accuracy", "mae"] if loss != "mse" else ["mse", "mae"]
    plan_and_loop(make, loss, X, y, TINY_OPTIMIZERS[3], metrics=metrics, epochs=2,
                  batch_size=batch_size)


LOSS_OBJECTS = {"l1": lambda: "l1", "huber": lambda: nn.Huber(delta=0.5),
                "poisson": lambda: "poisson",
                "smoothing": lambda: nn.CrossEntropy(label_smoothing=0.1)}


@pytest.mark.parametrize("loss", list(LOSS_OBJECTS))
@pytest.mark.parametrize("tiny", [True, False])
def test_plan_new_losses_bitwise_the_python_loop(dtype, cpu_path, rng, loss, tiny):
    """l1, huber, poisson and label smoothing: the tiny step (batch 1 and 2) and the general
    one (batch 16), with their metrics (mae on the rates for poisson)."""
    kind = "cross_entropy" if loss == "smoothing" else loss
    n_in, n_out = (2, 2) if tiny else (7, 4)
    X, y = data(rng, kind, n=37, n_in=n_in, n_out=n_out)
    w = rng.uniform(0, 2, len(X))
    metrics = ["accuracy", "mae"] if loss == "smoothing" else ["mse", "mae"]
    if tiny:
        make = lambda: nn.Sequential([nn.Dense(2, 3, activation="relu"),  # noqa: E731
                                      nn.Dense(3, 2)], dtype=dtype, seed=4)
    else:
        make = lambda: build(dtype)  # noqa: E731
    for batch_size in ((1, 2) if tiny else (16,)):
        plan_and_loop(make, LOSS_OBJECTS[loss](), X, y, TINY_OPTIMIZERS[3], metrics=metrics,
                      epochs=2, batch_size=batch_size, sample_weight=w)


@pytest.mark.parametrize("middle", ["dropout", "activation", "softmax"])
@pytest.mark.parametrize("opt", [1, 5])
def test_tiny_plan_dropout_and_activation_layers(dtype, rng, middle, opt):
    X, y, w = tiny_data(rng, "cross_entropy")
    layer = {"dropout": lambda: nn.Dropout(0.3), "activation": lambda: nn.Activation("gelu"),
             "softmax": lambda: nn.Activation("softmax")}[middle]
    make = lambda: nn.Sequential([nn.Dropout(0.2), nn.Dense(2, 3, activation="tanh"),  # noqa
                                  layer(), nn.Dense(3, 3, activation="leaky_relu"),
                                  nn.Dense(3, 2)], dtype=dtype, seed=8)
    plan_and_loop(make, "cross_entropy", X, y, TINY_OPTIMIZERS[opt], metrics=["accuracy"],
                  epochs=2, batch_size=2, sample_weight=w)


def test_tiny_plan_with_nonzero_padding_in_the_flat_buffers(rng):
    # The fused step updates each layer's parameters in its backward pass; elements of the
    # flat buffer outside every layer (alignment padding) are left to the kernel's pass over
    # all of them, which changes them when they are not zero.
    X, y, _ = tiny_data(rng, "mse")

    def make():
        m = nn.Sequential([nn.Dense(2, 3, activation="relu"), nn.Dense(3, 2)], seed=2)
        used = np.zeros(m.params.size, bool)
        for s in m._slots:
            used[s.offset:s.offset + s.size] = True
        assert not used.all()
        m.params[~used] = 0.25
        return m

    p = plan_and_loop(make, "mse", X, y,
                      lambda: nn.SGD(lr=0.05, momentum=0.9, weight_decay=0.1), epochs=2,
                      batch_size=1)
    assert (p != 0.25).sum() > 0 and (p == 0.25).sum() < p.size


def test_tiny_plan_nan_guard_agrees_with_the_python_loop(rng):
    X = rng.standard_normal((64, 2)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    out = []
    for use_plan in (True, False):
        m = nn.Sequential([nn.Dense(2, 3, activation="relu"), nn.Dense(3, 2)], seed=0)
        if not use_plan:
            python_loop(m)
        m.compile(nn.SGD(lr=0.5, momentum=0.9), "mse")
        with pytest.raises(nn.NonFiniteLossError) as e:
            m.fit(X, Y, epochs=50, batch_size=1, shuffle=False, verbose=0, on_nan="raise")
        out.append((m.params.copy(), str(e.value)))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]


# ---- shuffling through a permutation --------------------------------------------------------
# Plan.train(..., perm) gathers each batch's rows perm[b * bs ...] into the plan's rows
# buffers: the same bits as training on the arrays permuted beforehand, without copying them.

def general_net(dtype):
    return build(dtype, n_in=7, n_out=4)


def wide_rows_net(dtype, n_in=300):
    """Rows of 1 KiB and more: gathered a few at a time, a line of each in turn (gather_rows)."""
    return build(dtype, n_in=n_in, n_out=4)


def tiny_net(dtype):
    return nn.Sequential([nn.Dense(2, 3, activation="relu"), nn.Dense(3, 2)], dtype=dtype,
                         seed=4)


def compiled_plan(make, dtype, loss, batch_size):
    """A model and its training plan for batches of batch_size."""
    m = make(dtype)
    metrics = ["accuracy", "mae"] if loss != "mse" else ["mse"]
    m.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss=loss, metrics=metrics)
    plan = m._engine.plan(m._engine.training_ws(batch_size))
    assert plan is not None
    return m, plan


def plan_arrays(rng, loss, dtype, n, n_in, n_out, weights):
    X, y = data(rng, loss, n=n, n_in=n_in, n_out=n_out)
    Y = y.astype(np.int64) if loss == "cross_entropy" else y.astype(dtype)
    W = rng.uniform(0, 2, n).astype(dtype) if weights else None
    if weights:
        W[:3] = 0  # rows of weight 0 (a batch of them is skipped) land anywhere
    return X.astype(dtype), Y, W


@pytest.mark.parametrize("net, n_in, n_out, batch_size", [
    (general_net, 7, 4, 16), (general_net, 7, 4, 1), (tiny_net, 2, 2, 2), (tiny_net, 2, 2, 1),
    (wide_rows_net, 300, 4, 16)],
    ids=["general", "general-batch1", "tiny", "tiny-batch1", "wide-rows"])
@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "mse"])
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
def test_train_through_perm_is_bitwise_training_on_permuted_arrays(
        dtype, rng, net, n_in, n_out, batch_size, loss, weights):
    check_train_through_perm(dtype, rng, net, n_in, n_out, batch_size, loss, weights)


@pytest.mark.parametrize("threads", [1, 2])
def test_train_through_perm_wide_rows_any_thread_count(dtype, rng, threads):
    # 16 rows of 1100 values: gathered by two threads when there are two
    nn.set_num_threads(threads)
    try:
        check_train_through_perm(dtype, rng, lambda dt: wide_rows_net(dt, 1100), 1100, 4, 16,
                                 "cross_entropy", False)
    finally:
        nn.set_num_threads(None)


def check_train_through_perm(dtype, rng, net, n_in, n_out, batch_size, loss, weights):
    n = 37  # batch 16: a last batch of 5 rows; batch 2: of 1 row
    X, Y, W = plan_arrays(rng, loss, dtype, n, n_in, n_out, weights)
    perm = rng.permutation(n)
    n_batches = -(-n // batch_size)
    results = []
    for through_perm in (True, False):
        m, plan = compiled_plan(net, dtype, loss, batch_size)
        if through_perm:  # in two calls: the second starts mid-permutation
            args = (X, Y, W, batch_size)
            assert plan.train(*args, 0, n_batches // 2, perm)
            assert plan.train(*args, n_batches // 2, n_batches, perm)
        else:
            args = (X[perm], Y[perm], None if W is None else W[perm], batch_size)
            assert plan.train(*args, 0, n_batches // 2)
            assert plan.train(*args, n_batches // 2, n_batches)
        results.append((m.params.copy(), m.grads.copy(), plan.steps, plan.rng_counter,
                        plan.stats()))
    (p1, g1, s1, r1, st1), (p2, g2, s2, r2, st2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(g1, g2)
    assert (s1, r1) == (s2, r2) and s1 > 0
    assert st1 == st2  # loss, weight and metric sums: the same rows in the same order
    # and not what the rows in order give (the permutation is used)
    m, plan = compiled_plan(net, dtype, loss, batch_size)
    plan.train(X, Y, W, batch_size, 0, n_batches)
    assert not np.array_equal(m.params, p1)


@pytest.mark.parametrize("make_bad, what", [
    (lambda p: p.astype(np.int32), "dtype int64"),
    (lambda p: p.astype(np.float64), "dtype int64"),
    (lambda p: p[:-1], r"shape \(37,\)"),
    (lambda p: np.concatenate([p, p[:1]]), r"shape \(37,\)"),
    (lambda p: p.reshape(1, -1), r"shape \(37,\)"),
    (lambda p: np.repeat(p, 2)[::2], "C-contiguous"),
    (lambda p: p.tolist(), "numpy.ndarray"),
    (lambda p: np.where(p == 5, 37, p), r"perm\[\d+\] = 37 is not a row index in \[0, 37\)"),
    (lambda p: np.where(p == 5, -1, p), r"perm\[\d+\] = -1 is not a row index in \[0, 37\)"),
    (lambda p: np.where(p == 5, 2**40, p), r"is not a row index"),
], ids=["int32", "float", "short", "long", "2d", "strided", "list", "n", "negative", "huge"])
def test_train_rejects_a_bad_perm_before_training(rng, make_bad, what):
    X, Y, W = plan_arrays(rng, "cross_entropy", np.float64, 37, 7, 4, True)
    m, plan = compiled_plan(general_net, np.float64, "cross_entropy", 8)
    before = m.params.copy()
    bad = make_bad(rng.permutation(37))
    with pytest.raises(ValueError, match=what):
        plan.train(X, Y, W, 8, 0, 5, bad)
    np.testing.assert_array_equal(m.params, before)  # nothing read, nothing trained
    assert plan.steps == 0


def test_train_checks_the_perm_entries_it_reads(rng):
    # A call reads the entries of its batches only (an epoch in chunks checks each once).
    X, Y, W = plan_arrays(rng, "mse", np.float32, 37, 2, 2, False)
    m, plan = compiled_plan(tiny_net, np.float32, "mse", 2)
    perm = rng.permutation(37)
    perm[36] = 99  # the last batch
    assert plan.train(X, Y, W, 2, 0, 18, perm)
    with pytest.raises(ValueError, match=r"perm\[36\] = 99"):
        plan.train(X, Y, W, 2, 18, 19, perm)
    assert plan.steps == 18


def test_train_with_perm_needs_the_rows_buffers(rng):
    X, Y, W = plan_arrays(rng, "mse", np.float64, 10, 2, 2, False)
    m = tiny_net(np.float64)
    m.compile(nn.SGD(lr=0.1), "mse")
    plan = m._engine.plan(m._engine.inference_ws(2))  # an inference plan: built without them
    with pytest.raises(ValueError, match=r"rows=\(x, targets, weights\)"):
        plan.train(X, Y, W, 2, 0, 5, np.arange(10))


# ---- the optimizer step inside the backward pass ---------------------------------------------
# The plan updates each layer's parameters as its gradient is finished (src_c/plan/plan_impl.h,
# nn_update): on several threads tile by tile inside the dW product (a 200x300 layer at batch
# 128, 240 KB of float32 parameters), else right after it. Same bits as the whole step after
# the backward pass, for every optimizer and thread count.

@pytest.mark.parametrize("opt", range(len(TINY_OPTIMIZERS)))
@pytest.mark.parametrize("threads", [1, 2])
def test_update_in_backward_is_the_loop_bitwise_any_thread_count(dtype, rng, opt, threads):
    X, y = data(rng, "cross_entropy", n=300, n_in=200, n_out=10)
    make = lambda: nn.Sequential([nn.Dense(200, 300, activation="relu"),  # noqa: E731
                                  nn.Dense(300, 10)], dtype=dtype, seed=3)
    nn.set_num_threads(threads)
    try:
        plan_and_loop(make, "cross_entropy", X, y, TINY_OPTIMIZERS[opt], epochs=2,
                      batch_size=128)
    finally:
        nn.set_num_threads(None)


@pytest.mark.parametrize("opt", [1, 4])
def test_dw_panel_buffer_is_the_loop_bitwise_every_cpu_path(dtype, cpu_path, rng, opt):
    """A 200 -> 300 layer at batch 128: within a plan call its dW panels are stepped from a
    buffer (gemm_impl.h, nn_update.scratch) on every CPU path; same bits as the loop."""
    X, y = data(rng, "cross_entropy", n=300, n_in=200, n_out=10)
    make = lambda: nn.Sequential([nn.Dense(200, 300, activation="relu"),  # noqa: E731
                                  nn.Dense(300, 10)], dtype=dtype, seed=3)
    plan_and_loop(make, "cross_entropy", X, y, TINY_OPTIMIZERS[opt], epochs=2, batch_size=128)


def test_grads_are_the_last_batch_s_after_a_nan_guard_stop(dtype, rng):
    """Within a plan call the dW tiles of a batch may be stepped from a panel buffer and never
    written to model.grads (nn_update.scratch), except on the call's last batch; with the NaN
    guard on, every batch writes them, so a stop leaves the last finite batch's, as the loop."""
    X = rng.standard_normal((1024, 200)) * 30
    Y = rng.standard_normal((1024, 10)) * 1e3
    out = []
    for use_plan in (True, False):
        m = nn.Sequential([nn.Dense(200, 300, activation="relu"), nn.Dense(300, 10)],
                          dtype=dtype, seed=3)
        if not use_plan:
            python_loop(m)
        m.compile(nn.SGD(lr=0.05, momentum=0.9), "mse")
        with pytest.raises(nn.NonFiniteLossError) as e:
            m.fit(X, Y, epochs=20, batch_size=128, shuffle=False, verbose=0, on_nan="raise")
        out.append((m.params.copy(), m.grads.copy(), str(e.value)))
    (p1, g1, e1), (p2, g2, e2) = out
    assert e1 == e2 and "batch 0" not in e1
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(g1, g2)
    assert np.isfinite(g1).all() and np.abs(g1).max() > 0


@pytest.mark.parametrize("opt", [1, 4, 5])
@pytest.mark.parametrize("n_in,n_hidden", [(400, 128), (800, 520)])
def test_forward_split_over_k_is_the_loop_bitwise_any_thread_count(dtype, cpu_path, rng, opt,
                                                                   n_in, n_hidden):
    """A 400 -> 128 layer at batch 64: its forward sums over k in the two halves of rows that
    the update takes on two threads (gemm_impl.h, forward_k_split), on any thread count.
    800 -> 520 (over 1 MiB): the step's next rows are also fetched ahead (momentum; Adam's
    two or three state arrays), which must not change a bit either."""
    X, y = data(rng, "cross_entropy", n=200, n_in=n_in, n_out=10)
    make = lambda: nn.Sequential([nn.Dense(n_in, n_hidden, activation="relu"),  # noqa: E731
                                  nn.Dense(n_hidden, 10)], dtype=dtype, seed=3)
    params = []
    for threads in (1, 2):
        nn.set_num_threads(threads)
        try:
            params.append(plan_and_loop(make, "cross_entropy", X, y, TINY_OPTIMIZERS[opt],
                                        epochs=2, batch_size=64))
        finally:
            nn.set_num_threads(None)
    np.testing.assert_array_equal(params[0], params[1])


def test_ctrl_c_leaves_the_weights_of_the_steps_taken(rng):
    """Ctrl-C during fit (KeyboardInterrupt, between the plan's chunks): the weights and the
    optimizer state are those of exactly the steps counted, and training goes on from there."""
    import _thread
    import signal
    import threading

    X, y = data(rng, "cross_entropy")
    bs, nb = 16, -(-len(X) // 16)
    models = []
    for _ in range(2):
        m = build(np.float32, dropout=0.0)
        m.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss="cross_entropy")
        models.append(m)
    # Python's own SIGINT handler, which interrupt_main needs: a shell starts a background
    # job with SIGINT ignored, and Python then installs none.
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            models[0].fit(X, y, epochs=10**6, batch_size=bs, shuffle=False, verbose=0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, handler)
    steps = models[0].optimizer.steps
    epochs, rest = divmod(steps, nb)
    if epochs:  # the same steps, uninterrupted
        models[1].fit(X, y, epochs=epochs, batch_size=bs, shuffle=False, verbose=0)
    if rest:
        models[1].fit(X[:rest * bs], y[:rest * bs], epochs=1, batch_size=bs, shuffle=False,
                      verbose=0)
    assert models[1].optimizer.steps == steps
    np.testing.assert_array_equal(models[0].params, models[1].params)
    for m in models:  # and on from there, momentum included
        m.fit(X, y, epochs=1, batch_size=bs, shuffle=False, verbose=0)
    np.testing.assert_array_equal(models[0].params, models[1].params)


class _Ranks:
    """A data-parallel exchange with nobody to exchange with (Engine.run_epoch's shard): the
    rank's own sums stand for the global ones, and the plan's events are recorded."""

    def __init__(self, rank, size, layers, update, fail=False, peers=()):
        self.rank, self.size, self.layers, self.update = rank, size, layers, update
        self.events, self.fail, self.peers = [], fail, peers

    def layer_done(self, i):
        self.events.append(i)

    def grads_done(self, loss):
        self.events.append("grads")
        if self.fail:
            raise KeyError("from the hook")
        return loss

    def updated(self):
        self.events.append("updated")


@pytest.mark.parametrize("loss", ["cross_entropy", "bce_with_logits", "mse"])
@pytest.mark.parametrize("rank,size,part", [(0, 1, 1), (0, 2, 1), (1, 2, 2), (2, 3, 3)])
@pytest.mark.parametrize("n_peers", [0, 2])
def test_data_parallel_plan_is_bitwise_the_python_loop(dtype, rng, loss, rank, size, part,
                                                       n_peers):
    """A rank's share of each batch (rows, weights scaled to the global batch, dropout
    draws), the hook's events, the peers' gradients added over the update range, and the
    update of that range (part: all the parameters, else 1/part of them): the plan and the
    Python loop agree bit for bit; a rank without rows (the last batch has one row) takes
    part in every event."""
    X, y = data(rng, loss, n=41)
    w = rng.uniform(0, 2, len(X))
    perm = np.random.default_rng(1).permutation(len(X)).astype(np.int64)
    results = []
    for use_plan in (True, False):
        m = build(dtype, n_in=7 if not n_peers else 300)  # the plan adds peers by tiles
        X = X if not n_peers else np.random.default_rng(2).normal(size=(41, 300))
        if not use_plan:
            python_loop(m)
        m.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss=loss, metrics=["mae"])
        X_, Y_, W_ = m._check_xy(X, y, w, "fit")
        before = m.params.copy()
        n = m.params.size
        update = (0, n) if part == 1 else (n // 4, n // 4 + n // part)
        used = np.zeros(n, bool)  # a rank's gradients are 0 in the padding, as params
        for slot in m._slots:
            used[slot.offset:slot.offset + slot.size] = True
        peers = [np.random.default_rng(k).normal(size=n).astype(dtype) * 1e-3 * used
                 for k in range(n_peers)]
        shard = _Ranks(rank, size, (4, 2), update, peers=peers)
        res = m._engine.run_epoch(X_, Y_, W_, 10, None, None, perm, shard)
        lo, hi = shard.update
        np.testing.assert_array_equal(m.params[:lo], before[:lo])  # outside the range
        np.testing.assert_array_equal(m.params[hi:], before[hi:])
        results.append((m.params.copy(), res.loss_sum, res.weight_sum, res.batches,
                        res.metric_counts, shard.events, m._rng_counter, m.optimizer.steps,
                        res.metric_sums))
    a, b = results
    for x, y_ in zip(a[:-1], b[:-1]):
        np.testing.assert_array_equal(x, y_)
    np.testing.assert_allclose(a[-1], b[-1], rtol=1e-5)
    assert a[5][:4] == [4, 2, "grads", "updated"] and len(a[5]) == 4 * 5


def test_an_error_in_the_hook_stops_the_plan_and_leaves_it_for_a_plain_fit(rng):
    X, y = data(rng, "mse")
    m = build(np.float64, dropout=0.0)
    m.compile(optimizer=nn.SGD(lr=0.01), loss="mse")
    X_, Y_, _ = m._check_xy(X, y, None, "fit")
    shard = _Ranks(0, 1, (), (0, m.params.size), fail=True)
    with pytest.raises(KeyError, match="from the hook"):
        m._engine.run_epoch(X_, Y_, None, 16, shard=shard)
    assert shard.events == ["grads"]
    twin = build(np.float64, dropout=0.0)
    twin.compile(optimizer=nn.SGD(lr=0.01), loss="mse")
    twin.params[:] = m.params  # the gradients of the failed batch were not applied
    m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    twin.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_array_equal(m.params, twin.params)


def test_a_refused_data_parallel_call_leaves_the_plan_as_it_was(rng):
    """A bad peer buffer is refused before anything changes: the plan still trains as one
    process, the bits of a model that never saw the call."""
    X, y = data(rng, "mse")
    models = []
    for refuse in (True, False):
        m = build(np.float64, dropout=0.0)
        m.compile(optimizer=nn.SGD(lr=0.01), loss="mse")
        m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)  # builds the plan
        if refuse:
            plan = m._engine.plans[True][1]
            shard = _Ranks(0, 2, (4, 2), (0, m.params.size))
            with pytest.raises(TypeError, match="peers"):
                plan.data_parallel(shard, 0, 2, shard.layers, shard.update,
                                   [np.zeros(3, np.float32)])
        m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        models.append(m.params.copy())
    np.testing.assert_array_equal(models[0], models[1])
