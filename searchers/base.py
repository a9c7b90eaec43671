"""`BaseSearcher`: the one Ray Tune `Searcher` shell of every searcher, and the result policy.

Every searcher is a `BaseSearcher` with an algorithm behind five hooks: our pure cores through
`searchers.adapters.CoreSearcher`, a library searcher through `searchers.wrapped.WrappedSearcher`.
Done here once for all of them:

- constructor checks (metric, mode, seed, ``points_to_evaluate``);
- space conversion: a Ray ``param_space`` (constructor ``space=`` or ``set_search_properties``)
  becomes a `SearchSpace`; the algorithm sees encoded configs (and a core unit-cube points) only;
- sign: the algorithm is told minimized values (negated for ``mode="max"``); `_raw` turns one
  back for a library that takes the metric's own sign;
- pending trials: ``{trial_id: encoded config}``, with a count per config for duplicate checks;
- the bad-result policy below, and the warning for a completion of an unknown trial;
- versioned JSON state (``get_state``/``set_state``/``save``/``restore``): the base's bookkeeping
  plus the algorithm's part, so a restored searcher makes exactly the suggestions the
  uninterrupted one would have made; ``save`` writes atomically.

Bad-result policy:
    A completed trial's objective is *bad* when ``error=True``, the result is missing or lacks the
    metric, the metric is not a real number (a string, None, a bool), or it is NaN, +inf or -inf.
    A bad objective never raises and never reaches an optimizer:
      - it is imputed with the worst finite objective seen so far (worst in the mode's sense:
        the largest for "min", the smallest for "max"); imputed values do not move "the worst";
      - if no finite objective has been seen yet, the observation is dropped (our cores are not
        told; wrapped searchers are told the trial failed).
    Each kind of bad result is logged once per searcher. A completion for a trial id this searcher
    did not suggest (or already completed) is ignored, with one warning.

Intermediate results and fidelity (issue #15):
    A core that keeps observations at their fidelity (`FidelityAware`: gp-ei, pso, genetic with
    their ``fidelity_attr`` option, ``training_iteration`` by default) is told every clean
    intermediate result (``on_trial_result``: the fidelity ``result[fidelity_attr]`` and the
    minimized metric, both finite; anything else is skipped silently and never moves the
    policy's "worst") and the fidelity of the final one; a bad final result marks the trial bad
    (`searchers.fidelity.FidelityBook`). A trial a scheduler stopped is an ordinary completion.
    Other searchers ignore intermediate results here (the wrapped ones forward clean ones).
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from ray.tune.search import Searcher

from searchers.fidelity import fidelity_of
from searchers.files import atomic_write
from searchers.space import Encoded, SearchSpace
from searchers.tune_domains import from_ray
from searchers.validation import InstanceOf, Interval, Options, check

__all__ = [
    "STATE_VERSION",
    "BaseSearcher",
    "FidelityAware",
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

    def clean(self, result: Mapping[str, Any] | None, metric: str, mode: str) -> float | None:
        """The minimized metric when it is a finite real number, else None; no side effect (an
        intermediate result neither warns nor moves ``worst``: FIFO runs stay unchanged)."""
        raw = _metric_value(result, metric)
        if (
            raw is _MISSING
            or not isinstance(raw, numbers.Real)
            or isinstance(raw, (bool, np.bool_))
        ):
            return None
        value = float(raw)
        return value * _sign(mode) if math.isfinite(value) else None

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


@runtime_checkable
class FidelityAware(Protocol):
    """A core that keeps each observation at its fidelity (`searchers.fidelity.FidelityBook`).

    ``fidelity_attr`` None: it does not (intermediate results are not passed on).
    """

    @property
    def fidelity_attr(self) -> str | None: ...

    def report(self, u: np.ndarray, fidelity: float, value: float) -> None: ...

    def report_bad(self, u: np.ndarray) -> None: ...


class BaseSearcher(Searcher):
    """The one Ray `Searcher` shell; an adapter implements the algorithm's five hooks.

    Done here, once for every searcher: constructor checks (metric, mode, seed,
    ``points_to_evaluate``), ``set_search_properties`` and the space conversion, the metric's
    sign, pending-trial bookkeeping, the bad-result policy, the unknown-trial warning and the
    versioned JSON state (``get_state``/``set_state``/``save``/``restore``).

    Hooks, in lifecycle order (all but ``_start`` once space, metric and mode are known):
        ``_start(space)``: build the algorithm for the converted space;
        ``_propose(trial_id)``: encoded config to suggest, or None (try later) or
            ``Searcher.FINISHED``; the base records it as pending;
        ``_observe(trial_id, codes, value, pruned)``: a completed trial (``trial_id`` None: a
            point evaluated elsewhere); ``value`` is minimized and finite, or None when the
            policy dropped a bad result;
        ``_algorithm_state()`` / ``_load_algorithm_state(state)``: the adapter's part of the
            JSON state (its keys sit next to the base's).
        ``_fidelity_sink()``: the `FidelityAware` core to tell intermediate results and final
            fidelities (issue #15), or None (the default: they are ignored).
    """

    #: The registry name, written into the state (a wrapped searcher sets it per instance).
    searcher_name: str = "base"
    #: Accept grid_search axes in the space (only the grid searcher does).
    allow_grid: ClassVar[bool] = False

    def __init__(
        self,
        *,
        space: Mapping[str, Any] | SearchSpace | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
    ) -> None:
        check_metric_mode(metric, mode)
        check("seed", seed, Interval(int, None, None), None)
        check(
            "points_to_evaluate",
            points_to_evaluate,
            InstanceOf((list, tuple), "a list of config dicts"),
            None,
        )
        super().__init__(metric=metric, mode=mode)
        self._seed = None if seed is None else int(seed)
        self._raw_points: list[Mapping[str, Any]] = list(points_to_evaluate or [])
        self._space: SearchSpace | None = None
        self._points: list[list[Encoded]] = []  # points_to_evaluate, encoded with the space
        self._pending: dict[str, list[Encoded]] = {}
        # How many pending trials hold each config (a wrapped library may suggest one twice).
        self._pending_keys: Counter[tuple[Encoded, ...]] = Counter()
        self._policy = ResultPolicy()
        self._warned_unknown = False
        # Completions accepted (each suggested trial counts once): a resumed experiment checks it.
        self._n_completed = 0
        self._stashed_state: dict[str, Any] | None = None
        if space is not None:
            self._setup(space)

    # ---- algorithm hooks -------------------------------------------------------------------
    def _start(self, space: SearchSpace) -> None:
        raise NotImplementedError

    def _propose(self, trial_id: str) -> list[Encoded] | str | None:
        raise NotImplementedError

    def _observe(
        self,
        trial_id: str | None,
        codes: list[Encoded],
        value: float | None,
        *,
        pruned: bool = False,
    ) -> None:
        raise NotImplementedError

    def _algorithm_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _fidelity_sink(self) -> FidelityAware | None:
        """The core to tell intermediate results and final fidelities, or None (the default:
        they are not used here). `searchers.adapters.CoreSearcher` returns its core when that
        is `FidelityAware` with a ``fidelity_attr`` set."""
        return None

    def _frozen_metric(self) -> bool:
        """True once ``set_search_properties`` may no longer change metric and mode."""
        return False

    # ---- Ray Searcher API, in lifecycle order ----------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        check_metric_mode(metric, mode)
        if not self._frozen_metric():
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
        space = self._ready()
        if trial_id in self._pending:
            return space.decode(self._pending[trial_id])
        codes = self._propose(trial_id)
        if codes is None or isinstance(codes, str):
            return codes
        self._pending[trial_id] = codes
        self._pending_keys[tuple(codes)] += 1
        return space.decode(codes)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """A clean intermediate result goes to a `FidelityAware` core at its fidelity; O(1) per
        call, and no model is fitted here (it is called every epoch of every trial)."""
        sink = self._fidelity_sink()
        codes = self._pending.get(trial_id)
        if sink is None or codes is None:
            return
        fidelity = fidelity_of(result, str(sink.fidelity_attr))
        value = self._policy.clean(result, str(self._metric), str(self._mode))
        if fidelity is not None and value is not None:
            sink.report(self._unit(codes), fidelity, value)

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
                    self.searcher_name,
                    trial_id,
                )
            return
        key = tuple(codes)
        self._pending_keys[key] -= 1
        if self._pending_keys[key] <= 0:
            del self._pending_keys[key]
        self._n_completed += 1
        self._ready()
        sink = self._fidelity_sink()
        if sink is not None:
            self._report_final(sink, codes, result, error)
        value = self._policy.objective(result, str(self._metric), str(self._mode), error=error)
        self._observe(trial_id, codes, value)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Tell the algorithm about a config evaluated elsewhere, through the result policy."""
        space = self._ready()
        codes = space.encode(parameters)
        metric = str(self._metric)
        sink = self._fidelity_sink()
        if sink is not None and (
            error or self._policy.clean({metric: value}, metric, "min") is None
        ):
            sink.report_bad(self._unit(codes))
        objective = self._policy.objective({metric: value}, metric, str(self._mode), error=error)
        self._observe(None, codes, objective, pruned=pruned)

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
        if self._space is None:
            return state
        state.update(
            space=self._space.fingerprint(),
            pending=[[tid, codes] for tid, codes in self._pending.items()],
            policy=self._policy.state(),
            warned_unknown=self._warned_unknown,
            n_completed=self._n_completed,
        )
        state.update(self._algorithm_state())
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
        points = [converted.encode(p) for p in self._raw_points]  # ValueError names the param
        self._start(converted)
        self._space, self._points = converted, points
        if self._stashed_state is not None:
            stashed, self._stashed_state = self._stashed_state, None
            self._apply_state(stashed)

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        space = self._ready_space()
        if state["space"] != space.fingerprint():
            raise ValueError(
                "the saved searcher state belongs to a different search space; restore it into a "
                "searcher built with the same param_space"
            )
        self._load_algorithm_state(state)
        pending = {str(tid): list(codes) for tid, codes in state["pending"]}
        self._pending = pending
        self._pending_keys = Counter(tuple(codes) for codes in pending.values())
        self._policy = ResultPolicy.from_state(state["policy"])
        self._warned_unknown = bool(state.get("warned_unknown", False))
        self._n_completed = int(state.get("n_completed", 0))

    def _report_final(
        self,
        sink: FidelityAware,
        codes: list[Encoded],
        result: Mapping[str, Any] | None,
        error: bool,
    ) -> None:
        """The final result at its fidelity, or the trial marked bad (error, bad metric)."""
        u = self._unit(codes)
        value = None if error else self._policy.clean(result, str(self._metric), str(self._mode))
        if value is None:
            sink.report_bad(u)
            return
        fidelity = fidelity_of(result, str(sink.fidelity_attr))
        if fidelity is not None:
            sink.report(u, fidelity, value)

    def _unit(self, codes: list[Encoded]) -> np.ndarray:
        """A trial's unit point, computed as the core adapter tells it (so the keys match)."""
        space = self._ready_space()
        return space.to_unit(space.decode(codes))  # (dim,)

    def _ready_space(self) -> SearchSpace:
        if self._space is None:
            raise RuntimeError(
                f"searcher {self.searcher_name!r} has no search space: pass space= to the "
                "constructor or call set_search_properties(metric, mode, param_space) first"
            )
        return self._space

    def _ready(self) -> SearchSpace:
        space = self._ready_space()
        if not self._metric or not self._mode:
            raise RuntimeError(
                f"searcher {self.searcher_name!r} needs a metric and a mode: pass "
                "metric=/mode= or call set_search_properties(metric, mode, param_space)"
            )
        return space

    def _raw(self, value: float) -> float:
        """A minimized objective back in the metric's own sign (what a library is told)."""
        return value * _sign(str(self._mode))


def check_metric_mode(metric: Any, mode: Any) -> None:
    """`InvalidParameterError` for a bad metric or mode (None is allowed: set later)."""
    check("metric", metric, InstanceOf(str, "a str (one objective)"), None)
    check("mode", mode, Options(("min", "max")), None)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON so that ``path`` holds either the old or the new file, never half
    (`searchers.files.atomic_write`: synced, and no temp file left behind on failure)."""
    atomic_write(path, json.dumps(data, allow_nan=False))


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
