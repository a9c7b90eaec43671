"""gp-ei's TuRBO trust region (``GPEIOptions(trust_region=True)``, `searchers.gp.trust_region`):
its rules, that every model-phase ask lies in its box, and exact state with pending trials."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from searchers.gp.core import GPEICore, GPEIOptions
from searchers.gp.optimize import Box, _candidates
from searchers.gp.trust_region import TrustRegion
from searchers.space import CategoricalParam, FloatParam, IntParam, Lattice, SearchSpace


def _region(**kw: float) -> TrustRegion:
    args = {
        "length_init": 0.8,
        "length_min": 0.1,
        "length_max": 1.6,
        "succ_tol": 3,
        "fail_tol": 4,
        "n_design": 2,
    }
    args.update(kw)
    return TrustRegion(**args)  # type: ignore[arg-type]


def _feed(tr: TrustRegion, values: list[float], n0: int = 0) -> int:
    for i, v in enumerate(values, start=n0 + 1):
        tr.observe(v, i, sobol_drawn=10)
    return n0 + len(values)


def test_design_points_set_the_best_without_counting() -> None:
    tr = _region()
    _feed(tr, [5.0, 3.0])
    assert (tr.best, tr.n_succ, tr.n_fail, tr.length) == (3.0, 0, 0, 0.8)


def test_side_doubles_after_succ_tol_improvements_up_to_the_cap() -> None:
    tr = _region()
    n = _feed(tr, [5.0, 4.0, 3.0, 2.0])
    assert tr.length == 0.8
    assert tr.n_succ == 2
    n = _feed(tr, [1.0], n)
    assert tr.length == 1.6
    assert tr.n_succ == 0
    _feed(tr, [0.5, 0.25, 0.1], n)
    assert tr.length == 1.6  # capped at length_max


def test_tiny_improvement_is_a_failure() -> None:
    tr = _region()
    n = _feed(tr, [5.0, 4.0])
    _feed(tr, [4.0 - 1e-4], n)  # below 1e-3 |best|: TuRBO's margin
    assert (tr.n_succ, tr.n_fail) == (0, 1)


def test_side_halves_after_fail_tol_failures_and_a_success_resets_the_count() -> None:
    tr = _region()
    n = _feed(tr, [5.0, 4.0, 6.0, 6.0, 6.0])
    assert tr.n_fail == 3
    n = _feed(tr, [3.0], n)  # a success clears the failures
    assert (tr.n_succ, tr.n_fail, tr.length) == (1, 0, 0.8)
    n = _feed(tr, [6.0, 6.0, 6.0], n)
    assert tr.length == 0.8
    _feed(tr, [float("nan")], n)  # a failed trial counts as a failure
    assert tr.length == 0.4
    assert tr.n_fail == 0


def test_restart_below_length_min_resets_and_starts_a_fresh_design() -> None:
    tr = _region(length_min=0.3)
    n = _feed(tr, [5.0, 4.0])
    n = _feed(tr, [6.0] * 4, n)
    assert tr.length == 0.4
    assert tr.restarts == 0
    assert not tr.in_design(sobol_drawn=10, n_observations=n)
    for i in range(4):
        tr.observe(6.0, n + i + 1, sobol_drawn=12)
    n += 4
    assert tr.restarts == 1
    assert (tr.length, tr.n_succ, tr.n_fail, tr.best) == (0.8, 0, 0, None)
    assert tr.epoch_start == n
    assert tr.epoch_sobol == 12
    # The next n_design asks are Sobol points; then the region takes over again.
    assert tr.in_design(sobol_drawn=12, n_observations=n)
    assert tr.in_design(sobol_drawn=13, n_observations=n + 1)
    assert not tr.in_design(sobol_drawn=14, n_observations=n + 1)
    # The new epoch's best is its own, not the old 4.0.
    tr.observe(7.0, n + 1, sobol_drawn=14)
    assert tr.best == 7.0
    U = np.array([[0.1, 0.1]] * n + [[0.9, 0.9]])
    y = np.array([4.0] + [6.0] * (n - 1) + [7.0])
    np.testing.assert_array_equal(tr.center(U, y), [0.9, 0.9])


def test_box_has_side_length_at_unit_weights_and_stretches_with_length_scales() -> None:
    tr = _region()
    categorical = np.array([False, False, True])
    lower, upper = tr.box(np.full(3, 0.5), np.array([1.0, 1.0, 9.0]), categorical, np.zeros(3))
    np.testing.assert_allclose(upper - lower, [0.8, 0.8, 1.0])
    lower, upper = tr.box(np.full(3, 0.5), np.array([0.5, 2.0, 1.0]), categorical, np.zeros(3))
    np.testing.assert_allclose(upper[:2] - lower[:2], [0.4, 1.0])  # 0.8 x (0.5, 2.0)
    tr.length = 0.01
    lower, upper = tr.box(np.full(3, 0.5), np.ones(3), categorical, np.array([0.1, 0.0, 0.5]))
    np.testing.assert_allclose(upper[:2] - lower[:2], [0.2, 0.01])  # one level each side


def test_candidates_lie_in_the_box_and_move_few_coordinates_in_high_dim() -> None:
    dim = 40
    space = SearchSpace(tuple(FloatParam((f"x{i}",)) for i in range(dim)))
    lattice = Lattice(space)
    rng = np.random.default_rng(0)
    center = rng.random(dim)
    box = Box(np.clip(center - 0.05, 0, 1), np.clip(center + 0.05, 0, 1), center, 20 / dim)
    best = np.stack([center, np.clip(center + 0.01, 0, 1)])
    cand = _candidates(lattice, best, rng, GPEIOptions().acquisition(), box)
    assert np.all(box.contains(cand, np.zeros(dim)))
    moved = np.sum(cand[:256] != center, axis=1)  # the Sobol part
    assert moved.min() >= 1
    assert moved.mean() < 0.75 * dim


def _mixed_space() -> SearchSpace:
    return SearchSpace(
        (
            FloatParam(("x",), -2.0, 2.0),
            FloatParam(("y",), -2.0, 2.0),
            FloatParam(("lr",), 1e-4, 1.0, log=True),
            IntParam(("n",), 1, 8),
            CategoricalParam(("c",), ("a", "b", "c")),
        )
    )


def _f(space: SearchSpace, u: np.ndarray) -> float:
    cfg = space.from_unit(u)
    return (
        (cfg["x"] - 0.5) ** 2
        + math.sin(3 * cfg["y"]) ** 2
        + (math.log10(cfg["lr"]) + 2) ** 2
        + 0.1 * abs(cfg["n"] - 3)
        + (0.0 if cfg["c"] == "b" else 1.0)
    )


def _options(**kw: object) -> GPEIOptions:
    return GPEIOptions(n_initial=4, trust_region=True, **kw)  # type: ignore[arg-type]


def test_model_phase_asks_lie_in_the_box_around_the_epoch_best() -> None:
    space = _mixed_space()
    core = GPEICore(space, rng=np.random.default_rng(3), options=_options())
    lattice = Lattice(space)
    empty = np.zeros((0, space.dim))
    in_box = 0
    for step in range(20):
        tr = core.trust_region
        assert tr is not None
        expect_box = step >= 4 and not tr.in_design(core._sobol_drawn, step)
        if expect_box:
            U, y = np.stack(core._U), np.array(core._y)
            center = tr.center(U, y)
            length_before = tr.length
        drawn = core._sobol_drawn
        u = core.ask(empty)
        assert u is not None
        # A Sobol point instead (the leave-one-out skill check) is global on purpose.
        if expect_box and core._sobol_drawn == drawn and core.hyperparameters is not None:
            ls = np.exp(core.hyperparameters[: space.dim])
            lower, upper = tr.box(center, ls, lattice.categorical, lattice.min_step)
            assert tr.length == length_before
            assert np.all(lower - lattice.min_step - 1e-9 <= u), (step, u, lower)
            assert np.all(u <= upper + lattice.min_step + 1e-9), (step, u, upper)
            in_box += 1
        core.tell(u, _f(space, u))
    assert in_box >= 10


def test_region_shrinks_and_restarts_in_a_run() -> None:
    space = _mixed_space()
    options = _options(tr_length_min=0.3, tr_fail_tol=1, tr_succ_tol=50)
    core = GPEICore(space, rng=np.random.default_rng(4), options=options)
    empty = np.zeros((0, space.dim))
    lengths = []
    for _ in range(25):
        u = core.ask(empty)
        assert u is not None
        core.tell(u, _f(space, u))
        assert core.trust_region is not None
        lengths.append(core.trust_region.length)
    assert core.trust_region is not None
    assert core.trust_region.restarts >= 1
    assert min(lengths) == 0.4
    assert max(lengths) == 0.8


def _run(core: GPEICore, space: SearchSpace, steps: int, in_flight: int) -> list[np.ndarray]:
    """Ask/tell with ``in_flight`` trials pending (FIFO); returns every asked point."""
    pending: list[np.ndarray] = []
    asked: list[np.ndarray] = []
    for _ in range(steps):
        while len(pending) < in_flight:
            u = core.ask(np.array(pending).reshape(-1, space.dim))
            assert u is not None
            pending.append(u)
            asked.append(u)
        u = pending.pop(0)
        core.tell(u, _f(space, u))
    return asked


def test_same_seed_same_suggestions_with_pending() -> None:
    space = _mixed_space()
    runs = [
        _run(GPEICore(space, rng=np.random.default_rng(7), options=_options()), space, 18, 3)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))


def test_state_restores_exactly_mid_run_with_pending() -> None:
    space = _mixed_space()
    options = _options(tr_length_min=0.3, tr_fail_tol=2)  # shrinks and restarts within the run
    core = GPEICore(space, rng=np.random.default_rng(5), options=options)
    pending: list[np.ndarray] = []
    for _ in range(14):
        while len(pending) < 2:
            pending.append(core.ask(np.array(pending).reshape(-1, space.dim)))  # type: ignore[arg-type]
        u = pending.pop(0)
        core.tell(u, _f(space, u))
    state = json.loads(json.dumps(core.state(), allow_nan=False))
    assert state["trust_region"]["restarts"] == 1  # the state is mid-run after a restart
    restored = GPEICore.from_state(space, state)
    assert restored.trust_region is not None
    assert core.trust_region is not None
    assert restored.trust_region.state() == core.trust_region.state()
    for _ in range(12):
        p = np.array(pending).reshape(-1, space.dim)
        a, b = core.ask(p), restored.ask(p)
        assert a is not None
        assert b is not None
        np.testing.assert_array_equal(a, b)
        pending.append(a)
        u = pending.pop(0)
        core.tell(u, _f(space, u))
        restored.tell(u, _f(space, u))
        assert restored.trust_region.state() == core.trust_region.state()


def test_off_by_default_and_options_validated() -> None:
    assert GPEIOptions().trust_region is False
    space = _mixed_space()
    assert GPEICore(space, rng=np.random.default_rng(0)).trust_region is None
    assert GPEIOptions(trust_region=True).trust_region_for(12).fail_tol == 12
    assert GPEIOptions(trust_region=True).trust_region_for(2).fail_tol == 4
    with pytest.raises(ValueError, match="tr_length_min"):
        GPEIOptions(tr_length_min=0.9)
    with pytest.raises(ValueError, match="tr_fail_tol"):
        GPEIOptions(tr_fail_tol=0)
    with pytest.raises(ValueError, match="tr_succ_tol"):
        GPEIOptions(tr_succ_tol=0)
    with pytest.raises((ValueError, TypeError), match="trust_region"):
        GPEIOptions(trust_region="yes")  # type: ignore[arg-type]
