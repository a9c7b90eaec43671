"""Each own searcher in a real ``tune_model`` run under ASHA that stops trials at several rungs
(issue #15): intermediate results reach the searcher every iteration, stopped trials are ordinary
completions at their fidelity, and every run ends with the right trials table.

One test runs the searchers one after the other on the session's Ray: a run costs seconds of
Ray's own overhead (a trial microseconds), so ``auto``, whose portfolio core keeps no fidelities,
is left out here (tests/test_searchers_conformance.py covers it)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from ray import cloudpickle, tune

import hpt_ray
import searchers

# Functions defined here must reach Ray's workers by value (tests/ is not a package).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

MAX_T = 9  # rungs at 1 and 3 (grace 1, reduction factor 3)
SPACE = {"x": tune.uniform(-2.0, 2.0), "y": tune.uniform(-2.0, 2.0)}
OPTIONS: dict[str, dict[str, Any]] = {
    "gp-ei": {"n_initial": 3},
    "pso": {"n_particles": 4},
    "genetic": {"population_size": 4},
}


def loss(config: dict[str, float], step: int) -> float:
    # A trial stopped at rung 1 or 3 (loss >= 1/3) never beats one that ran all 9 steps.
    return 0.1 * ((config["x"] - 0.3) ** 2 + (config["y"] + 1) ** 2) / 18.5 + 1.0 / step


def train(config: dict[str, float]) -> None:
    for step in range(1, MAX_T + 1):
        hpt_ray.report({"loss": loss(config, step)})


def run(searcher: Any, tmp_path: Any, name: str) -> Any:
    return hpt_ray.tune_model(
        train,
        SPACE,
        metric="loss",
        mode="min",
        searcher=searcher,
        scheduler="asha",
        scheduler_options={"grace_period": 1, "reduction_factor": 3},
        num_samples=10,
        max_concurrent=2,
        epochs=MAX_T,
        seed=0,
        storage_path=tmp_path,
        name=name,
        verbose=0,
    )


def check_table(result: Any, name: str) -> None:
    table = result.trials
    assert len(table) == 10, name
    iterations = table["iterations"].to_numpy()
    assert (table["status"] == "completed").to_numpy().tolist() == (
        iterations == MAX_T
    ).tolist(), f"{name}: a trial shorter than max_t must be 'stopped'"
    assert set(table.loc[iterations < MAX_T, "status"]) <= {"stopped"}, name
    assert set(iterations) <= {1, 3, MAX_T}, f"{name}: trials end at rungs or max_t"
    assert MAX_T in set(iterations), name
    assert set(iterations) & {1, 3}, f"{name}: ASHA stopped no trial: {sorted(iterations)}"
    for _, row in table.iterrows():
        config = {"x": row["config/x"], "y": row["config/y"]}
        assert row["final_metric"] == pytest.approx(loss(config, row["iterations"])), name
    best = table.loc[table["final_metric"].idxmin()]
    assert best["iterations"] == MAX_T, name
    assert result.best_config == {"x": best["config/x"], "y": best["config/y"]}, name


def test_own_searchers_under_asha_stopping_at_several_rungs(tmp_path) -> None:
    stopped_at: set[int] = set()
    for name, options in OPTIONS.items():
        searcher: Any = searchers.make_searcher(name, seed=0, **options)
        result = run(searcher, tmp_path, name)
        check_table(result, name)
        table = result.trials
        stopped_at |= set(table.loc[table["status"] == "stopped", "iterations"])
        # The searcher the run drove heard every trial at its fidelity: each completed trial's
        # level is its number of reports (ASHA's stops included), and it saw the stops.
        book = searcher._core._book
        assert not book.running, f"{name}: a trial was left running in the book"
        assert sorted(book.done_levels) == sorted(float(n) for n in table["iterations"]), name
        assert book.top == MAX_T, name
        assert book.multi_fidelity, f"{name}: the searcher never learned of a stopped trial"
    # Over the three runs ASHA stopped trials at both rungs below max_t.
    assert stopped_at == {1, 3}, f"stopped at {sorted(stopped_at)}"
