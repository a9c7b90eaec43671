"""Search strategies for hpt_ray: a registry of Ray Tune searchers by name.

    make_searcher("random", seed=0)   # our own cores, on `searchers.base.BaseSearcher`
    make_searcher("grid")             # sklearn ParameterGrid order, then FINISHED
    make_searcher("optuna-tpe", seed=0, n_startup_trials=5)   # a wrapped library searcher

Every searcher works inside a Ray ``Tuner`` (which calls ``set_search_properties``) and driven
directly without a Ray runtime (``set_search_properties`` / ``suggest`` / ``on_trial_complete``).
Later issues add their searchers with ``register(name, factory)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray.tune.search import Searcher

from searchers.base import BaseSearcher
from searchers.genetic import GeneticSearcher
from searchers.gp_ei import GPEISearcher
from searchers.grid import GridSearcher
from searchers.pso import PSOSearcher
from searchers.random_search import RandomSearcher
from searchers.space import SearchSpace
from searchers.wrapped import BACKENDS, WrappedSearcher

__all__ = [
    "BaseSearcher",
    "GPEISearcher",
    "GeneticSearcher",
    "GridSearcher",
    "PSOSearcher",
    "RandomSearcher",
    "SearchSpace",
    "WrappedSearcher",
    "available",
    "make_searcher",
    "register",
    "supports_grid",
]

SearcherFactory = Callable[..., Searcher]


@dataclass(frozen=True)
class _Entry:
    factory: SearcherFactory
    grid: bool


_REGISTRY: dict[str, _Entry] = {}


def register(name: str, factory: SearcherFactory, *, grid: bool = False) -> None:
    """Register ``factory(*, seed=None, **options) -> Searcher`` under ``name``.

    ``grid``: the searcher accepts ``grid_search`` axes in its space. Re-registering a name
    replaces it (so a later issue can swap an implementation).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"searcher name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {factory!r}")
    _REGISTRY[name] = _Entry(factory, bool(grid))


def available() -> list[str]:
    """Registered searcher names, sorted."""
    return sorted(_REGISTRY)


def supports_grid(name: str) -> bool:
    """Whether searcher ``name`` accepts ``{"grid_search": [...]}`` in its space."""
    return _entry(name).grid


def make_searcher(name: str, *, seed: int | None = None, **options: Any) -> Searcher:
    """A new searcher ``name`` seeded with ``seed``; ``options`` go to its constructor.

    Unknown name: ValueError listing the available ones. Unknown option: TypeError naming it and
    the accepted ones.
    """
    entry = _entry(name)
    _check_options(name, entry.factory, options)
    return entry.factory(seed=seed, **options)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown searcher {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def _check_options(name: str, factory: SearcherFactory, options: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature: let it check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the factory validates its own **options (the wrapped ones do)
    accepted = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    for option in options:
        if option not in accepted:
            raise TypeError(
                f"searcher {name!r} got an unknown option {option!r}; it accepts "
                f"{sorted(accepted)}"
            )


def _random(
    *, seed: int | None = None, space: Any = None, metric: str | None = None,
    mode: str | None = None, points_to_evaluate: list[dict[str, Any]] | None = None,
    duplicate_retries: int = 16, random_retries: int = 64,
) -> Searcher:
    return RandomSearcher(
        seed=seed, space=space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate,
        duplicate_retries=duplicate_retries, random_retries=random_retries,
    )


def _grid(
    *, seed: int | None = None, space: Any = None, metric: str | None = None,
    mode: str | None = None, points_to_evaluate: list[dict[str, Any]] | None = None,
    max_axis_values: int = 64,
) -> Searcher:
    return GridSearcher(
        seed=seed, space=space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate,
        max_axis_values=max_axis_values,
    )


def _wrapped_factory(algorithm: str) -> SearcherFactory:
    def factory(*, seed: int | None = None, **options: Any) -> Searcher:
        return WrappedSearcher(algorithm, seed=seed, **options)

    factory.__name__ = f"make_{algorithm.replace('-', '_')}"
    return factory


register("random", _random)
register("grid", _grid, grid=True)
register("pso", PSOSearcher)
register("genetic", GeneticSearcher)
register("gp-ei", GPEISearcher)
for _name in BACKENDS:
    register(_name, _wrapped_factory(_name))
