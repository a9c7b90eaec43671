"""A `tune_model` run in which ASHA must cut a trial whatever the timing, and the checks of it.

Shared by the Ray-level tests of tests/test_tune_model.py, tests/test_gp_ei_tuner.py and
tests/test_population_searchers.py (pytest puts this directory on ``sys.path``).

The model is the PyTorch MLP on digits, one report per epoch, so ASHA has rungs to act on (an
estimator that reports once, such as ElasticNet, gives it none). The searcher's first points are
two good configs and then a hopeless one (learning rate 1e-5: near chance after one epoch). With
at most 2 trials in flight, the hopeless trial is suggested only after a good one has ended, so
only good values are recorded on the first rung when the hopeless trial gets there; ASHA's cutoff
is a percentile of the recorded values and a trial arriving below it is stopped
(ray/tune/schedulers/async_hyperband.py, ``_Bracket.on_result``). So the hopeless trial is cut at
iteration 1, however the trials interleave. The two good points differ: our searchers hold back a
point equal to a pending trial's config (and the points queued behind it), so two equal points
would let a searcher's own suggestion start before the hopeless one. The checks do not read the
``status`` column: how statuses are recorded is being changed (issue #11, item 9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from ray import tune

from hpt_ray import TuneResult, tune_model
from trainables.torch_trainable import mlp

MAX_T = 4
N_TRIALS = 8
GOOD = ({"lr": 1e-2, "hidden_size": 64}, {"lr": 2e-2, "hidden_size": 64})
HOPELESS = {"lr": 1e-5, "hidden_size": 16}
SPACE: dict[str, Any] = {
    "lr": tune.loguniform(1e-5, 3e-2),
    "hidden_size": [16, 64],
    "n_layers": 1,
    "batch_size": 128,
}


def run_asha(searcher: str, storage_path: Path, *, seed: int = 0) -> TuneResult:
    return tune_model(
        mlp,
        SPACE,
        data="digits",
        searcher=searcher,
        searcher_options={"points_to_evaluate": [*GOOD, HOPELESS]},
        scheduler="asha",
        scheduler_options={"grace_period": 1, "reduction_factor": 2},
        num_samples=N_TRIALS,
        max_concurrent=2,
        epochs=MAX_T,
        seed=seed,
        storage_path=storage_path,
        name=f"asha-{searcher}",
        verbose=0,
    )


def check_asha_cut(result: TuneResult) -> pd.Series:
    """ASHA acted: the hopeless trial was cut at the first rung and the best trial ran to max_t;
    every trial ended without error. Returns the best row."""
    trials = result.trials
    assert len(trials) == N_TRIALS
    assert (trials["status"] != "error").all(), trials[["status", "error"]]
    assert trials["final_metric"].notna().all(), trials["final_metric"].tolist()
    assert trials["iterations"].between(1, MAX_T).all(), trials["iterations"].tolist()
    assert (trials["iterations"] < MAX_T).any(), "ASHA cut no trial"
    hopeless = (trials["config/lr"] == HOPELESS["lr"]) & (
        trials["config/hidden_size"] == HOPELESS["hidden_size"]
    )
    assert hopeless.sum() == 1, trials[["config/lr", "config/hidden_size"]]
    assert trials.loc[hopeless, "iterations"].item() == 1, trials["iterations"].tolist()
    best = trials.loc[trials["final_metric"].idxmax()]
    assert best["iterations"] == MAX_T, trials[["iterations", "final_metric"]]
    assert result.best_score is not None
    assert result.best_score == best["final_metric"]
    assert 0.5 < result.best_score <= 1.0
    return best
