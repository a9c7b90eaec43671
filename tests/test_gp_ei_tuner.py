"""gp-ei inside a real Ray Tuner, with ASHA stopping trials early and 2 trials in flight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ray import tune
from sklearn.linear_model import ElasticNet

import hpt_ray

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def test_gp_ei_with_asha_and_two_concurrent_trials(tmp_path: Path) -> None:
    result = hpt_ray.tune_model(
        ElasticNet(max_iter=5000),
        {"alpha": tune.loguniform(1e-4, 10.0), "l1_ratio": tune.uniform(0.0, 1.0)},
        data="diabetes",
        cv=3,
        scoring="r2",
        searcher="gp-ei",
        scheduler="asha",
        num_samples=12,
        max_concurrent=2,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    trials = result.trials
    assert len(trials) == 12
    # Every trial ended: ran to the end, or was stopped early by ASHA (its last result is what
    # gp-ei observed); none errored or was left running.
    assert trials["status"].isin(["completed", "stopped"]).all(), trials[["status", "error"]]
    assert trials["final_metric"].notna().all()
    assert result.best_score is not None
    assert result.best_score > float(np.median(trials["final_metric"].iloc[:5]))
    assert 1e-4 <= result.best_config["alpha"] <= 10.0
