"""Ray Tune function trainable for PyTorch models, checkpointing every epoch.

`plan_torch(model_factory, data, epochs=..., seed=..., options=trainer_options)` is what
``hpt_ray.tune_model`` calls; `make_torch_trainable(model_factory, task=...)` returns the
function trainable ``fn(config, data)`` itself. A trial:

1. resolves the training keys of ``config`` (below), each with a default;
2. gets its data: arrays are standardized with the training split's feature mean and std
   (constant columns keep scale 1) and, for regression, the target too; a ``(train_ds, val_ds)``
   pair of ``torch.utils.data.Dataset`` objects, or a dataset factory ``config -> (train_ds,
   val_ds)`` called with the trial's config, is batched by a ``DataLoader`` as it is
   (``trainables.torch_data`` says how the forms are told apart, how the task and the number of
   classes of Datasets are read, and how batches are ordered);
3. builds the model with ``model_factory(factory_config)``: the whole config plus
   ``_input_shape`` (one sample's shape: ``(n_features,)`` for arrays, e.g. ``(1, 8, 8)`` for
   images), ``_n_features`` (the product of that shape), ``_n_outputs`` (number of classes, or 1
   for regression) and ``_task``. The model maps a batch ``(n, *input_shape)`` to logits
   ``(n, n_classes)``, or to ``(n,)``/``(n, 1)`` for regression (checked on the first batch);
4. loads ``trainer_options["init_checkpoint"]`` (tensors whose name and shape match; the others
   are listed in a warning and in the checkpoint's meta.json; nothing matching is an error);
5. trains with the loss (cross-entropy / MSE unless ``trainer_options["loss"]``), reporting after
   every epoch ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``val_accuracy``
   (classification) or ``val_r2`` (regression), ``val_<name>`` for each extra metric, ``lr``
   (the head's learning rate in that epoch; with ``lr_adaptation`` the rate the epoch ended
   with) and ``lr_min``, ``lr_mean``, ``lr_max`` (the head's rate over the epoch's steps; all
   equal to ``lr`` without adaptation), with a checkpoint; resumes from
   ``tune.get_checkpoint()``.

Training keys (config keys, searchable; defaults from `make_torch_trainable` /
`TorchTrainingDefaults`):

- ``lr`` (1e-3), ``optimizer`` (any ``torch.optim`` class by name, any case: "adam", "adamw",
  "sgd", "rmsprop", "nadam", "radam", "adagrad", ...; default "adam"; or a dict, as a
  conditional choice between optimizers gives: ``{"name": "sgd", "momentum": 0.95}``,
  ``{"name": "adam", "beta1": 0.85}``, its other keys the optimizer's keyword arguments),
  ``weight_decay`` (0),
  ``momentum`` (sgd and rmsprop; sgd defaults to 0.9, rmsprop to torch's 0), ``nesterov``
  (False; sgd only, ignored by the others), ``batch_size`` (64), ``epochs``, ``seed`` (0);
- ``lr_schedule`` ("constant" | "step" | "cosine"), ``step_size`` (10 epochs) and ``gamma``
  (0.1) for "step", ``warmup_epochs`` (0, linear warmup): per-epoch factors, see
  ``trainables.torch_recipe``;
- ``lr_adaptation`` (None / "none" | "hypergradient"; sgd, adam and adamw) and
  ``hypergradient_beta`` (0.5, in (0, 1]): the optimizer adapts the learning rate every step
  from consecutive gradients (Baydin et al., ICLR 2018; ``trainables.hypergradient``), starting
  from ``lr``; the per-epoch schedule scales the adapted rate (``trainables.torch_recipe``). Both
  are searchable: the outer search still picks the initial ``lr`` and ``beta``;
- ``patience`` (0 = off): end the trial when ``trainer_options["monitor"]`` (default
  ``val_loss``) has not improved for that many epochs; the last epoch is reported with
  ``stop_reason="patience"``;
- fine-tuning: ``freeze_epochs`` (0) and ``freeze_blocks`` ("all": the whole body) freeze the
  body's first blocks for the first epochs (a linear probe, then fine-tuning);
  ``layer_decay`` (1.0) scales each body depth's learning rate by ``layer_decay ** (distance to
  the head)``; ``head_lr_mult`` (1.0) scales the head's. The head is the model's ``head``
  module and the body blocks are the children of its ``features`` module (fallbacks in
  ``trainables.torch_recipe``); the freeze state and learning rates follow from the epoch, so a
  resumed trial continues the recipe exactly;
- ``num_workers``, ``pin_memory``: the Dataset loaders' (override the trainer options).

Trainer options (fixed for a run, validated by `plan_torch` before any trial:
``trainables.torch_options``): ``task``, ``n_classes``, ``loss``, ``class_weights``,
``metrics``, ``init_checkpoint``, ``amp``, ``num_workers``, ``pin_memory``, ``monitor``.

Losses: ``train_loss`` is the sample-weighted mean loss over the epoch's batches (training mode);
``val_loss`` the loss on the whole validation split in eval mode. For array regression both are
MSE on the standardized target (MSE / Var(y_train)), so they are comparable across datasets;
``val_r2`` is ``sklearn.metrics.r2_score``'s value on the original scale. Dataset targets are
not standardized.

Divergence: a non-finite ``train_loss`` or ``val_loss`` ends the trial. That epoch is reported
with its validation metrics as NaN (the weights are meaningless: an argmax over NaN logits would
score the share of class 0), ``stop_reason="diverged"`` and no checkpoint, so the trial's
checkpoint stays its last finite epoch.

Data: NaN/inf in arrays is refused with `trainables.data.check_finite` (naming the split and the
column) while the run is planned, and again in every trial.

Export: every checkpoint holds, next to the weights, the preprocessing (feature mean and scale,
target mean and scale for regression, the task, the classes, the input shape) and what rebuilds
the module (the factory config and the factory, by import path when importable, else by value
with ``ray.cloudpickle``). `load_model(checkpoint)` returns a `TorchPredictor`: raw inputs in
(arrays, tensors, or a Dataset whose items' x are stacked), logits (classification) or
predictions in target units (regression) out, reproducing the reported validation metrics on the
validation split.

Reproducibility: the model is built right after ``torch.manual_seed(seed)`` (a dataset factory
is called before that); epoch ``e`` shuffles with ``np.random.default_rng([seed, e])``; the
checkpoint stores the model, optimizer, gradient scaler, early-stopping state, epoch, seed and
torch RNG states, so a resumed trial continues exactly where it stopped (bitwise on CPU with
``num_workers=0``).

Resources: ``torch.set_num_threads(max(1, floor(cpu)))`` with the trial's CPUs
(``tune.get_context().get_trial_resources()``, head bundle); a trial given GPUs
(``ray.get_gpu_ids()``) trains on ``cuda`` (Ray's ``CUDA_VISIBLE_DEVICES`` makes the first assigned
GPU ``cuda:0``), with mixed precision when ``trainer_options["amp"]``; a GPU trial in a process
without CUDA warns once and trains on the CPU, and ``amp`` on the CPU is ignored with a warning.
The CUDA cache is emptied when the trial ends or is stopped. Every report also carries
``node_id`` (the Ray node) and ``gpu_ids`` (the assigned GPU ids, comma-separated; "" without
GPUs).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import math
import os
import pickle
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray import cloudpickle, tune
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from searchers.validation import InvalidParameterError, did_you_mean, is_real
from trainables.data import TASKS, Dataset, check_finite
from trainables.hypergradient import DEFAULT_BETA, HypergradientOptimizer, check_beta
from trainables.torch_data import (
    ArrayBatches,
    DatasetBatches,
    TorchRunData,
    as_model_input,
    check_dataset_factory_result,
    inspect_datasets,
    is_dataset_factory,
    is_dataset_pair,
)
from trainables.torch_options import (
    TrainerOptionError,
    TrainerOptions,
    balanced_weights,
    check_against_data,
    compute_metric,
    make_loss,
    metric_keys,
    parse_options,
)
from trainables.torch_recipe import (
    SCHEDULES,
    Recipe,
    apply_freeze,
    check_lr_adaptation,
    frozen_depths,
    load_initial_weights,
    load_optimizer_state,
    make_optimizer,
    model_layers,
    optimizer_class,
    optimizer_options,
    set_epoch_lr,
)

logger = logging.getLogger(__name__)

ModelFactory = Callable[[dict[str, Any]], nn.Module]

CHECKPOINT_FILE = "state.pt"
# Written with ray.cloudpickle: the factory and its config, which may hold any Python object.
MODEL_FILE = "model.pkl"
# 2: the checkpoint carries the preprocessing and MODEL_FILE (version 1 had weights only, and
# cannot predict on raw features). Resuming training accepts both. Later additions (input shape,
# scaler, early stopping) are optional entries, read with defaults.
CHECKPOINT_VERSION = 2
RESUMABLE_VERSIONS = (1, 2)

# Config keys the trainable consumes itself (they still reach the factory with the rest).
TRAINING_KEYS: tuple[str, ...] = (
    "lr",
    "optimizer",
    "weight_decay",
    "batch_size",
    "epochs",
    "momentum",
    "nesterov",
    "seed",
    "lr_schedule",
    "step_size",
    "gamma",
    "warmup_epochs",
    "patience",
    "freeze_epochs",
    "freeze_blocks",
    "layer_decay",
    "head_lr_mult",
    "lr_adaptation",
    "hypergradient_beta",
    "num_workers",
    "pin_memory",
)


@dataclass(frozen=True)
class TorchTrainingDefaults:
    """Defaults of the training keys, used when a trial's config does not set them.

    Attributes:
        epochs: passes over the training split per trial (ASHA's ``max_t`` in epochs).
        lr: learning rate.
        optimizer: a ``torch.optim`` class name ("adam", "sgd", "adamw", "rmsprop", ...).
        weight_decay: L2 penalty (decoupled for adamw).
        batch_size: training mini-batch size (a batch larger than the split is the whole split).
        momentum: SGD momentum; rmsprop uses it only when the config sets ``momentum``.
        seed: seeds model initialization, shuffling and dropout of every trial.
        eval_batch_size: rows per forward pass when evaluating arrays (memory only, not
            results); Datasets are evaluated in batches of ``batch_size``.
        lr_schedule: "constant", "step" or "cosine".
        step_size, gamma: the step schedule's period (epochs) and factor.
        warmup_epochs: linear warmup epochs.
        patience: epochs without improvement before a trial stops (0: never).
        freeze_epochs: epochs with the body's first ``freeze_blocks`` blocks frozen.
        layer_decay: learning-rate factor per body depth below the head.
        head_lr_mult: the head's learning-rate factor.
        lr_adaptation: "none" or "hypergradient".
        hypergradient_beta: the hypergradient adapter's hyper-learning-rate.
    """

    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    batch_size: int = 64
    momentum: float = 0.9
    seed: int = 0
    eval_batch_size: int = 4096
    lr_schedule: str = "constant"
    step_size: int = 10
    gamma: float = 0.1
    warmup_epochs: int = 0
    patience: int = 0
    freeze_epochs: int = 0
    layer_decay: float = 1.0
    head_lr_mult: float = 1.0
    lr_adaptation: str = "none"
    hypergradient_beta: float = DEFAULT_BETA


@dataclass(frozen=True)
class TrainSettings:
    """The training keys of one trial, resolved and validated (``recipe`` holds the optimizer,
    schedule and fine-tuning keys)."""

    epochs: int
    lr: float
    optimizer: str
    weight_decay: float
    batch_size: int
    momentum: float
    seed: int
    recipe: Recipe
    patience: int
    num_workers: int | None
    pin_memory: bool | None


def make_torch_trainable(
    model_factory: ModelFactory | str,
    *,
    task: str,
    data: Dataset | None = None,
    epochs: int = 20,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    batch_size: int = 64,
    momentum: float = 0.9,
    seed: int = 0,
) -> Callable[[dict[str, Any], Any], None]:
    """Build a Ray Tune function trainable ``fn(config, data)`` training `model_factory`'s model.

    Args:
        model_factory: ``config -> torch.nn.Module``, or its import path "package.module:name"
            (e.g. "trainables.torch_trainable:mlp").
        task: "classification" or "regression"; must match the data's task.
        data: the run's array Dataset, checked now (task, NaN/inf) so that a bad dataset fails
            while the run is planned, before any trial; trials still receive it through
            ``tune.with_parameters``. None checks it in each trial only.
        epochs, lr, optimizer, weight_decay, batch_size, momentum, seed: defaults of the training
            keys for trials whose config does not set them (see `TorchTrainingDefaults`).

    Returns:
        ``fn(config, data)``: pass it to ``tune.with_parameters(fn, data=...)`` with a
        ``trainables.data.Dataset`` or the ``data`` of `plan_torch`'s `TorchPlan`.

    Raises:
        ValueError / TypeError: a bad task, factory or default, or data with NaN/inf or of the
            other task, naming the argument (the split and column for NaN/inf) and the fix.
    """
    if task not in TASKS:
        raise InvalidParameterError(f"task must be one of {list(TASKS)}; got {task!r}.")
    if data is not None:
        _check_data(data, task)
    factory = resolve_factory(model_factory)
    defaults = TorchTrainingDefaults(
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        batch_size=batch_size,
        momentum=momentum,
        seed=seed,
    )
    resolve_settings({}, defaults)  # fail at build time, not in every trial, on a bad default

    def torch_trainable(config: dict[str, Any], data: Any) -> None:
        run_torch_trial(factory, dict(config), data, task=task, defaults=defaults)

    name = getattr(factory, "__name__", type(factory).__name__)
    torch_trainable.__name__ = f"torch_{name}"
    torch_trainable.__qualname__ = torch_trainable.__name__
    return torch_trainable


@dataclass(frozen=True)
class TorchPlan:
    """What ``tune_model`` needs to run a PyTorch model factory (see `plan_torch`).

    Attributes:
        fn: ``fn(config, data)``, the function trainable (``tune.with_parameters`` ships ``data``).
        data: the object every trial receives as ``data`` (a ``TorchRunData``), put in Ray's
            object store once.
        task: "classification" or "regression".
        keys: every metric name a trial reports (a ``metric`` outside them is refused).
        default_metric, default_mode: what is optimized when ``tune_model`` is not told.
        data_name: a short name of the data for the run's metadata.
    """

    fn: Callable[..., None]
    data: Any
    task: str
    keys: list[str]
    default_metric: str
    default_mode: str
    data_name: str


def plan_torch(
    model_factory: ModelFactory | str,
    data: Any,
    *,
    epochs: int,
    seed: int,
    options: Mapping[str, Any] | None = None,
) -> TorchPlan:
    """Check ``data`` and ``options`` and build the trainable for a PyTorch model factory.

    Args:
        model_factory: ``config -> torch.nn.Module`` or its import path.
        data: a ``(train_ds, val_ds)`` pair of ``torch.utils.data.Dataset`` objects, a dataset
            factory ``config -> (train_ds, val_ds)``, or any form ``trainables.data.load_data``
            accepts (see ``trainables.torch_data``).
        epochs: epochs per trial when run to the end (a config's ``epochs`` overrides).
        seed: seeds the hold-out split of arrays.
        options: ``tune_model``'s ``trainer_options`` (None: the defaults); see
            ``trainables.torch_options``.

    Raises:
        ValueError / TypeError: bad data or options, naming the argument or option and the fix.
    """
    from trainables.data import load_data

    opts = parse_options(options)
    run: TorchRunData
    if is_dataset_pair(data):
        task, n_classes = inspect_datasets(data[0], data[1], opts, where="data")
        run = TorchRunData(
            "datasets", None, (data[0], data[1]), None, task, n_classes, opts, "datasets"
        )
    elif is_dataset_factory(data):
        if opts.task is None:
            raise TrainerOptionError(
                "data is a dataset factory (config -> (train_ds, val_ds)), which cannot be "
                "called before a trial has its config: say the task with "
                "trainer_options={'task': 'classification'} (or 'regression')."
            )
        name = getattr(data, "__name__", type(data).__name__)
        run = TorchRunData("factory", None, None, data, opts.task, opts.n_classes, opts, name)
    else:
        if isinstance(data, (tuple, list)) and any(isinstance(p, TorchDataset) for p in data):
            kinds = ", ".join(type(p).__name__ for p in data)
            raise InvalidParameterError(
                "data: give Datasets as a pair (train_ds, val_ds) of torch.utils.data.Dataset "
                f"objects; got ({kinds})."
            )
        if opts.n_classes is not None:
            raise TrainerOptionError(
                "trainer_options['n_classes'] applies to Dataset inputs; array labels give "
                "their classes themselves (drop n_classes)."
            )
        dataset = load_data(data, seed=seed, task=opts.task)
        run = TorchRunData(
            "arrays", dataset, None, None, dataset.task, dataset.n_classes, opts, dataset.name
        )
    check_against_data(opts, run.task, run.n_classes)
    fn = make_torch_trainable(model_factory, task=run.task, epochs=epochs, data=run.arrays)
    if run.task == "classification":
        default_metric, default_mode = "val_accuracy", "max"
    else:
        default_metric, default_mode = "val_loss", "min"
    return TorchPlan(
        fn=fn,
        data=run,
        task=run.task,
        keys=metric_keys(run.task, opts),
        default_metric=default_metric,
        default_mode=default_mode,
        data_name=run.name,
    )


def mlp(config: dict[str, Any]) -> nn.Module:
    """A multi-layer perceptron factory for `make_torch_trainable`.

    Config keys: ``_n_features`` and ``_n_outputs`` (injected by the trainable; pass them yourself
    when calling `mlp` directly), ``hidden_size`` (64), ``n_layers`` (2 hidden layers; 0 gives a
    linear model), ``dropout`` (0.0, after each hidden activation) and ``activation``
    ("relu" | "tanh" | "gelu", default "relu").

    Args:
        config: a trial's config with the keys above (a refused value is an
            `InvalidParameterError` naming ``config[key]``).
    """
    n_in = _config_int(config, "_n_features", None, minimum=1)
    n_out = _config_int(config, "_n_outputs", None, minimum=1)
    hidden = _config_int(config, "hidden_size", 64, minimum=1)
    n_layers = _config_int(config, "n_layers", 2, minimum=0)
    dropout = _config_float(config, "dropout", 0.0, minimum=0.0)
    if dropout >= 1.0:
        raise InvalidParameterError(f"config['dropout'] must be in [0, 1); got {dropout}.")
    activations: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
    activation = config.get("activation", "relu")
    if activation not in activations:
        raise InvalidParameterError(
            f"config['activation'] must be one of {sorted(activations)}; got {activation!r}"
            f"{did_you_mean(str(activation), activations)}."
        )
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), activations[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class TorchPredictor(nn.Module):
    """A trained model with its preprocessing: raw inputs in, logits or target units out.

    Built by `load_model`, in eval mode on the CPU. ``forward(X)`` takes raw inputs
    ``(n, *input_shape)`` (numpy, a tensor, or a ``torch.utils.data.Dataset`` whose items' x are
    stacked), standardizes array features with the training split's statistics as the trainable
    did (Dataset inputs are passed as they are), and returns the wrapped module's logits
    ``(n, n_classes)`` for classification, or the prediction ``(n,)`` in the original target units
    for regression (in float64, computed as the reported ``val_r2``).

    Attributes:
        model: the module built by the model factory, with the trained weights.
        task: "classification" or "regression".
        input_shape: one sample's shape, ``(n_features,)`` for arrays.
        n_features: the number of values per sample (the product of ``input_shape``).
        classes: the original labels ``(n_classes,)``; logit ``i`` is ``classes[i]``
            (``arange(n_classes)`` for Datasets; None for regression).
        y_mean, y_scale: the target's training mean and std (0 and 1 for classification and
            Dataset targets).
        config: the config the factory was called with (the trial's config plus ``_n_features``,
            ``_input_shape``, ``_n_outputs`` and ``_task``).
        epoch: the epoch the checkpoint was written after.
        standardized: whether inputs are standardized (arrays) or passed as they are (Datasets).
        eval_batch_size: rows per forward pass, as the trainable evaluated.
        x_mean, x_scale: buffers of ``input_shape``, the features' training mean and std (0 and 1
            for Dataset inputs).
    """

    x_mean: torch.Tensor
    x_scale: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        *,
        task: str,
        x_mean: torch.Tensor,
        x_scale: torch.Tensor,
        y_mean: float,
        y_scale: float,
        classes: np.ndarray | None,
        config: dict[str, Any],
        epoch: int,
        standardized: bool = True,
        eval_batch_size: int = TorchTrainingDefaults.eval_batch_size,
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.register_buffer("x_mean", x_mean.to(torch.float32))
        self.register_buffer("x_scale", x_scale.to(torch.float32))
        self.input_shape = tuple(int(s) for s in x_mean.shape)
        self.n_features = int(np.prod(self.input_shape))
        self.y_mean = y_mean
        self.y_scale = y_scale
        self.classes = classes
        self.config = config
        self.epoch = epoch
        self.standardized = standardized
        self.eval_batch_size = eval_batch_size

    def forward(self, X: Any) -> torch.Tensor:
        """Logits ``(n, n_classes)`` or predictions ``(n,)`` for raw inputs.

        Args:
            X: raw inputs ``(n, *input_shape)``: an array, a tensor or a torch Dataset.
        """
        return self._head(self.model(self.standardize(X)))

    def standardize(self, X: Any) -> torch.Tensor:
        """Raw inputs -> the tensor the model takes (standardized float32 for array features).

        Args:
            X: raw inputs ``(n, *input_shape)``: an array, a tensor or a torch Dataset.
        """
        if isinstance(X, TorchDataset):
            X = torch.stack([torch.as_tensor(X[i][0]) for i in range(len(X))])  # type: ignore[arg-type]
        device = self.x_mean.device
        if not self.standardized:
            tensor = as_model_input(X).to(device)
        elif isinstance(X, torch.Tensor):
            tensor = X.to(device=device, dtype=torch.float32)
        else:
            tensor = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
        if tuple(tensor.shape[1:]) != self.input_shape or tensor.ndim < 2:
            shape = ", ".join(str(s) for s in self.input_shape)
            raise InvalidParameterError(
                f"X must have shape (n_samples, {shape}) (the inputs the model was trained on); "
                f"got {tuple(tensor.shape)}."
            )
        if not self.standardized:
            return tensor
        return (tensor - self.x_mean) / self.x_scale  # (n, *input_shape)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)``: the class labels, or values in target units.

        Args:
            X: raw inputs ``(n, *input_shape)``: an array, a tensor or a torch Dataset.
        """
        out = self._outputs(X)
        if self.classes is None:
            return out.cpu().numpy()
        return self.classes[out.argmax(dim=1).cpu().numpy()]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` in the order of `classes` (classification).

        Args:
            X: raw inputs ``(n, *input_shape)``: an array, a tensor or a torch Dataset.
        """
        if self.classes is None:
            raise AttributeError(
                "predict_proba is for classification; this model is a regression model, "
                "use predict."
            )
        return torch.softmax(self._outputs(X).double(), dim=1).cpu().numpy()

    def _outputs(self, X: Any) -> torch.Tensor:
        # Batched as the trainable evaluated, so predictions match the reported metrics bitwise.
        batch = self.eval_batch_size
        with torch.no_grad():
            standardized = self.standardize(X)
            outputs = [
                self._head(self.model(standardized[start : start + batch]))
                for start in range(0, standardized.shape[0], batch)
            ]
        return torch.cat(outputs)

    def _head(self, out: torch.Tensor) -> torch.Tensor:
        """The model's output -> logits ``(n, n_classes)``, or predictions ``(n,)`` (float64)."""
        if self.task == "classification":
            return out
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.squeeze(1)  # (n, 1) -> (n,)
        # float64, in the order the trainable de-standardized its validation predictions.
        return out.double() * self.y_scale + self.y_mean


def load_model(checkpoint: tune.Checkpoint | str | os.PathLike[str]) -> TorchPredictor:
    """Rebuild the model of a PyTorch trainable's checkpoint, ready to predict on raw features.

    The factory is imported by its path, or unpickled when it was stored by value (a function
    defined in a script or a test): only load checkpoints you trust, as with ``torch.load``.

    Args:
        checkpoint: a ``ray.tune.Checkpoint`` (e.g. ``result.checkpoint``), or the path of a
            checkpoint directory.

    Returns:
        A `TorchPredictor` in eval mode on the CPU; ``predict(X)`` and, for classification,
        ``predict_proba(X)`` take and return numpy arrays.

    Raises:
        ValueError: the directory is not a checkpoint of this trainable, was written by a version
            without the preprocessing (version 1), or its model factory cannot be rebuilt here
            (the message names the factory and the fix).
        TypeError: `checkpoint` is neither a Checkpoint nor a path.
    """
    if isinstance(checkpoint, tune.Checkpoint):
        with checkpoint.as_directory() as directory:
            return _load_predictor(directory, label=str(checkpoint.path))
    if isinstance(checkpoint, (str, os.PathLike)):
        directory = os.fspath(checkpoint)
        if not os.path.isdir(directory):
            raise InvalidParameterError(
                f"checkpoint {directory!r} is not a directory (or does not exist)."
            )
        return _load_predictor(directory, label=directory)
    raise InvalidParameterError(
        "checkpoint must be a ray.tune.Checkpoint or the path of a checkpoint directory; "
        f"got {type(checkpoint).__name__}."
    )


def run_torch_trial(
    factory: ModelFactory,
    config: dict[str, Any],
    data: Dataset | TorchRunData,
    *,
    task: str,
    defaults: TorchTrainingDefaults,
) -> None:
    """Train one configuration, reporting and checkpointing every epoch (the trainable's body).

    Args:
        factory: ``config -> torch.nn.Module``.
        config: the trial's config.
        data: an array Dataset, or the ``TorchRunData`` of `plan_torch` (any data form, with the
            run's trainer options).
        task: "classification" or "regression", as the trainable was made for.
        defaults: the training keys' defaults.
    """
    if isinstance(data, TorchRunData):
        run = data
        if run.arrays is not None:
            _check_data(run.arrays, task)
        elif run.task != task:
            raise InvalidParameterError(
                f"the trainable was made for task={task!r} but the data is {run.task!r}."
            )
    else:
        _check_data(data, task)
        run = TorchRunData(
            "arrays", data, None, None, task, data.n_classes, TrainerOptions(), data.name
        )
    settings = resolve_settings(config, defaults)
    device = _pick_device()
    previous_threads = torch.get_num_threads()
    threads = _trial_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        _train(factory, config, run, settings, defaults, device)
    finally:
        # Runs on normal end, on errors, and when a scheduler stops the trial (Tune ends the
        # training thread with an exception at its next report). With reuse_actors=True the
        # process lives on for the next trial, so the cached blocks must go back to the device.
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
        torch.set_num_threads(previous_threads)


def _check_data(data: Dataset, task: str) -> None:
    if not isinstance(data, Dataset):
        raise InvalidParameterError(
            f"data must be a trainables.data.Dataset (build it with load_data) or plan_torch's "
            f"TorchPlan.data; got {type(data).__name__}."
        )
    if data.task != task:
        raise InvalidParameterError(
            f"the trainable was made for task={task!r} but the Dataset {data.name!r} is "
            f"{data.task!r}; use make_torch_trainable(..., task={data.task!r}) or load_data(..., "
            f"task={task!r})."
        )
    check_finite(data)


def resolve_settings(config: dict[str, Any], defaults: TorchTrainingDefaults) -> TrainSettings:
    """Read the training keys from `config`, falling back to `defaults`, and validate them.

    Args:
        config: a trial's config.
        defaults: the values of keys the config does not set.

    Raises:
        InvalidParameterError: a bad value, naming ``config[key]``.
    """
    optimizer_name = config.get("optimizer", defaults.optimizer)
    extra: dict[str, Any] = {}
    if isinstance(optimizer_name, Mapping):
        # A conditional choice between optimizers, each with its own settings:
        # {"name": "sgd", "momentum": 0.9} or {"name": "adam", "beta1": 0.85}.
        if "name" not in optimizer_name:
            raise InvalidParameterError(
                "config['optimizer'] is a dict, so it needs a 'name' key, e.g. "
                f"{{'name': 'sgd', 'momentum': 0.9}}; got keys {sorted(optimizer_name)}."
            )
        extra = {k: v for k, v in optimizer_name.items() if k != "name"}
        optimizer_name = optimizer_name["name"]
    optimizer_class(optimizer_name)  # raises, naming config['optimizer'], for an unknown name
    optimizer = str(optimizer_name).lower()
    extra_options = optimizer_options(optimizer, extra)
    lr = _config_float(config, "lr", defaults.lr, minimum=0.0)
    if lr == 0.0:
        raise InvalidParameterError("config['lr'] must be > 0; got 0.")
    momentum = _config_float(config, "momentum", defaults.momentum, minimum=0.0)
    if optimizer == "sgd":
        recipe_momentum: float | None = momentum
    else:  # rmsprop's own default (0) unless the config says otherwise
        recipe_momentum = momentum if "momentum" in config else None
    schedule = config.get("lr_schedule", defaults.lr_schedule)
    if schedule not in SCHEDULES:
        raise InvalidParameterError(
            f"config['lr_schedule'] must be one of {list(SCHEDULES)}; got {schedule!r}"
            f"{did_you_mean(str(schedule), SCHEDULES)}."
        )
    gamma = _config_float(config, "gamma", defaults.gamma, minimum=0.0)
    if not 0.0 < gamma <= 1.0:
        raise InvalidParameterError(f"config['gamma'] must be in (0, 1]; got {gamma!r}.")
    freeze_blocks = config.get("freeze_blocks", "all")
    if freeze_blocks is not None and freeze_blocks != "all":
        freeze_blocks = _config_int(config, "freeze_blocks", None, minimum=0)
    layer_decay = _config_float(config, "layer_decay", defaults.layer_decay, minimum=0.0)
    head_lr_mult = _config_float(config, "head_lr_mult", defaults.head_lr_mult, minimum=0.0)
    for key, value in (("layer_decay", layer_decay), ("head_lr_mult", head_lr_mult)):
        if value == 0.0:
            raise InvalidParameterError(f"config[{key!r}] must be > 0; got 0.")
    epochs = _config_int(config, "epochs", defaults.epochs, minimum=1)
    weight_decay = _config_float(config, "weight_decay", defaults.weight_decay, minimum=0.0)
    adaptation = check_lr_adaptation(
        config.get("lr_adaptation", defaults.lr_adaptation), optimizer
    )
    beta = check_beta(
        config.get("hypergradient_beta", defaults.hypergradient_beta),
        name="config['hypergradient_beta']",
    )
    recipe = Recipe(
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        momentum=recipe_momentum,
        nesterov=bool(_config_bool(config, "nesterov", False)),
        epochs=epochs,
        lr_schedule=schedule,
        step_size=_config_int(config, "step_size", defaults.step_size, minimum=1),
        gamma=gamma,
        warmup_epochs=_config_int(config, "warmup_epochs", defaults.warmup_epochs, minimum=0),
        freeze_epochs=_config_int(config, "freeze_epochs", defaults.freeze_epochs, minimum=0),
        freeze_blocks=None if freeze_blocks in (None, "all") else int(freeze_blocks),
        layer_decay=layer_decay,
        head_lr_mult=head_lr_mult,
        optimizer_options=extra_options,
        lr_adaptation=adaptation,
        hypergradient_beta=beta,
    )
    num_workers = None
    if "num_workers" in config:
        num_workers = _config_int(config, "num_workers", None, minimum=0)
    pin_memory = _config_bool(config, "pin_memory", None) if "pin_memory" in config else None
    return TrainSettings(
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        batch_size=_config_int(config, "batch_size", defaults.batch_size, minimum=1),
        momentum=momentum,
        seed=_config_int(config, "seed", defaults.seed, minimum=0),
        recipe=recipe,
        patience=_config_int(config, "patience", defaults.patience, minimum=0),
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def resolve_factory(model_factory: ModelFactory | str) -> ModelFactory:
    """Return the factory itself, or import it from "package.module:name"."""
    if isinstance(model_factory, str):
        module_name, sep, attr = model_factory.partition(":")
        if not sep or not module_name or not attr:
            raise InvalidParameterError(
                f"model_factory path must look like 'package.module:name'; got {model_factory!r}."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise InvalidParameterError(
                f"cannot import module {module_name!r} of model_factory {model_factory!r}: {err}"
            ) from err
        if not hasattr(module, attr):
            raise InvalidParameterError(
                f"module {module_name!r} has no attribute {attr!r} (model_factory)."
            )
        model_factory = getattr(module, attr)
    if not callable(model_factory):
        raise InvalidParameterError(
            f"model_factory must be a callable config -> torch.nn.Module; got {model_factory!r}."
        )
    return model_factory  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- training

_Batches = ArrayBatches | DatasetBatches


@dataclass
class _EarlyStop:
    """Patience state, checkpointed: the best monitored value and epochs since it."""

    best: float | None = None
    bad_epochs: int = 0

    def update(self, value: float, mode: str) -> None:
        better = self.best is None or (value < self.best if mode == "min" else value > self.best)
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1


def _train(
    factory: ModelFactory,
    config: dict[str, Any],
    run: TorchRunData,
    settings: TrainSettings,
    defaults: TorchTrainingDefaults,
    device: torch.device,
) -> None:
    options = run.options
    batches, n_classes = _trial_batches(run, config, settings, device)
    task = run.task
    n_outputs = n_classes if task == "classification" else 1
    assert n_outputs is not None  # classification data always knows its classes here
    factory_config = {
        **config,
        "_n_features": int(np.prod(batches.input_shape)),
        "_input_shape": batches.input_shape,
        "_n_outputs": n_outputs,
        "_task": task,
    }
    torch.manual_seed(settings.seed)
    model = factory(factory_config)
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"model_factory must return a torch.nn.Module; it returned {type(model).__name__}."
        )
    model = model.to(device)
    checkpoint = tune.get_checkpoint()
    init_summary = None
    if checkpoint is None and options.init_state is not None:
        init_summary = load_initial_weights(model, options.init_state, options.init_label)
    layers = model_layers(model)
    optimizer = make_optimizer(layers, settings.recipe)
    amp = _amp_enabled(options, device)
    scaler = torch.amp.GradScaler("cuda") if amp else None
    loss_fn = make_loss(options, task, _class_weights(options, batches, n_classes, device))
    eval_batch = defaults.eval_batch_size if run.kind == "arrays" else settings.batch_size
    export = _export_record(factory, factory_config, batches, task, n_classes, eval_batch)
    stopper = _EarlyStop()
    first_epoch = 1
    if checkpoint is not None:
        first_epoch = _restore(checkpoint, model, optimizer, scaler, stopper, settings, device) + 1
    _check_output_shape(model, batches, settings.batch_size, task, n_outputs)
    placement = _placement()
    for epoch in range(first_epoch, settings.epochs + 1):
        lr = set_epoch_lr(optimizer, settings.recipe, epoch)
        apply_freeze(model, layers, frozen_depths(settings.recipe, layers, epoch))
        train_loss = _train_epoch(
            model, optimizer, scaler, loss_fn, batches, settings, epoch, task
        )
        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, **placement}
        metrics.update(_evaluate(model, loss_fn, batches, task, eval_batch, options, amp))
        if isinstance(optimizer, HypergradientOptimizer):
            metrics.update(optimizer.lr_stats(reset=True))
        else:
            metrics.update(lr=lr, lr_min=lr, lr_mean=lr, lr_max=lr)
        if not (math.isfinite(train_loss) and math.isfinite(metrics["val_loss"])):
            logger.warning("trial diverged at epoch %d (non-finite loss); ending it.", epoch)
            val_keys = [k for k in metrics if k.startswith("val_")]
            metrics.update({k: math.nan for k in val_keys}, stop_reason="diverged")
            tune.report(metrics)  # no checkpoint: the trial's last one stays finite
            return
        stopper.update(float(metrics[options.monitor]), options.monitor_mode)
        stop = settings.patience > 0 and stopper.bad_epochs >= settings.patience
        if stop:
            metrics["stop_reason"] = "patience"
        with tempfile.TemporaryDirectory() as tmp:
            _save(
                tmp,
                model,
                optimizer,
                scaler,
                stopper,
                settings,
                epoch,
                task,
                device,
                export,
                init_summary,
            )
            # report() persists the directory to the run's storage before returning.
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
        if stop:
            return


def _trial_batches(
    run: TorchRunData, config: dict[str, Any], settings: TrainSettings, device: torch.device
) -> tuple[_Batches, int | None]:
    """This trial's batches and number of classes (None for regression)."""
    if run.kind == "arrays":
        assert run.arrays is not None
        return ArrayBatches(run.arrays, device), run.arrays.n_classes
    if run.kind == "factory":
        assert run.factory is not None
        train, val = check_dataset_factory_result(run.factory(dict(config)))
        options = run.options
        with_task = TrainerOptions(task=run.task, n_classes=options.n_classes)
        _, n_classes = inspect_datasets(
            train, val, with_task, where="the dataset factory's return value"
        )
    else:
        assert run.datasets is not None
        (train, val), n_classes = run.datasets, run.n_classes
    options = run.options
    num_workers = settings.num_workers if settings.num_workers is not None else options.num_workers
    pin = settings.pin_memory if settings.pin_memory is not None else options.pin_memory
    batches = DatasetBatches(
        train,
        val,
        task=run.task,
        n_classes=n_classes,
        device=device,
        num_workers=num_workers,
        pin_memory=device.type == "cuda" if pin is None else pin,
        seed=settings.seed,
    )
    return batches, n_classes


def _class_weights(
    options: TrainerOptions, batches: _Batches, n_classes: int | None, device: torch.device
) -> torch.Tensor | None:
    weights = options.class_weights
    if weights is None or n_classes is None:
        return None
    if weights == "balanced":
        values = balanced_weights(batches.train_labels(), n_classes)  # (n_classes,)
    else:
        values = np.asarray(weights, dtype=np.float64)
        if values.size != n_classes:
            raise InvalidParameterError(
                f"trainer_options['class_weights'] has {values.size} weights but the data has "
                f"{n_classes} classes; give one weight per class."
            )
    return torch.as_tensor(values, dtype=torch.float32, device=device)


_warned_amp_cpu = False


def _amp_enabled(options: TrainerOptions, device: torch.device) -> bool:
    """Mixed precision on CUDA trials; on the CPU ``amp`` is ignored with one warning."""
    global _warned_amp_cpu
    if not options.amp:
        return False
    if device.type == "cuda":
        return True
    if not _warned_amp_cpu:
        _warned_amp_cpu = True
        message = (
            "trainer_options['amp'] applies to trials on a GPU; this trial trains on the CPU, in "
            "float32 as without amp. Give trials GPUs (resources_per_trial={'gpu': 1}) to use it."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        logger.warning(message)
    return False


def _autocast(amp: bool) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast("cuda", dtype=torch.float16) if amp else contextlib.nullcontext()


def _check_output_shape(
    model: nn.Module, batches: _Batches, batch_size: int, task: str, n_outputs: int
) -> None:
    """Run one validation batch in eval mode (no RNG draws, no updates) and check its shape."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        x_batch, _ = next(iter(batches.val_batches(batch_size)))
        out = model(x_batch)
    model.train(was_training)
    n = x_batch.shape[0]
    shape = tuple(getattr(out, "shape", ()))
    if task == "classification":
        ok = shape == (n, n_outputs)
        expected = f"({n}, {n_outputs}) logits for {n_outputs} classes"
    else:
        ok = shape in ((n,), (n, 1))
        expected = f"({n},) or ({n}, 1)"
    if not ok:
        raise InvalidParameterError(
            f"the model from model_factory returned shape {shape} for a batch of {n} inputs of "
            f"shape {batches.input_shape}; expected {expected}. Size the last layer with "
            "config['_n_outputs'] and the first with config['_n_features'] (or "
            "config['_input_shape'])."
        )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: _Batches,
    settings: TrainSettings,
    epoch: int,
    task: str,
) -> float:
    # Seeded by (seed, epoch) rather than a running generator, so a resumed trial shuffles the
    # same way without carrying generator state.
    order = np.random.default_rng([settings.seed, epoch]).permutation(batches.n_train)  # (n,)
    total, count = 0.0, 0
    for x, y in batches.train_batches(order, settings.batch_size, epoch):
        optimizer.zero_grad(set_to_none=True)
        with _autocast(scaler is not None):
            out = _fit_output(model(x), task)
            loss = loss_fn(out, y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += float(loss.detach()) * y.shape[0]
        count += int(y.shape[0])
    return total / count


def _evaluate(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: _Batches,
    task: str,
    eval_batch_size: int,
    options: TrainerOptions,
    amp: bool,
) -> dict[str, float]:
    model.eval()
    outputs, targets = [], []
    with torch.no_grad():
        for x, y in batches.val_batches(eval_batch_size):
            with _autocast(amp):
                out = model(x)
            outputs.append(_fit_output(out.float(), task))
            targets.append(y)
        out = torch.cat(outputs)  # (n_val, n_classes) | (n_val,)
        y = torch.cat(targets)  # (n_val,)
        val_loss = float(loss_fn(out, y))
    y_true = batches.true_values(y)  # (n_val,) original labels or target units
    metrics: dict[str, float] = {"val_loss": val_loss}
    if task == "classification":
        metrics["val_accuracy"] = float((out.argmax(dim=1) == y).double().mean())
        score = torch.softmax(out.double(), dim=1).cpu().numpy() if options.metrics else None
    else:
        score = out.double().cpu().numpy() * batches.y_scale + batches.y_mean  # (n_val,)
        y_true = np.asarray(y_true, dtype=np.float64)
        total = float(((y_true - y_true.mean()) ** 2).sum())
        # r2_score's convention for a constant target: 1 for a perfect fit, else 0.
        residual = float(((y_true - score) ** 2).sum())
        metrics["val_r2"] = 1.0 - residual / total if total > 0 else float(residual == 0.0)
    for name, fn in options.metrics.items():
        assert score is not None
        metrics[f"val_{name}"] = compute_metric(name, fn, y_true, score, batches.classes)
    return metrics


def _fit_output(out: torch.Tensor, task: str) -> torch.Tensor:
    if task == "regression" and out.ndim == 2 and out.shape[1] == 1:
        return out.squeeze(1)  # (n, 1) -> (n,)
    return out


# ---------------------------------------------------------------------------- checkpoint, device


def _save(
    directory: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    stopper: _EarlyStop,
    settings: TrainSettings,
    epoch: int,
    task: str,
    device: torch.device,
    export: _ExportRecord,
    init_summary: dict[str, Any] | None,
) -> None:
    state: dict[str, Any] = {
        "version": CHECKPOINT_VERSION,
        "epoch": epoch,
        "seed": settings.seed,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "preprocessing": export.preprocessing,
        "early_stop": {"best": stopper.best, "bad_epochs": stopper.bad_epochs},
    }
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state()
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))
    with open(os.path.join(directory, MODEL_FILE), "wb") as f:
        f.write(export.model_spec)
    # A readable summary next to the tensors, for people browsing the run directory.
    with open(os.path.join(directory, "meta.json"), "w") as f:
        summary: dict[str, Any] = {"version": CHECKPOINT_VERSION, "epoch": epoch}
        summary["seed"] = settings.seed
        if init_summary is not None:
            summary["init_checkpoint"] = init_summary
        json.dump({**summary, "task": task}, f)


@dataclass(frozen=True)
class _ExportRecord:
    """What a checkpoint carries besides the training state, computed once per trial."""

    preprocessing: dict[str, Any]  # tensors and plain values: loads with weights_only=True
    model_spec: bytes  # MODEL_FILE's content


def _export_record(
    factory: ModelFactory,
    factory_config: dict[str, Any],
    batches: _Batches,
    task: str,
    n_classes: int | None,
    eval_batch_size: int,
) -> _ExportRecord:
    classes = batches.classes
    preprocessing = {
        "task": task,
        "n_features": int(np.prod(batches.input_shape)),
        "input_shape": list(batches.input_shape),
        "n_classes": n_classes,
        "eval_batch_size": eval_batch_size,
        # Python scalars and the dtype string, so the labels load without unpickling objects.
        "classes": None if classes is None else classes.tolist(),
        "classes_dtype": None if classes is None else classes.dtype.str,
        **batches.preprocessing(),
    }
    spec: dict[str, Any] = {"version": CHECKPOINT_VERSION, **_factory_reference(factory)}
    try:
        spec["config"] = cloudpickle.dumps(factory_config)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        spec["unavailable"] = f"its config cannot be pickled ({type(err).__name__}: {err})"
    if "unavailable" in spec:
        logger.warning(
            "load_model will not be able to rebuild this trial's model: %s.", spec["unavailable"]
        )
    return _ExportRecord(preprocessing=preprocessing, model_spec=cloudpickle.dumps(spec))


def _factory_reference(factory: ModelFactory) -> dict[str, Any]:
    """``{"import_path": "pkg.mod:name"}`` when a fresh process can import the factory, else
    ``{"pickled": bytes}`` (by value), else ``{"unavailable": reason}``."""
    module_name = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    # Only modules already loaded here: a function Ray shipped by value (defined in __main__, a
    # test, or a closure) has a module name that a fresh process may not resolve, or resolve to
    # something else.
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if module is not None and module_name != "__main__" and isinstance(qualname, str):
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is factory:
            return {"import_path": f"{module_name}:{qualname}"}
    try:
        return {"pickled": cloudpickle.dumps(factory)}
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        return {"unavailable": f"the factory cannot be pickled ({type(err).__name__}: {err})"}


def _load_predictor(directory: str, *, label: str) -> TorchPredictor:
    state_path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(state_path):
        raise InvalidParameterError(
            f"checkpoint {label} has no {CHECKPOINT_FILE}; it was not written by the PyTorch "
            "trainable (trainables.torch_trainable)."
        )
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    version = state.get("version")
    if version != CHECKPOINT_VERSION or "preprocessing" not in state:
        raise InvalidParameterError(
            f"checkpoint {label} has version {version!r}; load_model needs version "
            f"{CHECKPOINT_VERSION}, which stores the feature standardization next to the weights "
            "(a version 1 checkpoint holds the weights only, and they predict wrongly on raw "
            "features). Train again with this version of trainables."
        )
    spec_path = os.path.join(directory, MODEL_FILE)
    if not os.path.exists(spec_path):
        raise InvalidParameterError(
            f"checkpoint {label} has no {MODEL_FILE} (the model factory and config)."
        )
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)  # plain types and bytes; the factory and config are nested pickles
    factory = _rebuild_factory(spec, label)
    config = _unpickle(spec["config"], what="the factory config", label=label)
    pre = state["preprocessing"]
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; leave the RNG be
        model = factory(config)
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"the model factory of checkpoint {label} returned {type(model).__name__}, "
            "not a torch.nn.Module."
        )
    model.load_state_dict(state["model"])
    classes = None
    if pre["classes"] is not None:
        classes = np.array(pre["classes"], dtype=np.dtype(pre["classes_dtype"]))
    standardized = bool(pre.get("standardize", True))
    if standardized:
        x_mean, x_scale = pre["x_mean"], pre["x_scale"]
    else:  # Dataset inputs: identity buffers of one sample's shape
        shape = tuple(pre["input_shape"])
        x_mean, x_scale = torch.zeros(shape), torch.ones(shape)
    predictor = TorchPredictor(
        model,
        task=pre["task"],
        x_mean=x_mean,
        x_scale=x_scale,
        y_mean=float(pre["y_mean"]),
        y_scale=float(pre["y_scale"]),
        classes=classes,
        config=config,
        epoch=int(state["epoch"]),
        standardized=standardized,
        eval_batch_size=int(pre.get("eval_batch_size", TorchTrainingDefaults.eval_batch_size)),
    )
    return predictor.to("cpu").eval()


def _rebuild_factory(spec: dict[str, Any], label: str) -> ModelFactory:
    if "unavailable" in spec:
        raise InvalidParameterError(
            f"the model of checkpoint {label} cannot be rebuilt: {spec['unavailable']} when it "
            "was trained. Define the factory at the top level of an importable module and train "
            "again."
        )
    if "import_path" in spec:
        path = spec["import_path"]
        try:
            return resolve_factory(path)
        except ValueError as err:
            raise InvalidParameterError(
                f"the model factory {path!r} of checkpoint {label} cannot be imported in this "
                f"process ({err}). Make its module importable here (install its package or add "
                "its directory to PYTHONPATH)."
            ) from err
    return _unpickle(spec["pickled"], what="the model factory (stored by value)", label=label)


def _unpickle(payload: bytes, *, what: str, label: str) -> Any:
    try:
        return cloudpickle.loads(payload)
    except (ImportError, AttributeError, pickle.UnpicklingError) as err:
        raise InvalidParameterError(
            f"{what} of checkpoint {label} cannot be unpickled in this process "
            f"({type(err).__name__}: {err}); it refers to code that is not importable here. "
            "Make that module importable (PYTHONPATH), or define the factory at the top level "
            "of an importable module and train again."
        ) from err


def _restore(
    checkpoint: tune.Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    stopper: _EarlyStop,
    settings: TrainSettings,
    device: torch.device,
) -> int:
    """Load a checkpoint written by `_save`; returns the last completed epoch."""
    with checkpoint.as_directory() as directory:
        path = os.path.join(directory, CHECKPOINT_FILE)
        if not os.path.exists(path):
            raise InvalidParameterError(
                f"checkpoint {checkpoint.path} has no {CHECKPOINT_FILE}; it was not written by "
                "the PyTorch trainable."
            )
        state = torch.load(path, map_location=device, weights_only=True)
    if state.get("version") not in RESUMABLE_VERSIONS:
        raise InvalidParameterError(
            f"checkpoint version {state.get('version')!r} is not one of {RESUMABLE_VERSIONS}; "
            "it was written by another version of trainables."
        )
    if state["seed"] != settings.seed:
        warnings.warn(
            f"resuming a checkpoint trained with seed {state['seed']} under seed {settings.seed}; "
            "the rest of the run uses the new seed for shuffling.",
            stacklevel=2,
        )
    model.load_state_dict(state["model"])
    # The config's optimizer hyperparameters, the checkpoint's optimizer state (PBT: a new config
    # restarts from a donor's checkpoint).
    load_optimizer_state(optimizer, state["optimizer"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    early = state.get("early_stop") or {}
    stopper.best, stopper.bad_epochs = early.get("best"), int(early.get("bad_epochs", 0))
    torch.set_rng_state(state["torch_rng"].cpu())
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    return int(state["epoch"])


_warned_no_cuda = False


def _pick_device() -> torch.device:
    """``cuda`` when the trial holds GPUs and this process sees CUDA, else ``cpu``."""
    global _warned_no_cuda
    gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
    if not gpu_ids:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if not _warned_no_cuda:
        _warned_no_cuda = True
        message = (
            f"this trial was assigned GPU(s) {gpu_ids} but PyTorch {torch.__version__} sees no "
            "CUDA device (a CPU-only build, or missing drivers); training on the CPU instead. "
            "Install a CUDA build of torch on the GPU nodes, or request gpu=0."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        logger.warning(message)
    return torch.device("cpu")


def _placement() -> dict[str, Any]:
    """Where the trial runs: ``node_id`` (Ray node, hex) and ``gpu_ids`` (comma-separated)."""
    if not ray.is_initialized():
        return {"node_id": "", "gpu_ids": ""}
    # A string, not a list: a result's values stay flat scalars in results tables.
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    return {"node_id": ray.get_runtime_context().get_node_id(), "gpu_ids": gpu_ids}


def _trial_threads() -> int | None:
    """CPUs given to the trial's head bundle, as a thread count; None outside a Tune trial."""
    resources = tune.get_context().get_trial_resources()
    if resources is None:
        return None
    cpus = resources.head_cpus if not resources.head_bundle_is_empty else 0.0
    return max(1, math.floor(cpus))


# ----------------------------------------------------------------------------------- config


def _config_int(config: dict[str, Any], key: str, default: int | None, *, minimum: int) -> int:
    value = config.get(key, default)
    if value is None:
        raise InvalidParameterError(
            f"config[{key!r}] is required; make_torch_trainable injects it, or pass it yourself."
        )
    # Searchers may hand back floats such as 64.0 for integer domains; accept whole floats.
    if not is_real(value):
        raise InvalidParameterError(f"config[{key!r}] must be an integer; got {value!r}.")
    if not float(value).is_integer():
        raise InvalidParameterError(f"config[{key!r}] must be a whole number; got {value!r}.")
    if value < minimum:
        raise InvalidParameterError(f"config[{key!r}] must be >= {minimum}; got {value!r}.")
    return int(value)


def _config_float(config: dict[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    if not is_real(value):
        raise InvalidParameterError(f"config[{key!r}] must be a number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise InvalidParameterError(
            f"config[{key!r}] must be a finite number >= {minimum}; got {value!r}."
        )
    return value


def _config_bool(config: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = config.get(key, default)
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise InvalidParameterError(f"config[{key!r}] must be true or false; got {value!r}.")
