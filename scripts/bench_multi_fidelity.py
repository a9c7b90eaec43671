"""Searchers under a simulated asynchronous ASHA on synthetic learning curves (issue #15).

Every contender is driven through the plain Ray Searcher protocol (``set_search_properties``,
``suggest``, ``on_trial_result`` every epoch, ``on_trial_complete``), no Ray runtime, under the
same simulated scheduler and the same budget of total epochs:

- asynchronous ASHA as Ray's ``ASHAScheduler`` does it (Li et al. 2020): rungs at
  ``grace * eta^k`` epochs below ``max_t``; a trial reaching a rung is stopped unless its value is
  within the best ``1/eta`` of the values recorded there so far; 4 trials run at once, one epoch
  per time step each; or FIFO (every trial runs ``max_t`` epochs), the full-fidelity reference;
- learning curves ``f(x, t) = final(x) + A s(x) g(t, r(x)) + noise`` on the unit cube, where
  ``final`` is a test function of `scripts.bench_problems` scaled so that 0 is its optimum and 1
  the median of random configs, ``g(t, r) = (t^-r - T^-r) / (1 - T^-r)`` decays from 1 at
  ``t = 1`` to 0 at ``t = T = max_t``, and ``s(x)`` (how slowly a config converges, with rate
  ``r(x)`` small where ``s`` is large) is high around the optimum: the best configs look poor
  after a few epochs, so early epochs mislead, as they do for well-regularized networks;
- real learning curves (``--problems mlp-digits hgb-digits``): a PyTorch MLP on digits by epochs
  and a HistGradientBoostingClassifier on digits by boosting stages; the per-epoch validation
  losses of a fixed pool of configs are computed once and cached (``<out>/curves/``), and a
  suggestion is evaluated as its nearest pool config;
- the reported regret at a budget of E epochs: ``final(incumbent)``, where the incumbent is the
  trial with the best observed value at the highest fidelity any trial reached within E epochs
  (noise-free, so 0 is the optimum; mean over seeds, then over problems).

Each run (problem, contender, seed) is written to ``<out>/runs/`` as soon as it finishes, under
a name that holds a hash of everything that decides it (contender, scheduler, budget, problem),
so a killed benchmark loses nothing and a rerun only does what is missing. Run (``--jobs 1`` on
a shared machine; ``--quick`` for a smoke run):

    nohup .venv/bin/python scripts/bench_multi_fidelity.py --seeds 20 --jobs 1 \\
        --out scripts/results/multi_fidelity > /tmp/bench_mf.log 2>&1 &
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import bench_problems as bp

ETA, MAX_T, GRACE, CONCURRENT = 3, 27, 1, 4
BUDGET = 540  # 20 full trials
BUDGETS = (135, 270, 540)
NOISE = 0.02
GAP = 1.0


# ---- problems ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveProblem:
    """A learning-curve problem on [0, 1]^dim (see the module docstring)."""

    name: str
    dim: int
    fn: Callable[[np.ndarray], float]
    low: np.ndarray  # (dim,)
    high: np.ndarray  # (dim,)
    optimum: float
    argmin: np.ndarray  # (dim,) unit coordinates
    scale: float  # median of random configs minus the optimum

    def final(self, u: np.ndarray) -> float:
        return (self.fn(self.low + u * (self.high - self.low)) - self.optimum) / self.scale

    def slowness(self, u: np.ndarray) -> float:
        """Close to 1 near the optimum (slow convergers), small far from it."""
        d2 = float(np.sum((u - self.argmin) ** 2)) / self.dim
        return math.exp(-d2 / (2 * 0.2**2))

    def value(self, u: np.ndarray, t: int, rng: np.random.Generator) -> float:
        s = self.slowness(u)
        rate = 0.25 + 1.75 * (1.0 - s)  # slow near the optimum, fast elsewhere
        g = (t**-rate - MAX_T**-rate) / (1.0 - MAX_T**-rate)
        return self.final(u) + GAP * s * g + float(rng.normal(0.0, NOISE))


def _curve_problem(
    name: str,
    fn: Callable[[np.ndarray], float],
    bounds: list[tuple[float, float]],
    optimum: float,
    argmin: tuple[float, ...],
) -> CurveProblem:
    low = np.array([b[0] for b in bounds])
    high = np.array([b[1] for b in bounds])
    u_star = (np.array(argmin) - low) / (high - low)
    samples = np.random.default_rng(12345).random((2000, len(bounds)))
    values = [fn(low + u * (high - low)) for u in samples]
    scale = float(np.median(values) - optimum)
    return CurveProblem(name, len(bounds), fn, low, high, optimum, u_star, scale)


@functools.cache
def problems() -> tuple[CurveProblem, ...]:
    """The problems, built once per process (their scales cost 8000 evaluations)."""
    sty_x = -2.903534027771177
    return (
        _curve_problem(
            "hartmann6", bp.hartmann6, [(0.0, 1.0)] * 6, bp.HARTMANN6_OPTIMUM, bp.HARTMANN6_ARGMIN
        ),
        _curve_problem("ackley5", bp.ackley, [(-5.0, 10.0)] * 5, 0.0, (0.0,) * 5),
        _curve_problem(
            "styblinski4",
            bp.styblinski_tang,
            [(-5.0, 5.0)] * 4,
            bp.styblinski_tang(np.full(4, sty_x)),
            (sty_x,) * 4,
        ),
        _curve_problem("levy3", bp.levy, [(-10.0, 10.0)] * 3, 0.0, (1.0,) * 3),
    )


# ---- real learning curves -------------------------------------------------------------------
#: Real problems: a fixed pool of configs (a scrambled Sobol design on the unit cube) whose
#: per-epoch validation losses are computed once and cached (``<out>/curves/<name>.npz``); a
#: suggested config is evaluated as its nearest pool config (a tabular benchmark, as in
#: HPOBench/LCBench), so many seeds cost no training. ``<name>-smooth`` is the same pool read as
#: a surrogate: a kernel-weighted mean of the pool's curves (Gaussian weights on the distance,
#: bandwidth SMOOTH_BANDWIDTH x the pool's median nearest-neighbour distance). The table is a
#: mosaic of 128 flat cells in 4-d: nearby suggestions return the same curve, which costs a
#: searcher that refines locally a trial for no information; the surrogate is continuous.
POOL_SIZE = 128
REAL = ("mlp-digits", "hgb-digits", "cnn-digits")
SMOOTH = tuple(f"{name}-smooth" for name in REAL)
SMOOTH_BANDWIDTH = 0.4
DIVERGED = 10.0  # the loss a diverged (non-finite) epoch is recorded with


@dataclass(frozen=True)
class PoolProblem:
    """Real per-epoch curves of a pool of configs.

    pool: (POOL_SIZE, dim) unit points; curves: (POOL_SIZE, MAX_T) validation losses;
    bandwidth: 0 for the nearest pool config, else the surrogate's kernel width.
    """

    name: str
    dim: int
    pool: np.ndarray
    curves: np.ndarray
    bandwidth: float = 0.0

    def _nearest(self, u: np.ndarray) -> int:
        return int(np.argmin(np.sum((self.pool - u) ** 2, axis=1)))

    def curve(self, u: np.ndarray) -> np.ndarray:
        """(MAX_T,) the losses of config ``u`` after each epoch."""
        if not self.bandwidth:
            return np.asarray(self.curves[self._nearest(u)])
        d2 = np.sum((self.pool - u) ** 2, axis=1)  # (POOL_SIZE,)
        w = np.exp(-(d2 - d2.min()) / (2 * self.bandwidth**2))
        # Averaged, a diverged net's finite loss (the MLP pool has one of 2.5e25) would swamp
        # its neighbours: capped at the loss a non-finite one gets.
        return np.asarray(w @ np.minimum(self.curves, DIVERGED) / w.sum())

    @functools.cached_property
    def _scale(self) -> tuple[float, float]:
        """The best final loss and the median one: regret 0 and 1."""
        if not self.bandwidth:
            last = self.curves[:, -1]  # (POOL_SIZE,)
            return float(np.min(last)), float(np.median(last))
        from scipy.stats import qmc

        dense = qmc.Sobol(self.dim, scramble=True, seed=1).random(4096)  # (4096, dim)
        finals = [self.curve(u)[-1] for u in np.vstack([self.pool, dense])]
        return float(np.min(finals)), float(np.median(finals))

    def final(self, u: np.ndarray) -> float:
        best, median = self._scale
        return (float(self.curve(u)[-1]) - best) / (median - best)

    def value(self, u: np.ndarray, t: int, rng: np.random.Generator) -> float:
        return float(self.curve(u)[t - 1])


def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(
        X / 16.0, y, test_size=0.4, random_state=0, stratify=y
    )
    return X_tr, X_va, y_tr, y_va


def _mlp_curve(u: np.ndarray) -> np.ndarray:
    """A one-hidden-layer PyTorch MLP on digits trained MAX_T epochs with SGD + momentum; the
    validation cross-entropy after each epoch. u: lr 10^[-3.5, 0], width 2^[4, 8], weight decay
    10^[-6, -1], batch 2^[4, 8]."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    X_tr, X_va, y_tr, y_va = _digits_split()
    lr, width = 10 ** (-3.5 + 3.5 * u[0]), round(2 ** (4 + 4 * u[1]))
    wd, batch = 10 ** (-6 + 5 * u[2]), round(2 ** (4 + 4 * u[3]))
    net = torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    )
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    xt, yt = torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr)
    xv, yv = torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va)
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(MAX_T):
        order = torch.randperm(len(xt), generator=gen)
        for k in range(0, len(xt), batch):
            idx = order[k : k + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(net(xv), yv))
        out.append(loss if math.isfinite(loss) else DIVERGED)
    return np.array(out)  # (MAX_T,)


def _cnn_curve(u: np.ndarray) -> np.ndarray:
    """A two-convolution PyTorch CNN on the 8x8 digits images trained MAX_T epochs with Adam
    (batch 64); the validation cross-entropy after each epoch. u: lr 10^[-4, -0.5], channels
    2^[2, 5], weight decay 10^[-6, -1], dropout [0, 0.6] before the linear layer."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    X_tr, X_va, y_tr, y_va = _digits_split()
    lr, ch = 10 ** (-4 + 3.5 * u[0]), round(2 ** (2 + 3 * u[1]))
    wd, drop = 10 ** (-6 + 5 * u[2]), 0.6 * u[3]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, ch, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(ch, 2 * ch, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Dropout(drop),
        torch.nn.Linear(2 * ch * 16, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
    xt = torch.tensor(X_tr, dtype=torch.float32).reshape(-1, 1, 8, 8)
    xv = torch.tensor(X_va, dtype=torch.float32).reshape(-1, 1, 8, 8)
    yt, yv = torch.tensor(y_tr), torch.tensor(y_va)
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(MAX_T):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        for k in range(0, len(xt), 64):
            idx = order[k : k + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(net(xv), yv))
        out.append(loss if math.isfinite(loss) else DIVERGED)
    return np.array(out)  # (MAX_T,)


def _hgb_curve(u: np.ndarray) -> np.ndarray:
    """HistGradientBoostingClassifier on digits, MAX_T boosting stages; the validation log loss
    after each stage (staged_predict_proba). u: learning rate 10^[-2, 0], max_leaf_nodes
    2^[2, 6], l2_regularization 10^[-4, 1], min_samples_leaf 2^[1, 6]."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import log_loss

    X_tr, X_va, y_tr, y_va = _digits_split()
    model = HistGradientBoostingClassifier(
        learning_rate=10 ** (-2 + 2 * u[0]),
        max_leaf_nodes=round(2 ** (2 + 4 * u[1])),
        l2_regularization=10 ** (-4 + 5 * u[2]),
        min_samples_leaf=round(2 ** (1 + 5 * u[3])),
        max_iter=MAX_T,
        early_stopping=False,
        random_state=0,
    ).fit(X_tr, y_tr)
    staged = [log_loss(y_va, p, labels=range(10)) for p in model.staged_predict_proba(X_va)]
    return np.array(staged)  # (MAX_T,)


def real_problem(name: str, cache_dir: Path) -> PoolProblem:
    """The pool's curves, computed once (minutes) and then read from ``cache_dir``."""
    from scipy.stats import qmc

    dim = 4
    pool = qmc.Sobol(dim, scramble=True, seed=0).random(POOL_SIZE)  # (POOL_SIZE, dim)
    path = cache_dir / f"{name}.npz"
    if path.exists():
        curves = np.load(path)["curves"]
    else:
        fn = {"mlp-digits": _mlp_curve, "hgb-digits": _hgb_curve, "cnn-digits": _cnn_curve}[name]
        start = time.perf_counter()
        curves = np.stack([fn(u) for u in pool])  # (POOL_SIZE, MAX_T)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, curves=curves, pool=pool)
        os.replace(tmp, path)
        print(f"{name}: {POOL_SIZE} curves in {time.perf_counter() - start:.0f} s", flush=True)
    return PoolProblem(name, dim, pool, curves)


def smooth_problem(name: str, cache_dir: Path) -> PoolProblem:
    """``<real name>-smooth``: the real pool's curves read as a continuous surrogate."""
    table = real_problem(name.removesuffix("-smooth"), cache_dir)
    d = np.sqrt(np.sum((table.pool[:, None] - table.pool[None]) ** 2, axis=2))  # (P, P)
    np.fill_diagonal(d, np.inf)
    width = SMOOTH_BANDWIDTH * float(np.median(d.min(axis=1)))
    return PoolProblem(name, table.dim, table.pool, table.curves, bandwidth=width)


def get_problem(name: str, cache_dir: Path) -> CurveProblem | PoolProblem:
    if name in REAL:
        return real_problem(name, cache_dir)
    if name in SMOOTH:
        return smooth_problem(name, cache_dir)
    return next(p for p in problems() if p.name == name)


# ---- contenders ----------------------------------------------------------------------------
# name: (searcher, options, scheduler)
CONTENDERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "ASHA+random": ("random", {}, "asha"),
    "ASHA+optuna-tpe": ("optuna-tpe", {}, "asha"),
    "ASHA+gp-ei(before)": ("gp-ei", {"fidelity_attr": None}, "asha"),
    "ASHA+gp-ei(after)": ("gp-ei", {}, "asha"),
    "ASHA+gp-ei(after, stopped=worst)": ("gp-ei", {"stopped_trials": "worst"}, "asha"),
    "ASHA+pso(before)": ("pso", {"fidelity_attr": None}, "asha"),
    "ASHA+pso(after)": ("pso", {}, "asha"),
    "ASHA+genetic(before)": ("genetic", {"fidelity_attr": None}, "asha"),
    "ASHA+genetic(after)": ("genetic", {}, "asha"),
    "FIFO+gp-ei": ("gp-ei", {}, "fifo"),
    # Not under the simulated ASHA: Optuna's own loop with its Hyperband pruner, and Ray's
    # TuneBOHB under a simulated HyperBandForBOHB, the scheduler it is made for.
    "Optuna TPE+HyperbandPruner": ("optuna", {}, "optuna-hyperband"),
    "TuneBOHB+HyperBandForBOHB": ("tune-bohb", {}, "hyperband-bohb"),
}


#: What ASHA+gp-ei(after) is compared with at every budget (the issue's goal names the first two).
RIVALS = (
    "ASHA+random",
    "ASHA+optuna-tpe",
    "Optuna TPE+HyperbandPruner",
    "TuneBOHB+HyperBandForBOHB",
)


# ---- the simulated scheduler ---------------------------------------------------------------
@dataclass
class _Trial:
    tid: str
    u: np.ndarray
    t: int = 0
    last: float = math.nan
    stopped: bool = False


def run_one(
    problem: CurveProblem | PoolProblem,
    searcher_name: str,
    options: dict[str, Any],
    scheduler: str,
    seed: int,
    budget: int = BUDGET,
    log: list[dict[str, Any]] | None = None,
) -> list[tuple[int, float]]:
    """Drive one searcher; returns (epochs used, regret of the incumbent) after each trial.
    ``log`` (optional) receives every suggested config, in order."""
    import searchers

    space = {f"x{i}": _uniform() for i in range(problem.dim)}
    searcher = searchers.make_searcher(searcher_name, seed=seed, **options)
    searcher.set_search_properties("loss", "min", space)
    rng = np.random.default_rng([seed, 7])
    rungs = [GRACE * ETA**k for k in range(10) if GRACE * ETA**k < MAX_T]
    recorded: dict[int, list[float]] = {r: [] for r in rungs}
    running: list[_Trial] = []
    done: list[_Trial] = []
    used, n_made = 0, 0
    curve: list[tuple[int, float]] = []
    while True:
        while len(running) < CONCURRENT and used + len(running) < budget:
            tid = f"t{n_made}"
            config = searcher.suggest(tid)
            if not isinstance(config, dict):
                break
            n_made += 1
            if log is not None:
                log.append(config)
            running.append(_Trial(tid, np.array([config[f"x{i}"] for i in range(problem.dim)])))
        if not running:
            break
        for trial in list(running):
            trial.t += 1
            used += 1
            trial.last = problem.value(trial.u, trial.t, rng)
            result = {"loss": trial.last, "training_iteration": trial.t}
            stop = trial.t >= MAX_T
            if scheduler == "asha" and trial.t in recorded:
                values = recorded[trial.t]
                # Ray's ASHA: the cutoff is the (1 - 1/eta) quantile of recorded rewards
                # (reward = -loss); a trial below it stops.
                if values and -trial.last < np.nanpercentile(values, (1 - 1 / ETA) * 100):
                    stop = trial.stopped = True
                values.append(-trial.last)
            if stop:
                searcher.on_trial_complete(trial.tid, result)
                running.remove(trial)
                done.append(trial)
                curve.append((used, _regret(problem, done)))
            else:
                searcher.on_trial_result(trial.tid, result)
    return curve


def run_optuna_hyperband(
    problem: CurveProblem | PoolProblem, seed: int, budget: int = BUDGET
) -> list[tuple[int, float]]:
    """Optuna's own ask/tell loop: ``TPESampler(seed)`` with ``HyperbandPruner`` (min_resource
    GRACE, max_resource MAX_T, reduction_factor ETA), CONCURRENT trials at once, one epoch per
    time step each, every epoch reported with ``trial.report`` and ``should_prune`` asked after
    it, as an Optuna user writes it. Same problems, noise and budget as :func:`run_one`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        # HyperbandPruner puts a trial in a bracket by a hash of the study's name and the
        # trial's number: a fixed name, or the brackets (and the run) change from run to run.
        study_name=f"hyperband-{problem.name}-{seed}",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=GRACE, max_resource=MAX_T, reduction_factor=ETA
        ),
    )
    rng = np.random.default_rng([seed, 7])
    running: list[tuple[_Trial, Any]] = []
    done: list[_Trial] = []
    used = 0
    curve: list[tuple[int, float]] = []
    while True:
        while len(running) < CONCURRENT and used + len(running) < budget:
            asked = study.ask()
            u = np.array([asked.suggest_float(f"x{i}", 0.0, 1.0) for i in range(problem.dim)])
            running.append((_Trial(f"t{asked.number}", u), asked))
        if not running:
            break
        for entry in list(running):
            trial, asked = entry
            trial.t += 1
            used += 1
            trial.last = problem.value(trial.u, trial.t, rng)
            asked.report(trial.last, trial.t)
            if trial.t >= MAX_T:
                study.tell(asked, trial.last)
            elif asked.should_prune():
                trial.stopped = True
                study.tell(asked, state=optuna.trial.TrialState.PRUNED)
            else:
                continue
            running.remove(entry)
            done.append(trial)
            curve.append((used, _regret(problem, done)))
    return curve


@dataclass
class _Bracket:
    """One bracket of Ray's HyperBandScheduler (max_t MAX_T, reduction_factor ETA)."""

    n: int  # trials it takes; after each halving, how many it keeps
    cumul_r: int  # the epoch its live trials run to before the next halving
    halves: int  # halvings left
    live: list[_Trial]


def run_bohb(
    problem: CurveProblem | PoolProblem, seed: int, budget: int = BUDGET
) -> list[tuple[int, float]]:
    """Ray Tune's ``TuneBOHB`` (hpbandster's BOHB), driven through its Searcher protocol
    (``suggest``, ``on_trial_result``, ``on_pause``, ``on_unpause``, ``on_trial_complete``)
    under a simulation of ``HyperBandForBOHB``, the scheduler it is made for: Ray's brackets
    (``s_max+1 = 4``; bracket s takes ``ceil(4/(s+1) * 3^s)`` trials at ``27 * 3^-s`` epochs,
    filled largest first, bands repeating), a trial reaching its bracket's milestone is paused
    with ``hyperband_info.budget`` (the only results BOHB learns from), and once a filled
    bracket's live trials are all paused the best ``1/eta`` are unpaused and the rest stopped;
    promoted trials run before new ones, CONCURRENT at once, one epoch per step. (A real Ray
    run pauses and restores an actor per milestone: over 10 minutes per run on this machine.)
    Regret counts paused and stopped trials alike, as :func:`run_one` counts ASHA's stopped."""
    from ray.tune.search.bohb import TuneBOHB

    np.random.seed(seed)  # noqa: NPY002 (hpbandster's KDE sampling draws from the global one)
    searcher = TuneBOHB(seed=seed)
    space = {f"x{i}": _uniform() for i in range(problem.dim)}
    searcher.set_search_properties("loss", "min", space)
    searcher.set_max_concurrency(CONCURRENT)
    s_max_1 = round(math.log(MAX_T) / math.log(ETA)) + 1
    band: list[_Bracket] = []
    brackets: list[_Bracket] = []
    home: dict[str, _Bracket] = {}
    rng = np.random.default_rng([seed, 7])
    running: list[_Trial] = []
    promoted: list[_Trial] = []  # unpaused by a halving, waiting for a worker
    seen: list[_Trial] = []  # paused or stopped trials: what the incumbent is chosen from
    used, n_made = 0, 0
    curve: list[tuple[int, float]] = []
    while used < budget:
        while len(running) < CONCURRENT and promoted:
            running.append(promoted.pop(0))
        while len(running) < CONCURRENT:
            tid = f"t{n_made}"
            config = searcher.suggest(tid)
            if not isinstance(config, dict):
                break
            n_made += 1
            current = brackets[-1] if brackets else None
            if current is None or len(current.live) >= current.n:
                if len(band) == s_max_1:
                    band = []
                s = s_max_1 - len(band) - 1
                current = _Bracket(
                    n=math.ceil(s_max_1 / (s + 1) * ETA**s),
                    cumul_r=int(MAX_T * ETA ** (-s)),
                    halves=s,
                    live=[],
                )
                band.append(current)
                brackets.append(current)
            trial = _Trial(tid, np.array([config[f"x{i}"] for i in range(problem.dim)]))
            current.live.append(trial)
            home[tid] = current
            running.append(trial)
        if not running:
            break
        for trial in list(running):
            bracket = home[trial.tid]
            trial.t += 1
            used += 1
            trial.last = problem.value(trial.u, trial.t, rng)
            result: dict[str, Any] = {
                "loss": trial.last,
                "training_iteration": trial.t,
                "hyperband_info": {},
            }
            if trial.t < bracket.cumul_r:
                searcher.on_trial_result(trial.tid, result)
                continue
            result["hyperband_info"]["budget"] = bracket.cumul_r
            searcher.on_trial_result(trial.tid, result)
            running.remove(trial)
            if trial not in seen:
                seen.append(trial)
            if trial.t >= MAX_T:
                bracket.live.remove(trial)
                searcher.on_trial_complete(trial.tid, result)
            else:
                searcher.on_pause(trial.tid)
                if len(bracket.live) >= bracket.n and not any(
                    t in running or t in promoted for t in bracket.live
                ):  # filled, every live trial paused: successive halving
                    bracket.halves -= 1
                    bracket.n = math.ceil(bracket.n / ETA)
                    bracket.cumul_r = min(bracket.cumul_r * ETA, MAX_T)
                    ranked = sorted(bracket.live, key=lambda t: t.last)
                    for bad in ranked[bracket.n :]:
                        bad.stopped = True
                        searcher.on_trial_complete(bad.tid, {"loss": bad.last})
                    bracket.live = ranked[: bracket.n]
                    for good in bracket.live:
                        searcher.on_unpause(good.tid)
                        promoted.append(good)
            curve.append((used, _regret(problem, seen)))
    return curve


def _regret(problem: CurveProblem | PoolProblem, done: list[_Trial]) -> float:
    top = max(t.t for t in done)
    best = min((t for t in done if t.t == top), key=lambda t: t.last)
    return problem.final(best.u)


def _uniform() -> Any:
    from ray import tune

    return tune.uniform(0.0, 1.0)


def regret_at(curve: list[tuple[int, float]], budget: int) -> float:
    best = math.nan
    for used, regret in curve:
        if used <= budget:
            best = regret
    return best


def _run_key(problem: CurveProblem | PoolProblem, contender: str, seed: int) -> str:
    """The cache file's name: what decides the run, hashed (a changed contender reruns)."""
    spec = [problem.name, problem.dim, CONTENDERS[contender], seed, BUDGET, ETA, MAX_T, NOISE]
    if isinstance(problem, PoolProblem):
        spec.append(POOL_SIZE)
        if problem.bandwidth:
            spec += [SMOOTH_BANDWIDTH, DIVERGED]
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in contender)
    return f"{problem.name}__{safe}__s{seed}__{digest}.json"


def _job(args: tuple[str, str, int, str]) -> dict[str, Any]:
    """One run, written to its cache file (atomically) as soon as it ends; a cached run is read."""
    problem_name, contender, seed, out = args
    problem = get_problem(problem_name, Path(out) / "curves")
    path = Path(out) / "runs" / _run_key(problem, contender, seed)
    if path.exists():
        return dict(json.loads(path.read_text()))
    name, options, scheduler = CONTENDERS[contender]
    start, cpu = time.perf_counter(), time.process_time()
    if scheduler == "optuna-hyperband":
        curve = run_optuna_hyperband(problem, seed)
    elif scheduler == "hyperband-bohb":
        curve = run_bohb(problem, seed)
    else:
        curve = run_one(problem, name, options, scheduler, seed)
    run = {
        "problem": problem.name,
        "contender": contender,
        "seed": seed,
        "curve": curve,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run))
    os.replace(tmp, path)
    return run


# ---- report ----------------------------------------------------------------------------------
def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({r["problem"] for r in runs})
    contenders = [c for c in CONTENDERS if any(r["contender"] == c for r in runs)]
    table: dict[str, dict[str, list[float]]] = {}
    for c in contenders:
        table[c] = {}
        for b in BUDGETS:
            per_problem = []
            for p in names:
                values = [
                    regret_at(r["curve"], b)
                    for r in runs
                    if r["contender"] == c and r["problem"] == p
                ]
                per_problem.append(float(np.nanmean(values)))
            table[c][str(b)] = per_problem
    return {"problems": names, "budgets": list(BUDGETS), "table": table}


def print_table(summary: dict[str, Any]) -> str:
    names = summary["problems"]
    lines = [
        "| contender | " + " | ".join(f"regret @ {b} epochs" for b in summary["budgets"]) + " |",
        "|---|" + "---:|" * len(summary["budgets"]),
    ]
    for c, row in summary["table"].items():
        cells = [f"{np.mean(row[str(b)]):.4f}" for b in summary["budgets"]]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Per problem at "
        + str(summary["budgets"][-1])
        + " epochs: | contender | "
        + " | ".join(names)
        + " |"
    )
    for c, row in summary["table"].items():
        cells = [f"{v:.4f}" for v in row[str(summary["budgets"][-1])]]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_curve(runs: list[dict[str, Any]], contender: str, grid: np.ndarray) -> np.ndarray:
    """Regret at each budget of ``grid``: mean over seeds per problem, then over problems."""
    mine = [r for r in runs if r["contender"] == contender]
    probs = sorted({r["problem"] for r in mine})
    return np.array(  # (len(grid),)
        [
            np.mean(
                [
                    np.nanmean([regret_at(r["curve"], b) for r in mine if r["problem"] == p])
                    for p in probs
                ]
            )
            for b in grid
        ]
    )


def goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, on the mean over problems (each problem: mean over seeds)."""
    have = {r["contender"] for r in runs}
    out: dict[str, Any] = {}
    grid = np.arange(1, BUDGET + 1)
    if {"ASHA+gp-ei(after)", "FIFO+gp-ei"} <= have:
        asha = mean_curve(runs, "ASHA+gp-ei(after)", grid)
        fifo = mean_curve(runs, "FIFO+gp-ei", grid)
        target = float(fifo[-1])
        reached = np.flatnonzero(asha <= target)
        out["fifo_final_regret"] = target
        out["asha_gp_ei_epochs_to_fifo_final"] = int(grid[reached[0]]) if len(reached) else None
        out["asha_gp_ei_vs_fifo"] = {
            str(b): [float(asha[b - 1]), float(fifo[b - 1])] for b in BUDGETS
        }
    for rival in RIVALS:
        if {"ASHA+gp-ei(after)", rival} <= have:
            a = mean_curve(runs, "ASHA+gp-ei(after)", np.array(BUDGETS))
            r = mean_curve(runs, rival, np.array(BUDGETS))
            out[f"gp-ei(after) vs {rival}"] = {
                str(b): [float(x), float(y)] for b, x, y in zip(BUDGETS, a, r, strict=True)
            }
    for name in ("gp-ei", "pso", "genetic"):
        before, after = f"ASHA+{name}(before)", f"ASHA+{name}(after)"
        if {before, after} <= have:
            b_ = mean_curve(runs, before, np.array(BUDGETS))
            a_ = mean_curve(runs, after, np.array(BUDGETS))
            out[f"{name} after vs before"] = {
                str(b): [float(x), float(y)] for b, x, y in zip(BUDGETS, a_, b_, strict=True)
            }
    pairs = [("ASHA+gp-ei(after)", r) for r in ("FIFO+gp-ei", *RIVALS)]
    pairs += [(f"ASHA+{n}(after)", f"ASHA+{n}(before)") for n in ("gp-ei", "pso", "genetic")]
    pairs.append(("ASHA+gp-ei(after, stopped=worst)", "ASHA+gp-ei(after)"))
    out["paired"] = {
        f"{a} - {b}": {str(x): list(paired_difference(runs, a, b, x)) for x in BUDGETS}
        for a, b in pairs
        if {a, b} <= have
    }
    return out


def paired_difference(
    runs: list[dict[str, Any]], a: str, b: str, budget: int
) -> tuple[float, float]:
    """Regret of ``a`` minus that of ``b`` at ``budget``, paired by (problem, seed): the mean
    over problems of the per-problem mean difference, and its standard error."""
    by = {(r["contender"], r["problem"], r["seed"]): r["curve"] for r in runs}
    means, variances = [], []
    for p in sorted({r["problem"] for r in runs}):
        d = np.array(  # (n_seeds,)
            [
                regret_at(by[(a, p, s)], budget) - regret_at(by[(b, p, s)], budget)
                for (c, q, s) in by
                if c == a and q == p and (b, p, s) in by
            ]
        )
        d = d[np.isfinite(d)]
        means.append(float(np.mean(d)))
        variances.append(float(np.var(d, ddof=1) / len(d)) if len(d) > 1 else math.nan)
    return float(np.mean(means)), float(math.sqrt(np.sum(variances)) / len(means))


def print_goals(g: dict[str, Any]) -> str:
    lines = ["Goals (mean over problems of the mean over seeds; first figure must be lower):"]
    if "fifo_final_regret" in g:
        e = g["asha_gp_ei_epochs_to_fifo_final"]
        lines.append(
            f"- ASHA+gp-ei(after) reaches FIFO+gp-ei's final regret {g['fifo_final_regret']:.4f} "
            f"after {e} epochs (goal <= {BUDGET // 4})"
        )
    for key, per_budget in g.items():
        if key == "paired":
            lines.append("Paired regret differences (mean over problems, +- standard error):")
            for pair, cells_by_budget in per_budget.items():
                cells = ", ".join(
                    f"@{x}: {m:+.4f} +- {se:.4f}" for x, (m, se) in cells_by_budget.items()
                )
                lines.append(f"- {pair}: {cells}")
        elif isinstance(per_budget, dict):
            cells = ", ".join(
                f"@{b}: {x:.4f} vs {y:.4f} {'met' if x < y else 'MISSED'}"
                for b, (x, y) in per_budget.items()
            )
            lines.append(f"- {key}: {cells}")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.arange(9, BUDGET + 1, 9)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab20")  # 12 contenders: the default cycle repeats after 10
    for k, c in enumerate(CONTENDERS):
        if not any(r["contender"] == c for r in runs):
            continue
        mean = mean_curve(runs, c, grid)
        style = "--" if "before" in c else (":" if c.startswith("FIFO") else "-")
        if "Hyperband" in c:  # its own scheduler, not the simulated ASHA
            style = "-."
        ax.plot(grid, mean, style, label=c, color=colors((2 * k) % 20 + (2 * k) // 20))
    ax.set_xlabel("total epochs")
    ax.set_ylabel("regret (mean over problems and seeds)")
    ax.set_yscale("log")
    ax.set_title(f"ASHA (eta {ETA}, max_t {MAX_T}, {CONCURRENT} at once) vs FIFO")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS))
    parser.add_argument("--problems", nargs="*", default=None, help="names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("scripts/results/multi_fidelity"))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 problems")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    synthetic = [p.name for p in problems()]
    names = [*synthetic, *REAL, *SMOOTH]
    wanted = args.problems or (synthetic[:2] if args.quick else synthetic)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"--problems: unknown {unknown}; known: {names}")
    seeds = range(2 if args.quick else args.seeds)
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    for name in set(wanted) & {*REAL, *SMOOTH}:  # the pool's curves before any run (once)
        get_problem(name, args.out / "curves")
    # Seeds outermost: a benchmark stopped early still has every contender on the first seeds.
    jobs = [(p, c, s, str(args.out)) for s in seeds for p in wanted for c in args.contenders]
    runs: list[dict[str, Any]] = []
    start = time.perf_counter()
    pool = ProcessPoolExecutor(args.jobs) if args.jobs > 1 else None
    results = map(_job, jobs) if pool is None else pool.map(_job, jobs)
    for k, run in enumerate(results, 1):
        runs.append(run)
        print(
            f"[{k}/{len(jobs)}] {run['problem']} {run['contender']} seed {run['seed']}: "
            f"{run['seconds']:.1f} s (wall {time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    if pool is not None:
        pool.shutdown()
    summary = summarize(runs)
    # CPU seconds per run (wall seconds depend on what else the machine runs).
    summary["cpu_seconds_per_run"] = {
        c: float(np.nanmean([r.get("cpu_seconds", math.nan) for r in runs if r["contender"] == c]))
        for c in args.contenders
    }
    summary["seconds"] = {
        c: float(np.sum([r["seconds"] for r in runs if r["contender"] == c]))
        for c in args.contenders
    }
    summary["wall_seconds"] = time.perf_counter() - start
    summary["seeds"] = len(seeds)
    summary["goals"] = goals(runs)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(runs, args.out / "regret_vs_epochs.png")
    text = print_table(summary) + "\n\n" + print_goals(summary["goals"])
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    print(f"wall {summary['wall_seconds']:.0f} s; cpu s per run: {summary['cpu_seconds_per_run']}")


if __name__ == "__main__":
    main()
