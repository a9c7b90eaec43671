"""Hostile metrics (NaN, inf, -inf, a missing metric) through every searcher we ship and ASHA."""

from __future__ import annotations

import math

import pytest
from ray import tune

import searchers
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import make_scheduler
from hpt_ray.table import best_row

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.usefixtures("ray_local")]

MAX_T = 4


def make_scripted():
    """A trainable reporting (x - 0.3)^2 + 1/i, except where the pattern (k + i) % 5 says NaN,
    inf, -inf or no metric at all (never at the last report, so trials that run to the end have a
    finite final value; and never at the first, since a first report without the metric before
    any report had it is a typo that stops the run: tests/test_trust.py). Built in a function so
    Ray pickles it by value (the workers cannot import this test module)."""

    def scripted(config):
        for i in range(1, MAX_T + 1):
            value = (config["x"] - 0.3) ** 2 + 1.0 / i
            pattern = (config["k"] + i) % 5 if i < MAX_T else 4
            if pattern == 3 and i > 1:
                tune.report({"other": 1.0})
                continue
            value = {0: math.nan, 1: math.inf, 2: -math.inf}.get(pattern, value)
            tune.report({"loss": value})

    return scripted


# Every searcher but our tpe, a core behind the same shell as random, gp-ei and the rest (the
# shell is what meets Ray's results; the core only ever sees finite values): one Ray run less.
HOSTILE = [name for name in searchers.available() if name != "tpe"]


@pytest.mark.parametrize("name", HOSTILE)
def test_experiment_survives_hostile_metrics(tmp_path, name):
    if searchers.supports_grid(name):
        space = {
            "x": tune.grid_search([0.1, 0.3, 0.5, 0.9]),
            "k": tune.grid_search([0, 1, 2, 3, 4]),
        }
    else:
        space = {"x": tune.uniform(0.0, 1.0), "k": tune.randint(0, 5)}
    expected = 20 if searchers.supports_grid(name) else 10
    run = run_experiment(
        make_scripted(),
        space,
        metric="loss",
        mode="min",
        searcher=searchers.make_searcher(name, seed=0),
        scheduler=make_scheduler("asha", max_t=MAX_T),
        max_t=MAX_T,
        num_samples=expected,
        max_concurrent=2,
        storage_path=tmp_path,
        name=name,
        verbose=0,
    )
    frame = run.frame
    assert len(frame) == expected
    assert (frame["status"] != "error").all(), frame["error"].tolist()
    # The rows say what happened: bad reports are counted, and a trial stopped right after one
    # keeps NaN as its final metric (it is never ranked, and never the best).
    assert frame["bad_reports"].sum() >= len(frame) // 2
    best = best_row(frame, "min")
    assert best is not None
    assert math.isfinite(best["final_metric"])
    assert math.isfinite(best["best_metric"])
