"""Fine-tuning through `hpt_ray.tune_model` on a real local Ray (issue #12 item 4, training loop):
``init_checkpoint`` is loaded before training, and ``freeze_epochs`` keeps the body as loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hpt_ray import tune_model
from trainables.torch_trainable import mlp

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

BODY = {"hidden_size": 32, "n_layers": 1, "batch_size": 256}
COMMON = {"searcher": "grid", "scheduler": "fifo", "seed": 0, "verbose": 0, "data": "digits"}


def _state(checkpoint: Any) -> dict[str, torch.Tensor]:
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / "state.pt", weights_only=True)["model"]


def _meta(checkpoint: Any) -> dict[str, Any]:
    with checkpoint.as_directory() as directory:
        return json.loads((Path(directory) / "meta.json").read_text())


def test_init_checkpoint_is_loaded_and_frozen_layers_stay_as_loaded(tmp_path: Path) -> None:
    source = tune_model(
        mlp, {**BODY, "lr": 1e-2}, epochs=2, storage_path=str(tmp_path), name="source", **COMMON
    )
    source_state = _state(source.best_checkpoint)

    # 1. From our checkpoint directory, trained at lr 1e-12: epoch 1 scores as the source did.
    still = tune_model(
        mlp,
        {**BODY, "lr": 1e-12, "optimizer": "sgd", "momentum": 0.0},
        epochs=1,
        storage_path=str(tmp_path),
        name="still",
        trainer_options={"init_checkpoint": source.best_checkpoint.path},
        **COMMON,
    )
    source_final = source.result_grid[0].metrics["val_accuracy"]
    assert still.result_grid[0].metrics["val_accuracy"] == source_final
    assert _meta(still.best_checkpoint)["init_checkpoint"]["loaded"] == len(source_state)

    # 2. From a state-dict file with another head: the body loads, the head is skipped, and
    # with freeze_epochs=1 one epoch trains the head only.
    wide = mlp({"_n_features": 64, "_n_outputs": 5, **BODY})
    wide.load_state_dict(
        {k: v for k, v in source_state.items() if not k.startswith("2.")}, strict=False
    )
    file = tmp_path / "five-classes.pt"
    torch.save(wide.state_dict(), file)
    probe = tune_model(
        mlp,
        {**BODY, "lr": 1e-2, "freeze_epochs": [1], "head_lr_mult": 2.0},
        epochs=1,
        storage_path=str(tmp_path),
        name="probe",
        trainer_options={"init_checkpoint": str(file)},
        **COMMON,
    )
    after = _state(probe.best_checkpoint)
    torch.testing.assert_close(after["0.weight"], source_state["0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(after["0.bias"], source_state["0.bias"], rtol=0, atol=0)
    assert after["2.weight"].shape == (10, 32)
    meta = _meta(probe.best_checkpoint)["init_checkpoint"]
    assert meta["loaded"] == 2
    assert meta["skipped"] == [
        "2.weight (shape (5, 32) vs (10, 32))",
        "2.bias (shape (5,) vs (10,))",
    ]
    history = probe.result_grid[0].metrics_dataframe
    assert history["lr"].tolist() == [2e-2]  # the head's rate: lr * head_lr_mult
    assert probe.best_score > 0.5  # a linear probe on the source's features learns digits
