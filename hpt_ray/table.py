"""The trials table: one row per trial, stored as ``results.parquet``, and ``experiment.json``,
what ranks it.

The same table feeds ``TuneResult.trials``, ``hpt-ray show``, the HTML report and
``TuneSearchCV.cv_results_``. The results writer (`hpt_ray.results`) rebuilds it from its trial
records (`records_to_frame`) and writes it atomically (`write_results`); `read_results` reads it
back, also from a storage URI.

Columns of ``results.parquet``:
    trial_id; status (see `STATUSES`); final_metric (last reported value of the experiment's
    metric); best_metric (best value over the trial's reports, in the experiment's mode);
    best_iteration; iterations (reports made); bad_reports (reports whose metric was NaN, inf or
    not a number); wall_time_s; error (the exception's last line, or what the trainable reported
    as ``trial_error``); checkpoint (path of the latest checkpoint); config_json (the config as
    JSON); one ``config/<name>`` column per parameter (nested keys joined by "/"); and one
    ``last/<key>`` column per number the trainable reported in its last report (``last/val_loss``,
    ``last/lr_mean``, ...; Ray's own keys, `RAY_KEYS`, and text or booleans left out), so that
    what a trial ended with is in the table and not only its ranked metric (issue #17: the
    hypergradient's per-epoch ``lr_min``/``lr_mean``/``lr_max``). A key some trials never reported
    is empty in their rows.

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

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hpt_ray.storage import (
    META_FILE,
    RESULTS_FILE,
    RunNotFoundError,
    is_uri,
    open_uri,
    read_replaced,
)
from hpt_ray.trial_log import TrialRecord, read_log
from searchers.files import atomic_write

META_VERSION = 1
LAST_PREFIX = "last/"

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


def records_to_frame(records: list[TrialRecord]) -> pd.DataFrame:
    """The table (see the module docstring) of ``records``, one row each, in their order."""
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
        for key, number in last_numbers(r.last_result).items():
            row[f"{LAST_PREFIX}{key}"] = number
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("final_metric", "best_metric", "wall_time_s"):
        if column in frame:
            frame[column] = frame[column].astype("float64")
    for column in ("best_iteration", "iterations", "bad_reports"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    for column in [c for c in frame.columns if c.startswith(LAST_PREFIX)]:
        values = [row.get(column) for row in rows]
        if all(v is None or isinstance(v, int) for v in values):
            frame[column] = pd.array(values, dtype="Int64")  # epoch 3, not 3.0
        else:
            frame[column] = pd.Series(values, dtype="float64")
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


def last_numbers(result: Mapping[str, Any]) -> dict[str, int | float]:
    """The trainable's own numbers in a report: ints and floats (numpy scalars too), not
    booleans, text, nested values or `RAY_KEYS`."""
    numbers: dict[str, int | float] = {}
    for key, value in result.items():
        if key in RAY_KEYS or isinstance(value, (bool, np.bool_)):
            continue
        if isinstance(value, (int, np.integer)):
            numbers[str(key)] = int(value)
        elif isinstance(value, (float, np.floating)):
            numbers[str(key)] = float(value)
    return numbers


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


# -- the files ---------------------------------------------------------------------------------
def write_results(frame: pd.DataFrame, directory: str | os.PathLike[str]) -> Path:
    """Write ``results.parquet`` atomically: readers see the old file or the new one."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return atomic_write(directory / RESULTS_FILE, sink.getvalue().to_pybytes())


def read_results(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """The trials table of an experiment directory (or a path to its ``results.parquet``).

    Args:
        directory: the experiment directory, its ``results.parquet``, or a storage URI
            (``s3://bucket/dir/name``, ``file:///...``), read through ``pyarrow.fs`` with the
            credentials of this machine. A run at a URI uploads its table as it goes; before
            the first upload, the table is rebuilt from the log segments already there.
    """
    if is_uri(directory):
        fs, base = open_uri(str(directory))
        target = base if base.endswith(".parquet") else f"{base.rstrip('/')}/{RESULTS_FILE}"
        table = read_replaced(fs, target, lambda data: pq.read_table(pa.BufferReader(data)))
        if table is not None:
            return table.to_pandas()
        records = read_log(str(directory))
        if not records:
            raise RunNotFoundError(
                f"no {RESULTS_FILE} and no trial log at {directory}: is this an hpt_ray "
                "experiment location? (a run prints it when it starts and when it ends)"
            )
        return records_to_frame(list(records.values()))
    path = Path(directory)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        raise RunNotFoundError(
            f"no {RESULTS_FILE} at {path}: is this an hpt_ray experiment directory? "
            "(tune_model and `hpt-ray run` print the directory when they finish)"
        )
    return pq.read_table(path).to_pandas()


def write_metadata(directory: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """``experiment.json``: what ``hpt-ray show`` needs to rank a table it did not run."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"version": META_VERSION, **to_jsonable(dict(meta))}
    atomic_write(directory / META_FILE, json.dumps(payload, indent=2, sort_keys=True))


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``experiment.json`` of a directory or storage URI, ``{}`` if there is none."""
    if is_uri(directory):
        fs, base = open_uri(str(directory))
        meta = read_replaced(fs, f"{base.rstrip('/')}/{META_FILE}", json.loads)
        return {} if meta is None else dict(meta)
    path = Path(directory) / META_FILE
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


# -- ranking -----------------------------------------------------------------------------------
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
