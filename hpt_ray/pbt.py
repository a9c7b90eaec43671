"""Population-based training: ``scheduler="pbt"`` (Ray's `PopulationBasedTraining`, explored by
Ray's random perturbation or by one of our searchers) and ``scheduler="pbt"`` / ``"pb2"``
(Ray's `PB2`, a GP bandit), made safe for our trainables.

The population is the run's trials (``num_samples``); its initial members come from the run's
searcher. Every ``perturbation_interval`` reports (Ray's ``training_iteration``; an epoch for
the PyTorch trainable) a member in the bottom ``quantile_fraction`` copies the checkpoint of one
in the top fraction (exploit) and continues with new hyperparameters (explore). A member trains
at most ``max_t`` reports in all, counted from the start of the lineage it inherited.

What is perturbed: the space's top-level numeric parameters (``tune.uniform``, ``loguniform``,
``randint``, ...) and, under "pbt", its top-level categorical ones. Constants and the parameters
of a conditional choice stay as the member drew them; a space without a top-level numeric
parameter is refused (`population_parameters`).

Our explore (``explore="gp-ei" | "pso" | "genetic"``): the new values of an exploiting member are
suggested by a fresh searcher (``searchers.make_searcher(explore, seed=...)``, the plain Searcher
protocol) told the population's recent observations, one per member and interval::

    x_i: (n_params,) the member's values during the interval (constant within it)
    y_i = (s_end - s_start) / (t_end - t_start) - median_j{ y_j : t_end_j == t_end_i }

``s`` the mode-adjusted metric (larger is better), ``t`` the training iteration. Fidelity and
non-stationarity: a level (``s_end``) mostly says how long a member has trained and whose
weights it holds, so the searcher is told the change over the interval instead, centred on the
other members' changes over the same interval (training slows down for everyone as it goes on);
only observations that ended in the last ``window`` intervals are told, so the searcher answers
"what works *now*" (the learning rate that is best at epoch 2 is not the one at epoch 20). With
fewer than ``MIN_OBSERVATIONS`` recent observations the step falls back to Ray's perturbation.
Each searcher starts in its model phase on the told points: gp-ei with ``n_initial=2``, pso with
one particle per observation (each seeded by one), genetic with the observations as its
population (its first ``population_size`` asks are its quasi-random design by construction, so a
throw-away instance skips them). PB2 (Parker-Holder et al., NeurIPS 2020) does the same with a
time-varying GP over (time, reward, hyperparameters); ours reuses the searchers we tune with.

Safety (Ray issue #27170: PBT exploiting or pausing a trial that has no checkpoint):

- an exploit copies a checkpoint the donor reported itself, whose directory exists: the one of
  its last perturbation when that report carried one, else its latest one (Ray skips the exploit
  then: a member that checkpoints less often than it is perturbed would be copied by chance);
  a donor with none yet is skipped, one whose directory is gone is skipped and logged
  (`exploits` records each one taken);
- a member that has trained ``max_t`` reports is neither copied nor copies (it counts as
  finished, as Ray counts a stopped trial): copying its final checkpoint would leave the copier
  nothing to train, ending it without a report under a config it never trained; a member that
  still ends so (a training function that returns when restored) is named in a warning;
- a member is never paused at a report that carried no checkpoint (Ray pauses members to share
  the cluster when the population is larger than the trials that fit; a function trainable
  resumed without a checkpoint starts over): it runs on to its next checkpoint;
- when a member has made ``CHECKPOINT_GRACE`` perturbation intervals of reports (after the
  burn-in) and no member has reported a checkpoint yet, the run ends with
  `CheckpointRequiredError` (a training function that does not checkpoint would otherwise run a
  population that never exploits). One that checkpoints less often than it is perturbed runs,
  its members copied at their latest checkpoints.

The schedule (``schedule.parquet`` in the run directory, `read_schedule`): one row per report of
every member: ``trial_id``, ``iteration``, ``metric`` (the reported value; None where it was
missing or not finite, though the scheduler ranked the member by the worst finite value so far),
``exploited_from`` (the donor's trial id on a member's first report after an exploit, else None),
``checkpoint`` (the donor checkpoint it was copied from) and one ``config/<name>`` column per
perturbed parameter, the value the member trained that report with.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from ray.train._internal.session import _FutureTrainingResult
from ray.tune import Checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler
from ray.tune.schedulers.pb2 import PB2
from ray.tune.search.sample import Categorical, Domain, Float, Integer

from searchers.files import atomic_write
from searchers.validation import (
    Interval,
    InvalidParameterError,
    Options,
    check,
)

logger = logging.getLogger(__name__)

POPULATION_SCHEDULERS = ("pbt", "pb2")
EXPLORES = ("ray", "gp-ei", "pso", "genetic")
SCHEDULE_FILE = "schedule.parquet"
TIME_ATTR = "training_iteration"
#: The value a member reported, next to the worst finite value `SafeScheduler` shows a scheduler
#: instead of a missing or non-finite one: what the schedule records.
REPORTED_KEY = "hpt_ray_reported_metric"
# Fewer recent observations than this: Ray's perturbation explores instead of a searcher.
MIN_OBSERVATIONS = 3
# Perturbation intervals a member may report without any checkpoint before the run fails.
CHECKPOINT_GRACE = 3

# The options of each scheduler name, beyond those Ray's class takes (which we check by name).
_OURS = {"pbt": ("explore", "window"), "pb2": ()}
_RAY_SET = {"time_attr", "metric", "mode", "hyperparam_mutations", "hyperparam_bounds"}
_RAY_OPTIONS = {
    "pbt": (
        "perturbation_interval",
        "burn_in_period",
        "quantile_fraction",
        "resample_probability",
        "perturbation_factors",
        "synch",
        "log_config",
    ),
    "pb2": ("perturbation_interval", "quantile_fraction", "synch", "log_config"),
}


class CheckpointRequiredError(InvalidParameterError):
    """A population member reports without checkpoints, so no member can ever copy it."""


@dataclass(frozen=True)
class PopulationOptions:
    """``scheduler_options`` of "pbt" and "pb2" (checked before any trial).

    perturbation_interval: reports between two exploit/explore steps of a member; None:
        ``max(1, max_t // 8)``.
    burn_in_period: reports before a member is first considered ("pbt").
    quantile_fraction: the bottom fraction copies the top fraction (0 to 0.5).
    resample_probability: Ray's explore only: chance a value is redrawn instead of scaled.
    perturbation_factors: Ray's explore only: the factors a value is scaled by.
    synch: Ray's synchronous PBT (members wait for each other at every interval).
    log_config: Ray's ``pbt_global.txt`` / ``pbt_policy_*.txt`` logs in the run directory.
    explore: "ray" (Ray's perturbation, default) or a searcher: "gp-ei", "pso", "genetic"
        ("pbt" only; see the module docstring).
    window: our explore only: observations that ended in the last ``window`` intervals are told.
    """

    perturbation_interval: int | None = None
    burn_in_period: int = 0
    quantile_fraction: float = 0.25
    resample_probability: float = 0.25
    perturbation_factors: tuple[float, float] = (1.2, 0.8)
    synch: bool = False
    log_config: bool = True
    explore: str = "ray"
    window: int = 3


def accepted_options(name: str) -> list[str]:
    """The ``scheduler_options`` scheduler ``name`` ("pbt" or "pb2") takes."""
    return sorted((*_RAY_OPTIONS[name], *_OURS[name]))


def check_population_options(name: str, options: Mapping[str, Any]) -> None:
    """Ranges and names of the population options (keys were checked by the caller)."""
    prefix = "scheduler_options"
    if "perturbation_interval" in options:
        check(
            f"{prefix}.perturbation_interval",
            options["perturbation_interval"],
            Interval(int, 1, None),
            None,
        )
    if "burn_in_period" in options:
        check(f"{prefix}.burn_in_period", options["burn_in_period"], Interval(int, 0, None))
    if "quantile_fraction" in options:
        check(
            f"{prefix}.quantile_fraction",
            options["quantile_fraction"],
            Interval(float, 0, 0.5, closed="right"),
        )
    if "resample_probability" in options:
        check(
            f"{prefix}.resample_probability",
            options["resample_probability"],
            Interval(float, 0, 1),
        )
    if "explore" in options:
        check(f"{prefix}.explore", options["explore"], Options(EXPLORES))
    if "window" in options:
        check(f"{prefix}.window", options["window"], Interval(int, 1, None))


def is_population(scheduler: Any) -> bool:
    """Whether ``scheduler`` (a name, or a ``TrialScheduler`` possibly wrapped in our
    ``SafeScheduler``) is population-based: its trials copy each other's checkpoints."""
    if isinstance(scheduler, str):
        return scheduler.lower() in POPULATION_SCHEDULERS
    return isinstance(getattr(scheduler, "inner", scheduler), PopulationBasedTraining)


def population_parameters(space: Mapping[str, Any], name: str) -> dict[str, Domain]:
    """The parameters ``name`` perturbs: top-level float and int domains, and ("pbt") top-level
    choices between scalars. Refuses a space without a top-level numeric parameter."""
    numeric = {k: v for k, v in space.items() if isinstance(v, (Float, Integer))}
    params: dict[str, Domain] = dict(numeric)
    if name == "pbt":
        for key, value in space.items():
            if isinstance(value, Categorical) and all(
                isinstance(c, (bool, int, float, str)) for c in value.categories
            ):
                params[key] = value
    if not numeric:
        searched = [k for k, v in space.items() if _holds_domain(v)]
        raise InvalidParameterError(
            f"space: scheduler={name!r} perturbs numeric parameters at the top level of the "
            f"space (tune.uniform, loguniform, randint, ...), and {sorted(searched) or 'it'} "
            "has none (choices between sub-spaces and constants are not perturbed); add one, "
            "e.g. 'lr': tune.loguniform(1e-4, 1e-1), or use scheduler='asha'"
        )
    return {k: params[k] for k in space if k in params}


def make_population_scheduler(
    name: str,
    *,
    max_t: int,
    space: Mapping[str, Any] | None,
    seed: int | None = None,
    **options: Any,
) -> TrialScheduler:
    """Build "pbt" or "pb2" over ``space`` (the run's Tune domains); see the module docstring."""
    if space is None:
        raise InvalidParameterError(
            f"scheduler: {name!r} perturbs the search space's parameters and copies "
            "checkpoints between trials: use it through tune_model or an experiment file with "
            "a PyTorch model or a training function that checkpoints"
        )
    check_population_options(name, options)
    opts = PopulationOptions(**options)
    params = population_parameters(space, name)
    interval = opts.perturbation_interval or max(1, max_t // 8)
    common: dict[str, Any] = {
        "time_attr": TIME_ATTR,
        "perturbation_interval": interval,
        "quantile_fraction": opts.quantile_fraction,
        "synch": opts.synch,
        "log_config": opts.log_config,
    }
    if name == "pb2":
        bounds = {
            k: [float(v.lower), float(v.upper - (1 if isinstance(v, Integer) else 0))]
            for k, v in params.items()
            if isinstance(v, (Float, Integer))
        }
        return PopulationBandit(max_t=max_t, hyperparam_bounds=bounds, **common)
    mutations = {
        k: list(v.categories) if isinstance(v, Categorical) else v for k, v in params.items()
    }
    return PopulationScheduler(
        max_t=max_t,
        params=params,
        explore=opts.explore,
        window=opts.window,
        seed=seed,
        burn_in_period=opts.burn_in_period,
        hyperparam_mutations=mutations,
        resample_probability=opts.resample_probability,
        perturbation_factors=tuple(opts.perturbation_factors),
        **common,
    )


def read_schedule(directory: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The schedule of a population run (module docstring: one row per report of every member,
    with its perturbed values and exploits), or None for a run of another scheduler.

    Args:
        directory: the run's directory (``TuneResult.path``), holding ``schedule.parquet``.
    """
    path = os.path.join(os.fspath(directory), SCHEDULE_FILE)
    if not os.path.exists(path):
        return None
    return pd.read_parquet(path)


@dataclass
class _Interval:
    """Where a member's current interval started: time, mode-adjusted score and values."""

    time: float
    score: float
    values: dict[str, Any]


@dataclass
class _Observation:
    end: float
    values: dict[str, Any]
    gain: float


class _SafePopulation:
    """What both population schedulers add to Ray's (module docstring: safety and schedule).

    A mixin before Ray's class in the bases; ``_params`` are the perturbed parameters.
    """

    _trial_state: dict[Trial, Any]
    _perturbation_interval: float
    _burn_in_period: float
    _quantile_fraction: float
    _metric: str | None

    def _setup_population(self, *, max_t: int, names: list[str]) -> None:
        self._max_t = max_t
        self._names = names
        self.exploits: list[dict[str, Any]] = []
        self.schedule_rows: list[dict[str, Any]] = []
        self._checkpointed: set[str] = set()
        # Trial id -> the iteration of the last checkpoint it reported itself (not copied).
        self._own_checkpoint: dict[str, int] = {}
        self._reports: dict[str, int] = {}
        self._pending_exploit: dict[str, dict[str, Any]] = {}
        self._intervals: dict[str, _Interval] = {}
        self.observations: list[_Observation] = []
        self._skipped = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A resume unpickles the scheduler the killed driver saved (hpt_ray.schedulers); one
        # saved by an earlier version lacks what was added since, which starts empty.
        self.__dict__.update({"_own_checkpoint": {}, **state})

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        # A resumed run's scheduler is keyed by the killed driver's Trial objects (a Trial
        # compares by identity): each restored trial replaces its stale entry, which would
        # otherwise stay in the ranking with a frozen score and be copied at an old checkpoint.
        for stale in [t for t in self._trial_state if t.trial_id == trial.trial_id]:
            if stale is not trial:
                del self._trial_state[stale]
        # Ray refuses any searcher under PBT because configs change during a trial; ours only
        # draws the initial population (num_samples members), which is sound.
        super().on_trial_add(_WithoutSearcher(tune_controller), trial)  # type: ignore[misc]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        trial_id = trial.trial_id
        values = {k: trial.config.get(k) for k in self._names}
        iteration = int(result.get(TIME_ATTR, 0))
        if result.get("should_checkpoint"):
            self._checkpointed.add(trial_id)
            self._own_checkpoint[trial_id] = iteration
        self._record(trial_id, iteration, result, values)
        self._reports[trial_id] = self._reports.get(trial_id, 0) + 1
        limit = self._burn_in_period + CHECKPOINT_GRACE * self._perturbation_interval
        if not self._checkpointed and self._reports[trial_id] >= limit:
            raise CheckpointRequiredError(
                f"model: trial {trial_id} made {self._reports[trial_id]} reports and no member "
                "a checkpoint, so population-based training can never copy one; report one at "
                "least every "
                "perturbation_interval reports (hpt_ray.report(metrics, checkpoint="
                "hpt_ray.Checkpoint.from_directory(dir)), restored with hpt_ray.get_checkpoint()"
                "), or use scheduler='asha'"
            )
        score = self._score(result)
        if trial_id not in self._intervals and score is not None:
            self._intervals[trial_id] = _Interval(iteration, score, values)
        decision = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        if iteration >= self._max_t and trial.status != Trial.PAUSED:
            return TrialScheduler.STOP
        if decision == TrialScheduler.PAUSE and not result.get("should_checkpoint"):
            # Paused without a checkpoint, a function trainable would start over (ray#27170).
            return TrialScheduler.CONTINUE
        return str(decision)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        event = self._pending_exploit.pop(trial.trial_id, None)
        if event is not None:
            # Its row keeps the reports of the config it had; its checkpoint is now the donor's.
            logger.warning(
                "trial %s copied trial %s's checkpoint of iteration %s and ended without a "
                "report: its new values %s were never trained, and its row shows its metric "
                "from before the copy (does the training function return when restored?)",
                trial.trial_id,
                event["donor"],
                event["iteration"],
                event["values"],
            )
        super().on_trial_complete(tune_controller, trial, result)  # type: ignore[misc]

    def _save_trial_state(self, state: Any, time: int, result: dict, trial: Trial) -> Any:
        returned = super()._save_trial_state(state, time, result, trial)  # type: ignore[misc]
        score = state.last_score  # PB2's override returns None
        start = self._intervals.get(trial.trial_id)
        values = {k: trial.config.get(k) for k in self._names}
        if (
            score is not None
            and start is not None
            and time > start.time
            and values == start.values
        ):
            gain = (score - start.score) / (time - start.time)
            if math.isfinite(gain):
                self.observations.append(_Observation(float(time), values, gain))
        if score is not None and math.isfinite(score):
            self._intervals[trial.trial_id] = _Interval(time, score, values)
        return returned

    def _quantiles(self) -> tuple[list[Trial], list[Trial]]:
        """Ray's bottom and top quantiles of the members still training, where a member whose
        lineage has reached ``max_t`` counts as finished even before Ray marks it so (its stop
        takes a moment under load). Copying such a member's last checkpoint would restart the
        copier with nothing left to train: it would end without another report, its row
        keeping the metric of the config it had before the exploit."""
        ranked = [
            trial
            for trial, state in self._trial_state.items()
            if state.last_score is not None
            and not math.isnan(state.last_score)
            and not trial.is_finished()
            and state.last_train_time < self._max_t
        ]
        if len(ranked) < 2:
            return [], []
        ranked.sort(key=lambda t: self._trial_state[t].last_score)
        size = min(math.ceil(len(ranked) * self._quantile_fraction), len(ranked) // 2)
        return ranked[:size], ranked[-size:]

    def _checkpoint_or_exploit(
        self,
        trial: Trial,
        tune_controller: Any,
        upper_quantile: list[Trial],
        lower_quantile: list[Trial],
    ) -> None:
        if trial in lower_quantile:
            for donor in upper_quantile:
                self._resolve_donor(donor)
            # Ray draws the donor among these: those with a checkpoint to give, if any.
            upper_quantile = [
                d for d in upper_quantile if self._trial_state[d].last_checkpoint is not None
            ] or upper_quantile
        super()._checkpoint_or_exploit(  # type: ignore[misc]
            trial, tune_controller, upper_quantile, lower_quantile
        )

    def _resolve_donor(self, donor: Trial) -> None:
        """Point ``donor``'s state at the checkpoint an exploit of it copies, with the metrics of
        the report that made it (Ray restores the copier's iteration from them): the save Ray
        scheduled at its last perturbation if that report carried a checkpoint, else the latest
        checkpoint it reported itself, else None (Ray then skips the exploit)."""
        state = self._trial_state[donor]
        pending = state.last_checkpoint
        if isinstance(pending, Checkpoint):
            return  # a paused donor: Ray took the checkpoint it paused with
        if isinstance(pending, _FutureTrainingResult):
            resolved = pending.resolve()
            if resolved is not None and resolved.checkpoint is not None:
                state.last_checkpoint, state.last_result = resolved.checkpoint, resolved.metrics
                return
        state.last_checkpoint = None
        own = self._own_checkpoint.get(donor.trial_id)
        latest = donor.latest_checkpoint_result
        if own is None or latest is None or latest.checkpoint is None:
            return
        if latest.metrics.get(TIME_ATTR) != own:
            return  # not the one it reported: it was restored from another's since
        state.last_checkpoint, state.last_result = latest.checkpoint, dict(latest.metrics)

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        donor = self._trial_state[trial_to_clone]
        checkpoint = donor.last_checkpoint
        path = _existing_path(checkpoint)
        if path is None:
            self._skipped += 1
            logger.warning(
                "trial %s: its donor %s has no checkpoint on disk (%r); exploit skipped",
                trial.trial_id,
                trial_to_clone.trial_id,
                checkpoint,
            )
            return
        donor_iteration = int((donor.last_result or {}).get(TIME_ATTR, donor.last_train_time))
        super()._exploit(tune_controller, trial, trial_to_clone)  # type: ignore[misc]
        values = {k: trial.config.get(k) for k in self._names}
        event = {
            "trial_id": trial.trial_id,
            "donor": trial_to_clone.trial_id,
            "iteration": donor_iteration,
            "checkpoint": path,
            "values": values,
        }
        self.exploits.append(event)
        self._pending_exploit[trial.trial_id] = event
        self._own_checkpoint.pop(trial.trial_id, None)  # its checkpoint is now the donor's
        # The score of the report the checkpoint was made at (the donor may have reported since).
        score = self._score(donor.last_result or {})
        if score is None and donor.last_score is not None:
            score = float(donor.last_score)
        if score is not None:
            self._intervals[trial.trial_id] = _Interval(donor_iteration, score, values)

    def _record(
        self, trial_id: str, iteration: int, result: Mapping[str, Any], values: dict[str, Any]
    ) -> None:
        event = self._pending_exploit.pop(trial_id, None)
        # The value the member reported (None when missing or not finite), not the worst finite
        # value the scheduler was shown instead (hpt_ray.schedulers.SafeScheduler).
        metric = self._metric or ""
        reported = result[REPORTED_KEY] if REPORTED_KEY in result else result.get(metric)
        row = {
            "trial_id": trial_id,
            "iteration": iteration,
            "metric": _float(reported),
            "exploited_from": None if event is None else event["donor"],
            "checkpoint": None if event is None else event["checkpoint"],
        }
        row.update({f"config/{k}": v for k, v in values.items()})
        self.schedule_rows.append(row)

    def _score(self, result: Mapping[str, Any]) -> float | None:
        value = _float(result.get(self._metric or ""))
        op = getattr(self, "_metric_op", None)
        if value is None or op is None:
            return None
        return float(op) * value

    def write_tables(self, directory: str | os.PathLike[str]) -> None:
        """Write ``schedule.parquet`` into ``directory`` (atomically)."""
        frame = pd.DataFrame(self.schedule_rows)
        if frame.empty:
            return
        # A resumed member reports some iterations again: its last report of each counts.
        frame = frame.drop_duplicates(["trial_id", "iteration"], keep="last")
        for column in ("exploited_from", "checkpoint"):
            frame[column] = frame[column].astype("string")
        atomic_write(os.path.join(os.fspath(directory), SCHEDULE_FILE), _parquet_bytes(frame))


class PopulationScheduler(_SafePopulation, PopulationBasedTraining):
    """Ray's PBT, made safe (module docstring), exploring with Ray's perturbation or a searcher.

    Args:
        max_t: the most reports of a member's lineage.
        params: the perturbed parameters' Tune domains.
        explore: "ray" or a searcher name ("gp-ei", "pso", "genetic").
        window: intervals of observations told to the searcher.
        seed: seeds our explore's searchers.
        ray_options: Ray's ``PopulationBasedTraining`` keywords.
    """

    def __init__(
        self,
        *,
        max_t: int,
        params: Mapping[str, Domain],
        explore: str = "ray",
        window: int = 3,
        seed: int | None = None,
        **ray_options: Any,
    ) -> None:
        super().__init__(**ray_options)
        self._setup_population(max_t=max_t, names=list(params))
        self._params = dict(params)
        self._explore_with = explore
        self._window = window
        self._rng = random.Random(seed)
        self._explore_count = 0

    def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
        if self._explore_with == "ray":
            return super()._get_new_config(trial, trial_to_clone)
        recent = self._recent_observations()
        if len(recent) < MIN_OBSERVATIONS:
            return super()._get_new_config(trial, trial_to_clone)
        suggestion = self._suggest(recent)
        if suggestion is None:
            return super()._get_new_config(trial, trial_to_clone)
        new_config = copy.deepcopy(trial_to_clone.config)
        new_config.update({k: suggestion[k] for k in self._params})
        return new_config, {k: self._explore_with for k in self._params}

    def _recent_observations(self) -> list[_Observation]:
        if not self.observations:
            return []
        latest = max(o.end for o in self.observations)
        since = latest - self._window * self._perturbation_interval
        return [o for o in self.observations if o.end > since]

    def _suggest(self, recent: list[_Observation]) -> dict[str, Any] | None:
        import searchers

        by_end: dict[float, list[float]] = {}
        for o in recent:
            by_end.setdefault(o.end, []).append(o.gain)
        centre = {end: statistics.median(gains) for end, gains in by_end.items()}
        n = len(recent)
        options: dict[str, Any] = {
            "gp-ei": {"n_initial": 2},
            "pso": {"n_particles": max(2, n)},
            "genetic": {"population_size": max(2, n), "breed_after": 2},
        }[self._explore_with]
        self._explore_count += 1
        searcher = searchers.make_searcher(
            self._explore_with, seed=self._rng.randrange(2**31), **options
        )
        searcher.set_search_properties("gain", "max", dict(self._params))
        for o in recent:
            searcher.add_evaluated_point(dict(o.values), o.gain - centre[o.end])
        if self._explore_with == "genetic":
            for k in range(max(2, n)):  # its quasi-random initial design (module docstring)
                searcher.suggest(f"design-{k}")
        config = searcher.suggest(f"explore-{self._explore_count}")
        if not isinstance(config, dict):
            return None
        return config


class PopulationBandit(_SafePopulation, PB2):
    """Ray's PB2, made safe (module docstring). PB2 explores numeric parameters only, each
    between its bounds on a linear scale (Ray's GP); categorical ones stay as drawn."""

    def __init__(self, *, max_t: int, **ray_options: Any) -> None:
        super().__init__(**ray_options)
        self._setup_population(max_t=max_t, names=list(ray_options["hyperparam_bounds"]))


class _WithoutSearcher:
    """Ray's controller as PBT's ``on_trial_add`` sees it: without a searcher to refuse."""

    search_alg = None

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._controller, name)


def _existing_path(checkpoint: Any) -> str | None:
    """The path of ``checkpoint`` if it is a checkpoint whose directory exists, else None."""
    if not isinstance(checkpoint, Checkpoint):
        return None
    try:
        from pyarrow.fs import FileType

        filesystem = checkpoint.filesystem
        if filesystem is None:
            return None
        info = filesystem.get_file_info(checkpoint.path)
    except OSError:
        return None
    return str(checkpoint.path) if info.type == FileType.Directory else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _holds_domain(value: Any) -> bool:
    if isinstance(value, Domain):
        return True
    if isinstance(value, Mapping):
        return any(_holds_domain(v) for v in value.values())
    return False


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


__all__ = [
    "EXPLORES",
    "POPULATION_SCHEDULERS",
    "SCHEDULE_FILE",
    "CheckpointRequiredError",
    "PopulationBandit",
    "PopulationOptions",
    "PopulationScheduler",
    "accepted_options",
    "is_population",
    "make_population_scheduler",
    "population_parameters",
    "read_schedule",
]
