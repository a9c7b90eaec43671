"""State-of-the-art black-box optimizers as benchmark anchors (issue #16): Ax/BoTorch, HEBO, SMAC3.

Benchmark-only: not registered for users. Each anchor is a plain ``ray.tune.search.Searcher``
around the library's own ask/tell API, driven by `bench_searchers.py` exactly as our searchers
are (``set_search_properties``, ``suggest``, ``on_trial_complete``), seeded by the run's seed.

    ax-botorch  Ax 1.x ``Client`` with Ax's default generation strategy ("fast": the centre
                point and Sobol, 5 in all, then BoTorch's SingleTaskGP, MixedSingleTaskGP with
                categoricals, and qLogNoisyExpectedImprovement). Pending trials: Ax keeps every
                suggested trial RUNNING until it is completed, and its acquisition receives them
                as ``X_pending``. Option ``allow_exceeding`` (default true): with more trials in
                flight than the initialization budget Ax would otherwise answer nothing until
                enough Sobol trials complete (suggest returns None), i.e. run fewer than k
                trials at once; true keeps k in flight, as for every other searcher.
    hebo        HEBO 0.3.6 (``HEBO`` optimizer: GP with input warping and power-transformed
                outputs, the MACE acquisition ensemble optimized by NSGA-II), ask/tell. HEBO
                has no asynchronous API; pending trials are handled by a CONSTANT LIAR ON A
                COPY: the optimizer is shallow-copied, the pending configs are told to the copy
                with a lie, and the copy suggests (the real optimizer only ever sees real
                values). Option ``liar``: "max" (default, the worst observed value: the
                pessimistic lie Optuna's ``constant_liar`` uses, which pushes new points away
                from pending ones), "min" or "mean". While fewer than HEBO's ``rand_sample``
                (1 + d) values are observed, HEBO's own Sobol draws are used, pending or not.
                HEBO draws from the global numpy and torch RNGs, and pymoo >= 0.6.1 seeds
                NSGA-II from OS entropy unless given a seed, so each suggest reseeds numpy and
                torch and passes NSGA-II a seed, all from (seed, call number): same seed, same
                suggestions (checked with 2 trials pending).
    smac-hpo    SMAC3 2.4 ``HyperparameterOptimizationFacade`` (random forest, log EI, local +
                random search of the acquisition, 20% random configs, Sobol initial design of
                min(10 d, budget / 4)), ask/tell. The forest is the facade's own (10 trees,
                ``get_model``'s defaults) with two changes that do not change the model:
                ``max_leaf_nodes=None`` and ``n_jobs=1``. SMAC's default ``2**20`` leaves is
                never reached at these budgets (a tree has at most one leaf per observation),
                so ``None`` grows the same unpruned trees, but depth-first instead of best-first,
                which cut a suggest from ~5 s to ~1 s (RAY-NOTES, "Benchmark anchors beyond
                Optuna"); the trees' random draws then come in another order, so suggestions
                differ from the default's, not their distribution. ``n_jobs=1`` because SMAC's
                ``-1`` would start a thread per core in every benchmark process. Option
                ``max_leaf_nodes`` (JSON: ``null`` or an int) restores SMAC's default for a
                check. SMAC does not model pending trials (each ask is independent of them).
    smac-bb     SMAC3 ``BlackBoxFacade`` (GP with MLE hyperparameters, EI, retrained every
                config), ask/tell; pending trials not modelled either.

Space: a flat Ray Tune ``param_space`` read with `searchers.tune_domains.from_ray` (the same
reading our searchers use, so every searcher sees the same domains):

    float (log or not)         the library's float (log scale where the domain is log)
    quantized float / int      the library's int over the multiplier k (value = k q), log
                               where the domain is log; a plain int is k with q = 1
    categorical                the library's unordered categorical over labels "0".."n-1"
    a domain of one value      fixed, never shown to the library (Ax and ConfigSpace refuse it)

A conditional space raises ValueError (the benchmark reports the anchor as n/a there).

Failed trials (``error=True``, no metric, NaN or inf): Ax marks the trial failed, SMAC is told
``StatusType.CRASHED``, HEBO is told nothing (its own ``observe`` drops non-finite values).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from searchers.space import CategoricalParam, FloatParam, IntParam, SearchSpace
from searchers.tune_domains import from_ray

__all__ = [
    "SOTA_ANCHORS",
    "AskTellSearcher",
    "AxSearcher",
    "HeboSearcher",
    "SmacSearcher",
    "SotaAnchor",
]


@dataclass(frozen=True)
class Dim:
    """One parameter as the libraries see it.

    kind: "float" (value in [lower, upper]), "int" (the multiplier k in [lower, upper]) or "cat"
        (label "i" for choice i, ``lower`` = 0, ``upper`` = n - 1).
    name: the library's name for it (an identifier); q: the int step (value = k q) of an int
        parameter, None for a quantized float (its code is k itself).
    fixed: the only code of a one-valued domain (then never shown to the library), else None.
    """

    name: str
    kind: str
    lower: float
    upper: float
    log: bool
    q: int | None = None
    fixed: int | float | None = None

    def to_code(self, value: Any) -> int | float:
        """The searchers.space code (`SearchSpace.decode`) of a library value."""
        if self.kind == "float":
            return float(min(max(float(value), self.lower), self.upper))
        if self.kind == "cat":
            return int(value)
        k = int(min(max(round(float(value)), self.lower), self.upper))
        return k if self.q is None else k * self.q

    def to_library(self, code: int | float) -> Any:
        """The library value of a code (the inverse of `to_code`)."""
        if self.kind == "float":
            return float(code)
        if self.kind == "cat":
            return str(int(code))
        return int(code) if self.q is None else int(code) // self.q


def read_dims(space: SearchSpace) -> list[Dim]:
    """The `Dim` of each parameter of `space`, in ``space.params`` order (ValueError for a
    conditional space)."""
    if space.conditional:
        raise ValueError(
            "the anchors take flat spaces only: a conditional tune.choice (a choice holding "
            "domains) is not supported"
        )
    dims = []
    used: set[str] = set()
    for d, p in enumerate(space.params):
        name = re.sub(r"\W", "_", p.name)
        if not name or name[0].isdigit() or name in used:
            name = f"p{d}_{name}"
        used.add(name)
        if isinstance(p, FloatParam) and p.q is None:
            fixed = p.lower if p.lower == p.upper else None
            dims.append(Dim(name, "float", p.lower, p.upper, p.log, fixed=fixed))
        elif isinstance(p, FloatParam | IntParam):
            q = int(p.q) if isinstance(p, IntParam) else None
            fixed = None if p.k_lo < p.k_hi else (p.k_lo if q is None else p.k_lo * q)
            dims.append(Dim(name, "int", p.k_lo, p.k_hi, p.log and p.k_lo > 0, q, fixed))
        elif isinstance(p, CategoricalParam):
            n = len(p.choices)
            dims.append(Dim(name, "cat", 0, n - 1, False, fixed=0 if n == 1 else None))
        else:  # pragma: no cover - SearchSpace holds these three kinds only
            raise TypeError(f"parameter {p.name!r}: unsupported kind {type(p).__name__}")
    return dims


class AskTellSearcher(Searcher):
    """The Searcher protocol around one ask/tell library: the space, the metric's sign, the
    trials in flight and failed trials; a subclass implements `_setup`, `_ask` and `_tell`.

    The library always MINIMIZES ``sign * metric`` (sign -1 for mode "max").
    """

    def __init__(self, *, seed: int, budget: int) -> None:
        super().__init__()
        self._seed = int(seed)
        self._budget = int(budget)
        self._space: SearchSpace | None = None
        self._dims: list[Dim] = []
        self._sign = 1.0
        self._live: dict[str, tuple[Any, dict[str, Any]]] = {}  # trial_id -> (token, lib values)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        if self._space is not None:
            return False
        if mode not in ("min", "max") or not metric:
            raise ValueError(
                f"metric and mode ('min' or 'max') are needed, got {metric!r} {mode!r}"
            )
        space = from_ray(config)
        self._dims = read_dims(space)
        self._space = space
        self._metric, self._mode = metric, mode
        self._sign = 1.0 if mode == "min" else -1.0
        self._setup([d for d in self._dims if d.fixed is None])
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._space is None:
            raise RuntimeError("set_search_properties must be called before suggest")
        asked = self._ask([values for _, values in self._live.values()])
        if asked is None:
            return None
        token, values = asked
        codes = [d.fixed if d.fixed is not None else d.to_code(values[d.name]) for d in self._dims]
        self._live[trial_id] = (token, values)
        return self._space.decode(codes)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        live = self._live.pop(trial_id, None)
        if live is None:
            return
        token, values = live
        value = None if error or not result else result.get(self._metric)
        loss = None
        if value is not None and math.isfinite(float(value)):
            loss = self._sign * float(value)
        self._tell(token, values, loss)

    def add_evaluated_point(
        self,
        parameters: dict[str, Any],
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        """Tell the library about a config evaluated elsewhere (scripts/bench_suggest_time.py
        feeds hundreds of observations this way; a failed one is ignored)."""
        if self._space is None:
            raise RuntimeError("set_search_properties must be called before add_evaluated_point")
        if error or value is None or not math.isfinite(float(value)):
            return
        codes = self._space.encode(parameters)
        values = {d.name: d.to_library(c) for d, c in zip(self._dims, codes, strict=True)}
        self._observe(
            {d.name: values[d.name] for d in self._dims if d.fixed is None},
            self._sign * float(value),
        )

    # ---- for subclasses ------------------------------------------------------------------
    def _setup(self, dims: list[Dim]) -> None:
        raise NotImplementedError

    def _ask(self, pending: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]] | None:
        """(token, {dim name: library value}) for one new trial, or None for "try later".
        ``pending``: the library values of the trials in flight."""
        raise NotImplementedError

    def _tell(self, token: Any, values: dict[str, Any], loss: float | None) -> None:
        """The result of the trial asked as ``token`` (loss None: the trial failed)."""
        raise NotImplementedError

    def _observe(self, values: dict[str, Any], loss: float) -> None:
        """A result for a config the library did not suggest."""
        raise NotImplementedError


# ---- Ax ------------------------------------------------------------------------------------


class AxSearcher(AskTellSearcher):
    """Ax's ``Client`` with its default generation strategy (see the module docstring)."""

    def __init__(self, *, seed: int, budget: int, allow_exceeding: bool = True) -> None:
        super().__init__(seed=seed, budget=budget)
        if not isinstance(allow_exceeding, bool):
            raise TypeError(f"allow_exceeding must be true or false, got {allow_exceeding!r}")
        self._allow_exceeding = allow_exceeding
        from ax.utils.common.logger import set_ax_logger_levels

        # One INFO line per trial and per generation step otherwise; warnings stay.
        set_ax_logger_levels(logging.WARNING)

    def _setup(self, dims: list[Dim]) -> None:
        from ax import ChoiceParameterConfig, Client, RangeParameterConfig

        parameters: list[RangeParameterConfig | ChoiceParameterConfig] = []
        for d in dims:
            if d.kind == "cat":
                labels = [str(i) for i in range(int(d.upper) + 1)]
                parameters.append(
                    ChoiceParameterConfig(d.name, labels, parameter_type="str", is_ordered=False)
                )
            else:
                parameters.append(
                    RangeParameterConfig(
                        d.name,
                        bounds=(d.lower, d.upper),
                        parameter_type="float" if d.kind == "float" else "int",
                        scaling="log" if d.log else "linear",
                    )
                )
        self._client = Client(random_seed=self._seed)
        self._client.configure_experiment(parameters=parameters)
        self._client.configure_optimization(objective="-loss")
        self._client.configure_generation_strategy(
            initialization_random_seed=self._seed,
            allow_exceeding_initialization_budget=self._allow_exceeding,
        )

    def _ask(self, pending: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]] | None:
        # Ax passes its RUNNING trials (those asked, not yet completed) to the acquisition.
        trials = self._client.get_next_trials(max_trials=1)
        if not trials:
            return None
        index, parameters = next(iter(trials.items()))
        return index, dict(parameters)

    def _tell(self, token: Any, values: dict[str, Any], loss: float | None) -> None:
        if loss is None:
            self._client.mark_trial_failed(token)
        else:
            self._client.complete_trial(token, raw_data={"loss": loss})

    def _observe(self, values: dict[str, Any], loss: float) -> None:
        index = self._client.attach_trial(parameters=values)
        self._client.complete_trial(index, raw_data={"loss": loss})


# ---- HEBO ----------------------------------------------------------------------------------


class HeboSearcher(AskTellSearcher):
    """HEBO with a constant liar on a copy for pending trials (see the module docstring)."""

    def __init__(self, *, seed: int, budget: int, liar: str = "max") -> None:
        super().__init__(seed=seed, budget=budget)
        if liar not in ("max", "min", "mean"):
            raise ValueError(f"liar must be 'max', 'min' or 'mean', got {liar!r}")
        self._liar = liar
        self._calls = 0
        from hebo.optimizers.hebo import HEBO  # noqa: F401  (import time is not suggest time)

    def _setup(self, dims: list[Dim]) -> None:
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        params: list[dict[str, Any]] = []
        for d in dims:
            if d.kind == "cat":
                labels = [str(i) for i in range(int(d.upper) + 1)]
                params.append({"name": d.name, "type": "cat", "categories": labels})
            elif d.kind == "float":
                kind = "pow" if d.log else "num"
                params.append({"name": d.name, "type": kind, "lb": d.lower, "ub": d.upper})
            else:
                kind = "pow_int" if d.log and d.lower >= 1 else "int"
                params.append({"name": d.name, "type": kind, "lb": d.lower, "ub": d.upper})
        self._names = [d.name for d in dims]
        self._hebo = HEBO(DesignSpace().parse(params), scramble_seed=self._seed)

    def _ask(self, pending: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]] | None:
        import pandas as pd
        import torch

        state = np.random.SeedSequence([self._seed, self._calls]).generate_state(3)
        self._calls += 1
        np.random.seed(int(state[0]))  # noqa: NPY002  (HEBO draws from the global RNG)
        torch.manual_seed(int(state[1]))
        opt = self._hebo
        if pending and opt.y.shape[0] >= opt.rand_sample:
            lies = {"max": np.max, "min": np.min, "mean": np.mean}[self._liar](opt.y)
            opt = copy.copy(opt)  # observe() rebinds X and y, so the real optimizer is untouched
            X = pd.DataFrame([{n: v[n] for n in self._names} for v in pending])
            opt.observe(X, np.full((len(pending), 1), lies))
        with _seeded_pymoo(int(state[2])):
            rec = opt.suggest(n_suggestions=1)
        values = rec.iloc[0].to_dict()
        return None, {n: values[n] for n in self._names}

    def _tell(self, token: Any, values: dict[str, Any], loss: float | None) -> None:
        if loss is None:
            return
        import pandas as pd

        self._hebo.observe(pd.DataFrame([values])[self._names], np.array([[loss]]))

    def _observe(self, values: dict[str, Any], loss: float) -> None:
        self._tell(None, values, loss)


@contextlib.contextmanager
def _seeded_pymoo(seed: int) -> Iterator[None]:
    """HEBO calls pymoo's ``minimize`` without a seed; pymoo >= 0.6.1 then seeds NSGA-II from
    fresh OS entropy (``np.random.default_rng(None)``), not from numpy's global RNG as 0.6.0 did,
    so the same seed gave other suggestions. This passes ``seed=`` for the duration of a call."""
    from hebo.acq_optimizers import evolution_optimizer

    original = evolution_optimizer.minimize

    def minimize(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("seed", seed)
        return original(*args, **kwargs)

    evolution_optimizer.minimize = minimize
    try:
        yield
    finally:
        evolution_optimizer.minimize = original


# ---- SMAC3 ---------------------------------------------------------------------------------


class SmacSearcher(AskTellSearcher):
    """SMAC3's HPO (random forest) or black-box (GP) facade, ask/tell (see the module
    docstring). ``max_leaf_nodes`` applies to the random forest only."""

    def __init__(
        self,
        *,
        seed: int,
        budget: int,
        facade: str = "hpo",
        max_leaf_nodes: int | None = None,
    ) -> None:
        super().__init__(seed=seed, budget=budget)
        if facade not in ("hpo", "bb"):
            raise ValueError(f"facade must be 'hpo' or 'bb', got {facade!r}")
        if max_leaf_nodes is not None and (
            isinstance(max_leaf_nodes, bool) or not isinstance(max_leaf_nodes, int)
        ):
            raise TypeError(f"max_leaf_nodes must be null or an int, got {max_leaf_nodes!r}")
        self._facade_name = facade
        self._max_leaf_nodes = max_leaf_nodes
        import smac  # noqa: F401  (import time is not suggest time)

    def _setup(self, dims: list[Dim]) -> None:
        from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
        from smac import BlackBoxFacade, HyperparameterOptimizationFacade, Scenario
        from smac.model.random_forest.random_forest import RandomForest

        cs = ConfigurationSpace(seed=self._seed)
        for d in dims:
            if d.kind == "cat":
                cs.add(Categorical(d.name, [str(i) for i in range(int(d.upper) + 1)]))
            elif d.kind == "float":
                cs.add(Float(d.name, (d.lower, d.upper), log=d.log))
            else:
                cs.add(Integer(d.name, (int(d.lower), int(d.upper)), log=d.log))
        # SMAC writes its run history under output_directory; a temporary one per run.
        self._tmp = tempfile.TemporaryDirectory(prefix="smac-anchor-")
        scenario = Scenario(
            cs,
            name="anchor",
            output_directory=Path(self._tmp.name),
            deterministic=True,
            n_trials=self._budget,
            seed=self._seed,
        )
        facade: Callable[..., Any]
        kwargs: dict[str, Any] = {}
        if self._facade_name == "hpo":
            facade = HyperparameterOptimizationFacade
            # HyperparameterOptimizationFacade.get_model's forest, but for the two options the
            # module docstring explains.
            kwargs["model"] = RandomForest(
                configspace=cs,
                log_y=True,
                n_trees=10,
                bootstrapping=True,
                ratio_features=1.0,
                min_samples_split=2,
                min_samples_leaf=1,
                max_depth=2**20,
                max_leaf_nodes=self._max_leaf_nodes,
                n_jobs=1,
                seed=self._seed,
            )
        else:
            facade = BlackBoxFacade
        self._smac = facade(
            scenario, _never_called, overwrite=True, logging_level=logging.WARNING, **kwargs
        )

    def _ask(self, pending: list[dict[str, Any]]) -> tuple[Any, dict[str, Any]] | None:
        info = self._smac.ask()
        return info, dict(info.config)

    def _tell(self, token: Any, values: dict[str, Any], loss: float | None) -> None:
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        if loss is None:
            value = TrialValue(cost=math.inf, status=StatusType.CRASHED)
        else:
            value = TrialValue(cost=loss)
        self._smac.tell(token, value, save=False)

    def _observe(self, values: dict[str, Any], loss: float) -> None:
        from ConfigSpace import Configuration
        from smac.runhistory.dataclasses import TrialInfo

        config = Configuration(self._smac.scenario.configspace, values=values)
        # The (instance, seed) key SMAC's own trials get, so that the intensifier counts the
        # config as evaluated instead of asking for it again on another seed.
        # (__post_init__ fills the intensifier's seed cache; SMAC calls it at every ask, so calling
        # it here as well is safe, and needed when nothing was asked yet.)
        intensifier = self._smac.intensifier
        intensifier.__post_init__()
        key = intensifier.get_instance_seed_keys_of_interest()[0]
        info = TrialInfo(config=config, instance=key.instance, seed=key.seed)
        self._tell(info, values, loss)


def _never_called(config: Any, seed: int = 0) -> float:
    """SMAC's facades need a target function; ask/tell never calls it."""
    raise RuntimeError("the SMAC anchor is driven by ask/tell; its target is never called")


# ---- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SotaAnchor:
    """build(seed=, budget=, **options) -> a searcher; requires: importable modules; install:
    how to get them (``make bench-setup`` installs all)."""

    build: Callable[..., AskTellSearcher]
    requires: tuple[str, ...]
    install: str


def _ax(*, seed: int, budget: int, **options: Any) -> AskTellSearcher:
    return AxSearcher(seed=seed, budget=budget, **options)


def _hebo(*, seed: int, budget: int, **options: Any) -> AskTellSearcher:
    return HeboSearcher(seed=seed, budget=budget, **options)


def _smac(facade: str) -> Callable[..., AskTellSearcher]:
    def build(*, seed: int, budget: int, **options: Any) -> AskTellSearcher:
        return SmacSearcher(seed=seed, budget=budget, facade=facade, **options)

    return build


SOTA_ANCHORS: dict[str, SotaAnchor] = {
    "ax-botorch": SotaAnchor(
        _ax, ("ax", "botorch"), "make bench-setup (ax-platform==1.3.1 botorch==0.18.1)"
    ),
    "hebo": SotaAnchor(
        _hebo, ("hebo", "pymoo", "disjoint_set"), "make bench-setup (HEBO==0.3.6 --no-deps)"
    ),
    "smac-hpo": SotaAnchor(_smac("hpo"), ("smac",), "make bench-setup (smac==2.4.1)"),
    "smac-bb": SotaAnchor(_smac("bb"), ("smac",), "make bench-setup (smac==2.4.1)"),
}
