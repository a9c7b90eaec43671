"""`SafeScheduler` around Ray's ASHA, driven directly (no Ray runtime): what the wrapped scheduler
sees of hostile results, and that its rungs survive into a new scheduler bound to the same
directory (a resumed experiment).

ASHA records on a rung ``metric_op * value`` (``-loss`` for mode "min") of each trial that reaches
it; the tests read those records (``inner._brackets[0]._rungs``) to see what ASHA was shown.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from hpt_ray.schedulers import SafeScheduler

METRIC = "loss"
HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("nan", {METRIC: math.nan}),
    ("inf", {METRIC: math.inf}),
    ("-inf", {METRIC: -math.inf}),
    ("missing", {}),
    ("string", {METRIC: "abc"}),
    ("none", {METRIC: None}),
    ("bool", {METRIC: True}),
]


def make(mode: str = "min") -> SafeScheduler:
    scheduler = SafeScheduler(
        ASHAScheduler(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    )
    assert scheduler.set_search_properties(METRIC, mode) is True
    return scheduler


def trial(trial_id: str) -> Trial:
    return Trial("safe_scheduler_test", stub=True, trial_id=trial_id)


def report(scheduler: SafeScheduler, t: Trial, iteration: int, metrics: dict[str, Any]) -> str:
    return scheduler.on_trial_result(None, t, {"training_iteration": iteration, **metrics})


def rungs(scheduler: SafeScheduler) -> dict[int, dict[str, float]]:
    """Milestone -> {trial_id: recorded value} of the wrapped ASHA's single bracket."""
    (bracket,) = scheduler.inner._brackets
    return {int(milestone): dict(recorded) for milestone, recorded in bracket._rungs}


def bind_for_resume(scheduler: SafeScheduler, directory: Path) -> None:
    # Loading a saved state is becoming opt-in (issue #11, item 1: bind(dir, restore=True));
    # before that change bind(dir) alone loads it.
    if "restore" in inspect.signature(scheduler.bind).parameters:
        scheduler.bind(directory, restore=True)
    else:
        scheduler.bind(directory)


@pytest.mark.parametrize(("kind", "metrics"), HOSTILE, ids=[k for k, _ in HOSTILE])
def test_before_any_finite_value_a_hostile_result_is_not_shown(kind: str, metrics: dict) -> None:
    scheduler = make()
    t = trial("a")
    scheduler.on_trial_add(None, t)
    assert report(scheduler, t, 1, metrics) == TrialScheduler.CONTINUE
    assert rungs(scheduler)[1] == {}  # ASHA saw nothing: no record on the first rung


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize(("kind", "metrics"), HOSTILE, ids=[k for k, _ in HOSTILE])
def test_hostile_result_is_shown_as_the_worst_finite_value(
    kind: str, metrics: dict, mode: str
) -> None:
    scheduler = make(mode)
    sign = -1.0 if mode == "min" else 1.0  # ASHA's metric_op
    good, bad = (1.0, 5.0) if mode == "min" else (5.0, 1.0)
    trials = [trial(name) for name in ("good", "bad", "hostile")]
    for t in trials:
        scheduler.on_trial_add(None, t)
    assert report(scheduler, trials[0], 1, {METRIC: good}) == TrialScheduler.CONTINUE
    assert report(scheduler, trials[1], 1, {METRIC: bad}) == TrialScheduler.STOP
    result = {"training_iteration": 1, **metrics}
    before = dict(result)
    decision = scheduler.on_trial_result(None, trials[2], result)
    recorded = rungs(scheduler)[1]
    assert recorded == {"good": sign * good, "bad": sign * bad, "hostile": sign * bad}
    assert all(math.isfinite(v) for v in recorded.values())
    assert decision == TrialScheduler.STOP  # as bad as the worst trial, so cut like it
    # The caller's result is left as it was (Ray keeps it for the trial's own record).
    assert result.keys() == before.keys()
    assert all(result[key] is value for key, value in before.items())


def test_worst_value_follows_the_mode_and_the_reports() -> None:
    scheduler = make("min")
    a, b, c, d = (trial(x) for x in "abcd")
    for t in (a, b, c, d):
        scheduler.on_trial_add(None, t)
    report(scheduler, a, 1, {METRIC: 2.0})
    report(scheduler, b, 1, {METRIC: math.nan})  # worst so far: 2.0
    report(scheduler, a, 3, {METRIC: 7.0})  # a worse finite value, on the next rung
    report(scheduler, c, 1, {METRIC: math.inf})  # worst so far: 7.0
    report(scheduler, d, 1, {METRIC: 0.5})  # better values do not change the worst
    report(scheduler, d, 3, {METRIC: -math.inf})
    assert rungs(scheduler)[1] == {"a": -2.0, "b": -2.0, "c": -7.0, "d": -0.5}
    assert rungs(scheduler)[3] == {"a": -7.0, "d": -7.0}


def test_completion_with_a_hostile_result() -> None:
    scheduler = make("max")
    early, judged, late = trial("early"), trial("judged"), trial("late")
    for t in (early, judged, late):
        scheduler.on_trial_add(None, t)
    # No finite value yet: the wrapped ASHA forgets the trial rather than ranking NaN.
    scheduler.on_trial_complete(None, early, {"training_iteration": 1, METRIC: math.nan})
    assert "early" not in scheduler.inner._trial_info
    assert rungs(scheduler)[1] == {}
    report(scheduler, judged, 1, {METRIC: 0.8})
    report(scheduler, judged, 3, {METRIC: 0.6})
    # Known worst 0.6: the completing trial is recorded with it.
    scheduler.on_trial_complete(None, late, {"training_iteration": 3, METRIC: "oops"})
    assert "late" not in scheduler.inner._trial_info
    assert rungs(scheduler)[3] == {"judged": 0.6, "late": 0.6}


def test_rungs_and_worst_value_survive_into_a_new_scheduler(tmp_path: Path) -> None:
    first = make("min")
    first.bind(tmp_path)
    trials = [trial(f"t{i}") for i in range(4)]
    for t in trials:
        first.on_trial_add(None, t)
    for t, value in zip(trials, (3.0, 1.0, 4.0, 2.0), strict=True):
        report(first, t, 1, {METRIC: value})
    report(first, trials[1], 3, {METRIC: 0.5})
    first.on_trial_complete(None, trials[2], {"training_iteration": 1, METRIC: 4.0})
    assert (tmp_path / SafeScheduler.STATE_FILE).exists()  # written at every trial end
    saved = rungs(first)

    resumed = SafeScheduler(
        ASHAScheduler(time_attr="training_iteration", max_t=9, grace_period=1, reduction_factor=3)
    )
    bind_for_resume(resumed, tmp_path)
    assert resumed.set_search_properties(METRIC, "min") is True
    assert rungs(resumed) == saved
    assert saved[1] == {"t0": -3.0, "t1": -1.0, "t2": -4.0, "t3": -2.0}
    # The worst finite value came back too: a NaN from a new trial is shown as 4.0, the worst
    # value the first scheduler saw (with no value known it would be hidden from ASHA).
    fresh = trial("fresh")
    resumed.on_trial_add(None, fresh)
    assert report(resumed, fresh, 1, {METRIC: math.nan}) == TrialScheduler.STOP
    assert rungs(resumed)[1]["fresh"] == -4.0
    # The trials still running are known to it: their next results are judged on those rungs.
    assert report(resumed, trials[3], 3, {METRIC: 9.0}) == TrialScheduler.STOP
    assert rungs(resumed)[3] == {"t1": -0.5, "t3": -9.0}
