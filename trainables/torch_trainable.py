"""Ray Tune function trainable for PyTorch models on an in-memory `Dataset`, checkpointing epochs.

`make_torch_trainable(model_factory, task=...)` returns ``fn(config, data)``. A trial:

1. resolves the training keys of ``config`` (defaults from `make_torch_trainable`):
   ``lr`` (1e-3), ``optimizer`` ("adam" | "sgd" | "adamw"), ``weight_decay`` (0),
   ``batch_size`` (64), ``epochs`` (the make-time ``epochs``), ``momentum`` (0.9, sgd only),
   ``seed`` (0);
2. standardizes features with training-split mean and std (constant columns keep scale 1) and,
   for regression, the target too (see "Losses");
3. builds the model with ``model_factory(factory_config)``, where ``factory_config`` is the whole
   config plus ``_n_features`` (input width), ``_n_outputs`` (number of classes, or 1 for
   regression) and ``_task``; the model maps float32 ``(n, n_features)`` to logits
   ``(n, n_classes)`` or to ``(n,)``/``(n, 1)`` for regression (checked on the first batch);
4. trains with cross-entropy (classification) or MSE (regression), reporting after every epoch
   ``epoch`` (1-based), ``train_loss``, ``val_loss`` and ``val_accuracy`` (classification) or
   ``val_r2`` (regression) with a checkpoint, and resumes from ``tune.get_checkpoint()``.

Losses: ``train_loss`` is the sample-weighted mean loss over the epoch's batches (training mode);
``val_loss`` is the mean loss on the validation split in eval mode. For regression both are MSE on
the standardized target (MSE / Var(y_train)), so they are comparable across datasets; ``val_r2``
is ``sklearn.metrics.r2_score``'s value on the original scale.

Divergence: a non-finite ``train_loss`` or ``val_loss`` ends the trial. That epoch is reported
with its validation metrics as NaN (the weights are meaningless: an argmax over NaN logits would
score the share of class 0), ``stop_reason="diverged"`` and no checkpoint, so the trial's
checkpoint stays its last finite epoch.

Data: NaN/inf in X or y is refused with `trainables.data.check_finite` (naming the split and the
column) by `make_torch_trainable` when given the data, and again in every trial.

Export: every checkpoint holds, next to the weights, the preprocessing (feature mean and scale,
target mean and scale for regression, the task, the classes) and what rebuilds the module (the
factory config and the factory, by import path when importable, else by value with
``ray.cloudpickle``). `load_model(checkpoint)` returns a `TorchPredictor`: raw features in,
logits (classification) or predictions in target units (regression) out, reproducing the
reported validation metrics exactly on the validation split.

Reproducibility: the model is built right after ``torch.manual_seed(seed)``; epoch ``e`` shuffles
with ``np.random.default_rng([seed, e])``; the checkpoint stores the model, optimizer, epoch, seed
and torch RNG states, so a resumed trial continues exactly where it stopped (bitwise on CPU).

Resources: ``torch.set_num_threads(max(1, floor(cpu)))`` with the trial's CPUs
(``tune.get_context().get_trial_resources()``, head bundle); a trial given GPUs
(``ray.get_gpu_ids()``) trains on ``cuda`` (Ray's ``CUDA_VISIBLE_DEVICES`` makes the first assigned
GPU ``cuda:0``); a GPU trial in a process without CUDA warns once and trains on the CPU. The CUDA
cache is emptied when the trial ends or is stopped. Every report also carries ``node_id`` (the Ray
node) and ``gpu_ids`` (the assigned GPU ids, comma-separated; "" without GPUs).
"""

from __future__ import annotations

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray import cloudpickle, tune
from torch import nn

from trainables.data import TASKS, Dataset, check_finite

logger = logging.getLogger(__name__)

ModelFactory = Callable[[dict[str, Any]], nn.Module]

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "adamw")
CHECKPOINT_FILE = "state.pt"
# Written with ray.cloudpickle: the factory and its config, which may hold any Python object.
MODEL_FILE = "model.pkl"
# 2: the checkpoint carries the preprocessing and MODEL_FILE (version 1 had weights only, and
# cannot predict on raw features). Resuming training accepts both.
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
    "seed",
)


@dataclass(frozen=True)
class TorchTrainingDefaults:
    """Defaults of the training keys, used when a trial's config does not set them.

    Attributes:
        epochs: passes over the training split per trial (ASHA's ``max_t`` in epochs).
        lr: learning rate.
        optimizer: "adam", "sgd" or "adamw".
        weight_decay: L2 penalty (decoupled for adamw).
        batch_size: training mini-batch size (a batch larger than the split is the whole split).
        momentum: SGD momentum; ignored by adam/adamw.
        seed: seeds model initialization, shuffling and dropout of every trial.
        eval_batch_size: rows per forward pass when evaluating (memory only, not results).
    """

    epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    batch_size: int = 64
    momentum: float = 0.9
    seed: int = 0
    eval_batch_size: int = 4096


@dataclass(frozen=True)
class TrainSettings:
    """The training keys of one trial, resolved and validated."""

    epochs: int
    lr: float
    optimizer: str
    weight_decay: float
    batch_size: int
    momentum: float
    seed: int


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
) -> Callable[[dict[str, Any], Dataset], None]:
    """Build a Ray Tune function trainable ``fn(config, data)`` training `model_factory`'s model.

    Args:
        model_factory: ``config -> torch.nn.Module``, or its import path "package.module:name"
            (e.g. "trainables.torch_trainable:mlp").
        task: "classification" or "regression"; must match the Dataset's task.
        data: the run's Dataset, checked now (task, NaN/inf) so that a bad dataset fails while
            the run is planned, before any trial; trials still receive it through
            ``tune.with_parameters``. None checks it in each trial only.
        epochs, lr, optimizer, weight_decay, batch_size, momentum, seed: defaults of the training
            keys for trials whose config does not set them (see `TorchTrainingDefaults`).

    Returns:
        ``fn(config, data)``: pass it to ``tune.with_parameters(fn, data=dataset)``.

    Raises:
        ValueError / TypeError: a bad task, factory or default, or data with NaN/inf or of the
            other task, naming the argument (the split and column for NaN/inf) and the fix.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}; got {task!r}.")
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

    def torch_trainable(config: dict[str, Any], data: Dataset) -> None:
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
        data: the object every trial receives as ``data``, put in Ray's object store once.
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
    options: Any = None,
) -> TorchPlan:
    """Check ``data`` and ``options`` and build the trainable for a PyTorch model factory.

    Args:
        model_factory: ``config -> torch.nn.Module`` or its import path.
        data: any form ``trainables.data.load_data`` accepts.
        epochs: epochs per trial when run to the end (a config's ``epochs`` overrides).
        seed: seeds the hold-out split.
        options: ``tune_model``'s ``trainer_options`` (None: the defaults).

    Raises:
        ValueError / TypeError: bad data or options, naming the argument and the fix.
    """
    from trainables.data import load_data

    if options:
        raise ValueError(f"trainer_options: unknown options {sorted(dict(options))}")
    dataset = load_data(data, seed=seed)
    fn = make_torch_trainable(model_factory, task=dataset.task, epochs=epochs, data=dataset)
    if dataset.task == "classification":
        keys = ["epoch", "train_loss", "val_loss", "val_accuracy"]
        default_metric, default_mode = "val_accuracy", "max"
    else:
        keys = ["epoch", "train_loss", "val_loss", "val_r2"]
        default_metric, default_mode = "val_loss", "min"
    return TorchPlan(
        fn=fn,
        data=dataset,
        task=dataset.task,
        keys=keys,
        default_metric=default_metric,
        default_mode=default_mode,
        data_name=dataset.name,
    )


def mlp(config: dict[str, Any]) -> nn.Module:
    """A multi-layer perceptron factory for `make_torch_trainable`.

    Config keys: ``_n_features`` and ``_n_outputs`` (injected by the trainable; pass them yourself
    when calling `mlp` directly), ``hidden_size`` (64), ``n_layers`` (2 hidden layers; 0 gives a
    linear model), ``dropout`` (0.0, after each hidden activation) and ``activation``
    ("relu" | "tanh" | "gelu", default "relu").
    """
    n_in = _config_int(config, "_n_features", None, minimum=1)
    n_out = _config_int(config, "_n_outputs", None, minimum=1)
    hidden = _config_int(config, "hidden_size", 64, minimum=1)
    n_layers = _config_int(config, "n_layers", 2, minimum=0)
    dropout = _config_float(config, "dropout", 0.0, minimum=0.0)
    if dropout >= 1.0:
        raise ValueError(f"config['dropout'] must be in [0, 1); got {dropout}.")
    activations: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
    activation = config.get("activation", "relu")
    if activation not in activations:
        raise ValueError(
            f"config['activation'] must be one of {sorted(activations)}; got {activation!r}."
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
    """A trained model with its preprocessing: raw features in, logits or target units out.

    Built by `load_model`, in eval mode on the CPU. ``forward(X)`` takes raw features
    ``(n, n_features)`` (numpy or tensor; converted to float32 on the module's device),
    standardizes them with the training split's statistics as the trainable did, and returns the
    wrapped module's logits ``(n, n_classes)`` for classification, or the prediction ``(n,)`` in
    the original target units for regression (in float64, computed as the reported ``val_r2``).

    Attributes:
        model: the module built by the model factory, with the trained weights.
        task: "classification" or "regression".
        n_features: input width.
        classes: the original labels ``(n_classes,)``; logit ``i`` is ``classes[i]``
            (None for regression).
        y_mean, y_scale: the target's training mean and std (0 and 1 for classification).
        config: the config the factory was called with (the trial's config plus ``_n_features``,
            ``_n_outputs`` and ``_task``).
        epoch: the epoch the checkpoint was written after.
        x_mean, x_scale: buffers ``(n_features,)``, the features' training mean and std.
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
    ) -> None:
        super().__init__()
        self.model = model
        self.task = task
        self.register_buffer("x_mean", x_mean.to(torch.float32))
        self.register_buffer("x_scale", x_scale.to(torch.float32))
        self.n_features = int(x_mean.shape[0])
        self.y_mean = y_mean
        self.y_scale = y_scale
        self.classes = classes
        self.config = config
        self.epoch = epoch

    def forward(self, X: Any) -> torch.Tensor:
        return self._head(self.model(self.standardize(X)))

    def standardize(self, X: Any) -> torch.Tensor:
        """Raw features ``(n, n_features)`` -> the standardized float32 tensor the model takes."""
        if isinstance(X, torch.Tensor):
            tensor = X.to(device=self.x_mean.device, dtype=torch.float32)
        else:
            tensor = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.x_mean.device)
        if tensor.ndim != 2 or tensor.shape[1] != self.n_features:
            raise ValueError(
                f"X must have shape (n_samples, {self.n_features}) (the features the model was "
                f"trained on); got {tuple(tensor.shape)}."
            )
        return (tensor - self.x_mean) / self.x_scale  # (n, n_features)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)``: the original class labels, or values in target units."""
        out = self._outputs(X)
        if self.classes is None:
            return out.cpu().numpy()
        return self.classes[out.argmax(dim=1).cpu().numpy()]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` in the order of `classes` (classification)."""
        if self.classes is None:
            raise AttributeError(
                "predict_proba is for classification; this model is a regression model, "
                "use predict."
            )
        return torch.softmax(self._outputs(X).double(), dim=1).cpu().numpy()

    def _outputs(self, X: Any) -> torch.Tensor:
        # Batched as the trainable evaluated, so predictions match the reported metrics bitwise.
        batch = TorchTrainingDefaults.eval_batch_size
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
            raise ValueError(f"checkpoint {directory!r} is not a directory (or does not exist).")
        return _load_predictor(directory, label=directory)
    raise TypeError(
        "checkpoint must be a ray.tune.Checkpoint or the path of a checkpoint directory; "
        f"got {type(checkpoint).__name__}."
    )


def run_torch_trial(
    factory: ModelFactory,
    config: dict[str, Any],
    data: Dataset,
    *,
    task: str,
    defaults: TorchTrainingDefaults,
) -> None:
    """Train one configuration, reporting and checkpointing every epoch (the trainable's body)."""
    _check_data(data, task)
    settings = resolve_settings(config, defaults)
    device = _pick_device()
    previous_threads = torch.get_num_threads()
    threads = _trial_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        _train(factory, config, data, settings, defaults, device)
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
        raise TypeError(
            f"data must be a trainables.data.Dataset (build it with load_data); "
            f"got {type(data).__name__}."
        )
    if data.task != task:
        raise ValueError(
            f"the trainable was made for task={task!r} but the Dataset {data.name!r} is "
            f"{data.task!r}; use make_torch_trainable(..., task={data.task!r}) or load_data(..., "
            f"task={task!r})."
        )
    check_finite(data)


def resolve_settings(config: dict[str, Any], defaults: TorchTrainingDefaults) -> TrainSettings:
    """Read the training keys from `config`, falling back to `defaults`, and validate them."""
    optimizer = config.get("optimizer", defaults.optimizer)
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(
            f"config['optimizer'] must be one of {list(OPTIMIZERS)}; got {optimizer!r}."
        )
    lr = _config_float(config, "lr", defaults.lr, minimum=0.0)
    if lr == 0.0:
        raise ValueError("config['lr'] must be > 0; got 0.")
    return TrainSettings(
        epochs=_config_int(config, "epochs", defaults.epochs, minimum=1),
        lr=lr,
        optimizer=optimizer.lower(),
        weight_decay=_config_float(config, "weight_decay", defaults.weight_decay, minimum=0.0),
        batch_size=_config_int(config, "batch_size", defaults.batch_size, minimum=1),
        momentum=_config_float(config, "momentum", defaults.momentum, minimum=0.0),
        seed=_config_int(config, "seed", defaults.seed, minimum=0),
    )


def resolve_factory(model_factory: ModelFactory | str) -> ModelFactory:
    """Return the factory itself, or import it from "package.module:name"."""
    if isinstance(model_factory, str):
        module_name, sep, attr = model_factory.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(
                f"model_factory path must look like 'package.module:name'; got {model_factory!r}."
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(
                f"cannot import module {module_name!r} of model_factory {model_factory!r}: {err}"
            ) from err
        if not hasattr(module, attr):
            raise ValueError(f"module {module_name!r} has no attribute {attr!r} (model_factory).")
        model_factory = getattr(module, attr)
    if not callable(model_factory):
        raise TypeError(
            f"model_factory must be a callable config -> torch.nn.Module; got {model_factory!r}."
        )
    return model_factory  # type: ignore[return-value]


# ----------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class _Tensors:
    """Standardized split tensors on the training device."""

    X_train: torch.Tensor  # (n_train, n_features) float32
    y_train: torch.Tensor  # (n_train,) int64 class index | float32 standardized target
    X_val: torch.Tensor  # (n_val, n_features)
    y_val: torch.Tensor  # (n_val,)
    y_val_raw: np.ndarray  # (n_val,) float64 original-scale target (regression only)
    x_mean: np.ndarray  # (n_features,) float32 training-split feature mean
    x_scale: np.ndarray  # (n_features,) float32 training-split feature std, 1 where constant
    y_mean: float
    y_scale: float


def _train(
    factory: ModelFactory,
    config: dict[str, Any],
    data: Dataset,
    settings: TrainSettings,
    defaults: TorchTrainingDefaults,
    device: torch.device,
) -> None:
    tensors = _to_tensors(data, device)
    n_outputs = data.n_classes if data.task == "classification" else 1
    factory_config = {
        **config,
        "_n_features": data.n_features,
        "_n_outputs": n_outputs,
        "_task": data.task,
    }
    torch.manual_seed(settings.seed)
    model = factory(factory_config)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model_factory must return a torch.nn.Module; it returned {type(model).__name__}."
        )
    model = model.to(device)
    export = _export_record(factory, factory_config, tensors, data)
    optimizer = _make_optimizer(model, settings)
    first_epoch = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        first_epoch = _restore(checkpoint, model, optimizer, settings, device) + 1
    _check_output_shape(model, tensors.X_train[: settings.batch_size], data)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if data.task == "classification" else nn.MSELoss()
    placement = _placement()
    for epoch in range(first_epoch, settings.epochs + 1):
        train_loss = _train_epoch(model, optimizer, loss_fn, tensors, settings, epoch)
        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, **placement}
        metrics.update(_evaluate(model, loss_fn, tensors, data.task, defaults.eval_batch_size))
        if not (math.isfinite(train_loss) and math.isfinite(metrics["val_loss"])):
            logger.warning("trial diverged at epoch %d (non-finite loss); ending it.", epoch)
            val_keys = [k for k in metrics if k.startswith("val_")]
            metrics.update({k: math.nan for k in val_keys}, stop_reason="diverged")
            tune.report(metrics)  # no checkpoint: the trial's last one stays finite
            return
        with tempfile.TemporaryDirectory() as tmp:
            _save(tmp, model, optimizer, settings, epoch, data.task, device, export)
            # report() persists the directory to the run's storage before returning.
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _to_tensors(data: Dataset, device: torch.device) -> _Tensors:
    try:
        X_train = np.asarray(data.X_train, dtype=np.float32)  # (n_train, n_features)
        X_val = np.asarray(data.X_val, dtype=np.float32)  # (n_val, n_features)
    except (TypeError, ValueError) as err:
        raise ValueError(
            "the PyTorch trainable needs numeric features; converting X to float32 failed "
            f"({err}). Encode categorical columns first."
        ) from err
    mean = X_train.mean(axis=0)  # (n_features,)
    scale = X_train.std(axis=0)  # (n_features,)
    scale[scale == 0] = 1.0  # constant columns: centre them, do not divide by zero
    X_train = (X_train - mean) / scale
    X_val = (X_val - mean) / scale
    y_val_raw = np.empty(0)  # (n_val,) original-scale target, regression only
    if data.classes is not None:
        # Labels may be strings or arbitrary integers: train on their index in `classes`.
        y_train = torch.as_tensor(np.searchsorted(data.classes, data.y_train), dtype=torch.long)
        y_val = torch.as_tensor(np.searchsorted(data.classes, data.y_val), dtype=torch.long)
        y_mean, y_scale = 0.0, 1.0
    else:
        y_raw = np.asarray(data.y_train, dtype=np.float64)
        y_val_raw = np.asarray(data.y_val, dtype=np.float64)
        y_mean = float(y_raw.mean())
        y_scale = float(y_raw.std()) or 1.0
        y_train = torch.as_tensor((y_raw - y_mean) / y_scale, dtype=torch.float32)
        y_val = torch.as_tensor((y_val_raw - y_mean) / y_scale, dtype=torch.float32)
    return _Tensors(
        X_train=torch.as_tensor(X_train).to(device),
        y_train=y_train.to(device),
        X_val=torch.as_tensor(X_val).to(device),
        y_val=y_val.to(device),
        y_val_raw=y_val_raw,
        x_mean=mean,
        x_scale=scale,
        y_mean=y_mean,
        y_scale=y_scale,
    )


def _make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def _check_output_shape(model: nn.Module, X_batch: torch.Tensor, data: Dataset) -> None:
    """Run one batch in eval mode (no RNG draws, no updates) and check the output's shape."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(X_batch)
    model.train(was_training)
    n = X_batch.shape[0]
    shape = tuple(getattr(out, "shape", ()))
    if data.task == "classification":
        ok = shape == (n, data.n_classes)
        expected = f"({n}, {data.n_classes}) logits for {data.n_classes} classes"
    else:
        ok = shape in ((n,), (n, 1))
        expected = f"({n},) or ({n}, 1)"
    if not ok:
        raise ValueError(
            f"the model from model_factory returned shape {shape} for a batch of {n} rows with "
            f"{data.n_features} features; expected {expected}. Size the last layer with "
            "config['_n_outputs'] and the first with config['_n_features']."
        )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    tensors: _Tensors,
    settings: TrainSettings,
    epoch: int,
) -> float:
    model.train()
    n = tensors.X_train.shape[0]
    # Seeded by (seed, epoch) rather than a running generator, so a resumed trial shuffles the
    # same way without carrying generator state.
    order = np.random.default_rng([settings.seed, epoch]).permutation(n)  # (n_train,)
    order_t = torch.as_tensor(order, device=tensors.X_train.device)
    total = 0.0
    for start in range(0, n, settings.batch_size):
        idx = order_t[start : start + settings.batch_size]
        optimizer.zero_grad(set_to_none=True)
        out = _squeeze_regression(model(tensors.X_train[idx]), loss_fn)
        loss = loss_fn(out, tensors.y_train[idx])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * idx.shape[0]
    return total / n


def _evaluate(
    model: nn.Module, loss_fn: nn.Module, tensors: _Tensors, task: str, eval_batch_size: int
) -> dict[str, float]:
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, tensors.X_val.shape[0], eval_batch_size):
            out = model(tensors.X_val[start : start + eval_batch_size])
            outputs.append(_squeeze_regression(out, loss_fn))
    out = torch.cat(outputs)  # (n_val, n_classes) | (n_val,)
    val_loss = float(loss_fn(out, tensors.y_val))
    if task == "classification":
        accuracy = float((out.argmax(dim=1) == tensors.y_val).double().mean())
        return {"val_loss": val_loss, "val_accuracy": accuracy}
    pred = out.double().cpu().numpy() * tensors.y_scale + tensors.y_mean  # (n_val,)
    y = tensors.y_val_raw
    total = float(((y - y.mean()) ** 2).sum())
    # r2_score's convention for a constant target: 1 for a perfect fit, else 0.
    residual = float(((y - pred) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 else float(residual == 0.0)
    return {"val_loss": val_loss, "val_r2": r2}


def _squeeze_regression(out: torch.Tensor, loss_fn: nn.Module) -> torch.Tensor:
    if isinstance(loss_fn, nn.MSELoss) and out.ndim == 2:
        return out.squeeze(1)  # (n, 1) -> (n,)
    return out


# ---------------------------------------------------------------------------- checkpoint, device


def _save(
    directory: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    epoch: int,
    task: str,
    device: torch.device,
    export: _ExportRecord,
) -> None:
    state: dict[str, Any] = {
        "version": CHECKPOINT_VERSION,
        "epoch": epoch,
        "seed": settings.seed,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "preprocessing": export.preprocessing,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state()
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))
    with open(os.path.join(directory, MODEL_FILE), "wb") as f:
        f.write(export.model_spec)
    # A readable summary next to the tensors, for people browsing the run directory.
    with open(os.path.join(directory, "meta.json"), "w") as f:
        summary = {"version": CHECKPOINT_VERSION, "epoch": epoch, "seed": settings.seed}
        json.dump({**summary, "task": task}, f)


@dataclass(frozen=True)
class _ExportRecord:
    """What a checkpoint carries besides the training state, computed once per trial."""

    preprocessing: dict[str, Any]  # tensors and plain values: loads with weights_only=True
    model_spec: bytes  # MODEL_FILE's content


def _export_record(
    factory: ModelFactory, factory_config: dict[str, Any], tensors: _Tensors, data: Dataset
) -> _ExportRecord:
    classes = data.classes
    preprocessing = {
        "task": data.task,
        "n_features": data.n_features,
        "n_classes": data.n_classes,
        "x_mean": torch.as_tensor(tensors.x_mean),  # (n_features,) float32
        "x_scale": torch.as_tensor(tensors.x_scale),  # (n_features,) float32
        "y_mean": tensors.y_mean,
        "y_scale": tensors.y_scale,
        # Python scalars and the dtype string, so the labels load without unpickling objects.
        "classes": None if classes is None else classes.tolist(),
        "classes_dtype": None if classes is None else classes.dtype.str,
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
        raise ValueError(
            f"checkpoint {label} has no {CHECKPOINT_FILE}; it was not written by the PyTorch "
            "trainable (trainables.torch_trainable)."
        )
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    version = state.get("version")
    if version != CHECKPOINT_VERSION or "preprocessing" not in state:
        raise ValueError(
            f"checkpoint {label} has version {version!r}; load_model needs version "
            f"{CHECKPOINT_VERSION}, which stores the feature standardization next to the weights "
            "(a version 1 checkpoint holds the weights only, and they predict wrongly on raw "
            "features). Train again with this version of trainables."
        )
    spec_path = os.path.join(directory, MODEL_FILE)
    if not os.path.exists(spec_path):
        raise ValueError(f"checkpoint {label} has no {MODEL_FILE} (the model factory and config).")
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)  # plain types and bytes; the factory and config are nested pickles
    factory = _rebuild_factory(spec, label)
    config = _unpickle(spec["config"], what="the factory config", label=label)
    pre = state["preprocessing"]
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; leave the RNG be
        model = factory(config)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"the model factory of checkpoint {label} returned {type(model).__name__}, "
            "not a torch.nn.Module."
        )
    model.load_state_dict(state["model"])
    classes = None
    if pre["classes"] is not None:
        classes = np.array(pre["classes"], dtype=np.dtype(pre["classes_dtype"]))
    predictor = TorchPredictor(
        model,
        task=pre["task"],
        x_mean=pre["x_mean"],
        x_scale=pre["x_scale"],
        y_mean=float(pre["y_mean"]),
        y_scale=float(pre["y_scale"]),
        classes=classes,
        config=config,
        epoch=int(state["epoch"]),
    )
    return predictor.to("cpu").eval()


def _rebuild_factory(spec: dict[str, Any], label: str) -> ModelFactory:
    if "unavailable" in spec:
        raise ValueError(
            f"the model of checkpoint {label} cannot be rebuilt: {spec['unavailable']} when it "
            "was trained. Define the factory at the top level of an importable module and train "
            "again."
        )
    if "import_path" in spec:
        path = spec["import_path"]
        try:
            return resolve_factory(path)
        except ValueError as err:
            raise ValueError(
                f"the model factory {path!r} of checkpoint {label} cannot be imported in this "
                f"process ({err}). Make its module importable here (install its package or add "
                "its directory to PYTHONPATH)."
            ) from err
    return _unpickle(spec["pickled"], what="the model factory (stored by value)", label=label)


def _unpickle(payload: bytes, *, what: str, label: str) -> Any:
    try:
        return cloudpickle.loads(payload)
    except (ImportError, AttributeError, pickle.UnpicklingError) as err:
        raise ValueError(
            f"{what} of checkpoint {label} cannot be unpickled in this process "
            f"({type(err).__name__}: {err}); it refers to code that is not importable here. "
            "Make that module importable (PYTHONPATH), or define the factory at the top level "
            "of an importable module and train again."
        ) from err


def _restore(
    checkpoint: tune.Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    device: torch.device,
) -> int:
    """Load a checkpoint written by `_save`; returns the last completed epoch."""
    with checkpoint.as_directory() as directory:
        path = os.path.join(directory, CHECKPOINT_FILE)
        if not os.path.exists(path):
            raise ValueError(
                f"checkpoint {checkpoint.path} has no {CHECKPOINT_FILE}; it was not written by "
                "the PyTorch trainable."
            )
        state = torch.load(path, map_location=device, weights_only=True)
    if state.get("version") not in RESUMABLE_VERSIONS:
        raise ValueError(
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
    optimizer.load_state_dict(state["optimizer"])
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
        raise ValueError(
            f"config[{key!r}] is required; make_torch_trainable injects it, or pass it yourself."
        )
    # Searchers may hand back floats such as 64.0 for integer domains; accept whole floats.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise TypeError(f"config[{key!r}] must be an integer; got {value!r}.")
    if not float(value).is_integer():
        raise ValueError(f"config[{key!r}] must be a whole number; got {value!r}.")
    if value < minimum:
        raise ValueError(f"config[{key!r}] must be >= {minimum}; got {value!r}.")
    return int(value)


def _config_float(config: dict[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"config[{key!r}] must be a number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"config[{key!r}] must be a finite number >= {minimum}; got {value!r}.")
    return value
