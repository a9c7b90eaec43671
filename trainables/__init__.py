"""What runs inside a trial: datasets, PyTorch and scikit-learn function trainables, resources.

Public API (imported lazily, so ``import trainables`` does not pull in torch or Ray):

- `load_data`, `Dataset`, `dataset_names`, `check_finite` (trainables.data)
- `make_torch_trainable`, `plan_torch`, `mlp`, `load_model`, `TorchPredictor`
  (trainables.torch_trainable); trainer options in trainables.torch_options, data forms in
  trainables.torch_data, the optimizer/schedule/fine-tuning recipe in trainables.torch_recipe
- `cnn`, `digits_images`, `digits_image_factory` (trainables.cnn: the image example)
- `make_sklearn_trainable`, `n_stages` (trainables.sklearn_trainable)
- `resources_from_spec` (trainables.resources)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "trainables.data",
    "check_finite": "trainables.data",
    "dataset_names": "trainables.data",
    "load_data": "trainables.data",
    "make_torch_trainable": "trainables.torch_trainable",
    "mlp": "trainables.torch_trainable",
    "load_model": "trainables.torch_trainable",
    "TorchPredictor": "trainables.torch_trainable",
    "plan_torch": "trainables.torch_trainable",
    "cnn": "trainables.cnn",
    "digits_images": "trainables.cnn",
    "digits_image_factory": "trainables.cnn",
    "make_sklearn_trainable": "trainables.sklearn_trainable",
    "n_stages": "trainables.sklearn_trainable",
    "resources_from_spec": "trainables.resources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
