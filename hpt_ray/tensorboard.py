"""TensorBoard's HParams view for hpt_ray runs: one session per trial, in the trial's directory.

Ray's default ``TBXLoggerCallback`` already writes each trial's reported metrics as scalars to an
event file in the trial's directory, and an HParams summary when the trial ends. That summary
misses what a user of this project needs (checked on Ray 2.60 with tensorboardX 2.6):

- only the sampled parameters (``trial.evaluated_params``), not the constants of the space;
- ``None``, tuples and other objects are dropped, lists are written with no value;
- a trial that fails before its first report gets no session, and every session says SUCCESS;
- each trial also writes an experiment summary, and TensorBoard shows the first one it finds, so
  the view's columns are one trial's parameters and every key Ray reports.

``HParamsLoggerCallback`` replaces Ray's logger (Ray adds its own only when no
``TBXLoggerCallback`` is in the callbacks): the scalars are Ray's, unchanged; the session start
(written when the trial starts, so a running trial shows in the view) holds the trial's whole
flattened config, with the names of ``results.parquet``'s ``config/`` columns; the session end
says SUCCESS or FAILURE. No experiment summary is written: TensorBoard then builds the view from
all sessions (union of parameter names, their domains, and every scalar as a metric column), and
a metric's value in the view is its last reported value, the trial's final metric.

``tensorboard --logdir <experiment dir>`` opens it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ray.tune.logger import TBXLoggerCallback
from tensorboardX.proto.api_pb2 import Status
from tensorboardX.proto.plugin_hparams_pb2 import (
    HParamsPluginData,
    SessionEndInfo,
    SessionStartInfo,
)
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

from hpt_ray.objective import finite_metric
from hpt_ray.table import flatten

# The hparams plugin's names (tensorboard/plugins/hparams/metadata.py); TensorBoard reads these.
PLUGIN_NAME = "hparams"
PLUGIN_DATA_VERSION = 0
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"


class HParamsLoggerCallback(TBXLoggerCallback):
    """Ray's TensorBoard logger with an HParams session per trial that holds its whole config."""

    def log_trial_start(self, trial: Any) -> None:
        super().log_trial_start(trial)
        summary = session_start_summary(trial.config, group=trial.trial_id, start_s=time.time())
        # No flush here: Ray's logger flushes with the trial's first result (a flush per trial
        # start cost 0.4 s of driver time over 200 trials in scripts/bench_scale.py).
        self._trial_writer[trial].file_writer.add_summary(summary)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        # Ray's own end writes its hparams summary; ours went out at the start, so only the
        # session's end is added here, for every trial (also one that failed before a report).
        writer = self._trial_writer.pop(trial, None)
        self._trial_result.pop(trial, None)
        if writer is None:
            return
        writer.file_writer.add_summary(session_end_summary(failed=failed, end_s=time.time()))
        writer.close()


def hparam_values(config: Mapping[str, Any]) -> dict[str, bool | float | str]:
    """The config as HParams values: ``{"a/b": value}`` (``table.flatten``'s names).

    Numbers (finite), strings and bools are kept; anything else (None, tuples, lists, objects,
    NaN) becomes its ``repr``, since the view holds only those three kinds.
    """
    values: dict[str, bool | float | str] = {}
    for name, value in flatten(config).items():
        if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
            value = value.item()  # numpy scalar
        if isinstance(value, (bool, str)):
            values[name] = value
        elif isinstance(value, (int, float)) and (number := finite_metric(value)) is not None:
            values[name] = number
        else:
            values[name] = repr(value)
    return values


def session_start_summary(config: Mapping[str, Any], *, group: str, start_s: float) -> Summary:
    """The hparams plugin's session start: the trial's config as HParams values."""
    info = SessionStartInfo(group_name=group, start_time_secs=start_s)
    for name, value in hparam_values(config).items():
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, float):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = value
    return _plugin_summary(SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=info))


def session_end_summary(*, failed: bool, end_s: float) -> Summary:
    """The hparams plugin's session end: SUCCESS, or FAILURE for a trial that raised."""
    status = Status.Value("STATUS_FAILURE" if failed else "STATUS_SUCCESS")
    info = SessionEndInfo(status=status, end_time_secs=end_s)
    return _plugin_summary(SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=info))


def _plugin_summary(tag: str, data: HParamsPluginData) -> Summary:
    data.version = PLUGIN_DATA_VERSION
    metadata = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=data.SerializeToString()
        )
    )
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])
