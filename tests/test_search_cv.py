"""TuneSearchCV against scikit-learn's own GridSearchCV on the same grid and folds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, make_scorer, recall_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def _assert_same_search(ours, theirs):
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, abs=1e-9)
    assert ours.best_index_ == theirs.best_index_
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        if key == "params":
            assert ours.cv_results_[key] == value
        elif key.startswith("param_"):
            assert list(ours.cv_results_[key]) == list(value), key
        elif "time" in key:
            assert np.shape(ours.cv_results_[key]) == np.shape(value), key
        else:
            np.testing.assert_allclose(
                ours.cv_results_[key], value, rtol=0, atol=1e-12, err_msg=key
            )


def test_grid_matches_gridsearchcv(tmp_path):
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SVC())
    grid = {"svc__C": [0.1, 1.0, 10.0], "svc__gamma": [1e-3, 1e-2, 0.1]}
    theirs = GridSearchCV(pipe, grid, cv=5).fit(X, y)
    ours = TuneSearchCV(pipe, grid, searcher="grid", cv=5, storage_path=str(tmp_path)).fit(X, y)
    _assert_same_search(ours, theirs)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_multimetric_splitter_and_callable_scorer_match(tmp_path):
    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=2000)
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    scoring = {"acc": "accuracy", "recall": make_scorer(recall_score, average="macro")}
    cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=3)
    theirs = GridSearchCV(
        est, grid, cv=cv, scoring=scoring, refit="recall", return_train_score=True
    )
    ours = TuneSearchCV(
        est,
        grid,
        searcher="grid",
        cv=cv,
        scoring=scoring,
        refit="recall",
        return_train_score=True,
        storage_path=str(tmp_path),
    )
    _assert_same_search(ours.fit(X, y), theirs.fit(X, y))

    # An explicit iterable of splits, and a list of scorer names.
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    theirs = GridSearchCV(est, grid, cv=splits, scoring=["accuracy", "f1_macro"], refit="f1_macro")
    ours = TuneSearchCV(
        est,
        grid,
        searcher="grid",
        cv=splits,
        scoring=["accuracy", "f1_macro"],
        refit="f1_macro",
        storage_path=str(tmp_path),
    )
    _assert_same_search(ours.fit(X, y), theirs.fit(X, y))


def test_random_searcher_runs_n_trials(tmp_path):
    X, y = load_iris(return_X_y=True)
    from scipy.stats import loguniform

    balanced = make_scorer(balanced_accuracy_score)  # a single callable scorer
    search = TuneSearchCV(
        LogisticRegression(max_iter=2000),
        {"C": loguniform(1e-3, 1e2)},
        searcher="random",
        n_trials=6,
        cv=3,
        scoring=balanced,
        random_state=0,
        storage_path=str(tmp_path),
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    assert search.cv_results_["rank_test_score"].min() == 1
    assert 1e-3 <= search.best_params_["C"] <= 1e2
    assert search.best_score_ == pytest.approx(max(search.cv_results_["mean_test_score"]))
    assert search.predict(X).shape == y.shape
    assert search.score(X, y) == pytest.approx(balanced_accuracy_score(y, search.predict(X)))
