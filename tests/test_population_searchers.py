"""The population cores (`searchers.pso`, `searchers.genetic`) alone, then inside a real Tuner.

The shared conformance suite (tests/test_searchers_conformance.py) covers both searchers' Ray
protocol; here: bounds without piling, per-completion (asynchronous) updates, stagnation restart,
step-size adaptation, duplicate rejection, seeding, exact state round trips.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from asha_runs import check_asha_cut, run_asha
from ray import tune

from searchers.genetic import GAOptions, GeneticAlgorithm
from searchers.population import QuasiRandom, reflect
from searchers.pso import ParticleSwarm, PSOOptions
from searchers.space import Lattice, SearchSpace
from searchers.tune_domains import from_ray

FLOAT_SPACE = from_ray({f"x{i}": tune.uniform(0.0, 1.0) for i in range(4)})
MIXED_SPACE = from_ray(
    {
        "lr": tune.loguniform(1e-5, 1.0),
        "layers": tune.randint(1, 9),
        "units": tune.lograndint(16, 513),
        "opt": tune.choice(["sgd", "adam", "momentum"]),
    }
)
SMALL_DISCRETE = from_ray({"a": tune.choice(["x", "y"]), "b": tune.choice([1, 2, 3])})

Core = ParticleSwarm | GeneticAlgorithm


def make_core(kind: str, space: SearchSpace, seed: int = 0, **options: Any) -> Core:
    rng = np.random.default_rng(seed)
    if kind == "pso":
        return ParticleSwarm(space, rng=rng, options=PSOOptions(**options))
    return GeneticAlgorithm(space, rng=rng, options=GAOptions(**options))


def drive(core: Core, f: Any, n: int, *, k: int = 1) -> list[np.ndarray]:
    """Ask/tell ``n`` points with ``k`` in flight (FIFO), as the base does; returns the asks."""
    asked: list[np.ndarray] = []
    flight: list[np.ndarray] = []
    while len(asked) < n or flight:
        while len(flight) < k and len(asked) < n:
            pending = np.array(flight).reshape(len(flight), core.dim)  # (k_now, dim)
            u = core.ask(pending)
            assert u is not None
            asked.append(u)
            flight.append(u)
        u = flight.pop(0)
        core.tell(u, float(f(u)))
    return asked


def snapped_round_trip(space: SearchSpace, u: np.ndarray) -> np.ndarray:
    """The point the base tells back for an asked ``u``."""
    return space.to_unit(space.from_unit(u))


# ---- shared pieces -----------------------------------------------------------------------------


def test_reflect_folds_into_the_cube_without_touching_bounds() -> None:
    x = np.array([-0.25, 1.25, 2.5, -3.75, 0.5])
    assert np.allclose(reflect(x), [0.25, 0.75, 0.5, 0.25, 0.5])


def test_quasi_random_points_fill_the_cube_evenly() -> None:
    qmc = QuasiRandom(2, np.array([0.3, 0.7]))
    points = np.array([qmc.next() for _ in range(64)])  # (64, 2)
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=4, range=[[0, 1], [0, 1]])
    assert counts.min() >= 2  # i.i.d. draws leave an empty cell of 16 about 1 time in 3


def test_snapped_points_survive_the_base_round_trip() -> None:
    lat = Lattice(MIXED_SPACE)
    rng = np.random.default_rng(0)
    for _ in range(200):
        u = lat.snap(rng.random(MIXED_SPACE.dim))
        assert np.max(np.abs(snapped_round_trip(MIXED_SPACE, u) - u)) < 1e-9


# ---- both cores --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pso", "genetic"])
def test_points_stay_inside_without_piling_on_the_bounds(kind: str) -> None:
    # The optimum is a corner: a clipping optimizer would put most coordinates exactly on 0.
    core = make_core(kind, FLOAT_SPACE, seed=1)
    asked = np.array(drive(core, lambda u: float(np.sum(u)), 300, k=4))  # (300, dim)
    assert np.all((asked >= 0.0) & (asked <= 1.0))
    assert np.mean((asked == 0.0) | (asked == 1.0)) < 0.01
    assert np.min(np.sum(asked, axis=1)) < 0.1  # and it did reach the corner


@pytest.mark.parametrize("kind", ["pso", "genetic"])
def test_categories_and_integers_are_emitted_on_their_values(kind: str) -> None:
    core = make_core(kind, MIXED_SPACE, seed=2)
    lat = Lattice(MIXED_SPACE)
    asked = drive(core, lambda u: float(np.sum((u - 0.3) ** 2)), 60, k=3)
    for u in asked:
        assert np.array_equal(lat.snap(u), u)


@pytest.mark.parametrize("kind", ["pso", "genetic"])
def test_state_round_trip_continues_exactly_with_points_in_flight(kind: str) -> None:
    core = make_core(kind, MIXED_SPACE, seed=3)
    f = lambda u: float(np.sum((u - 0.6) ** 2))  # noqa: E731
    drive(core, f, 25, k=2)
    flight = [core.ask(np.zeros((0, MIXED_SPACE.dim)))]
    flight.append(core.ask(np.array(flight)))
    state = json.loads(json.dumps(core.state(), allow_nan=False))
    restored = (ParticleSwarm if kind == "pso" else GeneticAlgorithm).from_state(
        MIXED_SPACE, state
    )
    for c in (core, restored):
        for u in flight:
            c.tell(u, f(u))
    assert np.array_equal(np.array(drive(core, f, 30, k=3)), np.array(drive(restored, f, 30, k=3)))


@pytest.mark.parametrize("kind", ["pso", "genetic"])
def test_asks_avoid_points_in_flight(kind: str) -> None:
    core = make_core(kind, SMALL_DISCRETE, seed=4)
    flight: list[np.ndarray] = []
    for _ in range(5):
        u = core.ask(np.array(flight).reshape(-1, 2))
        assert u is not None
        assert not any(np.array_equal(u, p) for p in flight)
        flight.append(u)


# ---- PSO ---------------------------------------------------------------------------------------


def test_pso_moves_a_particle_as_soon_as_its_trial_completes() -> None:
    core = make_core("pso", FLOAT_SPACE, seed=5, n_particles=4)
    assert isinstance(core, ParticleSwarm)
    flight = []
    for _ in range(4):  # the four initial positions, all in flight
        flight.append(core.ask(np.array(flight).reshape(-1, 4)))
    before = core.positions
    done = flight.pop(1)
    core.tell(done, 1.0)  # one completion; the three others are still running
    u = core.ask(np.array(flight))
    assert u is not None
    after = core.positions
    moved = np.flatnonzero(np.any(after != before, axis=1))
    assert moved.tolist() == [1]  # only the particle whose trial completed moved
    # It holds the swarm's best, so it searches locally around it.
    assert np.max(np.abs(u - done)) <= PSOOptions().local_radius + 1e-12


def test_pso_local_radius_adapts_to_success_and_failure() -> None:
    core = make_core("pso", FLOAT_SPACE, seed=6, n_particles=2)
    assert isinstance(core, ParticleSwarm)
    start = core.local_radius
    drive(core, lambda u: 1.0, 30)  # nothing ever improves: the radius shrinks
    assert core.local_radius < start
    counter = iter(range(10**6))
    shrunk = core.local_radius
    # Everything improves: it grows (more trials in flight than particles: the extra ones are
    # local steps around the best).
    drive(core, lambda u: -float(next(counter)), 30, k=4)
    assert core.local_radius > shrunk


def test_pso_restarts_on_stagnation() -> None:
    core = make_core("pso", FLOAT_SPACE, seed=7, n_particles=4, stagnation=6)
    assert isinstance(core, ParticleSwarm)
    drive(core, lambda u: 1.0, 40)
    assert core.restarts >= 3
    # After a restart the particles start again from fresh points: still usable.
    assert core.ask(np.zeros((0, 4))) is not None


def test_pso_seeds_a_particle_with_a_point_evaluated_elsewhere() -> None:
    core = make_core("pso", FLOAT_SPACE, seed=8, n_particles=3)
    assert isinstance(core, ParticleSwarm)
    core.tell(np.full(4, 0.25), -5.0)
    assert np.isclose(np.min(core.personal_best_values), -5.0)
    assert np.sum(np.isfinite(core.personal_best_values)) == 1


def test_pso_more_workers_than_particles_exploit_the_best() -> None:
    core = make_core("pso", FLOAT_SPACE, seed=9, n_particles=2)
    asked = drive(core, lambda u: float(np.sum((u - 0.3) ** 2)), 80, k=6)
    keys = {tuple(u) for u in asked}
    assert len(keys) == len(asked)  # no config asked twice
    assert min(float(np.sum((u - 0.3) ** 2)) for u in asked) < 0.01


# ---- genetic -----------------------------------------------------------------------------------


def test_genetic_each_completion_enters_the_population_at_once() -> None:
    core = make_core("genetic", FLOAT_SPACE, seed=10, population_size=6)
    assert isinstance(core, GeneticAlgorithm)
    flight = []
    for _ in range(6):
        flight.append(core.ask(np.array(flight).reshape(-1, 4)))
    for n, u in enumerate(flight[:3], start=1):
        core.tell(u, float(n))
        assert len(core.population[1]) == n
    # Three trials still running: the next ask breeds from the three known members.
    child = core.ask(np.array(flight[3:]))
    assert child is not None
    assert not any(np.array_equal(child, u) for u in flight)


def test_genetic_step_size_follows_the_one_fifth_rule() -> None:
    core = make_core("genetic", FLOAT_SPACE, seed=11, population_size=4)
    assert isinstance(core, GeneticAlgorithm)
    counter = iter(range(10**6))
    drive(core, lambda u: -float(next(counter)), 40)  # every child beats its parents
    assert core.sigma == pytest.approx(GAOptions().sigma_max)
    drive(core, lambda u: 0.0, 20)  # no child beats its parents any more
    assert core.sigma < GAOptions().sigma_max / 2


def test_genetic_step_is_reset_when_it_collapses() -> None:
    core = make_core(
        "genetic", FLOAT_SPACE, seed=12, population_size=4, sigma=0.01, sigma_min=0.005
    )
    assert isinstance(core, GeneticAlgorithm)
    drive(core, lambda u: 0.0, 60)
    assert core.resets >= 1
    assert core.sigma >= 0.005


def test_genetic_is_elitist_and_bounded() -> None:
    core = make_core("genetic", FLOAT_SPACE, seed=13, population_size=5)
    assert isinstance(core, GeneticAlgorithm)
    best = np.inf
    for _ in range(10):
        drive(core, lambda u: float(np.sum((u - 0.7) ** 2)), 5, k=2)
        _, values = core.population
        assert len(values) == 5
        assert values.min() <= best
        best = values.min()


def test_genetic_rejects_children_equal_to_members() -> None:
    core = make_core("genetic", SMALL_DISCRETE, seed=14, population_size=3)
    assert isinstance(core, GeneticAlgorithm)
    asked = drive(core, lambda u: float(u[1]), 3)
    members, _ = core.population
    for _ in range(20):
        child = core.ask(np.zeros((0, 2)))
        assert child is not None
        assert not any(np.array_equal(child, m) for m in members)
        core.tell(child, float(child[1]))
        members, _ = core.population
    assert len(asked) == 3


# ---- a real Tuner with ASHA and concurrent trials --------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("name", ["pso", "genetic"])
def test_tuner_with_asha_and_concurrent_trials(tmp_path: Any, name: str) -> None:
    # ASHA cuts trials (tests/asha_runs.py says why one is cut whatever the timing); the searcher
    # is told their early results and keeps 2 trials in flight.
    result = run_asha(name, tmp_path)
    best = check_asha_cut(result)
    assert result.best_config is not None
    assert result.best_config["lr"] == pytest.approx(best["config/lr"])
