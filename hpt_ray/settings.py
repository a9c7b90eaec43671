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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not _is_int(value) or value < 1:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a positive integer{extra}, got {value!r}")


def _options(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of keyword options, got {type(value).__name__}")
    return dict(value)


@dataclass(frozen=True)
class SearchSettings:
    """Which configurations run, and how many.

    Attributes:
        searcher: a name from ``searchers.available()`` or a Ray ``Searcher`` instance.
        searcher_options: keyword options for ``searchers.make_searcher``.
        scheduler: "asha", "hyperband", "median" or "fifo" (``hpt_ray.schedulers``).
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
        from ray.tune.search import Searcher

        import searchers

        if isinstance(self.searcher, str):
            if self.searcher not in searchers.available():
                # make_searcher's message lists the names and the closest one.
                searchers.make_searcher(self.searcher)
        elif not isinstance(self.searcher, Searcher):
            raise TypeError(
                f"searcher must be a name ({', '.join(searchers.available())}) or a ray.tune "
                f"Searcher, got {type(self.searcher).__name__}"
            )
        object.__setattr__(
            self, "searcher_options", _options("searcher_options", self.searcher_options)
        )
        object.__setattr__(
            self, "scheduler_options", _options("scheduler_options", self.scheduler_options)
        )
        _positive_int("num_samples", self.num_samples)
        _positive_int("max_concurrent", self.max_concurrent, allow_none=True)
        budget = self.time_budget_s
        if budget is not None and not (
            isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget > 0
        ):
            raise ValueError(f"time_budget_s must be a positive number of seconds, got {budget!r}")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")


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
        _positive_int("epochs", self.epochs, allow_none=True)
        _positive_int("max_stages", self.max_stages)
        if self.resources_per_trial is not None and not isinstance(
            self.resources_per_trial, Mapping
        ):
            raise TypeError(
                "resources_per_trial must be a mapping such as {'cpu': 1, 'gpu': 0.5}, got "
                f"{type(self.resources_per_trial).__name__}"
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
        if not _is_int(self.max_failures) or self.max_failures < 0:
            raise ValueError(f"max_failures must be an integer >= 0, got {self.max_failures!r}")
        if self.fail_fast and self.max_failures:
            raise ValueError("fail_fast stops at the first failure: use max_failures=0 with it")
        if not _is_int(self.verbose) or self.verbose < 0:
            raise ValueError(f"verbose must be 0, 1 or 2 (more counts as 2), got {self.verbose!r}")
        for flag in ("resume", "retry_errored", "fail_fast"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if self.retry_errored and not self.resume:
            raise ValueError(
                "retry_errored reruns the errored trials of a resumed run: use it with resume=True"
            )
        name = self.name
        if name is not None and (
            not isinstance(name, str) or not name or "/" in name or name in (".", "..")
        ):
            raise ValueError(f"name must be a directory name (no '/'), got {name!r}")
