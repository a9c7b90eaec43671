"""The multi-fidelity benchmark's own-loop contenders (`scripts/bench_multi_fidelity.py`):
Optuna TPE with its Hyperband pruner and Ray's TuneBOHB under a simulated HyperBandForBOHB."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import bench_multi_fidelity as mf

BUDGET = 120  # 4.4 full trials of MAX_T epochs


def _levy3() -> mf.CurveProblem:
    return next(p for p in mf.problems() if p.name == "levy3")


def _check(curve: list[tuple[int, float]]) -> None:
    used = [u for u, _ in curve]
    assert used == sorted(used)
    assert used[0] >= mf.GRACE
    # Spent the budget (trials started before it ran out may finish past it) ...
    assert BUDGET - mf.MAX_T <= used[-1] < BUDGET + mf.CONCURRENT * mf.MAX_T
    # ... on more trials than full-length ones could have had: early stopping happened.
    assert len(curve) > BUDGET // mf.MAX_T + mf.CONCURRENT
    assert all(0.0 <= regret < 10.0 for _, regret in curve)


def test_optuna_hyperband_pruner_stops_trials_early_and_is_reproducible() -> None:
    curve = mf.run_optuna_hyperband(_levy3(), seed=3, budget=BUDGET)
    _check(curve)
    assert mf.run_optuna_hyperband(_levy3(), seed=3, budget=BUDGET) == curve


def test_tune_bohb_under_simulated_hyperband_stops_trials_and_is_reproducible() -> None:
    pytest.importorskip("hpbandster", reason="the anchors extra (make bench-setup)")
    curve = mf.run_bohb(_levy3(), seed=3, budget=BUDGET)
    _check(curve)
    assert mf.run_bohb(_levy3(), seed=3, budget=BUDGET) == curve


def test_real_pool_is_a_table_and_its_smooth_reading_is_continuous() -> None:
    curves = Path(__file__).resolve().parents[1] / "scripts/results/multi_fidelity/real/curves"
    table = mf.get_problem("cnn-digits", curves)
    smooth = mf.get_problem("cnn-digits-smooth", curves)
    assert isinstance(table, mf.PoolProblem)
    assert isinstance(smooth, mf.PoolProblem)
    u = table.pool[5]
    step = np.full(table.dim, 0.01)
    # The table: a pool config's own curve, and the same curve a small step away.
    np.testing.assert_array_equal(table.curve(u), table.curves[5])
    np.testing.assert_array_equal(table.curve(u + step), table.curves[5])
    assert table.final(table.pool[np.argmin(table.curves[:, -1])]) == 0.0
    # The surrogate: moves with the config, a little for a small step.
    assert smooth.curve(u + step)[-1] != smooth.curve(u)[-1]
    assert abs(smooth.curve(u + step)[-1] - smooth.curve(u)[-1]) < 0.05
    assert min(smooth.final(p) for p in smooth.pool) >= 0.0
