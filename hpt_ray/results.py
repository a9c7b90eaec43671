"""The results writer: a Ray Tune ``Callback`` on the driver that keeps one record per trial, logs
each finished trial durably and writes the trials table.

What it writes: the trial log ``trials.jsonl`` (`hpt_ray.trial_log`; each finished trial's
``end`` line is ``fsync``-ed before the driver moves on, so a crash, even a power cut, never
loses one) and ``results.parquet`` (`hpt_ray.table`: the columns and what each status means),
rebuilt from the records at most once per ``min_write_interval_s`` while trials finish, and at
the end. A run at a storage URI writes both in a local staging directory and mirrors them there
(`hpt_ray.storage.RemoteMirror`): each finished trial's log bytes go up as a new segment before
the driver moves on, the table each time it is rewritten.

`SigintWatch` tells the writer (and the run) whether the fit ended because of Ctrl-C, so trials
cut short are ``interrupted`` rather than ``timeout``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from hpt_ray.objective import MetricNotReportedError, better, finite_metric, missing_metric_message
from hpt_ray.ray_state import note_staging
from hpt_ray.storage import RESULTS_FILE, RemoteMirror
from hpt_ray.table import (
    FINAL_STATUSES,
    RAY_KEYS,
    records_to_frame,
    to_jsonable,
    write_results,
)
from hpt_ray.trial_log import ROW_FIELDS, TrialLog, TrialRecord, pickle_config, read_log


def _sigint_sentinel(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class SigintWatch:
    """Tells whether Ray Tune's fit ended because of Ctrl-C (SIGINT).

    Ray installs its own SIGINT handler for the fit; on the first signal it stops the loop,
    saves its state, puts back the handler it found, and returns normally. We install a
    sentinel just before the fit, so that after (or at the experiment's end) the sentinel being
    the handler again means the signal came. Outside the main thread neither does anything.
    """

    def __enter__(self) -> SigintWatch:
        self._previous: Any = None
        try:
            self._previous = signal.signal(signal.SIGINT, _sigint_sentinel)
        except ValueError:  # not the main thread: Ray does not catch signals either
            self._previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    @staticmethod
    def interrupted() -> bool:
        try:
            return signal.getsignal(signal.SIGINT) is _sigint_sentinel
        except ValueError:
            return False


class ResultsWriter(Callback):
    """Keeps one record per trial; logs each finished trial durably and writes the table.

    Args:
        directory: the experiment directory (created if needed); for a run at a URI, the local
            staging directory.
        location: the experiment's URI when it is stored remotely: each finished trial's log
            segment, and ``mirror_files`` (from ``directory``) each time the table is rewritten,
            are uploaded there (see the module docstring).
        mirror_files: the files of ``directory`` copied to ``location`` with the table.
        metric, mode: the experiment's objective.
        max_t: reports a trial makes when run to the end (the scheduler's ``max_t``): a STOP at
            or after it is the normal end of a trial, not an early stop. None when unknown.
        time_budget_s: the experiment's time budget, if any: trials still running when it ran
            out are ``timeout``, not ``interrupted``.
        min_write_interval_s: at most one rewrite of ``results.parquet`` per interval while
            trials finish (always one at the end); the log makes every finished trial durable
            at once, so the table can lag.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        metric: str,
        mode: str,
        max_t: int | None = None,
        time_budget_s: float | None = None,
        min_write_interval_s: float = 1.0,
        location: str | None = None,
        mirror_files: Sequence[str] = (RESULTS_FILE,),
    ) -> None:
        self.directory = Path(directory)
        self.mirror = None if location is None else RemoteMirror(location)
        self.mirror_files = tuple(mirror_files)
        self.metric = metric
        self.mode = mode
        self.max_t = max_t
        self.time_budget_s = time_budget_s
        self.min_write_interval_s = min_write_interval_s
        self.records: dict[str, TrialRecord] = {}
        self.log = TrialLog(self.directory)
        self._frozen: set[str] = set()
        self._metric_seen = False
        self._fatal: Exception | None = None
        self._last_write = 0.0
        self._started = time.monotonic()

    # -- Ray Tune callback hooks, in lifecycle order -------------------------------------------
    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        """Start from the log of an earlier run of this experiment (a resume), if any."""
        self._started = time.monotonic()
        self._staging_noted = False
        if self.mirror is not None:
            self.mirror.start(self.log.path)
        if self.records:
            return
        self.records = read_log(self.directory)
        for record in self.records.values():
            if record.status in FINAL_STATUSES:
                self._frozen.add(record.trial_id)
            if record.final_metric is not None or record.best_metric is not None:
                self._metric_seen = True

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.mirror is None and not getattr(self, "_staging_noted", True):
            # Where this session's driver stages Ray's state: a resume after a kill mid-copy
            # repairs a file cut short from it (hpt_ray.ray_state).
            self._staging_noted = True
            storage = getattr(trial, "storage", None)
            if storage is not None:
                note_staging(self.directory, storage.experiment_driver_staging_path)
        if trial.trial_id in self._frozen:
            return
        self._record(trial).status = "running"

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if trial.trial_id in self._frozen:
            return
        if self.metric in result:
            self._metric_seen = True
        elif not self._metric_seen:
            # No report so far has carried the metric: a typo, or the wrong trainable. Ray's own
            # check is off (it would also end the run on one hostile report later on). Raised
            # here, Ray would only fail this trial; on_step_end ends the experiment.
            keys = [k for k in result if k not in RAY_KEYS and not k.startswith("config/")]
            self._fatal = MetricNotReportedError(
                missing_metric_message(self.metric, keys, who=f"trial {trial.trial_id}")
            )
            return
        record = self._record(trial)
        record.status = "running"
        self._add_result(record, result)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._fatal is not None:
            raise self._fatal

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._frozen:
            return
        record = self._record(trial)
        record.status = self._ended_status(record)
        if record.status == "error":
            record.error = str(record.last_result.get("trial_error"))
        if not record.iterations and not record.last_result:
            # A training function that returned without reporting: nothing to rank it by.
            record.status = "error"
            record.error = (
                "the trial ended without reporting any result; a training function reports "
                f"with hpt_ray.report({{{self.metric!r}: ...}}) (ray.tune.report) or returns "
                "its metric"
            )
            if not self._metric_seen:
                self._fatal = MetricNotReportedError(f"trial {trial.trial_id}: {record.error}")
        record.checkpoint = _checkpoint_path(trial)
        self._end(record)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._frozen:
            return
        record = self._record(trial)
        record.status = "error"
        record.error = _error_text(trial)
        record.checkpoint = _checkpoint_path(trial)
        self._end(record)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        order = {trial.trial_id: i for i, trial in enumerate(trials)}
        cut = "timeout" if self._out_of_time() else "interrupted"
        for trial in trials:
            record = self._record(trial)
            if trial.trial_id in self._frozen or record.ended:
                continue
            if record.status in ("running", "pending"):
                if str(getattr(trial, "status", "")) == "PENDING" and not record.iterations:
                    continue  # never started: a pending row, nothing to keep
                # Still running when the loop ended: Ctrl-C, or the time budget ran out.
                record.status = cut
                record.checkpoint = record.checkpoint or _checkpoint_path(trial)
                self._end(record)
        for trial_id, record in self.records.items():
            if trial_id not in order and record.status in ("running", "pending"):
                # In flight when an earlier driver died, after Ray's last snapshot: Ray does not
                # know it, and its budget slot went to a new trial. Its partial row is kept.
                record.status = "interrupted"
        # Rows in trial creation order (Tune's list), not start order: the grid searcher's order
        # is scikit-learn's ParameterGrid order, which TuneSearchCV's tie-breaking depends on.
        self.records = dict(
            sorted(self.records.items(), key=lambda item: order.get(item[0], len(order)))
        )
        # The log is in start order; this line gives readers of the log the table's order.
        self.log.append({"event": "order", "trial_ids": list(self.records)}, durable=True)
        self._write(force=True)
        self.log.close()

    # -- table ---------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """The trials table (see `hpt_ray.table`), in trial creation order."""
        return records_to_frame(list(self.records.values()))

    def _record(self, trial: Any) -> TrialRecord:
        record = self.records.get(trial.trial_id)
        if record is None:
            record = TrialRecord(trial_id=trial.trial_id, config=dict(trial.config))
            self.records[trial.trial_id] = record
            self.log.append(
                {
                    "event": "start",
                    "trial_id": record.trial_id,
                    "config": pickle_config(record.config),
                },
                durable=False,
            )
        return record

    def _add_result(self, record: TrialRecord, result: Mapping[str, Any]) -> None:
        record.last_result = dict(result)
        record.ended = False
        record.iterations = int(result.get("training_iteration", record.iterations + 1))
        record.wall_time_s = float(result.get("time_total_s", record.wall_time_s))
        record.stop_decided = bool(result.get("done"))
        value = finite_metric(result.get(self.metric))
        record.final_metric = value
        if value is None:
            record.bad_reports += 1
            return
        if record.best_metric is None or better(value, record.best_metric, self.mode):
            record.best_metric = value
            record.best_iteration = record.iterations

    def _ended_status(self, record: TrialRecord) -> str:
        last = record.last_result
        if last.get("trial_error"):
            return "error"
        if last.get("stop_reason") == "diverged":
            return "diverged"
        if record.stop_decided and (self.max_t is None or record.iterations < self.max_t):
            return "stopped"
        return "completed"

    def _out_of_time(self) -> bool:
        if self.time_budget_s is None or SigintWatch.interrupted():
            return False
        return time.monotonic() - self._started >= self.time_budget_s

    def _end(self, record: TrialRecord) -> None:
        """Log the finished trial durably, then (throttled) rewrite the table."""
        record.ended = True
        row = {name: getattr(record, name) for name in ROW_FIELDS}
        self.log.append(
            {
                "event": "end",
                "trial_id": record.trial_id,
                "row": row,
                "last_result": to_jsonable(
                    {k: v for k, v in record.last_result.items() if k != "config"}
                ),
            },
            durable=True,
        )
        if self.mirror is not None:
            self.mirror.push_log(self.log.path)
        self._write(force=False)

    def _write(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_write_interval_s:
            return
        write_results(self.frame(), self.directory)
        self._last_write = now
        if self.mirror is not None:
            if force:
                # The end: start lines of trials that never finished go up too.
                self.mirror.push_log(self.log.path)
            for name in self.mirror_files:
                self.mirror.put_file(self.directory / name)


def _checkpoint_path(trial: Any) -> str | None:
    try:
        checkpoint = trial.checkpoint
    except (AttributeError, RuntimeError):
        return None
    return None if checkpoint is None else str(checkpoint.path)


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        text = Path(path).read_text(errors="replace").strip()
        # The last line of a traceback names the exception; that is what a leaderboard row needs.
        return text.splitlines()[-1] if text else "error"
    return "error"
