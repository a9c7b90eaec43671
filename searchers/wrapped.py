"""Library searchers (HyperOpt TPE; Optuna TPE, GP and CMA-ES) behind our space and result policy.

`WrappedSearcher` is the library adapter on the one shell, `searchers.base.BaseSearcher` (which
does the constructor checks, the metric's sign, pending trials, the unknown-trial warning, where
Optuna itself would raise KeyError, and the JSON state). It delegates the algorithm to Ray's
``HyperOptSearch`` / ``OptunaSearch`` but owns what Ray's converters get wrong or leave open:

- the space: we convert the Ray param_space with `searchers.tune_domains.from_ray` and hand the
  library a native space built from our `SearchSpace`, because Ray 2.60's converters disagree
  with Ray's own samplers (checked on 2.60: Optuna drops the quantization of ``qloguniform``,
  rejects ``qlograndint`` (step with log) and makes ``qrandint(1, 10, 3)`` the values 1, 4, 7, 10
  where Ray's sampler gives 3, 6, 9; HyperOpt's ``qrandint(0, 6, 2)`` never gives 6).
  Native parameters: a continuous float is itself; every discrete numeric parameter is its
  integer multiplier ``k`` (value ``k * q``; a log domain stays log in ``k``, as log(k q) = log k +
  log q); a categorical is its index. Native values are clipped back into the domain;
- the bad-result policy of `searchers.base` (module docstring there): a bad objective is imputed
  with the worst finite value seen, or, while none is known, the library is told the trial failed
  (``error=True``: Optuna records FAIL, HyperOpt JOB_STATE_ERROR; neither learns from it). The
  library never sees NaN, inf, a missing metric or a non-number;
- state: the library searcher's own pickle (how Ray saves it), base64-encoded, next to the base's
  JSON bookkeeping.

Not guaranteed here: no duplicate configs among pending trials (the library decides what it
suggests; Optuna's TPE uses a constant liar, the others do not).
"""

from __future__ import annotations

import base64
import inspect
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from searchers.base import BaseSearcher
from searchers.space import (
    BranchParam,
    CategoricalParam,
    Encoded,
    FloatParam,
    IntParam,
    Param,
    SearchSpace,
)
from searchers.validation import InvalidParameterError, Options, check, did_you_mean

__all__ = ["BACKENDS", "DefineByRun", "WrappedSearcher"]

_TRAINING_ITERATION = "training_iteration"


@dataclass(frozen=True)
class _Backend:
    """How to build one library searcher: its accepted options and a builder."""

    name: str
    options: Callable[[], frozenset[str]]
    build: Callable[..., Searcher]


def _signature_options(cls: Any, exclude: frozenset[str]) -> frozenset[str]:
    params = inspect.signature(cls).parameters
    return frozenset(p for p in params if p not in exclude and p != "self")


def _hyperopt_options() -> frozenset[str]:
    from ray.tune.search.hyperopt import HyperOptSearch

    return _signature_options(
        HyperOptSearch,
        frozenset({"space", "metric", "mode", "points_to_evaluate", "random_state_seed"}),
    )


def _build_hyperopt(
    space: SearchSpace,
    names: list[str],
    metric: str,
    mode: str,
    points: list[dict[str, Any]],
    seed: int | None,
    options: dict[str, Any],
) -> Searcher:
    from hyperopt import hp
    from hyperopt.pyll import scope
    from ray.tune.search.hyperopt import HyperOptSearch

    def expression(name: str, param: Param) -> Any:
        if isinstance(param, CategoricalParam):
            return hp.choice(name, list(range(len(param.choices))))
        if isinstance(param, FloatParam) and param.q is None:
            if param.log:
                return hp.loguniform(name, math.log(param.lower), math.log(param.upper))
            return hp.uniform(name, param.lower, param.upper)
        k_lo, k_hi = _k_range(param)
        # Bounds widened by half a step so that rounding gives every k an equal share.
        if param.log:
            expr = hp.qloguniform(name, math.log(k_lo - 0.5), math.log(k_hi + 0.5), 1)
        else:
            expr = hp.quniform(name, k_lo - 0.5, k_hi + 0.5, 1)
        return scope.int(expr)

    def nested(cond: tuple[tuple[int, int], ...]) -> dict[str, Any]:
        """HyperOpt's own conditional space: a nested ``hp.choice`` per branch choice, whose
        option i is the dict of branch i's parameters plus a marker naming the branch."""
        out: dict[str, Any] = {}
        for d, (name, param) in enumerate(zip(names, space.params, strict=True)):
            if space.conditions[d] != cond:
                continue
            if isinstance(param, BranchParam):
                options = [
                    {_branch_marker(name): i, **nested((*cond, (d, i)))}
                    for i in range(len(param.choices))
                ]
                # Keyed apart from its label: Ray's points_to_evaluate conversion looks labels up
                # among the top-level keys and cannot map an index onto a dict option.
                out[_branch_marker(name)] = hp.choice(name, options)
            else:
                out[name] = expression(name, param)
        return out

    native = nested(())
    searcher = HyperOptSearch(
        space=native,
        metric=metric,
        mode=mode,
        points_to_evaluate=points or None,
        random_state_seed=seed,
        **options,
    )
    if space.conditional and points:
        # hyperopt.fmin.generate_trials_to_calculate records only the labels a point names;
        # TPE then looks up every label, inactive ones too (KeyError): give those no value,
        # as HyperOpt itself records an inactive branch's labels.
        trials = searcher._hpopt_trials
        for doc in trials._dynamic_trials:
            for name in names:
                doc["misc"]["idxs"].setdefault(name, [])
                doc["misc"]["vals"].setdefault(name, [])
        trials.refresh()
    return searcher


def _optuna_options(sampler_name: str) -> Callable[[], frozenset[str]]:
    def options() -> frozenset[str]:
        import optuna

        return _signature_options(getattr(optuna.samplers, sampler_name), frozenset({"seed"}))

    return options


def _optuna_builder(sampler_name: str) -> Callable[..., Searcher]:
    def build(
        space: SearchSpace,
        names: list[str],
        metric: str,
        mode: str,
        points: list[dict[str, Any]],
        seed: int | None,
        options: dict[str, Any],
    ) -> Searcher:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        native: dict[str, Any] | DefineByRun = {
            name: _optuna_distribution(param)
            for name, param in zip(names, space.params, strict=True)
        }
        if space.conditional:
            # Define-by-run: only the chosen branch's parameters are suggested, so that Optuna
            # records (and its samplers model) the active parameters alone.
            native = DefineByRun(_define_by_run_scope(space, names, ()))
        sampler_class = getattr(optuna.samplers, sampler_name)
        if space.conditional and sampler_name in ("GPSampler", "CmaEsSampler"):
            # GP and CMA-ES model the parameters every trial has and draw a branch's own ones at
            # random (Optuna's design); said once in our docs, not in a warning per trial.
            options = {"warn_independent_sampling": False, **options}
        sampler = sampler_class(seed=seed, **options)
        return OptunaSearch(
            space=native,
            metric=metric,
            mode=mode,
            points_to_evaluate=points or None,
            sampler=sampler,
        )

    return build


def _optuna_distribution(param: Param) -> Any:
    import optuna

    if isinstance(param, CategoricalParam):
        return optuna.distributions.CategoricalDistribution(list(range(len(param.choices))))
    if isinstance(param, FloatParam) and param.q is None:
        return optuna.distributions.FloatDistribution(
            float(param.lower), float(param.upper), log=param.log
        )
    k_lo, k_hi = _k_range(param)
    return optuna.distributions.IntDistribution(k_lo, k_hi, log=param.log)


# One parameter of a define-by-run scope: (name, distribution, per branch its scope, or None).
_ScopeEntry = tuple[str, Any, list[Any] | None]


def _define_by_run_scope(
    space: SearchSpace, names: list[str], cond: tuple[tuple[int, int], ...]
) -> list[_ScopeEntry]:
    scope: list[_ScopeEntry] = []
    for d, (name, param) in enumerate(zip(names, space.params, strict=True)):
        if space.conditions[d] != cond:
            continue
        children = None
        if isinstance(param, BranchParam):
            children = [
                _define_by_run_scope(space, names, (*cond, (d, i)))
                for i in range(len(param.choices))
            ]
        scope.append((name, _optuna_distribution(param), children))
    return scope


class DefineByRun:
    """Optuna's define-by-run space of a conditional `SearchSpace`: each branch choice is
    suggested, then the parameters of the chosen branch only. A class (not a closure), as
    Ray's OptunaSearch pickles its space with its state."""

    def __init__(self, scope: list[_ScopeEntry]) -> None:
        self.scope = scope

    def __call__(self, trial: Any) -> None:
        self._suggest(trial, self.scope)

    def distributions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The distribution of each parameter named in ``params`` (an active set)."""
        out: dict[str, Any] = {}
        stack = [self.scope]
        while stack:
            for name, distribution, children in stack.pop():
                if name in params:
                    out[name] = distribution
                    if children is not None:
                        stack.append(children[int(params[name])])
        return out

    def _suggest(self, trial: Any, scope: list[_ScopeEntry]) -> None:
        import optuna

        for name, dist, children in scope:
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = trial.suggest_categorical(name, list(dist.choices))
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                value = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
            else:
                value = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            if children is not None:
                self._suggest(trial, children[int(value)])


BACKENDS: dict[str, _Backend] = {
    "hyperopt-tpe": _Backend("hyperopt-tpe", _hyperopt_options, _build_hyperopt),
    "optuna-tpe": _Backend(
        "optuna-tpe", _optuna_options("TPESampler"), _optuna_builder("TPESampler")
    ),
    "optuna-gp": _Backend("optuna-gp", _optuna_options("GPSampler"), _optuna_builder("GPSampler")),
    "optuna-cmaes": _Backend(
        "optuna-cmaes", _optuna_options("CmaEsSampler"), _optuna_builder("CmaEsSampler")
    ),
}


class WrappedSearcher(BaseSearcher):
    """A Ray library searcher behind our space conversion, result policy and JSON state.

    ``algorithm`` is a key of ``BACKENDS``; ``options`` go to the library (HyperOptSearch's
    ``n_initial_points``/``gamma``; the Optuna sampler's constructor arguments); an option the
    library does not take raises TypeError naming it. The library searcher is built on first use
    (it needs space, metric and mode at once); from then on metric and mode are fixed.
    """

    def __init__(
        self,
        algorithm: str,
        *,
        space: Mapping[str, Any] | SearchSpace | None = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        check("algorithm", algorithm, Options(sorted(BACKENDS)))
        accepted = BACKENDS[algorithm].options()
        for option in options:
            if option not in accepted:
                common = {"seed", "space", "metric", "mode", "points_to_evaluate"}
                known = sorted(accepted | common)
                raise InvalidParameterError(
                    f"searcher {algorithm!r} got an unknown option {option!r}"
                    f"{did_you_mean(option, known)}; it accepts {known}"
                )
        self.searcher_name = algorithm  # BACKENDS is looked up by name: instances stay picklable
        self._options = dict(options)
        self._names: list[str] = []
        self._inner: Searcher | None = None
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            points_to_evaluate=points_to_evaluate,
            seed=seed,
        )

    # ---- BaseSearcher hooks ----------------------------------------------------------------
    def _start(self, space: SearchSpace) -> None:
        self._names = _native_names(space)

    def _frozen_metric(self) -> bool:
        return self._inner is not None  # the library searcher was built with them

    def _propose(self, trial_id: str) -> list[Encoded] | str | None:
        space = self._ready()
        if space.dim == 0:  # the libraries refuse an empty space; one constant config
            return None if self._pending else []
        suggestion = self._ready_inner().suggest(trial_id)
        if suggestion is None:
            return None
        if suggestion == Searcher.FINISHED:
            return Searcher.FINISHED
        return self._from_native(suggestion)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self._pending or self._inner is None:
            return
        value: Any = result.get(str(self._metric)) if isinstance(result, Mapping) else None
        step = result.get(_TRAINING_ITERATION) if isinstance(result, Mapping) else None
        # Only clean intermediate values reach the library (Optuna's report needs both keys).
        if _is_finite_number(value) and isinstance(step, numbers.Integral):
            self._inner.on_trial_result(
                trial_id, {str(self._metric): float(value), _TRAINING_ITERATION: int(step)}
            )

    def _observe(
        self,
        trial_id: str | None,
        codes: list[Encoded],
        value: float | None,
        *,
        pruned: bool = False,
    ) -> None:
        """A dropped result (``value`` None) reaches the library as a failed trial."""
        if self._ready_space().dim == 0:
            return
        inner = self._ready_inner()
        if trial_id is None:
            native = self._to_native(codes)
            space = getattr(inner, "_space", None)
            if isinstance(space, DefineByRun):
                _add_optuna_trial(
                    inner, space, native, None if value is None else self._raw(value)
                )
            elif value is None:
                inner.add_evaluated_point(native, 0.0, error=True)
            else:
                inner.add_evaluated_point(native, self._raw(value), pruned=pruned)
        elif value is None:
            inner.on_trial_complete(trial_id, result=None, error=True)
        else:
            result = {str(self._metric): self._raw(value)}
            inner.on_trial_complete(trial_id, result=result, error=False)

    def _algorithm_state(self) -> dict[str, Any]:
        blob = None if self._ready_space().dim == 0 else _searcher_bytes(self._ready_inner())
        return {"inner": None if blob is None else base64.b64encode(blob).decode("ascii")}

    def _load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        if state.get("inner") is not None:
            _restore_searcher(self._ready_inner(), base64.b64decode(state["inner"]))

    # ---- helpers ---------------------------------------------------------------------------
    def _ready_inner(self) -> Searcher:
        """The library searcher, built on first use (it needs space, metric and mode at once)."""
        if self._inner is None:
            space = self._ready()
            points = [self._to_native(codes) for codes in self._points]
            self._inner = BACKENDS[self.searcher_name].build(
                space,
                self._names,
                str(self._metric),
                str(self._mode),
                points,
                self._seed,
                dict(self._options),
            )
        return self._inner

    def _from_native(self, suggestion: Mapping[str, Any]) -> list[Encoded]:
        space = self._ready_space()
        if space.conditional:
            return self._from_native_conditional(_leaves(suggestion))
        codes: list[Encoded] = []
        for name, param in zip(self._names, space.params, strict=True):
            if name not in suggestion:
                raise RuntimeError(f"{self.searcher_name} suggested no value for {param.name!r}")
            codes.append(_code_from_native(param, suggestion[name]))
        return codes

    def _from_native_conditional(self, flat: Mapping[str, Any]) -> list[Encoded]:
        """Codes of a library's conditional suggestion: its active parameters, None elsewhere
        (HyperOpt names a branch by its marker, Optuna by the choice's own name)."""
        space = self._ready_space()
        codes: list[Encoded] = [None] * space.dim
        for d in sorted(range(space.dim), key=lambda d: len(space.conditions[d])):
            if not all(codes[s] == i for s, i in space.conditions[d]):
                continue
            name, param = self._names[d], space.params[d]
            value = flat.get(_branch_marker(name), flat.get(name, _NONE))
            if value is _NONE:
                raise RuntimeError(f"{self.searcher_name} suggested no value for {param.name!r}")
            codes[d] = _code_from_native(param, value)
        return codes

    def _to_native(self, codes: list[Encoded]) -> dict[str, Any]:
        """Library values of the active parameters (an inactive one, None, is left out)."""
        space = self._ready_space()
        native: dict[str, Any] = {}
        for name, param, code in zip(self._names, space.params, codes, strict=True):
            if code is None:
                continue
            native[name] = int(code) // int(param.q) if isinstance(param, IntParam) else code
        return native


def _native_names(space: SearchSpace) -> list[str]:
    """Flat library names without "/" (Ray's OptunaSearch would unflatten on it)."""
    names = [p.name.replace("/", ".") for p in space.params]
    if len(set(names)) != len(names):
        names = [f"p{d}" for d in range(space.dim)]
    return names


_NONE: Any = object()


def _branch_marker(name: str) -> str:
    """The key under which HyperOpt's option of a branch choice carries the branch index."""
    return f"{name}#branch"


def _leaves(suggestion: Mapping[str, Any]) -> dict[str, Any]:
    """Every key -> value of a nested suggestion (HyperOpt nests a branch's parameters)."""
    out: dict[str, Any] = {}
    stack = [suggestion]
    while stack:
        for key, value in stack.pop().items():
            if isinstance(value, Mapping):
                stack.append(value)
            else:
                out[str(key)] = value
    return out


def _add_optuna_trial(
    inner: Searcher, space: DefineByRun, native: dict[str, Any], value: float | None
) -> None:
    """A point evaluated elsewhere into a define-by-run OptunaSearch (Ray's own
    ``add_evaluated_point`` refuses define-by-run spaces): a finished Optuna trial with the
    active parameters' distributions; None: a failed one."""
    import optuna

    state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
    trial = optuna.trial.create_trial(
        params=native, distributions=space.distributions(native), value=value, state=state
    )
    inner._ot_study.add_trial(trial)  # type: ignore[attr-defined]


def _k_range(param: Param) -> tuple[int, int]:
    if isinstance(param, (IntParam, FloatParam)) and param.n_choices is not None:
        return param.k_lo, param.k_hi
    raise TypeError(f"parameter {param.name!r} is not a discrete numeric parameter")


def _code_from_native(param: Param, value: Any) -> Encoded:
    if isinstance(param, CategoricalParam):
        return min(max(int(value), 0), len(param.choices) - 1)
    if isinstance(param, FloatParam) and param.q is None:
        return float(min(max(float(value), param.lower), param.upper))
    k_lo, k_hi = _k_range(param)
    k = min(max(round(float(value)), k_lo), k_hi)
    return k * int(param.q) if isinstance(param, IntParam) else k


def _is_finite_number(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def _searcher_bytes(searcher: Searcher) -> bytes:
    """The library searcher's own ``save`` output (Ray pickles its ``__dict__``)."""
    fd, tmp = tempfile.mkstemp(prefix=".hpt-searcher-", suffix=".pkl")
    os.close(fd)
    try:
        searcher.save(tmp)
        with open(tmp, "rb") as f:
            return f.read()
    finally:
        os.unlink(tmp)


def _restore_searcher(searcher: Searcher, blob: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".hpt-searcher-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        searcher.restore(tmp)
    finally:
        os.unlink(tmp)
