"""A conditional space for a scikit-learn estimator: each branch's dict holds estimator
parameters (SVC's kernel with its own gamma or degree), merged into set_params."""

from __future__ import annotations

import pytest
from ray import tune
from sklearn.svm import SVC

import hpt_ray
from trainables.sklearn_trainable import estimator_params

SPACE = {
    "C": tune.loguniform(0.1, 100.0),
    "kernel_choice": tune.choice(
        [
            {"kernel": "rbf", "gamma": tune.loguniform(1e-3, 1.0)},
            {"kernel": "poly", "degree": tune.randint(2, 4)},
        ]
    ),
}


def test_the_chosen_branch_becomes_estimator_parameters():
    config = {"C": 2.0, "kernel_choice": {"kernel": "poly", "degree": 3}}
    assert estimator_params(config, SVC()) == {"C": 2.0, "kernel": "poly", "degree": 3}


def test_a_bad_branch_parameter_is_named_before_any_trial(tmp_path):
    space = {
        "kernel_choice": tune.choice([{"kernel": "rbf"}, {"kernel": "poly", "degre": 3}]),
    }
    with pytest.raises(ValueError, match=r"kernel_choice\[1\]\.degre") as info:
        hpt_ray.tune_model(SVC(), space, data="iris", storage_path=tmp_path, verbose=0)
    assert "did you mean 'degree'" in str(info.value).lower()
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_svc_kernel_branches_tune_and_refit(tmp_path):
    result = hpt_ray.tune_model(
        SVC(),
        SPACE,
        data="iris",
        searcher="gp-ei",
        scheduler="fifo",
        num_samples=6,
        max_concurrent=2,
        cv=3,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    table = result.trials
    assert (table["status"] == "completed").all(), table["error"]
    kernels = table["config/kernel_choice/kernel"]
    assert set(kernels) <= {"rbf", "poly"}
    assert table.loc[kernels == "rbf", "config/kernel_choice/degree"].isna().all()
    assert table.loc[kernels == "poly", "config/kernel_choice/gamma"].isna().all()
    model = result.best_model()
    branch = result.best_config["kernel_choice"]
    assert model.kernel == branch["kernel"]
    for key, value in branch.items():
        assert model.get_params()[key] == value
