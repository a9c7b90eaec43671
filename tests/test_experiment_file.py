"""Experiment files: valid files parse into tune_model arguments; bad ones name the field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from ray.tune.search.sample import Float, Integer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import KFold, StratifiedKFold

from hpt_ray.experiment import ExperimentError, load_experiment, parse_experiment
from trainables.torch_trainable import mlp

GOOD = {
    "model": "sklearn.ensemble.HistGradientBoostingClassifier",
    "model_params": {"max_iter": 50},
    "data": "breast_cancer",
    "space": {
        "learning_rate": {"loguniform": [0.01, 0.5]},
        "max_leaf_nodes": {"randint": [4, 64]},
        "loss": ["log_loss"],
        "random_state": 0,
    },
    "num_samples": 3,
}


def test_examples_parse():
    digits = load_experiment("scripts/examples/digits_mlp.yaml")
    assert digits.model is mlp
    assert isinstance(digits.space["lr"], Float)
    assert isinstance(digits.space["n_layers"], Integer)
    cancer = load_experiment("scripts/examples/breast_cancer_hgb.yaml")
    assert isinstance(cancer.model, HistGradientBoostingClassifier)
    assert cancer.kwargs["cv"] == 5


def test_project_examples_parse(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    wine = load_experiment("scripts/examples/project/wine_csv.yaml")
    X, y = wine.kwargs["data"]
    assert X.shape == (178, 13)
    assert "cultivar" not in X.columns
    assert sorted(set(y)) == [0, 1, 2]
    assert isinstance(wine.kwargs["cv"], StratifiedKFold)
    function = load_experiment("scripts/examples/project/softmax_function.yaml")
    assert function.model.__name__ == "train_fn"
    assert function.kwargs["kind"] == "function"
    (X_train, _), (X_val, _) = function.kwargs["data"]
    assert X_train.shape[1] == X_val.shape[1] == 13


def test_good_document():
    exp = parse_experiment(GOOD)
    assert exp.model.max_iter == 50
    assert isinstance(exp.space["learning_rate"], Float)
    assert exp.space["loss"] == ["log_loss"]
    assert exp.space["random_state"] == 0
    assert exp.kwargs == {"data": "breast_cancer", "num_samples": 3}


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            {"searcher_optons": {}},
            r"unknown field 'searcher_optons'.*did you mean 'searcher_options'",
        ),
        ({"model": None}, r"'model'"),
        ({"model": "sklearn.ensemble.NoSuchForest"}, r"'model'.*NoSuchForest"),
        ({"model": "nosuchpackage.Model"}, r"'model'.*cannot import"),
        ({"model_params": {"bogus": 1}}, r"'model_params'.*bogus"),
        ({"num_samples": "ten"}, r"'num_samples'"),
        ({"num_samples": True}, r"'num_samples'"),
        (
            {"space": {"learning_rate": {"loguniforn": [0.01, 0.5]}}},
            r"space.learning_rate.*'loguniform'",
        ),
        ({"space": {"learning_rate": {"uniform": ["a", 1]}}}, r"space.learning_rate"),
        ({"space": {"learning_rate": []}}, r"space.learning_rate.*empty"),
        ({"space": {"learning_rate": {"choice": []}}}, r"space.learning_rate"),
        ({"space": {"learning_rate": {"loguniform": [0.0, 1.0]}}}, r"space.learning_rate"),
        ({"space": [1, 2]}, r"'space'"),
    ],
)
def test_bad_documents_name_the_field(change, pattern):
    document = {**GOOD, **change}
    with pytest.raises(ExperimentError, match=pattern):
        parse_experiment(document)


def test_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent("""\
        model: sklearn.svm.SVC
        space: {C: [1, 2
    """)
    )
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(path)


# -- your own data: files and factories (issue #12 item 5) ---------------------------------------

FACTORY_MODULE = """
import numpy as np


def load(n_rows=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 3))
    return X, (X[:, 0] > 0).astype(int)


def nothing():
    return None
"""


def _table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["age", "income", "score"])
    frame["label"] = (frame["age"] > 0).astype(int)
    return frame


def _project(tmp_path: Path) -> Path:
    """A user's project directory: tables in three formats and a data factory module."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    _table(40, 0).to_csv(project / "data" / "train.csv", index=False)
    _table(20, 1).to_csv(project / "data" / "val.csv", index=False)
    _table(40, 0).to_parquet(project / "data" / "train.parquet")
    frame = _table(40, 0)
    np.savez(project / "data" / "train.npz", X=frame[["age", "income"]].to_numpy(), y=frame.label)
    (project / "projdata_factory.py").write_text(FACTORY_MODULE)
    return project


def _experiment(project: Path, data: Any, **fields: Any) -> Path:
    path = project / "exp.yaml"
    document = {
        "model": "sklearn.linear_model.LogisticRegression",
        "data": data,
        "space": {"C": {"loguniform": [1e-2, 1e2]}},
        **fields,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_csv_with_target_and_validation_file_relative_to_the_file(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the project: paths are relative to the file
    path = _experiment(
        project, {"path": "data/train.csv", "target": "label", "val": "data/val.csv"}
    )
    (X, y), (X_val, y_val) = load_experiment(path).kwargs["data"]
    # DataFrames, column names kept, the target column taken out of X.
    assert isinstance(X, pd.DataFrame)
    assert list(X.columns) == ["age", "income", "score"]
    assert list(X_val.columns) == ["age", "income", "score"]
    assert (len(X), len(X_val)) == (40, 20)
    assert y.tolist() == _table(40, 0)["label"].tolist()
    assert y_val.tolist() == _table(20, 1)["label"].tolist()


def test_parquet_features_and_npz(tmp_path):
    project = _project(tmp_path)
    path = _experiment(
        project, {"path": "data/train.parquet", "target": "label", "features": ["income", "age"]}
    )
    X, y = load_experiment(path).kwargs["data"]
    assert list(X.columns) == ["income", "age"]
    assert y.tolist() == _table(40, 0)["label"].tolist()

    path = _experiment(project, {"path": str(project / "data" / "train.npz")})
    X, y = load_experiment(path).kwargs["data"]
    assert X.shape == (40, 2)
    assert y.tolist() == _table(40, 0)["label"].tolist()


def test_data_factory_from_the_files_directory(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the import adds the project directory
    path = _experiment(project, {"factory": "projdata_factory:load", "options": {"n_rows": 25}})
    X, y = load_experiment(path).kwargs["data"]
    assert X.shape == (25, 3)
    assert set(y.tolist()) <= {0, 1}
    # The short spelling: no options.
    X, _ = load_experiment(_experiment(project, "projdata_factory:load")).kwargs["data"]
    assert X.shape == (60, 3)


def test_load_data_false_checks_without_reading(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = _experiment(project, {"path": "data/train.csv", "target": "no_such_column"})
    spec = load_experiment(path, load_data=False).kwargs["data"]  # the column is not checked
    assert spec == {"path": "data/train.csv", "target": "no_such_column"}
    with pytest.raises(ExperimentError, match="no such file"):
        load_experiment(_experiment(project, {"path": "gone.csv", "target": "y"}), load_data=False)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (
            {"path": "data/train.csv", "target": "lable"},
            r"'data.target'.*'lable'.*did you mean 'label'.*age, income, score, label",
        ),
        ({"path": "data/train.csv"}, r"'data.target' is missing"),
        (
            {"path": "data/nope.csv", "target": "label"},
            r"'data.path': no such file .*project/data/nope.csv",
        ),
        (
            {"path": "data/train.csv", "target": "label", "val": "data/vla.csv"},
            r"'data.val': no such file .*data/vla.csv",
        ),
        (
            {"path": "data/train.xlsx", "target": "label"},
            r"'data.path'.*'.xlsx'.*\.csv, \.parquet",
        ),
        (
            {"path": "data/train.csv", "target": "label", "features": ["age", "incme"]},
            r"'data.features'.*'incme'.*did you mean 'income'",
        ),
        ({"path": "data/train.npz", "target": "label"}, r"'data.target' applies to tables"),
        (
            {"path": "data/train.csv", "targte": "label"},
            r"'data'.*unknown key 'targte'.*did you mean 'target'",
        ),
        ({"pth": "data/train.csv"}, r"'data'.*needs 'path'.*or 'factory'.*did you mean 'path'"),
        (
            {"factory": "projdata_factory:lod"},
            r"'data.factory'.*no attribute 'lod'.*did you mean 'load'",
        ),
        (
            {"factory": "projdata_factory:load", "options": {"rows": 3}},
            r"'data.options'.*rows.*load\(n_rows=60, seed=0\)",
        ),
        ({"factory": "projdata_factory:nothing"}, r"'data.factory'.*returned None"),
        (
            {"factory": "no_such_module_here:load"},
            r"'data.factory'.*cannot import 'no_such_module_here'.*project",
        ),
        ("digts", r"'data'.*unknown data set 'digts'.*did you mean 'digits'"),
        ("train.csv", r"'data'.*looks like a file.*path: train.csv"),
    ],
)
def test_bad_data_names_the_field(tmp_path, monkeypatch, data, pattern):
    project = _project(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ExperimentError, match=pattern):
        load_experiment(_experiment(project, data))


def test_validation_file_with_other_columns(tmp_path):
    project = _project(tmp_path)
    _table(20, 1).drop(columns="score").to_csv(project / "data" / "val.csv", index=False)
    path = _experiment(
        project, {"path": "data/train.csv", "target": "label", "val": "data/val.csv"}
    )
    with pytest.raises(ExperimentError, match=r"'data.val'.*missing \['score'\]"):
        load_experiment(path)


# -- cv by name, kind, trainer_options -----------------------------------------------------------


def test_cv_splitter_by_name():
    cv = parse_experiment(
        {**GOOD, "cv": {"StratifiedKFold": {"n_splits": 3, "shuffle": True, "random_state": 0}}}
    ).kwargs["cv"]
    assert isinstance(cv, StratifiedKFold)
    assert (cv.n_splits, cv.shuffle, cv.random_state) == (3, True, 0)
    assert isinstance(parse_experiment({**GOOD, "cv": "KFold"}).kwargs["cv"], KFold)
    assert parse_experiment({**GOOD, "cv": 4}).kwargs["cv"] == 4


@pytest.mark.parametrize(
    ("cv", "pattern"),
    [
        (
            {"StratifiedKFlod": {"n_splits": 3}},
            r"'cv'.*'StratifiedKFlod'.*did you mean 'StratifiedKFold'",
        ),
        ({"KFold": {"n_split": 3}}, r"'cv.KFold'.*n_split.*takes n_splits"),
        ({"KFold": {"n_splits": 1}}, r"'cv.KFold'.*n_splits"),
        ({"KFold": 3}, r"'cv.KFold' must be a mapping of options"),
        ({"GroupKFold": {}}, r"'cv'.*GroupKFold needs groups"),
        ({"KFold": {}, "ShuffleSplit": {}}, r"'cv'.*one splitter"),
        (1.5, r"'cv'"),
    ],
)
def test_bad_cv_names_the_field(cv, pattern):
    with pytest.raises(ExperimentError, match=pattern):
        parse_experiment({**GOOD, "cv": cv})


def test_kind_and_trainer_options_reach_tune_model():
    document = {
        "model": "trainables.torch_trainable:mlp",
        "data": "digits",
        "kind": "torch",
        "trainer_options": {"loss": "cross_entropy"},
        "space": {"lr": {"loguniform": [1e-3, 1e-1]}},
    }
    exp = parse_experiment(document)
    assert exp.kwargs["kind"] == "torch"
    assert exp.kwargs["trainer_options"] == {"loss": "cross_entropy"}
    with pytest.raises(ExperimentError, match=r"'kind'.*'fuction'.*did you mean 'function'"):
        parse_experiment({**document, "kind": "fuction"})
    with pytest.raises(ExperimentError, match=r"'trainer_options' must be"):
        parse_experiment({**document, "trainer_options": [1]})


def test_data_may_be_left_out_only_without_an_estimator():
    function_doc = {"model": "math:sqrt", "kind": "function", "space": {"x": [1, 2]}}
    assert "data" not in parse_experiment(function_doc).kwargs
    document = dict(GOOD)
    del document["data"]
    with pytest.raises(ExperimentError, match=r"missing field 'data'"):
        parse_experiment(document)


# -- model import paths ---------------------------------------------------------------------------

MODEL_MODULE = """
from sklearn.linear_model import LogisticRegression

import projsibling


class Wrapped(LogisticRegression):
    pass


def build(config):
    return projsibling.VALUE
"""


def test_model_found_next_to_the_file_and_pickled_by_value(tmp_path, monkeypatch):
    from ray import cloudpickle

    project = _project(tmp_path)
    (project / "projmodels.py").write_text(MODEL_MODULE)
    (project / "projsibling.py").write_text("VALUE = 7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exp = load_experiment(_experiment(project, "iris", model="projmodels:Wrapped"))
    assert type(exp.model).__name__ == "Wrapped"
    # The module and the sibling it imports travel by value: a process without the project
    # on its path rebuilds the class (Ray's workers are such processes).
    assert cloudpickle.cloudpickle._is_registered_pickle_by_value(sys.modules["projmodels"])
    assert cloudpickle.cloudpickle._is_registered_pickle_by_value(sys.modules["projsibling"])
    blob = cloudpickle.dumps(exp.model)
    code = "import pickle, sys; print(type(pickle.loads(sys.stdin.buffer.read())).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, cwd="/", check=True
    )
    assert out.stdout.decode().strip() == "Wrapped"


def test_model_not_found_says_where_it_looked(tmp_path, monkeypatch):
    project = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ExperimentError, match=r"'model'.*cannot import 'projnothere'") as info:
        load_experiment(_experiment(project, "iris", model="projnothere:build"))
    assert str(project) in str(info.value)
    assert str(elsewhere) in str(info.value)


def test_model_module_that_fails_to_import_shows_its_error(tmp_path, monkeypatch):
    project = _project(tmp_path)
    (project / "projbroken.py").write_text("import numpy\n\nx = undefined_name\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(
        ExperimentError, match=r"'model'.*NameError.*undefined_name.*projbroken.py:3"
    ):
        load_experiment(_experiment(project, "iris", model="projbroken:build"))


# -- --set overrides ------------------------------------------------------------------------------


def test_overrides_reach_into_mappings_and_read_yaml(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "scheduler_options": {"reduction_factor": 3}}))
    exp = load_experiment(
        path,
        overrides=[
            "searcher=pso",
            "seed=1",
            "space.learning_rate.loguniform=[1e-4,1e-2]",
            "scheduler_options.grace_period=2",
            "searcher_options.n_particles=4",
            ("num_samples", 2),
        ],
    )
    assert exp.kwargs["searcher"] == "pso"
    assert exp.kwargs["seed"] == 1
    assert exp.kwargs["num_samples"] == 2
    assert exp.kwargs["scheduler_options"] == {"reduction_factor": 3, "grace_period": 2}
    assert exp.kwargs["searcher_options"] == {"n_particles": 4}
    assert (exp.space["learning_rate"].lower, exp.space["learning_rate"].upper) == (1e-4, 1e-2)
    # The document as run holds the overrides (hpt-ray run keeps it for resume).
    assert exp.document["space"]["learning_rate"] == {"loguniform": [1e-4, 1e-2]}
    assert exp.document["seed"] == 1


def test_yaml_12_floats_in_files(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model: sklearn.svm.SVC\ndata: iris\nspace: {C: {loguniform: [1e-3, 1E+2]}}\n"
        "time_budget_s: 1e3\n"
    )
    exp = load_experiment(path)
    assert (exp.space["C"].lower, exp.space["C"].upper) == (1e-3, 100.0)
    assert exp.kwargs["time_budget_s"] == 1000.0


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        (
            "searcher_optons.x=1",
            r"--set searcher_optons.x=1: unknown field 'searcher_optons'.*'searcher_options'",
        ),
        ("searcher", r"--set searcher: write KEY=VALUE"),
        ("=pso", r"write KEY=VALUE"),
        ("space..lr=1", r"write KEY=VALUE"),
        ("seed=[1", r"--set seed=\[1: the value is not valid YAML"),
        (
            "num_samples=ten",
            r"exp.yaml with --set num_samples=ten: field 'num_samples' must be number of trials",
        ),
        ("seed.x=1", r"--set seed.x=1: seed is int 0, not a mapping"),
        ("space.learning_rate.loguniform=[1e-4]", r"space.learning_rate"),
    ],
)
def test_bad_overrides_name_the_field(tmp_path, override, pattern):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "seed": 0}))
    with pytest.raises(ExperimentError, match=pattern):
        load_experiment(path, overrides=[override])
