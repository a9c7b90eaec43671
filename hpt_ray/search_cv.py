"""``TuneSearchCV``: a drop-in for scikit-learn's GridSearchCV / RandomizedSearchCV that runs its
trials on Ray Tune.

Change one import line and keep the rest::

    from hpt_ray import TuneSearchCV            # was: from sklearn.model_selection import
    GridSearchCV
    search = TuneSearchCV(SVC(), {"C": [0.1, 1, 10]}, searcher="grid", cv=5).fit(X, y)
    search.best_params_, search.best_score_, search.cv_results_

Semantics follow scikit-learn's: the folds are drawn once (``check_cv`` on ``cv``) and shared by
every trial; each
trial fits a clone on each training fold and scores it with the same scorers GridSearchCV builds
from ``scoring``;
``cv_results_`` has the same keys, shapes and ranking rule (NaN scores rank last); ``refit`` refits
the best
configuration on all the data. ``searcher="grid"`` enumerates the grid in ``ParameterGrid`` order,
so
``best_params_`` matches GridSearchCV's even with ties; any other searcher behaves as
RandomizedSearchCV with a
smarter proposal, running ``n_trials`` trials.

The scheduler defaults to "fifo": every trial is scored on its full fit, as scikit-learn does. Pass
``scheduler="asha"`` to cut iterative estimators early; their scores in ``cv_results_`` are then
the last stage
they reached.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.ma import MaskedArray
from scipy.stats import rankdata
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import indexable

import searchers
from hpt_ray.schedulers import make_scheduler
from hpt_ray.spaces import to_tune_space, validate_space
from hpt_ray.tuning import _max_stages, grid_size, run_experiment
from trainables.data import Dataset
from trainables.resources import resources_from_spec
from trainables.sklearn_trainable import make_sklearn_trainable


class TuneSearchCV(BaseSearchCV):
    """Hyperparameter search with cross-validation, scheduled by Ray Tune.

    Args:
        estimator: a scikit-learn estimator.
        param_distributions: parameter name -> list of values, scipy.stats distribution or Ray Tune
            domain
            (a list of such dicts for ``searcher="grid"``, as GridSearchCV's ``param_grid``
            allows).
        searcher: "grid" (GridSearchCV), "random" (RandomizedSearchCV) or any name in
            ``searchers.available()``.
        n_trials: number of configurations tried (ignored by "grid", which tries the whole grid).
        cv: an int (k folds, stratified for classifiers), a splitter, or an iterable of (train,
            test) splits.
        scoring: None (the estimator's ``score``), a scorer name, a callable, a list or a dict of
            them.
        refit: True, the name of the scorer to refit on (multi-metric), a callable, or False.
        error_score: score given to a fold whose fit fails, or "raise".
        return_train_score: also score the training folds.
        scheduler: Ray scheduler name ("fifo" default, "asha", "hyperband", "median").
        max_concurrent: trials at once (default: as many as the CPUs allow). ``n_jobs`` is accepted
            as an alias
            so GridSearchCV code runs unchanged.
        resources_per_trial: e.g. {"cpu": 1}.
        random_state: seed for the searcher.
        verbose: 0 silent, 1 a progress line.
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any,
        *,
        searcher: str = "random",
        n_trials: int = 10,
        cv: Any = 5,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        scheduler: str = "fifo",
        max_concurrent: int | None = None,
        n_jobs: int | None = None,
        resources_per_trial: Mapping[str, Any] | None = None,
        searcher_options: Mapping[str, Any] | None = None,
        max_stages: int = 10,
        random_state: int | None = None,
        storage_path: str | None = None,
        verbose: int = 0,
    ) -> None:
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.searcher = searcher
        self.n_trials = n_trials
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.scheduler = scheduler
        self.max_concurrent = max_concurrent
        self.n_jobs = n_jobs
        self.resources_per_trial = resources_per_trial
        self.searcher_options = searcher_options
        self.max_stages = max_stages
        self.random_state = random_state
        self.storage_path = storage_path
        self.verbose = verbose

    def fit(self, X: Any, y: Any = None, *, groups: Any = None, **fit_params: Any) -> TuneSearchCV:
        """Run the search, then refit the best configuration on all of (X, y) if ``refit``."""
        if fit_params:
            raise TypeError(
                f"TuneSearchCV.fit does not route fit parameters yet (got {sorted(fit_params)}); "
                "set them on the estimator instead"
            )
        X, y, groups = indexable(X, y, groups)
        grids = self._grids()
        scorers, refit_metric = self._get_scorers()
        multimetric = not (
            callable(self.scoring) or self.scoring is None or isinstance(self.scoring, str)
        )
        scoring_names = self._scoring_names()
        splitter = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = [(train, test) for train, test in splitter.split(X, y, groups)]
        n_splits = len(splits)
        data = _cv_dataset(X, y, classifier=is_classifier(self.estimator))

        # Fail early (before any trial) on a bad space or option.
        spaces = []
        for grid in grids:
            space = to_tune_space(grid, grid=self.searcher == "grid")
            validate_space(space, searcher=self.searcher, estimator=self.estimator)
            spaces.append(space)
        resources = resources_from_spec(dict(self.resources_per_trial or {"cpu": 1}))
        concurrency = self.max_concurrent
        if concurrency is None and isinstance(self.n_jobs, int) and self.n_jobs > 0:
            concurrency = self.n_jobs
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise ValueError(f"n_trials must be a positive integer, got {self.n_trials!r}")

        fn = make_sklearn_trainable(
            self.estimator,
            cv=splits,
            scoring=self.scoring,
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            max_stages=self.max_stages,
        )
        from ray import tune

        trainable = tune.with_resources(tune.with_parameters(fn, data=data), resources)
        target = self._search_metric(refit_metric) if multimetric else scoring_names[0]
        metric = f"mean_test_{target}"
        max_t = _max_stages(self.estimator, spaces[0], self.max_stages)

        candidates: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        errors: list[str | None] = []
        for index, space in enumerate(spaces):
            search_alg = searchers.make_searcher(
                self.searcher, seed=self.random_state, **dict(self.searcher_options or {})
            )
            num_samples = self.n_trials
            if self.searcher == "grid":
                num_samples = grid_size(space, self.searcher_options)
            run = run_experiment(
                trainable,
                space,
                metric=metric,
                mode="max",
                searcher=search_alg,
                scheduler=make_scheduler(self.scheduler, max_t=max_t),
                max_t=max_t,
                num_samples=num_samples,
                max_concurrent=concurrency,
                # Checked against the cluster first: an impossible request fails in seconds.
                resources=resources,
                storage_path=self.storage_path,
                name=f"TuneSearchCV-{type(self.estimator).__name__}-{time.strftime('%Y%m%d-%H%M%S')}-{index}",
                verbose=self.verbose,
            )
            for _, row in run.frame.iterrows():
                trial_id = row["trial_id"]
                candidates.append(dict(run.configs[trial_id]))
                rows.append(run.last_results.get(trial_id, {}))
                errors.append(row["error"] if row["status"] == "error" else None)

        if self.error_score == "raise" and any(errors):
            raise RuntimeError(
                f"a trial failed with error_score='raise': {next(e for e in errors if e)}"
            )
        self.cv_results_ = self._format(candidates, rows, scoring_names, n_splits)
        self.multimetric_ = multimetric
        self.scorer_ = scorers
        self.n_splits_ = n_splits

        if self.refit or not multimetric:
            self.best_index_ = self._select_best_index(self.refit, refit_metric, self.cv_results_)
            if not callable(self.refit):
                self.best_score_ = float(
                    self.cv_results_[f"mean_test_{refit_metric}"][self.best_index_]
                )
            self.best_params_ = self.cv_results_["params"][self.best_index_]
        if self.refit:
            self.best_estimator_ = clone(self.estimator).set_params(
                **clone(self.best_params_, safe=False)
            )
            start = time.perf_counter()
            if y is not None:
                self.best_estimator_.fit(X, y)
            else:
                self.best_estimator_.fit(X)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    # -- helpers
    # ---------------------------------------------------------------------------------------
    def _grids(self) -> list[Mapping[str, Any]]:
        spaces = self.param_distributions
        if isinstance(spaces, Mapping):
            return [spaces]
        if isinstance(spaces, Sequence) and spaces and all(isinstance(s, Mapping) for s in spaces):
            if self.searcher != "grid":
                raise ValueError(
                    "param_distributions: a list of dicts is a union of grids, which only "
                    "searcher='grid' "
                    "enumerates; pass one dict for other searchers"
                )
            return list(spaces)
        raise TypeError(
            "param_distributions must be a dict of parameter -> values/distribution (or, for "
            f"searcher='grid', a non-empty list of such dicts), got {type(spaces).__name__}"
        )

    def _scoring_names(self) -> list[str]:
        if callable(self.scoring) or self.scoring is None or isinstance(self.scoring, str):
            return ["score"]
        if isinstance(self.scoring, Mapping):
            return list(self.scoring)
        return list(self.scoring)

    def _search_metric(self, refit_metric: Any) -> str:
        # With several scorers the searcher optimizes the refit one, or the first when
        # refit is a callable/False.
        return refit_metric if isinstance(refit_metric, str) else self._scoring_names()[0]

    def _format(
        self,
        candidates: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        scoring_names: list[str],
        n_splits: int,
    ) -> dict[str, Any]:
        results: dict[str, Any] = {}

        def column(key: str) -> np.ndarray:
            return np.array([float(row.get(key, np.nan)) for row in rows], dtype=np.float64)

        def store(key: str, *, splits: bool, rank: bool) -> None:
            table = (
                np.column_stack([column(f"split{i}_{key}") for i in range(n_splits)])
                if candidates
                else np.empty((0, n_splits))
            )
            if splits:
                for i in range(n_splits):
                    results[f"split{i}_{key}"] = table[:, i]
            means = np.mean(table, axis=1)
            results[f"mean_{key}"] = means
            results[f"std_{key}"] = np.sqrt(np.mean((table - means[:, None]) ** 2, axis=1))
            if rank:
                results[f"rank_{key}"] = _rank(means)

        for key in ("fit_time", "score_time"):
            results[f"mean_{key}"] = column(f"mean_{key}")
            results[f"std_{key}"] = column(f"std_{key}")
        results.update(_param_arrays(candidates))
        results["params"] = candidates
        for name in scoring_names:
            store(f"test_{name}", splits=True, rank=True)
            if self.return_train_score:
                store(f"train_{name}", splits=True, rank=False)
        return results


def _rank(means: np.ndarray) -> np.ndarray:
    """scikit-learn's ranking: 1 is best, ties share the lowest rank, NaN scores tie for last."""
    if means.size == 0 or np.isnan(means).all():
        return np.ones_like(means, dtype=np.int32)
    filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
    return rankdata(-filled, method="min").astype(np.int32)


def _param_arrays(candidates: list[dict[str, Any]]) -> dict[str, MaskedArray]:
    """``param_<name>``: a masked array per parameter, masked where a candidate lacks it."""
    names: list[str] = []
    for params in candidates:
        names.extend(k for k in params if k not in names)
    out: dict[str, MaskedArray] = {}
    for name in names:
        present = [(i, p[name]) for i, p in enumerate(candidates) if name in p]
        values = [v for _, v in present]
        try:
            probe = np.array(values)
            dtype = (
                probe.dtype if probe.dtype.kind != "U" and probe.ndim == 1 else np.dtype(object)
            )
        except ValueError:
            dtype = np.dtype(object)
        array = MaskedArray(np.empty(len(candidates), dtype=dtype), mask=True)
        for i, value in present:
            array[i] = value
        out[f"param_{name}"] = array
    return out


def _cv_dataset(X: Any, y: Any, *, classifier: bool) -> Dataset:
    """The caller's X and y as given (a DataFrame keeps its columns for pipelines): every trial
    scores the
    explicit CV splits of ``X, y``, so the hold-out fields are unused and point at the same arrays.
    """
    classes = np.unique(y) if classifier and y is not None else None
    return Dataset(
        X=X,
        y=y,
        X_train=X,
        y_train=y,
        X_val=X,
        y_val=y,
        task="classification" if classifier else "regression",
        n_features=int(np.shape(X)[1]) if len(np.shape(X)) > 1 else 1,
        n_classes=None if classes is None else len(classes),
        classes=classes,
        name="arrays",
    )


__all__ = ["TuneSearchCV"]
