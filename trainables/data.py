"""Datasets handed to trainables: one validated, immutable bundle of arrays per tuning run.

`load_data` accepts three forms and always returns a `Dataset`:

- a bundled scikit-learn name (no download): "digits", "breast_cancer", "wine", "iris"
  (classification) and "diabetes" (regression);
- an ``(X, y)`` pair, split here into a seeded hold-out (stratified for classification);
- an explicit split ``((X_train, y_train), (X_val, y_val))``, kept as given.

Notation: ``X: (n_samples, n_features)``, ``y: (n_samples,)``. ``Dataset.X, Dataset.y`` hold all
the labelled data (train + validation, what cross-validation splits); ``X_train, y_train, X_val,
y_val`` hold the hold-out split that the PyTorch trainable and ``cv=None`` scikit-learn trials use.

Arrays are converted to numpy, except that a pandas DataFrame ``X`` stays a DataFrame (split with
its rows, its column names also in ``Dataset.feature_names`` for messages), so that a scikit-learn
pipeline can select columns by name; ``y`` always becomes an array. Features keep their dtype
(a scikit-learn pipeline may encode strings itself); the PyTorch trainable converts them to
float32 and says so if it cannot. `check_finite` refuses NaN/inf that a model cannot take, naming
the split and column; it is called by the trainables while a run is planned, not by `load_data`
(some scikit-learn estimators take NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn import datasets as _sk_datasets
from sklearn.model_selection import train_test_split

from searchers.validation import InvalidParameterError

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
        X, y: all labelled data, ``(n, n_features)`` (a numpy array, or the DataFrame given) and
            ``(n,)``; cross-validation splits these.
            For an explicit split they are ``X_train`` followed by ``X_val``.
        X_train, y_train, X_val, y_val: the hold-out split.
        task: "classification" or "regression".
        n_features: number of columns of X.
        n_classes: number of distinct labels in y (None for regression).
        classes: the sorted distinct labels of y (None for regression); trainables that need
            integer targets map ``y`` to indices into this array.
        name: the bundled dataset name, "arrays" for an ``(X, y)`` pair, "split" for an explicit
            split.
        feature_names: the column names when X was given as a pandas DataFrame, else None
            (messages then say "column 3", counting from 0).
    """

    X: Any  # np.ndarray, or the pandas DataFrame given
    y: np.ndarray
    X_train: Any
    y_train: np.ndarray
    X_val: Any
    y_val: np.ndarray
    task: Task
    n_features: int
    n_classes: int | None
    classes: np.ndarray | None
    name: str
    feature_names: tuple[str, ...] | None = None

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
        raise InvalidParameterError(
            f"task must be one of {list(TASKS)} or None to infer it; got {task!r}."
        )
    if isinstance(data, Dataset):
        if task is not None and task != data.task:
            raise InvalidParameterError(
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
            X,
            y,
            validation_fraction=validation_fraction,
            seed=seed,
            task=task,
            name="arrays",
            feature_names=_column_names(first),
        )
    raise InvalidParameterError(
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


def check_finite(dataset: Dataset, *, allow_nan: bool = False) -> None:
    """Refuse NaN/inf values that a model cannot take, naming the split, the column and the count.

    X is checked for inf always, and for NaN unless `allow_nan` (estimators that handle missing
    values themselves, such as ``HistGradientBoostingClassifier``). y is always checked: a
    missing target can be neither trained on nor scored. When the training and validation fields
    hold the same arrays (cross-validation data), they are checked once, as "the data".
    Non-numeric columns (strings) are checked for missing values (None, NaN) only.

    Args:
        dataset: the data of a run (see `load_data`).
        allow_nan: accept NaN (and None) in X; inf is still refused.

    Raises:
        ValueError: naming each split ("the training split", "the validation split") and each
            offending column (its DataFrame name, else "column 3", counting from 0) with its
            number of NaN and inf values, and the fix (impute, or drop the rows).

    >>> import numpy as np
    >>> X = np.ones((6, 4)); X[1, 3] = np.nan
    >>> check_finite(load_data(((X[:4], np.arange(4.0)), (X[4:], np.arange(2.0)))))
    Traceback (most recent call last):
    ...
    searchers.validation.InvalidParameterError: X has values ... column 3 (1 NaN). ...
    """
    if dataset.X_train is dataset.X_val and dataset.y_train is dataset.y_val:
        splits = [("the data", dataset.X_train, dataset.y_train)]
    else:
        splits = [
            ("the training split", dataset.X_train, dataset.y_train),
            ("the validation split", dataset.X_val, dataset.y_val),
        ]
    x_parts: list[str] = []
    y_parts: list[str] = []
    for where, X, y in splits:
        names = _column_names(X) or dataset.feature_names
        shown = [
            f"{_describe_column(j, names)} ({_describe_counts(0 if allow_nan else n_nan, n_inf)})"
            for j, n_nan, n_inf in _nonfinite_columns(X)
            if n_inf or (n_nan and not allow_nan)
        ]
        if shown:
            more = len(shown) - _MAX_COLUMNS_NAMED
            listed = ", ".join(shown[:_MAX_COLUMNS_NAMED])
            if more > 0:
                listed += f" and {more} more columns"
            x_parts.append(f"in {where}, {listed}")
        if y is not None:
            n_nan, n_inf = _nonfinite_counts(np.asarray(y).ravel())
            if n_nan or n_inf:
                y_parts.append(f"in {where}, {_describe_counts(n_nan, n_inf)}")
    messages = []
    if x_parts:
        if allow_nan:
            fix = "Replace inf by NaN or a finite value, or drop those rows, before tuning."
        else:
            fix = (
                "Impute them (e.g. sklearn.impute.SimpleImputer, fitted on the training rows) "
                "or drop those rows before tuning."
            )
        messages.append(f"X has values the model cannot take: {'; '.join(x_parts)}. {fix}")
    if y_parts:
        messages.append(
            f"y (the target) has NaN/inf values: {'; '.join(y_parts)}. Drop those rows: a "
            "missing target can be neither trained on nor scored."
        )
    if messages:
        raise InvalidParameterError(" Also, ".join(messages))


# ----------------------------------------------------------------------------------- helpers

# Columns listed by name in a `check_finite` message; the rest are counted.
_MAX_COLUMNS_NAMED = 10


def _load_bundled(
    name: str, *, validation_fraction: float, seed: int, task: str | None
) -> Dataset:
    if name not in _BUNDLED:
        raise InvalidParameterError(
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
    feature_names: tuple[str, ...] | None = None,
) -> Dataset:
    if not (isinstance(validation_fraction, float | int) and 0.0 < validation_fraction < 1.0):
        raise InvalidParameterError(
            f"validation_fraction must be a number in (0, 1); got {validation_fraction!r}."
        )
    resolved = _resolve_task(y, task)
    n = X.shape[0]
    n_val = int(np.ceil(validation_fraction * n))
    if n < 2 or n_val >= n:
        raise InvalidParameterError(
            f"cannot hold out {validation_fraction:.0%} of {n} rows and keep rows for training; "
            "pass more data, a smaller validation_fraction, or an explicit split."
        )
    stratify = None
    if resolved == "classification":
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise InvalidParameterError(
                "classification needs at least 2 distinct labels in y; "
                f"got only {classes.tolist()}."
            )
        rare = classes[counts < 2]
        if rare.size:
            raise InvalidParameterError(
                f"classes {rare.tolist()} have a single sample, so the hold-out split cannot be "
                "stratified; drop them, add samples, or pass an explicit split "
                "((X_train, y_train), (X_val, y_val))."
            )
        if n_val < classes.size or n - n_val < classes.size:
            raise InvalidParameterError(
                f"a stratified hold-out of {n_val} of {n} rows cannot hold all {classes.size} "
                "classes on both sides; change validation_fraction or pass an explicit split."
            )
        stratify = y
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=validation_fraction, random_state=seed, shuffle=True, stratify=stratify
    )
    return _make(
        X, y, X_train, y_train, X_val, y_val, task=resolved, name=name, feature_names=feature_names
    )


def _from_split(train: Any, val: Any, *, task: str | None) -> Dataset:
    X_train, y_train = _as_arrays(*train, where="the training split")
    X_val, y_val = _as_arrays(*val, where="the validation split")
    if X_train.shape[1] != X_val.shape[1]:
        raise InvalidParameterError(
            f"X_train has {X_train.shape[1]} features but X_val has {X_val.shape[1]}; "
            "both splits need the same columns."
        )
    if _is_frame(X_train) and _is_frame(X_val):
        import pandas as pd

        X = pd.concat([X_train, X_val], ignore_index=True)  # (n_train + n_val, n_features)
    else:
        X_train, X_val = np.asarray(X_train), np.asarray(X_val)
        X = np.concatenate([X_train, X_val])  # (n_train + n_val, n_features)
    y = np.concatenate([y_train, y_val])  # (n_train + n_val,)
    resolved = _resolve_task(y, task)
    if resolved == "classification" and np.unique(y_train).size < 2:
        raise InvalidParameterError("classification needs at least 2 distinct labels in y_train.")
    return _make(
        X,
        y,
        X_train,
        y_train,
        X_val,
        y_val,
        task=resolved,
        name="split",
        feature_names=_column_names(train[0]),
    )


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
    feature_names: tuple[str, ...] | None = None,
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
        feature_names=feature_names,
    )


def _resolve_task(y: np.ndarray, task: str | None) -> Task:
    if task is None:
        return infer_task(y)
    if task == "regression" and y.dtype.kind not in "iufb":
        raise InvalidParameterError(
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


def _as_arrays(X: Any, y: Any, *, where: str) -> tuple[Any, np.ndarray]:
    """Convert one (X, y) to numpy, except that a DataFrame X stays one (a scikit-learn pipeline
    may select its columns by name); check X is 2-D, y 1-D (or one column), with the same rows."""
    if not _is_frame(X):
        X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise InvalidParameterError(
            f"X in {where} must be 2-D (n_samples, n_features); got shape {X.shape}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()  # a single target column is the common (n, 1) mistake; accept it
    if y.ndim != 1:
        raise InvalidParameterError(
            f"y in {where} must be 1-D (n_samples,); got shape {y.shape}. "
            "Multi-output targets are not supported."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidParameterError(
            f"X in {where} is empty (shape {X.shape}); pass at least one row and one column."
        )
    if X.shape[0] != y.shape[0]:
        raise InvalidParameterError(
            f"X and y in {where} have different lengths ({X.shape[0]} rows vs {y.shape[0]} "
            "labels); pass one label per row."
        )
    return X, y


def _is_frame(X: Any) -> bool:
    return hasattr(X, "iloc") and hasattr(X, "columns")


def _column_names(X: Any) -> tuple[str, ...] | None:
    """A DataFrame's column names as strings (ints stay readable: 3 -> "3"), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or np.ndim(X) != 2:
        return None
    return tuple(str(c) for c in columns)


def _describe_column(j: int, names: tuple[str, ...] | None) -> str:
    if names is not None and j < len(names):
        return f"column {names[j]!r}"
    return f"column {j}"


def _describe_counts(n_nan: int, n_inf: int) -> str:
    parts = [f"{n_nan} NaN"] if n_nan else []
    return ", ".join([*parts, f"{n_inf} inf"] if n_inf else parts)


def _nonfinite_columns(X: Any) -> list[tuple[int, int, int]]:
    """``(column index, NaN count, inf count)`` for every column of X holding NaN or inf.

    X is a numpy array, a pandas DataFrame or a scipy sparse matrix ``(n, n_features)``.
    """
    if hasattr(X, "iloc") and np.ndim(X) == 2:  # a DataFrame: dtypes differ per column
        from pandas.api.types import is_numeric_dtype

        out = []
        for j in range(X.shape[1]):
            column = X.iloc[:, j]
            if is_numeric_dtype(column.dtype):
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)  # (n,)
            else:
                values = column.to_numpy(dtype=object)  # (n,)
            n_nan, n_inf = _nonfinite_counts(values)
            if n_nan or n_inf:
                out.append((j, n_nan, n_inf))
        return out
    import scipy.sparse

    if scipy.sparse.issparse(X):
        coo = X.tocoo()
        if coo.data.dtype.kind not in "fc":
            return []
        n_columns = X.shape[1]
        nan = np.bincount(coo.col[np.isnan(coo.data)], minlength=n_columns)  # (n_features,)
        inf = np.bincount(coo.col[np.isinf(coo.data)], minlength=n_columns)  # (n_features,)
        return [(int(j), int(nan[j]), int(inf[j])) for j in np.flatnonzero(nan + inf)]
    X = np.asarray(X)
    if X.ndim != 2:
        return []
    if X.dtype.kind in "fc":
        if np.isfinite(X).all():
            return []
        nan = np.isnan(X).sum(axis=0)  # (n_features,)
        inf = np.isinf(X).sum(axis=0)  # (n_features,)
        return [(int(j), int(nan[j]), int(inf[j])) for j in np.flatnonzero(nan + inf)]
    if X.dtype.kind != "O":
        return []  # integers, booleans and strings hold neither NaN nor inf
    out = []
    for j in range(X.shape[1]):
        n_nan, n_inf = _nonfinite_counts(X[:, j])
        if n_nan or n_inf:
            out.append((j, n_nan, n_inf))
    return out


def _nonfinite_counts(values: np.ndarray) -> tuple[int, int]:
    """NaN (None, pandas NA, NaT in object arrays) and inf counts of a 1-D array."""
    if values.dtype.kind in "fc":
        return int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if values.dtype.kind != "O":
        return 0, 0
    import pandas as pd

    n_nan = int(pd.isna(values).sum())
    n_inf = sum(1 for v in values if isinstance(v, float | np.floating) and math.isinf(v))
    return n_nan, n_inf
