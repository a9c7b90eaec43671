"""The Ray Tune adapters of our own cores: `CoreSearcher` and one short declaration per algorithm.

A declaration names the searcher, its core (a `searchers.core.SearchCore` built as
``core_class(space, rng=rng, options=options)`` and rebuilt by ``core_class.from_state``) and its
options dataclass; ``make_searcher(name, seed=..., **options)`` passes ``options`` to it.
`searchers.base.BaseSearcher` does everything that is not the algorithm; `CoreSearcher` adds what
driving a unit-cube core takes:

- ``points_to_evaluate`` are suggested first, in order; ``add_evaluated_point`` tells the core;
- never two identical configs in flight: the core is asked again up to ``duplicate_retries``
  times, then a non-duplicate config is drawn at random (``random_fallback``); when every config
  of a finite space is in flight, ``suggest`` returns None;
- the core's RNG and the fallback RNG are spawned from the seed, and saved with the core.

The library searchers are the other adapter on the same base: `searchers.wrapped`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, cast

import numpy as np
from ray.tune.search import Searcher

from searchers.base import BaseSearcher, FidelityAware
from searchers.core import SearchCore, rng_from_state, rng_state, spawn_rngs
from searchers.genetic import GAOptions, GeneticAlgorithm
from searchers.gp.core import GPEICore, GPEIOptions
from searchers.grid import GridCore, GridOptions
from searchers.pso import ParticleSwarm, PSOOptions
from searchers.random_search import RandomCore, RandomOptions
from searchers.space import Encoded, SearchSpace
from searchers.validation import Interval, InvalidParameterError, check_params, did_you_mean

__all__ = [
    "CoreSearcher",
    "GPEISearcher",
    "GeneticSearcher",
    "GridSearcher",
    "PSOSearcher",
    "RandomSearcher",
]


@dataclass(frozen=True)
class BaseOptions:
    """Options every `CoreSearcher` takes.

    duplicate_retries: how many times the core is asked again when its point duplicates a config
        already in flight, before a random non-duplicate config is drawn instead.
    random_retries: random draws tried before a finite space is scanned for a free config.
    """

    duplicate_retries: int = 16
    random_retries: int = 64

    def __post_init__(self) -> None:
        positive = Interval(int, 1, None)
        check_params(self, {"duplicate_retries": (positive,), "random_retries": (positive,)})


class CoreSearcher(BaseSearcher):
    """A `BaseSearcher` driving ``core_class(space, rng=rng, options=options)``.

    Subclasses name ``searcher_name``, ``core_class`` and ``options_class`` (a frozen
    dataclass); ``**options`` are its fields.
    """

    core_class: ClassVar[Any]
    options_class: ClassVar[Any]
    #: After ``duplicate_retries`` duplicate points, draw a random free config (False: wait).
    random_fallback: ClassVar[bool] = True

    def __init__(
        self,
        *,
        space: Mapping[str, Any] | SearchSpace | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        duplicate_retries: int = BaseOptions.duplicate_retries,
        random_retries: int = BaseOptions.random_retries,
        **options: Any,
    ) -> None:
        self.options = _options_from(self.options_class, self.searcher_name, options)
        self._base_options = BaseOptions(
            duplicate_retries=duplicate_retries, random_retries=random_retries
        )
        self._core: SearchCore | None = None
        self._fallback_rng: np.random.Generator | None = None
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            points_to_evaluate=points_to_evaluate,
            seed=seed,
        )

    # ---- BaseSearcher hooks ----------------------------------------------------------------
    def _start(self, space: SearchSpace) -> None:
        core_rng, fallback_rng = spawn_rngs(self._seed, 2)
        self._core = cast(SearchCore, self.core_class(space, rng=core_rng, options=self.options))
        self._fallback_rng = fallback_rng

    def _propose(self, trial_id: str) -> list[Encoded] | str | None:
        space, core = self._ready(), self._ready_core()
        if self._points and tuple(self._points[0]) not in self._pending_keys:
            return self._points.pop(0)
        if core.finished:
            return Searcher.FINISHED
        pending = self._pending_units()
        for _ in range(self._base_options.duplicate_retries):
            u = core.ask(pending)
            if u is None:
                return Searcher.FINISHED if core.finished else None
            codes = space.encode(space.from_unit(u))
            if tuple(codes) not in self._pending_keys:
                return codes
        if not self.random_fallback:
            return None
        codes_or_none = self._random_free_config()
        if codes_or_none is None:
            return None if self._pending else Searcher.FINISHED
        return codes_or_none

    def _observe(
        self,
        trial_id: str | None,
        codes: list[Encoded],
        value: float | None,
        *,
        pruned: bool = False,
    ) -> None:
        """The core is told every kept value (``pruned`` ones count as final)."""
        if value is not None:
            space = self._ready_space()
            self._ready_core().tell(space.to_unit(space.decode(codes)), value)

    def _algorithm_state(self) -> dict[str, Any]:
        if self._fallback_rng is None:
            raise RuntimeError("internal: no fallback RNG")
        return {
            "points": [list(p) for p in self._points],
            "fallback_rng": rng_state(self._fallback_rng),
            "core": self._ready_core().state(),
        }

    def _load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        space = self._ready_space()
        self._core = cast(SearchCore, self.core_class.from_state(space, state["core"]))
        self._points = [list(p) for p in state["points"]]
        self._fallback_rng = rng_from_state(state["fallback_rng"])

    def _fidelity_sink(self) -> FidelityAware | None:
        """The core, when it keeps observations at their fidelity (``fidelity_attr`` set)."""
        core = self._core
        if isinstance(core, FidelityAware) and core.fidelity_attr is not None:
            return core
        return None

    # ---- helpers ---------------------------------------------------------------------------
    def _ready_core(self) -> SearchCore:
        if self._core is None:
            self._ready_space()  # raises the user-facing error
            raise RuntimeError("internal: space set without a core")
        return self._core

    def _pending_units(self) -> np.ndarray:
        space = self._ready_space()
        units = [space.to_unit(space.decode(codes)) for codes in self._pending.values()]
        if not units:
            return np.zeros((0, space.dim))  # (0, dim)
        return np.stack(units)  # (n_pending, dim)

    def _random_free_config(self) -> list[Encoded] | None:
        """A config not in flight: random draws, then (finite space) a scan from a random start."""
        space = self._ready_space()
        rng = self._fallback_rng
        if rng is None:
            raise RuntimeError("internal: no fallback RNG")
        for _ in range(self._base_options.random_retries):
            codes = space.encode(space.sample(rng))
            if tuple(codes) not in self._pending_keys:
                return codes
        size = space.size
        if size is None or size <= len(self._pending_keys):
            return None
        # Among len(pending) + 1 consecutive distinct configs at least one is free.
        start = int(rng.integers(size))
        for offset in range(len(self._pending_keys) + 1):
            codes = _config_at(space, (start + offset) % size)
            if tuple(codes) not in self._pending_keys:
                return codes
        return None


# ---- one declaration per core --------------------------------------------------------------
class RandomSearcher(CoreSearcher):
    """Random search (``make_searcher("random", seed=...)``), `searchers.random_search`."""

    searcher_name = "random"
    core_class = RandomCore
    options_class = RandomOptions


class GridSearcher(CoreSearcher):
    """Grid search in scikit-learn ``ParameterGrid`` order (``make_searcher("grid")``), then
    ``FINISHED``; `searchers.grid`. ``seed`` is accepted for a uniform API, unused."""

    searcher_name = "grid"
    core_class = GridCore
    options_class = GridOptions
    allow_grid = True
    random_fallback = False

    @property
    def grid_size(self) -> int | None:
        """Number of grid points (None until the space is known)."""
        return None if self._core is None else int(cast(GridCore, self._core).size)


class PSOSearcher(CoreSearcher):
    """Ray Tune searcher for `ParticleSwarm` (``make_searcher("pso", seed=..., **options)``).

    ``options`` are the fields of `PSOOptions`. Bad results follow the base policy (imputed with
    the worst value seen): for a swarm that is right, as an imputed trial never becomes a personal
    or global best, and its particle simply moves on.
    """

    searcher_name = "pso"
    core_class = ParticleSwarm
    options_class = PSOOptions


class GeneticSearcher(CoreSearcher):
    """Ray Tune searcher for `GeneticAlgorithm` (``make_searcher("genetic", seed=...)``).

    ``options`` are the fields of `GAOptions`. Bad results follow the base policy (imputed with
    the worst value seen): for a steady-state GA that is right, as such a child never displaces a
    member of a full population and counts as a failed mutation for the step size.
    """

    searcher_name = "genetic"
    core_class = GeneticAlgorithm
    options_class = GAOptions


class GPEISearcher(CoreSearcher):
    """Ray Tune searcher for `GPEICore` (``make_searcher("gp-ei", seed=..., **options)``).

    ``options`` are the fields of `GPEIOptions`. The first ``n_initial`` trials follow a scrambled
    Sobol design (``points_to_evaluate`` and ``add_evaluated_point`` count toward it); then each
    suggestion maximizes log expected improvement under a Matérn-5/2 GP, conditioned on the trials
    still running (kriging believer), so concurrent trials spread out.

    Bad results follow the base policy: an errored, missing or non-finite metric is imputed with
    the worst finite value seen so far (dropped while none is known). For a GP that is the right
    signal ("do not go there") and a bounded one: outputs are warped (robust centring and a
    clipped Yeo-Johnson transform) before standardization, so repeated worst values cannot stretch
    the scale and flatten the good region.

    Early-stopped trials (ASHA, HyperBand; issue #15): every intermediate result reaches the core
    at its fidelity (``fidelity_attr``, the scheduler's time attribute ``training_iteration`` by
    default). Once a trial has been stopped below the highest fidelity reached, the GP is fitted
    BOHB-style on the values at the highest fidelity with ``fidelity_min_points`` reports, and a
    stopped trial's truncated value is never mixed with full-length ones (``stopped_trials``:
    "exclude" leaves it out of that fit, "worst" adds it at the worst value there). With FIFO
    nothing changes. Only with ``fidelity_attr=None`` is a stopped trial's last result kept as an
    ordinary observation (the behaviour before issue #15).
    """

    searcher_name = "gp-ei"
    core_class = GPEICore
    options_class = GPEIOptions


def _options_from(cls: Any, searcher: str, options: dict[str, Any]) -> Any:
    """``cls(**options)`` for an options dataclass; an unknown option is an
    `InvalidParameterError` naming it and the closest accepted one."""
    accepted = sorted(f.name for f in fields(cls))
    for name in options:
        if name not in accepted:
            hint = did_you_mean(name, [*accepted, "duplicate_retries", "random_retries", "seed"])
            raise InvalidParameterError(
                f"searcher {searcher!r} got an unknown option {name!r}{hint}; it accepts the "
                f"base options duplicate_retries, random_retries and {accepted}"
            )
    return cls(**options)


def _config_at(space: SearchSpace, index: int) -> list[Encoded]:
    """Encoded config number ``index`` of a finite space (mixed radix, last dimension fastest;
    a conditional space: its grid blocks one after the other)."""
    if space.conditional:
        for block in space.grid_blocks():
            n = math.prod(len(space.values(d)) for d in block[1])
            if index < n:
                return space.encode(space.from_unit(space.grid_unit(block, index)))
            index -= n
        raise IndexError("internal: config index beyond the space's size")
    codes: list[Encoded] = []
    for d in reversed(range(space.dim)):
        values = space.values(d)
        index, digit = divmod(index, len(values))
        param = space.params[d]
        codes.append(param.encode(values[digit]))
    return codes[::-1]
