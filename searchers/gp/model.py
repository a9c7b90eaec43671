"""Gaussian-process regression: output warping, hyperparameter fit (MAP), posterior, fantasies.

Notation:
    n: training points; F: feature columns (`searchers.gp.kernel.FeatureMap`); dim: dimensions.
    X: (n, F) features; y: (n,) raw objective values (minimized); z: (n,) warped, standardized y.
    theta: (dim + 2,) = [log l_1 .. log l_dim, log signal variance, log noise variance].

The model is a zero-mean GP on z with a Matérn-5/2 ARD kernel plus Gaussian noise. Choices, and
why (the measurements behind them: BENCHMARKS.md, "gp-ei design measurements"):
- outputs are warped before standardization (`warp_outputs`): robust (median / IQR) centring,
  then a Yeo-Johnson transform with its lambda clipped to [-2, 1]. Imputed failures, heavy tails
  and diverging trials otherwise stretch the standardized scale so far that the good region
  looks flat (the reason HEBO, Cowen-Rivers et al. 2022, warps outputs; Optuna's GPSampler only
  standardizes). lambda <= 1 only ever compresses the upper (bad) tail, never the good one;
- log priors (MAP, not ML): log length scales are Gaussian around mu0 + log(dim) / 2, which
  scales the typical length scale with sqrt(dim) as Hvarfner et al. (ICML 2024, "Vanilla Bayesian
  optimization performs great in high dimensions") do, so the prior function complexity does not
  grow with the dimension, but with mu0 = 0 instead of their sqrt2 (theirs chased the corners).
  The prior is hierarchical: a shared offset N(0, 1) plus per-dimension deviations
  N(0, 0.5^2), so the dim length scales are shrunk toward a common value that the data choose
  freely, and ARD separates them only when the data support it (independent priors let ARD
  overfit ~40 points).
  A Gamma(1.1, 300) noise-variance prior (mean 0.004 of the standardized variance) favours small
  noise, with a floor of 1e-6 as a bound: with Optuna's rate 30 a deterministic objective was
  often explained as noise, which flattens EI next to the incumbent. LogNormal(0, 1) on the
  signal variance of standardized outputs;
- L-BFGS-B in log space from a warm start (the last optimum) and, when due, the prior's median:
  the warm start makes a refit cheap when one observation was added, the second start escapes a
  bad basin;
- Cholesky with escalating jitter; if fitting fails anyway, default hyperparameters and one
  logged warning per fitter (Optuna's ``fit_kernel_params`` does the same).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special
import scipy.stats

from searchers.gp.kernel import FeatureMap, Matern52

__all__ = [
    "GPFitter",
    "GaussianProcess",
    "HyperPrior",
    "cholesky_with_jitter",
    "log_posterior",
    "training_subset",
    "warp_outputs",
]

logger = logging.getLogger(__name__)

#: Relative jitters tried, in order, when a covariance matrix is not numerically PD.
JITTERS = (0.0, 1e-9, 1e-7, 1e-5, 1e-3, 1e-1)
#: Yeo-Johnson lambda is clipped to this range: an extreme MLE lambda (e.g. -8 on a few points)
#: would crush every value but one onto a constant.
YJ_LAMBDA_RANGE = (-2.0, 1.0)


def cholesky_with_jitter(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of ``K`` ((n, n)); escalating diagonal jitter (relative to the mean
    diagonal) when it is not PD. Raises `numpy.linalg.LinAlgError` when even the largest fails."""
    scale = float(np.mean(np.diag(K))) if K.size else 1.0
    if not math.isfinite(scale) or scale <= 0.0:
        scale = 1.0
    eye = np.eye(K.shape[0])
    for jitter in JITTERS:
        try:
            L = np.linalg.cholesky(K + (jitter * scale) * eye if jitter else K)
        except np.linalg.LinAlgError:
            continue
        if np.all(np.isfinite(L)):
            return L
    raise np.linalg.LinAlgError("covariance matrix is not positive definite even with jitter")


def warp_outputs(y: np.ndarray) -> np.ndarray:
    """Warped, standardized outputs ((n,)): robust centring, clipped Yeo-Johnson, z-score.

    Monotone increasing, so the order of the observations (and the incumbent) is kept. Falls back
    to a rank-Gaussian copula when the transform is degenerate.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2 or float(np.ptp(y)) == 0.0:
        return np.zeros_like(y)
    q25, med, q75 = np.percentile(y, [25.0, 50.0, 75.0])
    scale = float(q75 - q25) / 1.349 or float(np.std(y))
    z = (y - med) / scale  # (n,)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = _yeo_johnson(z, _yeo_johnson_lambda(z))
    if not np.all(np.isfinite(t)) or float(np.std(t)) < 1e-12:
        ranks = scipy.stats.rankdata(y)  # (n,) average ranks of ties
        t = scipy.stats.norm.ppf((ranks - 0.5) / y.size)
    return (t - np.mean(t)) / np.std(t)


def training_subset(U: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` observations to fit on: the best half, then the rest
    chosen greedily farthest-first from those already chosen (space-filling, deterministic).

    EI needs the model accurate where the minimum may be (the best points) and honest about what
    is known elsewhere (a spread of the rest); dropping the middle of the data costs little
    (TuRBO, Eriksson et al. 2019, fits only a local trust region for the same reason).
    """
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    order = np.argsort(y, kind="stable")  # (n,)
    n_best = max_points // 2
    chosen = list(order[:n_best])
    rest = order[n_best:]  # (n - n_best,)
    gap = np.min(
        np.sum((U[rest][:, None, :] - U[chosen][None, :, :]) ** 2, axis=2), axis=1
    )  # (n - n_best,) squared distance to the nearest chosen point
    for _ in range(max_points - n_best):
        i = int(np.argmax(gap))
        chosen.append(int(rest[i]))
        gap = np.minimum(gap, np.sum((U[rest] - U[rest[i]]) ** 2, axis=1))
        gap[i] = -1.0
    return np.sort(np.array(chosen, dtype=np.int64))


def _yeo_johnson(x: np.ndarray, lam: float) -> np.ndarray:
    """The Yeo-Johnson transform of ``x`` ((n,)) with parameter ``lam``."""
    pos = x >= 0.0
    out = np.empty_like(x)
    xp, xn = x[pos], x[~pos]
    out[pos] = np.log1p(xp) if abs(lam) < 1e-12 else np.expm1(lam * np.log1p(xp)) / lam
    if abs(lam - 2.0) < 1e-12:
        out[~pos] = -np.log1p(-xn)
    else:
        out[~pos] = -np.expm1((2.0 - lam) * np.log1p(-xn)) / (2.0 - lam)
    return out


def _yeo_johnson_lambda(x: np.ndarray) -> float:
    """The maximum-likelihood lambda on a grid over `YJ_LAMBDA_RANGE` (vectorized: scipy's
    ``yeojohnson_normmax`` took 20 ms of a 30 ms suggest through its per-call overhead)."""
    grid = np.linspace(*YJ_LAMBDA_RANGE, 31)  # (31,) steps of 0.1
    T = np.stack([_yeo_johnson(x, float(lam)) for lam in grid])  # (31, n)
    jacobian = float(np.sum(np.sign(x) * np.log1p(np.abs(x))))
    llf = -0.5 * x.size * np.log(np.var(T, axis=1)) + (grid - 1.0) * jacobian  # (31,)
    llf = np.where(np.isfinite(llf), llf, -np.inf)
    return float(grid[int(np.argmax(llf))]) if np.any(np.isfinite(llf)) else 1.0


@dataclass(frozen=True)
class HyperPrior:
    """Log priors and bounds of the hyperparameters (see the module docstring for the choices)."""

    dim: int
    noise_shape: float = 1.1
    noise_rate: float = 300.0
    noise_floor: float = 1e-6

    lengthscale_mu0: float = 0.0
    lengthscale_sigma: float = 1.0
    lengthscale_spread: float = 0.5

    @property
    def lengthscale_mu(self) -> float:
        return self.lengthscale_mu0 + 0.5 * math.log(self.dim)

    def default_theta(self) -> np.ndarray:
        """The prior's median length scale, unit variance, small noise."""
        return np.concatenate(
            [np.full(self.dim, self.lengthscale_mu), [0.0, math.log(1e-4)]]
        )  # (dim + 2,)

    def bounds(self) -> list[tuple[float, float]]:
        return [(math.log(1e-3), math.log(1e3))] * self.dim + [
            (math.log(1e-2), math.log(1e2)),
            (math.log(self.noise_floor), math.log(1.0)),
        ]

    def log_density(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Log prior density of ``theta`` (in log space, Jacobian included) and its gradient."""
        d = self.dim
        grad = np.zeros_like(theta)
        dl = theta[:d] - self.lengthscale_mu
        # log l = mu 1 + c 1 + e, c ~ N(0, sigma^2) shared, e ~ N(0, spread^2 I) per dimension:
        # covariance spread^2 I + sigma^2 11^T, precision (I - a 11^T) / spread^2.
        tau2, s2 = self.lengthscale_spread**2, self.lengthscale_sigma**2
        a = s2 / (tau2 + d * s2)
        precision_dl = (dl - a * float(np.sum(dl))) / tau2  # (dim,)
        value = -0.5 * float(dl @ precision_dl)
        grad[:d] = -precision_dl
        value += -0.5 * float(theta[d]) ** 2
        grad[d] = -theta[d]
        noise = math.exp(float(theta[d + 1]))
        value += self.noise_shape * float(theta[d + 1]) - self.noise_rate * noise
        grad[d + 1] = self.noise_shape - self.noise_rate * noise
        return value, grad


def log_posterior(
    theta: np.ndarray, X: np.ndarray, z: np.ndarray, fmap: FeatureMap, prior: HyperPrior
) -> tuple[float, np.ndarray]:
    """Log marginal likelihood of ``z`` plus the log prior, and the gradient wrt ``theta``.

    d lml / d theta_j = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_j)   (Rasmussen & Williams 5.9).
    """
    d = fmap.dim
    n = len(z)
    kernel = Matern52(np.exp(theta[:d]), math.exp(theta[d]), fmap.owner)
    K, dk_dr2, S = kernel.with_hyper_gradients(X)  # (n, n), (n, n), (dim, n, n)
    noise = math.exp(float(theta[d + 1]))
    Ky = K + noise * np.eye(n)
    L = cholesky_with_jitter(Ky)
    alpha = scipy.linalg.cho_solve((L, True), z)  # (n,)
    lml = (
        -0.5 * float(z @ alpha)
        - float(np.sum(np.log(np.diag(L))))
        - 0.5 * n * math.log(2.0 * math.pi)
    )
    K_inv = scipy.linalg.cho_solve((L, True), np.eye(n))  # (n, n)
    W = np.outer(alpha, alpha) - K_inv  # (n, n)
    grad = np.empty_like(theta)
    # dK/dlog l_d = -2 dk_dr2 * S[d]
    grad[:d] = -np.einsum("ij,dij->d", W * dk_dr2, S)
    grad[d] = 0.5 * float(np.sum(W * K))
    grad[d + 1] = 0.5 * float(np.trace(W)) * noise
    prior_value, prior_grad = prior.log_density(theta)
    return lml + prior_value, grad + prior_grad


class GaussianProcess:
    """The posterior of a zero-mean GP given features ``X`` ((n, F)), targets ``z`` ((n,)) and
    hyperparameters ``theta``; `condition_on` adds fantasies without refitting."""

    def __init__(
        self,
        X: np.ndarray,
        z: np.ndarray,
        theta: np.ndarray,
        fmap: FeatureMap,
        *,
        L: np.ndarray | None = None,
    ) -> None:
        d = fmap.dim
        self.X, self.z, self.theta, self.fmap = X, z, np.asarray(theta, dtype=np.float64), fmap
        self.kernel = Matern52(np.exp(self.theta[:d]), math.exp(self.theta[d]), fmap.owner)
        self.noise = math.exp(float(self.theta[d + 1]))
        if L is None:
            L = cholesky_with_jitter(self.kernel(X, X) + self.noise * np.eye(len(z)))
        self.L = L  # (n, n)
        self.alpha = scipy.linalg.cho_solve((L, True), z)  # (n,)
        self._loo_skill: float | None = None

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean (m,) and latent variance (m,) at ``Xq`` ((m, F))."""
        Kq = self.kernel(Xq, self.X)  # (m, n)
        mean = Kq @ self.alpha
        v = scipy.linalg.solve_triangular(self.L, Kq.T, lower=True)  # (n, m)
        var = np.maximum(self.kernel.variance - np.sum(v * v, axis=0), 1e-12)
        return mean, var

    def predict_with_gradient(
        self, Xq: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean (m,), variance (m,) and their gradients wrt the features (m, F) each."""
        Kq, dKq = self.kernel.with_input_gradient(Xq, self.X)  # (m, n), (m, n, F)
        mean = Kq @ self.alpha
        dmean = np.einsum("mnf,n->mf", dKq, self.alpha)
        v = scipy.linalg.solve_triangular(self.L, Kq.T, lower=True)  # (n, m)
        w = scipy.linalg.solve_triangular(self.L.T, v, lower=False)  # (n, m) = K^-1 k
        var_raw = self.kernel.variance - np.sum(v * v, axis=0)
        var = np.maximum(var_raw, 1e-12)
        dvar = -2.0 * np.einsum("mnf,nm->mf", dKq, w)
        dvar[var_raw <= 1e-12] = 0.0
        return mean, var, dmean, dvar

    def loo_skill(self) -> float:
        """Leave-one-out skill of the posterior mean: 1 - (LOO mean squared error) / (mean squared
        target), i.e. against the prior mean 0 (targets are standardized). 1: perfect; <= 0: the
        data teach the model nothing about a held-out point.

        LOO residuals in closed form, [K^-1 z]_i / [K^-1]_ii (Rasmussen & Williams 5.12); an
        O(n^3) solve, done once per posterior (the core reuses a posterior until the next
        observation).
        """
        if self._loo_skill is None:
            self._loo_skill = self._compute_loo_skill()
        return self._loo_skill

    def _compute_loo_skill(self) -> float:
        n = len(self.z)
        baseline = float(np.mean(self.z**2)) if n else 0.0
        if n < 2 or baseline <= 0.0:
            return 0.0
        K_inv = scipy.linalg.cho_solve((self.L, True), np.eye(n))  # (n, n)
        loo = self.alpha / np.diag(K_inv)  # (n,) z_i minus the mean predicted without point i
        if not np.all(np.isfinite(loo)):
            return 0.0
        return 1.0 - float(np.mean(loo**2)) / baseline

    def condition_on(self, Xp: np.ndarray, zp: np.ndarray | None = None) -> GaussianProcess:
        """The posterior after observing ``zp`` ((p,); default: its own mean, the kriging
        believer) at ``Xp`` ((p, F)), with the Cholesky factor extended by one block
        (O(n^2 p)) and the hyperparameters kept."""
        if len(Xp) == 0:
            return self
        if zp is None:
            zp, _ = self.predict(Xp)  # (p,)
        Kxp = self.kernel(self.X, Xp)  # (n, p)
        B = scipy.linalg.solve_triangular(self.L, Kxp, lower=True)  # (n, p)
        C = cholesky_with_jitter(self.kernel(Xp, Xp) + self.noise * np.eye(len(Xp)) - B.T @ B)
        n, p = len(self.z), len(Xp)
        L = np.zeros((n + p, n + p))
        L[:n, :n], L[n:, :n], L[n:, n:] = self.L, B.T, C
        return GaussianProcess(
            np.vstack([self.X, Xp]), np.concatenate([self.z, zp]), self.theta, self.fmap, L=L
        )


class GPFitter:
    """MAP hyperparameters for successive data sets: warm-started, with a one-time warning and
    default hyperparameters when fitting fails."""

    def __init__(
        self,
        fmap: FeatureMap,
        *,
        maxiter: int = 50,
        theta: np.ndarray | None = None,
        warned: bool = False,
        prior: HyperPrior | None = None,
    ) -> None:
        self.fmap = fmap
        self.prior = HyperPrior(fmap.dim) if prior is None else prior
        self.maxiter = maxiter
        self.theta = None if theta is None else np.asarray(theta, dtype=np.float64)
        self.warned = warned

    def fit(
        self, X: np.ndarray, z: np.ndarray, *, restart: bool, maxiter: int | None = None
    ) -> np.ndarray:
        """Fit theta to (X, z) from the last optimum (and, with ``restart`` or none yet, from the
        prior median), ``maxiter`` L-BFGS-B iterations per start (default: the fitter's); store
        and return it. Falls back to the defaults on failure."""
        starts = [] if self.theta is None else [self.theta]
        if restart or self.theta is None:
            starts.append(self.prior.default_theta())
        best: tuple[float, np.ndarray] | None = None
        bounds = self.prior.bounds()
        lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
        reason = "no start converged"
        for start in starts:
            try:
                res = scipy.optimize.minimize(
                    _negative_log_posterior,
                    np.clip(start, lo, hi),
                    args=(X, z, self.fmap, self.prior),
                    jac=True,
                    method="L-BFGS-B",
                    bounds=bounds,
                    options={"maxiter": maxiter or self.maxiter},
                )
            except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if (
                np.all(np.isfinite(res.x))
                and math.isfinite(res.fun)
                and (best is None or res.fun < best[0])
            ):
                best = (float(res.fun), np.asarray(res.x))
        if best is None:
            self._warn(reason)
            theta = self.prior.default_theta()
        else:
            theta = best[1]
        self.theta = theta
        return theta

    def model(self, X: np.ndarray, z: np.ndarray) -> GaussianProcess:
        """The posterior with the current hyperparameters (the defaults when that fails)."""
        theta = self.prior.default_theta() if self.theta is None else self.theta
        try:
            return GaussianProcess(X, z, theta, self.fmap)
        except np.linalg.LinAlgError as exc:
            self._warn(f"{type(exc).__name__}: {exc}")
            self.theta = self.prior.default_theta()
            return GaussianProcess(X, z, self.theta, self.fmap)

    def state(self) -> dict[str, Any]:
        return {
            "theta": None if self.theta is None else self.theta.tolist(),
            "warned": self.warned,
        }

    def _warn(self, reason: str) -> None:
        if self.warned:
            return
        self.warned = True
        logger.warning(
            "GP hyperparameter fit failed (%s); using default hyperparameters. Further failures "
            "are handled the same way without a warning.",
            reason,
        )


def _negative_log_posterior(
    theta: np.ndarray, X: np.ndarray, z: np.ndarray, fmap: FeatureMap, prior: HyperPrior
) -> tuple[float, np.ndarray]:
    value, grad = log_posterior(theta, X, z, fmap, prior)
    if not math.isfinite(value) or not np.all(np.isfinite(grad)):
        raise FloatingPointError("non-finite log marginal likelihood")
    return -value, -grad
