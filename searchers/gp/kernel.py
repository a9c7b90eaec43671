"""The GP's input features and its Matérn-5/2 ARD kernel, with gradients. numpy only.

The model never sees unit-cube points directly: `FeatureMap` turns them into features, one column
per numeric dimension (its unit coordinate) and a one-hot block per categorical dimension, so the
kernel's distance between two categories is the same whatever their order (rounding a category's
unit coordinate would make "relu" closer to "tanh" than to "gelu" only because of list order).
The length scales are per *space* dimension (ARD): a one-hot block shares one length scale.

Notation:
    dim: space dimensions; F: feature columns (dim plus, per categorical, n_choices - 1).
    U: (m, dim) unit points; X: (m, F) features; owner: (F,) the space dimension of each column.
    lengthscales: (dim,) > 0; variance: signal variance > 0.
    r2: squared scaled distance sum_f (x_f - x'_f)^2 / l_owner(f)^2.

    k(r2) = variance (1 + sqrt5 r + 5/3 r2) exp(-sqrt5 r),   r = sqrt(r2)
    dk/dr2 = -5/6 variance (1 + sqrt5 r) exp(-sqrt5 r)        (finite at r = 0, hence used)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["FeatureMap", "Matern52", "matern52_dr2", "matern52_value"]

SQRT5 = math.sqrt(5.0)


class FeatureMap:
    """Unit-cube points to kernel features (one-hot for categoricals) and back."""

    def __init__(self, kinds: Sequence[str], n_choices: Sequence[int | None]) -> None:
        self.dim = len(kinds)
        owner: list[int] = []
        self.column: list[int] = []  # first feature column of each dimension
        self.n_cat: list[int] = []  # n_choices for categoricals, 0 otherwise
        for d, (kind, n) in enumerate(zip(kinds, n_choices, strict=True)):
            self.column.append(len(owner))
            width = int(n or 1) if kind == "categorical" else 1
            self.n_cat.append(width if kind == "categorical" else 0)
            owner.extend([d] * width)
        self.owner = np.array(owner, dtype=np.int64)  # (F,)
        self.n_features = len(owner)
        self.numeric_dims = [d for d in range(self.dim) if self.n_cat[d] == 0]
        self.numeric_columns = np.array(
            [self.column[d] for d in self.numeric_dims], dtype=np.int64
        )  # (n_numeric,)

    def encode(self, U: np.ndarray) -> np.ndarray:
        """Features of unit points ``U`` ((m, dim)) as (m, F)."""
        U = np.atleast_2d(np.asarray(U, dtype=np.float64))
        X = np.zeros((U.shape[0], self.n_features))  # (m, F)
        for d in range(self.dim):
            c, n = self.column[d], self.n_cat[d]
            if n == 0:
                X[:, c] = U[:, d]
            else:
                idx = np.clip(np.floor(U[:, d] * n).astype(np.int64), 0, n - 1)  # (m,)
                X[np.arange(U.shape[0]), c + idx] = 1.0
        return X

    def expand(self, per_dim: np.ndarray) -> np.ndarray:
        """A per-dimension array ((dim,)) repeated over each dimension's columns ((F,))."""
        return np.asarray(per_dim)[self.owner]


def matern52_value(r2: np.ndarray) -> np.ndarray:
    """The unit-variance Matérn-5/2 correlation at squared scaled distance ``r2``."""
    r = np.sqrt(np.maximum(r2, 0.0))
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * np.exp(-SQRT5 * r)


def matern52_dr2(r2: np.ndarray) -> np.ndarray:
    """d/dr2 of `matern52_value` (negative; -5/6 at r2 = 0)."""
    r = np.sqrt(np.maximum(r2, 0.0))
    return -(5.0 / 6.0) * (1.0 + SQRT5 * r) * np.exp(-SQRT5 * r)


class Matern52:
    """Matérn-5/2 with one length scale per space dimension, on `FeatureMap` features."""

    def __init__(self, lengthscales: np.ndarray, variance: float, owner: np.ndarray) -> None:
        self.lengthscales = np.asarray(lengthscales, dtype=np.float64)  # (dim,)
        self.variance = float(variance)
        self.owner = np.asarray(owner, dtype=np.int64)  # (F,)
        self._inv_l = 1.0 / self.lengthscales[self.owner]  # (F,)

    def __call__(self, X1: np.ndarray, X2: np.ndarray) -> np.ndarray:
        """The covariance matrix (n1, n2)."""
        return self.variance * matern52_value(self.r2(X1, X2))

    def r2(self, X1: np.ndarray, X2: np.ndarray) -> np.ndarray:
        A, B = X1 * self._inv_l, X2 * self._inv_l  # (n1, F), (n2, F)
        r2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * A @ B.T  # (n1, n2)
        return np.maximum(r2, 0.0)

    def with_hyper_gradients(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """K (n, n), dk/dr2 times variance (n, n) and S (dim, n, n), where
        S[d] = sum over d's columns of (x_f - x'_f)^2 / l_d^2, so that
        dK/dlog l_d = -2 (variance dk/dr2) * S[d] and dK/dlog variance = K."""
        dim = len(self.lengthscales)
        Z = X * self._inv_l  # (n, F)
        S = np.zeros((dim, X.shape[0], X.shape[0]))  # (dim, n, n)
        for f in range(X.shape[1]):
            diff = Z[:, f, None] - Z[None, :, f]  # (n, n)
            S[self.owner[f]] += diff * diff
        r2 = S.sum(0)  # (n, n)
        return self.variance * matern52_value(r2), self.variance * matern52_dr2(r2), S

    def with_input_gradient(self, Xq: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """k(Xq, X) (m, n) and its gradient wrt the query features (m, n, F)."""
        r2 = self.r2(Xq, X)  # (m, n)
        k = self.variance * matern52_value(r2)
        dk_dr2 = self.variance * matern52_dr2(r2)  # (m, n)
        scaled = (Xq[:, None, :] - X[None, :, :]) * (self._inv_l**2)  # (m, n, F)
        return k, 2.0 * dk_dr2[:, :, None] * scaled
