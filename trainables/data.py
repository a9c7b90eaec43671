"""Datasets handed to trainables: one validated, immutable bundle of arrays per tuning run.

`load_data` accepts three forms and always returns a `Dataset`:

- a bundled scikit-learn name (no download): "digits", "breast_cancer", "wine", "iris"
  (classification) and "diabetes" (regression);
- an ``(X, y)`` pair, split here into a seeded hold-out (stratified for classification);
- an explicit split ``((X_train, y_train), (X_val, y_val))``, kept as given.

Notation: ``X: (n_samples, n_features)``, ``y: (n_samples,)``. ``Dataset.X, Dataset.y`` hold all
the labelled data (train + validation, what cross-validation splits); ``X_train, y_train, X_val,
y_val`` hold the hold-out split that the PyTorch trainable and ``cv=None`` scikit-learn trials use.

Arrays are converted to numpy (pandas objects become plain arrays, so column names are not kept).
Features keep their dtype (a scikit-learn pipeline may encode strings itself); the PyTorch
trainable converts them to float32 and says so if it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn import datasets as _sk_datasets
from sklearn.model_selection import train_test_split

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")

# name -> (loader, task). Every loader reads files shipped inside the scikit-learn wheel.
_BUNDLED: dict[str, tuple[Callable[..., Any], Task]] = {
    "digits": (_sk_datasets.load_digits, "classification"),
    "breast_cancer": (_sk_datasets.load_breast_cancer, "classification"),
    "wine": (_sk_datasets.load_wine, "classification"),
    "iris": (_sk_datasets.load_iris, "classification"),
    "diabetes": (_sk_datasets.load_diabetes, "regression"),
}

# Integer labels with more distinct values than this are read as a regression target (counts,
# years); fewer are read as classes. `task=` overrides the guess either way.
MAX_INFERRED_CLASSES = 100


def dataset_names() -> list[str]:
    """The bundled dataset names `load_data` accepts."""
    return sorted(_BUNDLED)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Validated training data for one tuning run (arrays are not copied; treat them as read-only).

    Attributes:
        X, y: all labelled data, ``(n, n_features)`` and ``(n,)``; cross-validation splits these.
            For an explicit split they are ``X_train`` followed by ``X_val``.
        X_train, y_train, X_val, y_val: the hold-out split.
        task: "classification" or "regression".
        n_features: number of columns of X.
        n_classes: number of distinct labels in y (None for regression).
        classes: the sorted distinct labels of y (None for regression); trainables that need
            integer targets map ``y`` to indices into this array.
        name: the bundled dataset name, "arrays" for an ``(X, y)`` pair, "split" for an explicit
            split.
    """

    X: np.ndarray
    y: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    task: Task
    n_features: int
    n_classes: int | None
    classes: np.ndarray | None
    name: str

    @property
    def n_samples(self) -> int:
        """Number of labelled rows (train + validation)."""
        return int(self.X.shape[0])


def load_data(
    data: Any,
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    task: str | None = None,
) -> Dataset:
    """Build a `Dataset` from a bundled name, an ``(X, y)`` pair or an explicit split.

    Args:
        data: a name from `dataset_names()`, ``(X, y)``, ``((X_train, y_train), (X_val, y_val))``,
            or a `Dataset` (returned unchanged when `task` agrees).
        validation_fraction: share of rows held out for validation when `data` is not already
            split, in (0, 1). Ignored for an explicit split.
        seed: seeds the hold-out split, so every trial of a run sees the same rows.
        task: "classification" or "regression"; None infers it (bundled names know their task;
            bool, string and integer labels with at most `MAX_INFERRED_CLASSES` distinct values are
            classes; float targets are regression).

    Raises:
        ValueError: unknown name or task, wrong shapes, mismatched lengths, empty data, a class
            too small to stratify; the message names the problem and the fix.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)} or None to infer it; got {task!r}.")
    if isinstance(data, Dataset):
        if task is not None and task != data.task:
            raise ValueError(
                f"task={task!r} disagrees with the given Dataset's task {data.task!r}; "
                "rebuild it with load_data((dataset.X, dataset.y), task=...)."
            )
        return data
    if isinstance(data, str):
        return _load_bundled(data, validation_fraction=validation_fraction, seed=seed, task=task)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        first, second = data
        if _is_split(first, second):
            return _from_split(first, second, task=task)
        X, y = _as_arrays(first, second, where="data")
        return _from_arrays(
            X, y, validation_fraction=validation_fraction, seed=seed, task=task, name="arrays"
        )
    raise TypeError(
        f"data must be a dataset name (one of {dataset_names()}), an (X, y) pair or "
        f"((X_train, y_train), (X_val, y_val)); got {type(data).__name__}."
    )


def infer_task(y: np.ndarray) -> Task:
    """Guess the task from the labels (see `load_data`); `y` is 1-D."""
    if y.dtype.kind in "bOUSa":  # bool, object (strings), unicode, bytes
        return "classification"
    if y.dtype.kind in "iu":
        n_distinct = np.unique(y).size
        return "classification" if n_distinct <= MAX_INFERRED_CLASSES else "regression"
    return "regression"


# ----------------------------------------------------------------------------------- helpers


def _load_bundled(
    name: str, *, validation_fraction: float, seed: int, task: str | None
) -> Dataset:
    if name not in _BUNDLED:
        raise ValueError(
            f"unknown dataset name {name!r}; bundled names are {dataset_names()}. "
            "Pass your own data as (X, y) or ((X_train, y_train), (X_val, y_val))."
        )
    loader, known_task = _BUNDLED[name]
    X, y = loader(return_X_y=True)
    return _from_arrays(
        np.asarray(X),
        np.asarray(y),
        validation_fraction=validation_fraction,
        seed=seed,
        task=task or known_task,
        name=name,
    )


def _from_arrays(
    X: np.ndarray,
    y: np.ndarray,
    *,
    validation_fraction: float,
    seed: int,
    task: str | None,
    name: str,
) -> Dataset:
    if not (isinstance(validation_fraction, float | int) and 0.0 < validation_fraction < 1.0):
        raise ValueError(
            f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}."
        )
    resolved = _resolve_task(y, task)
    n = X.shape[0]
    n_val = int(np.ceil(validation_fraction * n))
    if n < 2 or n_val >= n:
        raise ValueError(
            f"cannot hold out {validation_fraction:.0%} of {n} rows and keep rows for training; "
            "pass more data, a smaller validation_fraction, or an explicit split."
        )
    stratify = None
    if resolved == "classification":
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError(
                "classification needs at least 2 distinct labels in y; "
                f"got only {classes.tolist()}."
            )
        rare = classes[counts < 2]
        if rare.size:
            raise ValueError(
                f"classes {rare.tolist()} have a single sample, so the hold-out split cannot be "
                "stratified; drop them, add samples, or pass an explicit split "
                "((X_train, y_train), (X_val, y_val))."
            )
        if n_val < classes.size or n - n_val < classes.size:
            raise ValueError(
                f"a stratified hold-out of {n_val} of {n} rows cannot hold all {classes.size} "
                "classes on both sides; change validation_fraction or pass an explicit split."
            )
        stratify = y
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=validation_fraction, random_state=seed, shuffle=True, stratify=stratify
    )
    return _make(X, y, X_train, y_train, X_val, y_val, task=resolved, name=name)


def _from_split(train: Any, val: Any, *, task: str | None) -> Dataset:
    X_train, y_train = _as_arrays(*train, where="the training split")
    X_val, y_val = _as_arrays(*val, where="the validation split")
    if X_train.shape[1] != X_val.shape[1]:
        raise ValueError(
            f"X_train has {X_train.shape[1]} features but X_val has {X_val.shape[1]}; "
            "both splits need the same columns."
        )
    X = np.concatenate([X_train, X_val])  # (n_train + n_val, n_features)
    y = np.concatenate([y_train, y_val])  # (n_train + n_val,)
    resolved = _resolve_task(y, task)
    if resolved == "classification" and np.unique(y_train).size < 2:
        raise ValueError("classification needs at least 2 distinct labels in y_train.")
    return _make(X, y, X_train, y_train, X_val, y_val, task=resolved, name="split")


def _make(
    X: np.ndarray,
    y: np.ndarray,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    task: Task,
    name: str,
) -> Dataset:
    classes = np.unique(y) if task == "classification" else None
    return Dataset(
        X=X,
        y=y,
        X_train=X_train,
        y_train=y_train,
        X_val=X_val,
        y_val=y_val,
        task=task,
        n_features=int(X.shape[1]),
        n_classes=None if classes is None else int(classes.size),
        classes=classes,
        name=name,
    )


def _resolve_task(y: np.ndarray, task: str | None) -> Task:
    if task is None:
        return infer_task(y)
    if task == "regression" and y.dtype.kind not in "iufb":
        raise ValueError(
            f"task='regression' needs numeric targets; y has dtype {y.dtype}. "
            "Use task='classification' or convert y to numbers."
        )
    return "classification" if task == "classification" else "regression"


def _is_split(first: Any, second: Any) -> bool:
    """True for ((X_train, y_train), (X_val, y_val)); not for an (X, y) whose X has 2 rows."""
    return all(
        isinstance(part, (tuple, list)) and len(part) == 2 and np.ndim(part[0]) == 2
        for part in (first, second)
    )


def _as_arrays(X: Any, y: Any, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert one (X, y) to numpy; check X is 2-D, y 1-D (or one column), with the same rows."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(
            f"X in {where} must be 2-D (n_samples, n_features); got shape {X.shape}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()  # a single target column is the common (n, 1) mistake; accept it
    if y.ndim != 1:
        raise ValueError(
            f"y in {where} must be 1-D (n_samples,); got shape {y.shape}. "
            "Multi-output targets are not supported."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            f"X in {where} is empty (shape {X.shape}); pass at least one row and one column."
        )
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y in {where} have different lengths ({X.shape[0]} rows vs {y.shape[0]} "
            "labels); pass one label per row."
        )
    return X, y
