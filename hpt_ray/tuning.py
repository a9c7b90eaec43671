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

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune.search import Searcher

from hpt_ray.pbt import read_schedule
from hpt_ray.plan import plan_experiment
from hpt_ray.run import ExperimentInterrupted, run_experiment
from hpt_ray.settings import RunSettings, SearchSettings, TrialSettings
from hpt_ray.storage import DEFAULT_STORAGE, ExperimentExistsError, claim_directory, claim_location
from hpt_ray.table import best_row


@dataclass
class TuneResult:
    """What a tuning run found.

    Attributes:
        best_config: the configuration of the best trial (by its final reported metric), exactly
            as the trial got it (tuples stay tuples, also after a resume). Under "pbt"/"pb2":
            the values it trained its last report with (its whole history is in ``schedule``).
        best_score: that trial's final metric value (None if no trial reported a finite value).
        best_checkpoint: the best trial's latest ``ray.tune.Checkpoint`` (PyTorch trials), else
            None.
        trials: one row per trial (see ``hpt_ray.table``): config columns, final and best
            metric, status, iterations run, wall time, error.
        path: the experiment directory, holding ``results.parquet`` and Ray's own files.
        metric, mode: the objective the run optimized.
        result_grid: Ray's ``ResultGrid`` for anything else (per-trial metric histories, logs).
        schedule: under "pbt"/"pb2", each member's perturbed values at every report, with the
            exploits (``schedule.parquet``, see ``hpt_ray.pbt``); None for other schedulers.
    """

    best_config: dict[str, Any] | None
    best_score: float | None
    best_checkpoint: Any
    trials: pd.DataFrame
    path: str
    metric: str
    mode: str
    result_grid: Any = None
    schedule: pd.DataFrame | None = None
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
        """Write this experiment's one-file HTML report (see ``hpt_ray.html_report``); its path.

        Args:
            path: the HTML file (default: ``report.html`` in the experiment directory).
        """
        from hpt_ray.html_report import report_html

        return report_html(self.path, path)

    def __repr__(self) -> str:
        return (
            f"TuneResult(best_score={self.best_score!r}, best_config={self.best_config!r}, "
            f"trials={len(self.trials)}, path={self.path!r})"
        )


def tune_model(
    model: Any,
    space: Mapping[str, Any],
    *,
    data: Any = None,
    kind: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    searcher: str | Searcher = "optuna-tpe",
    searcher_options: Mapping[str, Any] | None = None,
    scheduler: str = "asha",
    scheduler_options: Mapping[str, Any] | None = None,
    num_samples: int = 20,
    max_concurrent: int | None = None,
    resources_per_trial: Mapping[str, Any] | None = None,
    epochs: int | None = None,
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
        model: your training function ``train_fn(config)`` that reports with
            ``hpt_ray.report`` (or ``ray.tune.report``; see ``hpt_ray.function``, and
            ``hpt_ray.with_data`` to hand it large objects); a scikit-learn estimator (instance
            or class); or a PyTorch model factory ``config -> nn.Module`` trained by the
            built-in trainable (e.g. ``trainables.torch_trainable.mlp``; in files
            ``trainables.torch_trainable:mlp``).
        space: parameter name -> Ray Tune domain, list (a choice), scipy.stats distribution or
            constant, or a choice between sub-spaces (dicts with their own domains); see
            ``hpt_ray.user_space``. For PyTorch, training keys (``lr``, ``optimizer``,
            ``lr_schedule``, ``freeze_epochs``, ... listed in ``trainables.torch_trainable``)
            configure training; the whole config goes to the factory.
        data: for the built-in trainables ``(X, y)``, ``((X_train, y_train), (X_val, y_val))``,
            or a bundled scikit-learn data set name ("digits", "breast_cancer", "wine", "iris",
            "diabetes"); NaN or inf the model cannot take is refused before any trial, naming
            the column. PyTorch also takes a ``(train_ds, val_ds)`` pair of torch Datasets or a
            factory ``config -> (train_ds, val_ds)`` (``trainables.torch_data``). For a training
            function (optional): passed to it as the keyword ``data``, via Ray's object store.
        kind: "function", "torch" or "sklearn"; None detects it (rules in
            ``hpt_ray.function``: an estimator is "sklearn"; a callable annotated
            ``-> nn.Module`` or given ``data`` is a PyTorch model factory; otherwise a training
            function).
        metric, mode: what to optimize; required for a training function. Defaults:
            scikit-learn ``mean_test_score``/max (the scorer's value, greater is better, as in
            GridSearchCV); PyTorch ``val_accuracy``/max, or ``val_loss``/min for regression.
            A metric the model never reports is refused before any trial (for a training
            function: at its first report), naming the keys it does report.
        searcher: a name from ``searchers.available()`` or a Ray ``Searcher`` instance.
        searcher_options: keyword options for ``searchers.make_searcher``.
        scheduler: "asha" (default), "hyperband", "median", "fifo", "pbt" or "pb2". Fidelity is
            one report: an epoch or a stage. Under "fifo" scikit-learn estimators are fit once
            (no stages), so they score as GridSearchCV does. "pbt" and "pb2" train a population
            (``num_samples`` members, drawn by ``searcher``) that copies its better members'
            checkpoints and perturbs their hyperparameters (``hpt_ray.pbt``): PyTorch models and
            training functions that checkpoint, not scikit-learn estimators.
        scheduler_options: keyword options for the scheduler (``grace_period``,
            ``reduction_factor``, ... see ``hpt_ray.make_scheduler``; for "pbt"
            ``perturbation_interval``, ``quantile_fraction`` and ``explore``: "ray" or one of
            our searchers, "gp-ei", "pso", "genetic"); an unknown one is refused with the
            closest accepted name.
        num_samples: number of trials (ignored by the grid searcher, which runs its whole grid);
            the population under "pbt"/"pb2".
        max_concurrent: at most this many trials at once (default: as many as resources allow).
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0.5}`` (default ``{"cpu": 1}``).
        epochs: reports per trial when run to the end (the scheduler's ``max_t``): PyTorch
            epochs (default 10; a constant ``epochs`` in ``space`` overrides), or the most
            reports a training function makes (default 100).
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
        ray_address: connect to this Ray cluster instead of starting (or reusing) a local one.

    Raises:
        InvalidParameterError: a bad argument (a ValueError and a TypeError), before Ray starts;
            the message names it, what it got and the fix.
        ExperimentInterrupted: on Ctrl-C, once everything finished is on disk.
    """
    # The flat keywords in three groups, each validated in one place (hpt_ray.settings).
    search = SearchSettings(
        searcher=searcher,
        searcher_options=searcher_options or {},
        scheduler=scheduler,
        scheduler_options=scheduler_options or {},
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        time_budget_s=time_budget_s,
        seed=seed,
    )
    trial = TrialSettings(
        resources_per_trial=resources_per_trial,
        epochs=epochs,
        max_stages=max_stages,
        cv=cv,
        scoring=scoring,
        trainer_options=trainer_options or {},
    )
    settings = RunSettings(
        storage_path=storage_path,
        name=name,
        resume=resume,
        retry_errored=retry_errored,
        max_failures=max_failures,
        fail_fast=fail_fast,
        verbose=verbose,
        ray_address=ray_address,
    )
    plan = plan_experiment(
        model, space, data=data, metric=metric, mode=mode, kind=kind, search=search, trial=trial
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
        max_concurrent=search.max_concurrent,
        time_budget_s=search.time_budget_s,
        name_prefix=plan.label,
        metadata=plan.metadata,
        resources=plan.resources,
        **vars(settings),
    )
    best = best_row(run.frame, plan.mode)
    best_checkpoint = None
    if best is not None and run.result_grid is not None:
        for result in run.result_grid:
            if (result.metrics or {}).get("trial_id") == best["trial_id"]:
                best_checkpoint = result.checkpoint
                break
    # A population run's schedule (hpt_ray.pbt); None for other schedulers.
    schedule = None if _is_uri(run.path) else read_schedule(run.path)
    best_config = None if best is None else run.configs[best["trial_id"]]
    if best is not None and best_config is not None and schedule is not None:
        best_config = _last_values(best_config, schedule, str(best["trial_id"]))
    result = TuneResult(
        best_config=best_config,
        best_score=None if best is None else float(best["final_metric"]),
        best_checkpoint=best_checkpoint,
        trials=run.frame,
        path=run.path,
        metric=plan.metric,
        mode=plan.mode,
        result_grid=run.result_grid,
        schedule=schedule,
        _build_model=plan.build_model,
    )
    _warn_failures(run.frame, plan.metric)
    return result


def _last_values(config: dict[str, Any], schedule: pd.DataFrame, trial_id: str) -> dict[str, Any]:
    """``config`` with the perturbed values of trial ``trial_id``'s last report."""
    rows = schedule[schedule["trial_id"] == trial_id]
    if rows.empty:
        return config
    last = rows.sort_values("iteration").iloc[-1]
    updated = dict(config)
    for column in rows.columns:
        if column.startswith("config/"):
            value = last[column]
            updated[column[len("config/") :]] = value.item() if hasattr(value, "item") else value
    return updated


def _is_uri(path: str) -> bool:
    from hpt_ray.storage import is_uri

    return bool(is_uri(path))


def load_model(checkpoint: Any) -> Any:
    """A PyTorch trial's checkpoint as a module ready to predict on raw features: the run's
    standardization inside, in eval mode, on the CPU (``trainables.torch_trainable.load_model``).

    Args:
        checkpoint: a ``ray.tune.Checkpoint`` (``result.best_checkpoint``) or its directory.
    """
    from trainables.torch_trainable import load_model as load_torch_model

    return load_torch_model(checkpoint)


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


__all__: Sequence[str] = (
    "DEFAULT_STORAGE",
    "ExperimentExistsError",
    "ExperimentInterrupted",
    "TrialFailuresWarning",
    "TuneResult",
    "claim_directory",
    "claim_location",
    "load_model",
    "tune_model",
)
