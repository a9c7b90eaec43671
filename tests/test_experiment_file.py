"""Experiment files: valid files parse into tune_model arguments; bad ones name the field."""

from __future__ import annotations

import textwrap

import pytest
from ray.tune.search.sample import Float, Integer
from sklearn.ensemble import HistGradientBoostingClassifier

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


def test_missing_required_field():
    document = dict(GOOD)
    del document["data"]
    with pytest.raises(ExperimentError, match=r"missing field 'data'"):
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
