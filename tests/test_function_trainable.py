"""Your own training function through ``tune_model``: real Ray, real reports, real schedulers.

Issue #12 item 1: ``tune_model(train_fn, space, metric=..., mode=...)`` with ``hpt_ray.report``
or Ray Tune's own ``ray.tune.report``, checkpoints through ``hpt_ray.get_checkpoint``, large
objects through ``hpt_ray.with_data``, and each bad input refused or recorded with its cause.
"""

from __future__ import annotations

import math
import runpy
import sys
import warnings

import numpy as np
import pytest
from ray import cloudpickle, tune
from torch import nn

import hpt_ray
from hpt_ray.function import resolve_kind
from hpt_ray.objective import MetricNotReportedError
from hpt_ray.tuning import TrialFailuresWarning

# Functions defined here must reach Ray's workers by value (tests/ is not a package).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.usefixtures("ray_local")

MAX_T = 9


def quality(config):
    """In [0, 0.1]; smallest at x=0.3, y=-1."""
    return 0.1 * ((config["x"] - 0.3) ** 2 + (config["y"] + 1) ** 2) / 18.5


def numeric_loss(config, step):
    # The step term dominates: a trial stopped at rung 1 or 3 (loss >= 1/3) never beats one
    # that ran all 9 steps (loss <= 0.1 + 1/9).
    return quality(config) + 1.0 / step


def numeric_fn(config):
    for step in range(1, MAX_T + 1):
        hpt_ray.report({"loss": numeric_loss(config, step), "step": step})


SPACE = {"x": tune.uniform(-2.0, 2.0), "y": tune.uniform(-2.0, 2.0)}


@pytest.mark.parametrize("searcher", ["gp-ei", "pso", "optuna-tpe"])
def test_numeric_function_under_asha(tmp_path, searcher):
    result = hpt_ray.tune_model(
        numeric_fn,
        SPACE,
        metric="loss",
        mode="min",
        searcher=searcher,
        scheduler_options={"grace_period": 1, "reduction_factor": 3},
        num_samples=9,
        max_concurrent=2,
        epochs=MAX_T,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    table = result.trials
    assert len(table) == 9
    assert (table["status"].isin(["completed", "stopped"])).all()
    stopped = table[table["status"] == "stopped"]
    assert len(stopped) >= 1
    assert (stopped["iterations"] < MAX_T).all()
    assert (table[table["status"] == "completed"]["iterations"] == MAX_T).all()
    # Every row's final metric is the function's value at the step the trial ended on.
    for _, row in table.iterrows():
        config = {"x": row["config/x"], "y": row["config/y"]}
        assert row["final_metric"] == pytest.approx(numeric_loss(config, row["iterations"]))
    best = table.loc[table["final_metric"].idxmin()]
    assert best["iterations"] == MAX_T
    assert result.best_score == best["final_metric"]
    assert result.best_config == {"x": best["config/x"], "y": best["config/y"]}
    with pytest.raises(ValueError, match="builds its own model"):
        result.best_model()


def digits_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    return (X[:1200], y[:1200]), (X[1200:], y[1200:])


def torch_loop(config, train, val):
    """A user's own PyTorch loop: a small CNN on 1x8x8 digit images, checkpointing each epoch."""
    import os
    import tempfile

    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = nn.Sequential(
        nn.Conv2d(1, config["channels"], 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * config["channels"], 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    X, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    Xv, yv = torch.from_numpy(val[0]), torch.from_numpy(val[1])
    start = 0
    checkpoint = hpt_ray.get_checkpoint()
    if checkpoint is not None:
        state = torch.load(os.path.join(checkpoint.path, "state.pt"))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"]
    for epoch in range(start + 1, 4):
        for i in range(0, len(X), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = float((model(Xv).argmax(1) == yv).float().mean())
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch},
                os.path.join(tmp, "state.pt"),
            )
            hpt_ray.report(
                {"val_accuracy": accuracy, "epoch": epoch},
                checkpoint=hpt_ray.Checkpoint.from_directory(tmp),
            )


@pytest.mark.parametrize("searcher", ["gp-ei", "pso", "optuna-tpe"])
def test_own_torch_loop_on_digit_images(tmp_path, searcher):
    train, val = digits_images()
    result = hpt_ray.tune_model(
        hpt_ray.with_data(torch_loop, train=train, val=val),
        {"lr": tune.loguniform(1e-4, 3e-2), "channels": tune.choice([4, 8])},
        metric="val_accuracy",
        mode="max",
        searcher=searcher,
        scheduler_options={"grace_period": 1, "reduction_factor": 2},
        num_samples=4,
        max_concurrent=2,
        epochs=3,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    table = result.trials
    assert len(table) == 4
    assert table["status"].isin(["completed", "stopped"]).all()
    assert table["final_metric"].between(0.0, 1.0).all()
    best = table.loc[table["final_metric"].idxmax()]
    assert result.best_score == best["final_metric"]
    # The best trial's checkpoint is its last epoch, and it reproduces the reported accuracy.
    import torch

    state = torch.load(f"{result.best_checkpoint.path}/state.pt")
    assert state["epoch"] == best["iterations"]
    assert best["status"] == "completed"
    assert best["iterations"] == 3


def ray_tune_code(config):
    """Ray Tune code as written for a bare Tuner: ray.tune.report / ray.tune.get_checkpoint."""
    import json
    import os
    import tempfile

    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "step.json")) as f:
            step = json.load(f)["step"]
    while step < 3:
        step += 1
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "step.json"), "w") as f:
                json.dump({"step": step}, f)
            tune.report(
                {"score": config["a"] * step}, checkpoint=tune.Checkpoint.from_directory(tmp)
            )


def test_existing_ray_tune_code_runs_unchanged(tmp_path):
    result = hpt_ray.tune_model(
        ray_tune_code,
        {"a": tune.grid_search([1.0, 2.0, 3.0])},
        metric="score",
        mode="max",
        searcher="grid",
        scheduler="fifo",
        storage_path=tmp_path,
        verbose=0,
    )
    assert sorted(result.trials["final_metric"]) == [3.0, 6.0, 9.0]
    assert result.best_config == {"a": 3.0}
    assert result.best_score == 9.0
    assert (result.trials["iterations"] == 3).all()


def objective(config):
    """An Optuna-style objective: returns its value."""
    return (config["x"] - 1.0) ** 2


def test_a_returned_number_is_the_metric(tmp_path):
    result = hpt_ray.tune_model(
        objective,
        {"x": tune.grid_search([0.0, 1.0, 3.0])},
        metric="loss",
        mode="min",
        searcher="grid",
        storage_path=tmp_path,
        verbose=0,
    )
    assert sorted(result.trials["final_metric"]) == [0.0, 1.0, 4.0]
    assert result.best_config == {"x": 1.0}


def uses_data(config, data, scale):
    hpt_ray.report({"total": float(data.sum()) * scale + config["c"]})


def test_with_data_and_data_keyword_reach_the_function(tmp_path):
    array = np.arange(100_000, dtype=np.float64)
    result = hpt_ray.tune_model(
        hpt_ray.with_data(uses_data, scale=2.0),
        {"c": tune.grid_search([0.0, 1.0])},
        data=array,
        kind="function",
        metric="total",
        mode="max",
        searcher="grid",
        storage_path=tmp_path,
        verbose=0,
    )
    assert result.best_score == float(array.sum()) * 2.0 + 1.0


def reports_other_keys(config):
    hpt_ray.report({"loss": 1.0, "accuracy": 0.5})


def test_first_report_without_the_metric_stops_the_run(tmp_path):
    with pytest.raises(MetricNotReportedError) as info:
        hpt_ray.tune_model(
            reports_other_keys,
            {"x": tune.uniform(0, 1)},
            metric="los",
            mode="min",
            num_samples=20,
            max_concurrent=1,
            storage_path=tmp_path,
            verbose=0,
        )
    message = str(info.value)
    assert "'los'" in message
    assert "'loss'" in message
    assert "'accuracy'" in message
    assert "did you mean 'loss'" in message


def never_reports(config):
    return None


def test_a_function_that_never_reports_stops_the_run(tmp_path):
    with pytest.raises(MetricNotReportedError, match="without reporting any result"):
        hpt_ray.tune_model(
            never_reports,
            {"x": tune.uniform(0, 1)},
            metric="loss",
            mode="min",
            num_samples=20,
            max_concurrent=1,
            storage_path=tmp_path,
            verbose=0,
        )


def hostile(config):
    value = {"nan": math.nan, "inf": math.inf, "text": "oops", "ok": 0.5}[config["kind"]]
    hpt_ray.report({"loss": value})


def test_non_finite_and_non_numeric_metrics_are_recorded_not_ranked(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = hpt_ray.tune_model(
            hostile,
            {"kind": tune.grid_search(["nan", "ok", "inf", "text"])},
            metric="loss",
            mode="min",
            searcher="grid",
            storage_path=tmp_path,
            verbose=0,
        )
    assert result.best_config == {"kind": "ok"}
    assert result.best_score == 0.5
    bad = result.trials.set_index("config/kind")["bad_reports"]
    assert bad["nan"] == bad["inf"] == bad["text"] == 1
    assert bad["ok"] == 0
    messages = [str(w.message) for w in caught if issubclass(w.category, TrialFailuresWarning)]
    assert any("3 reported a NaN, infinite or non-numeric 'loss'" in m for m in messages)


def returns_a_string(config):
    return "done"


def test_a_wrong_return_value_fails_the_trial_with_its_cause(tmp_path):
    with pytest.warns(TrialFailuresWarning, match="1 of 1 trials failed"):
        result = hpt_ray.tune_model(
            returns_a_string,
            {"x": tune.grid_search([0.0])},
            metric="loss",
            mode="min",
            searcher="grid",
            storage_path=tmp_path,
            verbose=0,
        )
    assert result.best_config is None
    assert result.best_score is None
    assert result.trials["status"].tolist() == ["error"]
    assert "returns_a_string returned str" in result.trials["error"][0]


def no_arguments():
    hpt_ray.report({"loss": 0.0})


def needs_train(config, train):
    hpt_ray.report({"loss": 0.0})


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "needle"),
    [
        (numeric_fn, {"mode": "min"}, ValueError, "metric and mode"),
        (numeric_fn, {"metric": "loss"}, ValueError, "metric and mode"),
        (no_arguments, {"metric": "loss", "mode": "min"}, TypeError, "no_arguments()"),
        (needs_train, {"metric": "loss", "mode": "min"}, TypeError, "hpt_ray.with_data"),
        (numeric_fn, {"metric": "loss", "mode": "min", "cv": 3}, ValueError, "cv applies"),
        (numeric_fn, {"metric": "loss", "mode": "min", "kind": "fn"}, ValueError, "kind must"),
    ],
)
def test_bad_function_input_is_refused_before_any_trial(tmp_path, model, kwargs, error, needle):
    with pytest.raises(error) as info:
        hpt_ray.tune_model(model, SPACE, storage_path=tmp_path, verbose=0, **kwargs)
    assert needle in str(info.value)
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


def test_with_data_refuses_keywords_the_function_cannot_take():
    with pytest.raises(TypeError, match=r"needs_train\(config, val\)"):
        hpt_ray.with_data(needs_train, val=1)


def annotated_factory(config) -> nn.Module:
    return nn.Linear(config["_n_features"], config["_n_outputs"])


def unresolvable_factory(config) -> Sequential:  # noqa: F821 (a name that does not resolve)
    raise NotImplementedError


def annotated_function(config) -> None:
    return None


def test_kind_detection_rules():
    from sklearn.linear_model import LogisticRegression

    assert resolve_kind(LogisticRegression(), None, "digits") == "sklearn"
    assert resolve_kind(LogisticRegression, None, "digits") == "sklearn"
    assert resolve_kind(numeric_fn, None, None) == "function"
    assert resolve_kind(numeric_fn, None, "digits") == "torch"
    assert resolve_kind(annotated_function, None, "digits") == "function"
    assert resolve_kind(annotated_factory, None, None) == "torch"
    assert resolve_kind(unresolvable_factory, None, None) == "torch"
    assert resolve_kind(hpt_ray.with_data(needs_train, train=1), None, "digits") == "function"
    assert resolve_kind(numeric_fn, "function", "digits") == "function"


DRIVER = """
import json, os, sys, tempfile, time
import hpt_ray
from ray import tune

SIDE = sys.argv[2]


def train_fn(config):
    start = 0
    checkpoint = hpt_ray.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as f:
            start = json.load(f)["epoch"]
    with open(os.path.join(SIDE, "%.8f" % config["x"]), "a") as f:
        f.write("start %d\\n" % start)
    for epoch in range(start + 1, 7):
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            hpt_ray.report(
                {"loss": config["x"] + 1.0 / epoch, "epoch": epoch},
                checkpoint=hpt_ray.Checkpoint.from_directory(tmp),
            )
        with open(os.path.join(SIDE, "%.8f" % config["x"]), "a") as f:
            f.write("epoch %d\\n" % epoch)


hpt_ray.tune_model(
    train_fn, {"x": tune.uniform(0.0, 1.0)}, metric="loss", mode="min", scheduler="fifo",
    searcher="random", num_samples=4, max_concurrent=2, epochs=6, seed=0,
    storage_path=sys.argv[1], name="exp", resume=sys.argv[3] == "resume", verbose=0,
)
"""


def _side_lines(side):
    return {p.name: p.read_text().split("\n")[:-1] for p in side.iterdir()}


def _trials_with_saved_checkpoint(experiment):
    """How many trials Ray's newest saved experiment state gives a checkpoint to resume from.

    What a resume can use is what Ray had saved when the driver died, not what the trials wrote:
    on a loaded machine the state can lag several epochs behind the trials' own progress."""
    import json

    from ray.tune.trainable.metadata import _TrainingRunMetadata

    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return 0
    try:
        trial_data = json.loads(states[-1].read_text())["trial_data"]
    except (OSError, ValueError, KeyError):  # being written
        return 0
    count = 0
    for _, metadata in trial_data:
        manager = _TrainingRunMetadata.from_json_state(metadata).checkpoint_manager
        count += manager is not None and manager.latest_checkpoint_result is not None
    return count


@pytest.mark.fault
def test_checkpointing_function_resumes_after_sigkill(tmp_path, monkeypatch):
    """Kill the driver mid-run (SIGKILL, its Ray with it), resume: trials continue from their
    checkpoints, the epoch counter does not restart."""
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    side = tmp_path / "side"
    side.mkdir()
    storage = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HPT_RAY_SNAPSHOT_BUDGET"] = "1"
    command = [sys.executable, str(script), str(storage), str(side)]
    driver = subprocess.Popen(
        [*command, "new"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        # Kill once Ray's saved state holds a checkpoint of two trials and none has finished.
        while _trials_with_saved_checkpoint(storage / "exp") < 2:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no two trials had a saved checkpoint in time"
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = _side_lines(side)
    assert not any("epoch 6" in lines for lines in before.values())

    # The same script resumes in this process (run as __main__, so that Ray pickles train_fn by
    # value as before), on the session's Ray: nothing of the killed driver is here, only its
    # directory (a process of its own cost ~10 s more, its start and its own Ray's).
    monkeypatch.setenv("HPT_RAY_SNAPSHOT_BUDGET", env["HPT_RAY_SNAPSHOT_BUDGET"])
    monkeypatch.setattr(sys, "argv", [*command[1:], "resume"])
    runpy.run_path(str(script), run_name="__main__")
    table = hpt_ray.read_results(storage / "exp")
    assert len(table) == 4
    assert (table["status"] == "completed").all(), table
    assert (table["iterations"] == 6).all()
    for _, row in table.iterrows():
        assert row["final_metric"] == pytest.approx(row["config/x"] + 1.0 / 6)
    after = _side_lines(side)
    continued = 0
    for key, lines in before.items():
        done = [int(line.split()[1]) for line in lines if line.startswith("epoch")]
        starts = [int(line.split()[1]) for line in after[key] if line.startswith("start")]
        assert len(starts) == 2, (key, after[key])  # interrupted once, resumed once
        # Resumed from a checkpoint it had written, not from 0.
        assert 1 <= starts[1] <= max(done), (key, after[key])
        continued += 1
    assert continued == 2


def crashes_once(config, side):
    """Fails at its third epoch the first time; a retry continues from its epoch-2 checkpoint."""
    import json
    import os
    import tempfile

    start = 0
    checkpoint = hpt_ray.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as f:
            start = json.load(f)["epoch"]
    with open(side, "a") as f:
        f.write(f"{start}\n")
    for epoch in range(start + 1, 5):
        if epoch == 3 and start == 0:
            raise RuntimeError("node lost")
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            hpt_ray.report(
                {"loss": 1.0 / epoch}, checkpoint=hpt_ray.Checkpoint.from_directory(tmp)
            )


def test_max_failures_retries_a_function_from_its_checkpoint(tmp_path):
    side = tmp_path / "starts.txt"
    result = hpt_ray.tune_model(
        hpt_ray.with_data(crashes_once, side=str(side)),
        {"x": tune.grid_search([0.0])},
        metric="loss",
        mode="min",
        searcher="grid",
        scheduler="fifo",
        epochs=4,
        max_failures=1,
        storage_path=tmp_path / "results",
        verbose=0,
    )
    assert side.read_text().split() == ["0", "2"]  # the retry started from epoch 2
    assert result.trials["status"].tolist() == ["completed"]
    assert result.trials["iterations"].tolist() == [4]
    assert result.best_score == 0.25


def test_hpt_ray_report_stays_ray_tune_report_whatever_is_imported():
    # A submodule named like the function would shadow it once imported (a trial saw
    # "'module' object is not callable" after another test imported it).
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(hpt_ray.__path__):
        if module.name != "__main__":
            importlib.import_module(f"hpt_ray.{module.name}")
    assert hpt_ray.report is tune.report
    assert hpt_ray.get_checkpoint is tune.get_checkpoint
