"""``auto`` (the portfolio of `searchers.auto`), our own ``tpe``, and warm starts.

The protocol checks (save/restore in a fresh process with pending trials, same seed same
suggestions, NaN and error trials) run for both in the conformance suite, as for every registered
searcher; this file checks what is particular to them: the bandit's credit, the shared history,
the TPE density ratio, and which earlier trials a warm start uses.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ray import tune

from searchers import make_searcher
from searchers.auto import AutoSearcher
from searchers.portfolio import PortfolioCore
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
def test_the_member_that_earns_credit_gets_most_suggestions(members: tuple[str, str]) -> None:
    """On a smooth bowl gp-ei's points beat random ones, so after the warm-up the bandit gives
    gp-ei most suggestions, whichever order the members are listed in (the first one only
    proposes the warm-up design)."""
    searcher = make_searcher("auto", seed=3, members=list(members))
    drive(searcher, SPHERE, sphere, 40)
    counts = searcher.portfolio.suggestions_by_member()
    after_warmup = sum(counts.values())
    assert after_warmup == 40 - 5  # 5 warm-up points in 3-d
    assert counts["gp-ei"] >= 0.75 * after_warmup, counts
    # Exploration: the losing member keeps a few suggestions (it could start earning).
    assert counts["random"] >= 1, counts
    credit = searcher.portfolio.mean_credit()
    assert credit["gp-ei"] > credit["random"] + 0.2, credit


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


def test_portfolio_state_round_trip_continues_exactly() -> None:
    space = from_ray(SPHERE)
    core = PortfolioCore(space, rng=np.random.default_rng(0))
    rng = np.random.default_rng(9)
    for _ in range(12):
        u = core.ask(np.zeros((0, 3)))
        assert u is not None
        core.tell(space.to_unit(space.from_unit(u)), float(rng.random()))
    pending = core.ask(np.zeros((0, 3)))
    assert pending is not None
    copy = PortfolioCore.from_state(space, core.state())
    p = space.to_unit(space.from_unit(pending))[None, :]
    assert np.array_equal(core.ask(p), copy.ask(p))
    assert core.suggestions_by_member() == copy.suggestions_by_member()


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
