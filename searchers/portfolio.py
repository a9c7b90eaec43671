"""``auto``'s core: a portfolio of our searchers over one shared history (no Ray here).

Which searcher wins depends on the problem (BENCHMARKS.md: gp-ei on smooth low-dimensional
landscapes, the population searchers on rugged ones), and a user should not have to know which
one theirs is. `PortfolioCore` runs several cores at once and gives each suggestion to the member
that has earned it:

- one shared history: every observation is told to every member, so a member asked rarely still
  models everything (gp-ei's GP sees the swarm's points, TPE's densities the GP's);
- warm-up: the first member (gp-ei by default) proposes the initial space-filling design; no
  credit is given for it;
- credit: a suggestion earns the share of earlier observations it beats (1.0 for a new best,
  0.5 for a median one), so a member earns by what its points score, not by how often it is asked;
- choice: discounted UCB (Garivier & Moulines, ALT 2011) over the members, a small bandit of its
  own: the arm with the largest discounted mean credit plus ``exploration * sqrt(log N / n)``;
  old credit fades by ``discount`` per observation, so the portfolio can move from a global
  member early to a local one late. A member's trials still in flight count as pulls, so with
  many pending trials the suggestions spread over the members that earn similar credit;
- a member with no point right now (``ask`` returns None) is skipped for that suggestion.

Each member keeps its own RNG (spawned from the seed), so the same seed gives the same
suggestions; the state holds every member's state and the bandit's.

Warm start (``warm_start=``) is the adapter's, `searchers.auto.AutoSearcher`: the trials of an
earlier experiment are told to every member before the first suggestion (`searchers.warm_start`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from searchers.core import SearchCore, spawn_rngs
from searchers.genetic import GAOptions, GeneticAlgorithm
from searchers.gp.core import GPEICore, GPEIOptions
from searchers.population import InFlight
from searchers.pso import ParticleSwarm, PSOOptions
from searchers.random_search import RandomCore, RandomOptions
from searchers.space import SearchSpace
from searchers.tpe import TPECore, TPEOptions
from searchers.validation import Interval, InvalidParameterError, check_params, did_you_mean

__all__ = ["MEMBERS", "AutoOptions", "PortfolioCore"]

_VERSION = 1
_INIT = -1  # the tag of a warm-up point (no member earns credit for it)

#: Member name -> (core class, options class).
MEMBERS: dict[str, tuple[Any, Any]] = {
    "gp-ei": (GPEICore, GPEIOptions),
    "pso": (ParticleSwarm, PSOOptions),
    "genetic": (GeneticAlgorithm, GAOptions),
    "tpe": (TPECore, TPEOptions),
    "random": (RandomCore, RandomOptions),
}


@dataclass(frozen=True)
class AutoOptions:
    """Options of the portfolio.

    members: the member searchers, from `MEMBERS`; the first one proposes the warm-up design.
    n_initial: warm-up suggestions (by the first member); None: gp-ei's rule,
        ``min(max(5, dim + 1), 10)``. Observations told from elsewhere (a warm start) count.
    discount: per observation, the factor old credit fades by (1: never).
    exploration: the UCB bonus factor (credits are in [0, 1]).
    prior_pulls: pseudo-pulls at credit 0.5 every member starts with (keeps an early lucky or
        unlucky point from deciding alone).
    member_options: options of a member's core by member name, e.g.
        ``{"gp-ei": {"n_initial": 4}}`` (the fields of `GPEIOptions`, `PSOOptions`, ...).
    """

    members: tuple[str, ...] = ("gp-ei", "pso", "genetic", "tpe")
    n_initial: int | None = None
    discount: float = 0.97
    exploration: float = 0.3
    prior_pulls: float = 2.0
    member_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        members = self.members
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise InvalidParameterError(
                f"auto: members must be a non-empty list of searcher names from "
                f"{sorted(MEMBERS)}, got {members!r}"
            )
        for name in members:
            if name not in MEMBERS:
                raise InvalidParameterError(
                    f"auto: unknown member {name!r}{did_you_mean(str(name), list(MEMBERS))}; "
                    f"members are {sorted(MEMBERS)}"
                )
        if len(set(members)) != len(members):
            raise InvalidParameterError(f"auto: members repeat a name: {list(members)}")
        object.__setattr__(self, "members", tuple(members))
        if not isinstance(self.member_options, Mapping):
            raise InvalidParameterError(
                "auto: member_options must be a dict of member name -> options dict, got "
                f"{type(self.member_options).__name__}"
            )
        for name, opts in self.member_options.items():
            if name not in members:
                raise InvalidParameterError(
                    f"auto: member_options names {name!r}, which is not a member"
                    f"{did_you_mean(str(name), list(members))}; members are {list(members)}"
                )
            if not isinstance(opts, Mapping):
                raise InvalidParameterError(
                    f"auto: member_options[{name!r}] must be a dict of options, got {opts!r}"
                )
            self.member_core_options(name)  # the member's own checks name a bad option
        object.__setattr__(
            self, "member_options", {k: dict(v) for k, v in self.member_options.items()}
        )
        check_params(
            self,
            {
                "n_initial": (Interval(int, 1, None), None),
                "discount": (Interval(float, 0.0, 1.0, closed="right"),),
                "exploration": (Interval(float, 0.0, None),),
                "prior_pulls": (Interval(float, 0.0, None, closed="neither"),),
            },
        )

    def initial_points(self, dim: int) -> int:
        return self.n_initial if self.n_initial is not None else min(max(5, dim + 1), 10)

    def member_core_options(self, name: str) -> Any:
        """The options object of member ``name``'s core."""
        options_class = MEMBERS[name][1]
        given = dict(self.member_options.get(name, {}))
        accepted = [f.name for f in fields(options_class)]
        for option in given:
            if option not in accepted:
                raise InvalidParameterError(
                    f"auto: member_options[{name!r}] has an unknown option {option!r}"
                    f"{did_you_mean(option, accepted)}; it accepts {accepted}"
                )
        return options_class(**given)


class PortfolioCore:
    """Members' cores over one history, chosen by a discounted UCB bandit; a `SearchCore`."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: AutoOptions = AutoOptions()
    ) -> None:
        self._space = space
        self._opt = options
        self._n_initial = options.initial_points(space.dim)
        rngs = spawn_rngs(int(rng.integers(2**63)), len(options.members))
        self._members: list[SearchCore] = [
            MEMBERS[name][0](space, rng=r, options=options.member_core_options(name))
            for name, r in zip(options.members, rngs, strict=True)
        ]
        k = len(self._members)
        self._credit = np.zeros(k)  # (k,) discounted sum of credit
        self._pulls = np.zeros(k)  # (k,) discounted number of credited suggestions
        self._asked = np.zeros(k, dtype=np.int64)  # (k,) suggestions given, undiscounted
        self._flight = InFlight(space.dim)  # tag: [member index or _INIT]
        self._y: list[float] = []  # every value told, in order
        self._n_rewarded = 0

    # ---- SearchCore ------------------------------------------------------------------------
    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        pending = np.asarray(pending, dtype=np.float64).reshape(-1, self._space.dim)
        self._flight.reconcile(pending)
        if len(self._y) + len(pending) < self._n_initial:
            u = self._members[0].ask(pending)
            return None if u is None else self._hand_out(u, _INIT)
        in_flight = np.zeros(len(self._members))
        for tag in self._flight.tags:
            if tag[0] >= 0:
                in_flight[tag[0]] += 1
        for m in self._ranking(in_flight):
            u = self._members[m].ask(pending)
            if u is not None:
                return self._hand_out(u, m)
        return None

    def tell(self, u: np.ndarray, value: float) -> None:
        u = np.asarray(u, dtype=np.float64)
        tag = self._flight.pop(u)
        if tag is not None and tag[0] >= 0:
            earlier = np.asarray(self._y)
            credit = (
                0.5
                if not len(earlier)
                else float(
                    (np.sum(earlier > value) + 0.5 * np.sum(earlier == value)) / len(earlier)
                )
            )
            self._credit *= self._opt.discount
            self._pulls *= self._opt.discount
            self._credit[tag[0]] += credit
            self._pulls[tag[0]] += 1.0
            self._n_rewarded += 1
        self._y.append(float(value))
        for member in self._members:
            member.tell(u, value)

    @property
    def finished(self) -> bool:
        return False

    def state(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "options": {**asdict(self._opt), "members": list(self._opt.members)},
            "members": [m.state() for m in self._members],
            "credit": self._credit.tolist(),
            "pulls": self._pulls.tolist(),
            "asked": self._asked.tolist(),
            "flight": self._flight.state(),
            "y": list(self._y),
            "n_rewarded": self._n_rewarded,
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> PortfolioCore:
        if state.get("version") != _VERSION:
            raise ValueError(f"unsupported auto state version {state.get('version')!r}")
        options = AutoOptions(
            **{**state["options"], "members": tuple(state["options"]["members"])}
        )
        core = cls(space, rng=np.random.default_rng(0), options=options)
        core._members = [
            MEMBERS[name][0].from_state(space, member_state)
            for name, member_state in zip(options.members, state["members"], strict=True)
        ]
        core._credit = np.asarray(state["credit"], dtype=np.float64)
        core._pulls = np.asarray(state["pulls"], dtype=np.float64)
        core._asked = np.asarray(state["asked"], dtype=np.int64)
        core._flight = InFlight.from_state(space.dim, state["flight"])
        core._y = [float(v) for v in state["y"]]
        core._n_rewarded = int(state["n_rewarded"])
        return core

    # ---- what a user (and the tests) can read ----------------------------------------------
    @property
    def members(self) -> tuple[str, ...]:
        return self._opt.members

    def suggestions_by_member(self) -> dict[str, int]:
        """How many suggestions each member has made (the warm-up design is not counted)."""
        return {name: int(n) for name, n in zip(self._opt.members, self._asked, strict=True)}

    def mean_credit(self) -> dict[str, float]:
        """Each member's discounted mean credit, prior included (what the bandit ranks by)."""
        mean = self._mean()
        return {name: float(c) for name, c in zip(self._opt.members, mean, strict=True)}

    # ---- bandit ----------------------------------------------------------------------------
    def _mean(self) -> np.ndarray:
        prior = self._opt.prior_pulls
        return (self._credit + 0.5 * prior) / (self._pulls + prior)  # (k,)

    def _ranking(self, in_flight: np.ndarray) -> list[int]:
        """Member indices, best UCB score first (ties: the order of ``members``)."""
        n = self._pulls + in_flight + self._opt.prior_pulls  # (k,)
        total = float(np.sum(n))
        score = self._mean() + self._opt.exploration * np.sqrt(math.log(max(total, 1.0)) / n)
        return sorted(range(len(score)), key=lambda m: (-score[m], m))

    def _hand_out(self, u: np.ndarray, tag: int) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        # The base tells the canonical point of the config (ints and categories rounded).
        canonical = self._space.to_unit(self._space.from_unit(u))
        self._flight.add(canonical, [tag])
        if tag >= 0:
            self._asked[tag] += 1
        return u
