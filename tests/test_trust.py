"""No silent wrong results (issue #11): runs never mix, statuses are recorded, Ctrl-C then resume
keeps the table true, a misspelled metric stops before the budget is spent, configs stay exact,
and the best model predicts what the run reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ray import tune
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import searchers
from hpt_ray.cli import main as cli_main
from hpt_ray.objective import MetricNotReportedError
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import SafeScheduler, make_scheduler
from hpt_ray.storage import LOG_FILE, ExperimentExistsError, claim_directory, unique_name
from hpt_ray.trial_log import read_log
from hpt_ray.tuning import TrialFailuresWarning, tune_model
from trainables.data import load_data

ROOT = Path(__file__).resolve().parents[1]
HPT_RAY = str(Path(sys.executable).parent / "hpt-ray")


# -- one run per directory ---------------------------------------------------------------------
def test_unnamed_runs_never_share_a_directory(tmp_path):
    names = {claim_directory(tmp_path, None, prefix="same")[0] for _ in range(20)}
    assert len(names) == 20  # twenty runs in the same second
    assert unique_name("a b/c").startswith("a-b-c-")


def test_named_directory_that_holds_a_run_is_refused_and_left_alone(tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    (directory / LOG_FILE).write_text("old run\n")
    with pytest.raises(ExperimentExistsError, match=r"resume=True.*hpt-ray resume.*another name"):
        claim_directory(tmp_path, "exp")
    assert (directory / LOG_FILE).read_text() == "old run\n"
    assert claim_directory(tmp_path, "exp", resume=True) == ("exp", directory)
    # A directory with only the experiment file (the CLI writes it first) is not a run yet.
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "experiment.yaml").write_text("{}")
    assert claim_directory(tmp_path, "fresh")[0] == "fresh"


def test_new_run_never_loads_an_old_scheduler_state(tmp_path):
    first = make_scheduler("asha", max_t=9)
    first.bind(tmp_path)
    first.set_search_properties("loss", "min")
    first._save_state(force=True)
    assert (tmp_path / SafeScheduler.STATE_FILE).exists()
    fresh = make_scheduler("asha", max_t=9)
    fresh.bind(tmp_path)
    assert fresh._load_state() is False
    resumed = make_scheduler("asha", max_t=9)
    resumed.bind(tmp_path, restore=True)
    assert resumed._load_state() is True


def _experiment_file(tmp_path: Path, **changes) -> Path:
    document = {
        "model": "trainables.torch_trainable:mlp",
        "data": "digits",
        "searcher": "random",
        "scheduler": "fifo",
        "num_samples": 2,
        "max_concurrent": 2,
        "epochs": 2,
        "seed": 0,
        "space": {"lr": {"loguniform": [1e-3, 1e-2]}, "hidden_size": 32},
        **changes,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_cli_rerun_with_the_same_name_is_refused_and_merges_nothing(tmp_path):
    source = _experiment_file(tmp_path)
    command = [HPT_RAY, "run", str(source), "--storage-path", str(tmp_path / "s"), "--name", "x"]
    # The first run only makes the run to protect: the same `hpt-ray run` in this process, on the
    # session's Ray (a process of its own cost ~10 s more, its start and its own Ray's).
    assert cli_main([*command[1:], "--quiet"]) == 0
    directory = tmp_path / "s" / "x"
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    _experiment_file(tmp_path, num_samples=5)  # the user edits the file, runs it again
    second = subprocess.run(
        [*command, "--quiet"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 2
    assert "already holds a run" in second.stderr
    assert f"hpt-ray resume {directory}" in second.stderr
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    assert after == before  # experiment.yaml, results.parquet, the log: untouched
    assert len(pd.read_parquet(directory / "results.parquet")) == 2


# -- Ctrl-C, then resume -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_ctrl_c_exits_130_marks_interrupted_and_resume_rewrites_the_rows(tmp_path):
    source = _experiment_file(tmp_path, epochs=120, num_samples=2)
    directory = tmp_path / "s" / "x"
    driver = subprocess.Popen(
        [HPT_RAY, "run", str(source), "--storage-path", str(tmp_path / "s"), "--name", "x"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    # Wait until both trials have reported a few epochs (their own result.json files say so).
    deadline = time.monotonic() + 240
    while True:
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the trials did not start in time"
        epochs = [len(p.read_text().splitlines()) for p in directory.glob("*/result.json")]
        if len(epochs) == 2 and min(epochs) >= 3:
            break
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGINT)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err[-3000:]
    assert f"hpt-ray resume {directory}" in out
    assert "Tuner.restore" not in out + err
    table = pd.read_parquet(directory / "results.parquet")
    assert list(table["status"]) == ["interrupted", "interrupted"], table
    assert (table["iterations"] >= 3).all()

    # Resumed by `hpt-ray resume` in this process, on the session's Ray: nothing of the
    # interrupted driver is here, only its directory (a process of its own cost ~10 s more).
    assert cli_main(["resume", str(directory), "--quiet"]) == 0
    table = pd.read_parquet(directory / "results.parquet").set_index("trial_id")
    assert len(table) == 2
    for trial_dir in directory.glob("*/result.json"):
        results = [json.loads(line) for line in trial_dir.read_text().splitlines()]
        trial_id = results[-1]["trial_id"]
        # The row is the trial's own last result, not the one frozen at the interrupt.
        assert table.loc[trial_id, "status"] == "completed"
        assert table.loc[trial_id, "iterations"] == results[-1]["training_iteration"] == 120
        assert table.loc[trial_id, "final_metric"] == results[-1]["val_accuracy"]


# -- a metric nobody reports -------------------------------------------------------------------
def test_misspelled_metric_of_a_built_in_trainable_fails_before_any_trial(tmp_path):
    with pytest.raises(MetricNotReportedError, match=r"'val_acc'.*did you mean 'val_accuracy'"):
        tune_model(
            _mlp(),
            {"lr": 1e-3},
            data="digits",
            metric="val_acc",
            mode="max",
            storage_path=tmp_path,
        )
    with pytest.raises(MetricNotReportedError, match=r"'accuracy'.*mean_test_score"):
        tune_model(
            LogisticRegression(), {"C": 1.0}, data="iris", metric="accuracy", storage_path=tmp_path
        )
    assert not list(tmp_path.iterdir())  # no directory, no trial


def _mlp():
    from trainables.torch_trainable import mlp

    return mlp


def _reports_val_accuracy():
    # Built in a function so that Ray pickles it by value (workers cannot import this module).
    def train(config):
        for i in range(3):
            time.sleep(0.05)
            tune.report({"val_accuracy": config["x"] * i, "val_loss": 1.0})

    return train


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_misspelled_metric_of_a_function_stops_at_its_first_report(tmp_path):
    start = time.monotonic()
    with pytest.raises(MetricNotReportedError, match=r"'val_acc'.*'val_accuracy'.*did you mean"):
        run_experiment(
            _reports_val_accuracy(),
            {"x": tune.uniform(0, 1)},
            metric="val_acc",
            mode="max",
            searcher=searchers.make_searcher("random", seed=0),
            scheduler=make_scheduler("fifo", max_t=3),
            max_t=3,
            num_samples=40,
            max_concurrent=1,
            storage_path=tmp_path,
            name="typo",
            verbose=0,
        )
    started = read_log(tmp_path / "typo")
    assert len(started) < 40, "the whole budget ran"
    assert time.monotonic() - start < 120


# -- statuses recorded, configs exact ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_forest_that_ends_before_max_t_is_completed_not_stopped(tmp_path):
    result = tune_model(
        RandomForestClassifier(random_state=0),
        {"n_estimators": 3, "max_depth": tune.randint(2, 6)},
        data="iris",
        scheduler="asha",
        max_stages=10,
        num_samples=2,
        max_concurrent=1,
        storage_path=tmp_path,
        seed=0,
        verbose=0,
    )
    assert list(result.trials["iterations"]) == [3, 3]
    assert list(result.trials["status"]) == ["completed", "completed"]


def _shaped():
    def train(config):
        tune.report({"loss": float(sum(config["shape"])) + config["x"]})

    return train


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_resumed_run_returns_the_exact_configs(tmp_path):
    common = dict(
        metric="loss",
        mode="min",
        scheduler=None,
        max_t=1,
        max_concurrent=1,
        storage_path=tmp_path,
        name="exact",
        verbose=0,
    )
    space = {"shape": tune.choice([(1, 2), (3, 4)]), "x": tune.uniform(0, 1)}
    # The second call resumes the finished experiment: its result comes from what is on disk.
    for num_samples, resume in ((2, False), (2, True)):
        common["scheduler"] = make_scheduler("fifo", max_t=1)
        run = run_experiment(
            _shaped(),
            space,
            searcher=searchers.make_searcher("random", seed=0),
            num_samples=num_samples,
            resume=resume,
            **common,
        )
    assert len(run.configs) == 2
    assert all(isinstance(c["shape"], tuple) for c in run.configs.values()), run.configs


# -- the best model and failures ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_best_model_predicts_what_the_run_reported(tmp_path):
    result = tune_model(
        _mlp(),
        {"lr": tune.loguniform(1e-3, 1e-2), "hidden_size": 32},
        data="digits",
        searcher="random",
        scheduler="fifo",
        epochs=2,
        num_samples=2,
        max_concurrent=2,
        storage_path=tmp_path,
        seed=0,
        verbose=0,
    )
    model = result.best_model()
    dataset = load_data("digits", seed=0)
    accuracy = float(np.mean(model.predict(dataset.X_val) == dataset.y_val))
    assert accuracy == result.best_score

    sk = tune_model(
        LogisticRegression(max_iter=500),
        {"C": tune.loguniform(1e-2, 10)},
        data="iris",
        searcher="random",
        num_samples=2,
        storage_path=tmp_path,
        seed=0,
        verbose=0,
    )
    refit = sk.best_model()
    data = load_data("iris", seed=0)
    expected = clone(LogisticRegression(max_iter=500)).set_params(**sk.best_config)
    expected.fit(data.X, data.y)
    np.testing.assert_array_equal(refit.predict(data.X), expected.predict(data.X))
    assert refit.get_params()["C"] == sk.best_config["C"]


def _fails_for_large_c():
    # Defined in a function so that Ray pickles the class by value.
    class FailsForLargeC(ClassifierMixin, BaseEstimator):
        def __init__(self, C=1.0):
            self.C = C

        def fit(self, X, y):
            if self.C > 1.0:
                raise ValueError(f"C={self.C} is too large for this estimator")
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

    return FailsForLargeC()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_failing_fits_are_error_rows_with_their_message_and_a_summary(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tune_model(
            _fails_for_large_c(),
            {"C": tune.grid_search([0.5, 2.0, 3.0])},
            data="iris",
            searcher="grid",
            scheduler="fifo",
            storage_path=tmp_path,
            verbose=0,
        )
    frame = result.trials.set_index("config/C")
    assert list(frame["status"].loc[[0.5, 2.0, 3.0]]) == ["completed", "error", "error"]
    assert "C=2.0 is too large" in frame.loc[2.0, "error"]
    summary = [w for w in caught if issubclass(w.category, TrialFailuresWarning)]
    assert len(summary) == 1
    assert "2 of 3 trials failed" in str(summary[0].message)
    assert "ValueError" in str(summary[0].message)
