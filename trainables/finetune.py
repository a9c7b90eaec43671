"""Fine-tuning example: a small CNN pretrained on digits 0-4, fine-tuned on digits 5-9 from a
few labelled images per class.

- `BACKBONE_PATH` is the pretrained weights file (``trainables/weights/digits04_cnn.pt``,
  written by ``scripts/train_backbone.py``). It is a dict: ``state_dict`` holds the body only
  (``features.*``: conv and batch-norm tensors), so ``trainer_options={"init_checkpoint":
  BACKBONE_PATH}`` loads the body and the 5-way head starts fresh (the 0-4 head would map the new
  classes onto old ones arbitrarily); ``head`` holds the 0-4 head, ``config`` the `cnn` keys it
  was built with and ``val_accuracy`` its accuracy on the held-out fifth of digits 0-4.
- `load_backbone()` rebuilds that digits 0-4 classifier (body and head).
- `few_label_digits(per_class=10, seed=0)` splits digits 5-9 (relabelled 0 .. 4) as 1x8x8
  images into ``(train_ds, val_ds, test_ds)``: a stratified test fraction (never used while
  tuning), then ``per_class`` labelled training images per class, the rest for validation.
- `few_label_datasets(per_class=10, seed=0)` is the same without the test split, the
  ``(train_ds, val_ds)`` pair an experiment file's data factory returns
  (``scripts/examples/finetune_digits.yaml``).
- `finetune_space()` searches the fine-tuning recipe; `scratch_space()` the hyperparameters of the
  same CNN trained from random weights; `DEFAULT_RECIPE` is the untuned recipe (lr 1e-3, nothing
  frozen). ``scripts/bench_finetune.py`` compares the three (BENCHMARKS.md, "Fine-tuning").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray import tune
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from searchers.validation import InvalidParameterError
from trainables.cnn import SmallCNN, cnn

BACKBONE_PATH = Path(__file__).resolve().parent / "weights" / "digits04_cnn.pt"
# The architecture the backbone was trained with; a fine-tuned model must be built the same way
# for the body's tensors to match by name and shape.
BACKBONE_CONFIG: dict[str, Any] = {"channels": 32, "n_blocks": 2, "dropout": 0.0}
PRETRAIN_LABELS: tuple[int, ...] = (0, 1, 2, 3, 4)
TARGET_LABELS: tuple[int, ...] = (5, 6, 7, 8, 9)

# The untuned fine-tuning recipe of the benchmark's arm (c): the trainable's defaults, spelled out.
DEFAULT_RECIPE: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_epochs": 0,
    "freeze_epochs": 0,
    "layer_decay": 1.0,
    "head_lr_mult": 1.0,
}


def load_backbone(path: str | Path = BACKBONE_PATH) -> SmallCNN:
    """The pretrained digits 0-4 classifier (body and head), in eval mode on the CPU.

    Args:
        path: a weights file written by ``scripts/train_backbone.py``.

    Raises:
        ValueError: ``path`` is not such a file.
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(saved, dict) and {"state_dict", "head", "config"} <= set(saved)):
        raise InvalidParameterError(
            f"load_backbone: {str(path)!r} is not a backbone file of scripts/train_backbone.py "
            "(a dict with 'state_dict', 'head' and 'config'); run that script to write one."
        )
    model = cnn({**saved["config"], "_input_shape": (1, 8, 8), "_n_outputs": len(PRETRAIN_LABELS)})
    state = {**saved["state_dict"], **{f"head.{k}": v for k, v in saved["head"].items()}}
    model.load_state_dict(state)
    return model.eval()


def few_label_digits(
    *, per_class: int = 10, seed: int = 0, test_fraction: float = 0.4
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Digits 5-9 as ``(train_ds, val_ds, test_ds)`` of 1x8x8 images (pixel / 16, float32) and
    labels 0 .. 4 (digit - 5, int64).

    Args:
        per_class: labelled training images per class (the few labels).
        seed: seeds both splits (which rows are test, which are labelled).
        test_fraction: the stratified share kept for testing, in (0, 1).

    Raises:
        ValueError: ``per_class`` < 1 or more than a class has outside the test split, or a
            ``test_fraction`` outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise InvalidParameterError(
            f"few_label_digits: test_fraction must be in (0, 1); got {test_fraction}"
        )
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, TARGET_LABELS)
    images = (X[keep] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (n, 1, 8, 8)
    labels = (y[keep] - TARGET_LABELS[0]).astype(np.int64)  # (n,), 0 .. 4
    X_rest, X_te, y_rest, y_te = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    smallest = int(np.bincount(y_rest).min())
    if not 1 <= per_class < smallest:
        raise InvalidParameterError(
            f"few_label_digits: per_class must be in [1, {smallest - 1}] (the smallest class "
            f"has {smallest} images outside the test split); got {per_class}."
        )
    rng = np.random.default_rng(seed)
    train_rows = np.concatenate(
        [rng.choice(np.flatnonzero(y_rest == c), per_class, replace=False) for c in range(5)]
    )  # (5 * per_class,)
    is_train = np.zeros(len(y_rest), dtype=bool)
    is_train[train_rows] = True

    def dataset(X_part: np.ndarray, y_part: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.as_tensor(X_part), torch.as_tensor(y_part))

    return (
        dataset(X_rest[is_train], y_rest[is_train]),
        dataset(X_rest[~is_train], y_rest[~is_train]),
        dataset(X_te, y_te),
    )


def few_label_datasets(*, per_class: int = 10, seed: int = 0) -> tuple[Any, Any]:
    """`few_label_digits`'s ``(train_ds, val_ds)``: a data factory for experiment files.

    Args:
        per_class: labelled training images per class.
        seed: seeds the splits (the same rows as ``few_label_digits(seed=seed)``).
    """
    train, val, _ = few_label_digits(per_class=per_class, seed=seed)
    return train, val


def finetune_space(*, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    """The fine-tuning recipe searched from the backbone (each range's why in its comment).

    Args:
        batch_size: fixed mini-batch size (50 labelled images make 4 steps an epoch at 16).
        seed: the trials' seed (head initialization, shuffling).
    """
    return {
        **BACKBONE_CONFIG,
        "batch_size": batch_size,
        "seed": seed,
        "lr": tune.loguniform(1e-4, 3e-2),
        "weight_decay": tune.loguniform(1e-6, 1e-2),
        "warmup_epochs": tune.randint(0, 4),  # 0 .. 3
        "freeze_epochs": tune.randint(0, 8),  # 0 .. 7 epochs of linear probe first
        "layer_decay": tune.uniform(0.2, 1.0),  # body depth d trains at lr * decay ** (L - d)
        "head_lr_mult": tune.loguniform(1.0, 30.0),  # a fresh head may want a larger step
    }


def scratch_space(*, batch_size: int = 16, seed: int = 0) -> dict[str, Any]:
    """The same CNN from random weights: lr, weight decay and warmup searched (freezing and
    layer-wise rates only mean something for pretrained weights).

    Args:
        batch_size: fixed mini-batch size, as in `finetune_space`.
        seed: the trials' seed (initialization, shuffling).
    """
    return {
        **BACKBONE_CONFIG,
        "batch_size": batch_size,
        "seed": seed,
        "lr": tune.loguniform(1e-4, 3e-2),
        "weight_decay": tune.loguniform(1e-6, 1e-2),
        "warmup_epochs": tune.randint(0, 4),
    }
