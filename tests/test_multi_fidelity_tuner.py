"""Each own searcher in a real ``tune_model`` run under ASHA that stops trials at several rungs
(issue #15): intermediate results reach the searcher every iteration, stopped trials are ordinary
completions, and the run ends with the right trials table."""

from __future__ import annotations

import sys

import pytest
from ray import cloudpickle, tune

import hpt_ray

# Functions defined here must reach Ray's workers by value (tests/ is not a package).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

MAX_T = 9


def loss(config, step):
    # A trial stopped at rung 1 or 3 (loss >= 1/3) never beats one that ran all 9 steps.
    return 0.1 * ((config["x"] - 0.3) ** 2 + (config["y"] + 1) ** 2) / 18.5 + 1.0 / step


def train(config):
    for step in range(1, MAX_T + 1):
        hpt_ray.report({"loss": loss(config, step), "step": step})


@pytest.mark.parametrize("searcher", ["gp-ei", "pso", "genetic"])
def test_own_searcher_under_asha_stopping_at_several_rungs(tmp_path, searcher):
    options = {"gp-ei": {"n_initial": 3}, "pso": {"n_particles": 4}, "genetic": {}}[searcher]
    result = hpt_ray.tune_model(
        train,
        {"x": tune.uniform(-2.0, 2.0), "y": tune.uniform(-2.0, 2.0)},
        metric="loss",
        mode="min",
        searcher=searcher,
        searcher_options=options,
        scheduler="asha",
        scheduler_options={"grace_period": 1, "reduction_factor": 3},
        num_samples=8,
        max_concurrent=2,
        epochs=MAX_T,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    table = result.trials
    assert len(table) == 8
    assert table["status"].isin(["completed", "stopped"]).all()
    ended = set(table["iterations"])
    assert MAX_T in ended
    assert ended & {1, 3}, f"ASHA stopped no trial at a rung: iterations {sorted(ended)}"
    for _, row in table.iterrows():
        config = {"x": row["config/x"], "y": row["config/y"]}
        assert row["final_metric"] == pytest.approx(loss(config, row["iterations"]))
    best = table.loc[table["final_metric"].idxmin()]
    assert best["iterations"] == MAX_T
    assert result.best_config == {"x": best["config/x"], "y": best["config/y"]}
