"""Grid search with scikit-learn ``ParameterGrid`` semantics.

Axes are ``{"grid_search": [...]}`` values, ``tune.choice`` categories and, as a convenience, every
discrete numeric domain (``tune.randint``/``qrandint``/``quniform``...) with at most
``GridOptions.max_axis_values`` values, listed in increasing order. A continuous float domain is
refused. Points are the cartesian product in ``ParameterGrid`` order: axes sorted by name (nested
keys flattened to "a/b"), the last axis varying fastest. Each point is suggested once, then
``suggest`` returns ``Searcher.FINISHED``. A conditional choice (a choice of dicts with their own
domains) is ParameterGrid over a list of dicts: each branch's own grid, one branch after the other.
``points_to_evaluate`` come first; a grid point equal to a config already in flight is not
suggested again. ``seed`` is accepted for a uniform API, unused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from searchers.space import SearchSpace
from searchers.validation import Interval, check

__all__ = ["GridCore", "GridOptions"]


@dataclass(frozen=True)
class GridOptions:
    """max_axis_values: largest discrete numeric domain taken as a grid axis (a bigger one is
    refused rather than silently making a grid of a million points)."""

    max_axis_values: int = 64

    def __post_init__(self) -> None:
        check("max_axis_values", self.max_axis_values, Interval(int, 1, None))


class GridCore:
    """Enumerates the product of each dimension's unit levels, last dimension fastest."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        rng: np.random.Generator | None = None,
        options: GridOptions = GridOptions(),
        position: int = 0,
    ) -> None:
        self._levels: list[np.ndarray] = []
        for d, param in enumerate(space.params):
            levels = space.unit_levels(d)
            if levels is None:
                raise ValueError(
                    f"parameter {param.name!r}: a continuous float domain cannot be a grid axis; "
                    "give its values with tune.grid_search([...]) / tune.choice([...]), use "
                    "tune.quniform, or use searcher='random'"
                )
            if param.kind != "categorical" and len(levels) > options.max_axis_values:
                raise ValueError(
                    f"parameter {param.name!r}: a numeric domain with {len(levels)} values is "
                    f"more than the {options.max_axis_values} a grid axis takes; list the values "
                    "with tune.grid_search([...]) or use searcher='random'"
                )
            self._levels.append(levels)
        self._options = options
        self._space = space
        # A conditional space: one block per combination of branches, each its own grid
        # (ParameterGrid over a list of dicts); (block, first position of the block).
        self._blocks: list[tuple[tuple[dict[int, int], list[int]], int]] = []
        if space.conditional:
            start = 0
            for block in space.grid_blocks():
                self._blocks.append((block, start))
                start += math.prod(len(self._levels[d]) for d in block[1])
            self.size = start
        else:
            self.size = math.prod(len(levels) for levels in self._levels)
        self._position = position

    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        if self._position >= self.size:
            return None
        index = self._position
        self._position += 1
        if self._blocks:
            block, start = next((b, s) for b, s in reversed(self._blocks) if s <= index)
            return self._space.grid_unit(block, index - start)
        u = np.empty(len(self._levels))  # (dim,)
        for d in reversed(range(len(self._levels))):
            index, digit = divmod(index, len(self._levels[d]))
            u[d] = self._levels[d][digit]
        return u

    def tell(self, u: np.ndarray, value: float) -> None:
        """A grid ignores observations."""

    @property
    def finished(self) -> bool:
        return self._position >= self.size

    def state(self) -> dict[str, Any]:
        return {"position": self._position, "max_axis_values": self._options.max_axis_values}

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> GridCore:
        options = GridOptions(max_axis_values=int(state["max_axis_values"]))
        return cls(space, options=options, position=int(state["position"]))
