"""tune_model end to end on a local Ray: every searcher runs the flow; ASHA cuts trials.

Whether a searcher learns is tested where it can fail, against random search over seeds on a cheap
objective (tests/test_searchers_beat_random.py), not here against its own first trials.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from asha_runs import check_asha_cut, run_asha
from ray import tune
from sklearn.linear_model import ElasticNet
from test_searchers_conformance import MODEL_PHASE

import searchers
from hpt_ray import read_results, tune_model
from trainables.torch_trainable import mlp

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

# Each trial costs ~0.5 s of driver overhead on 2 busy cores; the searchers' short initial designs
# of the conformance suite (MODEL_PHASE) make these 6 trials reach the model phase (12 trials with
# the default designs did so for fewer searchers: Optuna's TPE and GP start after 10, HyperOpt's
# after 20).
N_TRIALS = 6


@pytest.mark.parametrize("name", searchers.available())
def test_every_searcher_runs_the_whole_flow(tmp_path, name):
    # ElasticNet on diabetes: 3-fold R^2 is continuous in (alpha, l1_ratio), so "better"
    # never ties by chance.
    if searchers.supports_grid(name):
        space = {"alpha": [1e-3, 0.1, 1.0], "l1_ratio": [0.05, 0.95]}
    else:
        space = {"alpha": tune.loguniform(1e-4, 10.0), "l1_ratio": tune.uniform(0.0, 1.0)}
    result = tune_model(
        ElasticNet(max_iter=5000),
        space,
        data="diabetes",
        cv=3,
        scoring="r2",
        searcher=name,
        searcher_options=MODEL_PHASE.get(name),
        scheduler="fifo",
        num_samples=N_TRIALS,
        max_concurrent=2,
        seed=0,
        storage_path=tmp_path,
        name=name,
        verbose=0,
    )
    trials = result.trials
    expected = 6 if searchers.supports_grid(name) else N_TRIALS
    assert len(trials) == expected
    assert (trials["status"] == "completed").all(), trials[["status", "error"]]
    assert result.best_score == pytest.approx(trials["final_metric"].max())
    best = trials.loc[trials["final_metric"].idxmax()]
    assert result.best_config["alpha"] == pytest.approx(best["config/alpha"])


def test_asha_stops_trials_early_and_the_best_runs_to_max_t(tmp_path):
    result = run_asha("random", tmp_path)
    best = check_asha_cut(result)
    # The best checkpoint is the best trial's, inside this experiment's directory.
    assert result.best_checkpoint is not None
    checkpoint = Path(result.best_checkpoint.path).resolve()
    assert checkpoint.is_relative_to(Path(result.path).resolve())
    owners = [r for r in result.result_grid if r.metrics.get("trial_id") == best["trial_id"]]
    assert len(owners) == 1
    assert checkpoint.is_relative_to(Path(owners[0].path).resolve())
    assert owners[0].checkpoint is not None
    assert Path(owners[0].checkpoint.path).resolve() == checkpoint

    # results.parquet holds the rows tune_model returned. Compared by trial id: the row order
    # differs when trials start in another order than they were created (result.trials comes
    # from the trial log, in start order; results.parquet is in creation order; reported).
    pd.testing.assert_frame_equal(
        read_results(result.path).sort_values("trial_id", ignore_index=True),
        result.trials.sort_values("trial_id", ignore_index=True),
    )


def test_hyperband_is_asynchronous_over_all_brackets():
    # Synchronous HyperBand pauses trials until a bracket fills; with max_concurrent below the
    # bracket size the paused trials hold every slot and the run never ends. Ours never pauses.
    from hpt_ray.schedulers import make_scheduler

    inner = make_scheduler("hyperband", max_t=27, reduction_factor=3).inner
    assert type(inner).__name__ == "AsyncHyperBandScheduler"
    assert len(inner._brackets) == 4  # s = 0..3: grace 1, 3, 9, 27
    assert len(make_scheduler("hyperband", max_t=2, reduction_factor=3).inner._brackets) == 1


@pytest.mark.parametrize("scheduler", ["hyperband", "median", "fifo"])
def test_other_schedulers_run_to_completion(tmp_path, scheduler):
    epochs = 4
    result = tune_model(
        mlp,
        {"lr": tune.loguniform(1e-3, 3e-2), "hidden_size": 32, "n_layers": 1},
        data="iris",
        searcher="random",
        scheduler=scheduler,
        num_samples=4,
        max_concurrent=2,
        epochs=epochs,
        seed=1,
        storage_path=tmp_path,
        name=scheduler,
        verbose=0,
    )
    trials = result.trials
    assert len(trials) == 4
    assert trials["status"].isin(["completed", "stopped"]).all()
    assert trials["iterations"].max() == epochs
    if scheduler == "fifo":
        assert (trials["iterations"] == epochs).all()
    # The scheduler's state is kept for a resume (the median rule holds lambdas); FIFO has none,
    # so it writes no file (a write per finished trial was driver overhead for nothing).
    assert (Path(result.path) / "scheduler-state.pkl").exists() == (scheduler != "fifo")


def test_snapshot_budget_is_validated(monkeypatch):
    from hpt_ray.run import snapshot_budget

    monkeypatch.setenv("HPT_RAY_SNAPSHOT_BUDGET", "0.2")
    assert snapshot_budget() == 0.2
    monkeypatch.delenv("HPT_RAY_SNAPSHOT_BUDGET")
    assert snapshot_budget() == 0.02
    for bad in ("lots", "-1", "2", "nan"):
        monkeypatch.setenv("HPT_RAY_SNAPSHOT_BUDGET", bad)
        with pytest.raises(ValueError, match="HPT_RAY_SNAPSHOT_BUDGET"):
            snapshot_budget()
