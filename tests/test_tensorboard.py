"""TensorBoard's HParams view of an hpt_ray run, read back with TensorBoard's own reader."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune
from sklearn.linear_model import LogisticRegression
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins.hparams import api_pb2, metadata
from tensorboard.util import tensor_util

from hpt_ray import tune_model
from hpt_ray.table import flatten, read_results
from hpt_ray.tensorboard import hparam_values

METRIC_TAG = "ray/tune/mean_test_score"


def _sessions(logdir: Path) -> dict[str, dict[str, Any]]:
    """Per run of the event files: its hparams, end status and last metric value."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    sessions = {}
    for run, tags in mux.PluginRunToTagToContent(metadata.PLUGIN_NAME).items():
        # Ray's own logger writes an experiment summary per trial; ours replaces it.
        assert metadata.EXPERIMENT_TAG not in tags, run
        start = metadata.parse_session_start_info_plugin_data(
            tags[metadata.SESSION_START_INFO_TAG]
        )
        end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
        events = mux.Tensors(run, METRIC_TAG)
        sessions[start.group_name] = {
            "run": run,
            "hparams": {
                name: getattr(value, value.WhichOneof("kind"))
                for name, value in start.hparams.items()
            },
            "status": end.status,
            "final": float(tensor_util.make_ndarray(events[-1].tensor_proto)),
        }
    return sessions


@pytest.mark.slow
def test_hparams_view_holds_every_trial_config_and_final_metric(
    ray_local: None, tmp_path: Path
) -> None:
    space = {
        "C": tune.loguniform(1e-3, 10.0),
        "fit_intercept": [True, False],
        "class_weight": [None, "balanced"],
        "max_iter": 300,  # a constant: Ray's own logger leaves it out
    }
    result = tune_model(
        LogisticRegression(),
        space,
        data="iris",
        cv=3,
        searcher="random",
        scheduler="fifo",
        num_samples=3,
        max_concurrent=2,
        seed=3,
        storage_path=tmp_path,
        name="tb",
        verbose=0,
    )
    table = read_results(result.path)
    assert len(table) == 3
    sessions = _sessions(Path(result.path))
    assert set(sessions) == set(table["trial_id"])
    config_columns = [c for c in table.columns if c.startswith("config/")]
    for row in table.to_dict("records"):
        session = sessions[row["trial_id"]]
        # The exact config (a column of only None reads back as NaN, so not from the columns).
        config = flatten(json.loads(row["config_json"]))
        assert sorted(config) == sorted(c.removeprefix("config/") for c in config_columns)
        # None is not an HParams kind: it is shown as its repr.
        expected = {k: "None" if v is None else v for k, v in config.items()}
        assert session["hparams"] == expected, session["run"]
        assert session["status"] == api_pb2.STATUS_SUCCESS
        # Scalars are stored as float32.
        assert session["final"] == pytest.approx(row["final_metric"], rel=1e-6)
    # Both kinds of class_weight came up (seed 3): a string and a stringified None.
    assert {s["hparams"]["class_weight"] for s in sessions.values()} == {"None", "balanced"}


def test_values_the_view_cannot_hold_are_stringified() -> None:
    config = {
        "lr": np.float32(0.5),
        "units": np.int64(3),
        "layers": (64, 32),
        "sizes": [1, 2],
        "depth": None,
        "bad": math.nan,
        "act": "relu",
        "bn": True,
        "opt": {"name": "adam", "beta": 0.9},
    }
    assert hparam_values(config) == {
        "lr": 0.5,
        "units": 3.0,
        "layers": "(64, 32)",
        "sizes": "[1, 2]",
        "depth": "None",
        "bad": "nan",
        "act": "relu",
        "bn": True,
        "opt/name": "adam",
        "opt/beta": 0.9,
    }
