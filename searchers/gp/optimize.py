"""Maximize log EI over the mixed space: candidates, gradient refinement, discrete moves.

Notation:
    dim: space dimensions; U: (m, dim) unit points; X: (m, F) their features.
    continuous dims: floats without quantization (L-BFGS-B moves them);
    discrete dims: ints and quantized floats (snapped to ``space.unit_levels``) and categoricals.

Steps, and why:
1. candidates: a scrambled Sobol set (global exploration) plus Gaussian perturbations of the best
   observed points at several scales, down to a small one (local exploitation: late in a budget
   the best EI is usually next to the incumbent, and a space-filling set of a few hundred points
   in 6-d almost never lands there; TuRBO and Optuna's GPSampler seed their optimizers the same
   way); every candidate snapped to existing values;
2. the best few candidates are refined jointly by one L-BFGS-B run over their continuous
   coordinates (log EI is a sum over candidates, so one run of the stacked vector is the same as
   separate runs, with one Python call per step: BoTorch's ``gen_candidates_scipy`` trick);
3. discrete moves for each refined candidate: every neighbouring level of each integer or
   quantized dimension, and every category of each categorical one (categories are one-hot in
   the model, so rounding a relaxed coordinate would be meaningless), greedy best-improvement
   for a few rounds;
4. no repeats: the point returned is the best one found that is not a config already observed
   or pending (``exclude``), falling back to the best point's discrete neighbours and then to
   the best new candidate, and to a repeat only when every one of those repeats one. Why: EI
   is positive at an observed point whenever the model allows noise, and an incumbent on a
   bound or a lattice point stays EI's maximum; gp-ei re-evaluated one k-NN config (p on its
   lower bound) 12 times in 100 evaluations (BENCHMARKS.md, "No repeated configs").

With a trust region (``box``, `searchers.gp.trust_region`) every step stays inside it: the Sobol
candidates fill the box and each moves only a random subset of coordinates away from the box's
centre (TuRBO's perturbation mask), the local candidates are clipped to it, L-BFGS-B is bounded by
it, and discrete moves that leave it are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
from scipy.stats import qmc

from searchers.gp.acquisition import log_ei, log_ei_with_gradient
from searchers.gp.kernel import FeatureMap
from searchers.gp.model import GaussianProcess
from searchers.population import reflect
from searchers.space import Lattice, is_new

__all__ = ["AcquisitionSettings", "Box", "maximize_log_ei"]


@dataclass(frozen=True)
class Box:
    """A trust region: ``lower``/``upper`` (dim,) bounds in the unit cube, its ``center``
    (dim,), and the probability ``perturb`` that a Sobol candidate moves a coordinate away from
    the centre."""

    lower: np.ndarray
    upper: np.ndarray
    center: np.ndarray
    perturb: float

    def contains(self, U: np.ndarray, slack: np.ndarray) -> np.ndarray:
        """(m,) whether each row of ``U`` ((m, dim)) lies in the box widened by ``slack``."""
        lo, hi = self.lower - slack - 1e-12, self.upper + slack + 1e-12
        return np.all((lo <= U) & (hi >= U), axis=1)


@dataclass(frozen=True)
class AcquisitionSettings:
    """How hard the acquisition is optimized (see `searchers.gp_ei.GPEIOptions` for defaults)."""

    n_sobol: int = 256
    n_local: int = 256
    local_scales: tuple[float, ...] = (0.1, 0.02, 0.005)
    n_best_local: int = 5
    n_refine: int = 5
    maxiter: int = 50
    discrete_rounds: int = 3


def maximize_log_ei(
    model: GaussianProcess,
    best: float,
    lattice: Lattice,
    fmap: FeatureMap,
    U_best: np.ndarray,
    rng: np.random.Generator,
    settings: AcquisitionSettings,
    *,
    box: Box | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """The snapped unit point ((dim,)) with the highest log EI found (inside ``box`` if given)
    that is not a row of ``exclude`` ((n, dim) snapped unit points: observed and pending).

    ``U_best``: (k, dim) observed points, best first, around which local candidates are drawn.
    """
    cand = _candidates(lattice, U_best, rng, settings, box)  # (m, dim)
    values = _log_ei(model, best, fmap, cand)  # (m,)
    order = np.argsort(-values, kind="stable")
    top = _distinct(cand[order], settings.n_refine)  # (r, dim)
    continuous = [d for d in range(lattice.dim) if lattice.levels[d] is None]
    if continuous and settings.maxiter > 0:
        top = _refine(model, best, fmap, top, continuous, settings.maxiter, lattice, box)
    top_values = _log_ei(model, best, fmap, top)
    for i in range(len(top)):
        top[i], top_values[i] = _discrete_moves(
            model,
            best,
            fmap,
            lattice,
            top[i],
            float(top_values[i]),
            settings.discrete_rounds,
            box,
        )
    i = int(np.argmax(top_values))
    if not math.isfinite(float(top_values[i])):
        top, top_values, i = cand[order[:1]], values[order[:1]], 0
    if exclude is None or not len(exclude) or is_new(top[i : i + 1], exclude)[0]:
        return top[i]
    # The best point repeats a config already seen: the best new one among the other refined
    # points, the best point's discrete neighbours and every candidate.
    near = _neighbours(lattice, top[i], box)  # (v, dim)
    pool = np.vstack([top, near, cand[order]]) if len(near) else np.vstack([top, cand[order]])
    pool_values = np.concatenate(
        [top_values, _log_ei(model, best, fmap, near) if len(near) else [], values[order]]
    )
    new = is_new(pool, exclude)  # (m,)
    if not new.any():
        return top[i]  # every point found repeats one: the space is (nearly) exhausted
    j = int(np.argmax(np.where(new, pool_values, -np.inf)))
    return pool[j] if math.isfinite(float(pool_values[j])) else pool[int(np.argmax(new))]


def _candidates(
    lattice: Lattice,
    U_best: np.ndarray,
    rng: np.random.Generator,
    settings: AcquisitionSettings,
    box: Box | None,
) -> np.ndarray:
    dim = lattice.dim
    sobol = qmc.Sobol(dim, scramble=True, seed=int(rng.integers(2**31)))
    m = max(1, round(math.log2(max(settings.n_sobol, 1))))
    fill = sobol.random_base2(m)  # (2^m, dim)
    if box is not None:
        fill = box.lower + (box.upper - box.lower) * fill
        # TuRBO's mask: each coordinate moves with probability `perturb`, at least one per row.
        mask = rng.random(fill.shape) < box.perturb  # (2^m, dim)
        mask[np.arange(len(fill)), rng.integers(dim, size=len(fill))] = True
        fill = np.where(mask, fill, box.center[None, :])
    parts = [fill]
    if len(U_best) and settings.n_local > 0:
        k = min(len(U_best), settings.n_best_local)
        # The incumbent gets half the local budget; the next best share the rest.
        weights = np.full(k, 0.5 / max(k - 1, 1))
        weights[0] = 0.5 if k > 1 else 1.0
        centres = U_best[rng.choice(k, size=settings.n_local, p=weights / weights.sum())]
        scales = np.array(settings.local_scales)[
            rng.integers(len(settings.local_scales), size=settings.n_local)
        ]  # (n_local,)
        step = np.maximum(scales[:, None], lattice.min_step[None, :])  # (n_local, dim)
        local = reflect(centres + step * rng.standard_normal((settings.n_local, dim)))
        for d in lattice.cat_dims:
            # Switch category with a probability growing with the scale.
            switch = rng.random(settings.n_local) < np.minimum(2.0 * scales, 0.5)
            cats = rng.integers(lattice.n_choices[d], size=settings.n_local)
            local[switch, d] = (cats[switch] + 0.5) / lattice.n_choices[d]
            local[~switch, d] = centres[~switch, d]
        if box is not None:
            local = np.clip(local, box.lower, box.upper)
        parts.append(local)
    cand = np.vstack(parts)  # (m, dim)
    return lattice.snap_rows(cand)


def _log_ei(model: GaussianProcess, best: float, fmap: FeatureMap, U: np.ndarray) -> np.ndarray:
    mean, var = model.predict(fmap.encode(U))
    values = log_ei(mean, var, best)
    return np.where(np.isfinite(values), values, -np.inf)


def _distinct(U: np.ndarray, k: int) -> np.ndarray:
    out: list[np.ndarray] = []
    for u in U:
        if all(np.max(np.abs(u - v)) > 1e-9 for v in out):
            out.append(u)
            if len(out) == k:
                break
    return np.array(out)


def _refine(
    model: GaussianProcess,
    best: float,
    fmap: FeatureMap,
    top: np.ndarray,
    continuous: list[int],
    maxiter: int,
    lattice: Lattice,
    box: Box | None,
) -> np.ndarray:
    r, n_c = len(top), len(continuous)
    cols = np.array([fmap.column[d] for d in continuous])
    base = top.copy()
    # Conditional space: an inactive coordinate stays at its fixed value (zero gradient); the
    # branch choices are categorical, so which coordinates are active does not change here.
    active = lattice.space.active(base)[:, continuous].ravel() if lattice.conditional else None

    def negative(flat: np.ndarray) -> tuple[float, np.ndarray]:
        U = base.copy()
        U[:, continuous] = flat.reshape(r, n_c)
        mean, var, dmean, dvar = model.predict_with_gradient(fmap.encode(U))
        values, grad = log_ei_with_gradient(mean, var, dmean, dvar, best)  # (r,), (r, F)
        values = np.where(np.isfinite(values), values, -1e6)
        grad = np.where(np.isfinite(grad), grad, 0.0)
        flat_grad = grad[:, cols].ravel()
        if active is not None:
            flat_grad = np.where(active, flat_grad, 0.0)
        return -float(values.sum()), -flat_grad

    x0 = base[:, continuous].ravel()
    if box is None:
        bounds = [(0.0, 1.0)] * len(x0)
    else:
        lo = np.tile(box.lower[continuous], r)
        hi = np.tile(box.upper[continuous], r)
        x0 = np.clip(x0, lo, hi)  # a snapped start may sit a rounding error outside
        bounds = list(zip(lo.tolist(), hi.tolist(), strict=True))
    res = scipy.optimize.minimize(
        negative,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter},
    )
    out = base.copy()
    if np.all(np.isfinite(res.x)):
        out[:, continuous] = np.clip(res.x.reshape(r, n_c), 0.0, 1.0)
        out = lattice.canonical(out)
    # L-BFGS-B accepts only decreasing steps of the sum; keep each start's own better point.
    old, new = _log_ei(model, best, fmap, base), _log_ei(model, best, fmap, out)
    return np.where((new >= old)[:, None], out, base)


def _discrete_moves(
    model: GaussianProcess,
    best: float,
    fmap: FeatureMap,
    lattice: Lattice,
    u: np.ndarray,
    value: float,
    rounds: int,
    box: Box | None,
) -> tuple[np.ndarray, float]:
    """Greedy best-improvement over single-dimension discrete moves (inside ``box``, which is at
    least one level wide on each side of its centre)."""
    if all(lv is None for lv in lattice.levels):
        return u, value
    for _ in range(rounds):
        V = _neighbours(lattice, u, box)  # (n_variants, dim)
        if not len(V):
            break
        values = _log_ei(model, best, fmap, V)
        j = int(np.argmax(values))
        if not values[j] > value:
            break
        u, value = V[j], float(values[j])
    return u, value


def _neighbours(lattice: Lattice, u: np.ndarray, box: Box | None) -> np.ndarray:
    """(v, dim) the single-dimension discrete moves from ``u``: the two levels either side on
    each integer or quantized dimension, every other category on each categorical one (active
    dimensions only; inside ``box`` if given)."""
    variants: list[np.ndarray] = []
    active = lattice.space.active(u) if lattice.conditional else None
    for d, levels in enumerate(lattice.levels):
        if levels is None or (active is not None and not active[d]):
            continue  # continuous, or inactive: a move there is the same config
        if d in lattice.cat_dims:
            current = lattice.category_of(d, u[d])
            options = [i for i in range(lattice.n_choices[d]) if i != current]
        else:
            current = lattice.level_index(d, u[d])
            options = [
                i
                for i in (current - 2, current - 1, current + 1, current + 2)
                if 0 <= i < len(levels)
            ]
        for i in options:
            v = u.copy()
            v[d] = levels[i]
            variants.append(v)
    if not variants:
        return np.zeros((0, lattice.dim))
    # A move of a branch choice takes the new branch's parameters to their fixed value.
    V = lattice.canonical(np.stack(variants))  # (v, dim)
    if box is not None:
        V = V[box.contains(V, lattice.min_step)]
    return V
