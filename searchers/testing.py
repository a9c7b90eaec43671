"""The conformance suite every registered searcher joins, shipped for searchers added later.

Modelled on Optuna's ``optuna/testing/pytest_samplers.py``: subclass `SearcherTestCase` in a
pytest file and give it the registered name (and options, e.g. a short initial design so that
the checks run in the model phase)::

    import pytest
    import searchers
    from searchers.testing import SearcherTestCase

    searchers.register("my-searcher", make_my_searcher)

    class TestMySearcher(SearcherTestCase):
        @pytest.fixture
        def name(self) -> str:
            return "my-searcher"

Or call the checks directly: ``run_all(name, options)`` raises AssertionError on the first
failure. The searcher is driven through Ray's Searcher protocol without a Ray runtime
(``set_search_properties`` / ``suggest`` / ``on_trial_complete`` / ``save`` / ``restore``) and
must keep it:

- every value in its domain, with the right Python type, for every domain kind Tune offers
  (uniform, loguniform, quniform, qloguniform, randint, lograndint, qrandint, qlograndint,
  choice with odd objects, nested dicts, constants), in both modes;
- the same seed gives the same suggestions;
- NaN, +-inf, a missing or non-numeric metric and errored trials are survived;
- a completion for a trial it never suggested is ignored;
- ``points_to_evaluate`` come first;
- ``save``/``restore`` mid-run with trials pending continues exactly as the uninterrupted one;
- no two identical configs among pending trials (a wrapped library may be a known failure);
- a conditional space (`CONDITIONAL_SPACE`: a choice between dicts with their own domains): each
  config holds its chosen branch's keys only, in their domains; ``points_to_evaluate`` in a later
  branch come first; ``save``/``restore`` with pending trials continues exactly.

A searcher registered with ``grid=True`` gets `GRID_SPACE` (grid axes, no continuous floats).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from ray import tune
from ray.tune.search import Searcher

import searchers

__all__ = [
    "CHECKS",
    "CONDITIONAL_GRID_SPACE",
    "CONDITIONAL_SPACE",
    "GENERIC_SPACE",
    "GRID_SPACE",
    "SMALL_DISCRETE",
    "SearcherTestCase",
    "build",
    "check_bad_results_are_survived",
    "check_conditional_config",
    "check_conditional_space",
    "check_config",
    "check_maximize_mode_in_domain",
    "check_no_duplicate_configs_among_pending",
    "check_points_to_evaluate_come_first",
    "check_same_seed_same_suggestions",
    "check_save_restore_mid_run_with_pending",
    "check_unknown_trial_completion_is_ignored",
    "check_values_in_domain_with_right_types",
    "conditional_objective",
    "conditional_space_for",
    "objective",
    "run",
    "run_all",
    "run_check",
    "space_for",
]

Options = Mapping[str, Any]
Known = Mapping[str, str]

OBJ_CHOICES: list[Any] = [None, 1.5, (1, 2), True]
WIDTHS = [16, 32, 64]

GENERIC_SPACE: dict[str, Any] = {
    "u": tune.uniform(-1.0, 2.0),
    "lu": tune.loguniform(1e-4, 1e-1),
    "qu": tune.quniform(0.2, 1.0, 0.1),
    "qlu": tune.qloguniform(0.01, 1.0, 0.01),
    "ri": tune.randint(0, 4),
    "lri": tune.lograndint(1, 10),
    "qri": tune.qrandint(3, 12, 3),
    "qlri": tune.qlograndint(2, 16, 2),
    "nested": {
        "act": tune.choice(["relu", "tanh"]),
        "opt": {"width": tune.choice(WIDTHS)},
        "name": "mlp",
    },
    "obj": tune.choice(OBJ_CHOICES),
    "const": 7,
    "const_list": [1, 2],
}

GRID_SPACE: dict[str, Any] = {
    "ri": tune.randint(0, 4),
    "qri": tune.qrandint(3, 12, 3),
    "nested": {
        "act": {"grid_search": ["relu", "tanh"]},
        "opt": {"width": tune.choice(WIDTHS)},
        "name": "mlp",
    },
    "obj": tune.choice(OBJ_CHOICES),
    "const": 7,
    "const_list": [1, 2],
}

SMALL_DISCRETE: dict[str, Any] = {"a": tune.choice(["x", "y"]), "b": tune.choice([1, 2, 3])}

#: A conditional space: each branch of "opt" has its own parameters; "nested" holds a choice
#: inside a branch; branch 2 is a plain value.
CONDITIONAL_SPACE: dict[str, Any] = {
    "lr": tune.loguniform(1e-4, 1e-1),
    "opt": tune.choice(
        [
            {"name": "sgd", "momentum": tune.uniform(0.5, 0.99), "nesterov": tune.choice([0, 1])},
            {
                "name": "adam",
                "beta1": tune.quniform(0.8, 0.99, 0.01),
                "inner": tune.choice([{"kind": "a", "k": tune.randint(1, 4)}, {"kind": "b"}]),
            },
            "none",
        ]
    ),
    "const": 7,
}

CONDITIONAL_GRID_SPACE: dict[str, Any] = {
    "layers": tune.randint(1, 3),
    "opt": {
        "grid_search": [
            {"name": "sgd", "momentum": tune.choice([0.5, 0.9]), "nesterov": tune.choice([0, 1])},
            {
                "name": "adam",
                "beta1": tune.quniform(0.8, 0.9, 0.05),
                "inner": tune.choice([{"kind": "a", "k": tune.randint(1, 4)}, {"kind": "b"}]),
            },
            "none",
        ]
    },
    "const": 7,
}


# ---- helpers a test file may reuse -----------------------------------------------------------
def space_for(name: str) -> dict[str, Any]:
    return GRID_SPACE if searchers.supports_grid(name) else GENERIC_SPACE


def build(
    name: str,
    options: Options | None = None,
    *,
    seed: int = 0,
    mode: str = "min",
    space: dict[str, Any] | None = None,
) -> Searcher:
    """``make_searcher(name, seed=seed, **options)`` with its search properties set."""
    searcher = searchers.make_searcher(name, seed=seed, **dict(options or {}))
    assert searcher.set_search_properties("loss", mode, space or space_for(name)) is True
    return searcher


def objective(config: dict[str, Any]) -> float:
    return (
        float(config["ri"])
        + 0.1 * float(config["qri"])
        + (0.0 if config["nested"]["act"] == "relu" else 0.5)
    )


def run(
    searcher: Searcher,
    n: int,
    *,
    prefix: str = "t",
    results: Callable[[int, dict[str, Any]], Any] | None = None,
) -> list[Any]:
    """Suggest and complete ``n`` trials one at a time; returns the suggestions (a non-config
    answer ends the run and is the last element)."""
    out = []
    for i in range(n):
        trial_id = f"{prefix}{i}"
        config = searcher.suggest(trial_id)
        out.append(config)
        if not isinstance(config, dict):
            break
        result = {"loss": objective(config)} if results is None else results(i, config)
        searcher.on_trial_complete(trial_id, result)
    return out


def check_config(config: Any, space: dict[str, Any]) -> None:
    """Every value in its domain, with the right Python type; constants passed through."""
    assert isinstance(config, dict), config
    assert config["const"] == 7
    assert config["const_list"] == [1, 2]
    assert config["nested"]["name"] == "mlp"
    assert config["nested"]["act"] in ("relu", "tanh")
    assert type(config["nested"]["opt"]["width"]) is int
    assert config["nested"]["opt"]["width"] in WIDTHS
    assert any(config["obj"] is choice for choice in OBJ_CHOICES), config["obj"]
    ri, qri = config["ri"], config["qri"]
    assert type(ri) is int
    assert 0 <= ri <= 3
    assert type(qri) is int
    assert qri in (3, 6, 9, 12)
    if space is GRID_SPACE:
        assert set(config) == set(GRID_SPACE)
        return
    assert set(config) == set(GENERIC_SPACE)
    u, lu, qu, qlu = config["u"], config["lu"], config["qu"], config["qlu"]
    for value in (u, lu, qu, qlu):
        assert type(value) is float
    assert -1.0 <= u <= 2.0
    assert 1e-4 <= lu <= 1e-1
    assert 0.2 - 1e-12 <= qu <= 1.0 + 1e-12
    assert _is_multiple(qu, 0.1)
    assert 0.01 - 1e-12 <= qlu <= 1.0 + 1e-12
    assert _is_multiple(qlu, 0.01)
    lri, qlri = config["lri"], config["qlri"]
    assert type(lri) is int
    assert 1 <= lri <= 9
    assert type(qlri) is int
    assert qlri in range(2, 17, 2)


def conditional_space_for(name: str) -> dict[str, Any]:
    return CONDITIONAL_GRID_SPACE if searchers.supports_grid(name) else CONDITIONAL_SPACE


def conditional_objective(config: dict[str, Any]) -> float:
    opt = config["opt"]
    if opt == "none":
        return 2.0
    if opt["name"] == "sgd":
        return 1.0 + abs(opt["momentum"] - 0.9) + 0.1 * opt["nesterov"]
    inner = opt["inner"]
    return abs(opt["beta1"] - 0.9) + (abs(inner["k"] - 2) if inner["kind"] == "a" else 0.5)


def check_conditional_config(config: Any, space: dict[str, Any]) -> None:
    """The chosen branch's keys only, each value in its domain with the right type."""
    assert isinstance(config, dict), config
    assert config["const"] == 7
    if space is CONDITIONAL_GRID_SPACE:
        assert set(config) == {"layers", "opt", "const"}
        assert config["layers"] in (1, 2)
    else:
        assert set(config) == {"lr", "opt", "const"}
        assert type(config["lr"]) is float
        assert 1e-4 <= config["lr"] <= 1e-1
    opt = config["opt"]
    if opt == "none":
        return
    assert isinstance(opt, dict), config
    if opt["name"] == "sgd":
        assert set(opt) == {"name", "momentum", "nesterov"}, config
        assert type(opt["momentum"]) is float
        assert 0.5 <= opt["momentum"] <= 0.99
        assert opt["nesterov"] in (0, 1)
        return
    assert opt["name"] == "adam", config
    assert set(opt) == {"name", "beta1", "inner"}, config
    assert type(opt["beta1"]) is float
    assert 0.8 - 1e-12 <= opt["beta1"] <= 0.99 + 1e-12
    assert _is_multiple(opt["beta1"], 0.01)
    inner = opt["inner"]
    if inner["kind"] == "a":
        assert set(inner) == {"kind", "k"}, config
        assert type(inner["k"]) is int
        assert 1 <= inner["k"] <= 3
    else:
        assert inner == {"kind": "b"}, config


# ---- the checks ------------------------------------------------------------------------------
def check_values_in_domain_with_right_types(name: str, options: Options | None = None) -> None:
    space = space_for(name)
    configs = run(build(name, options), 14)
    assert len(configs) == 14
    for config in configs:
        check_config(config, space)


def check_maximize_mode_in_domain(name: str, options: Options | None = None) -> None:
    for config in run(build(name, options, mode="max", seed=3), 8):
        check_config(config, space_for(name))


def check_same_seed_same_suggestions(name: str, options: Options | None = None) -> None:
    first = run(build(name, options, seed=11), 12)
    second = run(build(name, options, seed=11), 12)
    assert first == second


def check_bad_results_are_survived(name: str, options: Options | None = None) -> None:
    bad: list[tuple[dict[str, Any] | None, bool]] = [
        ({"loss": float("nan")}, False),  # before any finite value: dropped
        (None, True),
        ({"loss": 1.0}, False),
        ({"loss": float("inf")}, False),
        ({"loss": float("-inf")}, False),
        ({"other": 1.0}, False),
        ({"loss": "abc"}, False),
        (None, False),
        ({"loss": 2.0}, True),
        ({"loss": float("nan")}, False),
    ]
    searcher = build(name, options, seed=5)
    for i, (result, error) in enumerate(bad):
        config = searcher.suggest(f"b{i}")
        check_config(config, space_for(name))
        searcher.on_trial_complete(f"b{i}", result, error=error)
    for config in run(searcher, 4, prefix="after"):
        check_config(config, space_for(name))


def check_unknown_trial_completion_is_ignored(name: str, options: Options | None = None) -> None:
    searcher = build(name, options, seed=2)
    searcher.on_trial_complete("never-suggested", {"loss": 1.0})
    searcher.on_trial_complete("never-suggested-2", None, error=True)
    check_config(searcher.suggest("t0"), space_for(name))
    searcher.on_trial_complete("t0", {"loss": 1.0})
    searcher.on_trial_complete("t0", {"loss": 1.0})  # twice: ignored too
    check_config(searcher.suggest("t1"), space_for(name))


def check_points_to_evaluate_come_first(name: str, options: Options | None = None) -> None:
    space = space_for(name)
    base: Any = run(build(name, options, seed=1), 1)[0]
    point = json.loads(json.dumps(base, default=list))  # a plain copy, as a user would write it
    point["obj"] = OBJ_CHOICES[2]
    point["ri"] = 3
    point["nested"]["act"] = "tanh"
    searcher = searchers.make_searcher(
        name, seed=1, points_to_evaluate=[point], **dict(options or {})
    )
    searcher.set_search_properties("loss", "min", space)
    first: Any = searcher.suggest("p0")
    assert first["ri"] == 3
    assert first["nested"]["act"] == "tanh"
    assert first["obj"] == (1, 2)
    check_config(first, space)


def check_save_restore_mid_run_with_pending(name: str, options: Options | None = None) -> None:
    space = space_for(name)
    searcher = build(name, options, seed=4)
    run(searcher, 4)
    pending: dict[str, Any] = {f"p{i}": searcher.suggest(f"p{i}") for i in range(3)}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "searcher.json")
        searcher.save(path)
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        assert state["version"] == 1
        json.dumps(searcher.get_state())  # JSON-serializable
        restored = searchers.make_searcher(name, seed=4, **dict(options or {}))
        restored.set_search_properties("loss", "min", space)
        restored.restore(path)
    # The same next suggestions as the uninterrupted searcher.
    assert restored.suggest("n0") == searcher.suggest("n0")
    assert restored.suggest("n1") == searcher.suggest("n1")
    # Completing the restored pending trials works, and both go on alike.
    for trial_id, config in pending.items():
        restored.on_trial_complete(trial_id, {"loss": objective(config)})
        searcher.on_trial_complete(trial_id, {"loss": objective(config)})
    for s in (restored, searcher):
        s.on_trial_complete("n0", {"loss": 0.5})
        s.on_trial_complete("n1", None, error=True)
    after_restored = restored.suggest("n2")
    assert after_restored == searcher.suggest("n2")
    if after_restored != Searcher.FINISHED:
        check_config(after_restored, space)


def check_no_duplicate_configs_among_pending(name: str, options: Options | None = None) -> None:
    searcher = build(name, options, seed=0, space=SMALL_DISCRETE)
    configs: list[Any] = [searcher.suggest(f"d{i}") for i in range(6)]
    keys = {(c["a"], c["b"]) for c in configs}
    assert len(keys) == 6, configs


def check_conditional_space(name: str, options: Options | None = None) -> None:
    space = conditional_space_for(name)
    point = {"opt": {"name": "adam", "beta1": 0.85, "inner": {"kind": "b"}}, "const": 7}
    point.update({"layers": 2} if space is CONDITIONAL_GRID_SPACE else {"lr": 0.01})
    searcher = searchers.make_searcher(
        name, seed=7, points_to_evaluate=[point], **dict(options or {})
    )
    assert searcher.set_search_properties("loss", "min", space) is True
    first = searcher.suggest("c0")
    assert first == point, first
    searcher.on_trial_complete("c0", {"loss": conditional_objective(point)})
    in_flight: list[tuple[str, Any]] = []
    for i in range(1, 9):
        config = searcher.suggest(f"c{i}")
        check_conditional_config(config, space)
        in_flight.append((f"c{i}", config))
        if len(in_flight) >= 2:  # two trials in flight, the oldest completed first
            trial_id, done = in_flight.pop(0)
            searcher.on_trial_complete(trial_id, {"loss": conditional_objective(done)})
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "searcher.json")
        searcher.save(path)
        restored = searchers.make_searcher(name, seed=7, **dict(options or {}))
        restored.set_search_properties("loss", "min", space)
        restored.restore(path)
    for s in (restored, searcher):
        for trial_id, config in in_flight:
            s.on_trial_complete(trial_id, {"loss": conditional_objective(config)})
    for i in range(3):
        after: Any = restored.suggest(f"r{i}")
        assert after == searcher.suggest(f"r{i}")
        if after == Searcher.FINISHED:
            break
        check_conditional_config(after, space)
        for s in (restored, searcher):
            s.on_trial_complete(f"r{i}", {"loss": conditional_objective(after)})


CHECKS: dict[str, Callable[[str, Options | None], None]] = {
    "values_in_domain": check_values_in_domain_with_right_types,
    "maximize_mode": check_maximize_mode_in_domain,
    "same_seed": check_same_seed_same_suggestions,
    "bad_results": check_bad_results_are_survived,
    "unknown_trial": check_unknown_trial_completion_is_ignored,
    "points_to_evaluate": check_points_to_evaluate_come_first,
    "save_restore": check_save_restore_mid_run_with_pending,
    "no_duplicates": check_no_duplicate_configs_among_pending,
    "conditional": check_conditional_space,
}


def run_all(
    name: str, options: Options | None = None, *, known_failures: Mapping[str, str] | None = None
) -> None:
    """Every check on registered searcher ``name`` (AssertionError on the first that fails).

    ``known_failures``: check name (a key of `CHECKS`) -> why it fails; such a check must fail.
    """
    for check in CHECKS:
        run_check(check, name, options, known_failures or {})


def run_check(
    check: str, name: str, options: Options | None, known_failures: Mapping[str, str]
) -> str | None:
    """Run one check; None when it passed, the reason when it failed as a known failure.

    Strict: a known failure that passes raises, as the searcher (or its library) changed.
    """
    reason = known_failures.get(check)
    if reason is None:
        CHECKS[check](name, options)
        return None
    try:
        CHECKS[check](name, options)
    except AssertionError:
        return reason
    raise AssertionError(f"{name}: check {check!r} passed although listed as failing: {reason}")


# ---- pytest --------------------------------------------------------------------------------
class SearcherTestCase:
    """Subclass in a test file and override the ``name`` fixture (and ``options``,
    ``known_failures`` if needed); each check is one test."""

    @pytest.fixture
    def name(self) -> str:
        raise NotImplementedError("override the 'name' fixture with a registered searcher name")

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        """Options passed to ``make_searcher`` (e.g. a short initial design)."""
        return {}

    @pytest.fixture
    def known_failures(self) -> dict[str, str]:
        """Check name -> why this searcher cannot pass it; the check must then fail (strict)."""
        return {}

    def test_values_in_domain_with_right_types(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("values_in_domain", name, options, known_failures)

    def test_maximize_mode_in_domain(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("maximize_mode", name, options, known_failures)

    def test_same_seed_same_suggestions(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("same_seed", name, options, known_failures)

    def test_bad_results_are_survived(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("bad_results", name, options, known_failures)

    def test_unknown_trial_completion_is_ignored(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("unknown_trial", name, options, known_failures)

    def test_points_to_evaluate_come_first(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("points_to_evaluate", name, options, known_failures)

    def test_save_restore_mid_run_with_pending(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("save_restore", name, options, known_failures)

    def test_no_duplicate_configs_among_pending(
        self, name: str, options: Options, known_failures: Known
    ) -> None:
        _check("no_duplicates", name, options, known_failures)

    def test_conditional_space(self, name: str, options: Options, known_failures: Known) -> None:
        _check("conditional", name, options, known_failures)


def _check(check: str, name: str, options: Options, known_failures: Known) -> None:
    reason = run_check(check, name, options, known_failures)
    if reason is not None:
        pytest.xfail(reason)


def _is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)
