"""``auto`` (the portfolio of `searchers.auto`), our own ``tpe``, and warm starts.

The protocol checks (save/restore in a fresh process with pending trials, same seed same
suggestions, NaN and error trials) run for both in the conformance suite, as for every registered
searcher; this file checks what is particular to them: the bandit's credit, the shared history,
the TPE density ratio, and which earlier trials a warm start uses.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ray import tune

from searchers import make_searcher
from searchers.auto import AutoSearcher
from searchers.portfolio import AutoOptions, PortfolioCore
from searchers.tpe import TPECore, TPEOptions
from searchers.tune_domains import from_ray
from searchers.validation import InvalidParameterError


def sphere(config: dict[str, Any]) -> float:
    return sum((config[k] - 0.3) ** 2 for k in ("a", "b", "c"))


SPHERE = {k: tune.uniform(-1.0, 1.0) for k in ("a", "b", "c")}


def drive(searcher: Any, space: dict[str, Any], fn: Any, n: int, pending: int = 1) -> list[float]:
    """Run ``n`` trials with ``pending`` in flight (oldest completed first); returns the values."""
    searcher.set_search_properties("loss", "min", space)
    flight: list[tuple[str, dict[str, Any]]] = []
    values: list[float] = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict), config
        flight.append((f"t{i}", config))
        if len(flight) >= pending:
            trial_id, done = flight.pop(0)
            values.append(fn(done))
            searcher.on_trial_complete(trial_id, {"loss": values[-1]})
    for trial_id, done in flight:
        values.append(fn(done))
        searcher.on_trial_complete(trial_id, {"loss": values[-1]})
    return values


# ---- credit ----------------------------------------------------------------------------------
@pytest.mark.parametrize("members", [("gp-ei", "random"), ("random", "gp-ei")])
def test_hedge_gives_the_best_member_most_suggestions(members: tuple[str, str]) -> None:
    """GP-Hedge (the default credit): on a smooth bowl gp-ei's proposals have a lower posterior
    mean than random ones round after round, so after the warm-up Hedge plays gp-ei's almost
    always, whichever order the members are listed in (the first one only proposes the warm-up
    design)."""
    searcher = make_searcher("auto", seed=3, members=list(members))
    drive(searcher, SPHERE, sphere, 40)
    counts = searcher.portfolio.suggestions_by_member()
    after_warmup = sum(counts.values())
    assert after_warmup == 40 - 5  # 5 warm-up points in 3-d
    assert counts["gp-ei"] >= 0.85 * after_warmup, counts
    chance = searcher.portfolio.mean_credit()  # Hedge's probabilities for the next suggestion
    assert chance["gp-ei"] > 0.95, chance


def test_hedge_credits_the_members_proposals_not_the_gp() -> None:
    """The credit is the GP's judgement of each member's *proposal*, not a preference for the
    GP's own member: with pso and random (no GP among the members) on the bowl, the swarm's
    points, which close in on the minimum, earn most suggestions."""
    searcher = make_searcher("auto", seed=0, members=["random", "pso"])
    drive(searcher, SPHERE, sphere, 60)
    counts = searcher.portfolio.suggestions_by_member()
    assert counts["pso"] >= 0.75 * sum(counts.values()), counts


def test_rank_credit_gives_the_best_member_most_suggestions() -> None:
    """The earlier credit, still selectable (``credit="rank"``): the share of earlier values a
    point beats, chosen by discounted UCB, which keeps a few suggestions for the loser."""
    searcher = make_searcher("auto", seed=3, members=["gp-ei", "random"], credit="rank")
    drive(searcher, SPHERE, sphere, 40)
    counts = searcher.portfolio.suggestions_by_member()
    assert counts["gp-ei"] >= 0.75 * sum(counts.values()), counts
    assert counts["random"] >= 1, counts  # UCB's exploration
    credit = searcher.portfolio.mean_credit()
    assert credit["gp-ei"] > credit["random"] + 0.2, credit


def _states(core: PortfolioCore) -> list[str]:
    return [json.dumps(m.state(), sort_keys=True) for m in core._members]


def test_proposals_not_played_leave_no_state() -> None:
    """Every member proposes at each Hedge round; only the played one may change. Checked with
    trials pending (pso and genetic book asked points as in flight, TPE lies about pending ones,
    every member draws from its RNG): the others' states are what they were before the round,
    and a second portfolio with the same seed makes the same suggestions."""
    space = from_ray(SPHERE)
    cores = [PortfolioCore(space, rng=np.random.default_rng(5)) for _ in range(2)]
    rng = np.random.default_rng(9)
    flight: list[np.ndarray] = []
    changed_played = 0
    for i in range(24):
        before = _states(cores[0])
        asked = cores[0].suggestions_by_member()
        pending = np.array(flight).reshape(-1, 3)
        u = cores[0].ask(pending)
        assert u is not None
        assert np.array_equal(u, cores[1].ask(pending))
        after = _states(cores[0])
        played = [
            m
            for m, name in enumerate(cores[0].members)
            if cores[0].suggestions_by_member()[name] > asked[name]
        ]
        if i >= 5:  # past the warm-up: one member played
            assert len(played) == 1
            for m in range(len(before)):
                if m != played[0]:
                    assert after[m] == before[m], (i, cores[0].members[m])
            changed_played += after[played[0]] != before[played[0]]
        flight.append(space.to_unit(space.from_unit(u)))
        if len(flight) > 3:  # 3 pending, oldest told first
            done = flight.pop(0)
            value = float(np.sum((done - 0.65) ** 2) + 0.01 * rng.random())
            for core in cores:
                core.tell(done, value)
    assert changed_played >= 10  # the check above is not vacuous
    assert cores[0].suggestions_by_member() == cores[1].suggestions_by_member()
    assert np.array_equal(cores[0]._gains, cores[1]._gains)
    assert np.any(cores[0]._gains != 0.0)


def test_portfolio_state_round_trip_continues_exactly() -> None:
    """Saved through JSON mid-run with rounds in flight and rounds told but not yet credited,
    the restored portfolio makes exactly the suggestions the running one makes."""
    space = from_ray(SPHERE)
    core = PortfolioCore(space, rng=np.random.default_rng(0))
    rng = np.random.default_rng(9)
    flight: list[np.ndarray] = []
    for _ in range(14):
        u = core.ask(np.array(flight).reshape(-1, 3))
        assert u is not None
        flight.append(space.to_unit(space.from_unit(u)))
        if len(flight) > 2:
            core.tell(flight.pop(0), float(rng.random()))
    core.tell(flight.pop(0), float(rng.random()))  # told, credited at the next ask
    assert core._told_rounds
    assert core._rounds
    copy = PortfolioCore.from_state(space, json.loads(json.dumps(core.state())))
    for i in range(6):
        pending = np.array(flight).reshape(-1, 3)
        u = core.ask(pending)
        assert np.array_equal(u, copy.ask(pending)), i
        flight.append(space.to_unit(space.from_unit(u)))
        value = float(rng.random())
        done = flight.pop(0)
        core.tell(done, value)
        copy.tell(done, value)
    assert core.suggestions_by_member() == copy.suggestions_by_member()
    assert np.array_equal(core._gains, copy._gains)


def test_a_version_1_state_restores_with_the_rank_credit() -> None:
    """A state saved before GP-Hedge (version 1, no ``credit`` option) continues as it was."""
    space = from_ray(SPHERE)
    core = PortfolioCore(space, rng=np.random.default_rng(0), options=AutoOptions(credit="rank"))
    for i in range(8):
        u = core.ask(np.zeros((0, 3)))
        assert u is not None
        core.tell(space.to_unit(space.from_unit(u)), float(i % 3))
    state = core.state()
    old = {k: state[k] for k in ("members", "credit", "pulls", "asked", "flight", "y")}
    options = {k: v for k, v in state["options"].items() if k not in ("credit", "eta", "gain")}
    old.update(version=1, options=options, n_rewarded=state["n_rewarded"])
    restored = PortfolioCore.from_state(space, old)
    assert restored._opt.credit == "rank"
    assert np.array_equal(restored.ask(np.zeros((0, 3))), core.ask(np.zeros((0, 3))))


def test_every_member_sees_every_observation() -> None:
    """One shared history: a member that suggested nothing has still been told every trial."""
    searcher = make_searcher("auto", seed=0, members=["tpe", "random", "genetic"])
    drive(searcher, SPHERE, sphere, 20, pending=3)
    core = searcher.portfolio
    tpe = core._members[0]
    assert isinstance(tpe, TPECore)
    assert len(tpe._y) == 20
    assert core.suggestions_by_member()["genetic"] < 15
    assert len(core._members[2]._pop_f) >= 8


def test_auto_beats_random_and_reaches_the_bowl_with_pending_trials() -> None:
    values_auto = drive(make_searcher("auto", seed=1), SPHERE, sphere, 40, pending=4)
    values_random = drive(make_searcher("random", seed=1), SPHERE, sphere, 40, pending=4)
    assert min(values_auto) < 0.01
    assert min(values_auto) < 0.2 * min(values_random)


def test_bad_options_name_the_field() -> None:
    with pytest.raises(InvalidParameterError, match=r"unknown member 'gp_ei'.*gp-ei"):
        make_searcher("auto", members=["gp_ei", "pso"])
    with pytest.raises(InvalidParameterError, match="members must be a non-empty list"):
        make_searcher("auto", members="gp-ei")
    with pytest.raises(InvalidParameterError, match="member_options names 'tpe'"):
        make_searcher("auto", members=["gp-ei"], member_options={"tpe": {}})
    with pytest.raises(InvalidParameterError, match=r"unknown option 'n_init'.*n_initial"):
        make_searcher("auto", member_options={"gp-ei": {"n_init": 3}})
    with pytest.raises(InvalidParameterError, match="discount"):
        make_searcher("auto", discount=1.5)
    with pytest.raises(InvalidParameterError, match=r"credit.*'hedge' or 'rank'"):
        make_searcher("auto", credit="gp-hedge")
    with pytest.raises(InvalidParameterError, match="eta"):
        make_searcher("auto", eta=0.0)
    with pytest.raises(InvalidParameterError, match=r"gain.*'mean' or 'rank'"):
        make_searcher("auto", gain="median")


# ---- our TPE ---------------------------------------------------------------------------------
def test_tpe_prefers_the_good_region() -> None:
    """With good points near 0.2 and bad ones near 0.8, TPE's candidates come from near 0.2."""
    space = from_ray({"x": tune.uniform(0.0, 1.0)})
    core = TPECore(space, rng=np.random.default_rng(0), options=TPEOptions(n_startup=2))
    for x in np.linspace(0.0, 1.0, 21):
        core.tell(np.array([x]), float((x - 0.2) ** 2))
    asks = [float(core.ask(np.zeros((0, 1)))[0]) for _ in range(20)]  # type: ignore[index]
    assert abs(float(np.median(asks)) - 0.2) < 0.1, asks


def test_tpe_pending_points_lower_the_ratio_where_they_are() -> None:
    """The constant liar: pending points at the good region join the bad set, so l/g drops
    there (and only a little far from them), and concurrent asks spread out."""
    space = from_ray({"x": tune.uniform(0.0, 1.0)})
    core = TPECore(space, rng=np.random.default_rng(1), options=TPEOptions(n_startup=2))
    for x in np.linspace(0.0, 1.0, 21):
        core.tell(np.array([x]), float((x - 0.2) ** 2))
    at = np.array([[0.2], [0.7]])
    free = core.log_ratio(at, np.zeros((0, 1)))
    busy = core.log_ratio(at, np.full((4, 1), 0.2))
    drop = free - busy  # (2,)
    assert drop[0] > 0.3, drop
    assert drop[0] > 2 * drop[1], drop


def test_tpe_categorical_kernel_keeps_the_good_category() -> None:
    space = from_ray({"act": tune.choice(["a", "b", "c", "d"]), "x": tune.uniform(0, 1)})
    core = TPECore(space, rng=np.random.default_rng(2), options=TPEOptions(n_startup=2))
    rng = np.random.default_rng(0)
    for _ in range(40):
        u = rng.random(2)
        act = space.from_unit(u)["act"]
        core.tell(space.to_unit(space.from_unit(u)), 0.0 if act == "c" else 1.0 + float(u[1]))
    picks = [space.from_unit(core.ask(np.zeros((0, 2))))["act"] for _ in range(20)]  # type: ignore[arg-type]
    assert picks.count("c") >= 15, picks


# ---- warm start ------------------------------------------------------------------------------
OLD_SPACE = {
    "lr": tune.loguniform(1e-4, 1e-1),
    "width": tune.randint(8, 65),
    "drop": tune.uniform(0, 0.5),
}


def old_trials(n: int = 30) -> pd.DataFrame:
    """An earlier experiment's table, in hpt_ray's layout (``config/<name>``, status,
    final_metric)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        lr = float(10 ** rng.uniform(-4, -1))
        width = int(rng.integers(8, 65))
        drop = float(rng.uniform(0, 0.5))
        rows.append(
            {
                "trial_id": f"old{i}",
                "status": "completed" if i % 10 else "stopped",
                "final_metric": (math.log10(lr) + 2) ** 2 + abs(width - 32) / 32,
                "config/lr": lr,
                "config/width": width,
                "config/drop": drop,
            }
        )
    return pd.DataFrame(rows)


def test_warm_start_uses_what_fits_and_notes_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    """The new space drops ``drop`` (removed: ignored), narrows ``width`` to [8, 40] (trials
    outside skipped) and keeps ``lr``; stopped trials (low fidelity) are skipped."""
    frame = old_trials()
    new_space = {"lr": tune.loguniform(1e-4, 1e-1), "width": tune.randint(8, 41)}
    searcher = make_searcher("auto", seed=0, warm_start=frame)
    searcher.set_search_properties("loss", "min", new_space)
    with caplog.at_level(logging.WARNING, logger="searchers.warm_start"):
        first = searcher.suggest("t0")
    report = searcher.warm_start_report
    completed = frame[frame.status == "completed"]
    fits = int((completed["config/width"] <= 40).sum())
    assert report.used == fits
    assert report.skipped["status 'stopped', not completed"] == 3
    outside = sum(n for reason, n in report.skipped.items() if "width" in reason)
    assert outside == len(completed) - fits > 0
    assert "warm start" in caplog.text
    assert "width" in caplog.text
    # The first suggestions re-evaluate the best earlier configs that fit, best first, as the
    # warm-up design (5 points in 2-d); the earlier values are not told (another task's).
    assert len(searcher.portfolio._y) == 0
    fitting = completed[completed["config/width"] <= 40].sort_values("final_metric")
    replayed = [first] + [searcher.suggest(f"t{i}") for i in range(1, 5)]
    for config, (_, row) in zip(replayed, fitting.head(5).iterrows(), strict=True):
        assert config == {"lr": row["config/lr"], "width": row["config/width"]}
    assert sum(searcher.portfolio.suggestions_by_member().values()) == 0
    sixth = searcher.suggest("t5")
    assert sixth not in replayed
    assert sum(searcher.portfolio.suggestions_by_member().values()) == 1


def test_warm_start_tell_seeds_the_history_once_across_save_and_restore(tmp_path: Any) -> None:
    """``warm_start_tell=True`` (the same objective, continued): every fitting trial is told to
    every member, once, also when the searcher is saved and restored after the first
    suggestion."""
    searcher = make_searcher("auto", seed=0, warm_start=old_trials(), warm_start_tell=True)
    drive(searcher, OLD_SPACE, lambda c: (math.log10(c["lr"]) + 2) ** 2, 3)
    assert len(searcher.portfolio._y) == 27 + 3
    path = str(tmp_path / "state.json")
    searcher.save(path)
    restored = make_searcher("auto", seed=0, warm_start=old_trials(), warm_start_tell=True)
    restored.set_search_properties("loss", "min", OLD_SPACE)
    restored.restore(path)
    restored.suggest("t9")
    assert isinstance(restored, AutoSearcher)
    assert len(restored.portfolio._y) == 27 + 3  # not 27 twice


def test_warm_start_with_an_added_parameter() -> None:
    """Replayed, an earlier config gets a random value of the parameter it lacks (re-evaluated,
    nothing made up is told); told (``warm_start_tell=True``), such a trial is skipped."""
    new_space = {**OLD_SPACE, "momentum": tune.uniform(0.0, 0.99)}
    replay = make_searcher("auto", seed=0, warm_start=old_trials())
    replay.set_search_properties("loss", "min", new_space)
    first = replay.suggest("t0")
    report = replay.warm_start_report
    assert report.used == 27
    assert report.filled == {"parameter 'momentum' not in the earlier run, drawn at random": 27}
    assert 0.0 <= first["momentum"] <= 0.99
    best = old_trials().query("status == 'completed'").sort_values("final_metric").iloc[0]
    assert first["lr"] == best["config/lr"]
    told = make_searcher("auto", seed=0, warm_start=old_trials(), warm_start_tell=True)
    told.set_search_properties("loss", "min", new_space)
    told.suggest("t0")
    assert told.warm_start_report.used == 0
    assert told.warm_start_report.skipped["parameter 'momentum' not in the earlier run"] == 27


def test_warm_start_from_an_experiment_directory(tmp_path: Any) -> None:
    """The files hpt_ray writes: results.parquet and experiment.json (whose metric must match)."""
    from hpt_ray.table import write_metadata, write_results

    write_results(old_trials(), tmp_path)
    write_metadata(tmp_path, {"metric": "loss", "mode": "min"})
    searcher = make_searcher("auto", seed=0, warm_start=str(tmp_path))
    searcher.set_search_properties("loss", "min", OLD_SPACE)
    searcher.suggest("t0")
    assert searcher.warm_start_report.used == 27
    other = make_searcher("auto", seed=0, warm_start=str(tmp_path))
    other.set_search_properties("accuracy", "max", OLD_SPACE)
    with pytest.raises(InvalidParameterError, match=r"ranked by 'loss'.*'accuracy'"):
        other.suggest("t0")


def test_warm_start_bad_sources_fail_early(tmp_path: Any) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        make_searcher("auto", warm_start=str(tmp_path / "nope"))
    with pytest.raises(InvalidParameterError, match="warm_start must be"):
        make_searcher("auto", warm_start=42)
