"""fit, evaluate and predict repeated on one model in every combination of the NaN options
(on_nan and TerminateOnNaN): each call works, and the compiled plan (rebuilt or reused from
its cache) gives the same bits as the Python loop over the kernels."""

import itertools

import numpy as np
import pytest

import nncore as nn

_NAN_SETTINGS = [
    dict(on_nan="ignore"), dict(on_nan="stop"), dict(on_nan="raise"),
    dict(on_nan="ignore", callbacks=[nn.TerminateOnNaN]),
    dict(on_nan="raise", callbacks=[nn.TerminateOnNaN]),
]


class _MSE(nn.MSELoss):
    """A subclass: the compiled plan steps aside and the Python loop runs."""


def _kw(setting):
    kw = dict(setting)
    kw["callbacks"] = [cb() for cb in kw.get("callbacks", [])]  # fresh instances each call
    return kw


def _sequence(loss_cls, first, second):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Y = rng.standard_normal((40, 2))
    model = nn.Sequential([nn.Dense(5, 8, activation="tanh"), nn.Dense(8, 2)], seed=0)
    model.compile(nn.Adam(lr=0.01), loss_cls())
    out = []
    for setting in (first, second, first):
        model.fit(X, Y, epochs=2, batch_size=16, verbose=0, **_kw(setting))
        out.append(model.evaluate(X, Y)["loss"])
        out.append(model.predict(X[:3]).tobytes())
        out.append(model.predict(X).tobytes())
    return model.params.tobytes(), out


@pytest.mark.parametrize("first, second", list(itertools.product(_NAN_SETTINGS, repeat=2)),
                         ids=lambda s: "-".join([s["on_nan"]] + [c.__name__ for c in
                                                                 s.get("callbacks", [])]))
def test_fit_evaluate_predict_repeat(first, second):
    plan = _sequence(nn.MSELoss, first, second)
    loop = _sequence(_MSE, first, second)
    assert plan == loop
