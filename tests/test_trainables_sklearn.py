"""The scikit-learn trainable in real Ray Tuners: GridSearchCV-identical scores, stages, errors,
fit parameters and data checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import FitFailedWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from trainables.data import Dataset, load_data
from trainables.sklearn_trainable import (
    SklearnTrialOptions,
    _build_scorer,
    allows_nan,
    make_sklearn_trainable,
    max_reports,
    n_stages,
    run_sklearn_trial,
)

pytestmark = pytest.mark.usefixtures("ray_local")


def _tune(fn: Any, data: Dataset, space: dict[str, Any], tmp_path: Path) -> tune.ResultGrid:
    tuner = tune.Tuner(
        tune.with_parameters(fn, data=data),
        param_space=space,
        tune_config=tune.TuneConfig(metric="mean_test_score", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="sk", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    return results


def _direct(estimator: Any, config: dict[str, Any], data: Dataset, **opts: Any) -> list[dict]:
    """Run the trainable's body without Ray, collecting its reports (for pure-logic checks)."""
    scoring = opts.pop("scoring", None)
    fit_params = opts.pop("fit_params", None)
    score_params = opts.pop("score_params", None)
    error_score = opts.get("error_score", np.nan)
    scorer, multimetric = _build_scorer(estimator, scoring, error_score)
    options = SklearnTrialOptions(scoring=scorer, multimetric=multimetric, **opts)
    reports: list[dict] = []
    run_sklearn_trial(
        estimator,
        config,
        data,
        options=options,
        report=reports.append,
        fit_params=fit_params,
        score_params=score_params,
    )
    return reports


@pytest.mark.slow
def test_scores_equal_gridsearchcv_bit_for_bit(tmp_path: Path) -> None:
    data = load_data("iris")
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(data.X, data.y))
    estimator = LogisticRegression(max_iter=300)
    scoring = ["accuracy", "neg_log_loss"]
    # C=-1 fails in fit: both sides must give error_score (NaN) for it.
    grid = [0.5, -1.0]
    fn = make_sklearn_trainable(
        estimator, cv=folds, scoring=scoring, return_train_score=True, error_score=np.nan
    )
    with pytest.warns(FitFailedWarning):  # GridSearchCV, like us, warns about C=-1
        search = GridSearchCV(
            estimator, {"C": grid}, cv=folds, scoring=scoring, refit=False, return_train_score=True
        ).fit(data.X, data.y)
    expected = search.cv_results_
    results = tune.Tuner(
        tune.with_parameters(fn, data=data),
        param_space={"C": tune.grid_search(grid)},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="sk", verbose=0),
    ).fit()
    assert not results.errors
    by_c = {r.config["C"]: r.metrics for r in results}
    keys = [
        f"{prefix}_{kind}_{name}"
        for name in scoring
        for kind in ("test", "train")
        for prefix in ("split0", "split1", "split2", "mean", "std")
    ]
    for i, c in enumerate(grid):
        for key in keys:
            np.testing.assert_array_equal(by_c[c][key], expected[key][i], err_msg=key)
        assert {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"} <= set(
            by_c[c]
        )
    assert np.isnan(by_c[-1.0]["mean_test_accuracy"])
    assert by_c[0.5]["mean_test_accuracy"] > 0.9
    # The failure reaches the driver in the result: which error, on how many splits.
    assert by_c[-1.0]["n_failed_splits"] == 3
    assert by_c[-1.0]["trial_error"].startswith("InvalidParameterError: The 'C' parameter")
    assert "trial_error" not in by_c[0.5]


@pytest.mark.slow
def test_failing_fit_fails_the_trial_by_default(tmp_path: Path) -> None:
    """error_score defaults to "raise": Ray records an error trial with the fit's own exception."""
    data = load_data("iris")
    fn = make_sklearn_trainable(LogisticRegression(max_iter=300), cv=3)
    results = tune.Tuner(
        tune.with_parameters(fn, data=data),
        param_space={"C": tune.grid_search([0.5, -1.0])},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="sk", verbose=0),
    ).fit()
    by_c = {r.config["C"]: r for r in results}
    assert by_c[0.5].error is None
    error = by_c[-1.0].error
    assert error is not None
    assert type(error.cause).__name__ == "InvalidParameterError"  # the original, unwrapped
    assert "The 'C' parameter of LogisticRegression must be" in str(error.cause)
    # The last line of Ray's error file (what the results table shows) names type and message.
    (error_file,) = Path(tmp_path, "sk").glob("*C=-1*/error.txt")
    last = error_file.read_text().strip().splitlines()[-1]
    assert "InvalidParameterError: The 'C' parameter of LogisticRegression" in last


@pytest.mark.slow
def test_staged_estimator_reports_every_stage(tmp_path: Path) -> None:
    data = load_data("breast_cancer")
    folds = list(StratifiedKFold(2, shuffle=True, random_state=0).split(data.X, data.y))
    estimator = GradientBoostingClassifier(n_estimators=12, max_depth=2, random_state=0)
    assert n_stages(estimator, 4) == 4
    fn = make_sklearn_trainable(estimator, cv=folds, max_stages=4)
    results = _tune(fn, data, {"learning_rate": tune.grid_search([0.3])}, tmp_path)
    history = results[0].metrics_dataframe
    assert history["stage"].tolist() == [1, 2, 3, 4]
    assert history["training_iteration"].tolist() == [1, 2, 3, 4]
    # Fit time accumulates as the ensemble grows (3, 6, 9, 12 trees).
    assert history["mean_fit_time"].is_monotonic_increasing
    # The last stage holds all 12 trees, so it scores as one plain fit does.
    search = GridSearchCV(estimator, {"learning_rate": [0.3]}, cv=folds).fit(data.X, data.y)
    assert history["mean_test_score"].iloc[-1] == search.cv_results_["mean_test_score"][0]


def test_partial_fit_stages_are_epochs() -> None:
    data = load_data("iris")
    estimator = SGDClassifier(max_iter=5, random_state=0)
    assert n_stages(estimator, 10) == 5
    assert n_stages(SGDClassifier(max_iter=1000), 10) == 10
    reports = _direct(estimator, {"alpha": 1e-3}, data, cv=3, max_stages=10)
    assert [r["stage"] for r in reports] == [1, 2, 3, 4, 5]
    assert all(0.0 <= r["mean_test_score"] <= 1.0 for r in reports)
    # max_stages=1 turns staging off: one plain fit, exactly GridSearchCV's score.
    folds = list(StratifiedKFold(3).split(data.X, data.y))
    (single,) = _direct(estimator, {"alpha": 1e-3}, data, cv=folds, max_stages=1)
    search = GridSearchCV(estimator, {"alpha": [1e-3]}, cv=folds).fit(data.X, data.y)
    assert single["mean_test_score"] == search.cv_results_["mean_test_score"][0]
    # staged=False (FIFO) does the same whatever max_stages says: one plain fit.
    (unstaged,) = _direct(estimator, {"alpha": 1e-3}, data, cv=folds, staged=False)
    assert unstaged["mean_test_score"] == search.cv_results_["mean_test_score"][0]
    assert n_stages(estimator, 10, staged=False) == 1


def test_staging_rules() -> None:
    assert n_stages(RandomForestClassifier(n_estimators=7), 10) == 7
    assert n_stages(LogisticRegression(max_iter=1000), 10) == 1  # solver iterations: not staged
    assert n_stages(DecisionTreeClassifier(), 10) == 1
    forest = RandomForestClassifier(n_estimators=7)
    assert max_reports(forest, ["max_depth"], 10) == 7
    assert max_reports(forest, ["n_estimators"], 10) == 10  # searched: bounded by max_stages
    assert max_reports(forest, ["n_estimators"], 10, staged=False) == 1
    pipe = make_pipeline(StandardScaler(), SGDClassifier(max_iter=5))
    assert max_reports(pipe, ["sgdclassifier__max_iter"], 4) == 1  # a Pipeline is never staged


def test_fit_params_are_split_per_fold_as_gridsearchcv_does() -> None:
    data = load_data("breast_cancer")
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(data.X, data.y))
    weights = np.random.default_rng(0).uniform(0.1, 3.0, data.n_samples)
    estimator = LogisticRegression(max_iter=3000)
    search = GridSearchCV(estimator, {"C": [0.05]}, cv=folds).fit(
        data.X, data.y, sample_weight=weights
    )
    # GridSearchCV also weights the scores (its scorer accepts sample_weight).
    weighted = {"sample_weight": weights}
    (report,) = _direct(
        estimator, {"C": 0.05}, data, cv=folds, fit_params=weighted, score_params=weighted
    )
    for i in range(3):
        key = f"split{i}_test_score"
        assert report[key] == pytest.approx(search.cv_results_[key][0], abs=1e-12)
    (unweighted,) = _direct(estimator, {"C": 0.05}, data, cv=folds)
    assert unweighted["mean_test_score"] != report["mean_test_score"]  # the weights did act
    with pytest.raises(ValueError, match="need explicit cross-validation splits"):
        _direct(estimator, {}, data, fit_params={"sample_weight": weights})


def test_nan_refused_before_any_trial_unless_the_estimator_takes_it() -> None:
    X, y = load_data("iris").X.copy(), load_data("iris").y
    X[7, 2] = np.nan
    data = load_data((X, y))
    assert not allows_nan(SVC())
    assert allows_nan(HistGradientBoostingClassifier())
    assert allows_nan(make_pipeline(SimpleImputer(), SVC()))  # the first step decides
    assert not allows_nan(make_pipeline(PolynomialFeatures(), SVC()))
    with pytest.raises(ValueError, match="column 2 \\(1 NaN\\)"):
        make_sklearn_trainable(SVC(), cv=3, data=data)
    make_sklearn_trainable(HistGradientBoostingClassifier(), cv=3, data=data)
    make_sklearn_trainable(make_pipeline(SimpleImputer(), SVC()), cv=3, data=data)
    # Inf is refused even for an estimator that takes NaN.
    X[3, 0] = np.inf
    with pytest.raises(ValueError, match="column 0 \\(1 inf\\)"):
        make_sklearn_trainable(HistGradientBoostingClassifier(), cv=3, data=load_data((X, y)))
    # Without data given up front, the trial itself refuses it.
    with pytest.raises(ValueError, match="column 2"):
        _direct(SVC(), {}, data, cv=3)


def test_holdout_split_and_single_scorer_named_score() -> None:
    data = load_data("wine")
    tree = DecisionTreeClassifier(random_state=0)
    (report,) = _direct(tree, {"max_depth": 2}, data, scoring="balanced_accuracy")
    fitted = DecisionTreeClassifier(random_state=0, max_depth=2).fit(data.X_train, data.y_train)
    from sklearn.metrics import balanced_accuracy_score

    expected = balanced_accuracy_score(data.y_val, fitted.predict(data.X_val))
    assert report["split0_test_score"] == report["mean_test_score"] == expected
    assert report["std_test_score"] == 0.0
    assert "split1_test_score" not in report


def test_error_score_and_raise() -> None:
    data = load_data("iris")
    with pytest.warns(FitFailedWarning, match="Fitting failed"):
        reports = _direct(LogisticRegression(), {"C": -1.0}, data, cv=2, error_score=-5.0)
    assert len(reports) == 1
    assert reports[0]["split0_test_score"] == reports[0]["mean_test_score"] == -5.0
    assert reports[0]["n_failed_splits"] == 2
    assert reports[0]["trial_error"].startswith("InvalidParameterError: The 'C' parameter")
    with pytest.raises(ValueError, match="C"):
        _direct(LogisticRegression(), {"C": -1.0}, data, cv=2, error_score="raise")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="error_score"):
        make_sklearn_trainable(LogisticRegression(), error_score="ignore")
    with pytest.raises(ValueError, match="cv must be at least 2"):
        make_sklearn_trainable(LogisticRegression(), cv=1)
    with pytest.raises(ValueError, match="max_stages"):
        make_sklearn_trainable(LogisticRegression(), max_stages=0)
    with pytest.raises(TypeError, match="scikit-learn estimator"):
        make_sklearn_trainable(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cv split 0"):
        _direct(LogisticRegression(), {}, load_data("iris"), cv=[(np.arange(10), np.arange(500))])
