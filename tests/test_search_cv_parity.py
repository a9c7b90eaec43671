"""TuneSearchCV scores as GridSearchCV does (1e-9), where it used not to: iterative estimators
under FIFO (issue #11, item 6), fit parameters, groups, and NaN for estimators that take it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Perceptron, SGDClassifier
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def _digits(n: int = 450) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def _assert_scores_equal(ours: Any, theirs: Any, n_splits: int) -> None:
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    keys = ["mean_test_score", "std_test_score"] + [
        f"split{i}_test_score" for i in range(n_splits)
    ]
    for key in keys:
        np.testing.assert_allclose(
            ours.cv_results_[key], theirs.cv_results_[key], rtol=0, atol=1e-9, err_msg=key
        )
    assert ours.best_params_ == theirs.best_params_


def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# Each iterative estimator with a 2-point grid and small data (HGB on a binary problem: one tree
# per iteration). Under FIFO (the default) every trial must be one plain fit per split; the old
# code trained 10 partial_fit epochs (or grew the model in 10 warm-start stages).
ITERATIVE = {
    "mlp": (
        MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0),
        {"alpha": [1e-4, 1e-2]},
        _digits,
    ),
    "sgd": (SGDClassifier(random_state=0), {"alpha": [1e-4, 1e-2]}, _digits),
    "perceptron": (Perceptron(random_state=0), {"alpha": [1e-4, 1e-2]}, _digits),
    "hgb-early-stopping": (
        HistGradientBoostingClassifier(
            max_iter=20, early_stopping=True, n_iter_no_change=2, random_state=0
        ),
        {"learning_rate": [0.1, 0.3]},
        _breast_cancer,
    ),
    "hgb-no-early-stopping": (
        HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0),
        {"learning_rate": [0.1, 0.3]},
        _breast_cancer,
    ),
    "pipeline-sgd": (
        make_pipeline(StandardScaler(), SGDClassifier(random_state=0)),
        {"sgdclassifier__alpha": [1e-4, 1e-2]},
        _digits,
    ),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", list(ITERATIVE))
def test_iterative_estimators_score_as_gridsearchcv_under_fifo(name: str, tmp_path) -> None:
    estimator, grid, load = ITERATIVE[name]
    X, y = load()
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    theirs = GridSearchCV(estimator, grid, cv=folds).fit(X, y)
    ours = TuneSearchCV(
        estimator, grid, searcher="grid", cv=folds, max_concurrent=2, storage_path=str(tmp_path)
    ).fit(X, y)
    _assert_scores_equal(ours, theirs, n_splits=3)


def test_sample_weight_reaches_every_fit_and_scorer_as_in_gridsearchcv(tmp_path) -> None:
    X, y = _breast_cancer()
    weights = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    estimator = make_pipeline(StandardScaler(), LogisticRegression())
    grid = {"logisticregression__C": [0.01, 1.0]}
    theirs = GridSearchCV(estimator, grid, cv=3).fit(
        X, y, logisticregression__sample_weight=weights
    )
    ours = TuneSearchCV(estimator, grid, searcher="grid", cv=3, storage_path=str(tmp_path)).fit(
        X, y, logisticregression__sample_weight=weights
    )
    _assert_scores_equal(ours, theirs, n_splits=3)
    # The refit got the weights too.
    np.testing.assert_allclose(
        ours.best_estimator_[-1].coef_, theirs.best_estimator_[-1].coef_, rtol=0, atol=1e-9
    )

    # sample_weight itself also weights the scores (the scorer accepts it), as in GridSearchCV.
    plain = LogisticRegression(max_iter=1000)
    grid = {"C": [0.01, 1.0]}
    theirs = GridSearchCV(plain, grid, cv=3).fit(X, y, sample_weight=weights)
    ours = TuneSearchCV(plain, grid, searcher="grid", cv=3, storage_path=str(tmp_path)).fit(
        X, y, sample_weight=weights
    )
    _assert_scores_equal(ours, theirs, n_splits=3)
    unweighted = GridSearchCV(plain, grid, cv=3).fit(X, y)
    assert not np.allclose(
        ours.cv_results_["mean_test_score"], unweighted.cv_results_["mean_test_score"]
    )


def test_groups_reach_a_group_splitter(tmp_path) -> None:
    X, y = _digits(300)
    groups = np.arange(len(y)) % 7
    estimator = LogisticRegression(max_iter=2000)
    grid = {"C": [0.01, 1.0]}
    theirs = GridSearchCV(estimator, grid, cv=GroupKFold(3)).fit(X, y, groups=groups)
    ours = TuneSearchCV(
        estimator, grid, searcher="grid", cv=GroupKFold(3), storage_path=str(tmp_path)
    ).fit(X, y, groups=groups)
    _assert_scores_equal(ours, theirs, n_splits=3)


def test_nan_goes_to_an_estimator_that_takes_it(tmp_path) -> None:
    X, y = _digits(300)
    X = X.copy()
    X[::5, 10] = np.nan
    estimator = HistGradientBoostingClassifier(max_iter=10, random_state=0)
    grid = {"max_depth": [2, 3]}
    theirs = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    ours = TuneSearchCV(estimator, grid, searcher="grid", cv=3, storage_path=str(tmp_path)).fit(
        X, y
    )
    _assert_scores_equal(ours, theirs, n_splits=3)
