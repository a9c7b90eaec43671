"""``tune_model``: tune a scikit-learn estimator or a PyTorch model factory in one call, on Ray
Tune.

The call validates everything it can (model, data, space, metric, searcher, scheduler,
resources) before Ray starts a trial, runs a ``ray.tune.Tuner``, and returns a ``TuneResult``
built from the same trials table that is written to ``<storage_path>/<name>/results.parquet``.

One directory holds one run: a new run never reads or overwrites an earlier run's files (an
explicit ``name`` that already holds a run is an `ExperimentExistsError`; without a name each
run gets a new directory), and only ``resume=True`` continues one.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune.search import Searcher
from sklearn.base import BaseEstimator, is_classifier
from sklearn.model_selection import check_cv

import searchers
from hpt_ray.cluster import (
    InfeasibleResourcesError,
    check_feasible,
    is_uri,
    make_pending_timeout,
    upload_files,
)
from hpt_ray.progress import ProgressPrinter
from hpt_ray.results import (
    LOG_FILE,
    META_FILE,
    RESULTS_FILE,
    SEGMENTS_DIR,
    MetricNotReportedError,
    ResultsWriter,
    SigintWatch,
    best_row,
    missing_metric_message,
    read_log,
    read_remote_file,
    records_to_frame,
    remote_log_text,
    remote_names,
    staging_directory,
    write_metadata,
)
from hpt_ray.schedulers import SafeScheduler, make_scheduler
from hpt_ray.spaces import to_tune_space, validate_space
from hpt_ray.tensorboard import HParamsLoggerCallback
from trainables.data import Dataset, load_data
from trainables.resources import resources_from_spec
from trainables.sklearn_trainable import make_sklearn_trainable, n_stages

DEFAULT_STORAGE = "hpt_ray_results"
# With an autoscaler, check_feasible cannot know whether a node type could hold a trial; a run
# whose trials all stay pending this long fails instead of waiting forever (hpt_ray.cluster).
# A cloud node takes minutes to boot and install, hence the generous default.
PENDING_TIMEOUT_S = float(os.environ.get("HPT_RAY_PENDING_TIMEOUT_S", "900"))


class ExperimentExistsError(ValueError):
    """The experiment directory already holds a run, and ``resume`` was not asked for."""


class ExperimentInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); everything that finished is on disk and it can resume.

    A ``KeyboardInterrupt``, so code that does not catch it stops as on any Ctrl-C.
    Attributes: ``path`` (the experiment directory or URI), ``frame`` (the trials table).
    """

    def __init__(self, message: str, *, path: str, frame: pd.DataFrame) -> None:
        super().__init__(message)
        self.path = path
        self.frame = frame


@dataclass
class TuneResult:
    """What a tuning run found.

    Attributes:
        best_config: the configuration of the best trial (by its final reported metric), exactly
            as the trial got it (tuples stay tuples, also after a resume).
        best_score: that trial's final metric value (None if no trial reported a finite value).
        best_checkpoint: the best trial's latest ``ray.tune.Checkpoint`` (PyTorch trials), else
            None.
        trials: one row per trial (see ``hpt_ray.results``): config columns, final and best
            metric, status, iterations run, wall time, error.
        path: the experiment directory, holding ``results.parquet`` and Ray's own files.
        metric, mode: the objective the run optimized.
        result_grid: Ray's ``ResultGrid`` for anything else (per-trial metric histories, logs).
    """

    best_config: dict[str, Any] | None
    best_score: float | None
    best_checkpoint: Any
    trials: pd.DataFrame
    path: str
    metric: str
    mode: str
    result_grid: Any = None
    _build_model: Any = field(default=None, repr=False, compare=False)

    def best_model(self) -> Any:
        """The best trial's model, ready to predict.

        PyTorch: the module of the best trial's last checkpoint with the run's preprocessing
        (it takes raw features), in eval mode (see ``hpt_ray.load_model``). scikit-learn: a
        clone of the estimator with ``best_config``, refit on all the data (both splits, or
        every fold), as GridSearchCV's ``refit=True`` does.
        """
        if self.best_config is None:
            raise ValueError(
                f"best_model: no trial reported a finite {self.metric!r}, so there is no best "
                "model (see result.trials['status'] and ['error'])"
            )
        if self._build_model is None:
            raise ValueError("best_model: this result was not made by tune_model")
        return self._build_model(self)

    def report(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write this experiment's one-file HTML report (see ``hpt_ray.report``); its path."""
        from hpt_ray.report import report_html

        return report_html(self.path, path)

    def __repr__(self) -> str:
        return (
            f"TuneResult(best_score={self.best_score!r}, best_config={self.best_config!r}, "
            f"trials={len(self.trials)}, path={self.path!r})"
        )


@dataclass
class _Run:
    """Internal: the outcome of ``run_experiment``; TuneSearchCV and tune_model build on it."""

    frame: pd.DataFrame
    last_results: dict[str, dict[str, Any]]
    configs: dict[str, dict[str, Any]]
    result_grid: Any
    path: str


def tune_model(
    model: Any,
    space: Mapping[str, Any],
    *,
    data: Any,
    metric: str | None = None,
    mode: str | None = None,
    searcher: str | Searcher = "optuna-tpe",
    searcher_options: Mapping[str, Any] | None = None,
    scheduler: str = "asha",
    scheduler_options: Mapping[str, Any] | None = None,
    num_samples: int = 20,
    max_concurrent: int | None = None,
    resources_per_trial: Mapping[str, Any] | None = None,
    epochs: int = 10,
    max_stages: int = 10,
    cv: Any = None,
    scoring: Any = None,
    time_budget_s: float | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    seed: int | None = None,
    trainer_options: Mapping[str, Any] | None = None,
    verbose: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    retry_errored: bool = False,
    max_failures: int = 0,
    fail_fast: bool = False,
) -> TuneResult:
    """Tune ``model`` over ``space`` and return the best configuration, its score and every trial.

    Args:
        model: a scikit-learn estimator (instance or class), or a PyTorch model factory
            ``config -> nn.Module`` (e.g. ``trainables.torch_trainable.mlp``; in files
            ``trainables.torch_trainable:mlp``).
        space: parameter name -> Ray Tune domain, list (a choice), scipy.stats distribution or
            constant; see ``hpt_ray.spaces``. For PyTorch, ``lr``, ``optimizer``,
            ``weight_decay``, ``batch_size``, ``momentum`` and ``epochs`` configure training; the
            whole config goes to the factory.
        data: ``(X, y)``, ``((X_train, y_train), (X_val, y_val))``, or a bundled scikit-learn
            data set name ("digits", "breast_cancer", "wine", "iris", "diabetes"). NaN or inf the
            model cannot take is refused before any trial, naming the column.
        metric, mode: what to optimize. Defaults: scikit-learn ``mean_test_score``/max (the
            scorer's value, greater is better, as in GridSearchCV); PyTorch ``val_accuracy``/max,
            or ``val_loss``/min for regression. A metric the model never reports is refused
            before any trial, naming the keys it does report.
        searcher: a name from ``searchers.available()`` or a Ray ``Searcher`` instance.
        searcher_options: keyword options for ``searchers.make_searcher``.
        scheduler: "asha" (default), "hyperband", "median" or "fifo"; ``scheduler_options`` go
            to it (``grace_period``, ``reduction_factor``, ...). Fidelity is one report: an epoch
            or a stage. Under "fifo" scikit-learn estimators are fit once (no stages), so they
            score as GridSearchCV does.
        num_samples: number of trials (ignored by the grid searcher, which runs its whole grid).
        max_concurrent: at most this many trials at once (default: as many as resources allow).
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0.5}`` (default ``{"cpu": 1}``).
        epochs: PyTorch epochs per trial when run to the end (a constant ``epochs`` in
            ``space`` overrides).
        max_stages: reports per trial for iterative scikit-learn estimators.
        cv, scoring: scikit-learn cross-validation (int, splitter, or iterable of splits) and
            scorer(s), as GridSearchCV takes them; without ``cv`` a stratified 80/20 hold-out
            split is scored.
        time_budget_s: stop starting trials after this many seconds.
        storage_path, name: results go to ``<storage_path>/<name>`` (default
            ``./hpt_ray_results/<model>-<date>-<time>-<4 hex>``, new for every run). A name whose
            directory already holds a run is an `ExperimentExistsError` unless ``resume``.
        seed: seeds the searcher, the hold-out split and the trials.
        trainer_options: options of the PyTorch trainable that are not searched (see
            ``trainables.torch_trainable.plan_torch``).
        verbose: 0 silent, 1 a progress line every few seconds (default), 2 also Ray's own trial
            tables.
        resume: continue the run in ``<storage_path>/<name>`` (see `run_experiment`).
        retry_errored: with ``resume``, run errored trials again.
        max_failures, fail_fast: retry a failing trial that many times; or stop at the first.

    Raises:
        ExperimentInterrupted: on Ctrl-C, once everything finished is on disk.
        ray_address: connect to this Ray cluster instead of starting (or reusing) a local one.
    """
    plan = plan_experiment(
        model,
        space,
        data=data,
        metric=metric,
        mode=mode,
        searcher=searcher,
        searcher_options=searcher_options,
        scheduler=scheduler,
        scheduler_options=scheduler_options,
        num_samples=num_samples,
        resources_per_trial=resources_per_trial,
        epochs=epochs,
        max_stages=max_stages,
        cv=cv,
        scoring=scoring,
        seed=seed,
        trainer_options=trainer_options,
    )
    run = run_experiment(
        plan.trainable,
        plan.space,
        metric=plan.metric,
        mode=plan.mode,
        searcher=plan.searcher,
        scheduler=plan.scheduler,
        max_t=plan.max_t,
        num_samples=plan.num_samples,
        max_concurrent=max_concurrent,
        time_budget_s=time_budget_s,
        storage_path=storage_path,
        name=name,
        name_prefix=plan.label,
        verbose=verbose,
        ray_address=ray_address,
        metadata=plan.metadata,
        resources=plan.resources,
        resume=resume,
        retry_errored=retry_errored,
        max_failures=max_failures,
        fail_fast=fail_fast,
    )
    best = best_row(run.frame, plan.mode)
    best_checkpoint = None
    if best is not None and run.result_grid is not None:
        for result in run.result_grid:
            if (result.metrics or {}).get("trial_id") == best["trial_id"]:
                best_checkpoint = result.checkpoint
                break
    result = TuneResult(
        best_config=None if best is None else run.configs[best["trial_id"]],
        best_score=None if best is None else float(best["final_metric"]),
        best_checkpoint=best_checkpoint,
        trials=run.frame,
        path=run.path,
        metric=plan.metric,
        mode=plan.mode,
        result_grid=run.result_grid,
        _build_model=plan.build_model,
    )
    _warn_failures(run.frame, plan.metric)
    return result


def load_model(checkpoint: Any) -> Any:
    """A PyTorch trial's checkpoint (a ``ray.tune.Checkpoint`` or its directory) as a module
    ready to predict on raw features: the run's standardization inside, in eval mode, on the
    CPU (``trainables.torch_trainable.load_model``)."""
    from trainables.torch_trainable import load_model as load_torch_model

    return load_torch_model(checkpoint)


def _torch_best_model(result: TuneResult) -> Any:
    if result.best_checkpoint is None:
        raise ValueError(
            f"best_model: the best trial left no checkpoint (its row: {result.path}); a "
            "PyTorch trial checkpoints every epoch, so it ended before its first epoch did"
        )
    return load_model(result.best_checkpoint)


def _sklearn_refit(estimator: Any, dataset: Dataset) -> Any:
    from sklearn.base import clone

    def refit(result: TuneResult) -> Any:
        model = clone(estimator).set_params(**clone(result.best_config, safe=False))
        return model.fit(dataset.X, dataset.y)

    return refit


def _warn_failures(frame: pd.DataFrame, metric: str) -> None:
    """One line at the end of every run that had failing, diverged or NaN-reporting trials."""
    if frame.empty:
        return
    parts = []
    errors = frame[frame["status"] == "error"]
    if len(errors):
        kinds = errors["error"].fillna("error").value_counts()
        top = "; ".join(
            f"{text} (x{n})" if n > 1 else str(text) for text, n in kinds.head(3).items()
        )
        parts.append(f"{len(errors)} of {len(frame)} trials failed: {top}")
    diverged = int((frame["status"] == "diverged").sum())
    if diverged:
        parts.append(f"{diverged} diverged")
    bad = int((frame["bad_reports"].fillna(0) > 0).sum())
    if bad:
        parts.append(f"{bad} reported a NaN, infinite or non-numeric {metric!r}")
    if parts:
        warnings.warn(
            "hpt_ray: " + "; ".join(parts) + " (see result.trials['status'] and ['error'])",
            TrialFailuresWarning,
            stacklevel=3,
        )


class TrialFailuresWarning(UserWarning):
    """Some trials of a run failed, diverged or reported non-finite metrics."""


@dataclass
class _Plan:
    trainable: Any
    space: dict[str, Any]
    metric: str
    mode: str
    searcher: Searcher
    scheduler: Any
    max_t: int
    num_samples: int
    label: str
    metadata: dict[str, Any]
    resources: dict[str, float]
    build_model: Any


def plan_experiment(
    model: Any,
    space: Mapping[str, Any],
    *,
    data: Any,
    metric: str | None,
    mode: str | None,
    searcher: str | Searcher,
    searcher_options: Mapping[str, Any] | None,
    scheduler: str,
    scheduler_options: Mapping[str, Any] | None,
    num_samples: int,
    resources_per_trial: Mapping[str, Any] | None,
    epochs: int,
    max_stages: int,
    cv: Any,
    scoring: Any,
    seed: int | None,
    trainer_options: Mapping[str, Any] | None = None,
) -> _Plan:
    """Validate every argument and build what the run needs, before Ray starts anything."""
    kind, model = _resolve_model(model)
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    resources = resources_from_spec(dict(resources_per_trial or {"cpu": 1}))
    is_grid = isinstance(searcher, str) and searcher == "grid"
    tune_space = to_tune_space(space, grid=is_grid)
    validate_space(tune_space, searcher=searcher, estimator=model if kind == "sklearn" else None)

    if kind == "sklearn":
        if trainer_options:
            raise ValueError(
                "trainer_options apply to PyTorch model factories only; a scikit-learn "
                "estimator takes its settings as parameters (space or the instance)"
            )
        dataset = load_data(data, seed=0 if seed is None else seed)
        shipped, data_name = dataset, dataset.name
        splits = _materialize_cv(cv, model, dataset)
        default_metric = "mean_test_score"
        if isinstance(scoring, (list, tuple, set, dict)) and metric is None:
            raise ValueError(
                "metric: with several scorers, name the one to optimize, "
                "e.g. metric='mean_test_accuracy'"
            )
        # A failing fit fails its trial (with its message in the table); staging only helps a
        # scheduler that stops trials early, and partial_fit epochs do not score as fit does.
        staged = not (isinstance(scheduler, str) and scheduler.lower() == "fifo")
        fn = make_sklearn_trainable(
            model,
            cv=splits,
            scoring=scoring,
            max_stages=max_stages,
            error_score="raise",
            staged=staged,
            data=dataset,
        )
        max_t = _max_stages(model, tune_space, max_stages) if staged else 1
        metric, mode = metric or default_metric, mode or "max"
        _check_metric(
            metric,
            _sklearn_keys(scoring, splits),
            who=f"{type(model).__name__} trials (the scorer's mean is mean_test_<name>; "
            "name the scorer with scoring=, e.g. scoring='accuracy')",
        )
        label = type(model).__name__
        build_model: Any = _sklearn_refit(model, dataset)
    else:
        if cv is not None or scoring is not None:
            raise ValueError(
                "cv and scoring apply to scikit-learn models only; PyTorch trials use a "
                "hold-out validation split (pass data=((X_tr, y_tr), (X_val, y_val)) to fix it)"
            )
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        constant_epochs = tune_space.get("epochs")
        if isinstance(constant_epochs, int) and not isinstance(constant_epochs, bool):
            epochs = constant_epochs
        elif "epochs" in tune_space:
            raise ValueError(
                "space: 'epochs' must be a constant (it is the scheduler's max_t); "
                "use tune_model(epochs=...) and let ASHA decide how long each trial trains"
            )
        # torch is imported only when a PyTorch model is tuned: scikit-learn users never
        # pay for it.
        from trainables.torch_trainable import plan_torch

        torch_plan = plan_torch(
            model, data, epochs=epochs, seed=0 if seed is None else seed, options=trainer_options
        )
        fn, shipped, data_name = torch_plan.fn, torch_plan.data, torch_plan.data_name
        max_t = epochs
        if metric is None:
            metric, mode = torch_plan.default_metric, mode or torch_plan.default_mode
        elif mode is None and metric == torch_plan.default_metric:
            mode = torch_plan.default_mode
        _check_metric(metric, torch_plan.keys, who="PyTorch trials")
        if mode is None:
            raise ValueError(f"mode: say whether {metric!r} should be 'min'imized or 'max'imized")
        label = getattr(model, "__name__", type(model).__name__)
        build_model = _torch_best_model
        if seed is not None and "seed" not in tune_space:
            tune_space["seed"] = seed

    if isinstance(searcher, str):
        search_alg = searchers.make_searcher(searcher, seed=seed, **dict(searcher_options or {}))
    elif isinstance(searcher, Searcher):
        search_alg = searcher
    else:
        raise TypeError(
            f"searcher must be a name ({', '.join(searchers.available())}) or a ray.tune "
            f"Searcher, got {type(searcher).__name__}"
        )
    if is_grid:
        num_samples = grid_size(tune_space, searcher_options)
    sched = make_scheduler(scheduler, max_t=max_t, **dict(scheduler_options or {}))

    trainable = tune.with_resources(tune.with_parameters(fn, data=shipped), resources)
    metadata = {
        "model": label,
        "kind": kind,
        "data": data_name,
        "metric": metric,
        "mode": mode,
        "searcher": searcher if isinstance(searcher, str) else type(searcher).__name__,
        "scheduler": scheduler,
        "num_samples": num_samples,
        "max_t": max_t,
        "seed": seed,
    }
    return _Plan(
        trainable=trainable,
        space=tune_space,
        metric=metric,
        mode=mode,
        searcher=search_alg,
        scheduler=sched,
        max_t=max_t,
        num_samples=num_samples,
        label=label,
        metadata=metadata,
        resources=resources,
        build_model=build_model,
    )


def run_experiment(
    trainable: Any,
    space: Mapping[str, Any],
    *,
    metric: str,
    mode: str,
    searcher: Searcher,
    scheduler: Any,
    max_t: int | None,
    num_samples: int,
    max_concurrent: int | None = None,
    time_budget_s: float | None = None,
    storage_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    name_prefix: str = "experiment",
    verbose: int = 1,
    ray_address: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    resources: Mapping[str, float] | None = None,
    pending_timeout_s: float | None = None,
    resume: bool = False,
    retry_errored: bool = False,
    max_failures: int = 0,
    fail_fast: bool = False,
) -> _Run:
    """Run a Tuner with our results writer and progress line (tune_model and TuneSearchCV).

    ``resources`` (one trial's spec, as ``resources_from_spec`` returns it) is checked against the
    cluster before any trial starts (``hpt_ray.cluster.check_feasible``); on an autoscaling
    cluster the run fails when no trial has started after ``pending_timeout_s`` (default
    ``PENDING_TIMEOUT_S``, env ``HPT_RAY_PENDING_TIMEOUT_S``). A ``storage_path`` URI
    (``s3://bucket/dir``, any ``pyarrow.fs`` URI) holds Ray's trial data and state, our log (each
    finished trial uploaded before the driver moves on) and ``results.parquet`` (uploaded as it
    is rewritten); such a run resumes from the URI alone, on this machine or another.

    Faults: ``max_failures`` retries a failing trial from its last checkpoint that many times
    before it is recorded as failed (the experiment goes on); ``fail_fast`` stops the experiment
    at the first failure instead. ``resume=True`` continues the experiment in
    ``<storage_path>/<name>`` if one is there: completed trials are kept, unfinished ones resume
    from their last checkpoint, errored ones are retried only with ``retry_errored``, and the
    searcher's and scheduler's states come back with them; the trial budget counts each trial
    once. Ray saves its experiment state at least every second (``TUNE_GLOBAL_CHECKPOINT_S``,
    unless set) and in the step each trial is added while that has cost at most
    ``HPT_RAY_SNAPSHOT_BUDGET`` (default 2%) of the wall time (`SafeScheduler.bind`), so a
    resumed run knows every trial the crashed one had unless trials last a fraction of a second.
    """
    if not isinstance(max_failures, int) or isinstance(max_failures, bool) or max_failures < 0:
        raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
    if fail_fast and max_failures:
        raise ValueError("fail_fast stops at the first failure: use max_failures=0 with it")
    if max_concurrent is not None and (
        not isinstance(max_concurrent, int)
        or isinstance(max_concurrent, bool)
        or max_concurrent < 1
    ):
        raise ValueError(
            f"max_concurrent must be a positive integer or None, got {max_concurrent!r}"
        )
    if time_budget_s is not None and not (
        isinstance(time_budget_s, (int, float))
        and not isinstance(time_budget_s, bool)
        and time_budget_s > 0
    ):
        raise ValueError(
            f"time_budget_s must be a positive number of seconds, got {time_budget_s!r}"
        )
    remote = storage_path is not None and is_uri(storage_path)
    if remote:
        # Ray writes trial data and its state to the URI itself. Our log, table and scheduler
        # state live in a local staging directory, mirrored to the URI as they are written
        # (each finished trial's log segment before the driver moves on; hpt_ray.results).
        storage: str | Path = str(storage_path).rstrip("/")
        name, location = claim_location(str(storage), name, prefix=name_prefix, resume=resume)
        directory = staging_directory(location)
        # Start from what the URI holds, never from a leftover of an earlier run on this machine.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    else:
        storage = Path(storage_path or DEFAULT_STORAGE).expanduser().resolve()
        name, directory = claim_directory(storage, name, prefix=name_prefix, resume=resume)
        location = str(directory)
    restoring = bool(resume) and tune.Tuner.can_restore(location)
    if resume and not restoring and holds_run(location):
        raise ValueError(
            f"resume: {location} has results but no Ray experiment state to resume from"
        )
    if remote and restoring:
        # On this machine or another: the writer reloads the log, the scheduler its rungs.
        stage_remote_run(location, directory, names=[SafeScheduler.STATE_FILE])
    ensure_ray(ray_address, log_to_driver=verbose >= 2)
    verdict = "fits" if resources is None else check_feasible(resources)

    writer = ResultsWriter(
        directory,
        metric=metric,
        mode=mode,
        max_t=max_t,
        time_budget_s=time_budget_s,
        location=location if remote else None,
        mirror_files=(RESULTS_FILE, SafeScheduler.STATE_FILE),
    )
    # Replaces Ray's TensorBoard logger: HParams view with each trial's whole config.
    callbacks: list[Any] = [writer, HParamsLoggerCallback()]
    if verdict == "autoscaler":
        timeout = PENDING_TIMEOUT_S if pending_timeout_s is None else pending_timeout_s
        callbacks.append(make_pending_timeout(timeout))
    if verbose >= 1:
        callbacks.append(ProgressPrinter(writer, total=num_samples, time_budget_s=time_budget_s))
    write_metadata(
        directory, {**dict(metadata or {}), "metric": metric, "mode": mode, "name": name}
    )
    if remote:
        # Now, not at the end: `hpt-ray show URI` ranks a running experiment with it.
        upload_files(directory, location, [META_FILE])
    if isinstance(scheduler, SafeScheduler):
        # Exact resume (a Ray state save per added trial) for at most 2% of the wall time;
        # HPT_RAY_SNAPSHOT_BUDGET sets the fraction (0: Ray's one-second timer only, 1: always).
        # At a URI a save also waits for the previous upload of Ray's state; the budget bounds it.
        scheduler.bind(directory, snapshot_budget=snapshot_budget(), restore=restoring)
    tuner = tune.Tuner(
        trainable,
        param_space=dict(space),
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=num_samples,
            max_concurrent_trials=max_concurrent,
            time_budget_s=time_budget_s,
            # One actor per trial costs ~1.5 s of process start on 2 cores; reusing actors
            # made 12 short trials 13x faster here (19.0 s -> 1.5 s, noted in BENCHMARKS.md).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            callbacks=callbacks,
            verbose=2 if verbose >= 2 else 0,
            # Every checkpoint is kept: with num_to_keep, a driver killed between Ray deleting an
            # old checkpoint and its next state snapshot resumes from a checkpoint that is gone
            # (seen in tests/test_fault_resume.py). Disk is cheaper than a lost trial.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            failure_config=tune.FailureConfig(max_failures=max_failures, fail_fast=fail_fast),
        ),
    )
    if restoring:
        # Tune restores the searcher (from its own snapshot), the trials and the callbacks as
        # they were pickled at the first start; our writer reloads its log in setup().
        tuner = tune.Tuner.restore(
            location,
            trainable=trainable,
            resume_errored=retry_errored,
            param_space=dict(space),
        )
    with _ray_output(verbose), SigintWatch() as watch:
        try:
            result_grid = tuner.fit()
        except Exception as exc:
            # Tune wraps a callback's exception (TuneError); surface ours with its message.
            for kind in (InfeasibleResourcesError, MetricNotReportedError):
                cause = _find_cause(exc, kind)
                if cause is not None:
                    raise cause from exc
            raise
        interrupted = watch.interrupted()
    # The log holds every trial this experiment ran, with its exact config, also the ones of
    # an earlier session when resumed (its writer was the one pickled at the first start).
    records = read_log(directory)
    frame = records_to_frame(list(records.values()))
    if remote:
        upload_files(directory, location, [RESULTS_FILE, META_FILE, LOG_FILE])
    if interrupted:
        raise ExperimentInterrupted(
            f"interrupted: {len(frame)} trials are recorded in {location}; continue with "
            f"`hpt-ray resume {location}` (from Python: the same call with resume=True)",
            path=location,
            frame=frame,
        )
    return _Run(
        frame=frame,
        last_results={tid: r.last_result for tid, r in records.items()},
        configs={tid: r.config for tid, r in records.items()},
        result_grid=result_grid,
        path=location,
    )


def holds_run(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` (a path or a storage URI) holds (part of) a run: our log or table,
    or Ray's own state."""
    names = {LOG_FILE, SEGMENTS_DIR, RESULTS_FILE, "tuner.pkl", SafeScheduler.STATE_FILE}
    if is_uri(directory):
        present = remote_names(str(directory))
        return bool(present & names) or any(
            n.startswith("experiment_state-") and n.endswith(".json") for n in present
        )
    path = Path(directory)
    if not path.is_dir():
        return False
    return any((path / n).exists() for n in names) or any(path.glob("experiment_state-*.json"))


def claim_location(
    storage: str, name: str | None, *, prefix: str = "experiment", resume: bool = False
) -> tuple[str, str]:
    """`claim_directory` for a storage URI: ``(name, "<storage>/<name>")``.

    Without a ``name`` a fresh one is made; an explicit ``name`` whose location already holds a
    run needs ``resume=True``, else an `ExperimentExistsError`. Nothing is written.
    """
    storage = storage.rstrip("/")
    if name is None:
        while True:
            name = unique_name(prefix)
            if not holds_run(f"{storage}/{name}"):
                return name, f"{storage}/{name}"
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a directory name (no '/'), got {name!r}")
    location = f"{storage}/{name}"
    if not resume and holds_run(location):
        raise ExperimentExistsError(
            f"name: {location} already holds a run. To continue it: resume=True (CLI: "
            f"`hpt-ray resume {location}`); to start a new run: give another name (CLI: "
            "--name NEW), or omit the name for a fresh one; nothing was changed"
        )
    return name, location


def stage_remote_run(location: str, directory: Path, *, names: Sequence[str] = ()) -> None:
    """Rebuild a remote run's staging ``directory`` from ``location``: the log (its segments
    joined) and ``names`` that are there, so that a resumed run continues from them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOG_FILE).write_text(remote_log_text(location), encoding="utf-8")
    for name in names:
        data = read_remote_file(location, name)
        if data is not None:
            (directory / name).write_bytes(data)


def unique_name(prefix: str) -> str:
    """``<prefix>-<YYYYmmdd-HHMMSS>-<4 hex>``: two runs started in the same second differ."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix).strip("-") or "experiment"
    return f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def claim_directory(
    storage: Path, name: str | None, *, prefix: str = "experiment", resume: bool = False
) -> tuple[str, Path]:
    """The run's directory: a new one for a new run, never an earlier run's.

    Without a ``name`` a fresh one is made (`unique_name`). An explicit ``name`` whose directory
    already holds a run needs ``resume=True``; otherwise an `ExperimentExistsError` says how to
    go on. Nothing is deleted.
    """
    if name is None:
        storage.mkdir(parents=True, exist_ok=True)
        while True:
            name = unique_name(prefix)
            try:
                (storage / name).mkdir()
            except FileExistsError:
                continue
            return name, storage / name
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a directory name (no '/'), got {name!r}")
    directory = storage / name
    if not resume and holds_run(directory):
        raise ExperimentExistsError(
            f"name: {directory} already holds a run. To continue it: resume=True (CLI: "
            f"`hpt-ray resume {directory}`); to start a new run: give another name (CLI: "
            "--name NEW), or omit the name for a fresh directory; nothing was changed"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return name, directory


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _ray_output(verbose: int) -> Iterator[None]:
    """Silence Ray's own experiment banner unless verbose >= 2.

    Ray 2.60's new output engine prints its configuration box and TensorBoard hint even at
    ``verbose=0``; its legacy engine (``RAY_AIR_NEW_OUTPUT=0``) honours verbose. Our progress line
    replaces both.
    """
    quiet = {
        "RAY_AIR_NEW_OUTPUT": "0",
        # Checkpointing every epoch with num_to_keep set forces a state snapshot each time; on
        # local disk that costs ~1 ms, but Ray warns each time. Not worth a wall of text.
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    }
    if verbose >= 2:
        quiet = {}
    # A result without the metric (a crashed evaluation, a typo in one branch) must not end the
    # whole experiment: Ray's strict check raises in the driver. Our searchers and schedulers
    # treat such a result as bad instead (see searchers.base and hpt_ray.schedulers).
    quiet["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Snapshot Ray's experiment state (trials + searcher) at least every second instead of Ray's
    # adaptive 10 s or more: a killed driver then loses at most a second of bookkeeping.
    quiet["TUNE_GLOBAL_CHECKPOINT_S"] = "1"
    added = [k for k in quiet if k not in os.environ]
    for key in added:
        os.environ[key] = quiet[key]
    # After Ctrl-C Ray names its own Tuner.restore; ExperimentInterrupted names `hpt-ray resume`.
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(_drop_ray_restore_hint)
    try:
        yield
    finally:
        tune_logger.removeFilter(_drop_ray_restore_hint)
        for key in added:
            os.environ.pop(key, None)


def _drop_ray_restore_hint(record: logging.LogRecord) -> bool:
    return "Tuner.restore(" not in record.getMessage()


def grid_size(space: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> int:
    """Number of configurations the grid searcher will enumerate for ``space``.

    Asked of a probe: a searcher that has already seen its space makes Tune refuse the space.
    """
    probe = searchers.make_searcher("grid", **dict(options or {}))
    probe.set_search_properties("_", "max", dict(space))
    size = probe.grid_size if isinstance(probe, searchers.GridSearcher) else None
    if size is None:
        raise ValueError(f"space: the grid searcher could not enumerate {dict(space)!r}")
    return int(size)


def snapshot_budget() -> float:
    """``HPT_RAY_SNAPSHOT_BUDGET``: the fraction of wall time that per-trial Ray state saves may
    take (default 0.02; see `hpt_ray.schedulers.SafeScheduler.bind`)."""
    raw = os.environ.get("HPT_RAY_SNAPSHOT_BUDGET", "0.02")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"HPT_RAY_SNAPSHOT_BUDGET must be a number in [0, 1], got {raw!r}")
    return value


def ensure_ray(address: str | None = None, *, log_to_driver: bool = True) -> None:
    """Connect to ``address`` (or RAY_ADDRESS), or start a fresh local Ray.

    Without an address we always start our own local instance (``address="local"``) rather than
    Ray's default of joining whatever ``ray start`` cluster this machine last ran: a workstation
    run should not land on someone else's cluster. ``address="auto"`` joins that cluster.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        ray.init(address=address)
    else:
        # Trial stdout stays in each trial's log file unless asked for (verbose=2): Ray's own
        # per-checkpoint INFO lines would otherwise drown the progress display.
        ray.init(address="local", include_dashboard=False, log_to_driver=log_to_driver)


def _resolve_model(model: Any) -> tuple[str, Any]:
    if isinstance(model, BaseEstimator):
        return "sklearn", model
    if inspect.isclass(model) and issubclass(model, BaseEstimator):
        try:
            return "sklearn", model()
        except TypeError as exc:
            raise TypeError(
                f"model: {model.__name__}() needs arguments ({exc}); pass an instance"
            ) from exc
    if callable(model):
        return "torch", model
    raise TypeError(
        "model must be a scikit-learn estimator (instance or class) or a PyTorch model factory "
        f"config -> torch.nn.Module, got {type(model).__name__}"
    )


def _max_stages(estimator: Any, space: Mapping[str, Any], max_stages: int) -> int:
    """Reports a trial makes when run to the end: ASHA's max_t.

    When the space searches the staged parameter itself (n_estimators, max_iter), trials differ
    in their number of stages; take the count at a large value so no trial makes more reports
    than max_t.
    """
    staged = [k for k in space if k.rsplit("__", 1)[-1] in ("n_estimators", "max_iter")]
    if not staged:
        return n_stages(estimator, max_stages)
    from sklearn.base import clone

    return n_stages(clone(estimator).set_params(**{k: 10**6 for k in staged}), max_stages)


def _check_metric(metric: str, keys: list[str], *, who: str) -> None:
    """A metric the built-in trainable never reports is refused before any trial."""
    if metric not in keys:
        raise MetricNotReportedError(missing_metric_message(metric, keys, who=who))


def _sklearn_keys(scoring: Any, splits: Any) -> list[str]:
    """The keys a scikit-learn trial reports (``trainables.sklearn_trainable``'s docstring)."""
    if isinstance(scoring, (Mapping, list, tuple, set)):
        names = [str(k) for k in scoring]
    else:
        names = ["score"]
    n_splits = 1 if splits is None else len(splits)
    keys = ["stage", "mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"]
    for name in names:
        keys += [f"mean_test_{name}", f"std_test_{name}"]
        keys += [f"split{i}_test_{name}" for i in range(n_splits)]
    return keys


def _torch_keys(task: str) -> list[str]:
    """The keys a PyTorch trial reports (``trainables.torch_trainable``'s docstring)."""
    quality = "val_accuracy" if task == "classification" else "val_r2"
    return ["epoch", "train_loss", "val_loss", quality]


def _materialize_cv(cv: Any, estimator: Any, dataset: Dataset) -> Any:
    """Fixed folds: every trial is scored on the same splits (a shuffling splitter would not)."""
    if cv is None:
        return None
    if isinstance(cv, bool):
        raise ValueError(
            f"cv must be an int >= 2, a splitter or an iterable of splits, got {cv!r}"
        )
    if isinstance(cv, int) and cv < 2:
        raise ValueError(f"cv must be at least 2 folds, got {cv}")
    splitter = check_cv(cv, dataset.y, classifier=is_classifier(estimator))
    return [(train, test) for train, test in splitter.split(dataset.X, dataset.y)]


__all__: Sequence[str] = (
    "TuneResult",
    "ensure_ray",
    "plan_experiment",
    "run_experiment",
    "tune_model",
)
