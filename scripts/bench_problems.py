"""Test problems for the searcher benchmark (`scripts/bench_searchers.py`), importable by tests.

A problem is a Ray Tune ``param_space``, a noise-free objective on a config (to be MINIMIZED),
its optimum and, where known, an argmin. ``observe`` adds the problem's observation noise; regret
is always measured with ``value`` (the noise-free objective of the configuration), so a searcher
fooled by a lucky noisy draw is charged for it.

Notation: d is the number of parameters; a vector problem names them ``x0 .. x{d-1}`` and its
objective reads ``x: (d,)``.

Problems (`PROBLEMS`, in table order):
    branin           2-d, x0 in [-5, 10], x1 in [0, 15]; optimum 5 / (4 pi) = 0.397887 at three
                     points, e.g. (pi, 2.275).
    hartmann6        6-d on [0, 1]^6; optimum -3.32237 (Surjanovic & Bingham's library of test
                     functions, which gives the argmin to 6 digits).
    hartmann6-noisy  hartmann6 observed with N(0, 0.1^2) noise (about 3% of its range).
    ackley5/10       Ackley on the asymmetric box [-5, 10]^d (as in TuRBO, Eriksson et al.,
                     NeurIPS 2019); optimum 0 at the origin. The standard box
                     [-32.768, 32.768]^d is a plateau at ~20 that no searcher leaves within 100
                     evaluations (every score would be ~1), and an asymmetric box keeps the
                     optimum off the box's centre, which would favour searchers that start there
                     (CMA-ES's mean, PSO's swarm).
    rastrigin4       4-d on the standard box [-5.12, 5.12]^4; optimum 0 at the origin. Note that
                     the origin is the box's centre.
    mixed-train      a synthetic "train a network" validation loss over 7 parameters of every kind
                     (2 log floats, a float, 2 ints, 2 categoricals); see `mixed_train_loss` for
                     the formula and why its optimum (0.05) is exact.

Robustness set (`HOLDOUT`; in `PROBLEMS` too, but not run unless named with ``--problems``): added
after every searcher default had been chosen, and used to choose none of them, so a score there is
a fair check against tuning to the set above. Standard functions (Surjanovic & Bingham), each on a
box that keeps its optimum off the centre:
    rosenbrock6      [-5, 10]^6, optimum 0 at (1, .., 1): a curved valley.
    levy8            [-10, 10]^8, optimum 0 at (1, .., 1): rugged, with a global trend.
    levy8-noisy      levy8 observed with N(0, 2^2) noise (a few % of its range on the box).
    styblinski8      Styblinski-Tang on [-5, 5]^8, optimum -39.166 d at x_i = -2.9035: 2^8
                     local minima at the corners' side of each axis.
    griewank8        [-50, 60]^8, optimum 0 at the origin: a bowl with fine ripples.
    michalewicz5     [0, pi]^5 (m = 10): steep narrow valleys on flat ground; separable, so the
                     argmin is found coordinate by coordinate (optimum -4.6877).
    sphere20         sum (x - 0.3)^2 on [-1, 1]^20, optimum 0: an easy function in many
                     dimensions, to catch searchers that do not scale.

Discrete set (`DISCRETE`, group ``discrete``; not run unless named): spaces of ints and
categoricals only, where a searcher can suggest a config it has already evaluated (its
``duplicates`` in the benchmark's CSV count those repeats, each a wasted trial):
    grid300          a in 0..9, b in 0..9 (ints), kind in {x, y, z}: 300 configs; a bowl in
                     (a, b) plus a per-kind offset, optimum 0 at a=0, b=9, kind x (a corner).
    levy5-int        Levy on the integers -10..10 in 5-d (21^5 configs), optimum 0 at (1, .., 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize
from ray import tune

__all__ = [
    "DISCRETE",
    "HOLDOUT",
    "MAIN",
    "MIXED_TRAIN_ARGMIN",
    "PROBLEMS",
    "Problem",
    "ackley",
    "branin",
    "get_problem",
    "grid300",
    "griewank",
    "hartmann6",
    "levy",
    "michalewicz",
    "mixed_train_loss",
    "rastrigin",
    "rosenbrock",
    "shifted_sphere",
    "styblinski_tang",
]


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    name: key in `PROBLEMS` and in the benchmark's tables.
    make_space: returns a fresh Ray Tune param_space.
    value: the noise-free objective of a config (minimized).
    optimum: the minimum of ``value`` over the space.
    argmin: a config where ``value`` equals ``optimum`` (None where none is known).
    noise_sd: standard deviation of the Gaussian noise ``observe`` adds (0: noise-free).
    """

    name: str
    make_space: Callable[[], dict[str, Any]]
    value: Callable[[Mapping[str, Any]], float]
    optimum: float
    argmin: Mapping[str, Any] | None = None
    noise_sd: float = 0.0

    def space(self) -> dict[str, Any]:
        return self.make_space()

    def observe(self, config: Mapping[str, Any], rng: np.random.Generator) -> float:
        """The value a trial reports: ``value`` plus N(0, noise_sd^2) noise."""
        observed = self.value(config)
        if self.noise_sd > 0.0:
            observed += float(rng.normal(0.0, self.noise_sd))
        return observed


# ---- vector test functions -----------------------------------------------------------------


def branin(x: np.ndarray) -> float:
    """Branin-Hoo on x: (2,); minimum 5 / (4 pi) at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)"""
    a, b, c = 1.0, 5.1 / (4.0 * math.pi**2), 5.0 / math.pi
    r, s, t = 6.0, 10.0, 1.0 / (8.0 * math.pi)
    x1, x2 = float(x[0]), float(x[1])
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1.0 - t) * math.cos(x1) + s


_HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])  # (4,)
_HARTMANN6_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)  # (4, 6)
_HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)  # (4, 6)
HARTMANN6_ARGMIN = (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054)
# Reached at HARTMANN6_ARGMIN; the often quoted -3.32237 is this rounded.
HARTMANN6_OPTIMUM = -3.322368011415515


def hartmann6(x: np.ndarray) -> float:
    """Hartmann 6-d on x: (6,) in [0, 1]^6, minimum -3.32237."""
    inner = np.sum(_HARTMANN6_A * (np.asarray(x) - _HARTMANN6_P) ** 2, axis=1)  # (4,)
    return -float(np.sum(_HARTMANN6_ALPHA * np.exp(-inner)))


def ackley(x: np.ndarray) -> float:
    """Ackley (a=20, b=0.2, c=2 pi) on x: (d,), minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    mean_sq = float(np.mean(x**2))
    mean_cos = float(np.mean(np.cos(2.0 * math.pi * x)))
    return -20.0 * math.exp(-0.2 * math.sqrt(mean_sq)) - math.exp(mean_cos) + 20.0 + math.e


def rastrigin(x: np.ndarray) -> float:
    """Rastrigin on x: (d,), minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    return float(10.0 * x.size + np.sum(x**2 - 10.0 * np.cos(2.0 * math.pi * x)))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock on x: (d,), minimum 0 at (1, .., 1)."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def levy(x: np.ndarray) -> float:
    """Levy on x: (d,), minimum 0 at (1, .., 1)."""
    w = 1.0 + (np.asarray(x, dtype=float) - 1.0) / 4.0  # (d,)
    head = math.sin(math.pi * w[0]) ** 2
    middle = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(math.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * w[-1]) ** 2)
    return float(head + middle + tail)


def styblinski_tang(x: np.ndarray) -> float:
    """Styblinski-Tang on x: (d,), minimum -39.16617 d at x_i = -2.903534."""
    x = np.asarray(x, dtype=float)
    return float(0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x))


def griewank(x: np.ndarray) -> float:
    """Griewank on x: (d,), minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    ripple = np.prod(np.cos(x / np.sqrt(np.arange(1, x.size + 1))))
    return float(1.0 + np.sum(x**2) / 4000.0 - ripple)


def michalewicz(x: np.ndarray) -> float:
    """Michalewicz (m = 10) on x: (d,) in [0, pi]^d."""
    x = np.asarray(x, dtype=float)
    i = np.arange(1, x.size + 1)
    return float(-np.sum(np.sin(x) * np.sin(i * x**2 / math.pi) ** 20))


def _michalewicz_argmin(d: int) -> tuple[float, ...]:
    """Separable: each coordinate minimizes -sin(x) sin(i x^2 / pi)^20 on [0, pi] on its own
    (a fine grid, then a bounded 1-d search around the grid's best)."""
    grid = np.linspace(0.0, math.pi, 200_001)  # (G,)
    out = []
    for i in range(1, d + 1):

        def term(t: float, i: int = i) -> float:
            return -math.sin(t) * math.sin(i * t * t / math.pi) ** 20

        values = -np.sin(grid) * np.sin(i * grid**2 / math.pi) ** 20  # (G,)
        k = int(np.argmin(values))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        out.append(
            float(
                scipy.optimize.minimize_scalar(
                    term, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
                ).x
            )
        )
    return tuple(out)


def shifted_sphere(x: np.ndarray) -> float:
    """sum (x - 0.3)^2 on x: (d,), minimum 0 at (0.3, .., 0.3)."""
    return float(np.sum((np.asarray(x, dtype=float) - 0.3) ** 2))


def _vector_problem(
    name: str,
    func: Callable[[np.ndarray], float],
    bounds: list[tuple[float, float]],
    optimum: float,
    argmin: tuple[float, ...] | None,
    noise_sd: float = 0.0,
) -> Problem:
    names = [f"x{i}" for i in range(len(bounds))]

    def make_space() -> dict[str, Any]:
        return {n: tune.uniform(lo, hi) for n, (lo, hi) in zip(names, bounds, strict=True)}

    def value(config: Mapping[str, Any]) -> float:
        return func(np.array([float(config[n]) for n in names]))  # (d,)

    at = None if argmin is None else dict(zip(names, argmin, strict=True))
    return Problem(name, make_space, value, optimum, at, noise_sd)


# ---- the mixed space -----------------------------------------------------------------------

OPTIMIZERS = ("sgd", "momentum", "adam")
BATCH_SIZES = (16, 32, 64, 128, 256, 512)
# Loss each optimizer reaches with every other parameter at its best: momentum is a close second,
# a deceptive local optimum for searchers that settle early.
_BASE_LOSS = {"sgd": 0.09, "momentum": 0.06, "adam": 0.05}
_LOG10_LR_AT_BATCH_64 = {"sgd": -1.0, "momentum": -1.7, "adam": -3.2}
_BEST_DEPTH = {"sgd": 3, "momentum": 5, "adam": 6}

MIXED_TRAIN_OPTIMUM = 0.05
MIXED_TRAIN_ARGMIN: dict[str, Any] = {
    "lr": 10.0**-3.4,  # best log10 lr for adam: -3.2 + 0.5 log10(64 / 64) - 0.1 (6 - 4)
    "weight_decay": 10.0**-3.5,  # -4 + 0.25 (6 - 4)
    "dropout": 0.3,  # 0.05 * 6
    "n_layers": 6,
    "units": 256,
    "batch_size": 64,
    "optimizer": "adam",
}


def _mixed_train_space() -> dict[str, Any]:
    return {
        "lr": tune.loguniform(1e-5, 1.0),
        "weight_decay": tune.loguniform(1e-7, 1e-1),
        "dropout": tune.uniform(0.0, 0.7),
        "n_layers": tune.randint(1, 9),  # 1 .. 8
        "units": tune.randint(16, 513),  # 16 .. 512
        "batch_size": tune.choice(list(BATCH_SIZES)),
        "optimizer": tune.choice(list(OPTIMIZERS)),
    }


def mixed_train_loss(config: Mapping[str, Any]) -> float:
    """A synthetic validation loss of training a network; minimum 0.05 (exact) at the argmin.

    With l = log10(lr), w = log10(weight_decay), p = dropout, d = n_layers, o = optimizer:

        loss = base(o)                                  base: adam 0.05, momentum 0.06, sgd 0.09
             + c(l) (1 + d / 8) (l - l*)^2              c = 0.06 below l*, 0.25 above
             + 0.01 (w - w*)^2 + 0.4 (p - p*)^2 + 0.02 (w - w*)(p - p*)
             + 0.006 (d - d*(o))^2 + 0.004 (log2 units - 8)^2 + 0.008 (log2 batch_size - 6)^2
        l* = l64(o) + 0.5 log10(batch_size / 64) - 0.1 (d - 4)          (square-root batch scaling)
        w* = -4 + 0.25 (d - 4),   p* = 0.05 d
        l64: sgd -1.0, momentum -1.7, adam -3.2;   d*: sgd 3, momentum 5, adam 6

    Couplings (the best lr moves with optimizer, batch size and depth; the best regularization with
    depth) make it non-separable, and too high a learning rate costs 4x more than too low, as in
    training. Why the optimum is exact: for fixed discrete values the continuous part is a sum of
    convex terms (the (w, p) quadratic form is positive definite: 4 * 0.01 * 0.4 > 0.02^2) that all
    vanish at (l*, w*, p*), which lie inside the box for every discrete combination (l* in
    [-3.91, -0.24] within [-5, 0]; w* in [-4.75, -3] within [-7, -1]; p* in [0.05, 0.4] within
    [0, 0.7]); the discrete terms are nonnegative and all vanish only at optimizer adam, 6 layers,
    256 units, batch 64, where base(adam) = 0.05 is the smallest base.
    """
    opt = str(config["optimizer"])
    depth = int(config["n_layers"])
    batch = int(config["batch_size"])
    log_lr = math.log10(float(config["lr"]))
    log_wd = math.log10(float(config["weight_decay"]))
    dropout = float(config["dropout"])
    lr_star = _LOG10_LR_AT_BATCH_64[opt] + 0.5 * math.log10(batch / 64) - 0.1 * (depth - 4)
    wd_star = -4.0 + 0.25 * (depth - 4)
    dropout_star = 0.05 * depth
    curvature = 0.25 if log_lr > lr_star else 0.06
    dw, dp = log_wd - wd_star, dropout - dropout_star
    return (
        _BASE_LOSS[opt]
        + curvature * (1.0 + depth / 8.0) * (log_lr - lr_star) ** 2
        + 0.01 * dw**2
        + 0.4 * dp**2
        + 0.02 * dw * dp
        + 0.006 * (depth - _BEST_DEPTH[opt]) ** 2
        + 0.004 * (math.log2(int(config["units"])) - 8.0) ** 2
        + 0.008 * (math.log2(batch) - 6.0) ** 2
    )


# ---- registry ------------------------------------------------------------------------------

_PROBLEM_LIST = [
    _vector_problem(
        "branin", branin, [(-5.0, 10.0), (0.0, 15.0)], 5.0 / (4.0 * math.pi), (math.pi, 2.275)
    ),
    _vector_problem("hartmann6", hartmann6, [(0.0, 1.0)] * 6, HARTMANN6_OPTIMUM, HARTMANN6_ARGMIN),
    _vector_problem(
        "hartmann6-noisy",
        hartmann6,
        [(0.0, 1.0)] * 6,
        HARTMANN6_OPTIMUM,
        HARTMANN6_ARGMIN,
        noise_sd=0.1,
    ),
    _vector_problem("ackley5", ackley, [(-5.0, 10.0)] * 5, 0.0, (0.0,) * 5),
    _vector_problem("ackley10", ackley, [(-5.0, 10.0)] * 10, 0.0, (0.0,) * 10),
    _vector_problem("rastrigin4", rastrigin, [(-5.12, 5.12)] * 4, 0.0, (0.0,) * 4),
    Problem(
        "mixed-train",
        _mixed_train_space,
        mixed_train_loss,
        MIXED_TRAIN_OPTIMUM,
        MIXED_TRAIN_ARGMIN,
    ),
]

_MICHALEWICZ5_ARGMIN = _michalewicz_argmin(5)
_STYBLINSKI_X = -2.903534027771177  # the root of 4 x^3 - 32 x + 5 = 0 near -2.9
_HOLDOUT_LIST = [
    _vector_problem("rosenbrock6", rosenbrock, [(-5.0, 10.0)] * 6, 0.0, (1.0,) * 6),
    _vector_problem("levy8", levy, [(-10.0, 10.0)] * 8, 0.0, (1.0,) * 8),
    _vector_problem("levy8-noisy", levy, [(-10.0, 10.0)] * 8, 0.0, (1.0,) * 8, noise_sd=2.0),
    _vector_problem(
        "styblinski8",
        styblinski_tang,
        [(-5.0, 5.0)] * 8,
        styblinski_tang(np.full(8, _STYBLINSKI_X)),
        (_STYBLINSKI_X,) * 8,
    ),
    _vector_problem("griewank8", griewank, [(-50.0, 60.0)] * 8, 0.0, (0.0,) * 8),
    _vector_problem(
        "michalewicz5",
        michalewicz,
        [(0.0, math.pi)] * 5,
        michalewicz(np.array(_MICHALEWICZ5_ARGMIN)),
        _MICHALEWICZ5_ARGMIN,
    ),
    _vector_problem("sphere20", shifted_sphere, [(-1.0, 1.0)] * 20, 0.0, (0.3,) * 20),
]

_GRID_KINDS = {"x": 0.0, "y": 0.3, "z": 0.6}


def _grid300_space() -> dict[str, Any]:
    return {
        "a": tune.randint(0, 10),
        "b": tune.randint(0, 10),
        "kind": tune.choice(list(_GRID_KINDS)),
    }


def grid300(config: Mapping[str, Any]) -> float:
    return (
        (int(config["a"]) / 9.0) ** 2
        + ((9 - int(config["b"])) / 9.0) ** 2
        + _GRID_KINDS[str(config["kind"])]
    )


def _levy5_int_space() -> dict[str, Any]:
    return {f"x{i}": tune.randint(-10, 11) for i in range(5)}


def _levy5_int(config: Mapping[str, Any]) -> float:
    return levy(np.array([float(config[f"x{i}"]) for i in range(5)]))  # (5,)


_DISCRETE_LIST = [
    Problem("grid300", _grid300_space, grid300, 0.0, {"a": 0, "b": 9, "kind": "x"}),
    Problem("levy5-int", _levy5_int_space, _levy5_int, 0.0, {f"x{i}": 1 for i in range(5)}),
]

#: The benchmark's problems (the default of ``--problems``).
MAIN: tuple[str, ...] = tuple(p.name for p in _PROBLEM_LIST)
#: The robustness set (see the module docstring).
HOLDOUT: tuple[str, ...] = tuple(p.name for p in _HOLDOUT_LIST)
#: Ints and categoricals only (see the module docstring).
DISCRETE: tuple[str, ...] = tuple(p.name for p in _DISCRETE_LIST)
PROBLEMS: dict[str, Problem] = {
    p.name: p for p in [*_PROBLEM_LIST, *_HOLDOUT_LIST, *_DISCRETE_LIST]
}


def get_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose from {list(PROBLEMS)}")
    return PROBLEMS[name]
