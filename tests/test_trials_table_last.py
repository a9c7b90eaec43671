"""The trials table carries each trial's last report: ``last/<key>`` for the numbers the trainable
reported (issue #17: the hypergradient's ``lr_min``/``lr_mean``/``lr_max`` in the trials' metrics,
not only in Ray's result grid)."""

from __future__ import annotations

import numpy as np

from hpt_ray.table import read_results, records_to_frame, write_results
from hpt_ray.trial_log import TrialRecord


def _record(trial_id: str, last: dict) -> TrialRecord:
    return TrialRecord(trial_id=trial_id, config={"lr": 0.1}, status="completed", last_result=last)


def test_last_report_numbers_become_columns_and_survive_parquet(tmp_path):
    ray_keys = {"training_iteration": 3, "time_total_s": 1.5, "done": True, "pid": 7}
    records = [
        _record("a", {"epoch": 3, "val_loss": 0.25, "lr_mean": np.float32(0.5), **ray_keys}),
        _record("b", {"epoch": 2, "val_loss": 0.5, "stop_reason": "diverged", "ok": True}),
        _record("c", {}),  # no report yet
    ]
    frame = records_to_frame(records)
    last = sorted(c for c in frame.columns if c.startswith("last/"))
    # Ray's own keys, text and booleans stay out; every trainable number is in.
    assert last == ["last/epoch", "last/lr_mean", "last/val_loss"]
    assert list(frame["last/val_loss"].iloc[:2]) == [0.25, 0.5]
    assert frame["last/lr_mean"].iloc[0] == 0.5
    assert frame["last/lr_mean"].isna().iloc[1:].all()  # never reported: empty
    assert str(frame["last/epoch"].dtype) == "Int64"
    write_results(frame, tmp_path)
    back = read_results(tmp_path)
    assert list(back["last/epoch"].iloc[:2]) == [3, 2]
    assert back["last/val_loss"].iloc[1] == 0.5
