"""The PyTorch trainable inside real Ray Tuners: per-epoch reports, checkpoints, exact resume."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ray import tune

from trainables.data import Dataset, load_data
from trainables.resources import resources_from_spec
from trainables.torch_trainable import (
    TorchTrainingDefaults,
    make_torch_trainable,
    mlp,
    resolve_factory,
    resolve_settings,
    run_torch_trial,
)

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_data("digits", seed=0)


def _run(trainable: Any, space: dict[str, Any], tmp_path: Path, **kwargs: Any) -> tune.ResultGrid:
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="torch", verbose=0, **kwargs),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    return results


@pytest.mark.slow
def test_reports_every_epoch_with_a_checkpoint(digits: Dataset, tmp_path: Path) -> None:
    fn = make_torch_trainable(mlp, task="classification", epochs=3, batch_size=128)
    space = {"lr": tune.grid_search([1e-3, 1e-2]), "hidden_size": 32, "n_layers": 1}
    results = _run(tune.with_parameters(fn, data=digits), space, tmp_path)
    assert len(results) == 2
    for result in results:
        history = result.metrics_dataframe
        assert history["epoch"].tolist() == [1, 2, 3]
        assert {"train_loss", "val_loss", "val_accuracy"} <= set(history.columns)
        assert "val_r2" not in history.columns
        assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
        assert 0.5 < history["val_accuracy"].iloc[-1] <= 1.0
        assert len(result.best_checkpoints) == 3
        with result.checkpoint.as_directory() as directory:
            state = torch.load(os.path.join(directory, "state.pt"), weights_only=True)
        assert (state["epoch"], state["seed"], state["version"]) == (3, 0, 2)


@pytest.mark.slow
def test_resumes_from_checkpoint_exactly(digits: Dataset, tmp_path: Path) -> None:
    inner = make_torch_trainable("trainables.torch_trainable:mlp", task="classification")
    marker = tmp_path / "crashed-once"

    def crash_after_two_epochs(config: dict[str, Any], data: Dataset) -> None:
        # Nested so that Ray pickles it by value (test modules are not importable on workers).
        if config["crash"] and not marker.exists():
            marker.touch()
            inner({**config, "epochs": 2}, data)
            raise RuntimeError("injected failure after epoch 2")
        inner(config, data)

    space = {
        "crash": tune.grid_search([True, False]),
        "epochs": 3,
        "hidden_size": 16,
        "dropout": 0.2,  # dropout draws from torch's RNG, which the checkpoint must restore
        "batch_size": 256,
    }
    results = _run(
        tune.with_parameters(crash_after_two_epochs, data=digits),
        space,
        tmp_path,
        failure_config=tune.FailureConfig(max_failures=1),
    )
    assert marker.exists()
    by_crash = {r.config["crash"]: r.metrics_dataframe for r in results}
    resumed, straight = by_crash[True], by_crash[False]
    # Ray keeps the pre-crash rows of progress.csv on some restores and rewrites the file on
    # others, so the history may be [1, 2, 3] or [3]. Either way the row after the restore must be
    # epoch 3 as the first iteration since the restore: a trainable that ignored its checkpoint
    # would report epochs 1, 2, 3 again (training_iteration 3, 4, 5).
    last = resumed.iloc[-1]
    assert (last["epoch"], last["training_iteration"], last["iterations_since_restore"]) == (
        3,
        3,
        1,
    )
    assert resumed["epoch"].tolist() in ([1, 2, 3], [3])
    expected = straight.set_index("epoch")
    for _, row in resumed.iterrows():
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert row[key] == expected.loc[row["epoch"], key], (row["epoch"], key)


@pytest.mark.slow
def test_regression_reports_r2_and_uses_trial_cpus(tmp_path: Path) -> None:
    data = load_data("diabetes")
    seen = tmp_path / "threads.txt"

    def recording_mlp(config: dict[str, Any]) -> torch.nn.Module:
        seen.write_text(str(torch.get_num_threads()))
        assert config["_n_outputs"] == 1
        assert config["_task"] == "regression"
        return mlp(config)

    fn = make_torch_trainable(recording_mlp, task="regression", epochs=2, lr=1e-2)
    trainable = tune.with_resources(
        tune.with_parameters(fn, data=data), resources_from_spec({"cpu": 2})
    )
    (result,) = _run(trainable, {"hidden_size": 16, "optimizer": "sgd"}, tmp_path)
    history = result.metrics_dataframe
    assert history["epoch"].tolist() == [1, 2]
    assert "val_accuracy" not in history.columns
    assert history["val_r2"].iloc[-1] > 0.0  # better than predicting the mean
    assert seen.read_text() == "2"


def test_mlp_shapes() -> None:
    model = mlp({"_n_features": 5, "_n_outputs": 3, "hidden_size": 8, "n_layers": 2})
    assert model(torch.zeros(4, 5)).shape == (4, 3)
    linear = mlp({"_n_features": 5, "_n_outputs": 1, "n_layers": 0})
    assert len(linear) == 1
    with pytest.raises(ValueError, match=r"config\['_n_features'\] is required"):
        mlp({"_n_outputs": 3})
    with pytest.raises(ValueError, match=r"config\['activation'\]"):
        mlp({"_n_features": 5, "_n_outputs": 3, "activation": "swish"})


def test_settings_validation() -> None:
    defaults = TorchTrainingDefaults(epochs=7)
    settings = resolve_settings({"lr": 0.1, "optimizer": "SGD", "batch_size": 32.0}, defaults)
    assert (settings.lr, settings.optimizer, settings.batch_size, settings.epochs) == (
        0.1,
        "sgd",
        32,
        7,
    )
    with pytest.raises(ValueError, match=r"config\['optimizer'\] must be one of"):
        resolve_settings({"optimizer": "lbfgs"}, defaults)
    with pytest.raises(ValueError, match=r"config\['batch_size'\] must be >= 1"):
        resolve_settings({"batch_size": 0}, defaults)
    with pytest.raises(ValueError, match=r"config\['lr'\]"):
        resolve_settings({"lr": -1.0}, defaults)
    with pytest.raises(ValueError, match="task must be one of"):
        make_torch_trainable(mlp, task="ranking")
    with pytest.raises(ValueError, match=r"package\.module:name"):
        resolve_factory("trainables.torch_trainable.mlp")
    assert resolve_factory("trainables.torch_trainable:mlp") is mlp


@pytest.mark.slow
def test_wrong_output_shape_is_explained(tmp_path: Path) -> None:
    data = load_data("iris")

    def too_narrow(config: dict[str, Any]) -> torch.nn.Module:
        return torch.nn.Linear(config["_n_features"], 2)

    fn = make_torch_trainable(too_narrow, task="classification", epochs=1)
    results = tune.Tuner(
        tune.with_parameters(fn, data=data),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="shape", verbose=0),
    ).fit()
    (error,) = results.errors
    assert "returned shape (" in str(error)
    assert "logits for 3 classes" in str(error)
    with pytest.raises(ValueError, match="made for task='regression'"):
        run_torch_trial(mlp, {}, data, task="regression", defaults=TorchTrainingDefaults())
    assert np.isfinite(data.X_train).all()


@pytest.mark.slow
def test_divergence_ends_the_trial_with_a_stop_reason(digits: Dataset, tmp_path: Path) -> None:
    fn = make_torch_trainable(mlp, task="classification", epochs=4, optimizer="sgd")
    space = {"lr": tune.grid_search([1e-2, 1e6]), "hidden_size": 16, "n_layers": 1}
    results = _run(tune.with_parameters(fn, data=digits), space, tmp_path)
    by_lr = {r.config["lr"]: r for r in results}
    diverged = by_lr[1e6]
    history = diverged.metrics_dataframe
    assert diverged.metrics["stop_reason"] == "diverged"
    assert history["epoch"].tolist() == [1]  # lr=1e6 blows up within the first epoch
    assert not math.isfinite(diverged.metrics["train_loss"])
    # NaN, not the share of class 0 that an argmax over NaN logits scores.
    assert math.isnan(diverged.metrics["val_accuracy"])
    assert math.isnan(diverged.metrics["val_loss"])
    # The diverged epoch writes no checkpoint (the trial keeps its last finite one: none here).
    assert diverged.checkpoint is None
    healthy = by_lr[1e-2]
    assert "stop_reason" not in healthy.metrics
    assert healthy.metrics["epoch"] == 4


def test_nan_data_fails_while_planning_before_any_trial() -> None:
    pd = pytest.importorskip("pandas")
    clean = load_data("breast_cancer", seed=0)
    X = clean.X.copy()
    X[[4, 8], 3] = np.nan
    data = load_data((X, clean.y), seed=0)
    # make_torch_trainable runs while a run is planned: the error comes before Ray sees a trial.
    with pytest.raises(ValueError, match=r"column 3 \(\d NaN\).*Impute them"):
        make_torch_trainable(mlp, task="classification", data=data)
    frame = pd.DataFrame(X, columns=[f"feature_{i}" for i in range(X.shape[1])])
    with pytest.raises(ValueError, match=r"column 'feature_3' \(\d NaN\)"):
        make_torch_trainable(mlp, task="classification", data=load_data((frame, clean.y)))
    # Without data at make time, each trial refuses it before training.
    with pytest.raises(ValueError, match=r"column 3 \(\d NaN\)"):
        run_torch_trial(mlp, {}, data, task="classification", defaults=TorchTrainingDefaults())
    with pytest.raises(ValueError, match="made for task='regression'"):
        make_torch_trainable(mlp, task="regression", data=clean)
