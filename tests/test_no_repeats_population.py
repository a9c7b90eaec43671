"""pso and genetic do not suggest a config already observed or pending while a new one exists.

Before: on the discrete space of 300 configs below, 5 runs of 100 sequential suggestions repeated
195 (pso) and 271 (genetic) configs: a converged particle sits on the best config, a mutation of
the incumbent lands on a config tried before (the GA checked its current members only). A repeat
is a wasted trial: the same config trained again. The spaces and objective are those of
tests/test_no_repeats.py (gp-ei, tpe, auto), plus a quantized float (a finite mixed space).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import tune
from test_no_repeats import key, objective, space

from searchers import make_searcher

NAMES = ["pso", "genetic"]
SEEDS = range(5)
BUDGET = 100


def space_of(kind: str) -> dict[str, Any]:
    """discrete: 300 configs; mixed: with a continuous float; quantized: with a float of 11
    values (3300 configs, every coordinate discrete)."""
    if kind == "quantized":
        return {**space(False), "lr": tune.quniform(0.0, 1.0, 0.1)}
    return space(kind == "mixed")


def run(
    name: str, seed: int, kind: str, in_flight: int, budget: int = BUDGET
) -> tuple[list[str], list[int]]:
    """The suggestions of ``budget`` trials with ``in_flight`` pending (complete the oldest,
    suggest one), as keys, and the indices of those equal to a config observed or pending."""
    searcher = make_searcher(name, seed=seed)
    searcher.set_search_properties("loss", "min", space_of(kind))
    pending: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    repeats: list[int] = []
    for i in range(budget):
        config = searcher.suggest(str(i))
        assert isinstance(config, dict)
        if key(config) in seen:
            repeats.append(i)
        seen.append(key(config))
        pending[str(i)] = config
        if len(pending) == in_flight:
            oldest = next(iter(pending))
            searcher.on_trial_complete(oldest, {"loss": objective(pending.pop(oldest))})
    return seen, repeats


def best_value(seen: list[str]) -> float:
    return min(objective(json.loads(k)) for k in seen)


@cache
def random_median_best(kind: str, in_flight: int) -> float:
    return float(np.median([best_value(run("random", s, kind, in_flight)[0]) for s in SEEDS]))


def check_not_wandering(name: str, kind: str, in_flight: int, bests: list[float]) -> None:
    """Not bought by wandering off: on the discrete space every run finds the optimum (a=0, b=9,
    kind x); on the others the median best beats random search's over the same seeds."""
    if kind == "discrete":
        assert bests == [0.0] * len(bests), f"{name} missed the optimum: {bests}"
    else:
        reference = random_median_best(kind, in_flight)
        assert np.median(bests) < reference, f"{name}: {bests} vs random's median {reference}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["discrete", "mixed", "quantized"])
def test_sequential_runs_repeat_no_config(name: str, kind: str) -> None:
    runs = [run(name, seed, kind, 1) for seed in SEEDS]
    repeats = {seed: r for seed, (_, r) in zip(SEEDS, runs, strict=True) if r}
    assert not repeats, f"{name} repeated evaluated configs at (seed: suggestions) {repeats}"
    check_not_wandering(name, kind, 1, [best_value(seen) for seen, _ in runs])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["discrete", "quantized"])
def test_with_8_pending_no_suggestion_repeats_an_observed_or_pending_config(
    name: str, kind: str
) -> None:
    runs = [run(name, seed, kind, 8) for seed in SEEDS]
    repeats = {seed: r for seed, (_, r) in zip(SEEDS, runs, strict=True) if r}
    assert not repeats, f"{name} repeated observed or pending configs at {repeats}"
    check_not_wandering(name, kind, 8, [best_value(seen) for seen, _ in runs])


@pytest.mark.parametrize("name", NAMES)
def test_restored_searcher_continues_exactly_without_repeats(name: str, tmp_path: Path) -> None:
    """The configs observed are part of the saved state: the restored searcher suggests what
    the saved one does, and neither repeats a config seen before the save."""
    sp = space_of("discrete")
    saved = make_searcher(name, seed=2)
    saved.set_search_properties("loss", "min", sp)
    seen: list[str] = []

    def step(searcher: Any, trial: str) -> dict[str, Any]:
        config = searcher.suggest(trial)
        assert isinstance(config, dict)
        return dict(config)

    for i in range(40):
        config = step(saved, f"t{i}")
        seen.append(key(config))
        saved.on_trial_complete(f"t{i}", {"loss": objective(config)})
    pending = {f"p{i}": step(saved, f"p{i}") for i in range(3)}  # saved with trials in flight
    seen += [key(c) for c in pending.values()]
    path = str(tmp_path / "state.json")
    saved.save(path)
    restored = make_searcher(name, seed=99)
    restored.set_search_properties("loss", "min", sp)
    restored.restore(path)
    after: list[list[str]] = []
    for searcher in (saved, restored):
        for trial, config in pending.items():
            searcher.on_trial_complete(trial, {"loss": objective(config)})
        keys = []
        for i in range(40):
            config = step(searcher, f"r{i}")
            keys.append(key(config))
            searcher.on_trial_complete(f"r{i}", {"loss": objective(config)})
        after.append(keys)
    assert after[0] == after[1]
    all_keys = seen + after[1]
    assert len(set(all_keys)) == len(all_keys), "a restored searcher repeated a config"

    # A state saved before the observed configs were part of it still loads.
    legacy = saved.get_state()
    del legacy["core"]["observed"]
    old = make_searcher(name, seed=0)
    old.set_search_properties("loss", "min", sp)
    old.set_state(legacy)
    assert isinstance(old.suggest("x"), dict)
