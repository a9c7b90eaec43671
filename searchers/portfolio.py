"""``auto``'s core: a portfolio of our searchers over one shared history (no Ray here).

Which searcher wins depends on the problem (BENCHMARKS.md: gp-ei on smooth low-dimensional
landscapes, the population searchers on rugged ones), and a user should not have to know which
one theirs is. `PortfolioCore` runs several cores at once and gives each suggestion to the member
that has earned it:

- one shared history: every observation is told to every member, so a member asked rarely still
  models everything (gp-ei's GP sees the swarm's points, TPE's densities the GP's);
- warm-up: the first member (gp-ei by default) proposes the initial space-filling design; no
  credit is given for it;
- credit (``credit="hedge"``, GP-Hedge: Hoffman, Brochu & de Freitas, UAI 2011): every member
  proposes a point each round, one is played, and after its result every member's gain grows by
  the posterior mean (negated: lower is better) of a GP on the shared history at *its own*
  proposal, played or not, so a member is judged by how good its points are, every round;
- choice (Hedge): the played proposal is drawn with probability ``softmax(eta * gains)``, with
  the portfolio's own RNG. The GP is the project's (`searchers.gp.model`, as gp-ei fits it), on
  the warped, standardized scale gp-ei models (``gain="mean"``), or the proposals' rank within
  the round (``gain="rank"``);
- proposals not played leave no state behind: each member proposes on a copy of itself, and only
  the played member's copy replaces it (its RNG, in-flight bookkeeping, GP fit);
- the earlier credit, ``credit="rank"``: a suggestion earns the share of earlier observations it
  beats (1.0 for a new best, 0.5 for a median one), and discounted UCB (Garivier & Moulines,
  ALT 2011) chooses: the arm with the largest discounted mean credit plus
  ``exploration * sqrt(log N / n)``, old credit fading by ``discount`` per observation, a
  member's trials in flight counting as pulls. NOTE(issue #16): it split the suggestions between
  members whose points were merely above the median and landed between them (BENCHMARKS.md,
  "`auto`, our `tpe`, and warm starts");
- a member with no point right now (``ask`` returns None) is skipped for that suggestion.

Each member keeps its own RNG (spawned from the seed), and Hedge one more, so the same seed gives
the same suggestions; the state holds every member's state, the bandit's, the credit GP's
hyperparameters and the rounds in flight (each round's proposals, credited when its point is told).

Warm start (``warm_start=``) is the adapter's, `searchers.auto.AutoSearcher`: the trials of an
earlier experiment are told to every member before the first suggestion (`searchers.warm_start`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from searchers.core import SearchCore, rng_from_state, rng_state, spawn_rngs
from searchers.genetic import GAOptions, GeneticAlgorithm
from searchers.gp.core import GPEICore, GPEIOptions, blas_threads, fit_when_due
from searchers.gp.kernel import FeatureMap
from searchers.gp.model import GPFitter, training_subset, warp_outputs
from searchers.population import InFlight
from searchers.pso import ParticleSwarm, PSOOptions
from searchers.random_search import RandomCore, RandomOptions
from searchers.space import Lattice, SearchSpace, is_new
from searchers.tpe import TPECore, TPEOptions
from searchers.validation import (
    Interval,
    InvalidParameterError,
    Options,
    check_params,
    did_you_mean,
)

__all__ = ["MEMBERS", "AutoOptions", "PortfolioCore"]

_VERSION = 2  # 2: GP-Hedge credit (a version-1 state is the rank credit's, restored as such)
_INIT = -1  # the tag of a warm-up point (no member earns credit for it)
_NO_ROUND = -1  # the round of a point chosen without a Hedge round (rank credit)

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
    credit: "hedge" (GP-Hedge: every member proposes, each is credited with the GP's posterior
        mean at its proposal, Hedge chooses) or "rank" (the played member alone is credited with
        the share of earlier values its point beats, discounted UCB chooses; the options
        ``discount``, ``exploration`` and ``prior_pulls`` are this credit's). NOTE(issue #16):
        on the 7 test functions, 5 seeds, mean normalized regret sequential at 50/100
        evaluations 0.16/0.13 with "hedge" against 0.32/0.16 with "rank" (gp-ei alone
        0.25/0.14), with 8 pending 0.33/0.15 against 0.39/0.13 (gp-ei 0.36/0.19);
        scripts/results/auto/gp_hedge_5seeds.md and table.md, BENCHMARKS.md.
    eta: Hedge's learning rate: the played member is drawn with probability proportional to
        ``exp(eta * gain)`` (gains in units of the standardized objective, or ranks).
    gain: what a Hedge round adds to a member's gain: "mean", minus the GP's posterior mean at
        its proposal (warped, standardized outputs: about unit spread), or "rank", the share of
        the round's other proposals whose posterior mean its own beats (0 to 1).
    discount: per observation, the factor old credit fades by (1: never).
    exploration: the UCB bonus factor (credits are in [0, 1]).
    prior_pulls: pseudo-pulls at credit 0.5 every member starts with (keeps an early lucky or
        unlucky point from deciding alone).
    member_options: options of a member's core by member name, e.g.
        ``{"gp-ei": {"n_initial": 4}}`` (the fields of `GPEIOptions`, `PSOOptions`, ...).
    """

    members: tuple[str, ...] = ("gp-ei", "pso", "genetic", "tpe")
    n_initial: int | None = None
    credit: str = "hedge"
    eta: float = 1.0
    gain: str = "mean"
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
                "credit": (Options(("hedge", "rank")),),
                "eta": (Interval(float, 0.0, None, closed="neither"),),
                "gain": (Options(("mean", "rank")),),
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
    """Members' cores over one history, chosen by GP-Hedge (or the rank credit's discounted UCB
    bandit); a `SearchCore`."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: AutoOptions = AutoOptions()
    ) -> None:
        self._space = space
        self._opt = options
        self._n_initial = options.initial_points(space.dim)
        seed = int(rng.integers(2**63))
        k = len(options.members)
        # k + 1 children: the first k are the members' (as with the rank credit alone), the
        # last is Hedge's draw.
        rngs = spawn_rngs(seed, k + 1)
        self._members: list[SearchCore] = [
            MEMBERS[name][0](space, rng=r, options=options.member_core_options(name))
            for name, r in zip(options.members, rngs[:k], strict=True)
        ]
        self._rng = rngs[k]
        self._credit = np.zeros(k)  # (k,) rank: discounted sum of credit
        self._pulls = np.zeros(k)  # (k,) rank: discounted number of credited suggestions
        self._asked = np.zeros(k, dtype=np.int64)  # (k,) suggestions given, undiscounted
        self._gains = np.zeros(k)  # (k,) hedge: cumulative gains
        self._flight = InFlight(space.dim)  # tag: [member index or _INIT, round or _NO_ROUND]
        self._U: list[np.ndarray] = []  # every point told, in order: (dim,) each
        self._y: list[float] = []  # every value told, in order
        self._n_rewarded = 0
        # Hedge rounds: id -> the members' proposals ((k, dim), NaN rows: no proposal); a round
        # is credited at the first ask after its point is told (one GP fit for all such rounds).
        self._rounds: dict[int, np.ndarray] = {}
        self._told_rounds: list[int] = []
        self._next_round = 0
        self._gp = _CreditGP(space)
        self._lattice = Lattice(space)

    # ---- SearchCore ------------------------------------------------------------------------
    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        pending = np.asarray(pending, dtype=np.float64).reshape(-1, self._space.dim)
        for tag in self._flight.reconcile(pending):
            # A point the base dropped is never told: its round earns nothing.
            if len(tag) > 1:
                self._rounds.pop(int(tag[1]), None)
        if len(self._y) + len(pending) < self._n_initial:
            u = self._members[0].ask(pending)
            return None if u is None else self._hand_out(u, _INIT)
        if self._opt.credit == "hedge":
            return self._ask_hedge(pending)
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
        if tag is not None and tag[0] >= 0 and self._opt.credit == "rank":
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
        if tag is not None and len(tag) > 1 and int(tag[1]) in self._rounds:
            self._told_rounds.append(int(tag[1]))
        self._U.append(u.copy())
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
            "rng": rng_state(self._rng),
            "credit": self._credit.tolist(),
            "pulls": self._pulls.tolist(),
            "asked": self._asked.tolist(),
            "gains": self._gains.tolist(),
            "flight": self._flight.state(),
            "U": [u.tolist() for u in self._U],
            "y": list(self._y),
            "n_rewarded": self._n_rewarded,
            # NaN (a member without a proposal) is not JSON: saved as None.
            "rounds": [
                [r, [[None if math.isnan(x) else x for x in row] for row in props.tolist()]]
                for r, props in self._rounds.items()
            ],
            "told_rounds": list(self._told_rounds),
            "next_round": self._next_round,
            "gp": self._gp.state(),
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> PortfolioCore:
        version = state.get("version")
        if version not in (1, _VERSION):
            raise ValueError(f"unsupported auto state version {version!r}")
        saved = dict(state["options"])
        if version == 1:
            saved["credit"] = "rank"  # the only credit there was
        options = AutoOptions(**{**saved, "members": tuple(saved["members"])})
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
        if version == 1:
            return core  # the rank credit never reads what follows
        core._rng = rng_from_state(state["rng"])
        core._gains = np.asarray(state["gains"], dtype=np.float64)
        core._U = [np.array(u, dtype=np.float64).reshape(space.dim) for u in state["U"]]
        core._rounds = {
            int(r): np.array(
                [[math.nan if x is None else float(x) for x in row] for row in props],
                dtype=np.float64,
            ).reshape(len(options.members), space.dim)
            for r, props in state["rounds"]
        }
        core._told_rounds = [int(r) for r in state["told_rounds"]]
        core._next_round = int(state["next_round"])
        core._gp = _CreditGP.from_state(space, state["gp"])
        return core

    # ---- what a user (and the tests) can read ----------------------------------------------
    @property
    def members(self) -> tuple[str, ...]:
        return self._opt.members

    def suggestions_by_member(self) -> dict[str, int]:
        """How many suggestions each member has made (the warm-up design is not counted)."""
        return {name: int(n) for name, n in zip(self._opt.members, self._asked, strict=True)}

    def mean_credit(self) -> dict[str, float]:
        """Each member's standing: with ``credit="hedge"`` its probability of being played next
        (gains credited so far), with ``"rank"`` its discounted mean credit, prior included
        (what the bandit ranks by)."""
        mean = self._hedge_probabilities() if self._opt.credit == "hedge" else self._mean()
        return {name: float(c) for name, c in zip(self._opt.members, mean, strict=True)}

    # ---- GP-Hedge --------------------------------------------------------------------------
    def _ask_hedge(self, pending: np.ndarray) -> np.ndarray | None:
        self._credit_told_rounds()
        k, dim = len(self._members), self._space.dim
        # Each member proposes on a copy: a proposal not played must leave no state behind
        # (pso and genetic book the point as in flight, every member draws from its RNG, gp-ei
        # refits), so the originals are untouched and only the played copy is kept.
        copies = [copy.deepcopy(member) for member in self._members]
        proposals = np.full((k, dim), np.nan)  # (k, dim)
        proposed = np.zeros(k, dtype=bool)  # (k,)
        for m, member in enumerate(copies):
            u = member.ask(pending)
            if u is not None:
                proposals[m] = np.asarray(u, dtype=np.float64)
                proposed[m] = True
        if not proposed.any():
            return None
        # A proposal repeating a config observed or pending is not played and gains what the
        # round's worst gains, while another member has a new point: a repeat tells nothing
        # on a deterministic objective, and the GP's mean is lowest at the incumbent, so
        # crediting repeats made Hedge favour the member that repeated it.
        seen = self._lattice.snap_rows(np.vstack([*self._U, pending])) if self._U else pending
        new = proposed.copy()
        new[proposed] = is_new(self._lattice.snap_rows(proposals[proposed]), seen)
        if new.any() and not new.all():
            proposals[~new] = np.nan
            proposed = new
        p = self._hedge_probabilities()
        p = np.where(proposed, p, 0.0)
        m = int(self._rng.choice(k, p=p / p.sum()))
        self._members[m] = copies[m]
        r = self._next_round
        self._next_round += 1
        self._rounds[r] = proposals
        return self._hand_out(proposals[m], m, r)

    def _hedge_probabilities(self) -> np.ndarray:
        logits = self._opt.eta * (self._gains - np.max(self._gains))  # (k,)
        w = np.exp(logits)
        return w / np.sum(w)  # (k,)

    def _credit_told_rounds(self) -> None:
        """Credit every round whose point has been told since the last ask: each member gains
        by the GP's posterior mean at its proposal (Hoffman et al.'s g_i += mu(x_i), minimized
        here), the GP fitted to the whole history, the told points included."""
        rounds = [self._rounds.pop(r) for r in self._told_rounds if r in self._rounds]
        self._told_rounds = []
        if not rounds or len(self._y) < 2 or np.ptp(self._y) == 0.0:
            return
        with blas_threads(1):
            mean_of = self._gp.fit(np.stack(self._U), np.array(self._y))
            for proposals in rounds:
                proposed = ~np.isnan(proposals).any(axis=1)  # (k,)
                mu = np.full(len(proposals), np.nan)  # (k,)
                mu[proposed] = mean_of(proposals[proposed])
                self._gains += self._round_gain(mu)
                self._n_rewarded += 1

    def _round_gain(self, mu: np.ndarray) -> np.ndarray:
        """One round's gains ((k,)) from the posterior means at the proposals ((k,), NaN: none);
        a member without a proposal gains what the round's worst proposal gained."""
        gain = np.full(len(mu), np.nan)  # (k,)
        ok = ~np.isnan(mu)
        if self._opt.gain == "mean":
            gain[ok] = -mu[ok]
        else:
            others = max(int(ok.sum()) - 1, 1)
            m = mu[ok]
            gain[ok] = (
                np.sum(m[:, None] < m[None, :], axis=1)
                + 0.5 * (np.sum(m[:, None] == m[None, :], axis=1) - 1)
            ) / others
        gain[~ok] = np.min(gain[ok])
        return gain

    # ---- rank credit: discounted UCB -------------------------------------------------------
    def _mean(self) -> np.ndarray:
        prior = self._opt.prior_pulls
        return (self._credit + 0.5 * prior) / (self._pulls + prior)  # (k,)

    def _ranking(self, in_flight: np.ndarray) -> list[int]:
        """Member indices, best UCB score first (ties: the order of ``members``)."""
        n = self._pulls + in_flight + self._opt.prior_pulls  # (k,)
        total = float(np.sum(n))
        score = self._mean() + self._opt.exploration * np.sqrt(math.log(max(total, 1.0)) / n)
        return sorted(range(len(score)), key=lambda m: (-score[m], m))

    def _hand_out(self, u: np.ndarray, tag: int, round_id: int = _NO_ROUND) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        # The base tells the canonical point of the config (ints and categories rounded).
        canonical = self._space.to_unit(self._space.from_unit(u))
        self._flight.add(canonical, [tag, round_id])
        if tag >= 0:
            self._asked[tag] += 1
        return u


class _CreditGP:
    """The GP that credits Hedge's proposals: gp-ei's model (`searchers.gp.model`: warped
    outputs, MAP hyperparameters with gp-ei's default prior, the same training subset and refit
    schedule), fitted to the portfolio's whole history whatever its members are."""

    def __init__(self, space: SearchSpace) -> None:
        self._opt = options = GPEIOptions()
        self._fmap = FeatureMap(space.kinds, space.n_choices)
        self._fitter = GPFitter(
            self._fmap, maxiter=options.fit_maxiter, prior=options.prior(space.dim)
        )
        self._n_at_fit = 0
        self._n_fits = 0

    def fit(self, U: np.ndarray, y: np.ndarray) -> Any:
        """Fit to ``U`` ((n, dim)), ``y`` ((n,)) when due; return the posterior mean as a
        function of unit points ((m, dim) -> (m,))."""
        opt, n = self._opt, len(y)
        idx = training_subset(U, y, opt.max_fit_points)
        X = self._fmap.encode(U[idx])  # (n_fit, F)
        z = warp_outputs(y[idx])  # (n_fit,)
        self._n_at_fit, self._n_fits = fit_when_due(
            self._fitter, X, z, opt, n=n, n_at_fit=self._n_at_fit, n_fits=self._n_fits
        )
        model = self._fitter.model(X, z)
        return lambda Uq: model.predict(self._fmap.encode(Uq))[0]

    def state(self) -> dict[str, Any]:
        return {"fitter": self._fitter.state(), "n_at_fit": self._n_at_fit, "n_fits": self._n_fits}

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> _CreditGP:
        out = cls(space)
        theta = state["fitter"]["theta"]
        out._fitter.theta = None if theta is None else np.array(theta, dtype=np.float64)
        out._fitter.warned = bool(state["fitter"]["warned"])
        out._n_at_fit = int(state["n_at_fit"])
        out._n_fits = int(state["n_fits"])
        return out
