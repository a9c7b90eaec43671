"""Trial schedulers by name: the early-stopping half of a tuning run.

Every trainable we ship reports once per epoch (PyTorch) or per stage (iterative scikit-learn),
so fidelity is Ray's ``training_iteration``: ASHA's ``max_t`` is the number of reports a trial
makes when it runs to the end.
"""

from __future__ import annotations

import inspect
import logging
import os
import pickle
import time
from collections.abc import Mapping
from typing import Any

from ray import cloudpickle
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from hpt_ray.objective import better, finite_metric
from hpt_ray.pbt import (
    POPULATION_SCHEDULERS,
    REPORTED_KEY,
    accepted_options,
    check_population_options,
    make_population_scheduler,
)
from searchers.files import atomic_write
from searchers.validation import Interval, InvalidParameterError, Options, check, check_keys

logger = logging.getLogger(__name__)

SCHEDULERS = ("asha", "hyperband", "median", "fifo", "pbt", "pb2")

# Fidelity is one report; see the module docstring.
TIME_ATTR = "training_iteration"


def make_scheduler(
    name: str | TrialScheduler,
    *,
    max_t: int,
    grace_period: int = 1,
    reduction_factor: float = 3,
    space: Mapping[str, Any] | None = None,
    seed: int | None = None,
    **options: Any,
) -> TrialScheduler:
    """Build a Ray scheduler by name.

    Args:
        name: "asha" (asynchronous successive halving), "hyperband" (asynchronous HyperBand:
            ASHA over all of HyperBand's brackets), "median" (median stopping rule) or "fifo"
            (no early stopping); "pbt" (population-based training, explored by Ray's perturbation
            or ``explore=`` one of our searchers) or "pb2" (Ray's PB2): see ``hpt_ray.pbt``.
            A ready ``TrialScheduler`` instance is returned unchanged.
        max_t: the most reports a trial makes (epochs or stages); ASHA and HyperBand never run a
            trial past it.
        grace_period: ASHA's first rung and the median rule's grace period, in reports.
        reduction_factor: ASHA/HyperBand's eta: only the top 1/eta of trials go on at each rung.
        space: the run's Tune domains ("pbt" and "pb2" perturb them; the others ignore it).
        seed: seeds the explore step of "pbt".
        options: passed to the Ray scheduler (e.g. ``brackets`` for ASHA, ``min_samples_required``
            for median, ``perturbation_interval`` and ``explore`` for "pbt").
    """
    if isinstance(name, TrialScheduler):
        return name if isinstance(name, SafeScheduler) else SafeScheduler(name)
    if isinstance(name, str) and name.lower() in POPULATION_SCHEDULERS:
        check_scheduler_options(name, options)
        check("scheduler: max_t", max_t, Interval(int, 1, None))
        return SafeScheduler(
            make_population_scheduler(name.lower(), max_t=max_t, space=space, seed=seed, **options)
        )
    check_scheduler_options(
        name, {"grace_period": grace_period, "reduction_factor": reduction_factor, **options}
    )
    check("scheduler: max_t", max_t, Interval(int, 1, None))
    # ASHA refuses grace_period > max_t; a short run (few epochs) should still work, so clamp
    # rather than fail.
    grace_period = min(grace_period, max_t)
    name = name.lower()
    try:
        if name == "asha":
            inner: TrialScheduler = ASHAScheduler(
                time_attr=TIME_ATTR,
                max_t=max_t,
                grace_period=grace_period,
                reduction_factor=reduction_factor,
                **options,
            )
        elif name == "hyperband":
            # Asynchronous HyperBand: ASHA run over HyperBand's brackets (grace eta^s for each s).
            # Ray's synchronous HyperBandScheduler pauses trials until a bracket fills; paused
            # trials keep their concurrency slot, so with max_concurrent below the bracket size
            # it waits forever. This one never pauses.
            options.setdefault(
                "brackets", _hyperband_brackets(max_t, grace_period, reduction_factor)
            )
            inner = ASHAScheduler(
                time_attr=TIME_ATTR,
                max_t=max_t,
                grace_period=grace_period,
                reduction_factor=reduction_factor,
                **options,
            )
        elif name == "median":
            inner = MedianStoppingRule(time_attr=TIME_ATTR, grace_period=grace_period, **options)
        else:
            inner = FIFOScheduler(**options)
    except TypeError as exc:
        raise InvalidParameterError(
            f"scheduler_options: {exc} (options for {name!r}: {sorted(options)})"
        ) from exc
    return SafeScheduler(inner)


def check_scheduler_options(name: Any, options: Mapping[str, Any]) -> None:
    """Check a scheduler name and its ``scheduler_options`` before anything is built: an
    unknown option gets the closest accepted one, ``grace_period`` and ``reduction_factor``
    their ranges (`InvalidParameterError`)."""
    check("scheduler", name, Options(SCHEDULERS, ignore_case=True))
    check_keys("scheduler_options", options, _accepted_options(name.lower()))
    if name.lower() in POPULATION_SCHEDULERS:
        check_population_options(name.lower(), options)
        return
    if "grace_period" in options:
        check("scheduler_options.grace_period", options["grace_period"], Interval(int, 1, None))
    if "reduction_factor" in options:
        check(
            "scheduler_options.reduction_factor",
            options["reduction_factor"],
            Interval(float, 1, None, closed="neither"),
        )


def _accepted_options(name: str) -> list[str]:
    """The keyword options scheduler ``name`` takes: ours, and its Ray class's but those we set."""
    if name in POPULATION_SCHEDULERS:
        return accepted_options(name)
    ray_class = {
        "asha": ASHAScheduler,
        "hyperband": ASHAScheduler,
        "median": MedianStoppingRule,
        "fifo": FIFOScheduler,
    }[name]
    ours = {"time_attr", "max_t", "metric", "mode"}
    params = inspect.signature(ray_class).parameters
    accepted = {p for p in params if p not in ours and p not in ("self", "args", "kwargs")}
    return sorted(accepted | {"grace_period", "reduction_factor"})


def _hyperband_brackets(max_t: int, grace_period: int, eta: float) -> int:
    """HyperBand's bracket count, s_max + 1: how many times eta fits between grace and max_t."""
    brackets = 1
    while grace_period * eta**brackets <= max_t:
        brackets += 1
    return brackets


class SafeScheduler(TrialScheduler):
    """Wraps a Ray scheduler so a hostile result never reaches it.

    A result whose metric is missing, NaN, +-inf or not a number would otherwise make ASHA's rung
    cutoffs NaN (ray#6659) and its decisions arbitrary. Such a result reaches the wrapped scheduler
    with the metric replaced by the worst finite value seen so far (in the experiment's mode),
    so the trial is judged as bad as the worst trial, never better; before any finite value is
    known the result is not shown to it at all and the trial continues. Everything else is passed
    through unchanged.

    State: Ray's ``Tuner.restore`` brings the scheduler back as it was when the experiment
    *started* (ray#30838: ASHA forgets its rungs). Once ``bind(directory)`` is called, the wrapped
    scheduler is written to ``directory/scheduler-state.pkl`` (atomically, at most once a second
    and at every trial end) and read back when a resumed experiment starts, so resumed trials are
    judged against the rungs the first run had filled.
    """

    STATE_FILE = "scheduler-state.pkl"

    def __init__(self, inner: TrialScheduler) -> None:
        super().__init__()
        self.inner = inner
        self._mode: str | None = getattr(inner, "_mode", None)
        self._metric = getattr(inner, "_metric", None)
        self._worst: float | None = None
        self._warned = False
        self._state_dir: str | None = None
        self._restore = False
        self._last_save = 0.0
        self._snapshot_budget = 0.0
        self._snapshot_due = False
        self._snapshot_spent = 0.0
        self._bound_at = 0.0

    def bind(
        self,
        directory: str | os.PathLike[str],
        *,
        snapshot_budget: float = 0.0,
        restore: bool = False,
    ) -> None:
        """Persist the wrapped scheduler's state in ``directory`` (see the class docstring).

        ``restore``: this run resumes the experiment in ``directory``, so the state saved there
        is loaded; a new run never reads a state file (another run's rungs must not leak in).

        ``snapshot_budget``: also make Ray save its experiment state in the step in which a trial
        is added, not only on its one-second timer, while those saves have taken at most this
        fraction of the wall time so far (0: never; 1: always). A driver killed between two
        timed saves would otherwise resume without the trials added since the last one and
        spend their budget slots on new trials. (A trial that ended after the last save is known
        to Ray: it runs again from its last saved checkpoint under the same id, and its finished
        row is kept.) One save writes every trial's state (~10 ms at 200 trials on 2 cores), so
        with trials of a fraction of a second the budget runs out and the timer takes over.
        """
        self._state_dir = os.fspath(directory)
        self._restore = bool(restore)
        self._snapshot_budget = float(snapshot_budget)
        self._bound_at = time.monotonic()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Ray's Tuner.restore brings the scheduler back by unpickling the one pickled at the
        # first start; a new run always builds a new one. So an unpickled scheduler is resuming.
        self.__dict__.update(state)
        self._restore = True

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    @property
    def supports_buffered_results(self) -> bool:
        return self.inner.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if self._load_state() and getattr(self.inner, "_metric", None) in (None, metric):
            # The restored scheduler already holds this experiment's metric and mode.
            self._metric, self._mode = metric, mode
            return True
        accepted = self.inner.set_search_properties(metric, mode, **spec)
        self._metric = getattr(self.inner, "_metric", None) or metric
        self._mode = getattr(self.inner, "_mode", None) or mode
        return accepted

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._snapshot_due = self._snapshot_budget > 0
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        safe = self._sanitize(result)
        if safe is None:
            return TrialScheduler.CONTINUE
        decision = self.inner.on_trial_result(tune_controller, trial, safe)
        self._save_state(force=False)
        return decision

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        safe = self._sanitize(result)
        if safe is None:
            # Nothing finite to judge it by: the wrapped scheduler forgets it as a removed trial.
            self.inner.on_trial_remove(tune_controller, trial)
        else:
            self.inner.on_trial_complete(tune_controller, trial, safe)
        self._save_state(force=True)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        # Called once per step of Tune's loop, right after the searcher added trials.
        if self._snapshot_due:
            self._snapshot_due = False
            start = time.monotonic()
            if self._snapshot_spent <= self._snapshot_budget * (start - self._bound_at):
                self._snapshot(tune_controller)
                self._snapshot_spent += time.monotonic() - start
        return self.inner.choose_trial_to_run(tune_controller)

    def _snapshot(self, tune_controller: Any) -> None:
        # Ray hands schedulers a wrapper of its TuneController (ray/tune/execution/
        # tune_controller.py, Ray 2.60 line); ``checkpoint(force=True)`` is its state save.
        controller = getattr(tune_controller, "_tune_controller", tune_controller)
        checkpoint = getattr(controller, "checkpoint", None)
        if checkpoint is None:
            logger.warning("this Ray has no TuneController.checkpoint; state saves stay timed")
            self._snapshot_budget = 0.0
            return
        checkpoint(force=True)

    def debug_string(self) -> str:
        return self.inner.debug_string()

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)

    def _save_state(self, *, force: bool) -> None:
        if self._state_dir is None or type(self.inner) is FIFOScheduler:
            return  # FIFO keeps no state worth a file write per finished trial
        now = time.monotonic()
        if not force and now - self._last_save < 1.0:
            return
        self._last_save = now
        write_tables = getattr(self.inner, "write_tables", None)
        if write_tables is not None:
            # A population's schedule (hpt_ray.pbt), next to the state it is part of.
            try:
                write_tables(self._state_dir)
            except OSError as exc:
                logger.warning("schedule not written (%s)", exc)
        payload = {"version": 1, "worst": self._worst, "inner": self.inner}
        try:
            # cloudpickle: the median rule holds lambdas plain pickle refuses.
            data = cloudpickle.dumps(payload)
            atomic_write(os.path.join(self._state_dir, self.STATE_FILE), data)
        except (pickle.PicklingError, AttributeError, TypeError, OSError) as exc:
            # Saving state is a convenience for resume; it must never end the experiment.
            logger.warning("scheduler state not saved (%s); a resumed run starts it afresh", exc)
            self._state_dir = None

    def _load_state(self) -> bool:
        """Load the wrapped scheduler saved by an earlier run of this experiment, if any."""
        if self._state_dir is None or not self._restore:
            return False
        path = os.path.join(self._state_dir, self.STATE_FILE)
        if not os.path.exists(path):
            return False
        # Our own file, written by this class for this experiment (Ray pickles its schedulers the
        # same way in tuner.pkl); the scheduler objects hold trial ids and rung values only.
        with open(path, "rb") as handle:
            payload = pickle.load(handle)
        if payload.get("version") == 1 and type(payload["inner"]) is type(self.inner):
            self.inner = payload["inner"]
            self._worst = payload["worst"]
            logger.info("scheduler state restored from %s", path)
            return True
        return False

    def _sanitize(self, result: dict | None) -> dict | None:
        metric = self._metric
        if metric is None or result is None:
            return result
        value = finite_metric(result.get(metric))
        if value is not None:
            if self._worst is None or better(self._worst, value, self._mode or "min"):
                self._worst = value
            return result
        if not self._warned:
            self._warned = True
            logger.warning(
                "a trial reported a missing or non-finite %r; the scheduler sees the worst finite "
                "value so far instead (further cases are handled the same way silently)",
                metric,
            )
        if self._worst is None:
            return None
        return {**result, metric: self._worst, REPORTED_KEY: result.get(metric)}
