"""A run's settings in three groups, each validated in one place (as Ray's ``TuneConfig``,
``RunConfig`` and ``FailureConfig``).

``tune_model`` keeps its flat keywords and builds these from them before anything else, so a bad
value fails at once, naming the keyword and the fix:

- `SearchSettings`: which configurations run and how many (searcher, scheduler, budget, seed);
- `TrialSettings`: how one trial runs (resources, length, the built-in trainables' options);
- `RunSettings`: where the run lives and how it survives faults (storage, name, resume,
  failures, output, Ray address).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from searchers.validation import (
    BOOL,
    InstanceOf,
    Interval,
    InvalidParameterError,
    Predicate,
    check,
    is_integer,
)

POSITIVE_INT = Interval(int, 1, None)
_MAPPING = InstanceOf(Mapping, "a mapping of keyword options")


def _options(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return dict(check(name, value, _MAPPING))


@dataclass(frozen=True)
class SearchSettings:
    """Which configurations run, and how many.

    Attributes:
        searcher: a name from ``searchers.available()`` or a Ray ``Searcher`` instance.
        searcher_options: keyword options for ``searchers.make_searcher``.
        scheduler: "asha", "hyperband", "median", "fifo", "pbt" or "pb2" (``hpt_ray.schedulers``,
            ``hpt_ray.pbt``).
        scheduler_options: keyword options for the scheduler.
        num_samples: number of trials (the grid searcher runs its whole grid).
        max_concurrent: at most this many trials at once (None: as many as resources allow).
        time_budget_s: stop starting trials after this many seconds.
        seed: seeds the searcher, the hold-out split and the trials.
    """

    searcher: Any = "optuna-tpe"
    searcher_options: Mapping[str, Any] = field(default_factory=dict)
    scheduler: str = "asha"
    scheduler_options: Mapping[str, Any] = field(default_factory=dict)
    num_samples: int = 20
    max_concurrent: int | None = None
    time_budget_s: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        from ray.tune.schedulers import TrialScheduler
        from ray.tune.search import Searcher

        import searchers
        from hpt_ray.schedulers import check_scheduler_options

        if isinstance(self.searcher, str):
            if self.searcher not in searchers.available():
                # make_searcher's message lists the names and the closest one.
                searchers.make_searcher(self.searcher)
        else:
            check(
                "searcher",
                self.searcher,
                InstanceOf(str, f"a name ({', '.join(searchers.available())})"),
                InstanceOf(Searcher, "a ray.tune Searcher"),
            )
        object.__setattr__(
            self, "searcher_options", _options("searcher_options", self.searcher_options)
        )
        object.__setattr__(
            self, "scheduler_options", _options("scheduler_options", self.scheduler_options)
        )
        if isinstance(self.scheduler, TrialScheduler):
            if self.scheduler_options:
                raise InvalidParameterError(
                    "scheduler_options apply to a scheduler given by name; configure the "
                    "TrialScheduler instance itself"
                )
        else:
            check_scheduler_options(self.scheduler, self.scheduler_options)
        check("num_samples", self.num_samples, POSITIVE_INT)
        check("max_concurrent", self.max_concurrent, POSITIVE_INT, None)
        check(
            "time_budget_s", self.time_budget_s, Interval(float, 0, None, closed="neither"), None
        )
        check("seed", self.seed, Interval(int, None, None), None)


@dataclass(frozen=True)
class TrialSettings:
    """How one trial runs.

    Attributes:
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0.5}`` (None: one CPU).
        epochs: reports per trial when run to the end (the scheduler's ``max_t``); None takes
            the trainable's default (PyTorch 10, a training function 100).
        max_stages: reports per trial for iterative scikit-learn estimators.
        cv, scoring: scikit-learn cross-validation and scorer(s), as GridSearchCV takes them.
        trainer_options: the PyTorch trainable's fixed options (``plan_torch``).
    """

    resources_per_trial: Mapping[str, Any] | None = None
    epochs: int | None = None
    max_stages: int = 10
    cv: Any = None
    scoring: Any = None
    trainer_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check("epochs", self.epochs, POSITIVE_INT, None)
        check("max_stages", self.max_stages, POSITIVE_INT)
        check(
            "resources_per_trial",
            self.resources_per_trial,
            InstanceOf(Mapping, "a mapping such as {'cpu': 1, 'gpu': 0.5}"),
            None,
        )
        object.__setattr__(
            self, "trainer_options", _options("trainer_options", self.trainer_options)
        )


@dataclass(frozen=True)
class RunSettings:
    """Where the run lives and how it survives faults.

    Attributes:
        storage_path: a directory or a storage URI (``s3://...``); default ``./hpt_ray_results``.
        name: the run's directory name under it (None: a fresh one per run).
        resume: continue the run in ``<storage_path>/<name>``.
        retry_errored: with ``resume``, run errored trials again.
        max_failures: retry a failing trial that many times from its last checkpoint.
        fail_fast: stop the experiment at the first trial error.
        verbose: 0 silent, 1 a progress line, 2 (or more) also Ray's own output.
        ray_address: connect to this Ray cluster instead of starting a local one.
    """

    storage_path: Any = None
    name: str | None = None
    resume: bool = False
    retry_errored: bool = False
    max_failures: int = 0
    fail_fast: bool = False
    verbose: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        check("max_failures", self.max_failures, Interval(int, 0, None))
        for flag in ("resume", "retry_errored", "fail_fast"):
            check(flag, getattr(self, flag), BOOL)
        check("verbose", self.verbose, _VERBOSITY)
        if self.fail_fast and self.max_failures:
            raise InvalidParameterError(
                "fail_fast stops at the first failure: use max_failures=0 with it"
            )
        if self.retry_errored and not self.resume:
            raise InvalidParameterError(
                "retry_errored reruns the errored trials of a resumed run: use it with resume=True"
            )
        check("name", self.name, _DIRECTORY_NAME, None)


_VERBOSITY = Predicate(lambda v: is_integer(v) and v >= 0, "0, 1 or 2 (more counts as 2)")
_DIRECTORY_NAME = Predicate(
    lambda name: (
        isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..")
    ),
    "a directory name (no '/')",
)
