"""Suggest time of the GP searchers vs number of observations, on one core.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_gp_speed.py                       # gp-ei and optuna-gp
    .venv/bin/python scripts/bench_gp_speed.py --sizes 25 100 --steps 20 --optuna-max 100

For each size n: a searcher on the 6-d hartmann6 space is given n random evaluated points
(``add_evaluated_point``, which reaches the model without suggesting), then runs ``--steps``
suggest/complete steps; every ``suggest`` is timed with ``time.perf_counter``. The steps include
gp-ei's periodic hyperparameter refits (every step up to 100 observations, then every
``refit_interval``), so p95 and max show them. optuna-gp runs only up to ``--optuna-max``
observations (its fit grows past a second per suggest beyond a few hundred; see the table).
Prints a markdown table of p50 / p95 / max milliseconds.

BLAS runs single-threaded: the thread variables are set before numpy is imported (the driver of a
Ray experiment shares its machine with the trials).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402  (after the thread variables, on purpose)
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_problems import get_problem  # noqa: E402

import searchers  # noqa: E402

SIZES = (25, 50, 100, 200, 500, 1000)


def time_suggests(name: str, n: int, steps: int, seed: int) -> np.ndarray:
    """Seconds of each of ``steps`` suggest calls after ``n`` evaluated points ((steps,))."""
    problem = get_problem("hartmann6")
    space = problem.space()
    searcher = searchers.make_searcher(name, seed=seed)
    searcher.set_search_properties("loss", "min", space)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        config = {f"x{i}": float(v) for i, v in enumerate(rng.random(6))}
        searcher.add_evaluated_point(config, problem.value(config))
    times = np.empty(steps)
    for i in range(steps):
        t0 = time.perf_counter()
        config = searcher.suggest(f"t{i}")
        times[i] = time.perf_counter() - t0
        if not isinstance(config, dict):
            raise RuntimeError(f"{name} returned {config!r} at size {n}")
        searcher.on_trial_complete(f"t{i}", {"loss": problem.value(config)})
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--steps", type=int, default=40, help="timed suggests per size")
    parser.add_argument(
        "--optuna-max", type=int, default=200, help="largest size optuna-gp is timed at"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    rows = []
    for n in args.sizes:
        cells = [str(n)]
        for name in ("gp-ei", "optuna-gp"):
            if name == "optuna-gp" and n > args.optuna_max:
                cells.append("not run")
                continue
            time_suggests(name, 10, 2, args.seed)  # warm imports and caches
            ms = 1e3 * time_suggests(name, n, args.steps, args.seed)
            cells.append(f"{np.median(ms):.0f} / {np.percentile(ms, 95):.0f} / {np.max(ms):.0f}")
            print(f"{name} n={n}: {cells[-1]} ms", file=sys.stderr, flush=True)
        rows.append(cells)
    print(f"\nSuggest time, ms (p50 / p95 / max over {args.steps} steps), 6-d, one thread\n")
    print("| observations | gp-ei | optuna-gp |")
    print("|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
