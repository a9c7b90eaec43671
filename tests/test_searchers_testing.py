"""The shipped conformance suite (`searchers.testing`) on a searcher added through ``register``.

A tiny local-search core, written as a user would on the public pieces (`SearchCore` protocol,
`CoreSearcher`), passes every check; broken variants of it fail the check they break, so the
suite can fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import searchers
from searchers.adapters import CoreSearcher
from searchers.core import rng_from_state, rng_state
from searchers.space import SearchSpace
from searchers.testing import SearcherTestCase, run_all, run_check


@dataclass(frozen=True)
class LocalOptions:
    """step: standard deviation of the Gaussian step around the best point (unit coordinates)."""

    step: float = 0.2


class LocalCore:
    """Random points until one is told, then Gaussian steps around the best point told."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: LocalOptions
    ) -> None:
        self._dim = space.dim
        self._rng = rng
        self._step = options.step
        self._best: tuple[float, list[float]] | None = None

    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        if self._best is None:
            return self._rng.random(self._dim)  # (dim,)
        centre = np.array(self._best[1])  # (dim,)
        return np.clip(centre + self._step * self._rng.standard_normal(self._dim), 0.0, 1.0)

    def tell(self, u: np.ndarray, value: float) -> None:
        if self._best is None or value < self._best[0]:
            self._best = (float(value), [float(x) for x in u])

    @property
    def finished(self) -> bool:
        return False

    def state(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng), "step": self._step, "best": self._best}

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> LocalCore:
        core = cls(space, rng=rng_from_state(state["rng"]), options=LocalOptions(state["step"]))
        best = state["best"]
        core._best = None if best is None else (float(best[0]), [float(x) for x in best[1]])
        return core


class LocalSearcher(CoreSearcher):
    searcher_name = "test-local"
    core_class = LocalCore
    options_class = LocalOptions


class UnseededLocalSearcher(LocalSearcher):
    """Broken: ignores its seed."""

    searcher_name = "test-unseeded"

    def __init__(self, *, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed=None, **kwargs)


class ForgetfulLocalSearcher(LocalSearcher):
    """Broken: its state forgets the core, so a restored one starts over."""

    searcher_name = "test-forgetful"

    def _load_algorithm_state(self, state: Any) -> None:
        super()._load_algorithm_state({**state, "core": self._ready_core().state()})


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    added = {
        "test-local": LocalSearcher,
        "test-unseeded": UnseededLocalSearcher,
        "test-forgetful": ForgetfulLocalSearcher,
    }
    for name, factory in added.items():
        searchers.register(name, factory)
    try:
        yield
    finally:
        for name in added:
            searchers._REGISTRY.pop(name)


class TestRegisteredLocalSearcher(SearcherTestCase):
    @pytest.fixture
    def name(self) -> str:
        return "test-local"


def test_run_all_passes_in_the_model_phase() -> None:
    run_all("test-local", {"step": 0.05})


def test_a_searcher_that_ignores_its_seed_fails_same_seed() -> None:
    with pytest.raises(AssertionError):
        run_check("same_seed", "test-unseeded", None, {})
    assert run_check("values_in_domain", "test-unseeded", None, {}) is None


def test_a_searcher_whose_state_forgets_fails_save_restore() -> None:
    with pytest.raises(AssertionError):
        run_check("save_restore", "test-forgetful", None, {})


def test_a_known_failure_must_fail() -> None:
    assert run_check("same_seed", "test-unseeded", None, {"same_seed": "no seed"}) == "no seed"
    with pytest.raises(AssertionError, match="passed although listed as failing"):
        run_check("same_seed", "test-local", None, {"same_seed": "wrongly listed"})
