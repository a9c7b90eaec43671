"""Conformance suite: every registered searcher, driven through Ray's Searcher protocol without a
Ray runtime (set_search_properties / suggest / on_trial_complete / save / restore).

One fixture (``name``) joins each searcher; the grid searcher gets a grid space where the generic
space (continuous floats) does not apply to it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from ray import tune
from ray.tune.search import Searcher

import searchers
from searchers import make_searcher

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

SMALL_DISCRETE = {"a": tune.choice(["x", "y"]), "b": tune.choice([1, 2, 3])}

# Properties a wrapped library cannot give; strict, so a change in the library shows up.
XFAIL: dict[tuple[str, str], str] = {
    ("hyperopt-tpe", "no_duplicates"): "HyperOpt's TPE does not condition on pending trials",
    ("optuna-gp", "no_duplicates"): "Optuna's GPSampler does not condition on pending trials",
    ("optuna-tpe", "no_duplicates"): "TPESampler draws its first n_startup_trials at random, "
    "blind to pending trials (its constant liar starts after them)",
    ("optuna-cmaes", "no_duplicates"): "CmaEsSampler samples categoricals independently "
    "(RandomSampler), blind to pending trials",
}


def _params(prop: str) -> list[Any]:
    out = []
    for name in searchers.available():
        reason = XFAIL.get((name, prop))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.fixture(params=searchers.available())
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def space_for(name: str) -> dict[str, Any]:
    return GRID_SPACE if searchers.supports_grid(name) else GENERIC_SPACE


def build(name: str, *, seed: int = 0, mode: str = "min", space: dict[str, Any] | None = None,
          **options: Any) -> Searcher:
    searcher = make_searcher(name, seed=seed, **options)
    assert searcher.set_search_properties("loss", mode, space or space_for(name)) is True
    return searcher


def objective(config: dict[str, Any]) -> float:
    return float(config["ri"]) + 0.1 * float(config["qri"]) + (
        0.0 if config["nested"]["act"] == "relu" else 0.5
    )


def _is_multiple(value: float, q: float) -> bool:
    return math.isclose(value / q, round(value / q), abs_tol=1e-9)


def check_config(config: dict[str, Any], space: dict[str, Any]) -> None:
    """Every value in its domain, with the right Python type; constants passed through."""
    assert isinstance(config, dict)
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


def run(searcher: Searcher, n: int, *, prefix: str = "t", results: Any = None) -> list[Any]:
    """Suggest and complete ``n`` trials one at a time; returns the suggestions."""
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


def test_values_in_domain_with_right_types(name: str) -> None:
    space = space_for(name)
    searcher = build(name)
    configs = run(searcher, 14)
    assert len(configs) == 14
    for config in configs:
        check_config(config, space)


def test_maximize_mode_in_domain(name: str) -> None:
    searcher = build(name, mode="max", seed=3)
    for config in run(searcher, 8):
        check_config(config, space_for(name))


def test_same_seed_same_suggestions(name: str) -> None:
    first = run(build(name, seed=11), 12)
    second = run(build(name, seed=11), 12)
    assert first == second


def test_bad_results_are_survived(name: str) -> None:
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
    searcher = build(name, seed=5)
    for i, (result, error) in enumerate(bad):
        config = searcher.suggest(f"b{i}")
        check_config(config, space_for(name))
        searcher.on_trial_complete(f"b{i}", result, error=error)
    for config in run(searcher, 4, prefix="after"):
        check_config(config, space_for(name))


def test_unknown_trial_completion_is_ignored(name: str) -> None:
    searcher = build(name, seed=2)
    searcher.on_trial_complete("never-suggested", {"loss": 1.0})
    searcher.on_trial_complete("never-suggested-2", None, error=True)
    check_config(searcher.suggest("t0"), space_for(name))
    searcher.on_trial_complete("t0", {"loss": 1.0})
    searcher.on_trial_complete("t0", {"loss": 1.0})  # twice: ignored too


def test_points_to_evaluate_come_first(name: str) -> None:
    space = space_for(name)
    base = run(build(name, seed=1), 1)[0]
    point = json.loads(json.dumps(base, default=list))  # a plain copy, as a user would write it
    point["obj"] = OBJ_CHOICES[2]
    point["ri"] = 3
    point["nested"]["act"] = "tanh"
    searcher = make_searcher(name, seed=1, points_to_evaluate=[point])
    searcher.set_search_properties("loss", "min", space)
    first = searcher.suggest("p0")
    assert first["ri"] == 3
    assert first["nested"]["act"] == "tanh"
    assert first["obj"] == (1, 2)
    check_config(first, space)


def test_save_restore_mid_run_with_pending(name: str, tmp_path: Any) -> None:
    space = space_for(name)
    searcher = build(name, seed=4)
    run(searcher, 4)
    pending = {f"p{i}": searcher.suggest(f"p{i}") for i in range(3)}
    path = tmp_path / "searcher.json"
    searcher.save(str(path))
    state = json.loads(path.read_text())
    assert state["version"] == 1
    json.dumps(searcher.get_state())  # JSON-serializable

    restored = make_searcher(name, seed=4)
    restored.set_search_properties("loss", "min", space)
    restored.restore(str(path))
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


@pytest.mark.parametrize("name", _params("no_duplicates"))
def test_no_duplicate_configs_among_pending(name: str) -> None:
    searcher = build(name, seed=0, space=SMALL_DISCRETE)
    configs = [searcher.suggest(f"d{i}") for i in range(6)]
    keys = {(c["a"], c["b"]) for c in configs}
    assert len(keys) == 6, configs


# ---- save/restore in the model phase, restored in a fresh process -----------------------------

# Options that end each searcher's initial design after a few points, so the steps below run in
# its model phase (Optuna's own tests build GPSampler(n_startup_trials=0) for the same reason).
MODEL_PHASE: dict[str, dict[str, Any]] = {
    "gp-ei": {"n_initial": 3},
    "pso": {"n_particles": 4},
    "genetic": {"population_size": 4},
    "optuna-tpe": {"n_startup_trials": 2},
    "optuna-gp": {"n_startup_trials": 2},
    "optuna-cmaes": {"n_startup_trials": 2},
    "hyperopt-tpe": {"n_initial_points": 2},
}
# Completions before the save: past every initial design above. Optuna's GP costs ~0.5-1 s of
# CPU per suggestion in this 12-parameter space, so it gets one model step before the save (its
# pending and later suggestions are model steps too).
MODEL_STEPS: dict[str, int] = {"optuna-gp": 3}
DEFAULT_MODEL_STEPS = 8
AFTER_STEPS = 2  # suggestions compared after the restore
RESTORE_SEED = 6


def model_phase_searcher(name: str) -> Searcher:
    return build(name, seed=RESTORE_SEED, **MODEL_PHASE.get(name, {}))


def continue_after_pending(
    searcher: Searcher, pending_losses: dict[str, float]
) -> list[Any]:
    """Complete the pending trials with ``pending_losses``, then suggest and complete
    ``AFTER_STEPS`` more; returns those suggestions (as ``repr``: exact, tuples stay tuples)."""
    for trial_id, loss in pending_losses.items():
        searcher.on_trial_complete(trial_id, {"loss": loss})
    return [repr(config) for config in run(searcher, AFTER_STEPS, prefix="after")]


def _restore_in_this_process(spec_path: str, out_path: str) -> None:
    """Run in the fresh process: restore each saved searcher and continue it as the parent did."""
    import pickle
    import traceback

    import torch

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    out: dict[str, Any] = {}
    for name, job in spec.items():
        try:
            restored = make_searcher(name, seed=RESTORE_SEED, **MODEL_PHASE.get(name, {}))
            restored.set_search_properties("loss", "min", space_for(name))
            restored.restore(job["state"])
            out[name] = continue_after_pending(restored, job["pending_losses"])
        except Exception:  # reported per searcher by its own test case
            out[name] = f"restore failed in the fresh process:\n{traceback.format_exc()}"
    Path(out_path).write_bytes(pickle.dumps(out))


@pytest.fixture(scope="module")
def fresh_process_restores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """For every searcher: (suggestions of an uninterrupted twin, suggestions of the saved one
    restored in a new Python process). One process restores them all (starting Python with Ray
    and the libraries costs seconds)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Optuna's GP: a thread pool only spins on 2 loaded cores
    try:
        return _fresh_process_restores(tmp_path_factory.mktemp("fresh-restore"))
    finally:
        torch.set_num_threads(threads)


def _fresh_process_restores(directory: Path) -> dict[str, Any]:
    import pickle
    import subprocess
    import sys

    spec: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for name in searchers.available():
        saved, twin = model_phase_searcher(name), model_phase_searcher(name)
        for searcher in (saved, twin):
            run(searcher, MODEL_STEPS.get(name, DEFAULT_MODEL_STEPS))
        pending = {f"p{i}": saved.suggest(f"p{i}") for i in range(2)}
        assert {f"p{i}": twin.suggest(f"p{i}") for i in range(2)} == pending
        state = directory / f"{name}.json"
        saved.save(str(state))
        losses = {tid: objective(config) for tid, config in pending.items()}
        spec[name] = {"state": str(state), "pending_losses": losses}
        expected[name] = continue_after_pending(twin, losses)
    spec_path, out_path = directory / "spec.json", directory / "out.pkl"
    spec_path.write_text(json.dumps(spec))
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import test_searchers_conformance as suite; "
        f"suite._restore_in_this_process({str(spec_path)!r}, {str(out_path)!r})"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    restored = pickle.loads(out_path.read_bytes())
    return {name: (expected[name], restored[name]) for name in expected}


def test_restore_in_a_fresh_process_in_the_model_phase(
    name: str, fresh_process_restores: dict[str, Any]
) -> None:
    expected, restored = fresh_process_restores[name]
    assert isinstance(restored, list), restored
    assert len(expected) == AFTER_STEPS
    assert restored == expected
