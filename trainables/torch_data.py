"""PyTorch data as people have it: arrays, a pair of ``torch.utils.data.Dataset`` objects, or a
dataset factory; and the batches one trial trains and validates on.

Forms of ``data`` (`plan_torch` decides in this order):

1. a ``(train_ds, val_ds)`` pair (tuple or list) of ``torch.utils.data.Dataset`` objects;
2. a dataset factory: any callable that is not a Dataset (arrays, tuples and names are never
   callable), called in each trial as ``factory(config) -> (train_ds, val_ds)``, so the data
   pipeline itself (augmentation strength, sequence length) is searched like any config key;
3. anything ``trainables.data.load_data`` takes (a bundled name, ``(X, y)``, an explicit split).

A Dataset item is ``(x, y)``: ``x`` any tensor (or numpy array) of a fixed shape per sample
(an image ``(C, H, W)``, a sequence ``(T, F)``...), batched by PyTorch's default collate;
``y`` a scalar (or a 1-element tensor). float64 inputs are cast to float32; other input dtypes
(token ids) reach the model unchanged. Dataset inputs are not standardized (the Dataset's own
transforms do that).

Task of Dataset inputs: ``trainer_options["task"]`` when given; otherwise integer labels
(Python, numpy or torch integers) make a classification and float labels a regression.
Classification labels are class indices ``0 .. n_classes - 1``; ``n_classes`` is
``trainer_options["n_classes"]`` or the largest label seen in either split plus one. Reading the
labels iterates the Dataset once (a ``TensorDataset`` or a ``targets`` attribute is read
directly); for a factory it happens in each trial, unless ``n_classes`` is given. A factory needs
``trainer_options["task"]``: it cannot be called before a trial has its config.

Batches: epoch ``e`` visits the training items in the order ``np.random.default_rng([seed,
e]).permutation(n_train)`` for every form, so a resumed trial sees the same batches. Dataset
batches come from a ``DataLoader`` with that batch sampler, ``num_workers`` and ``pin_memory``
(a seeded generator, so worker seeds do not draw from torch's global RNG); on CUDA, copies to the
device are non-blocking from pinned memory. Validation batches keep the dataset order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data import Dataset as TorchDataset

from searchers.validation import InvalidParameterError
from trainables.data import Dataset
from trainables.torch_options import TrainerOptions

DatasetFactory = Callable[[dict[str, Any]], tuple[TorchDataset, TorchDataset]]


@dataclass(frozen=True, eq=False)
class TorchRunData:
    """What every trial of a run receives, shipped once through Ray's object store.

    Attributes:
        kind: "arrays", "datasets" or "factory".
        arrays: the array data (kind "arrays").
        datasets: ``(train_ds, val_ds)`` (kind "datasets").
        factory: ``config -> (train_ds, val_ds)`` (kind "factory").
        task: "classification" or "regression".
        n_classes: the number of classes when known before the trials, else None.
        options: the run's trainer options.
        name: a short description for the run's metadata.
    """

    kind: str
    arrays: Dataset | None
    datasets: tuple[TorchDataset, TorchDataset] | None
    factory: DatasetFactory | None
    task: str
    n_classes: int | None
    options: TrainerOptions
    name: str


def is_dataset_pair(data: Any) -> bool:
    """True for a ``(train_ds, val_ds)`` tuple or list of torch Datasets."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(part, TorchDataset) for part in data)
    )


def is_dataset_factory(data: Any) -> bool:
    """True for a callable that is not itself a Dataset (see the module docstring)."""
    return callable(data) and not isinstance(data, (TorchDataset, Dataset, str, type))


def inspect_datasets(
    train: Any, val: Any, options: TrainerOptions, *, where: str
) -> tuple[str, int | None]:
    """Check a ``(train_ds, val_ds)`` pair and read its task and number of classes.

    Args:
        train, val: the Datasets.
        options: the run's trainer options (``task``, ``n_classes``).
        where: "data" or "the dataset factory's return value", for messages.

    Raises:
        TypeError / ValueError: not Datasets, empty, items that are not ``(x, y)``, labels that
            are not class indices, naming ``where`` and the fix.
    """
    for split, ds in (("training", train), ("validation", val)):
        if not isinstance(ds, TorchDataset):
            raise InvalidParameterError(
                f"{where}: the {split} dataset must be a torch.utils.data.Dataset; got "
                f"{type(ds).__name__}."
            )
        try:
            n = len(ds)  # type: ignore[arg-type]
        except TypeError as err:
            raise InvalidParameterError(
                f"{where}: the {split} dataset has no len(); map-style Datasets only (an "
                "IterableDataset cannot be shuffled per epoch)."
            ) from err
        if n == 0:
            raise InvalidParameterError(f"{where}: the {split} dataset is empty.")
        item = ds[0]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InvalidParameterError(
                f"{where}: an item of the {split} dataset must be a pair (x, y); item 0 is a "
                f"{type(item).__name__}"
                + (f" of {len(item)}." if isinstance(item, (tuple, list)) else ".")
            )
    task = options.task
    if task == "regression" or (task is not None and options.n_classes is not None):
        return task, options.n_classes if task == "classification" else None
    y_train = dataset_labels(train)
    y_val = dataset_labels(val)
    if task is None:
        task = "classification" if y_train.dtype.kind in "iub" else "regression"
    if task == "regression":
        return task, None
    for split, labels in (("training", y_train), ("validation", y_val)):
        if labels.dtype.kind not in "iub" and not np.all(np.mod(labels, 1) == 0):
            raise InvalidParameterError(
                f"{where}: classification needs integer labels (class indices) in the {split} "
                "dataset; set trainer_options={'task': 'regression'} for float targets."
            )
        if labels.size and labels.min() < 0:
            raise InvalidParameterError(
                f"{where}: the {split} dataset has negative labels; classification labels are "
                "class indices 0 .. n_classes - 1."
            )
    seen = int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
    n_classes = options.n_classes or seen
    if seen > n_classes:
        raise InvalidParameterError(
            f"{where}: label {seen - 1} is out of range for trainer_options['n_classes']="
            f"{n_classes} (labels are class indices 0 .. n_classes - 1)."
        )
    if n_classes < 2:
        raise InvalidParameterError(
            f"{where}: classification needs at least 2 classes; the labels are all 0."
        )
    return task, n_classes


def dataset_labels(ds: Any) -> np.ndarray:
    """The labels ``(n,)`` of a Dataset: a TensorDataset's second tensor, a ``targets``
    attribute (torchvision's datasets), else ``ds[i][1]`` for every item."""
    if isinstance(ds, TensorDataset) and len(ds.tensors) >= 2:
        return ds.tensors[1].reshape(len(ds), -1)[:, 0].cpu().numpy()
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == len(ds):
        return _labels_array([targets[i] for i in range(len(ds))])
    return _labels_array([ds[i][1] for i in range(len(ds))])


def _labels_array(values: list[Any]) -> np.ndarray:
    out = [v.reshape(-1)[0].item() if isinstance(v, torch.Tensor) else v for v in values]
    out = [v.reshape(-1)[0].item() if isinstance(v, np.ndarray) else v for v in out]
    return np.asarray(out)


# ------------------------------------------------------------------------------- one trial


class ArrayBatches:
    """Array data as standardized tensors on the device (the CPU path of the array trainable).

    Attributes:
        X_train, y_train, X_val, y_val: ``(n, n_features)`` float32 and ``(n,)`` targets
            (class indices int64, or the float32 standardized target).
        y_val_true: the validation labels (original) or targets (original units), for metrics.
        classes: the sorted labels (None for regression).
        x_mean, x_scale: ``(n_features,)`` the standardization.
        y_mean, y_scale: the target's (0 and 1 for classification).
        input_shape: ``(n_features,)``.
    """

    def __init__(self, data: Dataset, device: torch.device) -> None:
        try:
            X_train = np.asarray(data.X_train, dtype=np.float32)  # (n_train, n_features)
            X_val = np.asarray(data.X_val, dtype=np.float32)  # (n_val, n_features)
        except (TypeError, ValueError) as err:
            raise InvalidParameterError(
                "the PyTorch trainable needs numeric features; converting X to float32 failed "
                f"({err}). Encode categorical columns first."
            ) from err
        mean = X_train.mean(axis=0)  # (n_features,)
        scale = X_train.std(axis=0)  # (n_features,)
        scale[scale == 0] = 1.0  # constant columns: centre them, do not divide by zero
        self.classes = data.classes
        if data.classes is not None:
            # Labels may be strings or arbitrary integers: train on their index in `classes`.
            y_train = torch.as_tensor(
                np.searchsorted(data.classes, data.y_train), dtype=torch.long
            )
            y_val = torch.as_tensor(np.searchsorted(data.classes, data.y_val), dtype=torch.long)
            self.y_mean, self.y_scale = 0.0, 1.0
            self.y_val_true = np.asarray(data.y_val)
        else:
            y_raw = np.asarray(data.y_train, dtype=np.float64)
            self.y_val_true = np.asarray(data.y_val, dtype=np.float64)  # (n_val,)
            self.y_mean = float(y_raw.mean())
            self.y_scale = float(y_raw.std()) or 1.0
            y_train = torch.as_tensor((y_raw - self.y_mean) / self.y_scale, dtype=torch.float32)
            y_val = torch.as_tensor(
                (self.y_val_true - self.y_mean) / self.y_scale, dtype=torch.float32
            )
        self.X_train = torch.as_tensor((X_train - mean) / scale).to(device)
        self.X_val = torch.as_tensor((X_val - mean) / scale).to(device)
        self.y_train = y_train.to(device)
        self.y_val = y_val.to(device)
        self.x_mean, self.x_scale = mean, scale
        self.input_shape: tuple[int, ...] = (int(X_train.shape[1]),)

    @property
    def n_train(self) -> int:
        """Training rows."""
        return int(self.X_train.shape[0])

    def train_labels(self) -> np.ndarray:
        """Training class indices ``(n_train,)``."""
        return self.y_train.cpu().numpy()

    def train_batches(
        self, order: np.ndarray, batch_size: int, epoch: int
    ) -> Iterator[tuple[Any, Any]]:
        """Batches of the training split in ``order`` ``(n_train,)`` (``epoch`` unused)."""
        order_t = torch.as_tensor(order, device=self.X_train.device)
        for start in range(0, order_t.shape[0], batch_size):
            idx = order_t[start : start + batch_size]
            yield self.X_train[idx], self.y_train[idx]

    def val_batches(self, batch_size: int) -> Iterator[tuple[Any, Any]]:
        """The validation split in order."""
        for start in range(0, self.X_val.shape[0], batch_size):
            yield self.X_val[start : start + batch_size], self.y_val[start : start + batch_size]

    def true_values(self, targets: torch.Tensor) -> np.ndarray:
        """The validation labels or targets in their original form (``targets`` unused)."""
        return self.y_val_true

    def preprocessing(self) -> dict[str, Any]:
        """What `load_model` needs to predict on raw inputs."""
        return {
            "x_mean": torch.as_tensor(self.x_mean),  # (n_features,) float32
            "x_scale": torch.as_tensor(self.x_scale),  # (n_features,) float32
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
            "standardize": True,
        }


class DatasetBatches:
    """A ``(train_ds, val_ds)`` pair as DataLoader batches moved to the device.

    Attributes:
        classes: ``arange(n_classes)`` (None for regression).
        input_shape: the shape of one item's x.
        y_mean, y_scale: 0 and 1 (Dataset targets are not standardized).
    """

    def __init__(
        self,
        train: TorchDataset,
        val: TorchDataset,
        *,
        task: str,
        n_classes: int | None,
        device: torch.device,
        num_workers: int,
        pin_memory: bool,
        seed: int,
    ) -> None:
        self.train, self.val = train, val
        self.task = task
        self.classes = None if n_classes is None else np.arange(n_classes)
        self.device = device
        self.num_workers = num_workers
        self.pin_memory = pin_memory and device.type == "cuda"
        self.seed = seed
        self.y_mean, self.y_scale = 0.0, 1.0
        first = train[0][0]
        self.input_shape = tuple(int(s) for s in np.shape(first))

    @property
    def n_train(self) -> int:
        """Training items."""
        return len(self.train)  # type: ignore[arg-type]

    def train_labels(self) -> np.ndarray:
        """Training class indices ``(n_train,)``."""
        return dataset_labels(self.train).astype(np.int64)

    def train_batches(
        self, order: np.ndarray, batch_size: int, epoch: int
    ) -> Iterator[tuple[Any, Any]]:
        """Batches of the training Dataset in ``order`` ``(n_train,)``."""
        batches = [order[i : i + batch_size].tolist() for i in range(0, order.size, batch_size)]
        # Seeded per epoch: the loader draws its workers' base seed from this generator, not
        # from torch's global RNG (which dropout and augmentation in the main process use).
        generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + epoch)
        yield from self._batches(self.train, batches, generator)

    def val_batches(self, batch_size: int) -> Iterator[tuple[Any, Any]]:
        """The validation Dataset in order."""
        n = len(self.val)  # type: ignore[arg-type]
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        yield from self._batches(self.val, batches, torch.Generator().manual_seed(self.seed))

    def true_values(self, targets: torch.Tensor) -> np.ndarray:
        """The validation targets gathered in the evaluation pass, as numpy."""
        return targets.cpu().numpy()

    def preprocessing(self) -> dict[str, Any]:
        """What `load_model` needs: no standardization for Dataset inputs."""
        return {"y_mean": 0.0, "y_scale": 1.0, "standardize": False}

    def _batches(
        self, ds: TorchDataset, batches: list[list[int]], generator: torch.Generator
    ) -> Iterator[tuple[Any, Any]]:
        loader = DataLoader(
            ds,
            batch_sampler=batches,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=generator,
        )
        non_blocking = self.pin_memory
        for x, y in loader:
            yield (
                as_model_input(x).to(self.device, non_blocking=non_blocking),
                self._target(y).to(self.device, non_blocking=non_blocking),
            )

    def _target(self, y: Any) -> torch.Tensor:
        y = torch.as_tensor(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.squeeze(1)  # (B, 1) -> (B,)
        return y.long() if self.task == "classification" else y.float()


def as_model_input(x: Any) -> torch.Tensor:
    """A batch of inputs as a tensor: float64 becomes float32, other dtypes stay."""
    x = torch.as_tensor(x)
    return x.float() if x.dtype == torch.float64 else x


def check_dataset_factory_result(result: Any) -> tuple[TorchDataset, TorchDataset]:
    """The factory's ``(train_ds, val_ds)``, or an error naming what it returned."""
    if not is_dataset_pair(result):
        raise InvalidParameterError(
            "the dataset factory (data=) must return (train_ds, val_ds), two "
            f"torch.utils.data.Dataset objects; it returned {type(result).__name__}."
        )
    return result[0], result[1]
