"""Ray Tune function trainables for scikit-learn estimators, scored exactly as GridSearchCV does.

One trial evaluates one configuration: for every split, ``clone(estimator).set_params(**config)``
is fitted on ``X[train], y[train]`` and scored with the scorer(s) on ``X[test], y[test]``, the same
steps `sklearn.model_selection.GridSearchCV` takes for a candidate, so the reported split scores,
means and standard deviations equal its ``cv_results_`` bit for bit (for non-staged fits).

Reported keys (``<name>`` is "score" for a single scorer, otherwise each scorer's name), with
``n_splits`` splits and ``i`` in ``0..n_splits-1``:

- ``split{i}_test_<name>``, ``mean_test_<name>``, ``std_test_<name>``
  (and ``split{i}_train_<name>``, ``mean_train_<name>``, ``std_train_<name>`` with
  ``return_train_score=True``);
- ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``, ``std_score_time`` (seconds; the fit
  time of a stage is cumulative over the stages so far);
- ``stage``: 1-based index of the report (also Ray's ``training_iteration``).

Splits: ``cv=None`` uses the Dataset's hold-out split (one split: train on ``X_train``, score on
``X_val``); an int, a splitter or an explicit list of ``(train_idx, test_idx)`` splits ``Dataset.X,
Dataset.y`` (``check_cv(cv, y, classifier=is_classifier(estimator))`` as GridSearchCV does; pass a
materialized list so every trial sees identical folds even with a shuffling splitter).

Staging, so that ASHA/Hyperband can stop poor trials early. It is asked for with ``staged=True``
and only then happens, because a staged trial does not score as GridSearchCV does for every
estimator (``partial_fit`` epochs are not ``fit``): pass ``staged=False`` whenever no scheduler
acts on intermediate reports (FIFO). ``S = n_stages(estimator, max_stages)`` reports per trial;
all splits advance in lockstep and each report holds the mean over splits:

1. ``warm_start`` + ``n_estimators`` (GradientBoosting*, RandomForest*, ExtraTrees*, Bagging*):
   ``S = min(n_estimators, max_stages)``; stage ``k`` refits with ``warm_start=True`` and
   ``n_estimators = ceil(n_estimators * k / S)``, so the last stage holds exactly the configured
   number of estimators (growing a forest or boosting this way gives the same model as one fit).
2. HistGradientBoosting* (``warm_start`` + ``max_iter``): the same with ``max_iter``.
3. ``partial_fit`` + ``max_iter`` (SGDClassifier/Regressor, Perceptron, PassiveAggressive*,
   MLPClassifier/Regressor): ``S = min(max_iter, max_stages)``; stage ``k`` is one more
   ``partial_fit`` pass (one epoch) over the training split, with ``classes`` for classifiers. The
   configured ``max_iter`` thus caps the number of epochs, and ``max_stages`` caps it again: a
   trial of an ``SGDClassifier(max_iter=1000)`` with ``max_stages=10`` trains 10 epochs. These
   scores differ from GridSearchCV's, which calls ``fit`` (its own epoch loop and stopping rule):
   MLPClassifier on 3-fold digits scored 0.167 after 10 epochs against 0.792 with ``fit``
   (issue #11, item 6).
4. Anything else, ``staged=False``, or whenever ``S`` is 1 (e.g. ``max_stages=1``): one plain
   ``fit``, one report, exactly GridSearchCV's score.

An estimator without a ``max_iter`` parameter is not staged through ``partial_fit`` (repeated
passes of e.g. naive Bayes count the data twice). A configuration that searches ``n_estimators`` or
``max_iter`` makes ``S`` vary per trial; `max_reports` gives the bound for a space.

Fit and score parameters (``fit_params``, ``score_params`` of the trainable, e.g.
``sample_weight``) are split per fold as GridSearchCV splits them: an array-like as long as
``Dataset.X`` is indexed with the fold's train (fit, train scores) or test (test scores) indices,
anything else is passed as is. They need explicit splits (``cv`` not None).

Data: NaN/inf the estimator cannot take (scikit-learn's ``allow_nan`` tag, `allows_nan`) is
refused with a ValueError naming the column, by `check_sklearn_data`: before any trial when
`make_sklearn_trainable` is given the Dataset, else at the start of each trial.

Failures (scikit-learn's ``_fit_and_score`` rules): with ``error_score="raise"`` (the default
here) a failing fit raises its own exception, so Ray records the trial as an error with the
traceback. With a number, a failed split scores ``error_score`` for every scorer from then on, and
each report from then on carries ``n_failed_splits`` and ``trial_error`` (``"ExceptionType:
message"`` of the first split that failed), so the driver sees what went wrong (worker warnings
do not reach it). A failing scorer follows sklearn's ``_score`` rules. When every split has
failed, the trial reports once and ends.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from traceback import format_exc
from typing import Any

import numpy as np
from ray import tune
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import check_scoring
from sklearn.metrics._scorer import _check_multimetric_scoring, _MultimetricScorer
from sklearn.model_selection import check_cv
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import _safe_split
from sklearn.utils.validation import _check_method_params, _num_samples

from searchers.validation import (
    BOOL,
    InstanceOf,
    Interval,
    InvalidParameterError,
    Options,
    check,
    is_integer,
)
from trainables.data import Dataset, check_finite

Splits = list[tuple[np.ndarray, np.ndarray]]

# The parameters whose value is a trial's number of stages when it is staged (see the module
# docstring); a space that searches one of them makes the count vary per trial.
STAGE_PARAMS = ("n_estimators", "max_iter")


@dataclass(frozen=True)
class SklearnTrialOptions:
    """How a scikit-learn trial splits, scores and stages (see `make_sklearn_trainable`).

    Attributes:
        cv: None (hold-out split), an int (number of folds), a splitter, or a list of
            ``(train_idx, test_idx)`` index arrays into ``Dataset.X``.
        scoring: the validated scorer: a callable (single or dict-returning) or a
            `_MultimetricScorer` (as GridSearchCV builds it).
        multimetric: True when `scoring` was given as a list, tuple or dict.
        error_score: the score of a failed split, or "raise" (re-raise the fit's exception).
        return_train_score: also score the training split.
        max_stages: upper bound on the number of reports of a staged estimator.
        staged: stage iterative estimators (only useful to a scheduler that stops trials early).
        data_checked: the Dataset was checked by `check_sklearn_data` before the run, so the
            trials need not check it again.
    """

    cv: Any = None
    scoring: Callable[..., Any] | None = None
    multimetric: bool = False
    error_score: float | str = "raise"
    return_train_score: bool = False
    max_stages: int = 10
    staged: bool = True
    data_checked: bool = False


def estimator_params(config: Mapping[str, Any], estimator: Any) -> dict[str, Any]:
    """``set_params`` arguments of a trial's config (cloned, as GridSearchCV does).

    A conditional choice between sub-spaces gives a dict under a key that is not a parameter
    (``{"kernel_choice": {"kernel": "poly", "degree": 3}}``): its items are the parameters.
    """
    valid = set(estimator.get_params(deep=True))
    params: dict[str, Any] = {}

    def merge(items: Mapping[str, Any]) -> None:
        for key, value in items.items():
            if isinstance(value, Mapping) and key not in valid:
                merge(value)
            else:
                params[key] = value

    merge(config)
    return clone(params, safe=False)


def make_sklearn_trainable(
    estimator: BaseEstimator,
    *,
    cv: Any = None,
    scoring: Any = None,
    error_score: float | str = "raise",
    return_train_score: bool = False,
    max_stages: int = 10,
    staged: bool = True,
    data: Dataset | None = None,
) -> Callable[..., None]:
    """Build a Ray Tune function trainable ``fn(config, data)`` that cross-validates `estimator`.

    Args:
        estimator: an unfitted scikit-learn estimator; each trial fits
            ``clone(estimator).set_params(**config)``, so config keys are estimator parameters
            (``"clf__C"`` for a pipeline step).
        cv: None (the Dataset's hold-out split), an int >= 2, a splitter with ``split`` and
            ``get_n_splits``, or an iterable of ``(train_idx, test_idx)`` (materialized here).
        scoring: None (``estimator.score``), a scorer name, a callable scorer
            ``scorer(estimator, X, y)``, a list/tuple of names, or a dict name -> scorer;
            the same meanings as in GridSearchCV.
        error_score: "raise" (default): a failing fit fails the trial with its own exception.
            A number: the score of a split whose fit fails, as in GridSearchCV, with the error
            reported as ``trial_error`` (see the module docstring).
        return_train_score: also report training-split scores.
        max_stages: the most reports a staged estimator makes (see the module docstring).
        staged: report per stage (``warm_start``/``partial_fit``) so that a scheduler can stop
            the trial early. Pass False under FIFO: every trial is then one plain ``fit`` per
            split, scored exactly as GridSearchCV scores it.
        data: the Dataset the trials will get; given, it is checked here (`check_sklearn_data`),
            so data the estimator cannot take is refused before any trial starts.

    Returns:
        ``fn(config, data, fit_params=None, score_params=None, *, report=None)``: pass it to
        ``tune.with_parameters(fn, data=dataset)`` (add ``fit_params={"sample_weight": w}`` to
        route fit parameters, split per fold as GridSearchCV does; ``score_params`` likewise go
        to the scorer). ``report`` replaces ``ray.tune.report`` to run a trial outside Tune.

    Raises:
        TypeError / ValueError: an estimator without ``fit``, a bad `cv`, `scoring`,
            `error_score` or `max_stages`, or `data` with NaN/inf the estimator cannot take; the
            message names the argument (or column) and the fix.
    """
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise InvalidParameterError(
            f"estimator must be a scikit-learn estimator (with fit and get_params); "
            f"got {type(estimator).__name__}."
        )
    check("error_score", error_score, InstanceOf(numbers.Real, "a number"), Options({"raise"}))
    check("max_stages", max_stages, Interval(int, 1, None))
    check("staged", staged, BOOL)
    if data is not None:
        check_sklearn_data(estimator, data)
    scorer, multimetric = _build_scorer(estimator, scoring, error_score)
    options = SklearnTrialOptions(
        cv=check_cv_arg(cv),
        scoring=scorer,
        multimetric=multimetric,
        error_score=error_score,
        return_train_score=bool(return_train_score),
        max_stages=int(max_stages),
        staged=staged,
        data_checked=data is not None,
    )
    base = clone(estimator)

    def sklearn_trainable(
        config: dict[str, Any],
        data: Dataset,
        fit_params: Mapping[str, Any] | None = None,
        score_params: Mapping[str, Any] | None = None,
        *,
        report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        run_sklearn_trial(
            base,
            dict(config),
            data,
            options=options,
            # Inside a Tune trial: tune.report. TuneSearchCV's FIFO path runs the same body in a
            # plain Ray task and collects the reports itself.
            report=tune.report if report is None else report,
            fit_params=fit_params,
            score_params=score_params,
        )

    sklearn_trainable.__name__ = f"sklearn_{type(estimator).__name__}"
    sklearn_trainable.__qualname__ = sklearn_trainable.__name__
    return sklearn_trainable


def n_stages(estimator: BaseEstimator, max_stages: int, *, staged: bool = True) -> int:
    """How many reports a trial of this (configured) estimator makes; use it as ASHA's ``max_t``.

    1 when not `staged`. For a search space over ``n_estimators``/``max_iter`` the count varies
    per trial: `max_reports` bounds all of them.

    Args:
        estimator: the configured estimator a trial fits.
        max_stages: the most reports a staged trial makes.
        staged: False when the trial fits once (no scheduler stops it early).
    """
    return len(_plan_stages(estimator, max_stages, staged=staged).targets)


def max_reports(
    estimator: BaseEstimator,
    space: Iterable[str],
    max_stages: int,
    *,
    staged: bool = True,
) -> int:
    """The most reports any trial over `space` (its parameter names) makes: the scheduler's max_t.

    When the space searches a stage parameter (``n_estimators``, ``max_iter``, also inside a
    pipeline step), the count is taken at a large value of it, so no trial exceeds it.
    """
    searched = [key for key in space if key.rsplit("__", 1)[-1] in STAGE_PARAMS]
    if not searched or not staged:
        return n_stages(estimator, max_stages, staged=staged)
    probe = clone(estimator).set_params(**dict.fromkeys(searched, 10**6))
    return n_stages(probe, max_stages, staged=staged)


def allows_nan(estimator: Any) -> bool:
    """Whether `estimator` takes NaN in X: scikit-learn's ``input_tags.allow_nan``.

    A Pipeline follows its first step (an imputer there makes NaN fine whatever comes after;
    scikit-learn's own Pipeline tag is always False), and a ColumnTransformer or FeatureUnion
    takes NaN when every one of its transformers does ("passthrough" hands the NaN on, like a
    first step that lets NaN through). A NaN that a later step cannot take then fails its fit,
    which is reported as any failing fit is.
    """
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps:
        first = next((s for _, s in steps if s is not None and s != "passthrough"), None)
        return True if first is None else allows_nan(first)
    parts = getattr(estimator, "transformers", None) or getattr(
        estimator, "transformer_list", None
    )
    if isinstance(parts, list) and parts:
        used = [part[1] for part in parts if part[1] not in ("drop", "passthrough", None)]
        return all(allows_nan(part) for part in used)
    return bool(get_tags(estimator).input_tags.allow_nan)


def check_sklearn_data(estimator: Any, data: Dataset) -> None:
    """Refuse NaN/inf in `data` that `estimator` cannot take (ValueError naming the column).

    Inf is always refused, NaN unless `allows_nan(estimator)`; y is always checked
    (`trainables.data.check_finite`).
    """
    if not isinstance(data, Dataset):
        raise InvalidParameterError(
            f"data must be a trainables.data.Dataset (build it with load_data); "
            f"got {type(data).__name__}."
        )
    check_finite(_as_arrays(data), allow_nan=allows_nan(estimator))


def _as_arrays(data: Dataset) -> Dataset:
    """`data` with lists of rows as numpy arrays, as check_finite takes them (TuneSearchCV passes
    the caller's X as given, and scikit-learn accepts lists); an array or DataFrame is kept."""
    converted: dict[Any, Any] = {}

    def array(value: Any) -> Any:
        if value is None or hasattr(value, "shape"):
            return value
        if id(value) not in converted:  # the same list stays one array: "the data" in messages
            converted[id(value)] = np.asarray(value)
        return converted[id(value)]

    fields = ("X", "y", "X_train", "y_train", "X_val", "y_val")
    if all(
        getattr(data, name) is None or hasattr(getattr(data, name), "shape") for name in fields
    ):
        return data
    return replace(data, **{name: array(getattr(data, name)) for name in fields})


def run_sklearn_trial(
    estimator: BaseEstimator,
    config: dict[str, Any],
    data: Dataset,
    *,
    options: SklearnTrialOptions,
    report: Callable[[dict[str, Any]], None],
    fit_params: Mapping[str, Any] | None = None,
    score_params: Mapping[str, Any] | None = None,
) -> None:
    """Fit and score one configuration on every split, calling ``report(metrics)`` per stage.

    The body of the trainable; `report` is ``ray.tune.report`` inside a trial.
    """
    if not options.data_checked:
        check_sklearn_data(estimator, data)
    fit_params, score_params = dict(fit_params or {}), dict(score_params or {})
    if options.cv is None and (fit_params or score_params):
        raise InvalidParameterError(
            f"fit parameters {sorted(fit_params) + sorted(score_params)} need explicit "
            "cross-validation splits to be split by (cv=int, a splitter or a list of splits); "
            "cv=None scores a hold-out split whose row indices are not known here."
        )
    folds = list(_iter_folds(estimator, data, options.cv, fit_params, score_params))
    # GridSearchCV clones per split, then sets cloned parameters (parameters may be estimators).
    for fold in folds:
        fold.estimator = clone(estimator).set_params(**estimator_params(config, estimator))
    plan = _plan_stages(folds[0].estimator, options.max_stages, staged=options.staged)
    classes = np.unique(data.y) if is_classifier(estimator) else None
    names: list[str] | None = _scorer_names(options)
    for stage, target in enumerate(plan.targets, start=1):
        for fold in folds:
            _advance(fold, plan, target, classes, options, stage)
        names = names or _names_from_folds(folds)
        report(_aggregate(folds, names, options.return_train_score, stage))
        if all(fold.failed for fold in folds):
            return


# ----------------------------------------------------------------------------------- helpers


@dataclass
class _Fold:
    """One split's data and its estimator's progress across stages."""

    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    fit_params: dict[str, Any] = field(default_factory=dict)
    score_params_train: dict[str, Any] = field(default_factory=dict)
    score_params_test: dict[str, Any] = field(default_factory=dict)
    estimator: Any = None
    failed: bool = False
    failed_stage: int = 0
    error: str = ""  # "ExceptionType: message" of the failed fit
    fit_time: float = 0.0  # cumulative over stages, as a single fit would measure it
    score_time: float = 0.0
    test_scores: dict[str, float] | float = field(default_factory=dict)
    train_scores: dict[str, float] | float = field(default_factory=dict)


@dataclass(frozen=True)
class _StagePlan:
    """``kind`` is "fit" (one plain fit), "warm_start" (grow `param`) or "partial_fit"."""

    kind: str
    param: str | None
    targets: list[int]


_ONE_FIT = _StagePlan("fit", None, [1])


def _plan_stages(estimator: BaseEstimator, max_stages: int, *, staged: bool) -> _StagePlan:
    if not staged:
        return _ONE_FIT
    params = estimator.get_params(deep=False)
    param: str | None = None
    kind = "fit"
    if "warm_start" in params and _is_count(params.get("n_estimators")):
        kind, param = "warm_start", "n_estimators"
    elif "warm_start" in params and _is_hist_gradient_boosting(estimator):
        kind, param = "warm_start", "max_iter"
    elif hasattr(estimator, "partial_fit") and _is_count(params.get("max_iter")):
        kind = "partial_fit"
    if kind == "fit":
        return _ONE_FIT
    total = int(params["max_iter" if param is None else param])
    n = min(total, max_stages)
    if n <= 1:
        return _ONE_FIT
    if kind == "partial_fit":
        return _StagePlan(kind, None, list(range(1, n + 1)))
    return _StagePlan(kind, param, [math.ceil(total * k / n) for k in range(1, n + 1)])


def _is_count(value: Any) -> bool:
    return is_integer(value) and int(value) >= 1


def _is_hist_gradient_boosting(estimator: BaseEstimator) -> bool:
    # max_iter of other warm_start estimators (LogisticRegression, MLP) counts solver iterations
    # per fit call, not cumulative model size, so only HGB's is a stage count.
    return any(cls.__name__ == "BaseHistGradientBoosting" for cls in type(estimator).__mro__)


def _advance(
    fold: _Fold,
    plan: _StagePlan,
    target: int,
    classes: np.ndarray | None,
    options: SklearnTrialOptions,
    stage: int,
) -> None:
    """Fit `fold` up to `target` and score it; a failed fold keeps its error scores."""
    if fold.failed:
        return
    est = fold.estimator
    start = time.time()
    try:
        if plan.kind == "fit":
            est.fit(fold.X_train, fold.y_train, **fold.fit_params)
        elif plan.kind == "warm_start" and plan.param is not None:
            est.set_params(warm_start=True, **{plan.param: target})
            est.fit(fold.X_train, fold.y_train, **fold.fit_params)
        elif target == 1 and classes is not None:
            est.partial_fit(fold.X_train, fold.y_train, classes=classes, **fold.fit_params)
        else:
            est.partial_fit(fold.X_train, fold.y_train, **fold.fit_params)
    except Exception as exc:
        # Mirrors sklearn's _fit_and_score: any fit error becomes error_score unless "raise".
        fold.fit_time += time.time() - start
        if options.error_score == "raise":
            raise
        fold.failed = True
        fold.failed_stage = stage
        fold.error = f"{type(exc).__name__}: {exc}"
        fold.score_time = 0.0
        fold.test_scores = _error_scores(options)
        fold.train_scores = _error_scores(options)
        warnings.warn(
            f"Fitting failed; the scores of this split are set to {options.error_score}. "
            f"Details:\n{format_exc()}",
            FitFailedWarning,
            stacklevel=2,
        )
        return
    fit_end = time.time()
    fold.fit_time += fit_end - start
    fold.test_scores = _score(est, fold.X_test, fold.y_test, fold.score_params_test, options)
    fold.score_time = time.time() - fit_end
    if options.return_train_score:
        fold.train_scores = _score(
            est, fold.X_train, fold.y_train, fold.score_params_train, options
        )


def _score(
    est: Any, X: Any, y: Any, params: dict[str, Any], options: SklearnTrialOptions
) -> dict[str, float] | float:
    """Score like sklearn's ``_score``: a float, or a dict for multi-metric scoring."""
    scorer: Any = options.scoring
    error_score = options.error_score
    try:
        scores = scorer(est, X, y, **params)
    except Exception:
        # A _MultimetricScorer only raises when error_score == "raise" (it returns messages else).
        if isinstance(scorer, _MultimetricScorer) or error_score == "raise":
            raise
        warnings.warn(
            f"Scoring failed; the score of this split is set to {error_score}. "
            f"Details:\n{format_exc()}",
            UserWarning,
            stacklevel=2,
        )
        return error_score  # type: ignore[return-value]
    if isinstance(scores, dict):
        out: dict[str, float] = {}
        for name, value in scores.items():
            if isinstance(value, str):  # the multimetric scorer's formatted exception
                warnings.warn(
                    f"Scoring {name!r} failed; it is set to {error_score}. Details:\n{value}",
                    UserWarning,
                    stacklevel=2,
                )
                value = error_score
            out[name] = _as_number(value, name)
        return out
    return _as_number(scores, scorer)


def _as_number(value: Any, scorer: Any) -> float:
    if hasattr(value, "item"):
        with contextlib.suppress(ValueError):  # .item() of a larger array: fails the check below
            value = value.item()  # numpy scalars and 0-d arrays
    if not isinstance(value, numbers.Number):
        raise InvalidParameterError(
            f"scoring must return a number, got {value!r} ({type(value).__name__}) instead "
            f"(scorer={scorer})."
        )
    return value  # type: ignore[return-value]


def _error_scores(options: SklearnTrialOptions) -> dict[str, float] | float:
    if isinstance(options.scoring, _MultimetricScorer):
        return {name: options.error_score for name in options.scoring._scorers}  # type: ignore[misc]
    return options.error_score  # type: ignore[return-value]


def _scorer_names(options: SklearnTrialOptions) -> list[str] | None:
    """Names known before scoring; None for a callable that may return a dict."""
    if isinstance(options.scoring, _MultimetricScorer):
        return list(options.scoring._scorers)
    return None


def _names_from_folds(folds: list[_Fold]) -> list[str] | None:
    for fold in folds:
        if not fold.failed:
            scores = fold.test_scores
            return list(scores) if isinstance(scores, dict) else ["score"]
    return None  # every split failed before a dict-returning callable could name its metrics


def _aggregate(
    folds: list[_Fold], names: list[str] | None, return_train_score: bool, stage: int
) -> dict[str, Any]:
    names = names or ["score"]
    metrics: dict[str, Any] = {}
    kinds = ("test", "train") if return_train_score else ("test",)
    for name in names:
        for kind in kinds:
            values = [_pick(getattr(fold, f"{kind}_scores"), name) for fold in folds]
            metrics.update(_summarize(f"{kind}_{name}", values, splits=True))
    metrics.update(_summarize("fit_time", [fold.fit_time for fold in folds], splits=False))
    metrics.update(_summarize("score_time", [fold.score_time for fold in folds], splits=False))
    metrics["stage"] = stage
    failed = [fold for fold in folds if fold.failed]
    if failed:
        # The driver sees no worker warning: the error travels in the result (issue #11).
        first = min(failed, key=lambda fold: fold.failed_stage)  # min keeps split order on ties
        metrics["n_failed_splits"] = len(failed)
        metrics["trial_error"] = first.error
    return metrics


def _pick(scores: dict[str, float] | float, name: str) -> float:
    # A failed split holds a scalar error_score even when the scorer returns dicts.
    return scores[name] if isinstance(scores, dict) else scores


def _summarize(key: str, values: list[float], *, splits: bool) -> dict[str, float]:
    """``mean_<key>``, ``std_<key>`` (and ``split{i}_<key>``) as GridSearchCV computes them."""
    array = np.asarray(values, dtype=np.float64)  # (n_splits,)
    out: dict[str, float] = {}
    if splits:
        for i, value in enumerate(array):
            out[f"split{i}_{key}"] = float(value)
    # GridSearchCV's `_store`: np.average and the square root of the mean squared deviation,
    # which is what keeps the reported numbers identical to its cv_results_.
    mean = np.average(array)
    out[f"mean_{key}"] = float(mean)
    out[f"std_{key}"] = float(np.sqrt(np.average((array - mean) ** 2)))
    return out


def _build_scorer(estimator: BaseEstimator, scoring: Any, error_score: Any) -> tuple[Any, bool]:
    """Validate `scoring` the way GridSearchCV's ``_get_scorers`` does."""
    if callable(scoring):
        return scoring, False
    if scoring is None or isinstance(scoring, str):
        _check_scorer_names([scoring] if scoring else [])
        return check_scoring(estimator, scoring), False
    if isinstance(scoring, (list, tuple, set, Mapping)):
        if not isinstance(scoring, Mapping):  # a dict's values are scorers, its keys any name
            _check_scorer_names(list(scoring))
        scorers = _check_multimetric_scoring(estimator, scoring)
        return _MultimetricScorer(scorers=scorers, raise_exc=(error_score == "raise")), True
    raise InvalidParameterError(
        "scoring must be None, a scorer name, a callable, a list/tuple of names or a dict "
        f"name -> scorer; got {type(scoring).__name__}."
    )


def _check_scorer_names(names: list[Any]) -> None:
    """A misspelt scorer name gets the closest one (scikit-learn lists all ~50 names)."""
    from sklearn.metrics import get_scorer_names

    known = get_scorer_names()
    for name in names:
        if isinstance(name, str):
            check(
                "scoring",
                name,
                Options(known, text="a scorer name (sklearn.metrics.get_scorer_names())"),
            )


def check_cv_arg(cv: Any) -> Any:
    """``cv`` as the trainable takes it: None, an int >= 2, a splitter, or a list of (train,
    test) index pairs (an iterable of pairs is read into one); `InvalidParameterError` else."""
    if cv is None:
        return None
    if is_integer(cv):
        if cv < 2:
            raise InvalidParameterError(
                f"cv must be at least 2 folds; got {cv}. Use cv=None for hold-out."
            )
        return int(cv)
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        return cv
    if isinstance(cv, Iterable) and not isinstance(cv, (str, bytes, Mapping)):
        splits: Splits = []
        for i, pair in enumerate(cv):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise InvalidParameterError(
                    f"cv[{i}] must be a (train_indices, test_indices) pair; got {pair!r}."
                )
            splits.append((np.asarray(pair[0]), np.asarray(pair[1])))
        if not splits:
            raise InvalidParameterError(
                "cv is an empty list of splits; give at least one (train, test)."
            )
        return splits
    raise InvalidParameterError(
        "cv must be None, an int >= 2, a splitter (with split and get_n_splits) or a list of "
        f"(train_indices, test_indices); got {type(cv).__name__}."
    )


def _iter_folds(
    estimator: BaseEstimator,
    data: Dataset,
    cv: Any,
    fit_params: dict[str, Any],
    score_params: dict[str, Any],
) -> Iterator[_Fold]:
    if cv is None:
        yield _Fold(data.X_train, data.y_train, data.X_val, data.y_val)
        return
    if isinstance(cv, list):
        splits: Iterable[tuple[np.ndarray, np.ndarray]] = cv
    else:
        splits = check_cv(cv, data.y, classifier=is_classifier(estimator)).split(data.X, data.y)
    n = _num_samples(data.X)  # X may be a list of rows (TuneSearchCV passes it as given)
    for i, (train, test) in enumerate(splits):
        for part, idx in (("train", train), ("test", test)):
            if idx.size == 0:
                raise InvalidParameterError(f"cv split {i} has an empty {part} set.")
            if idx.dtype.kind == "b":
                if idx.shape != (n,):
                    raise InvalidParameterError(
                        f"cv split {i}: a boolean {part} mask needs {n} entries; got {idx.shape}."
                    )
            elif idx.dtype.kind not in "iu" or idx.min() < 0 or idx.max() >= n:
                raise InvalidParameterError(
                    f"cv split {i}: {part} indices must be integers in [0, {n}) (the rows of "
                    f"Dataset.X); got {idx[:5]!r}... of dtype {idx.dtype}."
                )
        X_train, y_train = _safe_split(estimator, data.X, data.y, train)
        X_test, y_test = _safe_split(estimator, data.X, data.y, test, train)
        # As sklearn's _fit_and_score: parameters as long as X are indexed like X's rows.
        yield _Fold(
            X_train,
            y_train,
            X_test,
            y_test,
            fit_params=_check_method_params(data.X, params=fit_params, indices=train),
            score_params_train=_check_method_params(data.X, params=score_params, indices=train),
            score_params_test=_check_method_params(data.X, params=score_params, indices=test),
        )
