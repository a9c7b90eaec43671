"""The driver's progress: a line that counts every way a trial can end (hpt_ray.table.STATUSES),
a live bar with an ETA on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from ray import tune
from sklearn.linear_model import LogisticRegression

from hpt_ray import tune_model
from hpt_ray.progress import RARE_STATUSES, Eta, ProgressPrinter, estimate_eta
from hpt_ray.results import ResultsWriter
from hpt_ray.table import STATUSES
from hpt_ray.trial_log import TrialRecord


def _line(tmp_path: Path, statuses: list[str], metrics: list[float | None], mode: str) -> str:
    writer = ResultsWriter(tmp_path, metric="val_accuracy", mode=mode)
    for i, (status, metric) in enumerate(zip(statuses, metrics, strict=True)):
        trial_id = f"t{i}"
        writer.records[trial_id] = TrialRecord(
            trial_id=trial_id, config={}, status=status, final_metric=metric
        )
    stream = io.StringIO()
    ProgressPrinter(writer, total=len(statuses), stream=stream).on_experiment_end(trials=[])
    return stream.getvalue().strip()


def test_every_ended_trial_counts_as_done(tmp_path: Path) -> None:
    statuses = ["completed", "stopped", "diverged", "error", "interrupted", "timeout", "running"]
    line = _line(tmp_path, statuses, [0.9, 0.8, None, None, 0.95, 0.7, 0.5], mode="max")
    assert "trials 6/7 done:" in line
    assert "1 completed, 1 stopped early, 1 failed, 1 diverged, 1 interrupted, 1 timed out, " in (
        line
    )
    assert "1 running | best val_accuracy=0.95 (t4)" in line


def test_usual_line_names_no_rare_status(tmp_path: Path) -> None:
    line = _line(tmp_path, ["completed", "completed", "pending"], [0.3, 0.2, None], mode="min")
    assert "trials 2/3 done: 2 completed, 0 stopped early, 0 failed, 0 running" in line
    assert "best val_accuracy=0.2 (t1)" in line
    assert not any(label in line for label in RARE_STATUSES.values())


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_shown_or_pending(status: str) -> None:
    # A status results.py adds must be counted here too, or "done" falls short of the total.
    assert status in {"completed", "stopped", "error", "running", "pending", *RARE_STATUSES}


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as sys.stdout does in a shell."""

    def isatty(self) -> bool:
        return True


def _writer(tmp_path: Path, trials: list[tuple[str, float | None, float]]) -> ResultsWriter:
    writer = ResultsWriter(tmp_path, metric="val_accuracy", mode="max")
    for i, (status, metric, wall_time_s) in enumerate(trials):
        writer.records[f"t{i}"] = TrialRecord(
            trial_id=f"t{i}",
            config={},
            status=status,
            final_metric=metric,
            wall_time_s=wall_time_s,
        )
    return writer


# 3 ended trials of 10 s on average, 2 running: 5 of 8 left at 2 at a time take 25 s.
TRIALS = [
    ("completed", 0.9, 12.0),
    ("stopped", 0.7, 3.0),
    ("error", None, 15.0),
    ("running", 0.95, 4.0),
    ("running", None, 1.0),
    ("pending", None, 0.0),
]


def test_terminal_gets_a_bar_with_counts_best_and_eta(tmp_path: Path) -> None:
    stream = _Terminal()
    printer = ProgressPrinter(_writer(tmp_path, TRIALS), total=8, stream=stream)
    printer.on_trial_result(0, [], None, {})
    printer.on_experiment_end(trials=[])
    out = stream.getvalue()
    # Drawn in place: each redraw starts with a carriage return; closing ends the line.
    frames = out.split("\r")
    assert len(frames) >= 3
    assert out.endswith("\n")
    last = frames[-2] if frames[-1].strip() == "" else frames[-1]
    assert last.startswith("trials  38%|")
    assert "| 3/8 [00:00, eta 00:25 (trials) | best val_accuracy=0.95 (t3) | " in last
    assert last.rstrip().endswith("1 completed, 1 stopped early, 1 failed, 2 running]")


def test_bar_eta_is_unknown_before_any_trial_ended(tmp_path: Path) -> None:
    stream = _Terminal()
    writer = _writer(tmp_path, [("running", None, 2.0), ("pending", None, 0.0)])
    ProgressPrinter(writer, total=4, stream=stream).on_experiment_end(trials=[])
    assert "0/4" in stream.getvalue()
    assert "0/4 [00:00, eta ? | 0 completed, 0 stopped early, 0 failed, 1 running]" in (
        stream.getvalue()
    )


def test_bar_says_when_the_time_budget_binds(tmp_path: Path) -> None:
    stream = _Terminal()
    # The trials would take 25 s more; the budget ends the run within 20 s.
    printer = ProgressPrinter(_writer(tmp_path, TRIALS), total=8, time_budget_s=20, stream=stream)
    printer.on_experiment_end(trials=[])
    assert re.search(r"eta 00:(19|20) \(time budget\)", stream.getvalue())


def test_eta_from_trials_or_budget_whichever_is_sooner(tmp_path: Path) -> None:
    records = list(_writer(tmp_path, TRIALS).records.values())
    assert estimate_eta(records, total=8, time_budget_s=None, elapsed_s=5, concurrency=2) == Eta(
        25.0, "trials"
    )
    assert estimate_eta(records, total=8, time_budget_s=60, elapsed_s=5, concurrency=1) == Eta(
        50.0, "trials"
    )
    assert estimate_eta(records, total=8, time_budget_s=30, elapsed_s=5, concurrency=1) == Eta(
        25.0, "time budget"
    )
    # No trial ended: only a budget gives an estimate; the number of trials unknown: the same.
    running = records[3:]
    assert estimate_eta(running, total=8, time_budget_s=None, elapsed_s=5, concurrency=2) == Eta(
        None, None
    )
    assert estimate_eta(running, total=8, time_budget_s=9, elapsed_s=5, concurrency=2) == Eta(
        4.0, "time budget"
    )
    assert estimate_eta(records, total=None, time_budget_s=None, elapsed_s=5, concurrency=2) == (
        Eta(None, None)
    )
    assert Eta(None, None).text() == "eta ?"


def test_other_streams_get_plain_lines(tmp_path: Path) -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(_writer(tmp_path, TRIALS), total=8, stream=stream, interval_s=0)
    printer.on_trial_result(0, [], None, {})
    printer.on_step_end(0, [])
    printer.on_experiment_end(trials=[])
    out = stream.getvalue()
    assert "\r" not in out
    assert "\x1b" not in out
    lines = out.splitlines()
    # One line per event with a result; the loop's steps print nothing.
    assert len(lines) == 2
    assert all("trials 3/8 done: 1 completed, 1 stopped early, 1 failed, " in x for x in lines)


@pytest.mark.slow
def test_a_real_run_prints_plain_lines(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tune_model(
        LogisticRegression(max_iter=300),
        {"C": tune.loguniform(1e-3, 10.0)},
        data="iris",
        cv=3,
        searcher="random",
        scheduler="fifo",
        num_samples=3,
        max_concurrent=2,
        seed=0,
        storage_path=tmp_path,
        name="progress",
        verbose=1,
    )
    out = capsys.readouterr().out
    assert "\r" not in out
    assert "\x1b" not in out
    lines = [x for x in out.splitlines() if "] trials " in x]
    assert lines
    last = lines[-1]
    assert "trials 3/3 done: 3 completed, 0 stopped early, 0 failed, 0 running | best " in last
