"""PyTorch data as people have it, through `hpt_ray.tune_model` on a real local Ray (issue #12
item 2): Dataset pairs and dataset factories, a CNN on 1x8x8 digits, a GRU on sequences, custom
losses, class weights and extra metrics, optimizers and learning-rate schedules, patience."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ray import cloudpickle
from sklearn.metrics import f1_score, roc_auc_score
from torch.utils.data import TensorDataset

from hpt_ray import tune_model
from trainables.cnn import cnn, digits_images
from trainables.torch_trainable import mlp

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

# Trials run in Ray workers, which cannot import this test module: ship its functions and
# classes (the dataset factory, the GRU) by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _histories(result: Any) -> list[Any]:
    """Each trial's per-epoch reports, as DataFrames."""
    assert result.result_grid is not None
    assert not result.result_grid.errors, result.result_grid.errors
    return [r.metrics_dataframe for r in result.result_grid]


def _tune(model: Any, space: dict[str, Any], tmp_path: Path, **kwargs: Any) -> Any:
    options = {
        "searcher": "grid",
        "scheduler": "fifo",
        "max_concurrent": 2,
        "seed": 0,
        "storage_path": str(tmp_path),
        "verbose": 0,
    }
    return tune_model(model, space, **{**options, **kwargs})


def test_cnn_on_image_datasets_reports_metrics_that_the_exported_model_reproduces(
    tmp_path: Path,
) -> None:
    train, val = digits_images(seed=0)
    result = _tune(
        cnn,
        {"optimizer": ["rmsprop", "sgd"], "lr": 0.005, "nesterov": True, "channels": 8},
        tmp_path,
        data=(train, val),
        epochs=2,
        trainer_options={
            "metrics": {"f1": "f1", "roc_auc": "roc_auc"},
            "class_weights": "balanced",
        },
    )
    for history in _histories(result):
        assert history["epoch"].tolist() == [1, 2]
        for key in ("val_accuracy", "val_f1", "val_roc_auc", "lr"):
            assert history[key].notna().all(), key
    assert result.best_score > 0.6
    model = result.best_model()
    assert model.input_shape == (1, 8, 8)
    y_val = val.tensors[1].numpy()
    predicted = model.predict(val)  # a Dataset in, labels out
    proba = model.predict_proba(val.tensors[0].numpy())  # or the image array
    best = next(r for r in result.result_grid if r.config == result.best_config).metrics
    assert float(np.mean(predicted == y_val)) == pytest.approx(best["val_accuracy"], abs=1e-12)
    assert f1_score(y_val, predicted, average="macro") == pytest.approx(best["val_f1"], rel=1e-9)
    auc = roc_auc_score(y_val, proba, multi_class="ovr", average="macro")
    assert auc == pytest.approx(best["val_roc_auc"], rel=1e-6)


class _Sequences(torch.utils.data.Dataset):
    """Digits images as sequences of 8 rows of 8 pixels, with Gaussian noise when training."""

    def __init__(self, base: TensorDataset, noise: float) -> None:
        self.base, self.noise = base, noise

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[i]
        x = x.reshape(8, 8)  # (T=8, F=8)
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        return x, int(y)


def _sequence_factory(config: dict[str, Any]) -> tuple[Any, Any]:
    train, val = digits_images(seed=0)
    return _Sequences(train, config["noise"]), _Sequences(val, 0.0)


class _GRU(torch.nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(n_in, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(x)  # h: (1, n, hidden)
        return self.head(h[0])


def _gru(config: dict[str, Any]) -> torch.nn.Module:
    _steps, features = config["_input_shape"]
    return _GRU(features, 32, config["_n_outputs"])


def test_dataset_factory_tunes_the_pipeline_with_an_rnn(tmp_path: Path) -> None:
    result = _tune(
        _gru,
        {"noise": [0.0, 2.0], "lr": 0.02, "batch_size": 128},
        tmp_path,
        data=_sequence_factory,
        epochs=2,
        trainer_options={"task": "classification"},
    )
    by_noise = {r.config["noise"]: r.metrics for r in result.result_grid}
    assert not result.result_grid.errors
    # The factory saw each trial's config: heavy noise on the training sequences hurts.
    assert by_noise[0.0]["val_accuracy"] > 0.4  # chance is 0.1
    assert by_noise[2.0]["train_loss"] > by_noise[0.0]["train_loss"]
    model = result.best_model()
    assert model.input_shape == (8, 8)
    _, val = _sequence_factory({"noise": 0.0})
    labels = np.array([val[i][1] for i in range(len(val))])
    best = by_noise[result.best_config["noise"]]
    assert float(np.mean(model.predict(val) == labels)) == pytest.approx(best["val_accuracy"])


def test_custom_loss_and_metric_functions(tmp_path: Path) -> None:
    space = {"hidden_size": 16, "n_layers": 1, "batch_size": 256}
    calls = tmp_path / "metric-calls"

    def doubled(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.nn.functional.cross_entropy(out, y)

    def share_of_zeros(y_true: np.ndarray, y_score: np.ndarray) -> float:
        with open(calls, "a") as f:
            f.write(f"{y_true.shape} {y_score.shape}\n")
        return float(np.mean(y_score.argmax(axis=1) == 0))

    runs = {}
    for name, options in {
        "plain": {"loss": "cross_entropy", "metrics": {"zeros": share_of_zeros}},
        "doubled": {"loss": doubled},
    }.items():
        result = _tune(
            mlp, space, tmp_path, data="digits", epochs=2, name=name, trainer_options=options
        )
        (history,) = _histories(result)
        runs[name] = history
    plain = runs["plain"]
    # Adam is invariant to the loss's scale (up to eps): the doubled loss reads twice as high.
    ratio = runs["doubled"]["val_loss"] / plain["val_loss"]
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-3)
    assert plain["val_zeros"].between(0.0, 0.3).all()
    assert calls.read_text().splitlines()[0] == "(360,) (360, 10)"


def test_every_schedule_reaches_the_optimizer_and_patience_stops_early(tmp_path: Path) -> None:
    # At lr 1e-9 SGD leaves the float32 weights as they are, so val_accuracy never improves after
    # epoch 1 and patience 3 ends each trial after epoch 4 of 5; the reported lr is the
    # optimizer's own, set per epoch.
    space = {
        "lr_schedule": ["constant", "step", "cosine"],
        "lr": 1e-9,
        "optimizer": "sgd",
        "momentum": 0.0,
        "warmup_epochs": 1,
        "step_size": 1,
        "gamma": 0.5,
        "patience": 3,
        "hidden_size": 8,
        "n_layers": 1,
        "batch_size": 512,
    }
    result = _tune(
        mlp, space, tmp_path, data="digits", epochs=5, trainer_options={"monitor": "val_accuracy"}
    )
    lrs = {}
    for trial in result.result_grid:
        history = trial.metrics_dataframe
        assert history["epoch"].tolist() == [1, 2, 3, 4]
        assert trial.metrics["stop_reason"] == "patience"
        lrs[trial.config["lr_schedule"]] = (history["lr"] / 1e-9).tolist()
    # Warmup epoch 1 at lr/2, then epochs t = 1, 2, 3 of a 4-epoch schedule.
    cosine = [0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(3)]
    np.testing.assert_allclose(lrs["constant"], [0.5, 1, 1, 1], rtol=1e-12)
    np.testing.assert_allclose(lrs["step"], [0.5, 1, 0.5, 0.25], rtol=1e-12)
    np.testing.assert_allclose(lrs["cosine"], [0.5, *cosine], rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP needs a CUDA device")
def test_amp_trains_on_a_gpu(tmp_path: Path) -> None:
    train, val = digits_images(seed=0)
    result = _tune(
        cnn,
        {"lr": 0.01, "channels": 8},
        tmp_path,
        data=(train, val),
        epochs=2,
        resources_per_trial={"cpu": 1, "gpu": 1},
        trainer_options={"amp": True},
    )
    (history,) = _histories(result)
    assert history["gpu_ids"].iloc[-1] != ""
    assert history["val_accuracy"].iloc[-1] > 0.8
