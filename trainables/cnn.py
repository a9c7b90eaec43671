"""An image example for the PyTorch trainable: scikit-learn's digits as 1x8x8 images, and a small
CNN factory.

- `digits_images(seed=0)` returns ``(train_ds, val_ds)``: ``TensorDataset`` objects of images
  ``(1, 8, 8)`` float32 in [0, 1] (pixel / 16) and labels int64, split 80/20 stratified (seeded);
  ``labels=(5, 6, 7, 8, 9)`` keeps those digits, relabelled 0 .. 4.
- `digits_image_factory(config)` is the same as a dataset factory ``config -> (train_ds,
  val_ds)``: ``noise`` (0.0) adds Gaussian pixel noise of that std to every training image each
  time it is read (augmentation whose strength is searched), ``labels`` as above.
- `cnn(config)` builds a `SmallCNN`: ``n_blocks`` (2) blocks of conv 3x3 -> batch norm -> ReLU
  (-> 2x2 max pool while the image is at least 2x2), ``channels`` (16) in the first block,
  doubling per block, ``dropout`` (0.0) before the head, global average pooling, then the linear
  head. Its ``features`` (an ``nn.Sequential`` of the blocks) and ``head`` (the final
  ``nn.Linear``) are what the fine-tuning keys (``freeze_epochs``, ``layer_decay``,
  ``head_lr_mult``) address. It takes images ``(n, C, H, W)``, or flat rows ``(n, C*H*W)`` of
  square images (``in_channels``, default 1), so ``data="digits"`` (64 standardized pixels per
  row) trains it too, as ``scripts/examples/digits_cnn.yaml`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import TensorDataset

from searchers.validation import InvalidParameterError


class SmallCNN(nn.Module):
    """Conv blocks, global average pooling and a linear head.

    Attributes:
        reshape: flat rows ``(n, C*H*W)`` -> images ``(n, C, H, W)`` (identity for images).
        features: the blocks, an ``nn.Sequential``.
        head: the final ``nn.Linear`` to the outputs.
    """

    def __init__(
        self,
        *,
        in_shape: tuple[int, int, int],
        n_outputs: int,
        flat_input: bool,
        channels: int = 16,
        n_blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.reshape: nn.Module = nn.Unflatten(1, in_shape) if flat_input else nn.Identity()
        blocks: list[nn.Module] = []
        width = c
        for i in range(n_blocks):
            out = channels * 2**i
            layers: list[nn.Module] = [
                nn.Conv2d(width, out, kernel_size=3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(*layers))
            width = out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_outputs)`` for images ``(n, C, H, W)`` or flat rows."""
        return self.head(self.dropout(self.pool(self.features(self.reshape(x)))))


def cnn(config: dict[str, Any]) -> SmallCNN:
    """A `SmallCNN` factory for the PyTorch trainable (config keys in the module docstring).

    Args:
        config: ``_input_shape`` and ``_n_outputs`` (injected by the trainable), ``channels``,
            ``n_blocks``, ``dropout``, ``in_channels``.

    Raises:
        ValueError: an input shape that is neither an image nor a flat square image.
    """
    shape = tuple(int(s) for s in config.get("_input_shape") or ())
    n_outputs = int(config["_n_outputs"])
    channels = int(config.get("channels", 16))
    n_blocks = int(config.get("n_blocks", 2))
    dropout = float(config.get("dropout", 0.0))
    if channels < 1 or n_blocks < 1 or not 0.0 <= dropout < 1.0:
        raise InvalidParameterError(
            "cnn: config['channels'] and config['n_blocks'] must be >= 1 and config['dropout'] "
            f"in [0, 1); got {channels}, {n_blocks}, {dropout}."
        )
    if len(shape) == 3:
        in_shape = (shape[0], shape[1], shape[2])
        flat = False
    elif len(shape) == 1:
        c = int(config.get("in_channels", 1))
        side = math.isqrt(shape[0] // c) if c >= 1 else 0
        if c < 1 or c * side * side != shape[0]:
            raise InvalidParameterError(
                f"cnn: flat inputs of {shape[0]} values are not {c} channel(s) of a square "
                "image; pass images (C, H, W) or set config['in_channels']."
            )
        in_shape = (c, side, side)
        flat = True
    else:
        raise InvalidParameterError(
            f"cnn: config['_input_shape'] must be (C, H, W) or (C*H*W,); got {shape or None}."
        )
    return SmallCNN(
        in_shape=in_shape,
        n_outputs=n_outputs,
        flat_input=flat,
        channels=channels,
        n_blocks=n_blocks,
        dropout=dropout,
    )


def digits_images(
    *, seed: int = 0, validation_fraction: float = 0.2, labels: Sequence[int] | None = None
) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's digits as ``(train_ds, val_ds)`` of 1x8x8 images (module docstring).

    Args:
        seed: seeds the stratified split.
        validation_fraction: the validation share, in (0, 1).
        labels: digits to keep (relabelled 0 .. len(labels) - 1 in this order); None keeps all.
    """
    X, y = load_digits(return_X_y=True)
    if labels is not None:
        keep = np.isin(y, labels)
        mapping = {int(digit): i for i, digit in enumerate(labels)}
        X, y = X[keep], np.array([mapping[int(v)] for v in y[keep]])
    images = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # (n, 1, 8, 8)
    X_tr, X_va, y_tr, y_va = train_test_split(
        images, y, test_size=validation_fraction, random_state=seed, stratify=y
    )
    return (
        TensorDataset(torch.as_tensor(X_tr), torch.as_tensor(y_tr, dtype=torch.long)),
        TensorDataset(torch.as_tensor(X_va), torch.as_tensor(y_va, dtype=torch.long)),
    )


class NoisyImages(TorchDataset):
    """A Dataset of ``(image + N(0, noise^2), label)``: fresh noise on every read, drawn from
    torch's global RNG (seeded per trial, and checkpointed, by the trainable).

    Attributes:
        base: the ``(image, label)`` Dataset.
        noise: the noise's standard deviation.
    """

    def __init__(self, base: TensorDataset, noise: float) -> None:
        self.base = base
        self.noise = noise

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        if self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        return x, y


def digits_image_factory(config: dict[str, Any]) -> tuple[TorchDataset, TorchDataset]:
    """A dataset factory: `digits_images` with training noise ``config["noise"]``.

    Args:
        config: a trial's config; reads ``noise`` (0.0).
    """
    # One split for every trial (not the trial's seed), so trials are scored on the same rows.
    train, val = digits_images(seed=0)
    noise = float(config.get("noise", 0.0))
    if not (math.isfinite(noise) and noise >= 0):
        raise InvalidParameterError(f"config['noise'] must be a number >= 0; got {noise!r}.")
    return NoisyImages(train, noise), val
