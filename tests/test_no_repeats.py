"""gp-ei, auto and tpe do not suggest a config already observed or pending while a new one exists.

Before: on a discrete space of 300 configs with a deterministic objective, gp-ei suggested an
already evaluated config 38 to 46 times in 60 suggestions (EI stays positive at the incumbent when
the model allows noise) and auto 37 times (GP-Hedge credited the member repeating the incumbent
most). A repeat is a wasted trial: the same config trained again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ray import tune

from searchers import make_searcher

KIND = {"x": 0.0, "y": 0.3, "z": 0.6}


def objective(c: dict[str, Any]) -> float:
    """Smooth in the ints, best at a corner (a=0, b=9, kind x, lr=0)."""
    return (
        (c["a"] / 9.0) ** 2 + ((9 - c["b"]) / 9.0) ** 2 + KIND[c["kind"]] + 0.1 * c.get("lr", 0.0)
    )


def space(with_float: bool) -> dict[str, Any]:
    out = {
        "a": tune.randint(0, 10),
        "b": tune.randint(0, 10),
        "kind": tune.choice(list(KIND)),
    }
    if with_float:
        out["lr"] = tune.uniform(0.0, 1.0)  # its optimum on the bound: a repeat there is exact
    return out


def key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


@pytest.mark.parametrize("name", ["gp-ei", "auto", "tpe"])
@pytest.mark.parametrize("with_float", [False, True], ids=["discrete", "mixed"])
def test_sequential_run_repeats_no_config(name: str, with_float: bool) -> None:
    searcher = make_searcher(name, seed=0)
    searcher.set_search_properties("loss", "min", space(with_float))
    seen: list[str] = []
    for i in range(50):
        config = searcher.suggest(str(i))
        assert isinstance(config, dict)
        seen.append(key(config))
        searcher.on_trial_complete(str(i), {"loss": objective(config)})
    repeats = len(seen) - len(set(seen))
    assert repeats == 0, f"{name} suggested {repeats} configs it had already evaluated"
    # Not bought by wandering off: the best config found is the discrete optimum.
    best = min((json.loads(k) for k in seen), key=objective)
    assert (best["a"], best["b"], best["kind"]) == (0, 9, "x")


@pytest.mark.parametrize("name", ["gp-ei", "auto", "tpe"])
def test_with_pending_no_suggestion_repeats_an_observed_or_pending_config(name: str) -> None:
    searcher = make_searcher(name, seed=1)
    searcher.set_search_properties("loss", "min", space(False))
    pending: dict[str, dict[str, Any]] = {}
    seen: list[str] = []
    for i in range(48):
        config = searcher.suggest(str(i))
        assert isinstance(config, dict)
        assert key(config) not in seen, f"suggestion {i} repeats a config observed or pending"
        seen.append(key(config))
        pending[str(i)] = config
        if len(pending) == 4:  # 4 in flight: complete the oldest
            oldest = next(iter(pending))
            searcher.on_trial_complete(oldest, {"loss": objective(pending.pop(oldest))})


@pytest.mark.parametrize("name", ["gp-ei", "auto", "tpe", "pso", "genetic"])
def test_exhausted_space_still_suggests(name: str) -> None:
    """Six configs, ten trials: once every config is seen a repeat is the only answer."""
    searcher = make_searcher(name, seed=0)
    searcher.set_search_properties(
        "loss", "min", {"a": tune.randint(0, 3), "kind": tune.choice(["x", "y"])}
    )
    seen = []
    for i in range(10):
        config = searcher.suggest(str(i))
        assert isinstance(config, dict)
        seen.append(key(config))
        searcher.on_trial_complete(str(i), {"loss": config["a"] + KIND[config["kind"]]})
    assert len(set(seen[:6])) == 6  # every config once before any repeat
