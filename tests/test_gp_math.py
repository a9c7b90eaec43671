"""Numerics of the GP-EI core (`searchers.gp`): kernel, model, log EI, optimizer, exact state."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from searchers.gp.acquisition import log_ei, log_ei_with_gradient, log_h
from searchers.gp.core import GPEICore, GPEIOptions
from searchers.gp.kernel import FeatureMap, Matern52
from searchers.gp.model import (
    GaussianProcess,
    GPFitter,
    HyperPrior,
    cholesky_with_jitter,
    log_posterior,
    training_subset,
    warp_outputs,
)
from searchers.space import CategoricalParam, FloatParam, IntParam, SearchSpace

MIXED_KINDS = ("float", "categorical", "int", "float")
MIXED_CHOICES = (None, 3, 5, None)


def _mixed_features(n: int, seed: int = 0) -> tuple[FeatureMap, np.ndarray]:
    fmap = FeatureMap(MIXED_KINDS, MIXED_CHOICES)
    U = np.random.default_rng(seed).random((n, len(MIXED_KINDS)))  # (n, dim)
    return fmap, fmap.encode(U)


def _theta(fmap: FeatureMap, noise: float = 1e-6) -> np.ndarray:
    return np.concatenate([np.log([0.3, 0.7, 0.5, 1.2][: fmap.dim]), [0.2, math.log(noise)]])


def test_feature_map_one_hot() -> None:
    fmap = FeatureMap(MIXED_KINDS, MIXED_CHOICES)
    assert fmap.n_features == 1 + 3 + 1 + 1
    X = fmap.encode(np.array([[0.25, 0.9, 0.5, 0.0], [0.0, 0.1, 1.0, 1.0]]))
    np.testing.assert_array_equal(X[:, 1:4], [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(X[:, [0, 4, 5]], [[0.25, 0.5, 0.0], [0.0, 1.0, 1.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matrix_is_psd_with_one_hot_dims(seed: int) -> None:
    fmap, X = _mixed_features(40, seed)
    kernel = Matern52(np.array([0.1, 2.0, 0.3, 5.0]), 1.7, fmap.owner)
    K = kernel(X, X)
    np.testing.assert_allclose(K, K.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(K), 1.7)
    assert np.min(np.linalg.eigvalsh(K)) > -1e-8
    K_grad, _, S = kernel.with_hyper_gradients(X)
    np.testing.assert_allclose(K_grad, K, atol=1e-10)
    assert S.shape == (4, 40, 40)


def test_gp_interpolates_noise_free_data() -> None:
    fmap, X = _mixed_features(25, 3)
    z = np.sin(6.0 * X[:, 0]) + X[:, 4] - X[:, 1]  # (n,)
    gp = GaussianProcess(X, z, _theta(fmap), fmap)
    mean, var = gp.predict(X)
    np.testing.assert_allclose(mean, z, atol=1e-3)
    assert np.max(var) < 1e-3
    _, far_var = gp.predict(fmap.encode(np.array([[0.5, 0.5, 0.5, 0.5]])) + 10.0)
    assert far_var[0] > 1.0  # prior variance exp(0.2) away from the data


def _naive_ei(mean: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
    z = (best - mean) / sigma
    return sigma * (scipy.stats.norm.pdf(z) + z * scipy.stats.norm.cdf(z))


def test_log_ei_matches_naive_where_finite() -> None:
    z = np.linspace(-35.0, 6.0, 4001)
    sigma = np.full_like(z, 0.7)
    mean = -z * sigma  # best = 0
    naive = _naive_ei(mean, sigma, 0.0)
    ok = naive > 1e-300
    assert ok.sum() > 3500
    np.testing.assert_allclose(
        log_ei(mean, sigma**2, 0.0)[ok], np.log(naive[ok]), rtol=1e-9, atol=1e-9
    )


def test_log_ei_finite_and_monotone_where_naive_underflows() -> None:
    z = -np.logspace(1.0, 6.0, 2000)[::-1]  # -1e6 .. -10, increasing
    values = log_h(z)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) > 0)
    assert _naive_ei(-z, np.ones_like(z), 0.0)[0] == 0.0  # naive EI is exactly 0 there
    # Continuous across the switch to the asymptotic series at z = -100.
    around = log_h(np.array([-100.0 - 1e-9, -100.0 + 1e-9]))
    assert abs(around[0] - around[1]) < 1e-6  # slope ~|z| = 100 over 2e-9, plus round-off


def test_log_ei_gradient_matches_finite_differences() -> None:
    fmap = FeatureMap(("float", "float", "float"), (None, None, None))
    rng = np.random.default_rng(4)
    X = rng.random((15, 3))
    z = np.cos(4.0 * X[:, 0]) + X[:, 1] ** 2  # (n,)
    gp = GaussianProcess(X, z, np.log([0.4, 0.6, 1.0, 1.0, 1e-4]), fmap)
    best = float(z.min())

    def value(x: np.ndarray) -> float:
        mean, var = gp.predict(x[None, :])
        return float(log_ei(mean, var, best)[0])

    def grad(x: np.ndarray) -> np.ndarray:
        out = gp.predict_with_gradient(x[None, :])
        return log_ei_with_gradient(*out, best)[1][0]

    for x in rng.random((5, 3)):
        numeric = _central_difference(value, x, 1e-6)
        np.testing.assert_allclose(grad(x), numeric, rtol=1e-5, atol=1e-6)
    # Far from the data and the incumbent too (where naive EI would have no gradient).
    far = np.array([0.9, 0.95, 0.99])
    assert scipy.optimize.check_grad(value, grad, far, epsilon=1e-6) < 1e-3 * (
        1.0 + np.linalg.norm(grad(far))
    )


def _central_difference(f: Any, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences: forward ones (approx_fprime) err by h * curvature, too much where
    log EI is steep next to a data point."""
    eye = np.eye(len(x))
    return np.array([(f(x + h * e) - f(x - h * e)) / (2.0 * h) for e in eye])


@pytest.mark.parametrize("spread", [0.5, 2.0])
def test_marginal_likelihood_gradient_matches_finite_differences(spread: float) -> None:
    fmap, X = _mixed_features(20, 5)
    z = warp_outputs(np.exp(2.0 * X[:, 0]) + X[:, 2] + 0.1 * X[:, 4])
    prior = HyperPrior(fmap.dim, lengthscale_spread=spread)
    theta = _theta(fmap, noise=1e-2)

    def value(t: np.ndarray) -> float:
        return log_posterior(t, X, z, fmap, prior)[0]

    numeric = scipy.optimize.approx_fprime(theta, value, 1e-6)
    np.testing.assert_allclose(
        log_posterior(theta, X, z, fmap, prior)[1], numeric, rtol=1e-4, atol=1e-4
    )


def test_cholesky_jitter_escalation() -> None:
    K = np.ones((5, 5))  # rank 1: plain Cholesky fails
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(K)
    L = cholesky_with_jitter(K)
    np.testing.assert_allclose(L @ L.T, K, atol=1e-4)
    with pytest.raises(np.linalg.LinAlgError):
        cholesky_with_jitter(-np.eye(3))


def test_fit_falls_back_to_defaults_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    fmap, X = _mixed_features(10, 6)
    fitter = GPFitter(fmap)
    bad_z = np.full(10, np.nan)
    with caplog.at_level(logging.WARNING, logger="searchers.gp.model"):
        for _ in range(3):
            theta = fitter.fit(X, bad_z, restart=True)
            np.testing.assert_array_equal(theta, fitter.prior.default_theta())
    warnings = [r for r in caplog.records if "GP hyperparameter fit failed" in r.message]
    assert len(warnings) == 1
    assert fitter.warned


def test_hierarchical_length_scale_prior_matches_its_gaussian() -> None:
    """The prior's log density is that of N(mu 1, spread^2 I + sigma^2 11^T), up to a constant."""
    prior = HyperPrior(4, lengthscale_sigma=1.0, lengthscale_spread=0.5)
    cov = 0.25 * np.eye(4) + np.ones((4, 4))
    dist = scipy.stats.multivariate_normal(np.full(4, prior.lengthscale_mu), cov)
    rng = np.random.default_rng(3)
    a, b = (np.concatenate([rng.normal(0.7, 1.0, 4), [0.1, -5.0]]) for _ in range(2))
    expected = dist.logpdf(a[:4]) - dist.logpdf(b[:4])
    got = prior.log_density(a)[0] - prior.log_density(b)[0]
    noise_and_variance = (
        prior.log_density(np.concatenate([b[:4], a[4:]]))[0] - prior.log_density(b)[0]
    )
    assert got - noise_and_variance == pytest.approx(expected, rel=1e-10)


def test_fit_recovers_length_scales_of_a_relevant_and_an_irrelevant_dim() -> None:
    fmap = FeatureMap(("float", "float"), (None, None))
    X = np.random.default_rng(7).random((40, 2))
    z = warp_outputs(np.sin(8.0 * X[:, 0]))  # depends on dimension 0 only
    theta = GPFitter(fmap).fit(X, z, restart=True)
    assert theta[0] < theta[1] - 1.0  # log length scales: dim 0 much shorter


def test_warp_is_monotone_and_tames_outliers() -> None:
    y = np.concatenate([np.random.default_rng(8).normal(size=30), [1e6, 1e9]])
    z = warp_outputs(y)
    assert np.all(np.isfinite(z))
    order = np.argsort(y)
    assert np.all(np.diff(z[order]) >= 0)
    assert abs(np.mean(z)) < 1e-9
    assert abs(np.std(z) - 1.0) < 1e-9
    # The inliers keep a spread: outliers do not squash them onto one value.
    assert np.std(z[:30]) > 0.3
    np.testing.assert_array_equal(warp_outputs(np.ones(4)), np.zeros(4))


def test_training_subset_keeps_the_best_and_its_size() -> None:
    rng = np.random.default_rng(9)
    U, y = rng.random((50, 3)), rng.random(50)
    idx = training_subset(U, y, 20)
    assert len(idx) == 20
    assert len(set(idx.tolist())) == 20
    assert set(np.argsort(y)[:10].tolist()) <= set(idx.tolist())
    np.testing.assert_array_equal(training_subset(U, y, 60), np.arange(50))


def test_kriging_believer_shrinks_variance_at_pending_only() -> None:
    fmap = FeatureMap(("float", "float"), (None, None))
    X = np.random.default_rng(10).random((12, 2))
    z = X[:, 0] - X[:, 1]
    gp = GaussianProcess(X, z, np.log([0.3, 0.3, 1.0, 1e-4]), fmap)
    pending = np.array([[0.5, 0.5]])
    fantasy = gp.condition_on(pending)
    mean0, var0 = gp.predict(pending)
    mean1, var1 = fantasy.predict(pending)
    np.testing.assert_allclose(mean1, mean0, atol=1e-6)
    assert var1[0] < 1e-3 < var0[0]
    refit = GaussianProcess(np.vstack([X, pending]), np.concatenate([z, mean0]), gp.theta, fmap)
    probe = np.random.default_rng(11).random((6, 2))
    np.testing.assert_allclose(fantasy.predict(probe)[1], refit.predict(probe)[1], atol=1e-9)


# ---- the core ---------------------------------------------------------------------------------
def _space() -> SearchSpace:
    return SearchSpace(
        (
            FloatParam(("x",), -2.0, 2.0),
            FloatParam(("lr",), 1e-4, 1.0, log=True),
            IntParam(("n",), 1, 8),
            CategoricalParam(("c",), ("a", "b", "c")),
        )
    )


def _f(space: SearchSpace, u: np.ndarray) -> float:
    cfg = space.from_unit(u)
    return (
        (cfg["x"] - 0.5) ** 2
        + (math.log10(cfg["lr"]) + 2) ** 2
        + 0.1 * abs(cfg["n"] - 3)
        + (0.0 if cfg["c"] == "b" else 1.0)
    )


def test_core_state_restores_exactly_with_pending() -> None:
    space = _space()
    core = GPEICore(space, rng=np.random.default_rng(0), options=GPEIOptions(n_initial=5))
    for _ in range(12):
        u = core.ask(np.zeros((0, space.dim)))
        assert u is not None
        core.tell(u, _f(space, u))
    pending = np.stack([core.ask(np.zeros((0, space.dim))) for _ in range(1)])
    state = json.loads(json.dumps(core.state()))
    restored = GPEICore.from_state(space, state)
    np.testing.assert_array_equal(restored.ask(pending), core.ask(pending))
    assert core.hyperparameters is not None
    restored.tell(pending[0], 1.0)
    core.tell(pending[0], 1.0)
    empty = np.zeros((0, space.dim))
    np.testing.assert_array_equal(restored.ask(empty), core.ask(empty))


def test_core_spreads_pending_asks_and_snaps_discrete_dims() -> None:
    space = _space()
    core = GPEICore(space, rng=np.random.default_rng(1), options=GPEIOptions(n_initial=6))
    for _ in range(15):
        u = core.ask(np.zeros((0, space.dim)))
        assert u is not None
        core.tell(u, _f(space, u))
    asked: list[np.ndarray] = []
    for _ in range(4):
        u = core.ask(np.array(asked).reshape(-1, space.dim))
        assert u is not None
        assert all(np.max(np.abs(u - v)) > 1e-6 for v in asked)
        for d in (0, 2):  # c and n are discrete: on their levels
            levels = space.unit_levels(d)
            assert levels is not None
            assert np.min(np.abs(levels - u[d])) < 1e-12
        asked.append(u)


def test_loo_skill_matches_refitting_without_each_point() -> None:
    fmap, X = _mixed_features(20, 4)
    z = np.sin(6.0 * X[:, 0]) + X[:, 4] - X[:, 1]  # (n,)
    z = (z - z.mean()) / z.std()
    theta = _theta(fmap, noise=1e-3)
    gp = GaussianProcess(X, z, theta, fmap)
    residuals = []
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        mean, _ = GaussianProcess(X[keep], z[keep], theta, fmap).predict(X[i : i + 1])
        residuals.append(z[i] - mean[0])
    expected = 1.0 - np.mean(np.square(residuals)) / np.mean(z**2)
    assert gp.loo_skill() == pytest.approx(expected, rel=1e-6)
    assert expected > 0.5  # a smooth function: the held-out points are predicted
    white = np.random.default_rng(0).normal(size=len(z))
    white = (white - white.mean()) / white.std()
    short = np.concatenate([np.full(fmap.dim, math.log(1e-3)), [0.0, math.log(1e-4)]])
    assert GaussianProcess(X, white, short, fmap).loo_skill() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_core_keeps_exploring_when_the_gp_cannot_predict_its_data(seed: int) -> None:
    # A flat objective seen through noise: the MAP fit explains it with length scales at their
    # lower bound (white noise), where EI is flat off the data. Before the skill check the asks
    # then collapsed onto the incumbent (nearest pair 5e-4 apart in 20 asks); the check makes
    # them space-filling Sobol points instead.
    space = SearchSpace(tuple(FloatParam((f"x{i}",)) for i in range(6)))
    core = GPEICore(space, rng=np.random.default_rng(seed))
    noise = np.random.default_rng(100 + seed)
    asks = []
    for _ in range(30):
        u = core.ask(np.zeros((0, space.dim)))
        assert u is not None
        asks.append(u)
        core.tell(u, float(noise.normal()))
    A = np.array(asks[10:])  # (20, 6) the asks after the initial design
    gaps = np.sqrt(np.sum((A[:, None, :] - A[None, :, :]) ** 2, axis=2))
    np.fill_diagonal(gaps, np.inf)
    assert np.min(gaps) > 0.1


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="n_initial"):
        GPEIOptions(n_initial=0)
    with pytest.raises(ValueError, match="local_scales"):
        GPEIOptions(local_scales=())
    with pytest.raises(ValueError, match="max_fit_points"):
        GPEIOptions(max_fit_points=2)
    with pytest.raises(ValueError, match="lengthscale_spread"):
        GPEIOptions(lengthscale_spread=0.0)
    with pytest.raises(ValueError, match="min_loo_skill"):
        GPEIOptions(min_loo_skill=1.0)
    assert GPEIOptions(min_loo_skill=None).min_loo_skill is None
    assert GPEIOptions().initial_points(2) == 5
    assert GPEIOptions().initial_points(20) == 10
