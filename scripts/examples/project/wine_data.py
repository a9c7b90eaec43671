"""A data factory, as a project would write one: load, clean and split the data once, on the
driver; ``hpt-ray run`` calls ``load(**options)`` and hands the result to every trial.

Used by ``softmax_function.yaml`` (``data: {factory: wine_data:load, options: {...}}``).
"""

from __future__ import annotations

from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split


def load(val_fraction: float = 0.25, seed: int = 0):
    """((X_train, y_train), (X_val, y_val)): the wine data, standardized on the training rows."""
    X, y = load_wine(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=val_fraction, stratify=y, random_state=seed
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-12
    return ((X_train - mean) / std, y_train), ((X_val - mean) / std, y_val)
