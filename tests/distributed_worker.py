"""The program tests/test_distributed.py runs on several MPI ranks
(``mpiexec -n 2 python -m mpi4py tests/distributed_worker.py MODE OUT``), and the single-process
references it is compared with (imported by the test itself).

Modes: ``train`` fits every case of CASES with distributed=True and writes each rank's
weights and History to OUT/rank<r>.npz; ``fail`` raises in a callback on rank 1 only;
``size1`` asks for the communicator (the test runs it without mpiexec, with a launcher's
environment variable claiming 2 processes).
"""

import json
import os
import sys

import numpy as np

import nncore as nn

# name: (dtype, loss, optimizer, dropout, sample weights, batch size, overlap)
CASES = {
    "f32_ce_sgd": ("float32", "cross_entropy", "sgd", 0.2, False, 20, True),
    "f64_ce_sgd": ("float64", "cross_entropy", "sgd", 0.2, False, 20, True),
    "f64_mse_adam_w": ("float64", "mse", "adam", 0.1, True, 15, True),
    "f32_bce_blocking": ("float32", "bce_with_logits", "sgd", 0.0, False, 15, False),
    "f64_bce_blocking_w": ("float64", "bce_with_logits", "adam", 0.3, True, 20, False),
}
N_ROWS = 201  # batch 20: a last batch of 1 row, so one rank's share is empty


def data(loss, weights):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_ROWS, 12))
    if loss == "cross_entropy":
        y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
        n_out = 3
    elif loss == "mse":
        y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
        n_out = 2
    else:
        y = (X[:, :2] > 0).astype(np.float64)
        n_out = 2
    w = rng.uniform(0.0, 2.0, N_ROWS) if weights else None
    if w is not None:
        w[5:25] = 0.0  # a batch with zero weight is skipped
    return X, y, w, n_out


def build(case, seed=3):
    dtype, loss, opt, p, weights, bs, overlap = CASES[case]
    X, y, w, n_out = data(loss, weights)
    layers = [nn.Dense(12, 32, activation="tanh")]
    if p:
        layers.append(nn.Dropout(p))
    layers += [nn.Dense(32, 16, activation="relu"), nn.Dense(16, n_out)]
    model = nn.Sequential(layers, dtype=dtype, seed=seed)
    optimizer = (nn.SGD(lr=0.05, momentum=0.9, nesterov=True) if opt == "sgd"
                 else nn.Adam(lr=0.01))
    metrics = ["accuracy"] if loss != "mse" else ["mae"]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    fit_kw = dict(epochs=3, batch_size=bs, validation_split=0.1, sample_weight=w, verbose=0)
    return model, X, y, fit_kw, overlap


def train(case, distributed=False):
    """(weights, History dict) of one case, in this process or across the ranks."""
    from nncore.distributed import DataParallel
    model, X, y, fit_kw, overlap = build(case, seed=3)
    if distributed:
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_rank() != 0:
            # Another seed on the other ranks: rank 0's weights and streams must win.
            model, X, y, fit_kw, overlap = build(case, seed=11)
        history = DataParallel(model, overlap=overlap).fit(X, y, **fit_kw)
    else:
        history = model.fit(X, y, **fit_kw)
    return model.params.copy(), history.history


class _FailOnRank1(nn.Callback):
    def on_epoch_end(self, epoch, logs=None):
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_rank() == 1 and epoch == 1:
            raise RuntimeError("deliberate failure on rank 1")


def main():
    mode, out = sys.argv[1], sys.argv[2]
    if mode == "train":
        from mpi4py import MPI
        rank = MPI.COMM_WORLD.Get_rank()
        results, hist = {}, {}
        for case in CASES:
            results[case], hist[case] = train(case, distributed=True)
        np.savez(os.path.join(out, f"rank{rank}.npz"), **results)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"history": hist, "threads": nn.get_num_threads()}, f)
    elif mode == "fail":
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        fit_kw["epochs"] = 1000  # without the abort, rank 0 would wait for rank 1 forever
        model.fit(X, y, callbacks=[_FailOnRank1()], distributed=True, **fit_kw)
    elif mode == "size1":
        from nncore.distributed import get_comm
        get_comm()


if __name__ == "__main__":
    main()
