"""Experiment results: one row per trial, kept current while the experiment runs, stored as
``results.parquet``.

The same table feeds ``TuneResult.trials``, ``hpt-ray show`` and ``TuneSearchCV.cv_results_``. The
writer is a Ray
Tune ``Callback`` on the driver: it rewrites ``results.parquet`` (atomically: temp file, then
``os.replace``) when
trials finish, so an experiment that dies keeps every trial that had completed before the crash.

Columns of ``results.parquet``:
    trial_id, status ("completed" | "stopped" early by the scheduler | "error" | "running" |
    "pending" | "interrupted": in flight when an earlier driver died, unknown to the resumed run),
    final_metric (last reported value of the experiment's metric), best_metric (best value over the
    trial's
    reports, in the experiment's mode), best_iteration, iterations (reports made), bad_reports
    (reports whose metric
    was missing, NaN, inf or not a number), wall_time_s, error, checkpoint (path of the latest
    checkpoint),
    config_json (the exact config), and one ``config/<name>`` column per parameter (nested keys
    joined by "/").
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from ray.tune import Callback

RESULTS_FILE = "results.parquet"
META_FILE = "experiment.json"
META_VERSION = 1

_STATUS = {
    "TERMINATED": "completed",
    "ERROR": "error",
    "RUNNING": "running",
    "PENDING": "pending",
    "PAUSED": "pending",
}


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


class ResultsWriter(Callback):
    """Keeps one record per trial and writes ``results.parquet`` into ``directory``.

    Args:
        directory: the experiment directory (created if needed).
        metric, mode: the experiment's objective.
        max_t: reports a trial makes when run to the end; a trial that ends earlier without error
            was stopped
            by the scheduler. None when unknown.
        min_write_interval_s: at most one rewrite per interval while trials finish (always one at
            the end);
            keeps the driver loop cheap with thousands of short trials.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        metric: str,
        mode: str,
        max_t: int | None = None,
        min_write_interval_s: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.metric = metric
        self.mode = mode
        self.max_t = max_t
        self.min_write_interval_s = min_write_interval_s
        self.records: dict[str, _TrialRecord] = {}
        # Trials that had finished before a crash keep their row as it was: Ray's snapshot may
        # lag our table by up to a second, and then Ray runs such a trial again (same id).
        self._frozen: set[str] = set()
        self._last_write = 0.0

    # -- Ray Tune callback hooks, in lifecycle order -------------------------------------------
    def setup(self, **info: Any) -> None:
        """On a resumed experiment, start from the rows already on disk.

        Ray restores trials from its last state snapshot; a trial that finished after that
        snapshot is still in our table, and keeps its row while Ray runs it again (same id).
        """
        path = self.directory / RESULTS_FILE
        if self.records or not path.exists():
            return
        for row in pq.read_table(path).to_pandas().to_dict("records"):
            config = json.loads(row["config_json"])
            record = _TrialRecord(trial_id=str(row["trial_id"]), config=config)
            record.status = str(row["status"])
            record.final_metric = _optional_float(row.get("final_metric"))
            record.best_metric = _optional_float(row.get("best_metric"))
            best_iteration = row.get("best_iteration")
            record.best_iteration = None if pd.isna(best_iteration) else int(best_iteration)
            record.iterations = int(row.get("iterations") or 0)
            record.bad_reports = int(row.get("bad_reports") or 0)
            record.wall_time_s = float(row.get("wall_time_s") or 0.0)
            record.error = None if pd.isna(row.get("error")) else str(row.get("error"))
            record.checkpoint = None if pd.isna(row.get("checkpoint")) else str(row["checkpoint"])
            self.records[record.trial_id] = record
            if record.status in ("completed", "stopped"):
                self._frozen.add(record.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._frozen:
            return
        self._record(trial).status = "running"

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if trial.trial_id in self._frozen:
            return
        record = self._record(trial)
        record.status = "running"
        self._add_result(record, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._frozen:
            return
        record = self._record(trial)
        stopped = self.max_t is not None and record.iterations < self.max_t
        record.status = "stopped" if stopped else "completed"
        record.checkpoint = _checkpoint_path(trial)
        self._write(force=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._frozen:
            return
        record = self._record(trial)
        record.status = "error"
        record.error = _error_text(trial)
        record.checkpoint = _checkpoint_path(trial)
        self._write(force=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Rows in trial creation order (Tune's list), not start order: the grid searcher's order is
        # scikit-learn's ParameterGrid order, which TuneSearchCV's tie-breaking depends on.
        order = {trial.trial_id: i for i, trial in enumerate(trials)}
        for trial_id, record in self.records.items():
            if trial_id not in order and record.status in ("running", "pending"):
                # In flight when an earlier driver died, after Ray's last snapshot: Ray does not
                # know it, and its budget slot went to a new trial. Its partial row is kept.
                record.status = "interrupted"
        self.records = dict(
            sorted(self.records.items(), key=lambda item: order.get(item[0], len(order)))
        )
        for trial in trials:
            record = self._record(trial)
            last = getattr(trial, "last_result", None) or {}
            if trial.trial_id not in self._frozen and int(
                last.get("training_iteration") or 0
            ) > record.iterations:
                # Ended before a crash, after our last (throttled) write: Ray's restored trial
                # holds its last result.
                self._add_result(record, last)
            if record.status in ("running", "pending"):
                record.status = _STATUS.get(str(trial.status), record.status)
                if record.status == "completed" and self.max_t is not None:
                    record.status = "stopped" if record.iterations < self.max_t else "completed"
            if record.checkpoint is None:
                record.checkpoint = _checkpoint_path(trial)
        self._write(force=True)

    # -- table ------------------------------------------------------------------------------
    # -----------
    def frame(self) -> pd.DataFrame:
        """The trials table (see the module docstring), in trial creation order."""
        return records_to_frame(list(self.records.values()))

    def _record(self, trial: Any) -> _TrialRecord:
        record = self.records.get(trial.trial_id)
        if record is None:
            record = _TrialRecord(trial_id=trial.trial_id, config=dict(trial.config))
            self.records[trial.trial_id] = record
        return record

    def _add_result(self, record: _TrialRecord, result: Mapping[str, Any]) -> None:
        record.last_result = dict(result)
        record.iterations = int(result.get("training_iteration", record.iterations + 1))
        record.wall_time_s = float(result.get("time_total_s", record.wall_time_s))
        value = finite_metric(result.get(self.metric))
        record.final_metric = value
        if value is None:
            record.bad_reports += 1
            return
        if record.best_metric is None or _better(value, record.best_metric, self.mode):
            record.best_metric = value
            record.best_iteration = record.iterations

    def _write(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < self.min_write_interval_s:
            return
        write_results(self.frame(), self.directory)
        self._last_write = now


def _optional_float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


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
        kinds = {type(v) for v in frame[column] if v is not None}
        # Parquet columns hold one type: a choice mixing types (e.g. None, "auto", 3) is
        # stored as text.
        if (len(kinds - {int, float}) > 0 and len(kinds) > 1) or kinds <= {list}:
            frame[column] = [None if v is None else json.dumps(v) for v in frame[column]]
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
        target = f"{base.rstrip('/')}/{META_FILE}"
        if fs.get_file_info(target).type.name == "NotFound":
            return {}
        with fs.open_input_stream(target) as handle:
            return dict(json.loads(handle.read().decode()))
    path = Path(directory) / META_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def read_results(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """The trials table of an experiment directory (or a path to its ``results.parquet``).

    ``directory`` may be a storage URI (``s3://bucket/dir/name``, ``file:///...``), read through
    ``pyarrow.fs`` with the credentials of this machine.
    """
    if "://" in str(directory):
        fs, base = _remote(str(directory))
        target = base if base.endswith(".parquet") else f"{base.rstrip('/')}/{RESULTS_FILE}"
        if fs.get_file_info(target).type.name == "NotFound":
            raise FileNotFoundError(
                f"no {RESULTS_FILE} at {directory}: is this an hpt_ray experiment directory? "
                "(results reach a URI storage path when the run ends)"
            )
        return pq.read_table(target, filesystem=fs).to_pandas()
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no {RESULTS_FILE} at {path}: is this an hpt_ray experiment directory? "
            "(tune_model and `hpt-ray run` print the directory when they finish)"
        )
    return pq.read_table(path).to_pandas()


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
