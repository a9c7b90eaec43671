"""Shared pieces of the population cores (`searchers.pso`, `searchers.genetic`). No Ray here.

Both cores keep their members on the unit cube and emit points *snapped* to the space's levels
(`searchers.space.Lattice`),
so that the point the base tells back (``to_unit(from_unit(u))``) is the point they asked, up to
float round-off in log domains; `InFlight` matches the two with a tolerance.

On a discrete space a move, a mutation or a local step often lands on a config already observed
or in flight: a wasted trial (5 runs of 100 sequential suggestions on 300 configs repeated 195
(pso) and 271 (genetic) times). `Observed` keeps every point told and `first_new` replaces such a
proposal by the core's own perturbation of it, then by a random point of the space.

Notation:
    dim: number of dimensions; n_pop: population (swarm) size; n_flight: points asked, not told.
    u: (dim,) float64 in [0, 1]; n_told: distinct points told.
    levels[d]: (n_d,) unit coordinates of discrete dimension d's values (None when continuous).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from searchers.space import Lattice, is_new

__all__ = [
    "InFlight",
    "Observed",
    "QuasiRandom",
    "array_from_json",
    "array_to_json",
    "first_new",
    "is_near_any",
    "reflect",
]

#: Max-abs distance under which a told point is the asked point (log round-trips differ ~1e-16).
MATCH_TOL = 1e-9
#: A proposal repeating a config is redrawn this many times by the core's own perturbation, then
#: replaced by uniform points of the space (batches of RANDOM_DRAWS, RANDOM_BATCHES of them)
#: before the repeat is accepted: 256 draws miss the last 10 new configs of 300 with probability
#: 2e-4, so a repeat comes only when the space is nearly exhausted (as `searchers.tpe`).
REDRAWS = 8
RANDOM_DRAWS = 64
RANDOM_BATCHES = 4


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


class Observed:
    """The distinct points told so far, for `first_new`; JSON-safe state (a list of rows).

    Rows live in a buffer grown by doubling, so a tell costs O(n_told * dim) numpy work (the
    duplicate check), never a Python loop over the history.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._buf = np.zeros((16, dim))  # (capacity, dim)
        self._n = 0

    def add(self, u: np.ndarray) -> None:
        """Remember ``u`` ((dim,)) unless it is already (a told config may be told again)."""
        if is_near_any(u, self.rows):
            return
        if self._n == len(self._buf):
            self._buf = np.vstack([self._buf, np.zeros_like(self._buf)])  # (2 capacity, dim)
        self._buf[self._n] = u
        self._n += 1

    @property
    def rows(self) -> np.ndarray:
        """(n_told, dim) the points, a read-only view."""
        view = self._buf[: self._n]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._n

    def state(self) -> list[list[float]]:
        rows: list[list[float]] = self.rows.tolist()
        return rows

    @classmethod
    def from_state(cls, dim: int, rows: list[list[float]]) -> Observed:
        out = cls(dim)
        for row in rows:
            out.add(np.array(row, dtype=np.float64).reshape(dim))
        return out


def first_new(
    u: np.ndarray,
    taken: np.ndarray,
    redraw: Callable[[np.ndarray, int], np.ndarray],
    lattice: Lattice,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """``u`` ((dim,), snapped) when it is no row of ``taken`` ((n, dim): the configs observed or
    pending), else the first new one of: ``redraw(previous, attempt)`` for attempts 1 to
    `REDRAWS` (the core's perturbation; ``previous`` is the last point tried), then uniform
    points of the space. None when none is new (a nearly exhausted space): the caller picks
    which repeat to make.

    Draws from ``rng`` only when ``u`` repeats a config, so a run without repeats (any run on a
    continuous space) suggests exactly what it did before this check existed.
    """
    if lattice.dim == 0 or not is_near_any(u, taken):
        return u
    candidate = u
    for attempt in range(1, REDRAWS + 1):
        candidate = redraw(candidate, attempt)
        if not is_near_any(candidate, taken):
            return candidate
    for _ in range(RANDOM_BATCHES):
        draws = lattice.snap_rows(rng.random((RANDOM_DRAWS, lattice.dim)))  # (m, dim)
        new = np.flatnonzero(is_new(draws, taken))
        if len(new):
            return draws[int(new[0])]
    return None


def is_near_any(u: np.ndarray, points: np.ndarray) -> bool:
    """Whether ``u`` equals (within `MATCH_TOL`) a row of ``points`` ((n, dim))."""
    if not len(points) or not points.shape[1]:  # with no dimension every point is the same
        return bool(len(points))
    return bool(np.min(np.max(np.abs(points - u), axis=1)) <= MATCH_TOL)


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
