"""The driver's progress line counts every way a trial can end (hpt_ray.results.STATUSES)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hpt_ray.progress import RARE_STATUSES, ProgressPrinter
from hpt_ray.results import STATUSES, ResultsWriter, _TrialRecord


def _line(tmp_path: Path, statuses: list[str], metrics: list[float | None], mode: str) -> str:
    writer = ResultsWriter(tmp_path, metric="val_accuracy", mode=mode)
    for i, (status, metric) in enumerate(zip(statuses, metrics, strict=True)):
        trial_id = f"t{i}"
        writer.records[trial_id] = _TrialRecord(
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
