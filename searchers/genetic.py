"""Asynchronous steady-state genetic algorithm (``make_searcher("genetic", seed=...)``).

The core (`GeneticAlgorithm`) has no generations: each completed trial enters the population at
once (if it beats the worst member, which it then replaces: elitism, the best is never lost), and
each ask breeds one child from the population as it is now. Built for ~100-trial budgets with many
trials in flight, each choice measured with ``scripts/bench_searchers.py``:

- a small bounded population started on a quasi-random design (`searchers.population.QuasiRandom`);
- parents by tournament; crossover per domain kind: simulated binary crossover (SBX, Deb & Agrawal
  1995) on numeric coordinates, uniform crossover on categories;
- Gaussian mutation in the normalized space with ONE step size adapted by the 1/5th success rule
  in its incremental form (Kern et al., Natural Computing 2004: x alpha on a child better than
  its better parent, x alpha^-1/4 otherwise, which is stationary at a 1/5 success rate); a step
  that collapses is reset (re-diversification);
- a share of children are mutations of the best member alone (local search around the incumbent),
  what makes a population method competitive with model-based search at 100 trials;
- a child (or initial point) equal to a config observed or in flight is rejected and mutated
  again with a growing step, then replaced by a random point (`searchers.population`): keeping
  only the members, 5 runs of 100 suggestions on a 300-config space repeated 271 configs;
- under ASHA or HyperBand (issue #15, `searchers.fidelity`): each member has a *level*, the
  fidelity its trial reached; once the run is multi-fidelity, members are ranked at equal
  fidelity (DEHB, Awad et al. 2021): a trial the scheduler stopped at a rung ranks below one that
  went past it, equal levels compare values. With FIFO nothing changes.

Notation (see `searchers.population`): pop_x: (n_pop, dim); pop_f, pop_level: (n_pop,).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from searchers.core import rng_from_state, rng_state
from searchers.fidelity import (
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
    first_new,
    reflect,
)
from searchers.space import Lattice, SearchSpace
from searchers.validation import InstanceOf, Interval, InvalidParameterError, check_params

__all__ = ["GAOptions", "GeneticAlgorithm"]

_VERSION = 1
# A point in flight is tagged [kind, value of its better parent (None: no parent), that
# parent's level (absent in states saved before issue #15: full)].
_INIT, _CHILD = "init", "child"


@dataclass(frozen=True)
class GAOptions:
    """Options of the steady-state GA (defaults chosen on ``scripts/bench_searchers.py``).

    population_size: members kept; None: ``min(12, max(8, 4 + dim))``. The first
        ``population_size`` asks are the quasi-random initial design.
    tournament_size: contestants per parent selection (larger: greedier).
    crossover_prob: probability that a child is bred from two parents (else one parent, mutated).
    sbx_eta: SBX distribution index (larger: children closer to their parents).
    p_incumbent: probability that a child is a mutation of the best member alone.
    sigma: initial mutation step (standard deviation, unit coordinates).
    sigma_min, sigma_max: bounds of the adapted step; reaching sigma_min resets it to ``sigma``.
    success_factor: alpha of the 1/5th rule (step x alpha on success, x alpha^-1/4 on failure).
    p_category: per categorical coordinate, probability that mutation draws a new category;
        None: ``1 / dim``.
    breed_after: members known before children are bred (until then, and always for the first
        ``population_size`` asks, points come from the quasi-random design); None: half the
        population. Matters only with trials in flight: breeding from the first two results
        with 8 pending converged early on the benchmark.
    fidelity_attr: the result key that measures a trial's fidelity (the scheduler's time
        attribute); None: a stopped trial's last value counts as final (the behaviour before
        issue #15). With FIFO both give the same suggestions.
    """

    population_size: int | None = None
    tournament_size: int = 3
    crossover_prob: float = 0.7
    sbx_eta: float = 5.0
    p_incumbent: float = 0.4
    sigma: float = 0.15
    sigma_min: float = 1e-3
    sigma_max: float = 0.5
    success_factor: float = 1.5
    p_category: float | None = None
    breed_after: int | None = None
    fidelity_attr: str | None = DEFAULT_FIDELITY_ATTR

    def __post_init__(self) -> None:
        at_least_2, probability = Interval(int, 2, None), Interval(float, 0, 1)
        positive = Interval(float, 0, math.inf, closed="neither")
        check_params(
            self,
            {
                "population_size": (at_least_2, None),
                "tournament_size": (at_least_2,),
                "breed_after": (at_least_2, None),
                "crossover_prob": (probability,),
                "p_incumbent": (probability,),
                "p_category": (probability, None),
                "sbx_eta": (positive,),
                "sigma": (positive,),
                "sigma_min": (positive,),
                "sigma_max": (positive,),
                "fidelity_attr": (InstanceOf(str, "a result key (str)"), None),
            },
        )
        if not self.sigma_min <= self.sigma <= self.sigma_max:
            raise InvalidParameterError(
                f"need sigma_min <= sigma <= sigma_max, got {self.sigma_min}, {self.sigma}, "
                f"{self.sigma_max}"
            )
        if not isinstance(self.success_factor, (int, float)) or not self.success_factor > 1.0:
            raise ValueError(f"success_factor must be > 1, got {self.success_factor!r}")


class GeneticAlgorithm(BookedCore):
    """Asynchronous steady-state GA with a self-adapting mutation step; a `SearchCore`."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: GAOptions = GAOptions()
    ) -> None:
        self._lat = Lattice(space)
        self._rng = rng
        self._opt = options
        dim = space.dim
        self._size = options.population_size or min(12, max(8, 4 + dim))
        self._breed_after = min(options.breed_after or max(2, self._size // 2), self._size)
        self._p_cat = options.p_category if options.p_category is not None else 1.0 / max(dim, 1)
        self._qmc = QuasiRandom(dim, rng.random(dim))
        self._pop_x = np.zeros((0, dim))  # (n_pop, dim)
        self._pop_f = np.zeros(0)  # (n_pop,)
        self._pop_level = np.zeros(0)  # (n_pop,)
        self._sigma = options.sigma
        self._n_initial_asked = 0
        self._n_told = 0
        self._resets = 0
        self._flight = InFlight(dim)
        self._observed = Observed(dim)
        self._book = FidelityBook(keep_curves=False)

    # ---- SearchCore ------------------------------------------------------------------------
    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        self._flight.reconcile(pending)
        lat, rng = self._lat, self._rng
        pending = pending.reshape(-1, lat.dim)  # (n_pending, dim)
        taken = np.vstack([self._observed.rows, pending])  # (n, dim)
        if self._n_initial_asked < self._size or len(self._pop_f) < self._breed_after:
            # The initial design, and more of it while fewer than breed_after members are known
            # (with many trials in flight, breeding from the first two results converges early).
            self._n_initial_asked += 1
            design = lat.snap(self._qmc.next())
            u = first_new(design, taken, lambda *_: lat.snap(self._qmc.next()), lat, rng)
            u = design if u is None else u
            self._flight.add(u, [_INIT, None])
            return u
        proposed, parent = self._breed(1.0)

        def mutate(previous: np.ndarray, attempt: int) -> np.ndarray:  # a repeat: mutate again
            return self._mutate(previous, 2.0**attempt)  # with a growing step

        child = first_new(proposed, taken, mutate, lat, rng)
        if child is None:  # every config nearly seen: a repeat, but not of a member or in flight
            members = np.vstack([self._pop_x, pending])  # (n, dim)
            child = first_new(proposed, members, mutate, lat, rng)
        if child is None:
            child = proposed
        self._flight.add(
            child, [_CHILD, float(self._pop_f[parent]), level_to_json(self._pop_level[parent])]
        )
        return child

    def tell(self, u: np.ndarray, value: float) -> None:
        u = np.asarray(u, dtype=np.float64)
        tag = self._flight.pop(u)
        self._n_told += 1
        self._observed.add(u)
        level = self._book.complete(u) if self._opt.fidelity_attr is not None else FULL_LEVEL
        lex = self._book.multi_fidelity
        if tag is not None and tag[0] == _CHILD and tag[1] is not None:
            parent_level = level_from_json(tag[2]) if len(tag) > 2 else FULL_LEVEL
            self._adapt_sigma(better(level, value, parent_level, float(tag[1]), lex))
        self._insert(u, value, level)

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
            "pop_x": self._pop_x.tolist(),
            "pop_f": self._pop_f.tolist(),
            "sigma": self._sigma,
            "n_initial_asked": self._n_initial_asked,
            "n_told": self._n_told,
            "resets": self._resets,
            "flight": self._flight.state(),
            "observed": self._observed.state(),
            "pop_level": [level_to_json(v) for v in self._pop_level.tolist()],
            "fidelity": self._book.state(),
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> GeneticAlgorithm:
        if state.get("version") != _VERSION:
            raise ValueError(f"unsupported genetic state version {state.get('version')!r}")
        core = cls(space, rng=rng_from_state(state["rng"]), options=GAOptions(**state["options"]))
        dim = space.dim
        core._rng = rng_from_state(state["rng"])  # the constructor drew from it
        core._qmc = QuasiRandom(dim, np.array(state["qmc_shift"]), state["qmc_index"])
        core._pop_x = np.array(state["pop_x"], dtype=np.float64).reshape(-1, dim)
        core._pop_f = np.array(state["pop_f"], dtype=np.float64).reshape(-1)
        core._sigma = float(state["sigma"])
        core._n_initial_asked = int(state["n_initial_asked"])
        core._n_told = int(state["n_told"])
        core._resets = int(state["resets"])
        core._flight = InFlight.from_state(dim, state["flight"])
        levels = state.get("pop_level")  # absent in a state saved before issue #15: all full
        core._pop_level = (
            np.array([level_from_json(v) for v in levels], dtype=np.float64)
            if levels is not None
            else np.full(len(core._pop_f), FULL_LEVEL)
        )
        core._book = FidelityBook.from_state(state.get("fidelity"), keep_curves=False)
        # Absent in a state saved before repeats were avoided: the members are the points known.
        told = state.get("observed")
        core._observed = Observed.from_state(dim, core._pop_x.tolist() if told is None else told)
        return core

    # ---- read-only views (tests, diagnostics) ----------------------------------------------
    @property
    def dim(self) -> int:
        return self._lat.dim

    @property
    def population(self) -> tuple[np.ndarray, np.ndarray]:
        """(pop_x, pop_f) copies."""
        return self._pop_x.copy(), self._pop_f.copy()

    @property
    def sigma(self) -> float:
        return self._sigma

    @property
    def resets(self) -> int:
        return self._resets

    # ---- helpers ---------------------------------------------------------------------------
    def _breed(self, scale: float) -> tuple[np.ndarray, int]:
        """A child and the index of its better parent."""
        rng, opt = self._rng, self._opt
        if rng.random() < opt.p_incumbent:
            best = self._rank_best(np.arange(len(self._pop_f)))
            return self._mutate(self._pop_x[best], scale), best
        a = self._tournament()
        if rng.random() < opt.crossover_prob:
            b = self._tournament(exclude=a)
            child = self._crossover(self._pop_x[a], self._pop_x[b])
            parent = self._rank_best(np.array([a, b]))
        else:
            child, parent = self._pop_x[a].copy(), a
        return self._mutate(child, scale), parent

    def _tournament(self, exclude: int = -1) -> int:
        n = len(self._pop_f)
        candidates = [i for i in range(n) if i != exclude]
        k = min(self._opt.tournament_size, len(candidates))
        picked = self._rng.choice(candidates, size=k, replace=False)  # (k,)
        return self._rank_best(picked)

    def _rank_best(self, members: np.ndarray) -> int:
        """The best of ``members`` (indices; the first on ties): by value, or, once the run is
        multi-fidelity, by level first."""
        if not self._book.multi_fidelity:
            return int(members[np.argmin(self._pop_f[members])])
        order = np.lexsort((self._pop_f[members], -self._pop_level[members]))
        return int(members[order[0]])

    def _crossover(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """SBX per numeric coordinate (each with probability 1/2), uniform per category."""
        rng, lat = self._rng, self._lat
        dim = lat.dim
        mu = rng.random(dim)  # (dim,)
        eta = self._opt.sbx_eta
        beta = np.where(
            mu <= 0.5, (2.0 * mu) ** (1.0 / (eta + 1.0)), (0.5 / (1.0 - mu)) ** (1.0 / (eta + 1.0))
        )  # (dim,) spread factor
        sign = np.where(rng.random(dim) < 0.5, 1.0, -1.0)  # which of SBX's two children
        child = 0.5 * (a + b) + sign * 0.5 * beta * (a - b)  # (dim,)
        keep = rng.random(dim) < 0.5
        child = np.where(keep, a, child)
        for d in lat.cat_dims:
            child[d] = a[d] if rng.random() < 0.5 else b[d]
        return reflect(child)

    def _mutate(self, x: np.ndarray, scale: float) -> np.ndarray:
        """Gaussian step of std ``sigma * scale`` on numeric coordinates (at least one value on a
        discrete one that moves), a new category with probability ``p_category``; snapped."""
        rng, lat = self._rng, self._lat
        step = self._sigma * scale * rng.standard_normal(lat.dim)  # (dim,)
        moved = np.abs(step) > 0.5 * lat.min_step
        step = np.where(moved | (lat.min_step == 0), step, 0.0)
        child = reflect(x + step)
        for d in lat.cat_dims:
            n = lat.n_choices[d]
            if n > 1 and rng.random() < min(1.0, self._p_cat * scale):
                current = lat.category_of(d, x[d])
                other = int(rng.integers(n - 1))
                child[d] = lat.category_unit(d, other if other < current else other + 1)
            else:
                child[d] = x[d]
        return lat.snap(child)

    def _adapt_sigma(self, success: bool) -> None:
        opt = self._opt
        factor = opt.success_factor if success else opt.success_factor**-0.25
        self._sigma = min(self._sigma * factor, opt.sigma_max)
        if self._sigma <= opt.sigma_min:
            self._sigma = opt.sigma  # collapsed: re-diversify with the initial step
            self._resets += 1

    def _insert(self, u: np.ndarray, value: float, level: float) -> None:
        """Steady-state replacement: a new member while the population is not full, else the
        worst member is replaced when the newcomer beats it. A point already a member keeps
        its better value."""
        same = (
            np.flatnonzero(np.max(np.abs(self._pop_x - u), axis=1) <= 1e-9)
            if len(self._pop_f)
            else np.zeros(0, dtype=int)
        )
        lex = self._book.multi_fidelity
        if len(same):
            i = int(same[0])
            if better(level, value, self._pop_level[i], self._pop_f[i], lex):
                self._pop_f[i], self._pop_level[i] = value, level
            return
        if len(self._pop_f) < self._size:
            self._pop_x = np.vstack([self._pop_x, u[None, :]])
            self._pop_f = np.append(self._pop_f, value)
            self._pop_level = np.append(self._pop_level, level)
            return
        if lex:
            worst = int(np.lexsort((-self._pop_f, self._pop_level))[0])
        else:
            worst = int(np.argmax(self._pop_f))
        if better(level, value, self._pop_level[worst], self._pop_f[worst], lex):
            self._pop_x[worst], self._pop_f[worst] = u, value
            self._pop_level[worst] = level
