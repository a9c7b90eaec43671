"""Warm start: the trials of an earlier experiment for a searcher (``auto``'s ``warm_start=``).

Sources (`load_trials`):
- an experiment directory written by hpt_ray (its ``results.parquet`` and ``experiment.json``),
  or the path of a ``results.parquet`` / ``.csv`` table;
- a pandas DataFrame with the same columns (``config_json`` or ``config/<name>``, a value column);
- a list of ``{"config": {...}, "value": float}`` records.

Which trials fit (`tell_warm_start`), decided per trial against the new space:
- only trials that ran to the end count (``status`` "completed" when the table has one): a trial
  the scheduler stopped early scored at a lower fidelity, an errored one has no score;
- a parameter the new space has and the trial lacks (a parameter *added*): when the values are
  told, the trial is skipped, as no value can be made up for it without misleading the model;
  when the configs are only re-evaluated (``auto``'s default), the value is drawn at random;
- a parameter the trial has and the new space lacks (a parameter *removed*): ignored, the rest of
  the trial is used (the objective may have depended on it; the searcher sees it as noise);
- a value outside the new domain (a range *changed*, a category dropped): the trial is skipped;
- a metric that is missing or not finite: the trial is skipped.
Each reason is logged once with its count; `WarmStartReport` holds them.

The searcher's metric must be the earlier experiment's (read from ``experiment.json`` when it is
there): a warm start from an experiment ranked by another metric is refused.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchers.space import config_path
from searchers.validation import InvalidParameterError

__all__ = ["WarmStartReport", "WarmTrials", "load_trials", "tell_warm_start"]

logger = logging.getLogger(__name__)

# hpt_ray's experiment files (hpt_ray.storage): the trials table and its metadata.
_RESULTS_FILE = "results.parquet"
_META_FILE = "experiment.json"


@dataclass
class WarmTrials:
    """Trials read from a source: (config, value) pairs and what was left out while reading."""

    trials: list[tuple[dict[str, Any], float]]
    metric: str | None = None  # the earlier experiment's metric, when the source says
    skipped: Counter[str] = field(default_factory=Counter)
    source: str = ""


@dataclass
class WarmStartReport:
    """What a warm start found: ``used`` trials (that fit the space), ``skipped`` counts by
    reason, and whether their values were ``told`` to the searcher."""

    used: int
    skipped: dict[str, int]
    source: str
    #: The trials used: (config decoded in the new space, value).
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list, repr=False)
    told: bool = True
    #: Values drawn for parameters the earlier trials lack, counted by parameter.
    filled: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        what = "told" if self.told else "fit the space"
        parts = [f"warm start from {self.source}: {self.used} trials {what}"]
        parts += [f"{n} skipped ({reason})" for reason, n in sorted(self.skipped.items())]
        parts += [f"{n} trials with a {reason}" for reason, n in sorted(self.filled.items())]
        return ", ".join(parts)


def load_trials(source: Any, *, metric: str | None = None) -> WarmTrials:
    """Read the trials of ``source`` (see the module docstring).

    Args:
        source: an experiment directory, a ``.parquet``/``.csv`` table, a DataFrame, or a list of
            ``{"config": ..., "value": ...}`` records.
        metric: the column holding the value in a table without hpt_ray's ``final_metric``.

    Raises:
        InvalidParameterError: the source does not exist or is not one of the above.
    """
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(source), metric)
    if isinstance(source, (list, tuple)):
        return _from_records(list(source))
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return _from_frame(source, metric, meta_metric=None, label="a DataFrame")
    raise InvalidParameterError(
        "warm_start must be an experiment directory, a .parquet or .csv table, a pandas DataFrame "
        "or a list of {'config': ..., 'value': ...} records; got "
        f"{type(source).__name__}"
    )


def tell_warm_start(
    searcher: Any, source: Any, *, tell: bool = True, fill: Any = None
) -> WarmStartReport:
    """Find the trials of ``source`` that fit the space of ``searcher`` (a
    `searchers.base.BaseSearcher` whose space is known) and, with ``tell``, tell it each one
    through ``add_evaluated_point``; log what was skipped.

    ``fill`` (a numpy Generator, only without ``tell``): a parameter the space added, which the
    earlier trials lack, is drawn at random for each of them instead of skipping the trial. Their
    configs are only re-evaluated, never told with a made-up value, so the draw misleads nothing.
    """
    space = searcher.space
    metric = searcher.metric
    loaded = source if isinstance(source, WarmTrials) else load_trials(source, metric=metric)
    if loaded.metric is not None and metric is not None and loaded.metric != metric:
        raise InvalidParameterError(
            f"warm_start: {loaded.source} was ranked by {loaded.metric!r}, this search by "
            f"{metric!r}; warm-start from an experiment with the same metric"
        )
    skipped: Counter[str] = Counter(loaded.skipped)
    filled: Counter[str] = Counter()
    used: list[tuple[dict[str, Any], float]] = []
    params = list(space.params)
    for config, value in loaded.trials:
        missing = [p for p in params if not _has(config, p)]
        if missing and not space.conditional:
            if tell or fill is None:
                skipped[f"parameter {missing[0].name!r} not in the earlier run"] += 1
                continue
            drawn = space.sample(fill)
            config = copy.deepcopy(dict(config))
            for p in missing:
                path = [str(part) for part in config_path(p.path)]
                _put(config, path, _lookup_path(drawn, path))
                filled[f"parameter {p.name!r} not in the earlier run, drawn at random"] += 1
        try:
            codes = space.encode(config)
        except (ValueError, TypeError, KeyError) as err:
            skipped[_reason(err)] += 1
            continue
        config = space.decode(codes)
        if tell:
            searcher.add_evaluated_point(config, value)
        used.append((config, value))
    report = WarmStartReport(
        used=len(used),
        skipped=dict(skipped),
        source=loaded.source,
        trials=used,
        told=tell,
        filled=dict(filled),
    )
    if skipped or filled:
        logger.warning("%s", report)
    else:
        logger.info("%s", report)
    return report


# ---- readers --------------------------------------------------------------------------------
def _from_path(path: Path, metric: str | None) -> WarmTrials:
    import pandas as pd

    meta_metric = None
    table = path
    if path.is_dir():
        table = path / _RESULTS_FILE
        meta_path = path / _META_FILE
        if meta_path.is_file():
            meta_metric = json.loads(meta_path.read_text()).get("metric")
    if not table.is_file():
        raise InvalidParameterError(
            f"warm_start: {str(table)!r} does not exist; give an experiment directory (with "
            f"{_RESULTS_FILE}), a .parquet or .csv table, a DataFrame or a list of records"
        )
    frame = pd.read_csv(table) if table.suffix == ".csv" else pd.read_parquet(table)
    if meta_metric is None and table.parent.joinpath(_META_FILE).is_file():
        meta_metric = json.loads(table.parent.joinpath(_META_FILE).read_text()).get("metric")
    return _from_frame(frame, metric, meta_metric=meta_metric, label=str(path))


def _from_frame(
    frame: Any, metric: str | None, *, meta_metric: str | None, label: str
) -> WarmTrials:
    if "final_metric" in frame.columns:
        value_column = "final_metric"
    elif metric is not None and metric in frame.columns:
        value_column = metric
    else:
        raise InvalidParameterError(
            f"warm_start: {label} has no 'final_metric' column"
            + (f" and no {metric!r} column" if metric else "")
            + "; it needs one value per trial"
        )
    skipped: Counter[str] = Counter()
    trials: list[tuple[dict[str, Any], float]] = []
    config_columns = [c for c in frame.columns if str(c).startswith("config/")]
    for _, row in frame.iterrows():
        status = row.get("status") if "status" in frame.columns else "completed"
        if status != "completed":
            skipped[f"status {status!r}, not completed"] += 1
            continue
        value = _finite(row[value_column])
        if value is None:
            skipped["no finite metric"] += 1
            continue
        if "config_json" in frame.columns and isinstance(row["config_json"], str):
            config = json.loads(row["config_json"])
        else:
            config = {}
            for column in config_columns:
                cell = row[column]
                if isinstance(cell, float) and math.isnan(cell):
                    continue  # inactive in a conditional space, or absent in this trial
                _put(config, str(column)[len("config/") :].split("/"), _plain(cell))
        trials.append((config, value))
    return WarmTrials(trials=trials, metric=meta_metric, skipped=skipped, source=label)


def _from_records(records: list[Any]) -> WarmTrials:
    trials: list[tuple[dict[str, Any], float]] = []
    skipped: Counter[str] = Counter()
    for i, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("config"), Mapping):
            raise InvalidParameterError(
                f"warm_start[{i}] must be a dict with a 'config' dict and a 'value': {record!r}"
            )
        value = _finite(record.get("value"))
        if value is None:
            skipped["no finite metric"] += 1
            continue
        trials.append((dict(record["config"]), value))
    return WarmTrials(trials=trials, skipped=skipped, source=f"{len(records)} records")


# ---- helpers --------------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (so int domains accept them)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _put(config: dict[str, Any], path: list[str], value: Any) -> None:
    node = config
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _lookup_path(config: Mapping[str, Any], path: list[str]) -> Any:
    node: Any = config
    for part in path:
        node = node[part]
    return node


def _has(config: Mapping[str, Any], param: Any) -> bool:
    node: Any = config
    for part in config_path(param.path):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _reason(err: Exception) -> str:
    text = str(err).split(";")[0]
    return f"outside the space: {text}"
