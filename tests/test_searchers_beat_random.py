"""Every searcher that claims to learn beats random search on a cheap deterministic objective.

Each searcher is driven through the plain Ray Tune ``Searcher`` protocol without a Ray runtime
(``set_search_properties`` / ``suggest`` / ``on_trial_complete``, one trial at a time) on a 4-d
shifted quadratic in a Ray Tune space (three ``uniform`` axes and one ``loguniform``; minimum 0),
so a run costs milliseconds for all but the GP.

The claim tested: the median over seeds of the best value a searcher found within the budget is
below ``RATIO`` times random search's median best at the same budget (random over
``REFERENCE_SEEDS`` seeds, so the reference itself is steady). RATIO < 1 gives the test power:
the case ``random`` below is random search under other seeds, and it fails (strict xfail), so a
searcher that learned nothing would fail too. Measured on this objective, median best / random's
median best: at budget 40 over 7 seeds pso 0.19, genetic 0.21, optuna-tpe 0.16, hyperopt-tpe 0.51
(its first 20 suggestions are random by default), optuna-cmaes 0.22, random under seeds 0-6 1.66;
gp-ei at budget 20 over 3 seeds 0.004. Random search over 7 seeds ends below 0.6 of the reference
about 1 time in 20 (bootstrap over 300 seeds). About 18 s of CPU in all.

Not here: optuna-gp (about 9 s of CPU per 20-evaluation run on 2 cores, too slow for a unit
test; `scripts/bench_searchers.py` compares it), and grid (no learning to test).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from ray import tune
from threadpoolctl import threadpool_limits

from searchers import make_searcher

SHIFT = (1.3, -2.1, 0.7)
LOG10_LR = -2.2
SPACE: dict[str, Any] = {
    "x0": tune.uniform(-5.0, 5.0),
    "x1": tune.uniform(-5.0, 5.0),
    "x2": tune.uniform(-5.0, 5.0),
    "lr": tune.loguniform(1e-5, 1.0),
}

RATIO = 0.6
REFERENCE_SEEDS = range(1000, 1101)


def shifted_quadratic(config: dict[str, Any]) -> float:
    """0 at x = SHIFT, lr = 10**LOG10_LR; a bowl in the searchers' own (log for lr) coordinates."""
    return (
        sum((config[f"x{i}"] - s) ** 2 for i, s in enumerate(SHIFT))
        + (math.log10(config["lr"]) - LOG10_LR) ** 2
    )


@dataclass(frozen=True)
class Case:
    budget: int = 40
    seeds: range = range(7)
    options: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "pso": Case(),
    "genetic": Case(),
    "optuna-tpe": Case(),
    "hyperopt-tpe": Case(),
    "optuna-cmaes": Case(),
    # Each GP step costs ~0.3 s of CPU here (hyperparameter fit and acquisition refinement), so
    # fewer evaluations and seeds; the margin is two orders of magnitude.
    "gp-ei": Case(budget=20, seeds=range(3)),
}


@pytest.fixture(autouse=True)
def _one_blas_thread() -> Iterator[None]:
    # The GP's small linear algebra is slower with a BLAS thread pool fighting for 2 cores.
    with threadpool_limits(limits=1):
        yield


def best_found(name: str, seed: int, budget: int, **options: Any) -> float:
    searcher = make_searcher(name, seed=seed, **options)
    assert searcher.set_search_properties("loss", "min", SPACE) is True
    best = math.inf
    for i in range(budget):
        config = searcher.suggest(f"t{i}")
        assert isinstance(config, dict), config
        value = shifted_quadratic(config)
        best = min(best, value)
        searcher.on_trial_complete(f"t{i}", {"loss": value})
    return best


def random_reference(budget: int) -> float:
    return statistics.median(best_found("random", seed, budget) for seed in REFERENCE_SEEDS)


@pytest.mark.parametrize(
    "name",
    [
        *CASES,
        pytest.param(
            "random",
            marks=pytest.mark.xfail(
                strict=True, reason="random search (other seeds) must not pass: the test's power"
            ),
        ),
    ],
)
def test_median_best_beats_random_search(name: str) -> None:
    case = CASES.get(name, Case())
    bests = [best_found(name, seed, case.budget, **case.options) for seed in case.seeds]
    reference = random_reference(case.budget)
    median = statistics.median(bests)
    assert median < RATIO * reference, (
        f"{name}: median best {median:.4g} over seeds {list(case.seeds)} at budget "
        f"{case.budget} vs random's {reference:.4g} (ratio {median / reference:.2f}; "
        f"bests {[round(b, 3) for b in bests]})"
    )
