"""Paired comparison of two searchers from a `bench_searchers.py` run's ``results.csv``.

The main table's cells are medians over seeds, and with a few seeds a task whose values sit on a
few plateaus (a cross-validated error rate) swings a cell between 0 and 1. Two searchers run on
the same problems and seeds can be compared run by run instead::

    .venv/bin/python scripts/bench_paired.py DIR/results.csv --a auto --b gp-ei

For each pending mode k and reported budget, over the (problem, seed) pairs where both ran:

- wins / ties / losses of A against B on the run's regret (a tie: equal incumbents);
- the sign test's two-sided p-value on the wins and losses (exact binomial, ties left out);
- the mean paired difference of Bayesmark's normalized score, 100 (1 - min(1, regret / random's
  median regret)) (positive: A better), with a 95% bootstrap interval that resamples the seeds
  within each problem (problems are fixed: they are the benchmark, the seeds are the sample);
- the mean over problems of each searcher's median normalized regret (the main table's "mean",
  on the pairs compared).

No Ray, no searcher: only the CSV. Prints markdown; ``--out FILE`` writes it too.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PairedResult", "compare", "main", "read_results", "render"]


@dataclass(frozen=True)
class PairedResult:
    pending: int
    budget: int
    pairs: int
    wins: int  # A's regret lower
    ties: int
    losses: int
    p_value: float  # sign test, two-sided
    score_diff: float  # mean of score(A) - score(B) over pairs
    ci_low: float
    ci_high: float
    mean_a: float  # mean over problems of the median normalized regret
    mean_b: float
    per_problem: dict[str, tuple[float, float, int, int]]  # median r A, median r B, wins, losses


Row = dict[str, str]


def read_results(path: Path) -> list[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _score(normalized: float) -> float:
    return 100.0 * (1.0 - min(1.0, normalized))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` at p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def compare(
    rows: Sequence[Row],
    a: str,
    b: str,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> list[PairedResult]:
    """Paired results of searcher ``a`` against ``b``, one per (pending, budget) both have."""
    runs: dict[tuple[str, int, int, str, int], tuple[float, float]] = {}
    for row in rows:
        if row["searcher"] not in (a, b) or row["normalized_regret"] in ("", "None"):
            continue
        key = (row["searcher"], int(row["pending"]), int(row["budget"]), row["problem"])
        runs[(*key, int(row["seed"]))] = (float(row["regret"]), float(row["normalized_regret"]))
    # (pending, budget) -> problem -> [(regret a, regret b, normalized a, normalized b)]
    paired: dict[tuple[int, int], dict[str, list[tuple[float, float, float, float]]]] = (
        defaultdict(lambda: defaultdict(list))
    )
    for (s, k, budget, problem, run_seed), (regret, normalized) in sorted(runs.items()):
        if s != a:
            continue
        other = runs.get((b, k, budget, problem, run_seed))
        if other is not None:
            paired[(k, budget)][problem].append((regret, other[0], normalized, other[1]))
    rng = np.random.default_rng(seed)
    results = []
    for (k, budget), by_problem in sorted(paired.items()):
        wins = ties = losses = 0
        per_problem = {}
        diffs: list[np.ndarray] = []  # per problem: (seeds,) score differences
        for problem, pairs in sorted(by_problem.items()):
            w = sum(ra < rb for ra, rb, _, _ in pairs)
            l_ = sum(ra > rb for ra, rb, _, _ in pairs)
            wins, losses, ties = wins + w, losses + l_, ties + len(pairs) - w - l_
            na = np.array([p[2] for p in pairs])
            nb = np.array([p[3] for p in pairs])
            per_problem[problem] = (float(np.median(na)), float(np.median(nb)), w, l_)
            diffs.append(np.array([_score(x) - _score(y) for x, y in zip(na, nb, strict=True)]))
        n_pairs = sum(len(d) for d in diffs)
        mean_diff = float(np.sum([d.sum() for d in diffs]) / n_pairs)
        boot = np.empty(resamples)
        for i in range(resamples):
            total = 0.0
            for d in diffs:
                total += float(d[rng.integers(len(d), size=len(d))].sum())
            boot[i] = total / n_pairs
        low, high = np.quantile(boot, [0.025, 0.975])
        results.append(
            PairedResult(
                pending=k,
                budget=budget,
                pairs=n_pairs,
                wins=wins,
                ties=ties,
                losses=losses,
                p_value=sign_test(wins, losses),
                score_diff=mean_diff,
                ci_low=float(low),
                ci_high=float(high),
                mean_a=float(np.mean([v[0] for v in per_problem.values()])),
                mean_b=float(np.mean([v[1] for v in per_problem.values()])),
                per_problem=per_problem,
            )
        )
    return results


def render(results: Sequence[PairedResult], a: str, b: str) -> str:
    lines = [
        f"# {a} against {b}, run by run",
        "",
        f"| k | budget | pairs | {a} better / tie / worse | sign test p | "
        f"score diff (95% CI) | mean norm. regret {a} | {b} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.pending} | {r.budget} | {r.pairs} | {r.wins} / {r.ties} / {r.losses} | "
            f"{r.p_value:.3g} | {r.score_diff:+.1f} ({r.ci_low:+.1f}, {r.ci_high:+.1f}) | "
            f"{r.mean_a:.3g} | {r.mean_b:.3g} |"
        )
    lines += [
        "",
        "score diff: mean over pairs of Bayesmark's normalized score of "
        f"{a} minus {b}'s (positive: {a} better; 100 = optimum, 0 = random's median); the "
        "interval resamples seeds within each problem. Per problem (median normalized regret, "
        f"{a} better / worse runs):",
        "",
    ]
    for r in results:
        cells = [
            f"{p.removeprefix('task:')} {ma:.2g}/{mb:.2g} ({w}/{l_})"
            for p, (ma, mb, w, l_) in r.per_problem.items()
        ]
        lines.append(f"- k={r.pending}, budget {r.budget}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="results.csv of a bench_searchers.py run")
    parser.add_argument("--a", required=True, help="searcher A (as named in the CSV)")
    parser.add_argument("--b", required=True, help="searcher B")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    rows = read_results(args.csv)
    names = {row["searcher"] for row in rows}
    for flag, name in (("--a", args.a), ("--b", args.b)):
        if name not in names:
            parser.error(f"{flag} {name!r} is not in {args.csv} (it has {sorted(names)})")
    results = compare(rows, args.a, args.b, resamples=args.resamples)
    if not results:
        parser.error(f"{args.a} and {args.b} have no (problem, seed) run in common")
    text = render(results, args.a, args.b)
    print(text, end="")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
