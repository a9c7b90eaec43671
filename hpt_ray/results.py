"""Experiment results: one row per trial, durable as each trial finishes, stored as
``results.parquet``.

The same table feeds ``TuneResult.trials``, ``hpt-ray show`` and ``TuneSearchCV.cv_results_``.
The writer is a Ray Tune ``Callback`` on the driver. Two files hold what it knows:

- ``trials.jsonl``, an append-only log: a ``start`` line when a trial first starts (its exact
  config, pickled, so a resumed run returns tuples as tuples) and an ``end`` line with the
  trial's row each time it finishes. Each ``end`` line is flushed and ``fsync``-ed before the
  driver moves on, so a crash (even a power cut) never loses a finished trial. A resumed run
  reads the log back; the last ``end`` line of a trial wins.
- ``results.parquet``, the table rebuilt from the records (atomically: temp file, then
  ``os.replace``) at most once per ``min_write_interval_s`` while trials finish, and at the end.

Remote storage (``storage_path`` a URI such as ``s3://bucket/hpt``, through ``pyarrow.fs``): the
writer keeps both files in a local staging directory and mirrors them to the experiment's
location. S3 has no append, so the log goes up in *segments*: after each durable local append of
an ``end`` line, the bytes appended since the last upload become a new object
``<location>/trials.jsonl.d/<6-digit sequence>.jsonl`` (``start`` lines ride with the next one),
so a finished trial is on the storage before the driver moves on. ``read_log(URI)`` concatenates
the segments in order; ``results.parquet`` goes up each time it is rewritten.

Columns of ``results.parquet``:
    trial_id; status (see ``STATUSES``); final_metric (last reported value of the experiment's
    metric); best_metric (best value over the trial's reports, in the experiment's mode);
    best_iteration; iterations (reports made); bad_reports (reports whose metric was NaN, inf or
    not a number); wall_time_s; error (the exception's last line, or what the trainable reported
    as ``trial_error``); checkpoint (path of the latest checkpoint); config_json (the config as
    JSON); and one ``config/<name>`` column per parameter (nested keys joined by "/").

Statuses are recorded from what ended each trial, not inferred from its length:
    completed: the trainable returned (or reached the scheduler's ``max_t``);
    stopped: the scheduler stopped it early (its STOP decision, which Ray marks with
    ``done=True`` on the result it judged, before any callback sees that result);
    diverged: the trainable ended itself and said why (``stop_reason="diverged"``);
    error: the trainable raised, or reported ``trial_error`` (a scikit-learn fit that failed
    under a numeric ``error_score``);
    interrupted: still running when the experiment was interrupted (Ctrl-C) or its driver died;
    ``hpt-ray resume`` runs it on, and its row is rewritten when it finishes;
    timeout: still running when ``time_budget_s`` ran out;
    running, pending: in flight (a snapshot of a running experiment).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import math
import os
import signal
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ray import cloudpickle
from ray.tune import Callback

RESULTS_FILE = "results.parquet"
LOG_FILE = "trials.jsonl"
META_FILE = "experiment.json"
# At a URI, the log is a folder of segments (S3 objects cannot be appended to).
SEGMENTS_DIR = "trials.jsonl.d"
META_VERSION = 1
LOG_VERSION = 1
# The fields of a trial's row that an ``end`` log line carries (config and last result aside).
ROW_FIELDS = (
    "status",
    "final_metric",
    "best_metric",
    "best_iteration",
    "iterations",
    "bad_reports",
    "wall_time_s",
    "error",
    "checkpoint",
)

STATUSES = (
    "completed",
    "stopped",
    "diverged",
    "error",
    "interrupted",
    "timeout",
    "running",
    "pending",
)
# A finished trial's row is final; a resumed run that runs it again (Ray's snapshot may lag our
# log by up to a second) does not change it. Interrupted, timed-out and errored trials can run
# again on resume (errored ones with --retry-errored), and their rows follow.
FINAL_STATUSES = frozenset({"completed", "stopped", "diverged"})
# Keys every Ray result carries: not the trainable's own metrics.
RAY_KEYS = frozenset(
    {
        "time_this_iter_s",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "timestamp",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
        "experiment_tag",
        "should_checkpoint",
    }
)


class MetricNotReportedError(ValueError):
    """The experiment's metric is not among the keys the trainable reports."""


def missing_metric_message(metric: str, keys: list[str], *, who: str) -> str:
    """The message for a metric that ``who`` does not report: the keys it does, the closest."""
    close = difflib.get_close_matches(metric, keys, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(repr(k) for k in sorted(keys)) or "none"
    return f"metric: {who} does not report {metric!r}; it reports {shown}{hint}"


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


def finite_metric(value: Any) -> float | None:
    """The metric as a float, or None when it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"a/b": value}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}/"))
        else:
            flat[name] = value
    return flat


def to_jsonable(value: Any) -> Any:
    """Plain JSON types for configs with numpy scalars, tuples or other objects (kept as repr)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return to_jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return repr(value)


@dataclass
class _TrialRecord:
    trial_id: str
    config: dict[str, Any]
    status: str = "pending"
    final_metric: float | None = None
    best_metric: float | None = None
    best_iteration: int | None = None
    iterations: int = 0
    bad_reports: int = 0
    wall_time_s: float = 0.0
    error: str | None = None
    checkpoint: str | None = None
    last_result: dict[str, Any] = field(default_factory=dict)
    # The scheduler said STOP at the last report (Ray sets done=True on that result).
    stop_decided: bool = False
    ended: bool = False


class TrialLog:
    """``trials.jsonl``: append-only, one JSON object per line (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOG_FILE
        self._handle: Any = None

    def append(self, entry: Mapping[str, Any], *, durable: bool) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            if created:
                _fsync_directory(self.path.parent)
        self._handle.write(json.dumps({"v": LOG_VERSION, **entry}, allow_nan=True) + "\n")
        self._handle.flush()
        if durable:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment state: an open file does not travel.
        return {"path": self.path, "_handle": None}


def read_log(directory: str | os.PathLike[str]) -> dict[str, _TrialRecord]:
    """The records in ``directory/trials.jsonl``, in the table's order (trial creation order once
    the run ended; start order before), empty if there is none.

    ``directory`` may be a storage URI: its log segments are read in order (see the module
    docstring), or its whole ``trials.jsonl`` for a run that left no segments.
    A line cut short by a crash mid-write (only ever the last one) is skipped with a warning.
    """
    if "://" in str(directory):
        text = remote_log_text(str(directory))
        source = f"{str(directory).rstrip('/')}/{SEGMENTS_DIR}"
    else:
        path = Path(directory) / LOG_FILE
        if not path.exists():
            return {}
        text = path.read_text(encoding="utf-8")
        source = str(path)
    return _parse_log(text, source=source)


def _parse_log(text: str, *, source: str) -> dict[str, _TrialRecord]:
    records: dict[str, _TrialRecord] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(
                f"{source}:{number}: an unreadable line (cut short by a crash?) is skipped",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        if entry.get("event") == "order":
            rank = {str(t): i for i, t in enumerate(entry["trial_ids"])}
            records = dict(sorted(records.items(), key=lambda item: rank.get(item[0], len(rank))))
            continue
        trial_id = str(entry["trial_id"])
        config = _unpickle_config(entry["config"]) if "config" in entry else None
        record = records.get(trial_id)
        if record is None:
            record = _TrialRecord(trial_id=trial_id, config=config or {})
            records[trial_id] = record
        elif config is not None:
            record.config = config
        if entry.get("event") == "end":
            row = entry["row"]
            for name in ROW_FIELDS:
                setattr(record, name, row[name])
            record.last_result = dict(entry.get("last_result") or {})
            record.ended = True
    return records


def _pickle_config(config: Mapping[str, Any]) -> str:
    return base64.b64encode(cloudpickle.dumps(dict(config))).decode("ascii")


def _unpickle_config(text: str) -> dict[str, Any]:
    # Our own log, written by this module for this experiment (as Ray's own tuner.pkl is).
    return dict(cloudpickle.loads(base64.b64decode(text)))


def _fsync_directory(directory: Path) -> None:
    # A new file's name is durable only once its directory is synced (POSIX).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RemoteMirror:
    """The writer's files at a storage URI: log segments, and copies of whole files.

    Pickled (Ray pickles callbacks into ``tuner.pkl``) as its location only: the filesystem
    object is opened again where it is used.
    """

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")
        self._fs: Any = None
        self._base = ""
        self._offset = 0  # bytes of the local log already uploaded
        self._next: int | None = None  # sequence number of the next segment
        self._failed = False

    def start(self, log_path: Path) -> None:
        """Continue after the local log as it is now (rebuilt from the URI on resume)."""
        self._offset = log_path.stat().st_size if log_path.exists() else 0
        self._next = None

    def push_log(self, log_path: Path) -> None:
        """Upload the bytes of the local log appended since the last upload, as a new segment."""
        if not log_path.exists():
            return
        with open(log_path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        if not data:
            return
        if self._next is None:
            existing = _segment_numbers(*self._filesystem())
            self._next = max(existing, default=0) + 1
        name = f"{SEGMENTS_DIR}/{self._next:06d}.jsonl"
        if self._put(name, data):
            self._offset += len(data)
            self._next += 1

    def put_file(self, path: Path) -> None:
        """Upload a copy of a local file (if it exists) under its own name."""
        if path.exists():
            self._put(path.name, path.read_bytes())

    def _put(self, name: str, data: bytes) -> bool:
        try:
            fs, base = self._filesystem()
            # One PUT: an S3 object appears whole or not at all, so a reader never sees half.
            with fs.open_output_stream(f"{base}/{name}") as out:
                out.write(data)
        except OSError as exc:
            # A storage hiccup must not end a long experiment: the bytes stay in the local log
            # and go up with the next segment. Said once; the final upload says it again.
            if not self._failed:
                warnings.warn(
                    f"{self.location}/{name}: upload failed ({exc}); retried with the next "
                    "finished trial",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._failed = True
            return False
        return True

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs, base = _remote(self.location)
            self._base = base.rstrip("/")
        return self._fs, self._base

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]


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
        self.records: dict[str, _TrialRecord] = {}
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
        """The trials table (see the module docstring), in trial creation order."""
        return records_to_frame(list(self.records.values()))

    def _record(self, trial: Any) -> _TrialRecord:
        record = self.records.get(trial.trial_id)
        if record is None:
            record = _TrialRecord(trial_id=trial.trial_id, config=dict(trial.config))
            self.records[trial.trial_id] = record
            self.log.append(
                {
                    "event": "start",
                    "trial_id": record.trial_id,
                    "config": _pickle_config(record.config),
                },
                durable=False,
            )
        return record

    def _add_result(self, record: _TrialRecord, result: Mapping[str, Any]) -> None:
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
        if record.best_metric is None or _better(value, record.best_metric, self.mode):
            record.best_metric = value
            record.best_iteration = record.iterations

    def _ended_status(self, record: _TrialRecord) -> str:
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

    def _end(self, record: _TrialRecord) -> None:
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


def _better(a: float, b: float, mode: str) -> bool:
    return a > b if mode == "max" else a < b


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


def records_to_frame(records: list[_TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "trial_id": r.trial_id,
            "status": r.status,
            "final_metric": r.final_metric,
            "best_metric": r.best_metric,
            "best_iteration": r.best_iteration,
            "iterations": r.iterations,
            "bad_reports": r.bad_reports,
            "wall_time_s": r.wall_time_s,
            "error": r.error,
            "checkpoint": r.checkpoint,
            "config_json": json.dumps(to_jsonable(r.config), sort_keys=True),
        }
        for name, value in flatten(r.config).items():
            row[f"config/{name}"] = to_jsonable(value)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("final_metric", "best_metric", "wall_time_s"):
        if column in frame:
            frame[column] = frame[column].astype("float64")
    for column in ("best_iteration", "iterations", "bad_reports"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in [c for c in frame.columns if c.startswith("config/")]:
        # Types from the rows that have the parameter: in a conditional space a branch's
        # parameters are missing (empty, not NaN) where their branch was not chosen.
        values = [row.get(column) for row in rows]
        kinds = {type(v) for v in values if v is not None}
        gaps = any(column not in row for row in rows)
        # Parquet columns hold one type: a choice mixing types (e.g. None, "auto", 3) is
        # stored as text.
        if (len(kinds - {int, float}) > 0 and len(kinds) > 1) or kinds <= {list}:
            frame[column] = [None if v is None else json.dumps(v) for v in values]
        elif gaps and kinds == {int}:
            frame[column] = pd.array(values, dtype="Int64")  # 31, not 31.0
        elif gaps:
            frame[column] = pd.Series(values, dtype=object if kinds - {int, float} else "float64")
    return frame


def write_results(frame: pd.DataFrame, directory: str | os.PathLike[str]) -> Path:
    """Write ``results.parquet`` atomically: readers see the old file or the new one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / RESULTS_FILE
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".parquet.tmp", dir=directory)
    os.close(fd)
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_metadata(directory: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """``experiment.json``: what ``hpt-ray show`` needs to rank a table it did not run."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"version": META_VERSION, **to_jsonable(dict(meta))}
    fd, tmp = tempfile.mkstemp(prefix=".experiment-", suffix=".json.tmp", dir=directory)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
    os.replace(tmp, directory / META_FILE)


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    if "://" in str(directory):
        fs, base = _remote(str(directory))
        meta = _read_replaced(fs, f"{base.rstrip('/')}/{META_FILE}", json.loads)
        return {} if meta is None else dict(meta)
    path = Path(directory) / META_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def read_results(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """The trials table of an experiment directory (or a path to its ``results.parquet``).

    ``directory`` may be a storage URI (``s3://bucket/dir/name``, ``file:///...``), read through
    ``pyarrow.fs`` with the credentials of this machine. A run at a URI uploads its table as it
    goes; before the first upload, the table is rebuilt from the log segments already there.
    """
    if "://" in str(directory):
        fs, base = _remote(str(directory))
        target = base if base.endswith(".parquet") else f"{base.rstrip('/')}/{RESULTS_FILE}"
        table = _read_replaced(fs, target, lambda data: pq.read_table(pa.BufferReader(data)))
        if table is not None:
            return table.to_pandas()
        records = read_log(str(directory))
        if not records:
            raise FileNotFoundError(
                f"no {RESULTS_FILE} and no trial log at {directory}: is this an hpt_ray "
                "experiment location? (a run prints it when it starts and when it ends)"
            )
        return records_to_frame(list(records.values()))
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no {RESULTS_FILE} at {path}: is this an hpt_ray experiment directory? "
            "(tune_model and `hpt-ray run` print the directory when they finish)"
        )
    return pq.read_table(path).to_pandas()


def staging_directory(location: str) -> Path:
    """The local directory where the writer of a run stored at ``location`` (a URI) keeps its
    files before they go up: one per location on this machine, emptied at each start."""
    tail = location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in tail) or "experiment"
    digest = hashlib.sha1(location.rstrip("/").encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "hpt_ray_staging" / f"{safe}-{digest}"


def remote_log_text(location: str) -> str:
    """The log of the run at ``location``: its segments in order, else a whole ``trials.jsonl``
    (the segments hold everything the whole file would, and lines written after it)."""
    fs, base = _remote(location)
    base = base.rstrip("/")
    numbers = sorted(_segment_numbers(fs, base))
    if numbers:
        parts = []
        for number in numbers:
            data = _read_bytes(fs, f"{base}/{SEGMENTS_DIR}/{number:06d}.jsonl") or b""
            parts.append(data.decode("utf-8"))
        return "".join(parts)
    whole = _read_bytes(fs, f"{base}/{LOG_FILE}")
    return "" if whole is None else whole.decode("utf-8")


def remote_names(location: str) -> set[str]:
    """Names of the files and folders directly under ``location`` (empty if there is none)."""
    import pyarrow.fs

    fs, base = _remote(location)
    selector = pyarrow.fs.FileSelector(base.rstrip("/"), allow_not_found=True)
    return {info.base_name for info in fs.get_file_info(selector)}


def read_remote_file(location: str, name: str) -> bytes | None:
    """The bytes of ``<location>/<name>``, or None if there is no such file."""
    fs, base = _remote(location)
    return _read_bytes(fs, f"{base.rstrip('/')}/{name}")


def write_remote_file(location: str, name: str, data: bytes) -> None:
    """Write ``<location>/<name>`` (one object, replaced whole)."""
    fs, base = _remote(location)
    with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as out:
        out.write(data)


def _read_replaced(fs: Any, path: str, parse: Any, *, attempts: int = 5) -> Any:
    """``parse(bytes)`` of an object that a running writer replaces from time to time, or None
    if there is none.

    pyarrow reads an S3 object as a size request, then ranged reads: an object replaced in
    between comes back as a prefix of the new version (seen against a local S3 server while a
    run rewrote results.parquet). Such a read does not parse; it is read again.
    """
    for attempt in range(attempts):
        data = _read_bytes(fs, path)
        if data is None:
            return None
        try:
            return parse(data)
        except (pa.ArrowInvalid, OSError, ValueError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None


def _read_bytes(fs: Any, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as handle:
            return bytes(handle.read())
    except FileNotFoundError:
        return None


def _segment_numbers(fs: Any, base: str) -> list[int]:
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(f"{base}/{SEGMENTS_DIR}", allow_not_found=True)
    numbers = []
    for info in fs.get_file_info(selector):
        stem, _, suffix = info.base_name.partition(".")
        if suffix == "jsonl" and stem.isdigit():
            numbers.append(int(stem))
    return numbers


def _remote(uri: str) -> tuple[Any, str]:
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(
            f"{uri!r}: pyarrow cannot open this storage URI ({exc}); give a local directory or "
            "an s3:// / gs:// URI with credentials configured on this machine"
        ) from exc


def best_row(frame: pd.DataFrame, mode: str) -> pd.Series | None:
    """The trial with the best finite final metric, or None if no trial reported one."""
    finite = frame[frame["final_metric"].notna()]
    if finite.empty:
        return None
    index = finite["final_metric"].idxmax() if mode == "max" else finite["final_metric"].idxmin()
    return frame.loc[index]


def leaderboard(frame: pd.DataFrame, *, metric: str, mode: str, top: int = 10) -> str:
    """A plain-text leaderboard: the ``top`` trials by final metric, then a count of the others."""
    if frame.empty:
        return "no trials"
    ranked = frame.assign(_missing=frame["final_metric"].isna()).sort_values(
        ["_missing", "final_metric"], ascending=[True, mode == "min"], kind="stable"
    )
    config_columns = [c for c in frame.columns if c.startswith("config/")]
    shown = ranked.head(top)
    table = pd.DataFrame(
        {
            "rank": range(1, len(shown) + 1),
            "trial": shown["trial_id"].to_numpy(),
            metric: shown["final_metric"].to_numpy(),
            "status": shown["status"].to_numpy(),
            "iters": shown["iterations"].to_numpy(),
            "time_s": shown["wall_time_s"].round(1).to_numpy(),
            **{c.removeprefix("config/"): shown[c].to_numpy() for c in config_columns},
        }
    )
    with pd.option_context(
        "display.width", 160, "display.max_columns", 30, "display.float_format", "{:.5g}".format
    ):
        text = table.to_string(index=False)
    counts = frame["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"{text}\n{len(frame)} trials ({summary}); ranked by {metric} ({mode})"
