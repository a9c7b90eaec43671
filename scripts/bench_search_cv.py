"""TuneSearchCV against GridSearchCV(n_jobs=2) on small grids, side by side in one process.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_search_cv.py                 # both problems, 3 repeats
    .venv/bin/python scripts/bench_search_cv.py --problems svc --repeats 5

Problems (digits, 1797 x 64, cv=3, every fold shared by both sides):

- ``svc``: SVC over C in {1, 10, 100} x gamma in {1e-3, 1e-4} (6 candidates, 18 fits);
- ``rf``: RandomForestClassifier(random_state=0) over n_estimators in {20, 50} x max_depth in
  {5, None} (4 candidates, 12 fits).

Rows, in the order they run:

1. ``GridSearchCV(n_jobs=2)`` first call (loky starts its two workers);
2. ``TuneSearchCV`` first call: Ray is not running, so this includes ``ray.init`` (the process
   starts no Ray before it);
3. then ``--repeats`` more calls of each, GridSearchCV's first, then TuneSearchCV's, with Ray and
   loky up; the table gives their median and range;
4. ``TuneSearchCV(storage_path=<temporary directory>)``: the same search on the Tune path (a
   Ray Tune experiment kept on disk, one trial actor per trial), which was the only path before
   FIFO searches ran as plain Ray tasks; it shows what the task path saves;
5. one more TuneSearchCV call right after those Tune-path runs (see the comment in ``run``).

Both sides run the same grid on the same folds; the script checks that they agree on every
``mean_test_score`` (1e-9) before printing. TuneSearchCV runs as a user calls it: no
``storage_path``, FIFO (so its trials are Ray tasks), two trials at once (``n_jobs=2``) on a
2-CPU local Ray. Prints a markdown table; wall times in seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

PROBLEMS: dict[str, tuple[Callable[[], Any], dict[str, list[Any]]]] = {
    "svc": (SVC, {"C": [1.0, 10.0, 100.0], "gamma": [1e-3, 1e-4]}),
    "rf": (
        lambda: RandomForestClassifier(random_state=0),
        {"n_estimators": [20, 50], "max_depth": [5, None]},
    ),
}


def _timed(fit: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    search = fit()
    return time.perf_counter() - start, search


def run(problems: Sequence[str], repeats: int) -> list[dict[str, Any]]:
    import ray

    from hpt_ray import TuneSearchCV

    X, y = load_digits(return_X_y=True)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    rows = []
    for name in problems:
        make, grid = PROBLEMS[name]

        def grid_fit(make: Callable[[], Any] = make, grid: dict[str, Any] = grid) -> Any:
            return GridSearchCV(make(), grid, cv=folds, n_jobs=2).fit(X, y)

        def tune_fit(make: Callable[[], Any] = make, grid: dict[str, Any] = grid) -> Any:
            return TuneSearchCV(make(), param_grid=grid, cv=folds, n_jobs=2).fit(X, y)

        def tune_path_fit(make: Callable[[], Any] = make, grid: dict[str, Any] = grid) -> Any:
            with tempfile.TemporaryDirectory() as storage:
                return TuneSearchCV(
                    make(), param_grid=grid, cv=folds, n_jobs=2, storage_path=storage
                ).fit(X, y)

        ray_was_up = ray.is_initialized()
        grid_first, theirs = _timed(grid_fit)
        tune_first, ours = _timed(tune_fit)
        np.testing.assert_allclose(
            ours.cv_results_["mean_test_score"],
            theirs.cv_results_["mean_test_score"],
            rtol=0,
            atol=1e-9,
            err_msg=name,
        )
        n_candidates = len(theirs.cv_results_["params"])
        grid_times, tune_times, floor_times = [], [], []
        # Not interleaved: a Tune-path run replaces Ray's pooled task workers with its trial
        # actors' workers, so the task-path call right after it starts fresh worker processes
        # again. That case is measured once, last.
        for _ in range(repeats):
            grid_times.append(_timed(grid_fit)[0])
        for _ in range(repeats):
            tune_times.append(_timed(tune_fit)[0])
        for _ in range(repeats):
            floor_times.append(_timed(tune_path_fit)[0])
        after_tune_path = _timed(tune_fit)[0]
        rows.append(
            {
                "problem": name,
                "fits": n_candidates * len(folds),
                "grid_first": grid_first,
                "tune_first": tune_first,
                "tune_first_includes_ray_init": not ray_was_up,
                "grid": grid_times,
                "tune": tune_times,
                "floor": floor_times,
                "after_tune_path": after_tune_path,
            }
        )
    return rows


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=["svc", "rf"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    warnings.simplefilter("ignore", DeprecationWarning)
    # Ray's legacy output engine honours verbose=0 (as TuneSearchCV runs it); keep the table clean.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    start = time.perf_counter()
    rows = run(args.problems, args.repeats)
    print(
        "| problem | fits | GridSearchCV(n_jobs=2) first | TuneSearchCV first | "
        f"GridSearchCV(n_jobs=2), Ray up, median of {args.repeats} | "
        f"TuneSearchCV, Ray up, median of {args.repeats} | ratio | "
        "TuneSearchCV on the Tune path (storage_path) | TuneSearchCV right after a Tune-path run |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = statistics.median(row["tune"]) / statistics.median(row["grid"])
        note = " (with ray.init)" if row["tune_first_includes_ray_init"] else ""
        print(
            f"| {row['problem']} | {row['fits']} | {row['grid_first']:.2f} | "
            f"{row['tune_first']:.2f}{note} | {_median_range(row['grid'])} | "
            f"{_median_range(row['tune'])} | {ratio:.1f}x | {_median_range(row['floor'])} | "
            f"{row['after_tune_path']:.2f} |"
        )
    print(
        f"\n{time.perf_counter() - start:.0f} s in all; 1-minute load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
