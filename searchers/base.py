"""`BaseSearcher`: the one Ray Tune `Searcher` base for our own searchers, and the result policy.

An adapter (``RandomSearcher``, ``GridSearcher``; later GP-EI, PSO, GA) only says which core to
build (`searchers.core.SearchCore`); everything else is done here once:

- space conversion: a Ray ``param_space`` (constructor ``space=`` or ``set_search_properties``)
  becomes a `SearchSpace`; the core sees unit-cube points only;
- sign: the core always minimizes; for ``mode="max"`` values are negated on the way in;
- pending trials: ``{trial_id: encoded config}``; never two identical configs in flight (the
  core is asked again up to ``duplicate_retries`` times, then a non-duplicate config is drawn at
  random; when every config of a finite space is in flight, ``suggest`` returns None);
- ``points_to_evaluate`` are suggested first, in order; ``add_evaluated_point`` tells the core
  about a point evaluated elsewhere;
- versioned JSON state (``get_state``/``set_state``/``save``/``restore``), RNG states included,
  so a restored searcher makes exactly the suggestions the uninterrupted one would have made.

Bad-result policy (shared with the wrapped searchers in `searchers.wrapped`):
    A completed trial's objective is *bad* when ``error=True``, the result is missing or lacks the
    metric, the metric is not a real number (a string, None, a bool), or it is NaN, +inf or -inf.
    A bad objective never raises and never reaches an optimizer:
      - it is imputed with the worst finite objective seen so far (worst in the mode's sense:
        the largest for "min", the smallest for "max"); imputed values do not move "the worst";
      - if no finite objective has been seen yet, the observation is dropped (our cores are not
        told; wrapped searchers are told the trial failed).
    Each kind of bad result is logged once per searcher. A completion for a trial id this searcher
    did not suggest (or already completed) is ignored, with one warning. Intermediate results
    (``on_trial_result``) are ignored by our cores.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, cast

import numpy as np
from ray.tune.search import Searcher

from searchers.core import SearchCore, rng_from_state, rng_state, spawn_rngs
from searchers.ray_space import from_ray
from searchers.space import Encoded, SearchSpace

__all__ = [
    "STATE_VERSION",
    "BaseSearcher",
    "ResultPolicy",
    "atomic_write_json",
    "check_metric_mode",
    "read_json",
]

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class ResultPolicy:
    """Turns a trial's result into a finite minimized objective, or None to drop it.

    ``worst`` is the worst finite objective seen, in minimized units (None before the first).
    """

    worst: float | None = None
    warned: set[str] = field(default_factory=set)

    def objective(
        self, result: Mapping[str, Any] | None, metric: str, mode: str, *, error: bool = False
    ) -> float | None:
        """The minimized objective of a completed trial (imputed when bad), or None to drop."""
        reason = None
        raw = _metric_value(result, metric)
        if error:
            reason = "error"
        elif raw is _MISSING:
            reason = "missing"
        elif not isinstance(raw, numbers.Real) or isinstance(raw, (bool, np.bool_)):
            reason = "non-numeric"
        elif not math.isfinite(float(raw)):
            reason = "non-finite"
        if reason is None:
            value = float(raw) * _sign(mode)
            self.worst = value if self.worst is None else max(self.worst, value)
            return value
        self._warn_once(reason, metric)
        return self.worst

    def raw_worst(self, mode: str) -> float | None:
        """The worst finite objective in the metric's own sign (for wrapped searchers)."""
        return None if self.worst is None else self.worst * _sign(mode)

    def state(self) -> dict[str, Any]:
        return {"worst": self.worst, "warned": sorted(self.warned)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ResultPolicy:
        worst = state.get("worst")
        return cls(None if worst is None else float(worst), set(state.get("warned", [])))

    def _warn_once(self, reason: str, metric: str) -> None:
        if reason in self.warned:
            return
        self.warned.add(reason)
        what = {
            "error": "a trial errored",
            "missing": f"a trial completed without reporting {metric!r}",
            "non-numeric": f"a trial reported a non-numeric {metric!r}",
            "non-finite": f"a trial reported a NaN or infinite {metric!r}",
        }[reason]
        logger.warning(
            "%s; its objective is imputed with the worst finite value seen so far (dropped while "
            "none is known). Further such trials are handled the same way without a warning.",
            what,
        )


@dataclass(frozen=True)
class BaseOptions:
    """Options every searcher built on `BaseSearcher` takes.

    duplicate_retries: how many times the core is asked again when its point duplicates a config
        already in flight, before a random non-duplicate config is drawn instead.
    random_retries: random draws tried before a finite space is scanned for a free config.
    """

    duplicate_retries: int = 16
    random_retries: int = 64

    def __post_init__(self) -> None:
        for name in ("duplicate_retries", "random_retries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class BaseSearcher(Searcher):
    """Shared Ray `Searcher` for a pure `SearchCore`; subclasses implement ``_make_core``."""

    searcher_name: ClassVar[str] = "base"
    #: Accept grid_search axes in the space (only the grid searcher does).
    allow_grid: ClassVar[bool] = False
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
    ) -> None:
        check_metric_mode(metric, mode)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        if points_to_evaluate is not None and not isinstance(points_to_evaluate, (list, tuple)):
            raise TypeError("points_to_evaluate must be a list of config dicts")
        super().__init__(metric=metric, mode=mode)
        self._options = BaseOptions(
            duplicate_retries=duplicate_retries, random_retries=random_retries
        )
        self._seed = None if seed is None else int(seed)
        self._raw_points: list[Mapping[str, Any]] = list(points_to_evaluate or [])
        self._space: SearchSpace | None = None
        self._core: SearchCore | None = None
        self._fallback_rng: np.random.Generator | None = None
        self._points: list[list[Encoded]] = []
        self._pending: dict[str, list[Encoded]] = {}
        self._pending_keys: dict[tuple[Encoded, ...], str] = {}
        self._policy = ResultPolicy()
        self._warned_unknown = False
        # Completions accepted (each suggested trial counts once): a resumed experiment checks it.
        self._n_completed = 0
        self._stashed_state: dict[str, Any] | None = None
        if space is not None:
            self._setup(space)

    # ---- subclass hooks --------------------------------------------------------------------
    def _make_core(self, space: SearchSpace, rng: np.random.Generator) -> SearchCore:
        raise NotImplementedError

    def _core_from_state(self, space: SearchSpace, state: dict[str, Any]) -> SearchCore:
        raise NotImplementedError

    # ---- Ray Searcher API, in lifecycle order ----------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        check_metric_mode(metric, mode)
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._space is not None:
            return False  # Ray's convention: a space given to the constructor wins
        self._setup(config)
        return True

    # Ray annotates suggest as Optional[Dict], but its protocol also returns Searcher.FINISHED.
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        space, core = self._ready()
        if trial_id in self._pending:
            return space.decode(self._pending[trial_id])
        if self._points and tuple(self._points[0]) not in self._pending_keys:
            return self._admit(trial_id, self._points.pop(0))
        if core.finished:
            return Searcher.FINISHED
        pending = self._pending_units()
        for _ in range(self._options.duplicate_retries):
            u = core.ask(pending)
            if u is None:
                return Searcher.FINISHED if core.finished else None
            codes = space.encode(space.from_unit(u))
            if tuple(codes) not in self._pending_keys:
                return self._admit(trial_id, codes)
        if not self.random_fallback:
            return None
        codes_or_none = self._random_free_config()
        if codes_or_none is None:
            return None if self._pending else Searcher.FINISHED
        return self._admit(trial_id, codes_or_none)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Intermediate results are not used by the cores of this issue."""

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        codes = self._pending.pop(trial_id, None)
        if codes is None:
            if not self._warned_unknown:
                self._warned_unknown = True
                logger.warning(
                    "%s: ignoring completion of trial %r, which it did not suggest (or already "
                    "completed); further such trials are ignored silently.",
                    type(self).__name__,
                    trial_id,
                )
            return
        del self._pending_keys[tuple(codes)]
        self._n_completed += 1
        self._tell(codes, result, error=error)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Tell the core about a config evaluated elsewhere (``pruned`` values count as final)."""
        space, _ = self._ready()
        metric = str(self._metric)
        self._tell(space.encode(parameters), {metric: value}, error=error)

    # ---- state in/out ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "searcher": self.searcher_name,
            "metric": self._metric,
            "mode": self._mode,
            "seed": self._seed,
            "space": None,
        }
        if self._space is None or self._core is None or self._fallback_rng is None:
            return state
        state.update(
            space=self._space.fingerprint(),
            pending=[[tid, codes] for tid, codes in self._pending.items()],
            points=[list(p) for p in self._points],
            policy=self._policy.state(),
            warned_unknown=self._warned_unknown,
            n_completed=self._n_completed,
            fallback_rng=rng_state(self._fallback_rng),
            core=self._core.state(),
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, Mapping) else None
            raise ValueError(
                f"unsupported searcher state version {version!r}; this build reads version "
                f"{STATE_VERSION}"
            )
        if state.get("searcher") != self.searcher_name:
            raise ValueError(
                f"state was saved by searcher {state.get('searcher')!r}, not "
                f"{self.searcher_name!r}; restore it into make_searcher({state.get('searcher')!r})"
            )
        self._metric = state.get("metric") or self._metric
        self._mode = state.get("mode") or self._mode
        if state.get("space") is None:
            return
        if self._space is None:
            # Tune may restore before it passes the param_space: apply once the space is known.
            self._stashed_state = dict(state)
            return
        self._apply_state(state)

    def save(self, checkpoint_path: str) -> None:
        atomic_write_json(checkpoint_path, self.get_state())

    def restore(self, checkpoint_path: str) -> None:
        self.set_state(read_json(checkpoint_path))

    # ---- public helpers --------------------------------------------------------------------
    @property
    def space(self) -> SearchSpace | None:
        """The converted search space (None until it is known)."""
        return self._space

    @property
    def pending_trials(self) -> dict[str, dict[str, Any]]:
        """Configs suggested and not completed yet, by trial id."""
        if self._space is None:
            return {}
        return {tid: self._space.decode(codes) for tid, codes in self._pending.items()}

    # ---- helpers ---------------------------------------------------------------------------
    def _setup(self, space: Mapping[str, Any] | SearchSpace) -> None:
        if isinstance(space, SearchSpace):
            converted = space
        else:
            converted = from_ray(space, allow_grid=self.allow_grid)
        core_rng, fallback_rng = spawn_rngs(self._seed, 2)
        core = self._make_core(converted, core_rng)
        points = [converted.encode(p) for p in self._raw_points]
        self._space, self._core, self._fallback_rng = converted, core, fallback_rng
        self._points = points
        if self._stashed_state is not None:
            stashed, self._stashed_state = self._stashed_state, None
            self._apply_state(stashed)

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        space = self._space
        if space is None:
            raise RuntimeError("internal: _apply_state before the space is set")
        if state["space"] != space.fingerprint():
            raise ValueError(
                "the saved searcher state belongs to a different search space; restore it into a "
                "searcher built with the same param_space"
            )
        pending = {str(tid): list(codes) for tid, codes in state["pending"]}
        core = self._core_from_state(space, state["core"])
        self._core = core
        self._pending = pending
        self._pending_keys = {tuple(codes): tid for tid, codes in pending.items()}
        self._points = [list(p) for p in state["points"]]
        self._policy = ResultPolicy.from_state(state["policy"])
        self._warned_unknown = bool(state.get("warned_unknown", False))
        self._n_completed = int(state.get("n_completed", 0))
        self._fallback_rng = rng_from_state(state["fallback_rng"])

    def _ready(self) -> tuple[SearchSpace, SearchCore]:
        if self._space is None or self._core is None:
            raise RuntimeError(
                f"{type(self).__name__} has no search space: pass space= to the constructor or "
                "call set_search_properties(metric, mode, param_space) first"
            )
        if not self._metric or not self._mode:
            raise RuntimeError(
                f"{type(self).__name__} needs a metric and a mode: pass metric=/mode= or call "
                "set_search_properties(metric, mode, param_space)"
            )
        return self._space, self._core

    def _admit(self, trial_id: str, codes: list[Encoded]) -> dict[str, Any]:
        space, _ = self._ready()
        self._pending[trial_id] = codes
        self._pending_keys[tuple(codes)] = trial_id
        return space.decode(codes)

    def _pending_units(self) -> np.ndarray:
        space, _ = self._ready()
        units = [space.to_unit(space.decode(codes)) for codes in self._pending.values()]
        if not units:
            return np.zeros((0, space.dim))  # (0, dim)
        return np.stack(units)  # (n_pending, dim)

    def _tell(
        self, codes: list[Encoded], result: Mapping[str, Any] | None, *, error: bool
    ) -> None:
        space, core = self._ready()
        value = self._policy.objective(result, str(self._metric), str(self._mode), error=error)
        if value is not None:
            core.tell(space.to_unit(space.decode(codes)), value)

    def _random_free_config(self) -> list[Encoded] | None:
        """A config not in flight: random draws, then (finite space) a scan from a random start."""
        space, _ = self._ready()
        rng = self._fallback_rng
        if rng is None:
            raise RuntimeError("internal: no fallback RNG")
        for _ in range(self._options.random_retries):
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


def check_metric_mode(metric: Any, mode: Any) -> None:
    """ValueError/TypeError for a bad metric or mode (None is allowed: set later)."""
    if metric is not None and not isinstance(metric, str):
        raise TypeError(f"metric must be a str (one objective), got {metric!r}")
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new file, never half."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(os.fspath(path), encoding="utf-8") as f:
        return json.load(f)


_MISSING: Any = object()


def _metric_value(result: Mapping[str, Any] | None, metric: str) -> Any:
    if not isinstance(result, Mapping):
        return _MISSING
    if metric in result:
        return result[metric]
    node: Any = result  # Ray flattens results with "/"; accept a nested dict too.
    for part in metric.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _sign(mode: str) -> float:
    return -1.0 if mode == "max" else 1.0


def _config_at(space: SearchSpace, index: int) -> list[Encoded]:
    """Encoded config number ``index`` of a finite space (mixed radix, last dimension fastest)."""
    codes: list[Encoded] = []
    for d in reversed(range(space.dim)):
        values = space.values(d)
        index, digit = divmod(index, len(values))
        param = space.params[d]
        codes.append(param.encode(values[digit]))
    return codes[::-1]


def options_from(cls: Any, searcher: str, options: dict[str, Any]) -> Any:
    """``cls(**options)`` for an options dataclass, with a TypeError naming an unknown option."""
    accepted = sorted(f.name for f in fields(cls))
    for name in options:
        if name not in accepted:
            raise TypeError(
                f"searcher {searcher!r} got an unknown option {name!r}; it accepts the base "
                f"options duplicate_retries, random_retries and {accepted}"
            )
    return cls(**options)


class CoreSearcher(BaseSearcher):
    """A `BaseSearcher` whose core is ``core_class(space, rng=rng, options=options)``.

    Subclasses name ``searcher_name``, ``core_class`` (a `SearchCore` with a ``from_state``
    classmethod) and ``options_class`` (a frozen dataclass); ``**options`` are its fields.
    """

    core_class: ClassVar[Any]
    options_class: ClassVar[Any]

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
        self.options = options_from(self.options_class, self.searcher_name, options)
        super().__init__(
            space=space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate,
            seed=seed, duplicate_retries=duplicate_retries, random_retries=random_retries,
        )

    def _make_core(self, space: SearchSpace, rng: np.random.Generator) -> SearchCore:
        return cast(SearchCore, self.core_class(space, rng=rng, options=self.options))

    def _core_from_state(self, space: SearchSpace, state: dict[str, Any]) -> SearchCore:
        return cast(SearchCore, self.core_class.from_state(space, state))
