"""Population-based training (issue #17 part 2): real runs where members exploit, the schedule,
a driver kill and resume, and the checks made before any trial starts."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from ray import cloudpickle, tune
from sklearn.linear_model import LogisticRegression

import hpt_ray
from hpt_ray.pbt import CheckpointRequiredError, read_schedule
from searchers.validation import InvalidParameterError

# Ray workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.usefixtures("ray_local")


def sparse_checkpoints(config):
    """Score grows fastest near x = 0.7; a checkpoint only every second report, so with
    perturbation_interval=1 half the exploit and pause points have no checkpoint (ray#27170).
    Each start is logged with the checkpoint it restored (None: from scratch)."""
    import json
    import os
    import tempfile
    import time

    from ray import tune as ray_tune

    import hpt_ray as hr

    trial_id = ray_tune.get_context().get_trial_id()
    start, score, restored = 0, 0.0, None
    checkpoint = hr.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as f:
            restored = json.load(f)
        start, score = restored["iteration"], restored["score"]
    with open(os.path.join(config["side"], trial_id), "a") as f:
        f.write(json.dumps(restored) + "\n")
    for iteration in range(start + 1, config["epochs"] + 1):
        time.sleep(config.get("pause", 0.0))
        score += 1.0 - abs(config["x"] - 0.7)
        metrics = {"score": score}
        if iteration % 2:
            hr.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"iteration": iteration, "score": score, "owner": trial_id}, f)
            hr.report(metrics, checkpoint=hr.Checkpoint.from_directory(tmp))


def never_checkpoints(config):
    import hpt_ray as hr

    for i in range(1, 9):
        hr.report({"score": config["x"] * i})


def _starts(side: Path) -> dict[str, list]:
    return {
        p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in side.iterdir()
    }


@pytest.fixture
def side(tmp_path):
    directory = tmp_path / "side"
    directory.mkdir()
    return directory


@pytest.mark.slow
def test_members_exploit_real_checkpoints_and_the_schedule_is_recorded(tmp_path, side):
    result = hpt_ray.tune_model(
        sparse_checkpoints,
        {"x": tune.uniform(0.0, 1.0), "epochs": 8, "side": str(side)},
        metric="score",
        mode="max",
        searcher="random",
        scheduler="pbt",
        scheduler_options={"perturbation_interval": 1, "explore": "gp-ei"},
        num_samples=4,
        max_concurrent=2,  # two members wait: Ray pauses the others to share the slots
        epochs=8,
        seed=3,
        storage_path=tmp_path / "runs",
        verbose=0,
    )
    schedule = result.schedule
    assert schedule is not None
    assert read_schedule(result.path).equals(schedule)
    exploits = schedule[schedule["exploited_from"].notna()]
    assert len(exploits) >= 1, schedule
    starts = _starts(side)
    for _, row in exploits.iterrows():
        # The checkpoint copied is the donor's, on disk, of the report just before this one.
        assert Path(row["checkpoint"]).is_dir(), row
        state = json.loads((Path(row["checkpoint"]) / "state.json").read_text())
        assert state["owner"] == row["exploited_from"]
        assert state["iteration"] == row["iteration"] - 1
        assert state in starts[row["trial_id"]]
    for trial_id, restored in starts.items():
        # Started from scratch once; every later start restored a checkpoint (a pause at a
        # report without one would have started it over: ray#27170).
        assert restored[0] is None, trial_id
        assert all(r is not None for r in restored[1:]), (
            trial_id,
            restored,
        )
    # The config changes over time and each change is in the schedule: the exploit rows carry
    # values no member started with, chosen by the searcher within the domain.
    initial = set(result.trials["config/x"])
    assert set(exploits["config/x"]) - initial
    assert exploits["config/x"].between(0.0, 1.0).all()
    per_trial = schedule.groupby("trial_id")["config/x"].nunique()
    assert (per_trial > 1).any()
    # Every member's lineage trains 8 reports, and the best config is its last values.
    assert (result.trials["iterations"] == 8).all()
    best = result.trials.loc[result.trials["final_metric"].idxmax(), "trial_id"]
    last = schedule[schedule["trial_id"] == best].sort_values("iteration").iloc[-1]
    assert result.best_config["x"] == pytest.approx(last["config/x"])


DRIVER = """
import sys
from ray import tune
import hpt_ray

{function}

hpt_ray.tune_model(
    sparse_checkpoints,
    {{"x": tune.uniform(0.0, 1.0), "epochs": 10, "pause": 0.4, "side": sys.argv[3]}},
    metric="score", mode="max", searcher="random", scheduler="pbt",
    scheduler_options={{"perturbation_interval": 2}}, num_samples=2, max_concurrent=2,
    epochs=10, seed=0, storage_path=sys.argv[1], name="exp", resume=sys.argv[2] == "resume",
    verbose=0,
)
"""


@pytest.mark.slow
@pytest.mark.fault
def test_a_killed_driver_resumes_the_population(tmp_path, side):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(function=inspect.getsource(sparse_checkpoints)))
    storage = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HPT_RAY_SNAPSHOT_BUDGET"] = "1"
    command = [sys.executable, str(script), str(storage)]
    driver = subprocess.Popen(
        [*command, "new", str(side)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        # Kill once the schedule holds reports past the first perturbation of both members.
        while True:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the population did not get going in time"
            try:
                rows = pd.read_parquet(storage / "exp" / "schedule.parquet")
            except (OSError, ValueError):
                rows = pd.DataFrame({"iteration": []})
            if (rows["iteration"] >= 4).sum() >= 2:
                break
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = read_schedule(storage / "exp")
    assert before is not None
    assert before["iteration"].max() < 10

    resumed = subprocess.run(
        [*command, "resume", str(side)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = hpt_ray.read_results(storage / "exp")
    assert len(table) == 2
    assert (table["iterations"] == 10).all(), table
    after = read_schedule(storage / "exp")
    assert after["iteration"].max() == 10
    # The resumed scheduler kept the first driver's schedule: its rows are still there.
    kept = before.merge(after, on=["trial_id", "iteration"])
    assert len(kept) >= len(before) - 2
    # Each member continued from a checkpoint after the kill, not from scratch.
    for trial_id, restored in _starts(side).items():
        assert restored[0] is None, (trial_id, restored)
        assert restored[-1] is not None, (trial_id, restored)


@pytest.mark.slow
def test_a_function_that_never_checkpoints_stops_the_run(tmp_path):
    with pytest.raises(CheckpointRequiredError, match="checkpoint") as info:
        hpt_ray.tune_model(
            never_checkpoints,
            {"x": tune.uniform(0.0, 1.0)},
            metric="score",
            mode="max",
            searcher="random",
            scheduler="pbt",
            scheduler_options={"perturbation_interval": 1},
            num_samples=2,
            max_concurrent=2,
            epochs=8,
            storage_path=tmp_path,
            verbose=0,
        )
    assert "model:" in str(info.value)
    assert "hpt_ray.report" in str(info.value)


def _refused(**kwargs):
    arguments = {
        "model": sparse_checkpoints,
        "space": {"x": tune.uniform(0.0, 1.0)},
        "metric": "score",
        "mode": "max",
        "scheduler": "pbt",
        "num_samples": 2,
        "verbose": 0,
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidParameterError) as info:
        hpt_ray.tune_model(arguments.pop("model"), arguments.pop("space"), **arguments)
    return str(info.value)


def test_a_typo_in_explore_names_the_field_and_the_closest_searcher(tmp_path):
    message = _refused(scheduler_options={"explore": "gp_ei"}, storage_path=tmp_path)
    assert "scheduler_options.explore" in message
    assert "'gp-ei'" in message
    assert not list(tmp_path.iterdir())  # refused before a run directory exists


def test_an_unknown_option_and_pb2_with_explore_are_refused(tmp_path):
    message = _refused(scheduler_options={"perturbation_intervall": 2}, storage_path=tmp_path)
    assert "perturbation_interval" in message
    assert "scheduler_options" in message
    message = _refused(
        scheduler="pb2", scheduler_options={"explore": "pso"}, storage_path=tmp_path
    )
    assert "scheduler_options" in message
    assert "'explore'" in message


def test_scikit_learn_trials_cannot_be_a_population(tmp_path):
    message = _refused(
        model=LogisticRegression(),
        space={"C": tune.loguniform(1e-3, 10.0)},
        data="iris",
        metric=None,
        mode=None,
        storage_path=tmp_path,
    )
    assert message.startswith("scheduler: 'pbt'")
    assert "checkpoint" in message


@pytest.mark.parametrize(
    "space",
    [
        {"act": tune.choice(["relu", "tanh"]), "x": 0.5},
        {"opt": tune.choice([{"name": "sgd", "lr": tune.uniform(0.0, 1.0)}, {"name": "adam"}])},
    ],
    ids=["categorical-only", "conditional-only"],
)
def test_a_space_without_a_top_level_numeric_parameter_is_refused(tmp_path, space):
    message = _refused(space=space, storage_path=tmp_path)
    assert message.startswith("space: scheduler='pbt'")
    assert "numeric" in message


def test_pbt_outside_tune_model_needs_the_space():
    with pytest.raises(InvalidParameterError, match="scheduler: 'pbt'"):
        hpt_ray.make_scheduler("pbt", max_t=10)
