"""results.parquet: the table's shape, its round trip through pyarrow, ranking with bad metrics."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from hpt_ray.objective import MetricNotReportedError, finite_metric
from hpt_ray.results import ResultsWriter
from hpt_ray.storage import LOG_FILE
from hpt_ray.table import best_row, leaderboard, read_results, write_results
from hpt_ray.trial_log import read_log


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
    # t1 is stopped by the scheduler at its 2nd report: Ray marks that result done=True.
    history = {"t0": [0.5, 0.7, 0.6], "t1": [0.4, float("nan")], "t2": [0.9, None, 0.95]}
    for trial in trials:
        writer.on_trial_start(0, trials, trial)
        for i, value in enumerate(history[trial.trial_id], start=1):
            result = {"training_iteration": i, "time_total_s": 0.1 * i}
            if value is not None:
                result["acc"] = value
            if trial.trial_id == "t1" and i == 2:
                result["done"] = True
            writer.on_trial_result(0, trials, trial, result)
        writer.on_trial_complete(0, trials, trial)
    writer.on_experiment_end(trials)
    return writer


def _run_one(writer, trial, results, *, end="complete"):
    writer.on_trial_start(0, [trial], trial)
    for i, extra in enumerate(results, start=1):
        writer.on_trial_result(0, [trial], trial, {"training_iteration": i, **extra})
    if end == "complete":
        writer.on_trial_complete(0, [trial], trial)
    elif end == "error":
        writer.on_trial_error(0, [trial], trial)


@pytest.mark.parametrize(
    ("results", "status"),
    [
        # A trial that ends itself before max_t (RandomForest with n_estimators=3 of max_t=10)
        # is completed, not stopped: the old table inferred "stopped" from its length.
        ([{"acc": 0.5}] * 3, "completed"),
        ([{"acc": 0.5}, {"acc": 0.6, "done": True}], "stopped"),
        # A STOP at max_t is the scheduler's formality: the trial ran to its end.
        ([{"acc": 0.5}] * 9 + [{"acc": 0.6, "done": True}], "completed"),
        ([{"acc": 0.5}, {"acc": float("nan"), "stop_reason": "diverged"}], "diverged"),
        ([{"acc": float("nan"), "trial_error": "ValueError: bad C"}], "error"),
    ],
)
def test_status_is_what_ended_the_trial(tmp_path, results, status):
    writer = ResultsWriter(tmp_path, metric="acc", mode="max", max_t=10, min_write_interval_s=0)
    trial = _trial("t", {"x": 1})
    _run_one(writer, trial, results)
    row = writer.frame().iloc[0]
    assert row["status"] == status
    if status == "error":
        assert row["error"] == "ValueError: bad C"


def test_finished_rows_are_durable_before_the_next_trial(tmp_path):
    """Each finished trial is in the fsynced log when its callback returns, whatever the table's
    throttle; a new writer (a resumed run) reads it back with the exact config."""
    writer = ResultsWriter(tmp_path, metric="acc", mode="max", max_t=3, min_write_interval_s=3600)
    first = _trial("a", {"shape": (2, 3), "x": 0.1})
    _run_one(writer, first, [{"acc": 0.5}, {"acc": 0.7}, {"acc": 0.6}])
    second = _trial("b", {"shape": (4,), "x": 0.2})
    _run_one(writer, second, [{"acc": 0.9}])
    records = read_log(tmp_path)  # no on_experiment_end: the driver "crashed" here
    assert list(records) == ["a", "b"]
    assert records["a"].status == "completed"
    assert (records["a"].final_metric, records["a"].best_metric) == (0.6, 0.7)
    assert records["a"].config == {"shape": (2, 3), "x": 0.1}  # a tuple stays a tuple
    # A line cut short by a crash mid-write is skipped, not fatal.
    with open(tmp_path / LOG_FILE, "a") as handle:
        handle.write('{"v": 1, "event": "end", "trial_id": "c", "ro')
    with pytest.warns(RuntimeWarning, match="unreadable line"):
        assert list(read_log(tmp_path)) == ["a", "b"]


def test_resumed_writer_keeps_finished_rows_and_rewrites_interrupted_ones(tmp_path):
    writer = ResultsWriter(tmp_path, metric="acc", mode="max", max_t=3, min_write_interval_s=0)
    done = _trial("done", {"x": 1})
    _run_one(writer, done, [{"acc": 0.5}] * 3)
    cut = _trial("cut", {"x": 2})
    _run_one(writer, cut, [{"acc": 0.1}], end=None)
    writer.on_experiment_end([done, cut])  # Ctrl-C: "cut" was still running
    assert list(writer.frame()["status"]) == ["completed", "interrupted"]

    resumed = ResultsWriter(tmp_path, metric="acc", mode="max", max_t=3, min_write_interval_s=0)
    resumed.setup()
    # Ray reruns "done" (its snapshot lagged) and continues "cut" from its checkpoint.
    resumed.on_trial_result(0, [done], done, {"training_iteration": 3, "acc": 0.01})
    for i in (2, 3):
        resumed.on_trial_result(0, [cut], cut, {"training_iteration": i, "acc": 0.2 * i})
    resumed.on_trial_complete(0, [cut], cut)
    resumed.on_experiment_end([done, cut])
    frame = resumed.frame().set_index("trial_id")
    assert frame.loc["done", "final_metric"] == 0.5
    assert (frame.loc["cut", "status"], frame.loc["cut", "iterations"]) == ("completed", 3)
    assert frame.loc["cut", "final_metric"] == pytest.approx(0.6)


def test_missing_metric_before_any_report_had_it_stops_the_run(tmp_path):
    writer = ResultsWriter(tmp_path, metric="val_acc", mode="max", min_write_interval_s=0)
    trial = _trial("t", {"x": 1})
    writer.on_trial_start(0, [trial], trial)
    writer.on_trial_result(
        0, [trial], trial, {"training_iteration": 1, "val_accuracy": 0.9, "val_loss": 0.3}
    )
    # Raised where Ray ends the experiment (an exception in on_trial_result fails one trial).
    with pytest.raises(MetricNotReportedError, match=r"'val_acc'.*'val_accuracy'.*did you mean"):
        writer.on_step_end(0, [trial])
    # Once the metric has been seen, a report without it is a bad report (hostile metrics).
    writer = ResultsWriter(tmp_path / "b", metric="acc", mode="max", min_write_interval_s=0)
    _run_one(writer, trial, [{"acc": 0.5}, {"other": 1.0}, {"acc": 0.7}])
    assert writer.frame().iloc[0]["bad_reports"] == 1


def test_rows_record_history_status_and_bad_reports(tmp_path):
    frame = _writer(tmp_path).frame()
    assert list(frame["trial_id"]) == ["t0", "t1", "t2"]
    t0, t1, t2 = (frame.iloc[i] for i in range(3))
    assert (t0["final_metric"], t0["best_metric"], t0["best_iteration"]) == (0.6, 0.7, 2)
    assert t0["status"] == "completed"
    assert t0["iterations"] == 3
    assert math.isnan(t1["final_metric"])
    assert t1["bad_reports"] == 1
    assert t1["status"] == "stopped"  # the scheduler's STOP (done=True), recorded
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


def test_log_reads_back_in_the_tables_order(tmp_path):
    """Trials start in another order than Tune created them (two at once); the returned table
    (read from the log) and results.parquet must list them alike: TuneSearchCV's ranking ties
    follow the grid's order."""
    writer = ResultsWriter(tmp_path, metric="acc", mode="max", min_write_interval_s=0)
    first, second = _trial("a", {"x": 1}), _trial("b", {"x": 2})
    _run_one(writer, second, [{"acc": 0.5}])
    _run_one(writer, first, [{"acc": 0.6}])
    writer.on_experiment_end([first, second])
    assert list(read_log(tmp_path)) == ["a", "b"]
    assert list(read_results(tmp_path)["trial_id"]) == ["a", "b"]
