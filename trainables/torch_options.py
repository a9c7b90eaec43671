"""The PyTorch trainable's ``trainer_options``: what is fixed for a run rather than searched.

A searched setting (optimizer, learning-rate schedule, patience, batch size, freezing, layer
decay) is a config key with a default (``trainables.torch_trainable``'s docstring lists them);
an object or a fixed choice is a trainer option, validated here while the run is planned, before
any trial starts, with errors that name the option (and did-you-mean for a misspelled name):

- ``task``: "classification" | "regression". Inferred for arrays and a pair of Datasets
  (integer labels are classes); required for a dataset factory, which cannot be called before a
  trial has its config.
- ``n_classes``: the number of classes of a Dataset input (default: largest label + 1, read from
  the labels of both splits).
- ``loss``: a name (``LOSSES``: "cross_entropy" for classification; "mse", "l1", "smooth_l1",
  "huber" for regression) or a callable ``(outputs, targets) -> scalar tensor`` where outputs
  are the logits ``(n, n_classes)`` and targets class indices ``(n,)`` (int64), or outputs the
  predictions ``(n,)`` and targets ``(n,)`` (float32; standardized for array data).
  Default: cross_entropy / mse.
- ``class_weights``: a weight per class (in the order of the classes) or "balanced"
  (``n / (n_classes * count)`` on the training labels, as scikit-learn's); for cross_entropy.
- ``metrics``: extra validation metrics, each reported every epoch as ``val_<name>``: a mapping
  name -> ``fn(y_true, y_score) -> float`` or a built-in name (``BUILTIN_METRICS``), or a list
  of built-in names. ``y_true`` holds the validation labels (the original labels for array
  data, class indices for Datasets) or targets in their units; ``y_score`` the class
  probabilities ``(n, n_classes)`` (columns in the order of the sorted classes) or the
  predictions ``(n,)``. "f1" is macro F1 (binary: F1 of the second class), "roc_auc" is ROC AUC
  (binary: of the second class; multiclass: one-vs-rest, macro); both are classification only.
- ``init_checkpoint``: a state-dict file (``torch.save(model.state_dict(), path)``, or a dict
  holding it under "state_dict" or "model"), one of our checkpoint directories or its
  ``state.pt``, or a ``ray.tune.Checkpoint``; read once here and shipped to the trials.
- ``amp``: automatic mixed precision (float16 autocast and a gradient scaler) on CUDA trials.
  A trial that trains on the CPU ignores it with a warning (the driver cannot know where trials
  will run), and trains in float32 exactly as without it.
- ``num_workers`` (0) and ``pin_memory`` (None: on CUDA trials) of the Dataset loaders; a config
  key of the same name overrides them.
- ``monitor``: the reported metric that ``patience`` watches (default "val_loss"); minimized when
  its name ends in "loss", maximized otherwise.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from searchers.validation import (
    InstanceOf,
    Interval,
    InvalidParameterError,
    Options,
    check,
    did_you_mean,
)

# name -> (task it fits, builder(weight) -> loss module)
LOSSES: dict[str, tuple[str, Callable[[torch.Tensor | None], nn.Module]]] = {
    "cross_entropy": ("classification", lambda w: nn.CrossEntropyLoss(weight=w)),
    "mse": ("regression", lambda w: nn.MSELoss()),
    "l1": ("regression", lambda w: nn.L1Loss()),
    "smooth_l1": ("regression", lambda w: nn.SmoothL1Loss()),
    "huber": ("regression", lambda w: nn.HuberLoss()),
}
BUILTIN_METRICS: tuple[str, ...] = ("f1", "roc_auc")
# Keys every trial reports itself; a user metric may not shadow them.
RESERVED_METRICS: tuple[str, ...] = ("loss", "accuracy", "r2")

MetricFn = Callable[[np.ndarray, np.ndarray], float]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrainerOptionError(InvalidParameterError):
    """A bad ``trainer_options`` entry; both a ValueError and a TypeError, as scikit-learn's
    ``InvalidParameterError``, so callers may catch either."""


@dataclass(frozen=True)
class TrainerOptions:
    """Validated ``trainer_options`` (see the module docstring for each entry).

    Attributes:
        task: "classification", "regression", or None (inferred from the data).
        n_classes: classes of a Dataset input, or None (read from the labels).
        loss: a name from `LOSSES`, a callable, or None (the task's default).
        class_weights: a weight per class, "balanced", or None.
        metrics: extra metric name -> function or built-in name.
        init_state: the state dict read from ``init_checkpoint`` (None: no initial weights).
        init_label: where ``init_state`` came from, for messages.
        amp: mixed precision on CUDA trials.
        num_workers: DataLoader worker processes for Dataset inputs.
        pin_memory: pinned host memory for Dataset batches (None: on CUDA trials).
        monitor: the reported metric ``patience`` watches.
    """

    task: str | None = None
    n_classes: int | None = None
    loss: str | LossFn | None = None
    class_weights: tuple[float, ...] | str | None = None
    metrics: dict[str, MetricFn | str] = field(default_factory=dict)
    init_state: dict[str, torch.Tensor] | None = None
    init_label: str = ""
    amp: bool = False
    num_workers: int = 0
    pin_memory: bool | None = None
    monitor: str = "val_loss"

    @property
    def monitor_mode(self) -> str:
        """ "min" for a loss, "max" otherwise."""
        return "min" if self.monitor.endswith("loss") else "max"

    def loss_name(self, task: str) -> str | None:
        """The loss's name for messages (None for a callable)."""
        if self.loss is None:
            return "cross_entropy" if task == "classification" else "mse"
        return self.loss if isinstance(self.loss, str) else None


OPTION_NAMES: tuple[str, ...] = (
    "task",
    "n_classes",
    "loss",
    "class_weights",
    "metrics",
    "init_checkpoint",
    "amp",
    "num_workers",
    "pin_memory",
    "monitor",
)


def parse_options(options: Mapping[str, Any] | TrainerOptions | None) -> TrainerOptions:
    """Check ``trainer_options`` entry by entry; what depends on the data is checked by
    `check_against_data` once the task is known.

    Raises:
        TrainerOptionError: naming the option and the fix (did-you-mean for an unknown name).
    """
    if options is None:
        return TrainerOptions()
    if isinstance(options, TrainerOptions):
        return options
    if not isinstance(options, Mapping):
        raise TrainerOptionError(
            f"trainer_options must be a mapping of option -> value; got {type(options).__name__}."
        )
    for key in options:
        if key not in OPTION_NAMES:
            hint = did_you_mean(str(key), OPTION_NAMES) or f"; known: {', '.join(OPTION_NAMES)}"
            raise TrainerOptionError(f"trainer_options: unknown option {key!r}{hint}")
    task = _check_option(options, "task", None, Options(("classification", "regression")), None)
    n_classes = _check_option(options, "n_classes", None, Interval(int, 2, None), None)
    init_state, init_label = None, ""
    if options.get("init_checkpoint") is not None:
        init_state, init_label = read_init_checkpoint(options["init_checkpoint"])
    num_workers = _check_option(options, "num_workers", 0, Interval(int, 0, None))
    for name in ("amp", "pin_memory"):
        _check_option(options, name, None, InstanceOf(bool, "true or false"), None)
    monitor = options.get("monitor", "val_loss")
    if not isinstance(monitor, str) or not monitor:
        raise TrainerOptionError(
            f"trainer_options['monitor'] must be a reported metric name; got {monitor!r}."
        )
    return TrainerOptions(
        task=task,
        n_classes=None if n_classes is None else int(n_classes),
        loss=_parse_loss(options.get("loss")),
        class_weights=_parse_class_weights(options.get("class_weights")),
        metrics=_parse_metrics(options.get("metrics")),
        init_state=init_state,
        init_label=init_label,
        amp=bool(options.get("amp", False)),
        num_workers=num_workers,
        pin_memory=options.get("pin_memory"),
        monitor=monitor,
    )


def check_against_data(options: TrainerOptions, task: str, n_classes: int | None) -> None:
    """The checks that need the task (and the number of classes, when known before a trial).

    Raises:
        TrainerOptionError: a loss, class weights, metric or monitor that does not fit.
    """
    if isinstance(options.loss, str) and LOSSES[options.loss][0] != task:
        fits = [name for name, (t, _) in LOSSES.items() if t == task]
        raise TrainerOptionError(
            f"trainer_options['loss']={options.loss!r} is a {LOSSES[options.loss][0]} loss but "
            f"the task is {task}; use one of {fits} or a callable."
        )
    if options.class_weights is not None:
        if task != "classification":
            raise TrainerOptionError(
                "trainer_options['class_weights'] apply to classification; the task is regression."
            )
        if options.loss is not None and options.loss != "cross_entropy":
            raise TrainerOptionError(
                "trainer_options['class_weights'] weight the built-in 'cross_entropy' loss; a "
                "custom loss callable applies its own weights (drop class_weights)."
            )
        weights = options.class_weights
        if not isinstance(weights, str) and n_classes is not None and len(weights) != n_classes:
            raise TrainerOptionError(
                f"trainer_options['class_weights'] has {len(weights)} weights but the data has "
                f"{n_classes} classes; give one weight per class, in the order of the classes."
            )
    for name, fn in options.metrics.items():
        if fn in BUILTIN_METRICS and task != "classification":
            raise TrainerOptionError(
                f"trainer_options['metrics'][{name!r}]: {fn!r} is a classification metric; "
                "the task is regression (pass a callable fn(y_true, y_pred) instead)."
            )
    known = metric_keys(task, options)
    if options.monitor not in known:
        hint = did_you_mean(options.monitor, known)
        raise TrainerOptionError(
            f"trainer_options['monitor']={options.monitor!r} is not a reported metric "
            f"({', '.join(known)}){hint}"
        )


def metric_keys(task: str, options: TrainerOptions) -> list[str]:
    """Every numeric key a trial reports, in report order (``lr_min``, ``lr_mean``, ``lr_max``:
    the head's rate over the epoch's steps, which moves with ``lr_adaptation``)."""
    quality = "val_accuracy" if task == "classification" else "val_r2"
    extra = [f"val_{name}" for name in options.metrics]
    rates = ["lr", "lr_min", "lr_mean", "lr_max"]
    return ["epoch", "train_loss", "val_loss", quality, *extra, *rates]


def make_loss(options: TrainerOptions, task: str, class_weights: torch.Tensor | None) -> LossFn:
    """The training loss (also the validation loss)."""
    if callable(options.loss):
        return options.loss
    name = options.loss_name(task)
    assert name is not None  # a None name means a callable, handled above
    return LOSSES[name][1](class_weights)


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (n_classes * count)`` per class, as ``sklearn.utils.class_weight`` ("balanced");
    a class absent from the training labels gets weight 0 (it has no rows to weigh)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)  # (n_classes,)
    with np.errstate(divide="ignore"):
        weights = labels.size / (n_classes * counts)
    weights[counts == 0] = 0.0
    return weights


def compute_metric(
    name: str,
    fn: MetricFn | str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    classes: np.ndarray | None,
) -> float:
    """One extra metric's value; a built-in that is undefined on this split (ROC AUC with a
    class missing from the validation labels) is NaN rather than a failed trial."""
    if isinstance(fn, str):
        from sklearn.metrics import f1_score, roc_auc_score

        assert classes is not None  # built-ins are classification only (check_against_data)
        binary = classes.size == 2
        try:
            if fn == "f1":
                y_pred = classes[y_score.argmax(axis=1)]
                if binary:
                    return float(f1_score(y_true, y_pred, pos_label=classes[1]))
                return float(f1_score(y_true, y_pred, labels=classes, average="macro"))
            if binary:
                return float(roc_auc_score(y_true == classes[1], y_score[:, 1]))
            return float(
                roc_auc_score(y_true, y_score, multi_class="ovr", average="macro", labels=classes)
            )
        except ValueError:
            return math.nan
    value = fn(y_true, y_score)
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(
            f"trainer_options['metrics'][{name!r}] returned {value!r}; a metric function must "
            "return a number."
        ) from err


# ----------------------------------------------------------------------------------- parsing


def _parse_loss(loss: Any) -> str | LossFn | None:
    if loss is None or callable(loss):
        return loss
    if isinstance(loss, str):
        name = loss.lower()
        if name not in LOSSES:
            raise TrainerOptionError(
                f"trainer_options['loss']: unknown loss {loss!r}{did_you_mean(name, LOSSES)} "
                f"(built in: {', '.join(LOSSES)}, or pass a callable (outputs, targets) -> loss)."
            )
        return name
    raise TrainerOptionError(
        f"trainer_options['loss'] must be a loss name ({', '.join(LOSSES)}) or a callable "
        f"(outputs, targets) -> scalar tensor; got {type(loss).__name__}."
    )


def _parse_class_weights(weights: Any) -> tuple[float, ...] | str | None:
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights != "balanced":
            raise TrainerOptionError(
                f"trainer_options['class_weights'] must be 'balanced' or a weight per class; "
                f"got {weights!r}."
            )
        return weights
    if isinstance(weights, Mapping) or not isinstance(
        weights, (Sequence, np.ndarray, torch.Tensor)
    ):
        raise TrainerOptionError(
            "trainer_options['class_weights'] must be a sequence of weights (one per class, in "
            f"the order of the classes) or 'balanced'; got {type(weights).__name__}."
        )
    try:
        values = np.asarray(weights, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise TrainerOptionError(
            f"trainer_options['class_weights'] must hold numbers; got {weights!r}."
        ) from err
    if values.size == 0 or not np.isfinite(values).all() or (values < 0).any() or not values.any():
        raise TrainerOptionError(
            "trainer_options['class_weights'] must be finite, >= 0 and not all 0; "
            f"got {values.tolist()}."
        )
    return tuple(float(v) for v in values)


def _parse_metrics(metrics: Any) -> dict[str, MetricFn | str]:
    if metrics is None:
        return {}
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, (list, tuple)):
        metrics = {name: name for name in metrics}
    if not isinstance(metrics, Mapping):
        raise TrainerOptionError(
            "trainer_options['metrics'] must be a mapping name -> fn(y_true, y_score) or a list "
            f"of built-in names ({', '.join(BUILTIN_METRICS)}); got {type(metrics).__name__}."
        )
    out: dict[str, MetricFn | str] = {}
    for name, fn in metrics.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise TrainerOptionError(
                f"trainer_options['metrics']: the name {name!r} must be an identifier "
                "(it is reported as val_<name>)."
            )
        if name in RESERVED_METRICS:
            raise TrainerOptionError(
                f"trainer_options['metrics']: val_{name} is reported already; rename {name!r}."
            )
        if isinstance(fn, str):
            if fn not in BUILTIN_METRICS:
                raise TrainerOptionError(
                    f"trainer_options['metrics'][{name!r}]: unknown metric {fn!r}"
                    f"{did_you_mean(fn, BUILTIN_METRICS)} (built in: "
                    f"{', '.join(BUILTIN_METRICS)}, or pass fn(y_true, y_score))."
                )
        elif not callable(fn):
            raise TrainerOptionError(
                f"trainer_options['metrics'][{name!r}] must be a function fn(y_true, y_score) "
                f"or a built-in name; got {type(fn).__name__}."
            )
        out[name] = fn
    return out


def read_init_checkpoint(source: Any) -> tuple[dict[str, torch.Tensor], str]:
    """Read ``init_checkpoint`` into a state dict of tensors (on the CPU) and a label.

    Raises:
        TrainerOptionError: the path does not exist, or holds no state dict.
    """
    from ray import tune

    from trainables.torch_trainable import CHECKPOINT_FILE

    if isinstance(source, tune.Checkpoint):
        with source.as_directory() as directory:
            return read_init_checkpoint(directory)[0], str(source.path)
    if not isinstance(source, (str, os.PathLike)):
        raise TrainerOptionError(
            "trainer_options['init_checkpoint'] must be a path (a state-dict file or a "
            f"checkpoint directory) or a ray.tune.Checkpoint; got {type(source).__name__}."
        )
    path = os.fspath(source)
    label = path
    if os.path.isdir(path):
        candidate = os.path.join(path, CHECKPOINT_FILE)
        if not os.path.exists(candidate):
            raise TrainerOptionError(
                f"trainer_options['init_checkpoint']: directory {path!r} has no "
                f"{CHECKPOINT_FILE}; give a checkpoint directory of the PyTorch trainable or a "
                "state-dict file (torch.save(model.state_dict(), path))."
            )
        path = candidate
    elif not os.path.exists(path):
        raise TrainerOptionError(f"trainer_options['init_checkpoint']: {path!r} does not exist.")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise TrainerOptionError(
            f"trainer_options['init_checkpoint']: {path!r} is not a file torch.load can read "
            f"with weights_only=True ({type(err).__name__}: {err})."
        ) from err
    state = loaded
    if isinstance(loaded, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(loaded.get(key), Mapping):
                state = loaded[key]
                break
    if not (
        isinstance(state, Mapping)
        and state
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise TrainerOptionError(
            f"trainer_options['init_checkpoint']: {path!r} holds no state dict (a mapping of "
            "parameter name -> tensor, possibly under 'state_dict' or 'model'); save one with "
            "torch.save(model.state_dict(), path)."
        )
    return dict(state), label


def _check_option(options: Mapping[str, Any], name: str, default: Any, *constraints: Any) -> Any:
    """``options.get(name, default)`` after `check` under its full name; a refused value is a
    `TrainerOptionError`."""
    try:
        return check(f"trainer_options[{name!r}]", options.get(name, default), *constraints)
    except InvalidParameterError as exc:
        raise TrainerOptionError(str(exc)) from None
