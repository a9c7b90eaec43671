"""``TuneSearchCV``: a drop-in for scikit-learn's GridSearchCV / RandomizedSearchCV that runs its
trials on Ray Tune.

Change one import line and keep the rest::

    from hpt_ray import TuneSearchCV    # was: from sklearn.model_selection import GridSearchCV
    search = TuneSearchCV(SVC(), param_grid={"C": [0.1, 1, 10]}, cv=5).fit(X, y)
    search.best_params_, search.best_score_, search.cv_results_

Both spellings are accepted: ``param_grid`` (GridSearchCV; the searcher then defaults to "grid")
and ``param_distributions`` (RandomizedSearchCV, the second positional argument; "random" by
default), with ``n_iter`` (or its alias ``n_trials``) trials for any searcher but the grid.

Semantics follow scikit-learn's: the folds are drawn once (``check_cv`` on ``cv``, with ``groups``
for group splitters) and shared by every trial; each trial fits a clone on each training fold, with
the fit parameters (``sample_weight``, any ``**params``) split per fold as GridSearchCV splits
them, and scores it with the same scorers GridSearchCV builds from ``scoring``; ``cv_results_``
has the same keys, shapes and ranking rule (NaN scores rank last); ``refit`` refits the best
configuration on all the data with the full fit parameters. A failing fit scores ``error_score``
and is summarized in one `FitFailedWarning` after the search, or, with ``error_score="raise"``,
raises its own exception. ``searcher="grid"`` enumerates the grid in ``ParameterGrid`` order, so
``best_params_`` matches GridSearchCV's even with ties; any other searcher behaves as
RandomizedSearchCV with a smarter proposal.

The scheduler defaults to "fifo": every trial is one plain ``fit`` per fold, scored exactly as
scikit-learn scores it, and runs as a plain Ray task on Ray's pooled workers (`run_on_tasks`:
no per-trial actor to start, so a small search with Ray up costs about what GridSearchCV's
does); with a ``storage_path`` the trials run in a Ray Tune experiment kept there. Pass
``scheduler="asha"`` (or another early-stopping scheduler) to stage iterative estimators
(``warm_start``/``partial_fit``, see ``trainables.sklearn_trainable``) and cut poor ones early;
their scores in ``cv_results_`` are then the last stage they reached.

Nothing is written to the working directory: without ``storage_path`` the Ray experiment lives in
a temporary directory removed after ``fit``; with one, each fit gets its own new run directory
``TuneSearchCV-<estimator>-<time>-<random suffix>`` under it (``hpt_ray.storage.claim_directory``).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np
import ray
from numpy.ma import MaskedArray
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from scipy.stats import rankdata
from sklearn.base import clone, is_classifier
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.model_selection._validation import _warn_or_raise_about_fit_failures
from sklearn.utils import indexable
from sklearn.utils.validation import _check_method_params

import searchers
from hpt_ray.cluster import check_feasible, ray_resource_names
from hpt_ray.pbt import is_population
from hpt_ray.plan import grid_size
from hpt_ray.run import ensure_ray, run_experiment
from hpt_ray.schedulers import SafeScheduler, check_scheduler_options, make_scheduler
from hpt_ray.settings import POSITIVE_INT
from hpt_ray.user_space import to_tune_space, validate_space
from searchers.validation import Interval, InvalidParameterError, check
from trainables.data import Dataset
from trainables.resources import resources_from_spec
from trainables.sklearn_trainable import make_sklearn_trainable, max_reports

# Trials of RandomizedSearchCV's default n_iter.
DEFAULT_N_ITER = 10


class TuneSearchCV(BaseSearchCV):
    """Hyperparameter search with cross-validation, scheduled by Ray Tune.

    Args:
        estimator: a scikit-learn estimator.
        param_distributions: parameter name -> list of values, scipy.stats distribution or Ray Tune
            domain (RandomizedSearchCV's name; a list of such dicts for ``searcher="grid"``).
        param_grid: GridSearchCV's name for the same thing (a dict or a list of dicts); give
            either it or `param_distributions`. With it the searcher defaults to "grid".
        searcher: "grid" (GridSearchCV), "random" (RandomizedSearchCV) or any name in
            ``searchers.available()``. Default: "grid" with `param_grid`, else "random".
        n_iter: number of configurations tried (RandomizedSearchCV's name; default 10); ignored
            by "grid", which tries the whole grid.
        n_trials: alias of `n_iter` (an error when both are given and differ).
        cv: an int (k folds, stratified for classifiers), a splitter, or an iterable of (train,
            test) splits.
        scoring: None (the estimator's ``score``), a scorer name, a callable, a list or a dict of
            them.
        refit: True, the name of the scorer to refit on (multi-metric), a callable, or False.
        error_score: score given to a fold whose fit fails, or "raise" to raise its exception.
        return_train_score: also score the training folds.
        scheduler: Ray scheduler name ("fifo" default, "asha", "hyperband", "median") or
            instance. Iterative estimators are staged only under a scheduler other than FIFO.
            Not "pbt" or "pb2" (refused when ``fit`` starts): population-based training copies
            a better trial's checkpoint into a worse one and trains it on with new
            hyperparameters, and a scikit-learn fit has no checkpoint to copy or continue; use
            ``hpt_ray.tune_model`` with a PyTorch model or a training function that
            checkpoints.
        max_concurrent: trials at once (default: as many as the CPUs allow). ``n_jobs`` is
            accepted as an alias so GridSearchCV code runs unchanged.
        n_jobs: alias of `max_concurrent` (used when `max_concurrent` is None).
        resources_per_trial: e.g. {"cpu": 1}.
        searcher_options: keyword options for ``searchers.make_searcher``.
        max_stages: the most reports a staged trial makes (schedulers other than FIFO).
        random_state: seed for the searcher.
        storage_path: keep Ray's experiment under this directory or URI (a fresh, uniquely named
            run directory per fit); None (default) uses a temporary directory removed after fit.
        verbose: 0 silent, 1 a progress line.
    """

    def __init__(
        self,
        estimator: Any,
        param_distributions: Any = None,
        *,
        param_grid: Any = None,
        searcher: str | None = None,
        n_iter: int | None = None,
        n_trials: int | None = None,
        cv: Any = 5,
        scoring: Any = None,
        refit: Any = True,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        scheduler: str | TrialScheduler = "fifo",
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
        self.param_grid = param_grid
        self.searcher = searcher
        self.n_iter = n_iter
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

    def fit(self, X: Any, y: Any = None, **params: Any) -> TuneSearchCV:
        """Run the search, then refit the best configuration on all of (X, y) if ``refit``.

        Args:
            X, y: the data, as GridSearchCV takes it.
            params: as in GridSearchCV: ``groups`` goes to the splitter; every other parameter
                goes to the estimator's ``fit`` (an array-like as long as X is split per fold,
                the rest is passed as is, and the refit gets them whole); ``sample_weight`` also
                goes to scorers that accept it.
        """
        if is_population(self.scheduler):
            # Refused first: nothing else about the search matters (see the docstring).
            raise InvalidParameterError(
                f"scheduler: {self.scheduler!r} is population-based training, which copies a "
                "better trial's checkpoint into a worse one and continues it with new "
                "hyperparameters; scikit-learn models cannot checkpoint-and-exploit, so "
                "TuneSearchCV does not run it. Use scheduler='fifo' (default) or 'asha', or "
                "hpt_ray.tune_model with a PyTorch model or a training function that checkpoints"
            )
        searcher = self._searcher_name()
        n_trials = self._n_trials()
        check("max_concurrent", self.max_concurrent, POSITIVE_INT, None)
        check("n_jobs", self.n_jobs, Interval(int, None, None), None)
        check("verbose", self.verbose, Interval(int, 0, None))
        if isinstance(self.scheduler, str):
            check_scheduler_options(self.scheduler, {})
        grids = self._grids(searcher)
        scorers, refit_metric = self._get_scorers()
        multimetric = not (
            callable(self.scoring) or self.scoring is None or isinstance(self.scoring, str)
        )
        scoring_names = self._scoring_names()
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        # GridSearchCV's own routing: groups to the splitter, the rest to fit, sample_weight also
        # to the scorers that take it (or metadata routing, when the user enabled it).
        routed = self._get_routed_params_for_fit(params)
        splitter = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = list(splitter.split(X, y, **routed.splitter.split))
        n_splits = len(splits)
        data = _cv_dataset(X, y, classifier=is_classifier(self.estimator))

        # Fail early (before any trial) on a bad space, option or data.
        spaces = []
        for grid in grids:
            space = to_tune_space(grid, grid=searcher == "grid")
            validate_space(space, searcher=searcher, estimator=self.estimator)
            spaces.append(space)
        resources = resources_from_spec(dict(self.resources_per_trial or {"cpu": 1}))
        concurrency = self.max_concurrent
        if concurrency is None and self.n_jobs is not None and self.n_jobs > 0:
            concurrency = self.n_jobs
        # Staging only helps a scheduler that stops trials early; under FIFO it would only change
        # the scores (partial_fit epochs are not fit, issue #11 item 6).
        staged = _stops_early(self.scheduler)
        fn = make_sklearn_trainable(
            self.estimator,
            cv=splits,
            scoring=self.scoring,
            error_score=self.error_score,
            return_train_score=self.return_train_score,
            max_stages=self.max_stages,
            staged=staged,
            data=data,  # refuses NaN/inf the estimator cannot take, naming the column
        )
        from ray import tune

        trainable = tune.with_resources(
            tune.with_parameters(
                fn, data=data, fit_params=routed.estimator.fit, score_params=routed.scorer.score
            ),
            resources,
        )
        target = self._search_metric(refit_metric) if multimetric else scoring_names[0]
        metric = f"mean_test_{target}"
        max_t = max(
            max_reports(self.estimator, space, self.max_stages, staged=staged) for space in spaces
        )

        candidates: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        # Under FIFO with nothing to keep on disk, a trial is one function call: Ray tasks on the
        # pooled workers do it without Tune's per-trial actor start (BENCHMARKS.md,
        # "TuneSearchCV vs GridSearchCV"). A scheduler, or a storage_path to keep the
        # experiment in, takes the Tune path.
        on_tasks = not staged and self.storage_path is None
        with _experiment_storage(self.storage_path) as storage:
            for index, space in enumerate(spaces):
                search_alg = searchers.make_searcher(
                    searcher, seed=self.random_state, **dict(self.searcher_options or {})
                )
                num_samples = n_trials
                if searcher == "grid":
                    num_samples = grid_size(space, self.searcher_options)
                if on_tasks:
                    configs, results = run_on_tasks(
                        fn,
                        space,
                        data=data,
                        fit_params=routed.estimator.fit,
                        score_params=routed.scorer.score,
                        searcher=search_alg,
                        metric=metric,
                        num_samples=num_samples,
                        max_concurrent=concurrency,
                        resources=resources,
                        verbose=self.verbose,
                    )
                    order = list(range(len(configs)))
                    if searcher == "grid":
                        keys = [str(i) for i in order]
                        by_key = dict(zip(keys, configs, strict=True))
                        order = [int(k) for k in _in_grid_order(keys, by_key, grids[index])]
                    candidates.extend(dict(configs[i]) for i in order)
                    rows.extend(results[i] for i in order)
                    continue
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
                    storage_path=storage,
                    # A fresh directory per run, <prefix>-<time>-<random suffix>: two fits in
                    # the same second never share one (issue #11, item 1).
                    name_prefix=f"TuneSearchCV-{type(self.estimator).__name__}"
                    + ("" if len(spaces) == 1 else f"-grid{index}"),
                    verbose=self.verbose,
                    # GridSearchCV stops at the first failing fit under "raise"; so do we.
                    fail_fast=self.error_score == "raise",
                )
                _raise_trial_error(run.result_grid)
                trial_ids = list(run.frame["trial_id"])
                if searcher == "grid":
                    # GridSearchCV's order (ParameterGrid), whatever order trials started in:
                    # cv_results_ rows and best_index_ on ties then match it.
                    trial_ids = _in_grid_order(trial_ids, run.configs, grids[index])
                for trial_id in trial_ids:
                    candidates.append(dict(run.configs[trial_id]))
                    rows.append(run.last_results.get(trial_id, {}))

        _warn_about_fit_failures(rows, n_splits, self.error_score)
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
                self.best_estimator_.fit(X, y, **routed.estimator.fit)
            else:
                self.best_estimator_.fit(X, **routed.estimator.fit)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    # -- helpers
    # ---------------------------------------------------------------------------------------
    def _searcher_name(self) -> str:
        if self.searcher is not None:
            return str(self.searcher)
        return "grid" if self.param_grid is not None else "random"

    def _n_trials(self) -> int:
        if self.n_iter is not None and self.n_trials is not None and self.n_iter != self.n_trials:
            raise InvalidParameterError(
                f"n_iter={self.n_iter!r} and n_trials={self.n_trials!r} disagree: n_trials is an "
                "alias of n_iter (RandomizedSearchCV's name); give one of them"
            )
        value = self.n_iter if self.n_iter is not None else self.n_trials
        if value is None:
            return DEFAULT_N_ITER
        return int(check("n_iter" if self.n_iter is not None else "n_trials", value, POSITIVE_INT))

    def _grids(self, searcher: str) -> list[Mapping[str, Any]]:
        if self.param_grid is not None and self.param_distributions is not None:
            raise InvalidParameterError(
                "give param_grid (GridSearchCV's name) or param_distributions "
                "(RandomizedSearchCV's name), not both"
            )
        name = "param_grid" if self.param_grid is not None else "param_distributions"
        spaces = self.param_grid if self.param_grid is not None else self.param_distributions
        if spaces is None:
            raise InvalidParameterError(
                "TuneSearchCV needs a search space: param_grid={'C': [0.1, 1, 10]} (as in "
                "GridSearchCV) or param_distributions={...} (as in RandomizedSearchCV)"
            )
        if isinstance(spaces, Mapping):
            return [spaces]
        if isinstance(spaces, Sequence) and spaces and all(isinstance(s, Mapping) for s in spaces):
            if searcher != "grid":
                raise InvalidParameterError(
                    f"{name}: a list of dicts is a union of grids, which only searcher='grid' "
                    "enumerates; pass one dict for other searchers"
                )
            return list(spaces)
        raise InvalidParameterError(
            f"{name} must be a dict of parameter -> values/distribution (or, for "
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


def run_on_tasks(
    fn: Any,
    space: Mapping[str, Any],
    *,
    data: Dataset,
    fit_params: Mapping[str, Any],
    score_params: Mapping[str, Any],
    searcher: Any,
    metric: str,
    num_samples: int,
    max_concurrent: int | None,
    resources: Mapping[str, float],
    verbose: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Drive `searcher` with one plain Ray task per trial, `max_concurrent` at a time.

    The FIFO path of TuneSearchCV: every trial is a single call of the scikit-learn trainable
    `fn` with no intermediate report a scheduler could act on, so it needs none of Tune's
    per-trial actors, whose start (a fresh process with its own runtime env, importing ray.tune)
    cost more than the fits of a small grid. Tasks run on Ray's pooled, already started workers;
    the data goes to the object store once. The searcher sees the same protocol Tune gives it
    (``set_search_properties``, ``suggest``, ``on_trial_complete``), so every registered
    searcher works here. A task that raises (a fit under ``error_score="raise"``, or anything
    else) cancels the rest and raises its exception as its own type.

    Returns:
        The configs and their trial results (the last report), in the order trials were
        suggested.
    """
    ensure_ray(None, log_to_driver=verbose >= 2)
    check_feasible(resources)
    request = ray_resource_names(resources)
    if max_concurrent is None:
        # As many at once as the cluster's CPUs hold (what Tune does with no limit).
        total = ray.cluster_resources()
        per_trial = {k: v for k, v in request.items() if k in ("CPU", "GPU") and v > 0}
        max_concurrent = max(
            1, min((int(total.get(k, 0) // v) for k, v in per_trial.items()), default=1)
        )
    options: dict[str, Any] = {
        "num_cpus": request.pop("CPU", 0),
        "num_gpus": request.pop("GPU", 0),
        "max_retries": 0,
    }
    if "memory" in request:
        options["memory"] = request.pop("memory")
    if request:
        options["resources"] = request
    task = _trial_task.options(**options)
    searcher.set_search_properties(metric, "max", dict(space))
    shared = ray.put((fn, data, dict(fit_params), dict(score_params)))

    configs: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    running: dict[Any, int] = {}  # task ref -> trial index
    exhausted = False
    try:
        while True:
            while not exhausted and len(running) < max_concurrent and len(configs) < num_samples:
                index = len(configs)
                config = searcher.suggest(str(index))
                if config is None:  # the searcher waits for a running trial
                    break
                if config == searcher.FINISHED:
                    exhausted = True
                    break
                configs.append(dict(config))
                results.append({})
                running[task.remote(shared, config)] = index
            if not running:
                break
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index = running.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as error:
                _reraise(error)
            results[index] = result
            searcher.on_trial_complete(str(index), result=result)
            if verbose >= 1:
                print(
                    f"TuneSearchCV: trial {index + 1} done ({len(configs) - len(running)}/"
                    f"{num_samples}), {metric}={result.get(metric)}",
                    flush=True,
                )
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    return configs, results


def _trial_body(shared: Any, config: dict[str, Any]) -> dict[str, Any]:
    fn, data, fit_params, score_params = shared
    reports: list[dict[str, Any]] = []
    fn(config, data, fit_params=fit_params, score_params=score_params, report=reports.append)
    if not reports:
        raise RuntimeError(f"the trial with config {config!r} reported nothing")
    return reports[-1]


_trial_task = ray.remote(_trial_body)


def _stops_early(scheduler: Any) -> bool:
    """Whether `scheduler` acts on intermediate reports (anything but FIFO)."""
    if isinstance(scheduler, str):
        return scheduler.lower() != "fifo"
    inner = scheduler.inner if isinstance(scheduler, SafeScheduler) else scheduler
    # ASHA and the median rule subclass FIFOScheduler: only FIFO itself never stops a trial.
    return type(inner) is not FIFOScheduler


@contextlib.contextmanager
def _experiment_storage(storage_path: str | None) -> Iterator[str]:
    """The user's `storage_path`, or a temporary directory removed when the search ends."""
    if storage_path is not None:
        yield storage_path
        return
    with tempfile.TemporaryDirectory(
        prefix="hpt_ray-TuneSearchCV-", ignore_cleanup_errors=True
    ) as directory:
        yield directory


def _in_grid_order(
    trial_ids: list[str], configs: Mapping[str, Mapping[str, Any]], grid: Mapping[str, Any]
) -> list[str]:
    """`trial_ids` sorted by their config's position in ``ParameterGrid(grid)``.

    Configs are matched by the repr of their values (a config that travelled through Ray holds
    copies, and estimators compare by identity); one that matches nothing keeps its place after
    the matched ones.
    """
    try:
        positions = {_config_key(p): i for i, p in enumerate(ParameterGrid(dict(grid)))}
    except TypeError:  # not a grid of lists (e.g. Ray Tune domains): keep the run's order
        return trial_ids
    unmatched = len(positions)
    return sorted(trial_ids, key=lambda tid: positions.get(_config_key(configs[tid]), unmatched))


def _config_key(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((name, repr(value)) for name, value in sorted(config.items()))


def _raise_trial_error(result_grid: Any) -> None:
    """Raise the first exception that escaped a trial, as its own type with its own message.

    Fit failures under a numeric error_score never get here (the trial scores them); what does
    is a fit under error_score="raise", or anything else that went wrong in a trial.
    """
    if result_grid is None:
        return
    for result in result_grid:
        error = result.error
        if error is None:
            continue
        _reraise(error)


def _reraise(error: BaseException) -> NoReturn:
    """Raise the exception a trial raised: Ray wraps it (RayTaskError(ValueError)) as `cause`."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        raise cause from error
    raise error


def _warn_about_fit_failures(rows: list[dict[str, Any]], n_splits: int, error_score: Any) -> None:
    """GridSearchCV's FitFailedWarning (or its ValueError when every fit failed), from the
    ``n_failed_splits``/``trial_error`` each trial reports."""
    fits: list[dict[str, str | None]] = []
    for row in rows:
        n_failed = int(row.get("n_failed_splits", 0) or 0)
        error = str(row.get("trial_error", "")) or None
        fits.extend({"fit_error": error} for _ in range(n_failed))
        fits.extend({"fit_error": None} for _ in range(n_splits - n_failed))
    _warn_or_raise_about_fit_failures(fits, error_score)


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
    """The caller's X and y as given (a DataFrame keeps its columns for pipelines).

    Every trial scores the explicit CV splits of ``X, y``, so the hold-out fields are unused and
    point at the same arrays.
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
