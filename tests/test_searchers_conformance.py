"""Conformance suite: every registered searcher runs `searchers.testing` (the shipped suite),
in its initial design and in its model phase, plus a save/restore into a fresh process.

The checks themselves live in `searchers.testing`, so that a searcher added with
``searchers.register`` can run them too (`tests/test_searchers_testing.py` does, for a tiny one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

import searchers
from searchers.testing import SearcherTestCase, build, objective, run, space_for

# Options that end each searcher's initial design after a few points, so the checks run in its
# model phase (Optuna's own tests build GPSampler(n_startup_trials=0) for the same reason).
MODEL_PHASE: dict[str, dict[str, Any]] = {
    "gp-ei": {"n_initial": 2},
    "pso": {"n_particles": 4},
    "genetic": {"population_size": 4},
    "optuna-tpe": {"n_startup_trials": 2},
    "optuna-gp": {"n_startup_trials": 2},
    "optuna-cmaes": {"n_startup_trials": 2},
    "hyperopt-tpe": {"n_initial_points": 2},
    "tpe": {"n_startup": 2},
    "auto": {
        "n_initial": 2,
        "member_options": {
            "gp-ei": {"n_initial": 2},
            "pso": {"n_particles": 4},
            "genetic": {"population_size": 4},
            "tpe": {"n_startup": 2},
        },
    },
}

# Checks a wrapped library cannot pass, by (searcher, phase); strict, so a change in the library
# shows up.
KNOWN_FAILURES: dict[tuple[str, str], dict[str, str]] = {
    ("hyperopt-tpe", "initial"): {
        "no_duplicates": "HyperOpt's TPE does not condition on pending trials",
    },
    ("optuna-gp", "initial"): {
        "no_duplicates": "Optuna's GPSampler does not condition on pending trials",
    },
    ("optuna-tpe", "initial"): {
        "no_duplicates": "TPESampler draws its first n_startup_trials at random, blind to pending "
        "trials (its constant liar starts after them)",
    },
    ("optuna-cmaes", "initial"): {
        "no_duplicates": "CmaEsSampler samples categoricals independently (RandomSampler), blind "
        "to pending trials",
    },
    # The check completes no trial, so a library never leaves its random startup draws, which
    # are blind to pending trials (ours condition on them from the first suggestion).
    **{
        (name, "model"): {
            "no_duplicates": "with no trial completed the library draws its startup points at "
            "random, blind to pending trials",
        }
        for name in ("hyperopt-tpe", "optuna-gp", "optuna-tpe", "optuna-cmaes")
    },
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Optuna's GP: a torch thread pool only spins on 2 loaded cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TestRegisteredSearchers(SearcherTestCase):
    """Every registered searcher, with its default options ("initial") and with a short initial
    design ("model")."""

    @pytest.fixture(params=searchers.available())
    def name(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture(params=["initial", "model"])
    def phase(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def options(self, name: str, phase: str) -> dict[str, Any]:
        if phase == "model" and name not in MODEL_PHASE:
            pytest.skip(f"{name} has no model phase")
        return MODEL_PHASE.get(name, {}) if phase == "model" else {}

    @pytest.fixture
    def known_failures(self, name: str, phase: str) -> dict[str, str]:
        return KNOWN_FAILURES.get((name, phase), {})


def test_every_registered_searcher_with_a_model_has_model_phase_options() -> None:
    no_model = {"random", "grid"}
    assert set(MODEL_PHASE) == set(searchers.available()) - no_model


# ---- save/restore in the model phase, restored in a fresh process -----------------------------

# Completions before the save: past every initial design above. Optuna's GP costs ~0.5-1 s of
# CPU per suggestion in this 12-parameter space, so it gets one model step before the save (its
# pending and later suggestions are model steps too).
MODEL_STEPS: dict[str, int] = {"optuna-gp": 3}
DEFAULT_MODEL_STEPS = 8
AFTER_STEPS = 2  # suggestions compared after the restore
RESTORE_SEED = 6


def model_phase_searcher(name: str) -> Searcher:
    return build(name, MODEL_PHASE.get(name, {}), seed=RESTORE_SEED)


def continue_after_pending(searcher: Searcher, pending_losses: dict[str, float]) -> list[Any]:
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
            restored = searchers.make_searcher(
                name, seed=RESTORE_SEED, **MODEL_PHASE.get(name, {})
            )
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
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    restored = pickle.loads(out_path.read_bytes())
    return {name: (expected[name], restored[name]) for name in expected}


@pytest.mark.parametrize("name", searchers.available())
def test_restore_in_a_fresh_process_in_the_model_phase(
    name: str, fresh_process_restores: dict[str, Any]
) -> None:
    expected, restored = fresh_process_restores[name]
    assert isinstance(restored, list), restored
    assert len(expected) == AFTER_STEPS
    assert restored == expected
