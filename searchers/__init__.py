"""Search strategies for hpt_ray: a registry of Ray Tune searchers by name.

    make_searcher("random", seed=0)   # our own cores, on `searchers.base.BaseSearcher`
    make_searcher("grid")             # sklearn ParameterGrid order, then FINISHED
    make_searcher("optuna-tpe", seed=0, n_startup_trials=5)   # a wrapped library searcher

Every searcher works inside a Ray ``Tuner`` (which calls ``set_search_properties``) and driven
directly without a Ray runtime (``set_search_properties`` / ``suggest`` / ``on_trial_complete``).
Later issues add their searchers with ``register(name, factory)``; `searchers.testing` is the
conformance suite a new searcher runs.

Importing this package loads no Ray: the built-in searchers are imported on first use of their
name (as Ray's ``ray/tune/search/__init__.py`` does), and the adapter classes
(``searchers.RandomSearcher``...) on first attribute access. The cores (`searchers.gp`,
`searchers.pso`, `searchers.genetic`, `searchers.grid`, `searchers.random_search`) never import
Ray; the adapters live in `searchers.adapters` and `searchers.wrapped`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from searchers.space import SearchSpace
from searchers.validation import BOOL, InvalidParameterError, Predicate, check, did_you_mean

if TYPE_CHECKING:
    from ray.tune.search import Searcher

    from searchers.adapters import (
        GeneticSearcher,
        GPEISearcher,
        GridSearcher,
        PSOSearcher,
        RandomSearcher,
    )
    from searchers.auto import AutoSearcher, TPESearcher
    from searchers.base import BaseSearcher
    from searchers.wrapped import WrappedSearcher

__all__ = [
    "AutoSearcher",
    "BaseSearcher",
    "GPEISearcher",
    "GeneticSearcher",
    "GridSearcher",
    "PSOSearcher",
    "RandomSearcher",
    "SearchSpace",
    "TPESearcher",
    "WrappedSearcher",
    "available",
    "check_searcher",
    "make_searcher",
    "register",
    "supports_grid",
]

SearcherFactory = Callable[..., "Searcher"]

# Where each lazily imported class lives.
_CLASSES: dict[str, str] = {
    "BaseSearcher": "searchers.base",
    "GPEISearcher": "searchers.adapters",
    "GeneticSearcher": "searchers.adapters",
    "GridSearcher": "searchers.adapters",
    "PSOSearcher": "searchers.adapters",
    "RandomSearcher": "searchers.adapters",
    "WrappedSearcher": "searchers.wrapped",
    "AutoSearcher": "searchers.auto",
    "TPESearcher": "searchers.auto",
}

# The library searchers of `searchers.wrapped.BACKENDS` (a test checks the two agree).
_WRAPPED = ("hyperopt-tpe", "optuna-tpe", "optuna-gp", "optuna-cmaes")


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return getattr(importlib.import_module(_CLASSES[name]), name)
    raise AttributeError(f"module 'searchers' has no attribute {name!r}")


@dataclass(frozen=True)
class _Entry:
    factory: SearcherFactory
    grid: bool


_REGISTRY: dict[str, _Entry] = {}
_CALLABLE = Predicate(callable, "callable")


def register(name: str, factory: SearcherFactory, *, grid: bool = False) -> None:
    """Register a searcher factory under a name.

    Re-registering a name replaces it (so a later issue can swap an implementation).
    `searchers.testing` checks that the new searcher keeps the protocol.

    Args:
        name: the name `make_searcher` and ``tune_model(searcher=...)`` take (non-empty).
        factory: ``factory(*, seed=None, **options) -> Searcher``; a factory without
            ``**options`` has unknown options refused for it by `make_searcher`.
        grid: the searcher accepts ``grid_search`` axes in its space.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(
            f"searcher name must be a non-empty str, got {name!r} ({type(name).__name__})"
        )
    check(f"factory for {name!r}", factory, _CALLABLE)
    check("grid", grid, BOOL)
    _REGISTRY[name] = _Entry(factory, grid)


def available() -> list[str]:
    """Registered searcher names, sorted."""
    return sorted(_REGISTRY)


def supports_grid(name: str) -> bool:
    """Whether a searcher accepts ``{"grid_search": [...]}`` in its space.

    Args:
        name: a registered searcher name (`available`); an unknown one is an
            `InvalidParameterError` with the closest name.
    """
    return _entry(name).grid


def make_searcher(name: str, *, seed: int | None = None, **options: Any) -> Searcher:
    """A new searcher by name.

    Args:
        name: a registered name (`available`).
        seed: seeds the searcher (None: a fresh random seed).
        options: go to its constructor.

    Raises:
        InvalidParameterError: an unknown name (the closest one and the available ones) or an
            unknown option (the closest accepted one); a ValueError and a TypeError both.
    """
    entry = _entry(name)
    _check_options(name, entry.factory, options)
    return entry.factory(seed=seed, **options)


def check_searcher(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Check a searcher name and its options as `make_searcher` would, without building it
    (an experiment file is checked before it is sent to a cluster).

    Args:
        name: a searcher name (`available`).
        options: what `make_searcher` would be given besides ``seed``.

    Raises:
        InvalidParameterError: as `make_searcher`.
    """
    _check_options(name, _entry(name).factory, dict(options or {}))


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise InvalidParameterError(
            f"unknown searcher {name!r}{did_you_mean(str(name), available())} "
            f"(available: {', '.join(available())})"
        )
    return _REGISTRY[name]


def _check_options(name: str, factory: SearcherFactory, options: dict[str, Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature: let it check
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # the factory validates its own **options (the built-in ones do)
    accepted = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL}
    for option in options:
        if option not in accepted:
            raise InvalidParameterError(
                f"searcher {name!r} got an unknown option {option!r}"
                f"{did_you_mean(option, accepted)}; it accepts {sorted(accepted)}"
            )


def _lazy(class_name: str, *args: Any) -> SearcherFactory:
    """A factory that imports ``class_name`` on its first call (the class checks the options)."""

    def factory(*, seed: int | None = None, **options: Any) -> Searcher:
        cls = __getattr__(class_name)
        return cls(*args, seed=seed, **options)  # type: ignore[no-any-return]

    factory.__name__ = f"make_{(args[0] if args else class_name).replace('-', '_')}"
    return factory


register("random", _lazy("RandomSearcher"))
register("grid", _lazy("GridSearcher"), grid=True)
register("pso", _lazy("PSOSearcher"))
register("genetic", _lazy("GeneticSearcher"))
register("gp-ei", _lazy("GPEISearcher"))
register("tpe", _lazy("TPESearcher"))
register("auto", _lazy("AutoSearcher"))
for _name in _WRAPPED:
    register(_name, _lazy("WrappedSearcher", _name))
