"""``run_experiment``: one Ray Tune run with our results writer, progress line and fault handling.

Used by ``tune_model`` and ``TuneSearchCV``: it claims the run's directory (``hpt_ray.storage``),
starts or joins Ray (`ensure_ray`), checks that a trial fits the cluster, runs the ``Tuner``
(or restores it on ``resume``) and returns every trial as a table, also after Ctrl-C
(`ExperimentInterrupted`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune.search import Searcher

from hpt_ray.cluster import (
    InfeasibleResourcesError,
    check_feasible,
    make_pending_timeout,
)
from hpt_ray.objective import MetricNotReportedError
from hpt_ray.pbt import CheckpointRequiredError
from hpt_ray.progress import ProgressPrinter
from hpt_ray.ray_state import RestoreGuard, ResumeStateError, check_ray_state, repair_from_staging
from hpt_ray.results import ResultsWriter, SigintWatch
from hpt_ray.schedulers import SafeScheduler
from hpt_ray.settings import RunSettings, SearchSettings
from hpt_ray.storage import (
    DEFAULT_STORAGE,
    LOG_FILE,
    META_FILE,
    RESULTS_FILE,
    claim_directory,
    claim_location,
    holds_run,
    is_uri,
    stage_remote_run,
    staging_directory,
    upload_files,
)
from hpt_ray.table import records_to_frame, write_metadata
from hpt_ray.tensorboard import HParamsLoggerCallback
from hpt_ray.trial_log import read_log

# With an autoscaler, check_feasible cannot know whether a node type could hold a trial; a run
# whose trials all stay pending this long fails instead of waiting forever (hpt_ray.cluster).
# A cloud node takes minutes to boot and install, hence the generous default.
PENDING_TIMEOUT_S = float(os.environ.get("HPT_RAY_PENDING_TIMEOUT_S", "900"))


class ExperimentInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); everything that finished is on disk and it can resume.

    A ``KeyboardInterrupt``, so code that does not catch it stops as on any Ctrl-C.

    Args:
        message: what happened and how to resume (the exception's text).
        path: the experiment directory or URI (also the ``path`` attribute).
        frame: the trials table so far (also the ``frame`` attribute).
    """

    def __init__(self, message: str, *, path: str, frame: pd.DataFrame) -> None:
        super().__init__(message)
        self.path = path
        self.frame = frame


@dataclass
class _Run:
    """Internal: the outcome of ``run_experiment``; TuneSearchCV and tune_model build on it."""

    frame: pd.DataFrame
    last_results: dict[str, dict[str, Any]]
    configs: dict[str, dict[str, Any]]
    result_grid: Any
    path: str


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
    # The same checks as tune_model's, in one place (hpt_ray.settings), for direct callers.
    RunSettings(
        storage_path=storage_path,
        name=name,
        resume=resume,
        retry_errored=retry_errored,
        max_failures=max_failures,
        fail_fast=fail_fast,
        verbose=verbose,
        ray_address=ray_address,
    )
    SearchSettings(
        searcher=searcher,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        time_budget_s=time_budget_s,
    )
    remote = storage_path is not None and is_uri(storage_path)
    if remote:
        # Ray writes trial data and its state to the URI itself. Our log, table and scheduler
        # state live in a local staging directory, mirrored to the URI as they are written
        # (each finished trial's log segment before the driver moves on; hpt_ray.storage).
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
    if restoring:
        # Before Ray sees it: Ray restarts an experiment whose state it cannot read, from zero,
        # in the same directory, and the resume exits 0 (hpt_ray.ray_state explains). A file
        # cut short by a kill mid-copy is replaced by the killed driver's own copy if it is here.
        if not remote:
            repair_from_staging(directory)
        check_ray_state(location)
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
    guard = RestoreGuard(location) if restoring else contextlib.nullcontext()
    with _ray_output(verbose), guard, SigintWatch() as watch:
        try:
            result_grid = tuner.fit()
        except Exception as exc:
            # Tune wraps a callback's exception (TuneError); surface ours with its message.
            ours = (
                InfeasibleResourcesError,
                MetricNotReportedError,
                CheckpointRequiredError,
                ResumeStateError,
            )
            for kind in ours:
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
