"""Every bad input the foundation issue names fails clearly before Ray starts any trial."""

from __future__ import annotations

import pytest
import scipy.stats
from ray import tune
from sklearn.linear_model import ElasticNet
from sklearn.svm import SVC

from hpt_ray import tune_model
from trainables.torch_trainable import mlp

CASES = [
    # (id, model, space, kwargs, regex the message must match)
    ("empty-choice", SVC(), {"C": tune.choice([])}, {}, r"'C'.*"),
    ("empty-list", SVC(), {"C": []}, {}, r"'C'.*at least one"),
    ("lower>=upper", SVC(), {"C": tune.uniform(10.0, 1.0)}, {}, r"'C'"),
    ("int-lower>=upper", SVC(), {"degree": tune.randint(5, 5)}, {}, r"'degree'"),
    (
        "unknown-param",
        SVC(),
        {"CC": tune.uniform(0.1, 1.0)},
        {},
        r"no parameter 'CC'.*Did you mean 'C'",
    ),
    (
        "grid-wrong-searcher",
        SVC(),
        {"C": tune.grid_search([0.1, 1.0])},
        {"searcher": "optuna-tpe"},
        r"'C'.*searcher='grid'",
    ),
    ("unbounded-scipy", SVC(), {"C": scipy.stats.expon(scale=10)}, {}, r"'C'.*expon"),
    ("unknown-searcher", SVC(), {"C": [0.1, 1.0]}, {"searcher": "bogus"}, r"bogus.*optuna-tpe"),
    ("unknown-scheduler", SVC(), {"C": [0.1, 1.0]}, {"scheduler": "bogus"}, r"scheduler.*asha"),
    ("bad-mode", SVC(), {"C": [0.1, 1.0]}, {"mode": "maximize"}, r"mode"),
    ("bad-data-name", SVC(), {"C": [0.1, 1.0]}, {"data": "mnist"}, r"mnist"),
    ("bad-num-samples", SVC(), {"C": [0.1, 1.0]}, {"num_samples": 0}, r"num_samples"),
    ("bad-resources", SVC(), {"C": [0.1, 1.0]}, {"resources_per_trial": {"cpu": -1}}, r"cpu"),
    ("torch-epochs-domain", mlp, {"lr": [0.1], "epochs": tune.randint(1, 5)}, {}, r"epochs"),
    ("bad-model", 42, {"C": [0.1, 1.0]}, {}, r"model"),
]


@pytest.mark.parametrize(
    ("model", "space", "kwargs", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_fails_before_any_trial(tmp_path, model, space, kwargs, pattern):
    kwargs = {"data": "iris", "num_samples": 2, "storage_path": tmp_path, "name": "exp", **kwargs}
    with pytest.raises((ValueError, TypeError), match=pattern):
        tune_model(model, space, **kwargs)
    # Nothing was started: the experiment directory (written before the Tuner starts) does
    # not exist.
    assert not (tmp_path / "exp").exists()


def test_elasticnet_space_is_accepted(tmp_path):
    # The positive control for the cases above: the same path with a valid space gets past
    # validation.
    from hpt_ray.plan import plan_experiment
    from hpt_ray.settings import SearchSettings, TrialSettings

    plan = plan_experiment(
        ElasticNet(),
        {"alpha": tune.loguniform(1e-3, 1.0)},
        data="diabetes",
        metric=None,
        mode=None,
        search=SearchSettings(searcher="random", scheduler="fifo", num_samples=2, seed=0),
        trial=TrialSettings(epochs=1, max_stages=1, cv=3, scoring="r2"),
    )
    assert plan.metric == "mean_test_score"
    assert plan.mode == "max"
