"""The issue's conditional space: a choice between optimizers, each with its own settings,
reaches the optimizer (issue #12 item 3)."""

from __future__ import annotations

import pytest
import torch
from ray import tune

import hpt_ray
from trainables.torch_recipe import Layers, make_optimizer, model_layers
from trainables.torch_trainable import TorchTrainingDefaults, mlp, resolve_settings

SPACE = {
    "optimizer": tune.choice(
        [
            {"name": "sgd", "momentum": tune.uniform(0.5, 0.99)},
            {"name": "adam", "beta1": tune.uniform(0.8, 0.99)},
        ]
    ),
    "lr": tune.loguniform(1e-3, 3e-2),
}


def _optimizer(config: dict) -> torch.optim.Optimizer:
    settings = resolve_settings(config, TorchTrainingDefaults())
    model = mlp({"_n_features": 4, "_n_outputs": 3})
    layers: Layers = model_layers(model)
    return make_optimizer(layers, settings.recipe)


def test_a_branch_dict_configures_its_optimizer():
    sgd = _optimizer({"optimizer": {"name": "sgd", "momentum": 0.73}})
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.73
    adam = _optimizer({"optimizer": {"name": "adam", "beta1": 0.85}})
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["betas"] == (0.85, 0.999)


@pytest.mark.parametrize(
    ("optimizer", "needle"),
    [
        ({"momentum": 0.9}, "needs a 'name' key"),
        ({"name": "adam", "amsgrd": True}, "did you mean 'amsgrad'"),
        ({"name": "sgd", "beta1": 0.9}, "takes no betas"),
    ],
)
def test_a_bad_branch_dict_names_the_key(optimizer, needle):
    with pytest.raises(ValueError, match="config\\['optimizer'\\]") as info:
        _optimizer({"optimizer": optimizer})
    assert needle in str(info.value)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("searcher", ["gp-ei", "optuna-tpe"])
def test_tune_model_searches_the_optimizer_branches(tmp_path, searcher):
    result = hpt_ray.tune_model(
        mlp,
        SPACE,
        data="iris",
        searcher=searcher,
        scheduler="fifo",
        num_samples=6,
        max_concurrent=2,
        epochs=2,
        seed=0,
        storage_path=tmp_path,
        verbose=0,
    )
    table = result.trials
    assert (table["status"] == "completed").all(), table["error"]
    names = set(table["config/optimizer/name"])
    assert names <= {"sgd", "adam"}
    for _, row in table.iterrows():
        # Only the chosen branch's parameter is set; the other is empty.
        if row["config/optimizer/name"] == "sgd":
            assert 0.5 <= row["config/optimizer/momentum"] <= 0.99
            assert row["config/optimizer/beta1"] != row["config/optimizer/beta1"]  # NaN
        else:
            assert 0.8 <= row["config/optimizer/beta1"] <= 0.99
            assert row["config/optimizer/momentum"] != row["config/optimizer/momentum"]


@pytest.mark.parametrize(
    ("constant", "needle"),
    [
        ({"layer_decay": 0.0}, "config['layer_decay'] must be > 0"),
        ({"lr_schedule": "cosin"}, "config['lr_schedule'] must be one of"),
        ({"optimizer": {"name": "adam", "amsgrd": True}}, "did you mean 'amsgrad'"),
    ],
)
def test_a_bad_constant_training_key_fails_before_any_trial(tmp_path, constant, needle):
    with pytest.raises(ValueError, match=r"^space: ") as info:
        hpt_ray.tune_model(
            mlp,
            {"lr": tune.loguniform(1e-3, 1e-2), **constant},
            data="iris",
            storage_path=tmp_path,
            verbose=0,
        )
    assert needle in str(info.value)
    assert not any(tmp_path.iterdir())
