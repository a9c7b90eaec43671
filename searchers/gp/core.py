"""`GPEICore`: Bayesian optimization with a GP and log expected improvement; a `SearchCore`.

Lifecycle of ``ask(pending)``:
    fewer than ``n_initial`` points observed or in flight -> the next point of a scrambled Sobol
    sequence (snapped to existing values);
    else -> fit (or reuse) the GP on at most ``max_fit_points`` observations; if its
    leave-one-out skill is at most ``min_loo_skill`` (it predicts held-out observations no better
    than its prior mean), the next Sobol point again; else condition it on the
    pending points at their posterior mean (kriging believer, Ginsbourger et al. 2010: the
    fantasies count as data, incumbent included, and the variance there collapses, so parallel
    asks spread out without refitting), and return the
    maximizer of log EI (`searchers.gp.optimize`).

Notation: dim: space dimensions; U: (n, dim) observed unit points; y: (n,) observed values
(minimized); pending: (p, dim).

Multi-fidelity (issue #15; `searchers.fidelity`): the base reports every trial's intermediate
results at their fidelity (``fidelity_attr``, ``training_iteration`` by default) into a
`FidelityBook`. Once the book is multi-fidelity (a trial was stopped below the highest fidelity
reached: ASHA or HyperBand at work; never with FIFO, whose runs stay bit for bit what they were),
the model phase is BOHB's (Falkner et al. 2018): the GP is fitted on the highest fidelity at
which at least ``fidelity_min_points`` trials reported, with every trial's value *at that
fidelity*, finished or still running; trials running below it are pending (kriging believer),
trials stopped below it are left out (``stopped_trials="exclude"``, measured against imputing
them as the worst value: BENCHMARKS.md, "Multi-fidelity searchers under ASHA"), trials whose
final result was bad are imputed with the worst value at that fidelity (the bad-result policy).

The state is the observations, the fidelity book, the RNG, the Sobol seed and position, and the
fitter's last hyperparameters and schedule counters: a posterior is a deterministic function of
those, so a restored core makes exactly the suggestions the uninterrupted one would have made.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import qmc

from searchers.core import rng_from_state, rng_state
from searchers.fidelity import BAD_LEVEL, DEFAULT_FIDELITY_ATTR, BookedCore, FidelityBook
from searchers.gp.kernel import FeatureMap
from searchers.gp.model import (
    GaussianProcess,
    GPFitter,
    HyperPrior,
    training_subset,
    warp_outputs,
)
from searchers.gp.optimize import AcquisitionSettings, Box, maximize_log_ei
from searchers.gp.trust_region import TrustRegion
from searchers.space import Lattice, SearchSpace, is_new
from searchers.validation import (
    InstanceOf,
    Interval,
    InvalidParameterError,
    Options,
    check,
    check_params,
)

__all__ = ["GPEICore", "GPEIOptions"]

_VERSION = 1
# Sobol points skipped in a row for repeating a config seen (`GPEICore._next_sobol`).
_SOBOL_SKIPS = 8


@dataclass(frozen=True)
class GPEIOptions:
    """Options of `GPEICore` (defaults measured with ``scripts/bench_searchers.py`` and
    ``scripts/bench_gp_speed.py``; the figures: BENCHMARKS.md, "gp-ei design measurements").

    n_initial: Sobol points before the GP takes over (points told from elsewhere and points in
        flight count); None: ``min(max(5, dim + 1), 10)``.
    max_fit_points: the GP is fitted on at most this many observations (the best half plus a
        space-filling rest, `searchers.gp.model.training_subset`): exact GP inference is cubic,
        and 300 points keep a suggestion well under 0.5 s on one core.
    refit_every_until: hyperparameters are refitted at every new observation up to this many
        observations; after that every ``refit_interval`` observations (warm-started), while the
        posterior itself always uses every observation in the subset. A warm-started refit after
        one more point rarely moves the hyperparameters once there are ~100 points.
    refit_interval: see ``refit_every_until``.
    restart_every: every this many fits, L-BFGS-B also starts from the prior median (not only
        from the last optimum), to leave a poor basin.
    fit_maxiter: L-BFGS-B iterations per hyperparameter start.
    late_fit_maxiter: iterations of the (warm-start only) refits past ``refit_every_until``; few,
        as late refits set the p95 suggest time at 500 observations.
    n_sobol: space-filling candidates per ask (rounded to a power of 2).
    n_local: candidates perturbed around the ``n_best_local`` best observations, with Gaussian
        steps of a standard deviation drawn from ``local_scales`` (unit coordinates). Small
        scales (down to 0.005) exploit the incumbent late in a budget.
    n_refine: best candidates refined by L-BFGS-B (``acq_maxiter`` iterations) and discrete moves
        (``discrete_rounds`` greedy rounds).
    lengthscale_mu0, lengthscale_sigma, lengthscale_spread: the log length scale prior
        (`searchers.gp.model.HyperPrior`): log l_d = mu0 + log(dim) / 2 + c + e_d with a shared
        offset c ~ N(0, sigma^2) and per-dimension deviations e_d ~ N(0, spread^2). A small spread
        shrinks the length scales toward a common value until the data say otherwise, i.e. about
        one free length scale at 20 points instead of dim.
    noise_rate: rate of the Gamma(1.1, rate) prior on the noise variance of the standardized
        outputs (mean 1.1 / rate). Large: deterministic objectives are not explained as noise.
    min_loo_skill: the GP's leave-one-out skill (`GaussianProcess.loo_skill`: 1 - LOO mean
        squared error over that of the prior mean) at or below which the ask is the next Sobol
        point instead of the EI maximizer; None: always EI. 0, the default, asks for no tuned
        number: a model that predicts held-out observations no better than its prior mean has
        learned nothing, and its EI is noise (on hartmann6-noisy a white-noise fit re-sampled two
        points for 40 evaluations). Healthy runs pass the check from the first fits on.
    blas_threads: BLAS/LAPACK threads while a suggestion is computed (threadpoolctl); None: leave
        the process's setting. 1 by default: in a real run's driver every core is busy with
        trials, and a multi-threaded BLAS on small matrices then mostly waits for cores (issue
        #16 measured a median 0.9 s / p95 2.6 s per suggest at 500 observations with default
        threads and busy cores, 0.11 s / 0.57 s with one thread). One thread also makes the
        suggestions independent of the machine's core count: 1 and 2 threads rounded the same
        seed's 13th suggestion differently (tests/test_searchers_golden.py).
    fidelity_attr: the result key that measures a trial's fidelity (the scheduler's time
        attribute); None: intermediate results are ignored and a stopped trial's last value
        counts as final (the behaviour before issue #15). With FIFO both give the same
        suggestions. Set None when the number of epochs is itself a tuned hyperparameter.
    fidelity_min_points: trials that must have reported at a fidelity for the GP to be fitted
        there (multi-fidelity runs only); None: the initial design's size (``n_initial``).
    stopped_trials: what the multi-fidelity GP does with trials stopped below its fidelity:
        "exclude" (BOHB) or "worst" (imputed with the worst value at that fidelity). NOTE(issue
        #15): "worst" was within one standard error of "exclude" at every budget, and not better
        at all of them (20 seeds, BENCHMARKS.md, "Multi-fidelity searchers under ASHA").
    trust_region: EI is maximized inside a TuRBO trust region (`searchers.gp.trust_region`,
        Eriksson et al. 2019) around the best point of the current epoch instead of over the
        whole cube; the region grows after successes, shrinks after failures and restarts with
        fresh Sobol points when it is smaller than ``tr_length_min``. Single-fidelity only (a
        multi-fidelity run ignores it). NOTE(issue #16): off by default; side by side on the 14
        benchmark problems (3 seeds) it helped sequential runs (mean of medians 0.31 -> 0.28 at
        50 evaluations, 0.24 -> 0.20 at 100; ackley5/10, rastrigin4, michalewicz5) but not with
        8 pending (0.41 -> 0.41, 0.20 -> 0.23), and lost on levy8 in every mode
        (scripts/results/searchers/gp_ei_trust_region.md).
    tr_length_init, tr_length_min, tr_length_max: the region's side in unit coordinates at the
        start of an epoch, below which it restarts, and its cap (TuRBO: 0.8, 0.5^7, 1.6).
    tr_succ_tol: consecutive improvements that double the side (TuRBO: 3).
    tr_fail_tol: consecutive non-improvements that halve it; None: ``max(4, dim)`` (TuRBO's
        sequential rule).
    tr_perturb_dims: a box candidate moves about this many coordinates away from the centre
        (each with probability ``min(1, tr_perturb_dims / dim)``; TuRBO: 20), the rest stay at
        the centre's: in high dimensions a point moved in every coordinate is rarely better.
    """

    n_initial: int | None = None
    max_fit_points: int = 300
    refit_every_until: int = 100
    refit_interval: int = 25
    restart_every: int = 5
    fit_maxiter: int = 50
    late_fit_maxiter: int = 15
    n_sobol: int = 256
    n_local: int = 256
    n_best_local: int = 5
    local_scales: tuple[float, ...] = field(default=(0.1, 0.02, 0.005))
    n_refine: int = 5
    acq_maxiter: int = 50
    discrete_rounds: int = 3
    lengthscale_mu0: float = 0.0
    lengthscale_sigma: float = 1.0
    lengthscale_spread: float = 0.5
    noise_rate: float = 300.0
    min_loo_skill: float | None = 0.0
    blas_threads: int | None = 1
    fidelity_attr: str | None = DEFAULT_FIDELITY_ATTR
    fidelity_min_points: int | None = None
    stopped_trials: str = "exclude"
    trust_region: bool = False
    tr_length_init: float = 0.8
    tr_length_min: float = 0.5**7
    tr_length_max: float = 1.6
    tr_succ_tol: int = 3
    tr_fail_tol: int | None = None
    tr_perturb_dims: float = 20.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_scales", tuple(self.local_scales))
        check_params(
            self,
            {
                "fidelity_attr": (InstanceOf(str, "a result key (str)"), None),
                "fidelity_min_points": (Interval(int, 2, None), None),
                "stopped_trials": (Options(("exclude", "worst")),),
                "trust_region": (InstanceOf(bool, "True or False"),),
            },
        )
        ints = {
            "max_fit_points": 10,
            "refit_every_until": 0,
            "refit_interval": 1,
            "restart_every": 1,
            "fit_maxiter": 1,
            "late_fit_maxiter": 1,
            "n_sobol": 1,
            "n_local": 0,
            "n_best_local": 1,
            "n_refine": 1,
            "acq_maxiter": 0,
            "discrete_rounds": 0,
            "tr_succ_tol": 1,
        }
        check_params(self, {name: (Interval(int, low, None),) for name, low in ints.items()})
        positive = Interval(float, 0, math.inf, closed="neither")
        check_params(
            self,
            {
                "lengthscale_mu0": (Interval(float, -math.inf, math.inf, closed="neither"),),
                "lengthscale_sigma": (positive,),
                "lengthscale_spread": (positive,),
                "noise_rate": (positive,),
                "min_loo_skill": (Interval(float, -math.inf, 1, closed="neither"), None),
                "n_initial": (Interval(int, 1, None), None),
                "blas_threads": (Interval(int, 1, None), None),
                "tr_fail_tol": (Interval(int, 1, None), None),
                "tr_length_init": (Interval(float, 0, 1, closed="right"),),
                "tr_length_min": (Interval(float, 0, 1, closed="neither"),),
                "tr_length_max": (Interval(float, 0, 2, closed="right"),),
                "tr_perturb_dims": (Interval(float, 0, math.inf, closed="neither"),),
            },
        )
        if not self.tr_length_min < self.tr_length_init <= self.tr_length_max:
            raise InvalidParameterError(
                "tr_length_min < tr_length_init <= tr_length_max must hold, got "
                f"{self.tr_length_min}, {self.tr_length_init}, {self.tr_length_max}: "
                "change one of them"
            )
        if not self.local_scales:
            raise InvalidParameterError("local_scales must be a non-empty sequence, got ()")
        for i, scale in enumerate(self.local_scales):
            check(f"local_scales[{i}]", scale, Interval(float, 0, 1, closed="right"))

    def prior(self, dim: int) -> HyperPrior:
        return HyperPrior(
            dim,
            noise_rate=self.noise_rate,
            lengthscale_mu0=self.lengthscale_mu0,
            lengthscale_sigma=self.lengthscale_sigma,
            lengthscale_spread=self.lengthscale_spread,
        )

    def initial_points(self, dim: int) -> int:
        return self.n_initial if self.n_initial is not None else min(max(5, dim + 1), 10)

    def trust_region_for(self, dim: int) -> TrustRegion:
        return TrustRegion(
            length_init=self.tr_length_init,
            length_min=self.tr_length_min,
            length_max=self.tr_length_max,
            succ_tol=self.tr_succ_tol,
            fail_tol=self.tr_fail_tol if self.tr_fail_tol is not None else max(4, dim),
            n_design=self.initial_points(dim),
        )

    def acquisition(self) -> AcquisitionSettings:
        return AcquisitionSettings(
            n_sobol=self.n_sobol,
            n_local=self.n_local,
            local_scales=self.local_scales,
            n_best_local=self.n_best_local,
            n_refine=self.n_refine,
            maxiter=self.acq_maxiter,
            discrete_rounds=self.discrete_rounds,
        )


class GPEICore(BookedCore):
    """GP + log EI on the unit cube, minimizing; a `searchers.core.SearchCore`."""

    def __init__(
        self, space: SearchSpace, *, rng: np.random.Generator, options: GPEIOptions = GPEIOptions()
    ) -> None:
        self._opt = options
        self._lat = Lattice(space)
        self._fmap = FeatureMap(space.kinds, space.n_choices)
        self._rng = rng
        self._dim = space.dim
        self._n_initial = options.initial_points(space.dim)
        self._sobol_seed = int(rng.integers(2**31))
        self._sobol_drawn = 0
        self._U: list[np.ndarray] = []
        self._y: list[float] = []
        self._fitter = GPFitter(
            self._fmap, maxiter=options.fit_maxiter, prior=options.prior(space.dim)
        )
        self._n_at_fit = 0  # observations at the last hyperparameter fit
        self._n_fits = 0
        self._cache: tuple[int, GaussianProcess, np.ndarray, float] | None = None
        self._book = FidelityBook(keep_curves=True)
        self._tr = options.trust_region_for(space.dim) if options.trust_region else None

    # ---- SearchCore ------------------------------------------------------------------------
    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        if self._opt.blas_threads is None:
            return self._ask(pending)
        with blas_threads(self._opt.blas_threads):
            return self._ask(pending)

    def _ask(self, pending: np.ndarray) -> np.ndarray | None:
        if self._dim == 0:
            return np.zeros(0)  # constants only: the one config (the base keeps it unique)
        pending = np.asarray(pending, dtype=np.float64).reshape(-1, self._dim)
        in_flight = pending  # every pending point (a multi-fidelity fit narrows `pending`)
        n = len(self._y)
        if n + len(pending) < self._n_initial or n < 2 or np.ptp(self._y) == 0.0:
            return self._next_sobol(in_flight)
        if self._tr is not None and self._tr.in_design(self._sobol_drawn, n):
            return self._next_sobol(in_flight)  # a restarted trust region's fresh design
        if self._book.multi_fidelity:
            fitted = self._posterior_at_fidelity(pending)
            if fitted is None:
                return self._next_sobol(in_flight)
            model, U_sorted, best, pending = fitted
        else:
            model, U_sorted, best = self._posterior()
        if self._opt.min_loo_skill is not None and model.loo_skill() <= self._opt.min_loo_skill:
            return self._next_sobol(in_flight)  # the model has not learned anything EI could use
        if len(pending):
            # Kriging believer: each pending point is fantasized at its posterior mean and joins
            # the data, incumbent included. Keeping the observed incumbent instead made points
            # next to a promising pending one look like a sure improvement (EI ~ best - mean
            # with the variance collapsed): 4 pending cost 1.24x the sequential regret at 50
            # evaluations, against 1.04x this way (scripts/bench_searchers.py, BENCHMARKS.md).
            Xp = self._fmap.encode(pending)  # (p, F)
            zp, _ = model.predict(Xp)  # (p,)
            model = model.condition_on(Xp, zp)
            best = min(best, float(np.min(zp)))
        U_best = U_sorted[: self._opt.n_best_local]
        box = None
        if self._tr is not None and not self._book.multi_fidelity:
            box, U_best = self._trust_box(self._tr, model, U_sorted)
        return maximize_log_ei(
            model,
            best,
            self._lat,
            self._fmap,
            U_best,
            self._rng,
            self._opt.acquisition(),
            box=box,
            exclude=self._seen(in_flight),
        )

    def tell(self, u: np.ndarray, value: float) -> None:
        self._U.append(np.asarray(u, dtype=np.float64).copy())
        self._y.append(float(value))
        self._cache = None
        if self._opt.fidelity_attr is not None:
            self._book.complete(u)
        if self._tr is not None:
            self._tr.observe(float(value), len(self._y), self._sobol_drawn)

    @property
    def finished(self) -> bool:
        return False

    def state(self) -> dict[str, Any]:
        options = asdict(self._opt)
        options["local_scales"] = list(self._opt.local_scales)
        return {
            "version": _VERSION,
            "options": options,
            "rng": rng_state(self._rng),
            "sobol_seed": self._sobol_seed,
            "sobol_drawn": self._sobol_drawn,
            "U": [u.tolist() for u in self._U],
            "y": list(self._y),
            "fitter": self._fitter.state(),
            "n_at_fit": self._n_at_fit,
            "n_fits": self._n_fits,
            "fidelity": self._book.state(),
            "trust_region": None if self._tr is None else self._tr.state(),
        }

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> GPEICore:
        if state.get("version") != _VERSION:
            raise ValueError(f"unsupported GP-EI state version {state.get('version')!r}")
        options = GPEIOptions(**state["options"])
        core = cls(space, rng=rng_from_state(state["rng"]), options=options)
        core._rng = rng_from_state(state["rng"])  # the constructor drew from it
        core._sobol_seed = int(state["sobol_seed"])
        core._sobol_drawn = int(state["sobol_drawn"])
        core._U = [np.array(u, dtype=np.float64).reshape(space.dim) for u in state["U"]]
        core._y = [float(v) for v in state["y"]]
        fitter = state["fitter"]
        theta = fitter["theta"]
        core._fitter = GPFitter(
            core._fmap,
            maxiter=options.fit_maxiter,
            theta=None if theta is None else np.array(theta, dtype=np.float64),
            warned=bool(fitter["warned"]),
            prior=options.prior(space.dim),
        )
        core._n_at_fit = int(state["n_at_fit"])
        core._n_fits = int(state["n_fits"])
        core._book = FidelityBook.from_state(state.get("fidelity"), keep_curves=True)
        if core._tr is not None:
            core._tr.restore(state["trust_region"])
        return core

    # ---- read-only views (tests, diagnostics) ----------------------------------------------
    @property
    def n_observations(self) -> int:
        return len(self._y)

    @property
    def trust_region(self) -> TrustRegion | None:
        return self._tr

    @property
    def hyperparameters(self) -> np.ndarray | None:
        theta = self._fitter.theta
        return None if theta is None else theta.copy()

    # ---- helpers ---------------------------------------------------------------------------
    def _seen(self, pending: np.ndarray) -> np.ndarray:
        """(n, dim) every config observed or pending, as snapped unit points."""
        rows = [*self._U, *np.asarray(pending, dtype=np.float64).reshape(-1, self._dim)]
        if not rows:
            return np.zeros((0, self._dim))
        return self._lat.snap_rows(np.stack(rows))

    def _next_sobol(self, pending: np.ndarray | None = None) -> np.ndarray:
        # Drawn as a power-of-2 block from the start (Sobol's balance needs it, and a block
        # makes the i-th point a function of (seed, i) alone: exact restore). On a discrete
        # space two Sobol points can snap to one config: a repeat of a config observed or
        # pending is skipped (at most _SOBOL_SKIPS times in a row: a nearly exhausted space).
        seen = self._seen(np.zeros((0, self._dim)) if pending is None else pending)
        for _ in range(_SOBOL_SKIPS + 1):
            m = max(1, math.ceil(math.log2(self._sobol_drawn + 1)))
            block = qmc.Sobol(self._dim, scramble=True, seed=self._sobol_seed).random_base2(m)
            u = self._lat.snap(block[self._sobol_drawn])
            self._sobol_drawn += 1
            if is_new(u[None, :], seen)[0]:
                break
        return u

    def _trust_box(
        self, tr: TrustRegion, model: GaussianProcess, U_sorted: np.ndarray
    ) -> tuple[Box, np.ndarray]:
        """The trust region's box and the local candidates' centres inside it, the region's
        centre first."""
        center = tr.center(np.stack(self._U), np.array(self._y))  # (dim,)
        lower, upper = tr.box(
            center, np.exp(model.theta[: self._dim]), self._lat.categorical, self._lat.min_step
        )
        inside = np.all((U_sorted >= lower - 1e-12) & (U_sorted <= upper + 1e-12), axis=1)
        others = [u for u in U_sorted[inside] if np.max(np.abs(u - center)) > 0.0]
        U_best = np.array([center, *others])[: self._opt.n_best_local]  # (k, dim)
        perturb = min(1.0, self._opt.tr_perturb_dims / self._dim)
        return Box(lower, upper, center, perturb), U_best

    def _posterior(self) -> tuple[GaussianProcess, np.ndarray, float]:
        """The GP on the current observations (fitted when due), the observed points sorted
        best first, and the incumbent in warped units."""
        n = len(self._y)
        if self._cache is not None and self._cache[0] == n:
            return self._cache[1], self._cache[2], self._cache[3]
        U, y = np.stack(self._U), np.array(self._y)  # (n, dim), (n,)
        idx = training_subset(U, y, self._opt.max_fit_points)
        U_fit = U[idx]
        z = warp_outputs(y[idx])  # (n_fit,)
        X = self._fmap.encode(U_fit)  # (n_fit, F)
        self._n_at_fit, self._n_fits = fit_when_due(
            self._fitter, X, z, self._opt, n=n, n_at_fit=self._n_at_fit, n_fits=self._n_fits
        )
        model = self._fitter.model(X, z)
        order = np.argsort(z, kind="stable")
        result = (model, U_fit[order], float(z[order[0]]))
        self._cache = (n, *result)
        return result

    def _posterior_at_fidelity(
        self, pending: np.ndarray
    ) -> tuple[GaussianProcess, np.ndarray, float, np.ndarray] | None:
        """BOHB's model (module docstring): the GP on the values at the highest fidelity with
        ``fidelity_min_points`` reports, the points there sorted best first, the incumbent in
        warped units, and the pending points still below that fidelity. None: no fidelity has
        enough points, or their values are all equal (the caller draws a Sobol point)."""
        opt = self._opt
        min_points = opt.fidelity_min_points or self._n_initial
        fidelity = self._book.at_fidelity(min_points)
        if fidelity is None:
            return None
        U_list: list[tuple[float, ...]] = []
        y_list: list[float] = []
        bad: list[tuple[float, ...]] = []
        stopped: list[tuple[float, ...]] = []
        for u, curve, level in self._book.curves():
            if fidelity in curve:
                U_list.append(u)
                y_list.append(curve[fidelity])
            elif level == BAD_LEVEL:
                bad.append(u)
            elif level is not None and opt.stopped_trials == "worst":
                stopped.append(u)
        y = np.array(y_list)  # (n,)
        if np.ptp(y) == 0.0:
            return None
        imputed = [*bad, *stopped]
        U = np.array(U_list + imputed, dtype=np.float64).reshape(-1, self._dim)  # (n + m, dim)
        y = np.concatenate([y, np.full(len(imputed), float(np.max(y)))])  # (n + m,)
        known = set(U_list)
        below = [p for p in pending if tuple(float(x) for x in p) not in known]
        pending_below = np.array(below, dtype=np.float64).reshape(-1, self._dim)  # (p, dim)
        idx = training_subset(U, y, opt.max_fit_points)
        U_fit = U[idx]
        z = warp_outputs(y[idx])  # (n_fit,)
        X = self._fmap.encode(U_fit)  # (n_fit, F)
        # The data at a fidelity change with every report, so the hyperparameters are refitted
        # at each ask (warm-started; a few dozen points, milliseconds).
        self._fitter.fit(
            X, z, restart=self._n_fits % opt.restart_every == 0, maxiter=opt.fit_maxiter
        )
        self._n_fits += 1
        model = self._fitter.model(X, z)
        order = np.argsort(z, kind="stable")
        return model, U_fit[order], float(z[order[0]]), pending_below


_CONTROLLER: Any = None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit the BLAS/LAPACK thread pools of this process to ``n`` threads inside the block.

    One `threadpoolctl.ThreadpoolController` is kept for the process: building it scans the loaded
    libraries (milliseconds), while limiting and restoring through it costs microseconds.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=n, user_api="blas"):
        yield


def fit_when_due(
    fitter: GPFitter,
    X: np.ndarray,
    z: np.ndarray,
    opt: GPEIOptions,
    *,
    n: int,
    n_at_fit: int,
    n_fits: int,
) -> tuple[int, int]:
    """Refit ``fitter``'s hyperparameters on ``X`` ((n_fit, F)), ``z`` ((n_fit,)) when gp-ei's
    schedule says so (every new observation up to ``refit_every_until``, then every
    ``refit_interval``; L-BFGS-B restarts every ``restart_every`` early fits); ``n`` observations
    in all. Returns the new ``(n_at_fit, n_fits)``."""
    due = fitter.theta is None or (
        n != n_at_fit and (n <= opt.refit_every_until or n - n_at_fit >= opt.refit_interval)
    )
    if not due:
        return n_at_fit, n_fits
    early = n <= opt.refit_every_until
    fitter.fit(
        X,
        z,
        restart=early and n_fits % opt.restart_every == 0,
        maxiter=opt.fit_maxiter if early else opt.late_fit_maxiter,
    )
    return n, n_fits + 1
