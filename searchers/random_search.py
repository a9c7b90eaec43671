"""Random search: uniform sampling of the unit cube, i.e. of the space's own measure.

Because `searchers.space` maps log domains affinely in log(value), a uniform unit coordinate is a
log-uniform value there; integers and categories get equal-probability cells (log-integers follow
Ray's ``lograndint`` law). Values never influence the next draw (Bergstra & Bengio, JMLR 2012, for
why this baseline is hard to beat in low effective dimension).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchers.base import BaseSearcher
from searchers.core import SearchCore, rng_from_state, rng_state
from searchers.space import SearchSpace

__all__ = ["RandomCore", "RandomSearcher"]


class RandomCore:
    """Draws u ~ U[0, 1]^dim; ``tell`` is a no-op."""

    def __init__(self, space: SearchSpace, *, rng: np.random.Generator) -> None:
        self._dim = space.dim
        self._rng = rng

    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        return self._rng.random(self._dim)  # (dim,)

    def tell(self, u: np.ndarray, value: float) -> None:
        """Random search ignores observations."""

    @property
    def finished(self) -> bool:
        return False

    def state(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng)}

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> RandomCore:
        return cls(space, rng=rng_from_state(state["rng"]))


class RandomSearcher(BaseSearcher):
    """Ray Tune searcher for random search (``make_searcher("random", seed=...)``)."""

    searcher_name = "random"

    def _make_core(self, space: SearchSpace, rng: np.random.Generator) -> SearchCore:
        return RandomCore(space, rng=rng)

    def _core_from_state(self, space: SearchSpace, state: dict[str, Any]) -> SearchCore:
        return RandomCore.from_state(space, state)
