"""`hpt-ray run` on a user's own project: their data files, data factory, model module, splitter
and --set overrides, run with real Ray and checked through what the run wrote."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from hpt_ray import cli
from hpt_ray.table import read_metadata

ROOT = Path(__file__).resolve().parents[1]
HPT_RAY = str(Path(sys.executable).parent / "hpt-ray")

DATA_MODULE = """
import numpy as np


def load(n_rows=100, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=n_rows) > 0).astype(int)
    return X, y
"""

# A model class the workers cannot import: it lives next to the experiment file and imports a
# sibling module from there.
MODEL_MODULE = """
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

import projcli_helpers


class ScaledLogistic(ClassifierMixin, BaseEstimator):
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y):
        self.scale_ = projcli_helpers.column_scale(X)
        self.model_ = LogisticRegression(C=self.C).fit(X / self.scale_, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X / self.scale_)
"""

HELPERS_MODULE = """
import numpy as np


def column_scale(X):
    return np.abs(np.asarray(X, dtype=float)).max(axis=0) + 1e-9
"""


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["age", "income", "score"])
    frame["label"] = (frame["age"] + 0.7 * rng.normal(size=n) > 0).astype(int)
    return frame


def _trial_results(directory: Path) -> list[dict[str, Any]]:
    """Each finished trial's last reported result, from the run's trial log."""
    rows = [json.loads(line) for line in (directory / "trials.jsonl").read_text().splitlines()]
    return [row["last_result"] for row in rows if row.get("event") == "end"]


@pytest.mark.slow
def test_factory_and_model_next_to_the_file_run_from_another_directory(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "projcli_data.py").write_text(DATA_MODULE)
    (project / "projcli_models.py").write_text(MODEL_MODULE)
    (project / "projcli_helpers.py").write_text(HELPERS_MODULE)
    experiment = {
        "model": "projcli_models:ScaledLogistic",
        "data": {"factory": "projcli_data:load", "options": {"n_rows": 120}},
        "cv": {"ShuffleSplit": {"n_splits": 5, "test_size": 0.3, "random_state": 0}},
        "searcher": "optuna-tpe",
        "scheduler": "fifo",
        "num_samples": 4,
        "max_concurrent": 2,
        "seed": 0,
        "space": {"C": {"loguniform": [0.01, 100.0]}},
    }
    (project / "exp.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    sets = [
        "searcher=random",
        "seed=5",
        "num_samples=3",
        "cv.ShuffleSplit.n_splits=2",
        "space.C.loguniform=[1e-1,1e1]",
    ]
    out = subprocess.run(
        [HPT_RAY, "run", str(project / "exp.yaml"), "--name", "own", "--quiet"]
        + [arg for item in sets for arg in ("--set", item)]
        + ["--storage-path", str(tmp_path / "runs")],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    directory = tmp_path / "runs" / "own"
    table = pd.read_parquet(directory / "results.parquet")
    # The overrides ran: 3 trials (not 4) of the random searcher with seed 5, C in [0.1, 10].
    assert len(table) == 3
    assert (table["status"] == "completed").all(), table["error"].tolist()
    assert table["final_metric"].map(math.isfinite).all()
    assert table["config/C"].between(0.1, 10.0).all()
    meta = read_metadata(directory)
    assert (meta["searcher"], meta["seed"], meta["num_samples"]) == ("random", 5, 3)
    # The splitter's folds: 2 splits of ShuffleSplit, not the 5 of the file nor KFold's 5.
    for result in _trial_results(directory):
        assert [k for k in result if k.startswith("split")] == [
            "split0_test_score",
            "split1_test_score",
        ]
    # The kept file holds the overrides and where the project is, for `hpt-ray resume`.
    kept = yaml.safe_load((directory / "experiment.yaml").read_text())
    assert kept["searcher"] == "random"
    assert kept["seed"] == 5
    assert kept["num_samples"] == 3
    assert kept["cv"] == {"ShuffleSplit": {"n_splits": 2, "test_size": 0.3, "random_state": 0}}
    assert kept["space"]["C"] == {"loguniform": [0.1, 10.0]}
    assert kept["base_dir"] == str(project.resolve())


@pytest.mark.slow
def test_csv_with_a_validation_file_scores_on_that_file(tmp_path, ray_local, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    train, val = _table(80, 0), _table(40, 1)
    train.to_csv(project / "train.csv", index=False)
    val.to_csv(project / "val.csv", index=False)
    (project / "exp.yaml").write_text(
        textwrap.dedent("""\
        model: sklearn.linear_model.LogisticRegression
        data: {path: train.csv, target: label, val: val.csv}
        searcher: grid
        scheduler: fifo
        space:
          C: [0.01, 10.0]
        """)
    )
    monkeypatch.chdir(tmp_path)
    runs = str(tmp_path / "runs")
    code = cli.main(
        ["run", "project/exp.yaml", "--storage-path", runs, "--name", "csv", "--quiet"]
    )
    assert code == 0
    directory = tmp_path / "runs" / "csv"
    table = pd.read_parquet(directory / "results.parquet")
    assert sorted(table["config/C"]) == [0.01, 10.0]
    assert read_metadata(directory)["data"] == "split"
    # Each trial's score is the model trained on train.csv and scored on val.csv.
    features = ["age", "income", "score"]
    for C, score in zip(table["config/C"], table["final_metric"], strict=True):
        model = LogisticRegression(C=C).fit(train[features], train["label"])
        assert score == pytest.approx(model.score(val[features], val["label"]))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["parquet", "npz"])
def test_parquet_and_npz_files_run(tmp_path, ray_local, suffix):
    frame = _table(90, 2)
    if suffix == "parquet":
        frame.to_parquet(tmp_path / "data.parquet")
        data = {"path": "data.parquet", "target": "label"}
    else:
        np.savez(tmp_path / "data.npz", X=frame[["age", "income"]].to_numpy(), y=frame["label"])
        data = {"path": "data.npz"}
    document = {
        "model": "sklearn.linear_model.LogisticRegression",
        "data": data,
        "cv": {"StratifiedKFold": {"n_splits": 3, "shuffle": True, "random_state": 0}},
        "searcher": "random",
        "scheduler": "fifo",
        "num_samples": 2,
        "seed": 0,
        "space": {"C": {"loguniform": [0.1, 10.0]}},
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(document))
    path = str(tmp_path / "exp.yaml")
    code = cli.main(["run", path, "--storage-path", str(tmp_path), "--name", "run", "--quiet"])
    assert code == 0
    table = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(table) == 2
    assert table["final_metric"].map(math.isfinite).all()
    for result in _trial_results(tmp_path / "run"):
        assert len([k for k in result if k.startswith("split")]) == 3


@pytest.mark.slow
def test_training_function_example_runs(tmp_path, ray_local):
    """scripts/examples/project/softmax_function.yaml: kind: function, a factory's data, both
    modules next to the file; shortened with --set."""
    example = str(ROOT / "scripts" / "examples" / "project" / "softmax_function.yaml")
    sets = ["num_samples=2", "epochs=3", "space.epochs=3", "scheduler=fifo", "searcher=random"]
    args = ["run", example, "--storage-path", str(tmp_path), "--name", "fn", "--quiet"]
    assert cli.main(args + [arg for item in sets for arg in ("--set", item)]) == 0
    table = pd.read_parquet(tmp_path / "fn" / "results.parquet")
    assert len(table) == 2
    assert (table["iterations"] == 3).all()
    assert table["final_metric"].map(math.isfinite).all()
    meta = read_metadata(tmp_path / "fn")
    assert (meta["kind"], meta["metric"], meta["mode"]) == ("function", "val_loss", "min")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "searcher_optons.x=1"], "unknown field 'searcher_optons'; did you mean"),
        (["--set", "num_samples=ten"], "field 'num_samples' must be number of trials"),
        (["--set", "data.target=lable"], "no column 'lable' in train.csv; did you mean 'label'"),
        (["--set", "data.path=missing.csv"], "'data.path': no such file"),
        (["--set", "cv=StratifedKFold"], "did you mean 'StratifiedKFold'"),
    ],
)
def test_bad_run_is_one_line_and_no_directory(tmp_path, capsys, args, message):
    _table(20, 0).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "exp.yaml").write_text(
        "model: sklearn.linear_model.LogisticRegression\n"
        "data: {path: train.csv, target: label}\n"
        "space: {C: [1.0]}\n"
    )
    runs = tmp_path / "runs"
    code = cli.main(["run", str(tmp_path / "exp.yaml"), "--storage-path", str(runs), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("hpt-ray: error:")
    assert message in err[0]
    assert not runs.exists()  # refused before a directory was claimed or Ray started
