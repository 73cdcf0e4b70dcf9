"""nncore.sklearn: scikit-learn's estimator checks, and what a scikit-learn user sees."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nncore as nn  # noqa: E402
from nncore.sklearn import NNClassifier, NNRegressor  # noqa: E402

# Small and fast, with a batch (32) that covers the small data sets of the weight checks:
# with one batch per epoch, integer sample weights are exactly the same as repeated rows.
FAST = dict(hidden_layer_sizes=(16,), learning_rate=1e-2, batch_size=32, max_epochs=50,
            n_threads=1)


@parametrize_with_checks([NNClassifier(**FAST), NNRegressor(**FAST)])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---- import hygiene --------------------------------------------------------------------------
def test_import_nncore_does_not_import_sklearn():
    root = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = ("import sys, nncore; print('sklearn' in sys.modules, "
            "'nncore.sklearn' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


# ---- data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def clf(**kw):
    params = dict(hidden_layer_sizes=(16,), learning_rate=1e-2, batch_size=32,
                  max_epochs=60, n_threads=1, random_state=0)
    params.update(kw)
    return NNClassifier(**params)


def reg(**kw):
    params = dict(hidden_layer_sizes=(16,), learning_rate=1e-2, batch_size=32,
                  max_epochs=100, n_threads=1, random_state=0)
    params.update(kw)
    return NNRegressor(**params)


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*a, **kw)


# ---- classification -------------------------------------------------------------------------
def test_multiclass(iris):
    X, y = iris
    est = quiet(clf().fit, X, y)
    assert est.model_.loss.name == "cross_entropy" and est.model_.n_outputs == 3
    assert est.score(X, y) > 0.9
    proba = est.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    assert est.n_features_in_ == 4 and 1 <= est.n_iter_ == len(est.loss_curve_) <= 60
    assert isinstance(est.model_, nn.Sequential)


def test_binary_string_labels():
    X, y = make_classification(200, 5, random_state=0)
    labels = np.array(["no", "yes"])[y]
    est = quiet(clf().fit, X, labels)
    assert est.model_.loss.name == "bce_with_logits" and est.model_.n_outputs == 1
    assert est.classes_.tolist() == ["no", "yes"]
    assert set(est.predict(X)) <= {"no", "yes"}
    assert est.score(X, labels) > 0.85
    assert est.predict_proba(X).shape == (200, 2)


def test_multilabel():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5]).astype(int)
    est = quiet(clf(max_epochs=100).fit, X, Y)
    assert est.model_.loss.name == "bce_with_logits" and est.model_.n_outputs == 3
    assert est.classes_.tolist() == [0, 1, 2]
    pred = est.predict(X)
    assert pred.shape == (300, 3) and set(np.unique(pred)) <= {0, 1}
    assert (pred == Y).mean() > 0.9
    assert est.predict_proba(X).shape == (300, 3)
    with pytest.raises(ValueError, match="class_weight is not supported for multilabel"):
        clf(class_weight="balanced").fit(X, Y)


def test_one_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf().fit(np.ones((5, 2)), np.zeros(5))


def test_sample_weight_and_class_weight():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    # zero weight on every class-1 sample: the classifier only learns class 0
    est = quiet(clf().fit, X, y, sample_weight=(y == 0).astype(float))
    assert (est.predict(X) == 0).mean() > 0.95
    # a heavy class weight pulls the predictions towards that class
    plain = quiet(clf().fit, X, y).predict(X).mean()
    heavy = quiet(clf(class_weight={0: 1.0, 1: 50.0}).fit, X, y).predict(X).mean()
    assert heavy > plain
    balanced = quiet(clf(class_weight="balanced").fit, X, y)
    assert balanced.score(X, y) > 0.9
    with pytest.raises(ValueError, match="class_weight must be"):
        clf(class_weight="heavy").fit(X, y)


def test_weights_of_zero_equal_dropping_rows(iris):
    X, y = iris
    sw = np.ones(150)
    sw[::3] = 0
    a = quiet(clf().fit, X, y, sample_weight=sw)
    b = quiet(clf().fit, X[sw > 0], y[sw > 0])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_partial_fit(iris):
    X, y = iris
    est = clf()
    with pytest.raises(ValueError, match="classes must be passed"):
        est.partial_fit(X, y)
    est.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    assert est.classes_.tolist() == [0, 1, 2] and est.n_iter_ == 1
    steps = est.model_.optimizer.steps
    for _ in range(30):
        est.partial_fit(X, y)
    assert est.n_iter_ == 31 and len(est.loss_curve_) == 31
    assert est.model_.optimizer.steps == steps + 30 * 5  # state kept across calls
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        est.partial_fit(X[:3], [0, 1, 7])
    with pytest.raises(ValueError, match="differs from classes_"):
        est.partial_fit(X, y, classes=[0, 1])
    r = reg()
    Xr, yr = make_regression(100, 3, noise=1, random_state=0)
    for _ in range(20):
        r.partial_fit(Xr, yr / 100)
    assert r.n_iter_ == 20 and r.score(Xr, yr / 100) > 0.8


def test_early_stopping_restores_the_best_epoch(iris):
    X, y = iris
    kw = dict(early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, tol=1e-3)
    est = quiet(clf(max_epochs=300, **kw).fit, X, y)
    val = est.validation_loss_curve_
    assert len(val) == est.n_iter_ < 300
    best = val.index(est.best_loss_)  # the last epoch that improved by more than tol
    assert est.best_loss_ <= min(val) + 1e-3 and best <= est.n_iter_ - 1 - 3
    # the weights kept are the best epoch's: training stopped right there gives the same
    at_best = quiet(clf(max_epochs=best + 1, **kw).fit, X, y)
    np.testing.assert_array_equal(at_best.predict_proba(X), est.predict_proba(X))


def test_convergence_warning_and_stop_on_plateau(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="max_epochs=2"):
        clf(max_epochs=2).fit(X, y)
    est = clf(max_epochs=1000, tol=1e-2, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ < 1000


def test_random_state(iris):
    X, y = iris
    a = quiet(clf(random_state=3).fit, X, y).predict_proba(X)
    b = quiet(clf(random_state=3).fit, X, y).predict_proba(X)
    c = quiet(clf(random_state=np.random.RandomState(3)).fit, X, y).predict_proba(X)
    d = quiet(clf(random_state=None).fit, X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d)
    assert c.shape == a.shape


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes must be a tuple of positive"),
    (dict(optimizer="rmsprop"), r"optimizer must be one of \('adam', 'adamw', 'sgd'\)"),
    (dict(learning_rate=-1.0), r"learning_rate must be a number in \(0, inf\), got -1.0"),
    (dict(batch_size=0), "batch_size must be a positive integer or 'auto'"),
    (dict(dtype="float16"), "dtype must be one of"),
    (dict(validation_fraction=1.0), r"validation_fraction must be a number in \(0, 1\)"),
    (dict(n_threads=0), "n_threads must be a positive integer or None"),
])
def test_bad_parameters_name_the_argument(iris, bad, match):
    with pytest.raises(ValueError, match=match):
        clf(**bad).fit(*iris)


def test_optimizers_dropout_and_float32(iris):
    X, y = iris
    for kw in (dict(optimizer="sgd", learning_rate=0.05), dict(optimizer="adamw"),
               dict(dropout=0.2), dict(dtype="float32"),
               dict(hidden_layer_sizes=(), max_epochs=100)):
        est = quiet(clf(**kw).fit, X, y)
        assert est.score(X, y) > 0.85, kw
    assert quiet(clf(dtype="float32").fit, X, y).model_.dtype == np.float32


# ---- regression -----------------------------------------------------------------------------
def test_regression_single_and_multi_output():
    X, y = make_regression(200, 5, n_targets=2, noise=1.0, random_state=0)
    y = y / y.std(axis=0)
    est = quiet(reg().fit, X, y)
    assert est.predict(X).shape == (200, 2) and est.model_.n_outputs == 2
    assert est.score(X, y) > 0.9
    one = quiet(reg().fit, X, y[:, 0])
    assert one.predict(X).shape == (200,)
    col = quiet(reg().fit, X, y[:, :1])
    assert col.predict(X).shape == (200, 1)
    assert one.model_.loss.name == "mse"
    assert not hasattr(one, "predict_proba")


# ---- the scikit-learn ecosystem -------------------------------------------------------------
def test_pipeline_cross_val_score_and_clone(iris):
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), clf())
    scores = quiet(cross_val_score, pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    fitted = quiet(clf().fit, *iris)
    c = clone(fitted)
    assert not hasattr(c, "model_") and c.get_params() == fitted.get_params()


def test_grid_search_in_two_processes(iris):
    X, y = iris
    grid = GridSearchCV(clf(max_epochs=30), {"hidden_layer_sizes": [(8,), (16,)],
                                             "learning_rate": [1e-2, 3e-2]}, cv=2, n_jobs=2)
    quiet(grid.fit, X, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(8,), (16,)]
    assert grid.best_estimator_.score(X, y) > 0.85
    assert len(grid.cv_results_["mean_test_score"]) == 4


def test_pickle_round_trip(iris, tmp_path):
    X, y = iris
    est = quiet(clf(dropout=0.1).fit, X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.model_.get_config() == est.model_.get_config()
    # training resumes identically: same optimizer state and random streams
    est.partial_fit(X, y)
    back.partial_fit(X, y)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    r = quiet(reg().fit, X, y.astype(float))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(r)).predict(X), r.predict(X))
    # the recommended way to ship the network itself
    path = tmp_path / "m.safetensors"
    est.model_.save(path)
    np.testing.assert_array_equal(nn.load_model(path).predict(X), est.model_.predict(X))


def test_dataframe_feature_names(iris):
    pd = pytest.importorskip("pandas")  # scikit-learn reads names from real data frames only
    X, y = iris
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = quiet(clf().fit, df, y)
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert not hasattr(quiet(clf().fit, X, y), "feature_names_in_")
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(X)


def test_docstring_examples():
    import doctest
    import nncore.sklearn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = doctest.testmod(nncore.sklearn)
    assert result.attempted > 0 and result.failed == 0


def test_unfitted_and_wrong_width(iris):
    from sklearn.exceptions import NotFittedError
    X, y = iris
    with pytest.raises(NotFittedError):
        clf().predict(X)
    est = quiet(clf().fit, X, y)
    with pytest.raises(ValueError, match="X has 3 features, but NNClassifier is expecting 4"):
        est.predict(X[:, :3])


# ---- a failed call leaves the estimator as it was (issue 22, items 4 and 5) ------------------
def fitted_state(est):
    """Every fitted attribute: values (copied), the same network object with the same weights,
    optimizer state and random streams, and other objects by identity."""
    params = est.get_params(deep=False)
    out = {}
    for k, v in vars(est).items():
        if k in params:
            continue
        if isinstance(v, nn.Sequential):
            v = (id(v), v.state_dict(), v.optimizer.state_dict(), v._rng_state(),
                 id(v.history), v.history.history)
        elif isinstance(v, (np.ndarray, list, float, int, bool, tuple, type(None))):
            v = pickle.loads(pickle.dumps(v))
        else:
            v = id(v)
        out[k] = v
    return out


def fitted_attributes(est):
    """Whatever the estimator holds besides its parameters ([] when not fitted)."""
    return sorted(set(vars(est)) - set(est.get_params(deep=False)))


def diverging_regression():
    X = np.random.default_rng(0).normal(size=(200, 3))
    return X, 10 * X[:, 0]


def test_divergence_is_an_error_naming_the_learning_rate():
    # the reproducer: all-NaN predictions, n_iter_ = 11, no warning
    X, y = diverging_regression()
    for early_stopping in (False, True):  # the NaN loss stopped early / restored the best
        est = NNRegressor((16,), optimizer="sgd", learning_rate=1.0, max_epochs=200,
                          random_state=0, early_stopping=early_stopping)
        with pytest.raises(ValueError, match=r"NNRegressor: training diverged: the "
                           r"(training|validation) loss became (nan|inf) in epoch \d+ with "
                           r"optimizer='sgd' and learning_rate=1\.0\. Use a smaller "
                           r"learning_rate \(e\.g\. 0\.1\), or scale X .* and y .*\(not "
                           r"fitted\)"):
            quiet(est.fit, X, y)
        assert fitted_attributes(est) == []  # a failed first fit: still not fitted
    # the classifier too, on large inputs, binary and multiclass
    Xc, yc = load_iris(return_X_y=True)
    for labels in (yc, yc > 0):
        est = clf(optimizer="sgd", learning_rate=1.0)
        with pytest.raises(ValueError, match=r"NNClassifier: training diverged: .* "
                           r"learning_rate=1\.0\. .*scale X \(StandardScaler\)"):
            quiet(est.fit, Xc * 1e150, labels)
        assert fitted_attributes(est) == []
    # and partial_fit, on its first call
    est = reg()
    with pytest.raises(ValueError, match=r"training diverged: the training loss became inf "
                       r"in epoch 1 with optimizer='adam' and learning_rate=0\.01\..*\(not "
                       r"fitted\)"):
        est.partial_fit(X, y * 1e200)
    assert fitted_attributes(est) == []


def refit_cases():
    """(name, estimator, first fit, failing second call, error) of fit and partial_fit."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Xr, yr = diverging_regression()
    nan_X = X.copy()
    nan_X[3, 1] = np.nan

    def fit(est):
        return quiet(est.fit, X, y)

    def pfit(est):
        return est.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)

    def rfit(est):
        return quiet(est.fit, Xr, yr)

    def rpfit(est):
        return est.partial_fit(Xr, yr).partial_fit(Xr, yr)

    def with_params(call, **kw):
        return lambda est: call(est.set_params(**kw))

    def cw_fit(cw):
        return with_params(lambda e: quiet(e.fit, X, y), class_weight=cw)

    return [
        # the case: "batch_size must be at least 1, got 0" after model_ was replaced
        ("class_weight all 0", clf(), fit, cw_fit({0: 0, 1: 0, 2: 0}),
         r"NNClassifier: every sample has a weight of 0 \(from class_weight=\{0: 0, 1: 0, "
         r"2: 0\}\): nothing to train on; give at least one sample a positive weight"),
        # negative and NaN class weights silently dropped the class
        ("class_weight negative", clf(), fit, cw_fit({0: -1.0, 1: 1.0, 2: 1.0}),
         r"class_weight\[0\] must be a finite number >= 0, got -1\.0; give class 0 a weight "
         r"such as 1\.0"),
        ("class_weight nan", clf(), fit, cw_fit({0: 1.0, 1: np.nan, 2: 1.0}),
         r"class_weight\[1\] must be a finite number >= 0, got nan"),
        ("class_weight inf", clf(), fit, cw_fit({0: 1.0, 1: 1.0, 2: np.inf}),
         r"class_weight\[2\] must be a finite number >= 0, got inf"),
        ("sample_weight times class_weight all 0", clf(), fit,
         with_params(lambda e: quiet(e.fit, X, y, (y == 0) * 1.0), class_weight={0: 0}),
         r"every sample has a weight of 0 \(from sample_weight and class_weight=\{0: 0\}\)"),
        ("regressor sample_weight all 0", reg(), rfit,
         lambda e: quiet(e.fit, Xr, yr, sample_weight=np.zeros(200)),
         "Sample weights must contain at least one non-zero number"),
        # classes_ and n_features_in_ were set before this error
        ("one class, 3 features", clf(), fit, lambda e: e.fit(X[:, :3], np.zeros(150)),
         "at least 2 classes"),
        ("diverges", clf(), fit,
         with_params(lambda e: quiet(e.fit, X * 1e150, y), optimizer="sgd", learning_rate=1.0),
         r"training diverged: .*learning_rate=1\.0\. .*\(the previous fit is kept\)"),
        ("regressor diverges", reg(), rfit,
         with_params(lambda e: quiet(e.fit, Xr, yr), optimizer="sgd", learning_rate=1.0,
                     max_epochs=200),
         r"NNRegressor: training diverged: .*learning_rate=1\.0\..*previous fit is kept"),
        ("bad parameter", clf(), fit, with_params(fit, hidden_layer_sizes=(0,)),
         "hidden_layer_sizes must be"),
        ("NaN in X", clf(), fit, lambda e: e.fit(nan_X, y), "NaN"),
        # partial_fit after earlier calls: the epoch that diverges is not kept
        ("partial_fit diverges", reg(), rpfit, lambda e: e.partial_fit(Xr, yr * 1e200),
         r"training diverged: the training loss became inf in epoch 1 with "
         r"optimizer='adam' and learning_rate=0\.01\..*\(the previous fit is kept\)"),
        ("partial_fit after fit diverges", reg(), rfit, lambda e: e.partial_fit(Xr, yr * 1e200),
         r"training diverged"),
        ("partial_fit bad class_weight", clf(), pfit,
         with_params(lambda e: e.partial_fit(X, y), class_weight={0: 1, 1: -2, 2: 1}),
         r"class_weight\[1\] must be a finite number >= 0, got -2"),
        ("partial_fit other classes", clf(), pfit, lambda e: e.partial_fit(X, y, [0, 1]),
         "differs from classes_"),
    ]


@pytest.mark.parametrize("case", refit_cases(), ids=lambda c: c[0])
def test_a_failed_call_keeps_the_previous_fit(case):
    _, est, first, second, match = case
    first(est)
    before = fitted_state(est)
    assert "model_" in before and "n_iter_" in before
    Xp = np.random.default_rng(1).normal(size=(20, est.n_features_in_))
    pred = est.predict(Xp)
    with pytest.raises(ValueError, match=match):
        second(est)
    np.testing.assert_equal(fitted_state(est), before)
    np.testing.assert_array_equal(est.predict(Xp), pred)


def test_a_failed_first_partial_fit_leaves_it_unfitted(iris):
    X, y = iris
    est = clf()
    with pytest.raises(ValueError, match=r"classes must hold at least 2 classes, got \[0\]"):
        est.partial_fit(X, y, classes=[0])  # classes_ and n_features_in_ were set
    assert fitted_attributes(est) == []
    est.partial_fit(X[:, :3], y, classes=[0, 1, 2])  # a first call again: 3 features
    assert est.n_features_in_ == 3 and est.n_iter_ == 1


def test_a_failed_refit_keeps_the_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    est = quiet(clf().fit, pd.DataFrame(X, columns=["a", "b", "c", "d"]), y)
    other = pd.DataFrame(X[:, :3], columns=["x", "y", "z"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        est.fit(other, np.zeros(150))  # feature_names_in_ was replaced before the error
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"] and est.n_features_in_ == 4
    with pytest.raises(ValueError, match="at least 2 classes"):
        est.fit(X[:, :3], np.zeros(150))  # and deleted by X without names
    assert est.feature_names_in_.tolist() == ["a", "b", "c", "d"]


@pytest.mark.parametrize("dtype, scale", [
    ("float64", 2.0 ** 1020),   # the weights' sum overflowed: a NaN loss
    ("float64", 2.0 ** -1070),  # subnormal weights
    ("float32", 2.0 ** 127),    # inf in float32
    ("float32", 2.0 ** -160),   # 0 in float32
])
def test_the_scale_of_the_weights_does_not_matter(iris, dtype, scale):
    X, y = iris
    sw = np.tile([1.0, 2.0, 3.0], 50)
    a = quiet(clf(dtype=dtype).fit, X, y, sample_weight=sw)
    b = quiet(clf(dtype=dtype).fit, X, y, sample_weight=sw * scale)
    np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))
    # class weights are scaled the same way, alone and times sample_weight
    cw = {0: 1.0, 1: 2.0, 2: 4.0}
    a = quiet(clf(dtype=dtype, class_weight=cw).fit, X, y, sample_weight=sw)
    big = {k: v * scale for k, v in cw.items()}
    b = quiet(clf(dtype=dtype, class_weight=big).fit, X, y, sample_weight=sw)
    np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber", "poisson"])
def test_regressor_losses(loss):
    from nncore.sklearn import NNRegressor
    rng = np.random.default_rng(0)
    X = rng.normal(size=(301, 4))
    mean = np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1])
    y = rng.poisson(mean).astype(float) if loss == "poisson" else X @ [1.0, -2.0, 0.5, 0.0]
    reg = NNRegressor(hidden_layer_sizes=(16,), learning_rate=1e-2, max_epochs=60,
                      loss=loss, batch_norm=True, random_state=0).fit(X, y)
    nn_loss = {"squared_error": "mse", "absolute_error": "l1", "huber": "huber",
               "poisson": "poisson"}[loss]
    assert reg.model_.loss.name == nn_loss
    assert any(type(layer).__name__ == "BatchNorm" for layer in reg.model_.layers)
    pred = reg.predict(X)
    if loss == "poisson":
        assert np.all(pred > 0)  # the rate, exp of the network's output
        assert np.corrcoef(pred, mean)[0, 1] > 0.8
    else:
        assert reg.score(X, y) > 0.9


def test_loss_and_batch_norm_are_checked():
    from nncore.sklearn import NNClassifier, NNRegressor
    X, y = np.zeros((10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        NNRegressor(loss="mse").fit(X, y)
    with pytest.raises(ValueError, match="loss must be one of"):
        NNClassifier(loss="hinge").fit(X, y > 4)
    with pytest.raises(ValueError, match="batch_norm must be True or False"):
        NNRegressor(batch_norm="yes").fit(X, y)
    with pytest.raises(ValueError, match="targets >= 0"):
        NNRegressor(loss="poisson").fit(X, y - 5)
