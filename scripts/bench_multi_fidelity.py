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
- the reported regret at a budget of E epochs: ``final(incumbent)``, where the incumbent is the
  trial with the best observed value at the highest fidelity any trial reached within E epochs
  (noise-free, so 0 is the optimum; mean over seeds, then over problems).

Run (one process per core; ``--quick`` for a smoke run):

    .venv/bin/python scripts/bench_multi_fidelity.py --seeds 20 --jobs 2 \\
        --out scripts/results/multi_fidelity
"""

from __future__ import annotations

import argparse
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


def problems() -> list[CurveProblem]:
    sty_x = -2.903534027771177
    return [
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
    ]


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
}


# ---- the simulated scheduler ---------------------------------------------------------------
@dataclass
class _Trial:
    tid: str
    u: np.ndarray
    t: int = 0
    last: float = math.nan
    stopped: bool = False


def run_one(
    problem: CurveProblem,
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


def _regret(problem: CurveProblem, done: list[_Trial]) -> float:
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


def _job(args: tuple[int, str, int]) -> tuple[str, str, int, list[tuple[int, float]], float]:
    p_index, contender, seed = args
    problem = problems()[p_index]
    name, options, scheduler = CONTENDERS[contender]
    start = time.perf_counter()
    curve = run_one(problem, name, options, scheduler, seed)
    return problem.name, contender, seed, curve, time.perf_counter() - start


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


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.arange(27, BUDGET + 1, 27)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in CONTENDERS:
        mine = [r for r in runs if r["contender"] == c]
        if not mine:
            continue
        probs = sorted({r["problem"] for r in mine})
        mean = np.array(
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
        style = "--" if "before" in c else (":" if c.startswith("FIFO") else "-")
        ax.plot(grid, mean, style, label=c)
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
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=Path("scripts/results/multi_fidelity"))
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 problems")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    n_problems = 2 if args.quick else len(problems())
    seeds = range(2 if args.quick else args.seeds)
    jobs = [(p, c, s) for c in args.contenders for p in range(n_problems) for s in seeds]
    runs: list[dict[str, Any]] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for problem, contender, seed, curve, secs in pool.map(_job, jobs):
            runs.append(
                {
                    "problem": problem,
                    "contender": contender,
                    "seed": seed,
                    "curve": curve,
                    "seconds": secs,
                }
            )
    summary = summarize(runs)
    summary["seconds"] = {
        c: float(np.sum([r["seconds"] for r in runs if r["contender"] == c]))
        for c in args.contenders
    }
    summary["wall_seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runs.json").write_text(json.dumps(runs))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(runs, args.out / "regret_vs_epochs.png")
    text = print_table(summary)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    print(f"wall {summary['wall_seconds']:.0f} s; cpu s per contender: {summary['seconds']}")


if __name__ == "__main__":
    main()
