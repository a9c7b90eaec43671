"""Trainer options, data forms, optimizers and the fine-tuning recipe of the PyTorch trainable,
without Ray: every bad option or data is refused by `plan_torch` (before any trial) with a
message naming it; the recipe's learning rates and freeze state follow from the epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from hpt_ray.experiment import load_experiment
from trainables.cnn import cnn, digits_image_factory, digits_images
from trainables.torch_options import TrainerOptions
from trainables.torch_recipe import (
    OPTIMIZERS,
    Recipe,
    apply_freeze,
    frozen_depths,
    load_initial_weights,
    lr_factor,
    make_optimizer,
    model_layers,
)
from trainables.torch_trainable import (
    TorchTrainingDefaults,
    _amp_enabled,
    mlp,
    plan_torch,
    resolve_settings,
)

REPO = Path(__file__).resolve().parents[1]


def _recipe(**changes: object) -> Recipe:
    settings = resolve_settings(dict(changes), TorchTrainingDefaults(epochs=6))
    return settings.recipe


def _plan(data: object = "iris", **options: object) -> object:
    return plan_torch(mlp, data, epochs=2, seed=0, options=options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metircs": ["f1"]}, r"unknown option 'metircs'; did you mean 'metrics'\?"),
        ({"loss": "cross_entropi"}, r"\['loss'\]: unknown loss .*did you mean 'cross_entropy'"),
        ({"loss": "mse"}, r"\['loss'\]='mse' is a regression loss but the task is classif"),
        ({"loss": 3}, r"\['loss'\] must be a loss name"),
        ({"class_weights": [1.0, 2.0]}, r"\['class_weights'\] has 2 weights but the data has 3"),
        ({"class_weights": "even"}, r"\['class_weights'\] must be 'balanced'"),
        ({"class_weights": [1.0, -1.0, 1.0]}, r"\['class_weights'\] must be finite, >= 0"),
        ({"class_weights": [1, 1, 1], "loss": lambda o, y: o.sum()}, r"custom loss callable"),
        ({"metrics": ["f1", "auc"]}, r"\['metrics'\]\['auc'\]: unknown metric .*'roc_auc'"),
        ({"metrics": {"accuracy": "f1"}}, r"val_accuracy is reported already"),
        ({"metrics": {"f1": 3}}, r"\['metrics'\]\['f1'\] must be a function"),
        ({"monitor": "val_acc"}, r"\['monitor'\]='val_acc' is not .*did you mean 'val_accuracy'"),
        ({"amp": "yes"}, r"\['amp'\] must be true or false"),
        ({"num_workers": -1}, r"\['num_workers'\] must be an integer >= 0"),
        ({"task": "ranking"}, r"\['task'\] must be 'classification' or 'regression'"),
        ({"n_classes": 3}, r"\['n_classes'\] applies to Dataset inputs"),
        (
            {"init_checkpoint": "/no/such/file.pt"},
            r"\['init_checkpoint'\]: '/no/such/file.pt' does",
        ),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        _plan(**options)


def test_regression_refuses_classification_only_options() -> None:
    with pytest.raises(ValueError, match=r"'roc_auc' is a classification metric"):
        _plan("diabetes", metrics=["roc_auc"])
    with pytest.raises(ValueError, match=r"class_weights'\] apply to classification"):
        _plan("diabetes", class_weights="balanced")
    plan = _plan("diabetes", loss="huber", metrics={"mae": lambda y, p: np.abs(y - p).mean()})
    assert plan.keys == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_r2",
        "val_mae",
        "lr",
        "lr_min",
        "lr_mean",
        "lr_max",
    ]
    # Every one of them is a key a trial reports, so each can be monitored.
    assert _plan(monitor="lr_max").data.options.monitor == "lr_max"


def test_init_checkpoint_must_hold_a_state_dict(tmp_path: Path) -> None:
    torch.save({"weights": [1, 2, 3]}, tmp_path / "junk.pt")
    with pytest.raises(ValueError, match=r"init_checkpoint'\]: .*junk.pt' holds no state dict"):
        _plan(init_checkpoint=str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError, match=r"init_checkpoint'\]: directory .* has no state\.pt"):
        _plan(init_checkpoint=str(tmp_path))
    model = mlp({"_n_features": 4, "_n_outputs": 3, "hidden_size": 8, "n_layers": 1})
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pt")
    plan = _plan(init_checkpoint=tmp_path / "wrapped.pt")
    assert set(plan.data.options.init_state) == set(model.state_dict())
    other = torch.nn.Sequential(torch.nn.Linear(7, 2))
    with pytest.raises(ValueError, match=r"no tensor matches the model by name and shape"):
        load_initial_weights(other, plan.data.options.init_state, "wrapped.pt")


def test_dataset_inputs_are_checked_before_any_trial() -> None:
    train, val = digits_images(seed=0)
    plan = plan_torch(cnn, (train, val), epochs=1, seed=0)
    assert (plan.task, plan.data.n_classes, plan.data.kind) == ("classification", 10, "datasets")
    assert plan.default_metric == "val_accuracy"
    floats = TensorDataset(torch.zeros(6, 3), torch.linspace(0, 1, 6))
    assert plan_torch(mlp, (floats, floats), epochs=1, seed=0).task == "regression"
    with pytest.raises(ValueError, match=r"class weights|has 2 weights but the data has 10"):
        plan_torch(cnn, (train, val), epochs=1, seed=0, options={"class_weights": [1, 2]})
    with pytest.raises(ValueError, match=r"label 9 is out of range for .*'n_classes'\]=5"):
        plan_torch(cnn, (train, val), epochs=1, seed=0, options={"n_classes": 5})
    negative = TensorDataset(torch.zeros(4, 3), torch.tensor([0, 1, -1, 1]))
    with pytest.raises(ValueError, match=r"training dataset has negative labels"):
        plan_torch(mlp, (negative, val), epochs=1, seed=0)
    triples = TensorDataset(torch.zeros(4, 3), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"must be a pair \(x, y\); item 0 is a tuple of 3"):
        plan_torch(mlp, (triples, val), epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"validation dataset is empty"):
        plan_torch(
            mlp, (train, TensorDataset(torch.zeros(0, 3), torch.zeros(0))), epochs=1, seed=0
        )
    with pytest.raises(TypeError, match=r"pair \(train_ds, val_ds\) .*got \(TensorDataset, nd"):
        plan_torch(mlp, (train, np.zeros((3, 2))), epochs=1, seed=0)
    with pytest.raises(ValueError, match=r"dataset factory .* trainer_options=\{'task'"):
        plan_torch(cnn, digits_image_factory, epochs=1, seed=0)
    plan = plan_torch(
        cnn, digits_image_factory, epochs=1, seed=0, options={"task": "classification"}
    )
    assert (plan.data.kind, plan.data_name) == ("factory", "digits_image_factory")


def test_config_keys_are_validated_naming_the_key() -> None:
    defaults = TorchTrainingDefaults()
    with pytest.raises(ValueError, match=r"config\['optimizer'\] .*did you mean 'rmsprop'"):
        resolve_settings({"optimizer": "rmsprob"}, defaults)
    with pytest.raises(ValueError, match=r"config\['lr_schedule'\] must be one of"):
        resolve_settings({"lr_schedule": "linear"}, defaults)
    with pytest.raises(ValueError, match=r"config\['gamma'\] must be in \(0, 1\]"):
        resolve_settings({"gamma": 2.0}, defaults)
    with pytest.raises(TypeError, match=r"config\['nesterov'\] must be true or false"):
        resolve_settings({"nesterov": "yes"}, defaults)
    with pytest.raises(ValueError, match=r"config\['layer_decay'\] must be > 0"):
        resolve_settings({"layer_decay": 0.0}, defaults)
    layers = model_layers(mlp({"_n_features": 4, "_n_outputs": 3, "hidden_size": 8}))
    with pytest.raises(ValueError, match=r"config\['nesterov'\]=True needs config\['momentum'\]"):
        make_optimizer(layers, _recipe(optimizer="sgd", nesterov=True, momentum=0.0))
    with pytest.raises(ValueError, match=r"config\['weight_decay'\]=0.1 but optimizer 'rprop'"):
        make_optimizer(layers, _recipe(optimizer="rprop", weight_decay=0.1))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_name_builds_that_optimizer_and_steps(name: str) -> None:
    torch.manual_seed(0)
    model = mlp({"_n_features": 4, "_n_outputs": 3, "hidden_size": 8})
    optimizer = make_optimizer(model_layers(model), _recipe(optimizer=name.upper(), lr=0.01))
    assert type(optimizer) is OPTIMIZERS[name]
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(5, 4)).square().mean().backward()
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_sgd_nesterov_and_rmsprop_momentum_reach_the_optimizer() -> None:
    layers = model_layers(mlp({"_n_features": 4, "_n_outputs": 3}))
    sgd = make_optimizer(layers, _recipe(optimizer="sgd", nesterov=True, momentum=0.8))
    assert sgd.param_groups[0]["nesterov"] is True
    assert sgd.param_groups[0]["momentum"] == 0.8
    assert make_optimizer(layers, _recipe(optimizer="rmsprop")).param_groups[0]["momentum"] == 0
    rms = make_optimizer(layers, _recipe(optimizer="rmsprop", momentum=0.5))
    assert rms.param_groups[0]["momentum"] == 0.5


def test_layer_decay_head_lr_and_freezing_follow_the_depth_and_epoch() -> None:
    model = cnn({"_input_shape": (1, 8, 8), "_n_outputs": 10, "n_blocks": 3})
    layers = model_layers(model)
    assert layers.n_body == 3
    assert layers.modules[3] == [model.head]
    assert layers.modules[0] == [model.features[0]]
    recipe = _recipe(lr=0.1, layer_decay=0.5, head_lr_mult=3.0, freeze_epochs=2, freeze_blocks=2)
    optimizer = make_optimizer(layers, recipe)
    base = {g["depth"]: g["base_lr"] for g in optimizer.param_groups}
    assert base == pytest.approx({0: 0.1 * 0.5**3, 1: 0.1 * 0.5**2, 2: 0.1 * 0.5, 3: 0.3})
    assert [frozen_depths(recipe, layers, e) for e in (1, 2, 3)] == [2, 2, 0]
    apply_freeze(model, layers, 2)
    assert not any(p.requires_grad for p in model.features[1].parameters())
    assert all(p.requires_grad for p in model.features[2].parameters())
    assert not model.features[0].training
    assert model.features[2].training
    apply_freeze(model, layers, 0)
    assert all(p.requires_grad for p in model.parameters())
    assert model.features[0].training
    everything = _recipe(freeze_epochs=1)  # freeze_blocks defaults to "all": a linear probe
    assert frozen_depths(everything, layers, 1) == 3
    # A Sequential without head/features: the last Linear is the head, the others the body.
    flat = model_layers(mlp({"_n_features": 4, "_n_outputs": 3, "n_layers": 2}))
    assert [len(d) for d in flat.depths] == [2, 2, 2]


def test_warmup_and_schedules_are_functions_of_the_epoch() -> None:
    recipe = _recipe(lr_schedule="cosine", warmup_epochs=2)
    assert [lr_factor(recipe, e) for e in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lr_factor(recipe, 6) == pytest.approx(0.5 * (1 + np.cos(np.pi * 3 / 4)))


def test_amp_on_the_cpu_is_ignored_with_a_warning() -> None:
    with pytest.warns(
        RuntimeWarning, match=r"trainer_options\['amp'\] applies to trials on a GPU"
    ):
        assert _amp_enabled(TrainerOptions(amp=True), torch.device("cpu")) is False
    assert _amp_enabled(TrainerOptions(), torch.device("cpu")) is False


def test_cnn_takes_images_and_flat_rows() -> None:
    images = cnn({"_input_shape": (1, 8, 8), "_n_outputs": 10})
    assert images(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    flat = cnn({"_input_shape": (64,), "_n_outputs": 10, "channels": 4})
    assert flat(torch.zeros(2, 64)).shape == (2, 10)
    assert isinstance(flat.features, torch.nn.Sequential)
    assert isinstance(flat.head, torch.nn.Linear)
    with pytest.raises(ValueError, match=r"flat inputs of 10 values are not 1 channel"):
        cnn({"_input_shape": (10,), "_n_outputs": 2})
    train, _val = digits_images(labels=(5, 6, 7, 8, 9))
    assert set(train.tensors[1].tolist()) == {0, 1, 2, 3, 4}
    assert train.tensors[0].shape[1:] == (1, 8, 8)
    assert float(train.tensors[0].max()) <= 1.0


def test_example_experiment_file_parses() -> None:
    experiment = load_experiment(REPO / "scripts" / "examples" / "digits_cnn.yaml")
    assert experiment.model is cnn
    assert experiment.kwargs["data"] == "digits"
