"""Registry, option and space-error behaviour of `searchers`, and the grid searcher's order."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.sample import Float, Integer
from sklearn.model_selection import ParameterGrid

import searchers
from searchers import make_searcher
from searchers.adapters import RandomSearcher
from searchers.base import BaseSearcher
from searchers.space import path_name

NAMES = [
    "auto",
    "genetic",
    "gp-ei",
    "grid",
    "hyperopt-tpe",
    "optuna-cmaes",
    "optuna-gp",
    "optuna-tpe",
    "pso",
    "random",
    "tpe",
]


def test_available_and_supports_grid() -> None:
    assert searchers.available() == NAMES
    assert searchers.supports_grid("grid")
    assert not any(searchers.supports_grid(n) for n in NAMES if n != "grid")


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="unknown searcher 'bohb'") as info:
        make_searcher("bohb")
    for name in NAMES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="available"):
        searchers.supports_grid("nope")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_names_the_option(name: str) -> None:
    with pytest.raises(TypeError, match="'n_bananas'"):
        make_searcher(name, seed=0, n_bananas=3)


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [
        ("hyperopt-tpe", "n_initial_points", 3),
        ("optuna-tpe", "n_startup_trials", 3),
        ("optuna-gp", "n_startup_trials", 3),
        ("optuna-cmaes", "popsize", 4),
        ("random", "duplicate_retries", 2),
        ("grid", "max_axis_values", 8),
    ],
)
def test_known_options_pass_through(name: str, option: str, value: Any) -> None:
    space = {"x": tune.randint(0, 8), "c": tune.choice(["a", "b"])}
    searcher = make_searcher(name, seed=0, **{option: value})
    searcher.set_search_properties("loss", "min", space)
    config = searcher.suggest("t0")
    assert 0 <= config["x"] < 8


def test_wrapped_sampler_options_reach_the_sampler() -> None:
    searcher = make_searcher("optuna-tpe", seed=0, n_startup_trials=3)
    searcher.set_search_properties("loss", "min", {"x": tune.uniform(0, 1)})
    searcher.suggest("t0")
    assert searcher._inner._ot_study.sampler._n_startup_trials == 3  # type: ignore[attr-defined]


def test_register_a_new_searcher() -> None:
    def factory(*, seed: int | None = None, flavour: str = "plain") -> Searcher:
        return RandomSearcher(seed=seed)

    searchers.register("test-only", factory)
    try:
        assert "test-only" in searchers.available()
        assert isinstance(make_searcher("test-only", seed=1, flavour="x"), RandomSearcher)
        with pytest.raises(TypeError, match="'colour'"):
            make_searcher("test-only", colour="red")
    finally:
        searchers._REGISTRY.pop("test-only")


# ---- grid -----------------------------------------------------------------------------------
GRID = {
    "zeta": {"grid_search": [3, 1, 2]},
    "alpha": tune.choice(["b", "a"]),
    "model": {"depth": tune.randint(1, 4), "act": {"grid_search": ["relu", "tanh"]}},
    "model_x": tune.qrandint(0, 4, 2),
    "const": 5,
}


def _flat(config: dict[str, Any], prefix: tuple[Any, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, (*prefix, key)))
        else:
            out[path_name((*prefix, key))] = value
    return out


def test_grid_order_equals_sklearn_parameter_grid() -> None:
    expected = list(
        ParameterGrid(
            {
                "zeta": [3, 1, 2],
                "alpha": ["b", "a"],
                "model/depth": [1, 2, 3],
                "model/act": ["relu", "tanh"],
                "model_x": [0, 2, 4],
            }
        )
    )
    searcher = make_searcher("grid")
    searcher.set_search_properties("loss", "min", GRID)
    assert searcher.grid_size == len(expected) == 108
    got = []
    for i in range(len(expected)):
        config = searcher.suggest(str(i))
        assert config["const"] == 5
        got.append({k: v for k, v in _flat(config).items() if k != "const"})
        searcher.on_trial_complete(str(i), {"loss": float(i)})
    assert got == expected
    assert searcher.suggest("last") == Searcher.FINISHED


def test_grid_finished_even_with_pending_and_completion_still_works() -> None:
    searcher = make_searcher("grid", space={"a": {"grid_search": [1, 2]}}, metric="m", mode="max")
    assert searcher.suggest("0") == {"a": 1}
    assert searcher.suggest("1") == {"a": 2}
    assert searcher.suggest("2") == Searcher.FINISHED
    searcher.on_trial_complete("0", {"m": 1.0})
    searcher.on_trial_complete("1", {"m": float("nan")})
    assert searcher.suggest("3") == Searcher.FINISHED


def test_grid_refuses_continuous_and_large_axes() -> None:
    with pytest.raises(ValueError, match=r"'opt/lr'.*continuous.*searcher='random'"):
        make_searcher("grid").set_search_properties(
            "loss", "min", {"opt": {"lr": tune.loguniform(1e-4, 1e-1)}}
        )
    with pytest.raises(ValueError, match=r"'n'.*100 values.*grid_search"):
        make_searcher("grid").set_search_properties("loss", "min", {"n": tune.randint(0, 100)})
    searcher = make_searcher("grid", max_axis_values=100)
    searcher.set_search_properties("loss", "min", {"n": tune.randint(0, 100)})
    assert searcher.grid_size == 100


# ---- bad spaces name the parameter ------------------------------------------------------------
def _log_domain(domain_cls: Any, lower: Any, upper: Any) -> Any:
    """A log domain with bounds Ray's own constructors refuse (as a hand-built domain can have)."""
    domain = domain_cls(lower, upper)
    domain.set_sampler(domain_cls._LogUniform())
    return domain


BAD_SPACES = [
    ({"opt": {"lr": tune.randn(0, 1)}}, r"'opt/lr'.*randn.*tune\.uniform"),
    ({"opt": {"lr": tune.qrandn(0, 1, 0.1)}}, r"'opt/lr'.*randn"),
    ({"f": tune.sample_from(lambda spec: 1)}, r"'f'.*sample_from"),
    ({"g": {"grid_search": [1, 2]}}, r"'g'.*grid_search.*searcher='grid'.*tune\.choice"),
    ({"c": tune.choice([])}, r"'c'.*no choices"),
    ({"i": tune.randint(5, 5)}, r"'i'.*lower bound 5 must be below upper bound 5"),
    ({"x": tune.uniform(2.0, 1.0)}, r"'x'.*lower bound 2.0 must be below"),
    ({"m": {"w": _log_domain(Integer, 0, 10)}}, r"'m/w'.*log scale needs bounds > 0"),
    ({"lr": _log_domain(Float, -1.0, 1.0)}, r"'lr'.*log scale needs bounds > 0"),
    ({"q": tune.qrandint(1, 2, 5)}, r"'q'.*no multiple of q=5"),
    ({"layers": [tune.randint(1, 3), 4]}, r"'layers'.*inside a list"),
    ({"c": tune.choice([[tune.uniform(0, 1)], 2])}, r"'c\[0\]'.*inside a list"),
]


@pytest.mark.parametrize("name", [n for n in NAMES if n != "grid"])
@pytest.mark.parametrize(("space", "pattern"), BAD_SPACES)
def test_bad_space_errors_name_the_parameter(name: str, space: Any, pattern: str) -> None:
    searcher = make_searcher(name, seed=0)
    with pytest.raises(ValueError, match=pattern):
        searcher.set_search_properties("loss", "min", space)


def test_bad_metric_mode_and_seed() -> None:
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        make_searcher("random", mode="maximize")
    with pytest.raises(TypeError, match="seed"):
        make_searcher("random", seed="1")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="set_search_properties"):
        make_searcher("random").suggest("t")


def test_points_to_evaluate_outside_domain_name_the_parameter() -> None:
    searcher = make_searcher("random", points_to_evaluate=[{"n": 10}])
    with pytest.raises(ValueError, match=r"'n'.*10.*\[0, 9\]"):
        searcher.set_search_properties("loss", "min", {"n": tune.randint(0, 10)})


# ---- random: exhaustion, state ------------------------------------------------------------
def test_random_small_space_waits_when_every_config_is_in_flight() -> None:
    space = {"a": tune.choice(["x", "y"]), "b": tune.choice([1, 2, 3])}
    searcher = make_searcher("random", seed=0, space=space, metric="m", mode="min")
    configs = [searcher.suggest(str(i)) for i in range(6)]
    assert len({(c["a"], c["b"]) for c in configs}) == 6
    assert searcher.suggest("6") is None
    searcher.on_trial_complete("2", {"m": 1.0})
    assert searcher.suggest("7") == configs[2]


def test_constants_only_space() -> None:
    searcher = make_searcher("random", seed=0, space={"c": 1}, metric="m", mode="min")
    assert searcher.suggest("0") == {"c": 1}
    assert searcher.suggest("1") is None
    searcher.on_trial_complete("0", {"m": 1.0})
    assert searcher.suggest("2") == {"c": 1}


def test_restore_before_search_properties_and_version_checks(tmp_path: Any) -> None:
    space = {"x": tune.uniform(0, 1), "n": tune.randint(0, 100)}
    first = make_searcher("random", seed=3)
    first.set_search_properties("loss", "max", space)
    first.suggest("a")
    path = tmp_path / "s.json"
    first.save(str(path))
    assert [p for p in os.listdir(tmp_path) if p != "s.json"] == []  # no temp file left

    second = make_searcher("random")  # different (unset) seed: the state decides
    second.restore(str(path))  # before Tune passes the space: applied once it does
    second.set_search_properties("loss", "max", space)
    assert second.suggest("b") == first.suggest("b")
    assert isinstance(second, BaseSearcher)
    assert "a" in second.pending_trials

    state = json.loads(path.read_text())
    with pytest.raises(ValueError, match="version"):
        make_searcher("random").set_state({**state, "version": 99})
    with pytest.raises(ValueError, match="saved by searcher 'random'"):
        make_searcher("grid").set_state(state)
    other = make_searcher("random")
    other.set_search_properties("loss", "max", {"x": tune.uniform(0, 2)})
    with pytest.raises(ValueError, match="different search space"):
        other.set_state(state)


def test_bad_result_imputation_reaches_the_core() -> None:
    """Worst finite value imputed; nothing finite yet -> dropped (observed via the core)."""
    told: list[tuple[list[float], float]] = []
    searcher = make_searcher(
        "random", seed=0, space={"x": tune.uniform(0, 1)}, metric="m", mode="max"
    )
    core = searcher._core  # type: ignore[attr-defined]
    core.tell = lambda u, value: told.append((list(u), value))
    for i, result in enumerate(
        [{"m": float("nan")}, {"m": 2.0}, {"m": 5.0}, {"m": float("inf")}, {}, {"m": "x"}]
    ):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), result)
    assert [v for _, v in told] == [-2.0, -5.0, -2.0, -2.0, -2.0]  # minimized: -metric


@pytest.mark.parametrize("name", ["hyperopt-tpe", "optuna-tpe"])
def test_wrapped_library_never_sees_bad_values(name: str) -> None:
    searcher = make_searcher(name, seed=0, space={"x": tune.uniform(0, 1)}, metric="m", mode="min")
    results: list[Any] = [{"m": float("nan")}, {"m": 1.0}, {"m": float("inf")}, {}, None]
    for i, result in enumerate(results):
        searcher.suggest(str(i))
        searcher.on_trial_complete(str(i), result, error=result is None)
    inner = searcher._inner  # type: ignore[attr-defined]
    if name == "optuna-tpe":
        trials = inner._ot_study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        values = [t.value for t in trials]
        assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"]
        assert values == [None, 1.0, 1.0, 1.0, 1.0]
    else:
        from hyperopt.base import JOB_STATE_DONE, JOB_STATE_ERROR

        trials = inner._hpopt_trials._dynamic_trials  # .trials hides errored ones
        assert [t["state"] for t in trials] == [JOB_STATE_ERROR] + [JOB_STATE_DONE] * 4
        assert [t["result"].get("loss") for t in trials] == [None, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["hyperopt-tpe", "optuna-tpe", "optuna-gp", "optuna-cmaes"])
def test_wrapped_edges_follow_rays_samplers(name: str) -> None:
    """Where Ray's own converters disagree with Ray's samplers, the wrapped searchers follow the
    samplers: qrandint includes its upper bound and snaps to multiples of q, qlograndint and
    qloguniform keep their quantization."""
    options = {"n_startup_trials": 100} if name == "optuna-gp" else {}  # random phase: fast
    space = {
        "a": tune.qrandint(0, 6, 2),
        "b": tune.qrandint(1, 10, 3),
        "c": tune.qlograndint(2, 16, 2),
        "d": tune.qloguniform(0.01, 1.0, 0.01),
    }
    searcher = make_searcher(name, seed=0, space=space, metric="m", mode="min", **options)
    seen_a = set()
    for i in range(30):
        config = searcher.suggest(str(i))
        seen_a.add(config["a"])
        assert config["b"] in (3, 6, 9)
        assert config["c"] in range(2, 17, 2)
        assert abs(config["d"] / 0.01 - round(config["d"] / 0.01)) < 1e-9
        assert 0.01 <= config["d"] <= 1.0
        searcher.on_trial_complete(str(i), {"m": float(config["a"])})
    assert seen_a == {0, 2, 4, 6}
