"""Shared pieces of the population cores (`searchers.pso`, `searchers.genetic`). No Ray here.

Both cores keep their members on the unit cube and emit points *snapped* to the space's levels
(`searchers.space.Lattice`),
so that the point the base tells back (``to_unit(from_unit(u))``) is the point they asked, up to
float round-off in log domains; `InFlight` matches the two with a tolerance.

Notation:
    dim: number of dimensions; n_pop: population (swarm) size; n_flight: points asked, not told.
    u: (dim,) float64 in [0, 1].
    levels[d]: (n_d,) unit coordinates of discrete dimension d's values (None when continuous).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "InFlight",
    "QuasiRandom",
    "array_from_json",
    "array_to_json",
    "is_near_any",
    "reflect",
]

#: Max-abs distance under which a told point is the asked point (log round-trips differ ~1e-16).
MATCH_TOL = 1e-9


class QuasiRandom:
    """The additive recurrence ("R_d sequence", Roberts 2018): point i is frac(shift + i * alpha),
    with alpha_j = phi_d^-(j+1) and phi_d the positive root of x^(d+1) = x + 1.

    Low discrepancy in any dimension, so an initial population covers the cube more evenly than
    i.i.d. draws; its whole state is a random shift and a counter (exact save/restore).
    """

    def __init__(self, dim: int, shift: np.ndarray, index: int = 0) -> None:
        phi = 2.0
        for _ in range(64):  # Newton on x^(d+1) - x - 1 from above converges monotonically
            phi -= (phi ** (dim + 1) - phi - 1.0) / ((dim + 1) * phi**dim - 1.0)
        self.alpha = phi ** -np.arange(1, dim + 1, dtype=np.float64)  # (dim,)
        self.shift = np.asarray(shift, dtype=np.float64)  # (dim,)
        self.index = int(index)

    def next(self) -> np.ndarray:
        self.index += 1
        return np.mod(self.shift + self.index * self.alpha, 1.0)  # (dim,)


class InFlight:
    """Points asked and not told yet, each with a JSON-safe tag saying who asked it.

    A point the base discarded (a duplicate of a config in flight, or an observation it dropped)
    is never told; `reconcile` forgets every point absent from the base's pending list.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.points: list[np.ndarray] = []
        self.tags: list[list[Any]] = []

    def add(self, u: np.ndarray, tag: list[Any]) -> None:
        self.points.append(np.array(u, dtype=np.float64))
        self.tags.append(tag)

    def pop(self, u: np.ndarray) -> list[Any] | None:
        """The tag of the in-flight point equal to ``u`` (removed), or None if none is."""
        i = self._find(u)
        if i is None:
            return None
        self.points.pop(i)
        return self.tags.pop(i)

    def reconcile(self, pending: np.ndarray) -> list[list[Any]]:
        """Forget the points not in ``pending`` ((n_pending, dim)); return their tags."""
        keep_p: list[np.ndarray] = []
        keep_t: list[list[Any]] = []
        dropped: list[list[Any]] = []
        for p, t in zip(self.points, self.tags, strict=True):
            if len(pending) and np.min(np.max(np.abs(pending - p), axis=1)) <= MATCH_TOL:
                keep_p.append(p)
                keep_t.append(t)
            else:
                dropped.append(t)
        self.points, self.tags = keep_p, keep_t
        return dropped

    def state(self) -> dict[str, Any]:
        return {"points": [p.tolist() for p in self.points], "tags": [list(t) for t in self.tags]}

    @classmethod
    def from_state(cls, dim: int, state: dict[str, Any]) -> InFlight:
        out = cls(dim)
        for p, t in zip(state["points"], state["tags"], strict=True):
            out.add(np.array(p, dtype=np.float64), list(t))
        return out

    def _find(self, u: np.ndarray) -> int | None:
        if not self.points:
            return None
        gaps = np.max(np.abs(np.stack(self.points) - u), axis=1)  # (n_flight,)
        i = int(np.argmin(gaps))
        return i if gaps[i] <= MATCH_TOL else None


def is_near_any(u: np.ndarray, points: np.ndarray) -> bool:
    """Whether ``u`` equals (within `MATCH_TOL`) a row of ``points`` ((n, dim))."""
    return bool(len(points)) and bool(np.min(np.max(np.abs(points - u), axis=1)) <= MATCH_TOL)


def reflect(x: np.ndarray) -> np.ndarray:
    """Fold ``x`` back into [0, 1] by mirror reflection at the bounds (any overshoot).

    Unlike clipping, reflection leaves no probability mass on the bounds, so members do not pile
    up there (Helwig, Branke & Mostaghim, IEEE TEC 2013, compare bound handlers for PSO).
    """
    y = np.mod(x, 2.0)
    return np.where(y > 1.0, 2.0 - y, y)


def array_to_json(a: np.ndarray) -> list[Any]:
    """A float array as nested lists, with +inf (an unset best value) written as None."""
    return (
        [None if isinstance(v, float) and math.isinf(v) else v for v in a.tolist()]
        if (a.ndim == 1)
        else [array_to_json(row) for row in a]
    )


def array_from_json(data: list[Any]) -> np.ndarray:
    """Inverse of `array_to_json`."""

    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return [conv(w) for w in v]
        return math.inf if v is None else float(v)

    return np.array(conv(data), dtype=np.float64)
