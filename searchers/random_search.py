"""Random search: uniform sampling of the unit cube, i.e. of the space's own measure.

Because `searchers.space` maps log domains affinely in log(value), a uniform unit coordinate is a
log-uniform value there; integers and categories get equal-probability cells (log-integers follow
Ray's ``lograndint`` law). Values never influence the next draw (Bergstra & Bengio, JMLR 2012, for
why this baseline is hard to beat in low effective dimension).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from searchers.core import rng_from_state, rng_state
from searchers.space import SearchSpace

__all__ = ["RandomCore", "RandomOptions"]


@dataclass(frozen=True)
class RandomOptions:
    """Random search has no options of its own (the shell's ``duplicate_retries`` and
    ``random_retries`` apply to it as to every core)."""


class RandomCore:
    """Draws u ~ U[0, 1]^dim; ``tell`` is a no-op."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        rng: np.random.Generator,
        options: RandomOptions = RandomOptions(),
    ) -> None:
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
