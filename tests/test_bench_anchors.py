"""The benchmark's issue #16 additions: the anchors' space reading (`scripts/anchors.py`), one
anchor driven through the Searcher protocol, the real tasks (`scripts/tasks.py`) and the
scoring of a task whose optimum is not known. No Ray runtime; a few seconds."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
from ray import tune

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import anchors
import bench_searchers
import tasks

from searchers.tune_domains import from_ray


def test_dims_read_every_domain_kind_and_round_trip() -> None:
    space = from_ray(
        {
            "lr": tune.loguniform(1e-4, 1e-1),
            "depth": tune.randint(1, 5),
            "width": tune.qrandint(0, 20, 5),
            "act": tune.choice(["relu", "tanh", "gelu"]),
            "only": tune.choice([7]),
            "const": 3,
        }
    )
    dims = {d.name: d for d in anchors.read_dims(space)}
    assert (dims["lr"].kind, dims["lr"].log) == ("float", True)
    assert (dims["depth"].kind, dims["depth"].lower, dims["depth"].upper) == ("int", 1, 4)
    # qrandint: the library sees the multiplier k (0..4), the config gets k * q.
    assert (dims["width"].lower, dims["width"].upper, dims["width"].q) == (0, 4, 5)
    assert dims["width"].to_code(3) == 15
    assert dims["width"].to_library(15) == 3
    assert (dims["act"].kind, dims["act"].upper) == ("cat", 2)
    assert dims["act"].to_library(dims["act"].to_code("2")) == "2"
    assert dims["only"].fixed == 0
    assert dims["lr"].to_code(1.0) == pytest.approx(1e-1)  # clipped into the domain


def test_conditional_space_is_refused_with_the_reason() -> None:
    space = from_ray({"opt": tune.choice([{"m": tune.uniform(0, 1)}, {"b": tune.uniform(0, 1)}])})
    with pytest.raises(ValueError, match="conditional"):
        anchors.read_dims(space)


@pytest.mark.slow  # two model-based SMAC suggests: ~2 s idle, ~10 s on the loaded 2-core machine
@pytest.mark.skipif(importlib.util.find_spec("smac") is None, reason="smac not installed")
def test_smac_anchor_same_seed_same_suggestions_with_pending() -> None:
    problem = bench_searchers.get_bench_problem("mixed-train")

    def drive(seed: int, n: int) -> list[dict[str, object]]:
        # budget 8: SMAC's initial design is 2 configs (a quarter of the budget), so the third
        # suggest is the random forest's, made with one trial pending.
        searcher = bench_searchers.build_searcher(
            "smac-hpo", seed=seed, budget=8, pending=2, space=problem.space()
        )
        searcher.set_search_properties("loss", "min", problem.space())
        configs, live = [], []
        for i in range(n):
            config = searcher.suggest(f"t{i}")
            assert config is not None
            configs.append(config)
            live.append((f"t{i}", config))
            if len(live) == 2:
                trial_id, done = live.pop(0)
                searcher.on_trial_complete(trial_id, {"loss": problem.value(done)})
        return configs

    first = drive(3, 3)
    space = from_ray(problem.space())
    for config in first:
        space.encode(config)  # raises when a value is outside its domain
    assert json.dumps(drive(3, 3), sort_keys=True) == json.dumps(first, sort_keys=True)
    assert drive(4, 1)[0] != first[0]


def test_tasks_are_deterministic_and_named_for_the_benchmark() -> None:
    task = tasks.TASKS["knn-wine"]
    config = {"n_neighbors": 7, "weights": "distance", "p": 1.5}
    value = tasks.evaluate(task, config)
    assert 0.0 < value < 1.0
    assert tasks.evaluate(task, config) == value
    assert bench_searchers.expand_problems(["tasks", "branin"])[-1] == "branin"
    assert len(bench_searchers.expand_problems(["tasks"])) == len(tasks.TASKS) >= 10
    problem = bench_searchers.get_bench_problem("task:knn-wine")
    assert problem.value(config) == value
    with pytest.raises(ValueError, match="unknown task"):
        bench_searchers.get_bench_problem("task:nope")


def test_task_optimum_is_lowered_to_the_best_value_a_run_observed() -> None:
    name = "task:knn-wine"
    stored = bench_searchers.get_bench_problem(name).optimum
    trace = {"problem": name, "status": "ok", "incumbent_value": [0.5, 0.01]}
    below = min(0.01, stored)
    assert bench_searchers.effective_optima([name], [trace])[name] == below
    # A test function's exact optimum is kept whatever the runs saw.
    branin = {"problem": "branin", "status": "ok", "incumbent_value": [3.0, 1.0]}
    optimum = bench_searchers.effective_optima(["branin"], [branin])["branin"]
    assert math.isclose(optimum, 5.0 / (4.0 * math.pi))
