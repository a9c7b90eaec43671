"""The trial log, ``trials.jsonl``: what the results writer knows, durable as each trial finishes.

Append-only, one JSON object per line, each with ``"v"`` (`LOG_VERSION`) and an ``event``:
    ``start``: a trial first started; ``config`` is its exact config, pickled (base64 of
    ``cloudpickle``), so a resumed run returns tuples as tuples;
    ``end``: the trial finished (each time it does); ``row`` holds the `ROW_FIELDS` of its table
    row, ``last_result`` its last report;
    ``order``: the experiment ended; ``trial_ids`` in the table's order (trial creation order).

Each ``end`` line is flushed and ``fsync``-ed before the driver moves on, so a crash (even a
power cut) never loses a finished trial. A resumed run reads the log back (`read_log`); the last
``end`` line of a trial wins. At a storage URI the log is a folder of segments (see
`hpt_ray.storage`); ``read_log(URI)`` joins them in order.
"""

from __future__ import annotations

import base64
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import cloudpickle

from hpt_ray.storage import LOG_FILE, SEGMENTS_DIR, is_uri, remote_log_text
from searchers.files import fsync_directory

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


@dataclass
class TrialRecord:
    """One trial as the writer knows it: its table row (`ROW_FIELDS`), config and last report."""

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
                fsync_directory(self.path.parent)
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


def read_log(directory: str | os.PathLike[str]) -> dict[str, TrialRecord]:
    """The records in ``directory/trials.jsonl``, in the table's order (trial creation order once
    the run ended; start order before), empty if there is none.

    ``directory`` may be a storage URI: its log segments are read in order (see the module
    docstring), or its whole ``trials.jsonl`` for a run that left no segments.
    A line cut short by a crash mid-write (only ever the last one) is skipped with a warning.
    """
    if is_uri(directory):
        text = remote_log_text(str(directory))
        source = f"{str(directory).rstrip('/')}/{SEGMENTS_DIR}"
    else:
        path = Path(directory) / LOG_FILE
        if not path.exists():
            return {}
        text = path.read_text(encoding="utf-8")
        source = str(path)
    return _parse_log(text, source=source)


def pickle_config(config: Mapping[str, Any]) -> str:
    """A ``start`` line's ``config``: the exact config, pickled, as base64 text."""
    return base64.b64encode(cloudpickle.dumps(dict(config))).decode("ascii")


def _parse_log(text: str, *, source: str) -> dict[str, TrialRecord]:
    records: dict[str, TrialRecord] = {}
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
            record = TrialRecord(trial_id=trial_id, config=config or {})
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


def _unpickle_config(text: str) -> dict[str, Any]:
    # Our own log, written by this module for this experiment (as Ray's own tuner.pkl is).
    return dict(cloudpickle.loads(base64.b64decode(text)))
