"""Asynchronous particle swarm optimization (``make_searcher("pso", seed=...)``).

The core (`ParticleSwarm`) is built for hyperparameter tuning: budgets of ~100 trials, many
trials running at once, no generations. Published PSO baselines are often worse than random
search at such budgets (XBBO's Branin table: PSO 0.732 vs random 0.684 after 200 evaluations),
because a textbook swarm spends its budget converging. What this one changes, each measured with
``scripts/bench_searchers.py``:

- asynchronous updates (Venter & Sobieszczanski-Sobieski, 2006): a particle moves as soon as its
  own trial completes, against the best point known *now*; no trial waits for a generation;
- a small swarm (8 to 12) started on a quasi-random design, with the constriction update of Clerc
  & Kennedy (IEEE TEC 2002) and velocity clamping;
- the particle holding the swarm's best does a *local* random search around it with a radius that
  doubles on repeated success and halves on repeated failure (GCPSO, van den Bergh &
  Engelbrecht 2002); idle-less asks (more trials in flight than particles) do the same
  (``scouts``), so extra workers exploit the incumbent rather than duplicate a particle;
- reflection at the bounds (no particle piles on a bound), integers and log domains through the
  normalized space, categories by a sticky-switch rule (keep the category, or switch to the
  global best's, the personal best's or a random one with fixed probabilities);
- a restart of every particle but the best on stagnation;
- a proposal equal to a config observed or in flight (a wasted trial; frequent on a discrete
  space, where a converged particle sits on the best config) is moved to a uniform point of a
  box around it that doubles on each try, then to a random point (`searchers.population`);
- under ASHA or HyperBand (issue #15, `searchers.fidelity`): each completed trial has a *level*,
  the fidelity it reached; once the run is multi-fidelity, bests are compared at equal fidelity
  (DEHB, Awad et al. 2021): a trial the scheduler stopped at a rung loses to one that went past
  it, and equal levels compare values. With FIFO nothing changes.

Notation (see `searchers.population`): x, v, pbest: (n_particles, dim); gbest: (dim,);
pbest_level: (n_particles,) levels of the personal bests (`searchers.fidelity`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from searchers.core import rng_from_state, rng_state
from searchers.fidelity import (
    BAD_LEVEL,
    DEFAULT_FIDELITY_ATTR,
    FULL_LEVEL,
    BookedCore,
    FidelityBook,
    better,
    level_from_json,
    level_to_json,
)
from searchers.population import (
    InFlight,
    Observed,
    QuasiRandom,
    array_from_json,
    array_to_json,
    first_new,
    reflect,
)
from searchers.space import Lattice, SearchSpace
from searchers.validation import InstanceOf, Interval, InvalidParameterError, check_params

__all__ = ["PSOOptions", "ParticleSwarm"]

_VERSION = 1
# A point in flight is tagged [kind, particle (-1: none), best value when asked (or None),
# level of that best (absent in states saved before issue #15: full)].
_INIT, _MOVE, _LOCAL, _SCOUT = "init", "move", "local", "scout"


@dataclass(frozen=True)
class PSOOptions:
    """Options of the particle swarm (defaults chosen on ``scripts/bench_searchers.py``).

    n_particles: swarm size; None: ``min(12, max(8, 4 + dim))``. Small, so that each particle
        moves ~10 times in 100 trials.
    chi, c_cognitive, c_social: the constriction update
        ``v <- chi (v + c1 r1 (pbest - x) + c2 r2 (gbest - x))`` with Clerc & Kennedy's (2002)
        chi = 0.7298 and c1 = c2 = 2.05 (equivalently w = 0.7298, c = 1.49618).
    v_max: velocity clamp per coordinate, as a fraction of the unit range.
    local_radius: initial radius of the local search around the best (unit coordinates).
    local_min_radius, local_max_radius: its bounds; reaching the minimum counts as stagnation.
    local_successes, local_failures: consecutive successes that double, failures that halve it.
    p_social, p_cognitive, p_random: per move and categorical dimension, the probability of
        switching to the global best's, the personal best's, or a uniformly random category
        (else the particle keeps its category).
    stagnation: completions without improving the best that trigger a restart of all particles
        but the best one; None: ``max(24, 3 * n_particles)``.
    fidelity_attr: the result key that measures a trial's fidelity (the scheduler's time
        attribute); None: a stopped trial's last value counts as final (the behaviour before
        issue #15). With FIFO both give the same suggestions.
    """

    n_particles: int | None = None
    chi: float = 0.7298
    c_cognitive: float = 2.05
    c_social: float = 2.05
    v_max: float = 0.15
    local_radius: float = 0.1
    local_min_radius: float = 1e-3
    local_max_radius: float = 0.5
    local_successes: int = 2
    local_failures: int = 2
    p_social: float = 0.3
    p_cognitive: float = 0.15
    p_random: float = 0.05
    stagnation: int | None = None
    fidelity_attr: str | None = DEFAULT_FIDELITY_ATTR

    def __post_init__(self) -> None:
        at_least_2, positive_int = Interval(int, 2, None), Interval(int, 1, None)
        positive = Interval(float, 0, math.inf, closed="neither")
        probability = Interval(float, 0, 1)
        check_params(
            self,
            {
                "n_particles": (at_least_2, None),
                "stagnation": (at_least_2, None),
                "local_successes": (positive_int,),
                "local_failures": (positive_int,),
                **{
                    name: (positive,)
                    for name in (
                        "chi",
                        "c_cognitive",
                        "c_social",
                        "v_max",
                        "local_radius",
                        "local_min_radius",
                        "local_max_radius",
                    )
                },
                "p_social": (probability,),
                "p_cognitive": (probability,),
                "p_random": (probability,),
                "fidelity_attr": (InstanceOf(str, "a result key (str)"), None),
            },
        )
        if not self.local_min_radius <= self.local_radius <= self.local_max_radius:
            raise InvalidParameterError(
                "need local_min_radius <= local_radius <= local_max_radius, got "
                f"{self.local_min_radius}, {self.local_radius}, {self.local_max_radius}"
            )
        probs = (self.p_social, self.p_cognitive, self.p_random)
        if sum(probs) > 1:
            raise InvalidParameterError(
                f"p_social, p_cognitive, p_random must sum to at most 1, got {probs}"
            )


class ParticleSwarm(BookedCore):
    """Asynchronous constriction PSO with a local search around the best; a `SearchCore`."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: PSOOptions = PSOOptions()
    ) -> None:
        self._space = space
        self._lat = Lattice(space)
        self._rng = rng
        self._opt = options
        dim = space.dim
        n = options.n_particles or min(12, max(8, 4 + dim))
        self._n = n
        self._patience = options.stagnation or max(24, 3 * n)
        self._qmc = QuasiRandom(dim, rng.random(dim))
        self._x = np.zeros((n, dim))  # (n, dim) current positions
        self._v = np.zeros((n, dim))  # (n, dim) velocities
        self._pbest = np.zeros((n, dim))  # (n, dim) personal bests (evaluated, snapped)
        self._pbest_f = np.full(n, math.inf)  # (n,)
        self._pbest_level = np.full(n, BAD_LEVEL)  # (n,) unset bests lose to any trial
        self._started = np.zeros(n, dtype=bool)  # (n,) initial position emitted or seeded
        self._busy = np.zeros(n, dtype=bool)  # (n,) a trial of this particle is in flight
        self._idle: list[int] = []  # started, idle particles, longest idle first
        self._gbest = np.zeros(dim)  # (dim,)
        self._gbest_f = math.inf
        self._gbest_level = BAD_LEVEL
        self._radius = options.local_radius
        self._local_run = 0  # > 0: consecutive local successes; < 0: consecutive failures
        self._since_improvement = 0
        self._n_told = 0
        self._restarts = 0
        self._flight = InFlight(dim)
        self._observed = Observed(dim)
        self._book = FidelityBook(keep_curves=False)

    # ---- SearchCore ------------------------------------------------------------------------
    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        for tag in self._flight.reconcile(pending):
            self._release(tag)  # asked, then discarded by the base: never told
        proposed, tag = self._propose()
        lat = self._lat
        pending = pending.reshape(-1, lat.dim)  # (n_pending, dim)
        taken = np.vstack([self._observed.rows, pending])  # (n, dim)

        def redraw(_: np.ndarray, attempt: int) -> np.ndarray:
            return self._nudge(proposed, attempt)

        u = first_new(proposed, taken, redraw, lat, self._rng)
        if u is None:  # every config nearly seen: a repeat, of a config not in flight if any
            u = first_new(proposed, pending, redraw, lat, self._rng)
        if u is None:
            u = proposed
        if tag[1] >= 0:
            self._busy[int(tag[1])] = True
        if tag[0] == _LOCAL:
            tag.append(level_to_json(self._gbest_level))
        self._flight.add(u, tag)
        return u

    def tell(self, u: np.ndarray, value: float) -> None:
        u = np.asarray(u, dtype=np.float64)
        tag = self._flight.pop(u)
        self._n_told += 1
        self._observed.add(u)
        level = self._book.complete(u) if self._opt.fidelity_attr is not None else FULL_LEVEL
        lex = self._book.multi_fidelity
        improved = better(level, value, self._gbest_level, self._gbest_f, lex)
        if tag is not None and tag[0] == _LOCAL:
            tag_level = level_from_json(tag[3]) if len(tag) > 3 else FULL_LEVEL
            self._adapt_radius(better(level, value, tag_level, float(tag[2]), lex))
        if tag is not None and tag[1] >= 0:
            i = int(tag[1])
            self._busy[i] = False
            self._idle.append(i)
            if better(level, value, self._pbest_level[i], self._pbest_f[i], lex):
                self._pbest[i], self._pbest_f[i] = u, value
                self._pbest_level[i] = level
        elif tag is None:
            self._seed(u, value, level)
        if improved:
            self._gbest, self._gbest_f = u.copy(), float(value)
            self._gbest_level = level
            self._since_improvement = 0
        else:
            self._since_improvement += 1
        if self._since_improvement >= self._patience:
            self._restart()

    @property
    def finished(self) -> bool:
        return False

    def state(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "options": asdict(self._opt),
            "rng": rng_state(self._rng),
            "qmc_shift": self._qmc.shift.tolist(),
            "qmc_index": self._qmc.index,
            "x": self._x.tolist(),
            "v": self._v.tolist(),
            "pbest": self._pbest.tolist(),
            "pbest_f": array_to_json(self._pbest_f),
            "started": self._started.tolist(),
            "busy": self._busy.tolist(),
            "idle": list(self._idle),
            "gbest": self._gbest.tolist(),
            "gbest_f": None if math.isinf(self._gbest_f) else self._gbest_f,
            "radius": self._radius,
            "local_run": self._local_run,
            "since_improvement": self._since_improvement,
            "n_told": self._n_told,
            "restarts": self._restarts,
            "flight": self._flight.state(),
            "observed": self._observed.state(),
            "pbest_level": [level_to_json(v) for v in self._pbest_level.tolist()],
            "gbest_level": level_to_json(self._gbest_level),
            "fidelity": self._book.state(),
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> ParticleSwarm:
        if state.get("version") != _VERSION:
            raise ValueError(f"unsupported PSO state version {state.get('version')!r}")
        core = cls(space, rng=rng_from_state(state["rng"]), options=PSOOptions(**state["options"]))
        n, dim = core._n, space.dim
        core._rng = rng_from_state(state["rng"])  # the constructor drew from it
        core._qmc = QuasiRandom(dim, np.array(state["qmc_shift"]), state["qmc_index"])
        core._x = np.array(state["x"], dtype=np.float64).reshape(n, dim)
        core._v = np.array(state["v"], dtype=np.float64).reshape(n, dim)
        core._pbest = np.array(state["pbest"], dtype=np.float64).reshape(n, dim)
        core._pbest_f = array_from_json(state["pbest_f"]).reshape(n)
        core._started = np.array(state["started"], dtype=bool).reshape(n)
        core._busy = np.array(state["busy"], dtype=bool).reshape(n)
        core._idle = [int(i) for i in state["idle"]]
        core._gbest = np.array(state["gbest"], dtype=np.float64).reshape(dim)
        core._gbest_f = math.inf if state["gbest_f"] is None else float(state["gbest_f"])
        core._radius = float(state["radius"])
        core._local_run = int(state["local_run"])
        core._since_improvement = int(state["since_improvement"])
        core._n_told = int(state["n_told"])
        core._restarts = int(state["restarts"])
        core._flight = InFlight.from_state(dim, state["flight"])
        if "pbest_level" in state:  # else a state saved before issue #15: every level full
            core._pbest_level = np.array(
                [level_from_json(v) for v in state["pbest_level"]], dtype=np.float64
            ).reshape(n)
            core._gbest_level = level_from_json(state["gbest_level"])
        else:
            core._pbest_level = np.where(np.isinf(core._pbest_f), BAD_LEVEL, FULL_LEVEL)
            core._gbest_level = BAD_LEVEL if math.isinf(core._gbest_f) else FULL_LEVEL
        core._book = FidelityBook.from_state(state.get("fidelity"), keep_curves=False)
        # Absent in a state saved before repeats were avoided: the bests are the points known.
        told = state.get("observed")
        if told is None:
            known = core._pbest[np.isfinite(core._pbest_f)]  # (n_known, dim)
            told = [*known.tolist(), *([core._gbest.tolist()] if core._gbest_f < math.inf else [])]
        core._observed = Observed.from_state(dim, told)
        return core

    # ---- read-only views (tests, diagnostics) ----------------------------------------------
    @property
    def dim(self) -> int:
        return self._lat.dim

    @property
    def n_particles(self) -> int:
        return self._n

    @property
    def positions(self) -> np.ndarray:
        return self._x.copy()

    @property
    def personal_best_values(self) -> np.ndarray:
        return self._pbest_f.copy()

    @property
    def local_radius(self) -> float:
        return self._radius

    @property
    def restarts(self) -> int:
        return self._restarts

    # ---- helpers ---------------------------------------------------------------------------
    def _propose(self) -> tuple[np.ndarray, list[Any]]:
        """The next point and its tag: a particle's initial point, a particle's move, or a
        local step around the best when no particle is idle."""
        fresh = np.flatnonzero(~self._started & ~self._busy)
        if len(fresh):
            i = int(fresh[0])
            self._started[i] = True
            self._x[i] = self._qmc.next()
            self._v[i] = 0.5 * (self._rng.random(self._lat.dim) - self._x[i])
            self._set_categories(i)
            return self._lat.snap(self._x[i]), [_INIT, i, None]
        if math.isinf(self._gbest_f):
            return self._lat.snap(self._qmc.next()), [_SCOUT, -1, None]
        if not self._idle:
            return self._local_step(), [_LOCAL, -1, self._gbest_f]
        i = self._idle.pop(0)
        if self._holds_best(i):
            # The best particle explores around the best point instead of standing still there
            # (its velocity update would be ~0: x = p = g).
            u = self._local_step()
            self._v[i] = u - self._x[i]
            self._x[i] = u
            return u, [_LOCAL, i, self._gbest_f]
        return self._move(i), [_MOVE, i, None]

    def _holds_best(self, i: int) -> bool:
        """Particle ``i``'s best is the swarm's best (ties included)."""
        if not self._book.multi_fidelity:
            return bool(
                self._pbest_f[i] <= np.min(self._pbest_f) and self._pbest_f[i] <= self._gbest_f
            )
        li, fi = self._pbest_level[i], self._pbest_f[i]
        rivals = [*zip(self._pbest_level, self._pbest_f, strict=True)]
        rivals.append((self._gbest_level, self._gbest_f))
        return not any(better(lj, fj, li, fi, True) for lj, fj in rivals)

    def _best_index(self) -> int:
        """The particle with the best personal best (levels first once multi-fidelity)."""
        if not self._book.multi_fidelity:
            return int(np.argmin(self._pbest_f))
        return int(np.lexsort((self._pbest_f, -self._pbest_level))[0])

    def _worst_index(self) -> int:
        if not self._book.multi_fidelity:
            return int(np.argmax(self._pbest_f))
        return int(np.lexsort((-self._pbest_f, self._pbest_level))[0])

    def _move(self, i: int) -> np.ndarray:
        opt, lat, rng = self._opt, self._lat, self._rng
        dim = lat.dim
        x, v = self._x[i], self._v[i]
        r1, r2 = rng.random(dim), rng.random(dim)  # (dim,)
        v = opt.chi * (
            v + opt.c_cognitive * r1 * (self._pbest[i] - x) + opt.c_social * r2 * (self._gbest - x)
        )
        v = np.clip(v, -opt.v_max, opt.v_max)
        x_new = reflect(x + v)
        v = np.where((x + v < 0.0) | (x + v > 1.0), -v, v)  # the reflected part turns around
        for d in lat.cat_dims:
            v[d] = 0.0
            r = rng.random()
            if r < opt.p_social:
                x_new[d] = self._gbest[d]
            elif r < opt.p_social + opt.p_cognitive:
                x_new[d] = self._pbest[i, d]
            elif r < opt.p_social + opt.p_cognitive + opt.p_random:
                x_new[d] = lat.category_unit(d, int(rng.integers(lat.n_choices[d])))
            else:
                x_new[d] = x[d]
        self._x[i], self._v[i] = x_new, v
        return lat.snap(x_new)

    def _local_step(self) -> np.ndarray:
        """A uniform point in the box of half-width ``radius`` around the best (reflected), with
        each categorical switched at random with probability ``radius``."""
        lat, rng = self._lat, self._rng
        step = np.maximum(self._radius, lat.min_step)  # (dim,)
        u = reflect(self._gbest + step * (2.0 * rng.random(lat.dim) - 1.0))
        for d in lat.cat_dims:
            if rng.random() < min(0.5, self._radius):
                u[d] = lat.category_unit(d, int(rng.integers(lat.n_choices[d])))
            else:
                u[d] = self._gbest[d]
        return lat.snap(u)

    def _nudge(self, u: np.ndarray, attempt: int) -> np.ndarray:
        """A uniform point in the box of half-width ``max(radius, one value) * 2^(attempt-1)``
        around ``u`` (reflected), each categorical switched at random with probability
        ``min(0.5, max(radius, 1/dim) * 2^(attempt-1))``: a local step around a proposal that
        repeats a config, wider on each try (one value first: the nearest configs)."""
        lat, rng = self._lat, self._rng
        scale = 2.0 ** (attempt - 1)
        width = np.maximum(self._radius, lat.min_step) * scale  # (dim,)
        v = reflect(u + width * (2.0 * rng.random(lat.dim) - 1.0))
        p_switch = min(0.5, max(self._radius, 1.0 / lat.dim) * scale)
        for d in lat.cat_dims:
            if rng.random() < p_switch:
                v[d] = lat.category_unit(d, int(rng.integers(lat.n_choices[d])))
            else:
                v[d] = u[d]
        return lat.snap(v)

    def _set_categories(self, i: int) -> None:
        for d in self._lat.cat_dims:
            self._x[i, d] = self._lat.category_unit(d, self._lat.category_of(d, self._x[i, d]))

    def _adapt_radius(self, success: bool) -> None:
        opt = self._opt
        if success:
            self._local_run = max(self._local_run, 0) + 1
            if self._local_run >= opt.local_successes:
                self._radius = min(2.0 * self._radius, opt.local_max_radius)
                self._local_run = 0
        else:
            self._local_run = min(self._local_run, 0) - 1
            if -self._local_run >= opt.local_failures:
                self._radius = max(0.5 * self._radius, opt.local_min_radius)
                self._local_run = 0

    def _release(self, tag: list[Any]) -> None:
        i = int(tag[1])
        if i >= 0:
            self._busy[i] = False
            if i not in self._idle and self._started[i]:
                self._idle.insert(0, i)

    def _seed(self, u: np.ndarray, value: float, level: float) -> None:
        """A point evaluated elsewhere (points_to_evaluate, add_evaluated_point): it becomes a
        particle's start if one has not started, else only a candidate for the bests."""
        fresh = np.flatnonzero(~self._started & ~self._busy)
        if len(fresh):
            i = int(fresh[0])
            self._started[i] = True
            self._x[i], self._pbest[i], self._pbest_f[i] = u, u, value
            self._pbest_level[i] = level
            self._v[i] = 0.5 * (self._rng.random(self._lat.dim) - u)
            self._idle.append(i)
            return
        worst = self._worst_index()
        lex = self._book.multi_fidelity
        if (
            better(level, value, self._pbest_level[worst], self._pbest_f[worst], lex)
            and not self._busy[worst]
        ):
            self._pbest[worst], self._pbest_f[worst] = u, value
            self._pbest_level[worst] = level

    def _restart(self) -> None:
        """Re-diversify: every particle but the best starts again from a fresh quasi-random
        point with no memory; the best point and the swarm's counters are kept."""
        best = self._best_index()
        for i in range(self._n):
            if i == best:
                continue
            self._started[i] = False
            self._busy[i] = False
            self._pbest_f[i] = math.inf
            self._pbest_level[i] = BAD_LEVEL
        self._idle = [i for i in self._idle if i == best]
        # Points of restarted particles still in flight come back as scouts (best-only update).
        for k, tag in enumerate(self._flight.tags):
            if int(tag[1]) >= 0 and int(tag[1]) != best:
                self._flight.tags[k] = [tag[0], -1, tag[2]]
        self._radius = self._opt.local_radius
        self._local_run = 0
        self._since_improvement = 0
        self._restarts += 1
