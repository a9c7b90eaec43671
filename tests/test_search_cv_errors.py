"""Failures show in TuneSearchCV as they do in GridSearchCV (issue #11, item 3): a failing fit is
scored error_score with scikit-learn's FitFailedWarning on the driver, or raises its own exception
with error_score="raise"; data the estimator cannot take is refused before any trial."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ray import cloudpickle
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


class FragileClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; its fit raises for ``strength`` above ``limit``."""

    def __init__(self, strength: float = 1.0, limit: float = 2.0) -> None:
        self.strength = strength
        self.limit = limit

    def fit(self, X: Any, y: Any) -> FragileClassifier:
        if self.strength > self.limit:
            raise ValueError(f"strength={self.strength} is above the limit {self.limit}")
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.majority_)


@pytest.fixture(autouse=True)
def _ship_this_module_to_workers() -> Iterator[None]:
    # Ray workers cannot import a test module by name; send FragileClassifier by value.
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def _data() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X[:120], y[:120]  # 3 folds of unequal class counts: different majority scores


def _fit_failure_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, FitFailedWarning)]


def test_failing_fits_warn_on_the_driver_as_in_gridsearchcv(tmp_path) -> None:
    X, y = _data()
    grid = {"strength": [1.0, 3.0, 2.0, 5.0]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = GridSearchCV(FragileClassifier(), grid, cv=3).fit(X, y)
    (expected,) = _fit_failure_warnings(caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = TuneSearchCV(
            FragileClassifier(), grid, searcher="grid", cv=3, storage_path=str(tmp_path)
        ).fit(X, y)
    (message,) = _fit_failure_warnings(caught)
    # The same head as scikit-learn's: counts and the score they get.
    head = expected.split("Below are more details")[0]
    assert head.startswith("\n6 fits failed out of a total of 12.")
    assert message.split("Below are more details")[0] == head
    # Each error named with its type and text, counted per distinct error.
    assert "3 fits failed with the following error:\nValueError: strength=3.0 is above" in message
    assert "3 fits failed with the following error:\nValueError: strength=5.0 is above" in message
    np.testing.assert_array_equal(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert np.isnan(ours.cv_results_["mean_test_score"][[1, 3]]).all()
    assert ours.best_params_ == theirs.best_params_


def test_error_score_raise_raises_the_fits_own_error(tmp_path) -> None:
    X, y = _data()
    grid = {"strength": [1.0, 3.0]}
    message = "^strength=3.0 is above the limit 2.0$"
    with pytest.raises(ValueError, match=message) as theirs:
        GridSearchCV(FragileClassifier(), grid, cv=3, error_score="raise").fit(X, y)
    with pytest.raises(ValueError, match=message) as ours:
        TuneSearchCV(
            FragileClassifier(),
            grid,
            searcher="grid",
            cv=3,
            error_score="raise",
            storage_path=str(tmp_path),
        ).fit(X, y)
    assert type(ours.value) is type(theirs.value) is ValueError


def test_all_fits_failing_raises_as_in_gridsearchcv(tmp_path) -> None:
    X, y = _data()
    grid = {"strength": [3.0, 4.0]}
    with pytest.raises(ValueError, match="All the 6 fits failed"):
        GridSearchCV(FragileClassifier(), grid, cv=3).fit(X, y)
    with pytest.raises(ValueError, match="All the 6 fits failed") as ours:
        TuneSearchCV(
            FragileClassifier(), grid, searcher="grid", cv=3, storage_path=str(tmp_path)
        ).fit(X, y)
    assert "ValueError: strength=4.0 is above the limit" in str(ours.value)


def test_nan_refused_before_any_trial_naming_the_column(tmp_path) -> None:
    X, y = _data()
    frame = pd.DataFrame(X, columns=["sepal_length", "sepal_width", "petal_length", "width"])
    frame.loc[4, "petal_length"] = np.nan
    search = TuneSearchCV(SVC(), {"C": [1.0]}, searcher="grid", cv=3, storage_path=str(tmp_path))
    with pytest.raises(ValueError, match="column 'petal_length' \\(1 NaN\\)"):
        search.fit(frame, y)
    raw = X.copy()
    raw[9, 1] = np.inf
    with pytest.raises(ValueError, match="column 1 \\(1 inf\\)"):
        search.fit(raw, y)
    assert list(tmp_path.iterdir()) == []  # no experiment was started
