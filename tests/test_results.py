"""results.parquet: the table's shape, its round trip through pyarrow, ranking with bad metrics."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from hpt_ray.results import (
    ResultsWriter,
    best_row,
    finite_metric,
    leaderboard,
    read_results,
    write_results,
)


def _trial(trial_id, config):
    return SimpleNamespace(
        trial_id=trial_id, config=config, status="TERMINATED", checkpoint=None, error_file=None
    )


def _writer(tmp_path, mode="max"):
    writer = ResultsWriter(tmp_path, metric="acc", mode=mode, max_t=3, min_write_interval_s=0.0)
    trials = [
        _trial("t0", {"lr": 0.1, "act": "relu", "opt": {"name": "adam"}, "mixed": None}),
        _trial("t1", {"lr": 0.01, "act": "tanh", "opt": {"name": "sgd"}, "mixed": "auto"}),
        _trial("t2", {"lr": 0.5, "act": "relu", "opt": {"name": "sgd"}, "mixed": 3}),
    ]
    history = {"t0": [0.5, 0.7, 0.6], "t1": [0.4, float("nan")], "t2": [0.9, None, 0.95]}
    for trial in trials:
        writer.on_trial_start(0, trials, trial)
        for i, value in enumerate(history[trial.trial_id], start=1):
            result = {"training_iteration": i, "time_total_s": 0.1 * i}
            if value is not None:
                result["acc"] = value
            writer.on_trial_result(0, trials, trial, result)
        writer.on_trial_complete(0, trials, trial)
    writer.on_experiment_end(trials)
    return writer


def test_rows_record_history_status_and_bad_reports(tmp_path):
    frame = _writer(tmp_path).frame()
    assert list(frame["trial_id"]) == ["t0", "t1", "t2"]
    t0, t1, t2 = (frame.iloc[i] for i in range(3))
    assert (t0["final_metric"], t0["best_metric"], t0["best_iteration"]) == (0.6, 0.7, 2)
    assert t0["status"] == "completed"
    assert t0["iterations"] == 3
    assert math.isnan(t1["final_metric"])
    assert t1["bad_reports"] == 1
    assert t1["status"] == "stopped"
    assert (t2["final_metric"], t2["best_metric"], t2["bad_reports"]) == (0.95, 0.95, 1)
    assert json.loads(t2["config_json"]) == {
        "lr": 0.5,
        "act": "relu",
        "opt": {"name": "sgd"},
        "mixed": 3,
    }
    assert list(frame["config/opt/name"]) == ["adam", "sgd", "sgd"]


def test_parquet_round_trip_with_mixed_types(tmp_path):
    writer = _writer(tmp_path)
    table = read_results(tmp_path)
    pd.testing.assert_frame_equal(table, writer.frame())
    # A choice mixing None, str and int is stored as JSON text so one column holds one type.
    mixed = list(table["config/mixed"])
    assert pd.isna(mixed[0])
    assert mixed[1:] == ['"auto"', "3"]


def test_best_and_leaderboard_ignore_non_finite(tmp_path):
    frame = _writer(tmp_path).frame()
    assert best_row(frame, "max")["trial_id"] == "t2"
    assert best_row(frame, "min")["trial_id"] == "t0"
    board = leaderboard(frame, metric="acc", mode="max").splitlines()
    assert board[1].split()[1] == "t2"
    assert board[3].split()[1] == "t1"  # NaN ranks last
    assert "3 trials" in board[-1]


def test_atomic_write_keeps_the_previous_file_on_failure(tmp_path):
    write_results(pd.DataFrame({"trial_id": ["a"], "final_metric": [1.0]}), tmp_path)

    class Unwritable:
        pass

    with pytest.raises(Exception):  # noqa: B017,PT011 - pyarrow's own error type for an unconvertible column
        write_results(pd.DataFrame({"trial_id": ["b"], "final_metric": [Unwritable()]}), tmp_path)
    assert list(read_results(tmp_path)["trial_id"]) == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results-")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1.0),
        (0.5, 0.5),
        ("0.25", 0.25),
        (float("nan"), None),
        (float("inf"), None),
        (None, None),
        (True, None),
        ("abc", None),
        ([1], None),
    ],
)
def test_finite_metric(value, expected):
    assert finite_metric(value) == expected
