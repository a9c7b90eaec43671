"""Searcher benchmark: every searcher, side by side, on the problems of `bench_problems` and the
real tuning tasks of `tasks`.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_searchers.py                       # everything, 10 seeds
    .venv/bin/python scripts/bench_searchers.py --searchers random optuna-tpe --problems branin \
        --seeds 2 --budget 50 --pending 1 4 --jobs 1 --out bench_results/try
    .venv/bin/python scripts/bench_searchers.py --list                # searchers and problems
    .venv/bin/python scripts/bench_searchers.py --searchers random gp-ei \
        gp-ei:min_loo_skill=null gp-ei:min_loo_skill=0.1 --pending 1 --seeds 20 --budget 50
    .venv/bin/python scripts/bench_searchers.py --searchers gp-ei ax-botorch hebo smac-hpo \
        --problems tasks task:knn-wine main --report-at 25 50 100   # real tasks (issue #16)

Problems: a name of `bench_problems.PROBLEMS`, ``task:NAME`` for a real task of `tasks.TASKS`
(scikit-learn models on bundled data, cross-validated loss), or a group: ``main`` (the default),
``holdout`` (the robustness set), ``discrete`` (ints and categoricals only), ``tasks`` (every real
task). A real task's optimum is unknown:
regret is measured from min(its stored reference, the best value any run observed), as
`tasks` explains; the table lists that optimum per task and flags a beaten reference.

Anchors: Ray's own searchers (bayesopt, hyperopt-direct, optuna-direct, ng-pso, ng-de; in the
default set when installed) and issue #16's state of the art (`anchors.py`: ax-botorch, hebo,
smac-hpo, smac-bb; only by name, as their model-based suggests take seconds; ``make
bench-setup`` installs them). The latter take options too: ``smac-hpo:max_leaf_nodes=1048576``.

A searcher name may carry options, ``NAME:key=value,key=value`` (each value read as JSON, else
as a string): ``make_searcher(NAME, seed=..., key=value, ...)``. That is how a variant of one of
our searchers runs side by side with its default (as in BENCHMARKS.md's option screens); the
options are checked before any run starts.

Each searcher is driven through the plain Ray Tune ``Searcher`` protocol, with no Ray runtime:
``set_search_properties("loss", "min", param_space)``, then ``suggest(trial_id)`` and
``on_trial_complete(trial_id, {"loss": value})``.

Protocol with k trials pending (``--pending``; k = 1 is sequential): keep k suggestions
outstanding; each step complete the OLDEST outstanding trial (FIFO), then suggest to refill. At
most ``--budget`` trials are suggested, so the last steps only drain. When ``suggest`` returns None
with trials pending, one is completed and suggest is retried; None with nothing pending
``BenchOptions.max_idle_nones`` times in a row ends the run as *stalled* (Ray Tune would hang);
``Searcher.FINISHED`` before the budget ends it as *finished*. Either way the best found so far is
carried to the budget and the table flags the run. A searcher that refuses the space (ValueError /
TypeError from its constructor or ``set_search_properties``, e.g. BayesOptSearch on ints) is "n/a";
an exception later is an *error*, shown in the table with its message.

The scores at the smaller budgets (``--report-at``, default half the budget and the budget) are the
first completions of the same runs: budget 50 is the first 50 evaluations of the 100-evaluation run
(with k > 1 its searcher had already made a few more suggestions than a 50-trial run would).

Score (Bayesmark's normalization: random search = 1, optimum = 0), per problem, budget and k::

    regret            = value(incumbent) - optimum       incumbent: best OBSERVED config so far;
                                                          value: the noise-free objective
    normalized regret = regret / median over seeds of random's regret (same budget and k)

A cell is the median over seeds of the normalized regret; "mean" is its mean over problems. Also
reported per searcher, k and budget: Bayesmark's normalized score (100 (1 - min(1, regret /
random's median regret)), mean over runs, then over problems) and the problems won (lowest median
normalized regret; ties share). Every ``suggest`` call is timed with ``time.perf_counter`` (the
first ones and those returning None too); `bench_suggest_time.py` measures suggest time after a
fixed number of observations (100, 500) with and without thread limits and busy cores.

Outputs under ``--out`` (default ``bench_results/``): ``traces/SEARCHER/PROBLEM/kK-seedS.json``
(one per run: best so far per evaluation, suggest times, stalls; a rerun reuses them, so a long run
can be resumed; ``--fresh`` ignores them; error runs are always redone), ``table.md`` (also
printed), ``results.csv`` (one row per run and reported budget) and ``plots/PROBLEM.png``
(median normalized regret vs evaluations; sequential solid, pending dashed).

Every task is single-threaded (OMP/MKL/OPENBLAS threads 1), so ``--jobs N`` runs N tasks on N cores
without the BLAS or torch thread pools of one task competing with another's.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import importlib.util
import json
import logging
import math
import multiprocessing
import os
import platform
import re
import sys
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from anchors import SOTA_ANCHORS
from bench_problems import DISCRETE, HOLDOUT, MAIN, Problem, get_problem
from ray.tune.search import Searcher
from tasks import TASKS, cached_objective, get_task, reference_value

import searchers
from searchers.base import atomic_write_json, read_json

__all__ = [
    "ANCHORS",
    "PROBLEM_GROUPS",
    "BenchOptions",
    "BenchReport",
    "Task",
    "default_searchers",
    "get_bench_problem",
    "main",
    "run_benchmark",
    "run_task",
]

METRIC = "loss"
MODE = "min"
# Bump when a change to the protocol, the problems or the trace format makes old traces wrong.
TRACE_VERSION = 1
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Windows of "observations completed" for the suggest-time-by-observations table.
_OBS_WINDOWS = ((0, 10), (10, 25), (25, 50), (50, 75), (75, 100), (100, 200), (200, 10**9))
_WARM_IMPORTS = (
    "torch",
    "optuna._gp.gp",
    "optuna._gp.acqf",
    "optuna._gp.optim_mixed",
    "hyperopt.tpe",
    "bayes_opt",
    "nevergrad",
    "cmaes",
)


# ---- anchors: Ray's own searchers, constructed directly ----------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A Ray searcher built as a user would build it, for comparison with the registered ones.

    build(seed, budget, pending, space, **options) returns the searcher; the harness then calls
    ``set_search_properties`` (a searcher given its space in the constructor answers False).
    requires: modules that must be importable; install: the pip command that provides them.
    takes_options: whether ``NAME:key=value`` options are passed to ``build`` (the anchors of
    `anchors.py`); the others refuse options.
    """

    build: Callable[..., Searcher]
    requires: tuple[str, ...]
    install: str
    takes_options: bool = False


def _bayesopt(seed: int, budget: int, pending: int, space: dict[str, Any]) -> Searcher:
    from ray.tune.search.bayesopt import BayesOptSearch

    return BayesOptSearch(random_state=seed)


def _hyperopt_direct(seed: int, budget: int, pending: int, space: dict[str, Any]) -> Searcher:
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(random_state_seed=seed)


def _optuna_direct(seed: int, budget: int, pending: int, space: dict[str, Any]) -> Searcher:
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(sampler=TPESampler(seed=seed))


def _nevergrad(optimizer: str) -> Callable[[int, int, int, dict[str, Any]], Searcher]:
    def build(seed: int, budget: int, pending: int, space: dict[str, Any]) -> Searcher:
        import nevergrad as ng
        from ray.tune.search.nevergrad import NevergradSearch

        # NevergradSearch takes no seed: seed the parametrization (nevergrad's documented way)
        # and hand it over, converted from the param_space exactly as set_search_properties would.
        parametrization = NevergradSearch.convert_search_space(space)
        parametrization.random_state.seed(seed)
        return NevergradSearch(
            optimizer=getattr(ng.optimizers, optimizer),
            optimizer_kwargs={"budget": budget, "num_workers": pending},
            space=parametrization,
            metric=METRIC,
            mode=MODE,
        )

    return build


ANCHORS: dict[str, Anchor] = {
    "bayesopt": Anchor(
        _bayesopt, ("bayes_opt",), ".venv/bin/pip install 'bayesian-optimization==1.4.3'"
    ),
    "hyperopt-direct": Anchor(_hyperopt_direct, ("hyperopt",), ".venv/bin/pip install hyperopt"),
    "optuna-direct": Anchor(_optuna_direct, ("optuna",), ".venv/bin/pip install optuna"),
    "ng-pso": Anchor(_nevergrad("PSO"), ("nevergrad",), ".venv/bin/pip install nevergrad==1.0.3"),
    "ng-de": Anchor(
        _nevergrad("TwoPointsDE"), ("nevergrad",), ".venv/bin/pip install nevergrad==1.0.3"
    ),
}


def _sota(name: str) -> Callable[..., Searcher]:
    def build(
        seed: int, budget: int, pending: int, space: dict[str, Any], **options: Any
    ) -> Searcher:
        return SOTA_ANCHORS[name].build(seed=seed, budget=budget, **options)

    return build


# Ax/BoTorch, HEBO and SMAC3 (issue #16): opt-in by name, not in the default set, as a model-based
# suggest takes ~0.5-10 s there (see anchors.py).
ANCHORS.update(
    {
        name: Anchor(_sota(name), spec.requires, spec.install, takes_options=True)
        for name, spec in SOTA_ANCHORS.items()
    }
)
_DEFAULT_ANCHORS = ("bayesopt", "hyperopt-direct", "optuna-direct", "ng-pso", "ng-de")


def _missing_modules(name: str) -> list[str]:
    base = split_variant(name)[0]
    if base not in ANCHORS:
        return []
    return [m for m in ANCHORS[base].requires if importlib.util.find_spec(m) is None]


def default_searchers() -> list[str]:
    """Every registered searcher, then the anchors whose libraries are installed."""
    return [*searchers.available(), *(a for a in _DEFAULT_ANCHORS if not _missing_modules(a))]


def split_variant(name: str) -> tuple[str, dict[str, Any]]:
    """``"gp-ei:min_loo_skill=0.1,n_initial=8"`` -> ``("gp-ei", {"min_loo_skill": 0.1,
    "n_initial": 8})``; a value is read as JSON (``null``, numbers, lists), else kept as a string.
    Raises ValueError for an option without ``=``."""
    base, sep, rest = name.partition(":")
    options: dict[str, Any] = {}
    if not sep:
        return base, options
    for item in rest.split(","):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(
                f"searcher {name!r}: option {item!r} is not key=value (write NAME:key=value,...)"
            )
        try:
            options[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip()] = raw
    return base, options


def build_searcher(
    name: str, *, seed: int, budget: int, pending: int, space: dict[str, Any]
) -> Searcher:
    base, options = split_variant(name)
    if base in ANCHORS:
        anchor = ANCHORS[base]
        if options and not anchor.takes_options:
            raise ValueError(f"anchor {base!r} takes no NAME:key=value options")
        return anchor.build(seed, budget, pending, space, **options)
    return searchers.make_searcher(base, seed=seed, **options)


# ---- problems: the test functions of bench_problems and the real tasks of tasks.py ----------

TASK_PREFIX = "task:"
#: Names that ``--problems`` expands: the main set, the robustness set, the discrete set, every
#: real task.
PROBLEM_GROUPS: dict[str, tuple[str, ...]] = {
    "main": MAIN,
    "holdout": HOLDOUT,
    "discrete": DISCRETE,
    "tasks": tuple(f"{TASK_PREFIX}{name}" for name in TASKS),
}


def expand_problems(names: Iterable[str]) -> tuple[str, ...]:
    """Problem names with the groups of `PROBLEM_GROUPS` expanded, duplicates dropped."""
    out: list[str] = []
    for name in names:
        for p in PROBLEM_GROUPS.get(name, (name,)):
            if p not in out:
                out.append(p)
    return tuple(out)


def get_bench_problem(name: str) -> Problem:
    """A problem of bench_problems, or ``task:NAME`` for a real task of tasks.py. A task's
    ``optimum`` is its stored reference value (+inf when none is stored); `score` lowers it to
    the best value any run observed (see tasks.py)."""
    if name.startswith(TASK_PREFIX):
        return _task_problem(name[len(TASK_PREFIX) :])
    return get_problem(name)


@functools.cache
def _task_problem(name: str) -> Problem:
    spec = get_task(name)
    return Problem(
        f"{TASK_PREFIX}{name}", spec.make_space, cached_objective(spec), reference_value(name)
    )


# ---- one run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One run: a searcher on a problem with one seed and k trials pending, for `budget` trials."""

    searcher: str
    problem: str
    seed: int
    pending: int
    budget: int

    def cache_path(self, out: Path) -> Path:
        name = f"k{self.pending}-seed{self.seed}.json"
        return out / "traces" / self.searcher / self.problem / name


def run_task(task: Task, *, max_idle_nones: int = 10) -> dict[str, Any]:
    """Run one task and return its trace (JSON-safe; see the keys set below)."""
    problem = get_bench_problem(task.problem)
    trace: dict[str, Any] = {
        "version": TRACE_VERSION,
        "searcher": task.searcher,
        "problem": task.problem,
        "seed": task.seed,
        "pending": task.pending,
        "budget": task.budget,
        "status": "ok",  # ok | n/a | stalled | finished | error
        "reason": None,
        "incumbent_value": [],  # noise-free value of the best observed config, per evaluation
        "best_observed": [],  # best observed (noisy) value, per evaluation
        "suggest_s": [],  # seconds of every suggest call, in call order
        "suggest_obs": [],  # evaluations completed when that call was made
        "suggest_none": 0,  # calls that returned None
        "duplicates": 0,  # suggested configs equal to an earlier one of this run
        "complete_s": 0.0,  # seconds spent in on_trial_complete, in all
        "wall_s": 0.0,
    }
    started = time.perf_counter()
    space = problem.space()
    try:
        searcher = build_searcher(
            task.searcher, seed=task.seed, budget=task.budget, pending=task.pending, space=space
        )
        searcher.set_search_properties(METRIC, MODE, space)
    except (ValueError, TypeError, NotImplementedError) as exc:
        trace.update(status="n/a", reason=_one_line(exc))
        trace["wall_s"] = time.perf_counter() - started
        return trace
    try:
        _drive(searcher, problem, task, trace, max_idle_nones)
    # Any exception from a searcher is a finding to report, not to hide: the run is recorded as
    # an error with its traceback, the table shows it, and the other runs go on.
    except Exception as exc:
        trace.update(status="error", reason=_one_line(exc), traceback=traceback.format_exc())
    trace["wall_s"] = time.perf_counter() - started
    return trace


def _drive(
    searcher: Searcher, problem: Problem, task: Task, trace: dict[str, Any], max_idle_nones: int
) -> None:
    noise_rng = np.random.default_rng([task.seed, zlib.crc32(task.problem.encode())])
    outstanding: deque[tuple[str, dict[str, Any]]] = deque()
    seen: set[str] = set()
    n_calls = n_suggested = n_completed = idle_nones = 0
    best_observed = math.inf
    incumbent_value = math.nan
    finished = False
    while n_completed < task.budget:
        while not finished and len(outstanding) < task.pending and n_suggested < task.budget:
            trial_id = f"trial_{n_calls:05d}"
            t0 = time.perf_counter()
            config = searcher.suggest(trial_id)
            trace["suggest_s"].append(time.perf_counter() - t0)
            trace["suggest_obs"].append(n_completed)
            n_calls += 1
            if config is None:
                trace["suggest_none"] += 1
                if outstanding:
                    break  # complete one, then retry
                idle_nones += 1
                if idle_nones >= max_idle_nones:
                    trace.update(
                        status="stalled",
                        reason=f"suggest returned None {idle_nones} times in a row with no "
                        f"trial pending, after {n_completed} evaluations",
                    )
                    return
                continue
            if isinstance(config, str) and config == Searcher.FINISHED:
                finished = True
                break
            if not isinstance(config, Mapping):
                raise TypeError(
                    f"suggest returned {config!r}; a searcher returns a config dict, None or "
                    "Searcher.FINISHED"
                )
            idle_nones = 0
            key = json.dumps(config, sort_keys=True, default=str)
            if key in seen:
                trace["duplicates"] += 1
            seen.add(key)
            outstanding.append((trial_id, dict(config)))
            n_suggested += 1
        if not outstanding:
            break  # finished and drained
        trial_id, config = outstanding.popleft()
        observed = problem.observe(config, noise_rng)
        t0 = time.perf_counter()
        searcher.on_trial_complete(trial_id, {METRIC: observed})
        trace["complete_s"] += time.perf_counter() - t0
        n_completed += 1
        if observed < best_observed:
            best_observed, incumbent_value = observed, problem.value(config)
        trace["best_observed"].append(best_observed)
        trace["incumbent_value"].append(incumbent_value)
    if n_completed < task.budget:
        trace.update(
            status="finished",
            reason=f"suggest returned FINISHED after {n_completed} evaluations",
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _setup_process() -> None:
    """One thread per task (BLAS already loaded, torch for Optuna's GP, children), and Optuna's
    per-trial INFO log off (its warnings stay)."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if importlib.util.find_spec("optuna") is not None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    once = _OncePerMessage()
    for name in ("optuna", "ray"):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(once)
    # Import the libraries' lazily imported parts now, so that a run's suggest times do not
    # include them: Optuna's GP imports torch at its first fit, which took 1.9 s of one suggest
    # (0.06 s warm) on the 2-core CI machine.
    for module in _WARM_IMPORTS:
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            importlib.import_module(module)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class _OncePerMessage(logging.Filter):
    """Lets each log message through once per process, numbers ignored.

    Optuna's CmaEsSampler warns twice per trial on a space with categoricals ("sampled
    independently using RandomSampler", 200 lines per 100-trial run of mixed-train) and
    BayesOptSearch logs every duplicate it skips; once each keeps the finding visible and the
    progress lines readable.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, re.sub(r"\d+", "N", record.getMessage()))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def _run_cached(job: tuple[Task, Path, bool, int]) -> dict[str, Any]:
    task, out, fresh, max_idle_nones = job
    path = task.cache_path(out)
    if not fresh:
        cached = _load_cached(path, task)
        if cached is not None:
            cached["cached"] = True
            return cached
    trace = run_task(task, max_idle_nones=max_idle_nones)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, trace)
    trace["cached"] = False
    return trace


def _load_cached(path: Path, task: Task) -> dict[str, Any] | None:
    """A cached trace usable for `task` (same version, at least its budget, not an error)."""
    if not path.exists():
        return None
    trace = read_json(path)
    if trace.get("version") != TRACE_VERSION or trace.get("status") == "error":
        return None
    if trace["status"] == "n/a":
        return trace
    if trace["budget"] < task.budget:
        return None
    return _truncate(trace, task.budget)


def _truncate(trace: dict[str, Any], budget: int) -> dict[str, Any]:
    """The trace of a longer run cut to its first `budget` evaluations."""
    if trace["budget"] == budget:
        return trace
    keep = [i for i, n in enumerate(trace["suggest_obs"]) if n < budget]
    cut = dict(trace, budget=budget)
    cut["incumbent_value"] = trace["incumbent_value"][:budget]
    cut["best_observed"] = trace["best_observed"][:budget]
    cut["suggest_s"] = [trace["suggest_s"][i] for i in keep]
    cut["suggest_obs"] = [trace["suggest_obs"][i] for i in keep]
    if len(cut["incumbent_value"]) == budget:
        cut.update(status="ok", reason=None)
    return cut


# ---- the whole benchmark -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """What to run and where to write it.

    searchers / problems: names (`default_searchers()`, `bench_problems.PROBLEMS`); "random" is
        added when missing, as it is the normalization's reference.
    seeds: runs per (searcher, problem, k), seeded 0 .. seeds - 1.
    budget: evaluations per run; report_at: budgets scored (default: budget // 2 and budget).
    pending: the k of each pending mode (1: sequential).
    jobs: processes; 1 runs in this process.
    fresh: ignore cached traces.
    plots: write convergence plots (needs matplotlib).
    max_idle_nones: None from suggest with nothing pending, in a row, that makes a stall.
    """

    searchers: tuple[str, ...]
    problems: tuple[str, ...] = MAIN
    seeds: int = 10
    budget: int = 100
    report_at: tuple[int, ...] = ()
    pending: tuple[int, ...] = (1, 4)
    out: Path = Path("bench_results")
    jobs: int = 1
    fresh: bool = False
    plots: bool = True
    max_idle_nones: int = 10

    def __post_init__(self) -> None:
        for name in ("seeds", "budget", "jobs", "max_idle_nones"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not self.pending or any(k < 1 for k in self.pending):
            raise ValueError(f"pending must list ints >= 1, got {self.pending!r}")
        if any(b < 1 or b > self.budget for b in self.report_at):
            raise ValueError(
                f"report_at must lie in [1, budget={self.budget}], got {self.report_at}"
            )
        for problem in self.problems:
            get_bench_problem(problem)
        registered = searchers.available()
        unknown = [
            s
            for s in self.searchers
            if split_variant(s)[0] not in ANCHORS and split_variant(s)[0] not in registered
        ]
        if unknown:
            raise ValueError(
                f"unknown searcher(s) {unknown}; registered: {registered}, anchors: "
                f"{list(ANCHORS)}"
            )
        for name in self.searchers:
            base, variant = split_variant(name)
            if variant:  # bad options fail here, not in the middle of a long run
                if base in ANCHORS and _missing_modules(base):
                    continue  # skipped at run time, with the install hint
                try:
                    if base in ANCHORS:
                        build_searcher(name, seed=0, budget=self.budget, pending=1, space={})
                    else:
                        searchers.make_searcher(base, seed=0, **variant)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"searcher {name!r}: {exc}") from exc

    @property
    def budgets(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.report_at or (max(1, self.budget // 2), self.budget))))


@dataclass
class Cell:
    """One (searcher, problem, k, budget): the runs' regrets and their median normalized."""

    regrets: list[float]  # of the runs that produced a value
    statuses: list[str]
    reasons: list[str]
    normalized: float | None = None  # median regret / random's median regret
    # Bayesmark's normalized score: mean over runs of 100 (1 - min(1, regret / random's median
    # regret)); 100 = the optimum, 0 = no better than random's median.
    score: float | None = None

    def count(self, status: str) -> int:
        return self.statuses.count(status)


@dataclass
class BenchReport:
    options: BenchOptions
    searchers: list[str]
    traces: list[dict[str, Any]]
    cells: dict[tuple[str, str, int, int], Cell]
    reference: dict[tuple[str, int, int], float | None]  # (problem, k, budget) -> random's median
    means: dict[tuple[str, int, int], tuple[float | None, int]]  # -> (mean, problems counted)
    optima: dict[str, float]  # problem -> the optimum regrets are measured from
    scores: dict[tuple[str, int, int], float | None]  # (searcher, k, budget) -> mean cell score
    wins: dict[tuple[str, int, int], tuple[float, int]]  # -> (problems won, problems scored)
    table: str = ""
    paths: dict[str, Path] = field(default_factory=dict)


def run_benchmark(
    options: BenchOptions, *, log: Callable[[str], None] | None = None
) -> BenchReport:
    """Run (or load from the cache) every task, score them, and write the outputs."""
    names = list(options.searchers)
    if "random" not in names:
        names.insert(0, "random")
        _say(log, "adding 'random': it is the reference of the normalized regret")
    for name in list(names):
        missing = _missing_modules(name)
        if missing:
            names.remove(name)
            _say(
                log,
                f"skipping {name}: needs {', '.join(missing)}, not installed "
                f"({ANCHORS[split_variant(name)[0]].install})",
            )
    tasks = [
        Task(s, p, seed, k, options.budget)
        for seed in range(options.seeds)
        for p in options.problems
        for k in options.pending
        for s in names
    ]
    jobs = [(t, options.out, options.fresh, options.max_idle_nones) for t in tasks]
    traces: list[dict[str, Any]] = []
    started = time.perf_counter()
    for trace in _map(jobs, options.jobs):
        traces.append(trace)
        _say(log, _progress_line(len(traces), len(tasks), trace, time.perf_counter() - started))
    report = score(options, names, traces)
    report.table = render_table(report)
    options.out.mkdir(parents=True, exist_ok=True)
    report.paths["table"] = options.out / "table.md"
    report.paths["table"].write_text(report.table, encoding="utf-8")
    report.paths["csv"] = options.out / "results.csv"
    write_csv(report, report.paths["csv"])
    if options.plots:
        written = write_plots(report, options.out / "plots", log)
        if written:
            report.paths["plots"] = options.out / "plots"
    return report


def _map(jobs: list[tuple[Task, Path, bool, int]], n: int) -> Iterable[dict[str, Any]]:
    if n == 1:
        for job in jobs:
            yield _run_cached(job)
        return
    # spawn: workers start clean (no Ray or thread state of this process) and inherit the
    # one-thread environment set by main().
    context = multiprocessing.get_context("spawn")
    with context.Pool(n, initializer=_setup_process) as pool:
        yield from pool.imap_unordered(_run_cached, jobs)


def _progress_line(done: int, total: int, trace: dict[str, Any], elapsed: float) -> str:
    best = trace["incumbent_value"][-1] if trace["incumbent_value"] else math.nan
    optimum = get_bench_problem(trace["problem"]).optimum
    # A task's stored reference is not its optimum (a run may beat it): show the value there.
    shown = f"regret {best - optimum:.3g}" if math.isfinite(optimum) else f"best {best:.5g}"
    if trace["problem"].startswith(TASK_PREFIX):
        shown = f"best {best:.5g}"
    source = "cached" if trace.get("cached") else f"{trace['wall_s']:.1f}s"
    status = "" if trace["status"] == "ok" else f" [{trace['status']}: {trace['reason']}]"
    return (
        f"[{done}/{total} {elapsed:.0f}s] {trace['searcher']} {trace['problem']} "
        f"k={trace['pending']} seed={trace['seed']}: {shown} ({source}){status}"
    )


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)


# ---- scoring -------------------------------------------------------------------------------


def _value_at(trace: dict[str, Any], n: int) -> float | None:
    """Noise-free value of the incumbent after n evaluations (the last one if the run stopped)."""
    values = trace["incumbent_value"]
    if trace["status"] in ("n/a", "error") or not values:
        return None
    return float(values[min(n, len(values)) - 1])


def effective_optima(problems: Iterable[str], traces: list[dict[str, Any]]) -> dict[str, float]:
    """Per problem: min(its optimum, the best noise-free incumbent any run reached). For a test
    function the optimum is exact and this is a no-op; for a real task it is the rule of tasks.py
    (the stored reference, lowered to the best value this benchmark observed)."""
    optima = {}
    for p in problems:
        seen = [min(t["incumbent_value"]) for t in traces if t["problem"] == p and _has_values(t)]
        optima[p] = min([get_bench_problem(p).optimum, *seen])
    return optima


def _has_values(trace: dict[str, Any]) -> bool:
    return trace["status"] not in ("n/a", "error") and bool(trace["incumbent_value"])


def score(options: BenchOptions, names: list[str], traces: list[dict[str, Any]]) -> BenchReport:
    by_key = {(t["searcher"], t["problem"], t["pending"], t["seed"]): t for t in traces}
    optima = effective_optima(options.problems, traces)
    cells: dict[tuple[str, str, int, int], Cell] = {}
    for s in names:
        for p in options.problems:
            optimum = optima[p]
            for k in options.pending:
                runs = [by_key[(s, p, k, seed)] for seed in range(options.seeds)]
                for b in options.budgets:
                    values = [_value_at(t, b) for t in runs]
                    cells[(s, p, k, b)] = Cell(
                        regrets=[v - optimum for v in values if v is not None],
                        statuses=[t["status"] for t in runs],
                        reasons=[t["reason"] for t in runs if t["reason"]],
                    )
    reference: dict[tuple[str, int, int], float | None] = {}
    for p in options.problems:
        for k in options.pending:
            for b in options.budgets:
                regrets = cells[("random", p, k, b)].regrets
                ref = float(np.median(regrets)) if regrets else None
                reference[(p, k, b)] = ref if ref is not None and ref > 0 else None
    means: dict[tuple[str, int, int], tuple[float | None, int]] = {}
    for (_, p, k, b), cell in cells.items():
        ref = reference[(p, k, b)]
        if ref is not None and cell.regrets:
            # median(regret) / ref rather than median(regret / ref): equal for ref > 0, and
            # random's own cell is then exactly 1.0.
            cell.normalized = float(np.median(cell.regrets)) / ref
            clipped = np.minimum(1.0, np.array(cell.regrets) / ref)  # (runs,)
            cell.score = float(100.0 * np.mean(1.0 - clipped))
    scores: dict[tuple[str, int, int], float | None] = {}
    for s in names:
        for k in options.pending:
            for b in options.budgets:
                got = [cells[(s, p, k, b)].normalized for p in options.problems]
                vals = [v for v in got if v is not None]
                means[(s, k, b)] = (float(np.mean(vals)) if vals else None, len(vals))
                got = [cells[(s, p, k, b)].score for p in options.problems]
                vals = [v for v in got if v is not None]
                scores[(s, k, b)] = float(np.mean(vals)) if vals else None
    wins = _wins(options, names, cells)
    return BenchReport(options, names, traces, cells, reference, means, optima, scores, wins)


def _wins(
    options: BenchOptions, names: list[str], cells: dict[tuple[str, str, int, int], Cell]
) -> dict[tuple[str, int, int], tuple[float, int]]:
    """Per (searcher, k, budget): the problems it won (lowest median normalized regret; a tie of
    n searchers gives each 1/n) and the problems where any searcher had a score."""
    wins: dict[tuple[str, int, int], tuple[float, int]] = {}
    for k in options.pending:
        for b in options.budgets:
            won = dict.fromkeys(names, 0.0)
            scored = 0
            for p in options.problems:
                values = {s: cells[(s, p, k, b)].normalized for s in names}
                present = {s: v for s, v in values.items() if v is not None}
                if not present:
                    continue
                scored += 1
                best = min(present.values())
                # Ties up to float noise: cells are medians of the same kind of numbers.
                winners = [s for s, v in present.items() if v <= best + 1e-12 * max(1.0, best)]
                for s in winners:
                    won[s] += 1.0 / len(winners)
            for s in names:
                wins[(s, k, b)] = (won[s], scored)
    return wins


def _suggest_times(traces: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    seconds = [x for t in traces for x in t["suggest_s"]]
    obs = [n for t in traces for n in t["suggest_obs"]]
    return np.array(seconds, dtype=float), np.array(obs, dtype=int)  # (n_calls,), (n_calls,)


def _ms(seconds: np.ndarray, q: float) -> str:
    return "—" if seconds.size == 0 else f"{1000.0 * float(np.percentile(seconds, q)):.3g}"


# ---- outputs -------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.2f}" if x >= 0.095 else f"{x:.1e}"


def _cell_text(cell: Cell) -> str:
    if cell.statuses and all(st == "n/a" for st in cell.statuses):
        return "n/a"
    text = _fmt(cell.normalized)
    flags = [f"{code}{cell.count(st)}" for st, code in _FLAGS if cell.count(st)]
    return f"{text} [{' '.join(flags)}]" if flags else text


_FLAGS = (("stalled", "s"), ("finished", "f"), ("error", "e"), ("n/a", "na"))


def render_table(report: BenchReport) -> str:
    opts = report.options
    lines = [
        "# Searcher benchmark",
        "",
        f"Command: `{_command_line(opts)}`",
        "",
        f"Machine: {_machine()}. Versions: {_versions()}.",
        "",
        f"{opts.seeds} seeds; budgets {', '.join(map(str, opts.budgets))} (the smaller budgets "
        f"are the first evaluations of the {opts.budget}-evaluation runs); pending modes "
        f"{', '.join(f'k={k}' for k in opts.pending)} (k=1: sequential; FIFO completion). "
        "Cells: median over seeds of the normalized regret (random search = 1, optimum = 0; "
        "lower is better). Flags: [sN] N runs stalled (suggest returned None with nothing "
        "pending), [fN] N runs ended by FINISHED, [eN] N runs raised, [naN] N runs refused the "
        "space: the best found before a stop is carried to the budget; the median is over the "
        "runs that produced a value.",
        "",
        "## Summary",
        "",
    ]
    head = ["searcher"]
    head += [f"mean k={k} b={b}" for k in opts.pending for b in opts.budgets]
    head += ["suggest p50 ms", "suggest p95 ms", "None/run", "wall s/run"]
    rows = []
    for s in report.searchers:
        traces = [t for t in report.traces if t["searcher"] == s]
        seconds, _ = _suggest_times(traces)
        ran = [t for t in traces if t["status"] != "n/a"]
        row = [s]
        for k in opts.pending:
            for b in opts.budgets:
                mean, counted = report.means[(s, k, b)]
                text = _fmt(mean)
                if mean is not None and counted < len(opts.problems):
                    text += f" ({counted}/{len(opts.problems)})"
                row.append(text)
        row += [_ms(seconds, 50), _ms(seconds, 95)]
        row.append(f"{np.mean([t['suggest_none'] for t in ran]):.1f}" if ran else "—")
        row.append(f"{np.mean([t['wall_s'] for t in ran]):.2f}" if ran else "—")
        rows.append(row)
    lines += _markdown(head, rows)
    lines += [
        "",
        "mean: over the problems where the searcher has a score ((n/m): on n of m problems, not "
        "comparable with a full mean). Suggest times: every call, all problems and modes. "
        "None/run: suggest calls per run that returned None. wall s/run: mean seconds per run "
        "(suggest + complete + objective), runs refused as n/a excluded.",
    ]
    lines += ["", "## Bayesmark-style score and problems won", ""]
    head = ["searcher"]
    head += [f"k={k} b={b}" for k in opts.pending for b in opts.budgets]
    rows = []
    for s in report.searchers:
        row = [s]
        for k in opts.pending:
            for b in opts.budgets:
                won, scored = report.wins[(s, k, b)]
                score = report.scores[(s, k, b)]
                shown = "—" if score is None else f"{score:.1f}"
                row.append(f"{shown} / {won:g} of {scored}")
        rows.append(row)
    lines += _markdown(head, rows)
    lines += [
        "",
        "Each cell: score / problems won. Score: Bayesmark's normalized score, 100 (1 - "
        "min(1, regret / random's median regret)) averaged over the runs of a problem, then over "
        "the problems (100: the optimum every time; 0: never better than random's median). Won: "
        "problems where the searcher's median normalized regret is the lowest (a tie of n "
        "searchers counts 1/n each), of the problems scored.",
    ]
    lines += _task_optima_lines(report)
    for k in opts.pending:
        mode = "sequential" if k == 1 else f"{k} pending"
        for b in opts.budgets:
            lines += ["", f"## k={k} ({mode}), budget {b}", ""]
            head = ["searcher", *opts.problems, "mean", "suggest p50 ms", "suggest p95 ms"]
            rows = []
            for s in report.searchers:
                traces = [t for t in report.traces if t["searcher"] == s and t["pending"] == k]
                seconds, _ = _suggest_times(traces)
                mean, _ = report.means[(s, k, b)]
                row = [s, *(_cell_text(report.cells[(s, p, k, b)]) for p in opts.problems)]
                rows.append([*row, _fmt(mean), _ms(seconds, 50), _ms(seconds, 95)])
            lines += _markdown(head, rows)
    lines += ["", "## Suggest time p95 (ms) by evaluations completed when suggest was called", ""]
    windows = [(lo, hi) for lo, hi in _OBS_WINDOWS if lo < opts.budget]
    head = ["searcher", *(f"{lo}-{min(hi, opts.budget) - 1}" for lo, hi in windows)]
    rows = []
    for s in report.searchers:
        seconds, obs = _suggest_times([t for t in report.traces if t["searcher"] == s])
        rows.append([s, *(_ms(seconds[(obs >= lo) & (obs < hi)], 95) for lo, hi in windows)])
    lines += _markdown(head, rows)
    lines += ["", "## Runs that did not finish normally", ""]
    notes = _problem_notes(report)
    lines += notes or ["None: every run reached its budget."]
    lines.append("")
    return "\n".join(lines)


def _task_optima_lines(report: BenchReport) -> list[str]:
    """The optimum used for each real task: its stored reference or a better value a run
    found (then the reference should be extended; see tasks.py)."""
    rows = []
    for p in report.options.problems:
        if not p.startswith(TASK_PREFIX):
            continue
        stored = get_bench_problem(p).optimum
        used = report.optima[p]
        if not math.isfinite(stored):
            note = "no stored reference: the run's best"
        elif used < stored:
            note = "REFERENCE BEATEN: the run's best"
        else:
            note = "stored reference"
        rows.append([p, f"{stored:.6g}", f"{used:.6g}", note])
    if not rows:
        return []
    lines = ["", "## Optima of the real tasks", ""]
    lines += _markdown(["task", "stored reference", "optimum used", "source"], rows)
    lines += [
        "",
        "optimum used = min(stored reference, best value any run of this benchmark observed) "
        "(tasks.py explains the choice).",
    ]
    return lines


def _problem_notes(report: BenchReport) -> list[str]:
    """One line per (searcher, status, reason), with the runs it hit and one reason verbatim."""
    groups: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for t in report.traces:
        if t["status"] == "ok":
            continue
        reason = t["reason"] or ""
        # Grouped by the reason without its numbers, so runs stopped at different points group.
        shape = "".join("N" if c.isdigit() else c for c in reason)
        where = f"{t['problem']} k={t['pending']} seed={t['seed']}"
        groups.setdefault((t["searcher"], t["status"], shape), []).append((where, reason))
    notes = []
    for (s, status, _), runs in sorted(groups.items()):
        shown = "; ".join(where for where, _ in runs[:6])
        if len(runs) > 6:
            shown += f"; and {len(runs) - 6} more"
        notes.append(f"- **{s}** {status} in {len(runs)} runs ({shown}): {runs[0][1]}")
    return notes


def _markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _command_line(opts: BenchOptions) -> str:
    parts = ["python scripts/bench_searchers.py", "--searchers", *opts.searchers]
    parts += ["--problems", *opts.problems, "--seeds", str(opts.seeds)]
    parts += ["--budget", str(opts.budget), "--pending", *map(str, opts.pending)]
    if opts.report_at:
        parts += ["--report-at", *map(str, opts.report_at)]
    return " ".join(parts)


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ("ray", "optuna", "hyperopt", "bayesian-optimization", "nevergrad", "numpy"):
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            found.append(f"{dist} not installed")
    # The real tasks' and issue #16's anchors' libraries: named only where installed.
    for dist in ("scikit-learn", "torch", "ax-platform", "botorch", "smac", "hebo"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{dist} {version(dist)}")
    return ", ".join(found)


def write_csv(report: BenchReport, path: Path) -> None:
    columns = [
        "searcher",
        "problem",
        "pending",
        "seed",
        "budget",
        "status",
        "evaluations",
        "regret",
        "normalized_regret",
        "random_median_regret",
        "incumbent_value",
        "optimum",
        "suggest_calls",
        "suggest_none",
        "duplicates",
        "suggest_p50_ms",
        "suggest_p95_ms",
        "suggest_total_s",
        "complete_total_s",
        "wall_s",
        "reason",
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for t in sorted(
            report.traces, key=lambda t: (t["searcher"], t["problem"], t["pending"], t["seed"])
        ):
            optimum = report.optima[t["problem"]]
            seconds = np.array(t["suggest_s"], dtype=float)
            for b in report.options.budgets:
                value = _value_at(t, b)
                ref = report.reference[(t["problem"], t["pending"], b)]
                regret = None if value is None else value - optimum
                writer.writerow(
                    {
                        "searcher": t["searcher"],
                        "problem": t["problem"],
                        "pending": t["pending"],
                        "seed": t["seed"],
                        "budget": b,
                        "status": t["status"],
                        "evaluations": min(b, len(t["incumbent_value"])),
                        "regret": regret,
                        "normalized_regret": None
                        if regret is None or ref is None
                        else regret / ref,
                        "random_median_regret": ref,
                        "incumbent_value": value,
                        "optimum": optimum,
                        "suggest_calls": len(t["suggest_s"]),
                        "suggest_none": t["suggest_none"],
                        "duplicates": t["duplicates"],
                        "suggest_p50_ms": _ms(seconds, 50),
                        "suggest_p95_ms": _ms(seconds, 95),
                        "suggest_total_s": float(seconds.sum()),
                        "complete_total_s": t["complete_s"],
                        "wall_s": t["wall_s"],
                        "reason": t["reason"] or "",
                    }
                )


def write_plots(
    report: BenchReport, folder: Path, log: Callable[[str], None] | None
) -> list[Path]:
    """Median normalized regret vs evaluations per problem; each curve is normalized by random's
    median regret at the full budget (same k), so its end matches the table's last budget."""
    if importlib.util.find_spec("matplotlib") is None:
        _say(log, "no plots: matplotlib is not installed (.venv/bin/pip install matplotlib)")
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opts = report.options
    folder.mkdir(parents=True, exist_ok=True)
    styles = ["-", "--", ":", "-."]
    tab20 = plt.get_cmap("tab20")
    # The 10 distinct hues first, then their light twins.
    colors = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
    style_names = ("solid", "dashed", "dotted", "dash-dot")
    style_text = ", ".join(f"k={k} {style_names[j % 4]}" for j, k in enumerate(opts.pending))
    written = []
    for p in opts.problems:
        optimum = report.optima[p]
        fig, ax = plt.subplots(figsize=(8, 5))
        for i, s in enumerate(report.searchers):
            for j, k in enumerate(opts.pending):
                ref = report.reference[(p, k, opts.budget)]
                runs = [
                    t
                    for t in report.traces
                    if t["searcher"] == s
                    and t["problem"] == p
                    and t["pending"] == k
                    and t["status"] not in ("n/a", "error")
                    and t["incumbent_value"]
                ]
                if ref is None or not runs:
                    continue
                curves = np.array([_padded(t["incumbent_value"], opts.budget) for t in runs])
                median = (np.median(curves, axis=0) - optimum) / ref  # (budget,)
                ax.plot(
                    np.arange(1, opts.budget + 1),
                    np.maximum(median, 1e-12),
                    color=colors[i % len(colors)],
                    linestyle=styles[j % len(styles)],
                    label=f"{s} k={k}",
                )
        ax.set_yscale("log")
        ax.set_xlabel("evaluations completed")
        ax.set_ylabel(f"median regret / random's median regret at {opts.budget}")
        ax.set_title(f"{p}: median of {opts.seeds} seeds; {style_text}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = folder / f"{p.replace(':', '-')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _padded(values: list[float], n: int) -> list[float]:
    """The first n values, the last one repeated when the run stopped early."""
    return list(values[:n]) + [values[-1]] * max(0, n - len(values))


# ---- command line --------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark searchers through the Ray Tune Searcher protocol (no Ray runtime).",
    )
    parser.add_argument("--searchers", nargs="+", help="names (default: all registered + anchors)")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=list(MAIN),
        help=f"names, task:NAME (a real task of tasks.py) or a group ({', '.join(PROBLEM_GROUPS)}"
        f"); default: {' '.join(MAIN)}; robustness set: {' '.join(HOLDOUT)}",
    )
    parser.add_argument("--seeds", type=int, default=10, help="runs per cell (default 10)")
    parser.add_argument("--budget", type=int, default=100, help="evaluations per run")
    parser.add_argument(
        "--report-at",
        nargs="+",
        type=int,
        default=[],
        help="budgets to score (default: half the budget and the budget)",
    )
    parser.add_argument("--pending", nargs="+", type=int, default=[1, 4], help="k trials pending")
    parser.add_argument("--out", type=Path, default=Path("bench_results"))
    parser.add_argument("--jobs", type=int, default=1, help="processes (one thread each)")
    parser.add_argument("--fresh", action="store_true", help="ignore cached traces")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--list", action="store_true", help="print searchers and problems; exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.list:
        print("registered:", " ".join(searchers.available()))
        for name in ANCHORS:
            missing = _missing_modules(name)
            print(f"anchor {name}: " + (f"needs {', '.join(missing)}" if missing else "ready"))
        print("problems:", " ".join(MAIN))
        print("robustness set:", " ".join(HOLDOUT))
        print("real tasks:", " ".join(PROBLEM_GROUPS["tasks"]))
        return 0
    try:
        options = BenchOptions(
            searchers=tuple(args.searchers or default_searchers()),
            problems=expand_problems(args.problems),
            seeds=args.seeds,
            budget=args.budget,
            report_at=tuple(args.report_at),
            pending=tuple(args.pending),
            out=args.out,
            jobs=args.jobs,
            fresh=args.fresh,
            plots=not args.no_plots,
        )
    except ValueError as exc:
        print(f"bench_searchers.py: error: {exc}", file=sys.stderr)
        return 2
    _setup_process()
    started = time.perf_counter()
    report = run_benchmark(options, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(report.table)
    written = ", ".join(str(p) for p in report.paths.values())
    print(f"wrote {written} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
