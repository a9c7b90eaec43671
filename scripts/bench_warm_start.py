"""Warm start of ``auto`` on related tasks (issue #16): how many trials to reach the cold run's
final quality.

For each pair (source task -> target task) and seed:
1. a cold ``auto`` run of ``--budget`` trials on the SOURCE task, whose trials become the warm
   start (a list of ``{"config", "value"}`` records, as `searchers.warm_start` reads them);
2. a cold ``auto`` run of ``--budget`` trials on the TARGET task: its best value is the bar;
3. a warm ``auto`` run on the TARGET task, ``warm_start=`` the source's trials.
Reported: the first trial at which the warm run's best reaches the cold run's final best
(goal: at most a third of the budget), and both runs' best at 1/3 of the budget.

Pairs ("related" as the issue puts it: same model, another data set or seed):
- the same model and data on another split (``fold_seed=1`` -> ``fold_seed=0``): the scales of
  the two objectives agree, only the noise of the split differs;
- svm-digits -> svm-breast_cancer: the same RBF SVM (error rate) on another data set; the target
  space lacks the source's ``shrinking`` (a removed parameter: ignored by the warm start).

Sequential (one trial at a time); each searcher runs on one BLAS thread.

    .venv/bin/python scripts/bench_warm_start.py --seeds 5 --budget 60 --out bench_results/warm
    .venv/bin/python scripts/bench_warm_start.py --variant history ...   (values told as well)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import tasks

from searchers import make_searcher

# (name, source task, source fold seed, target task, target fold seed)
PAIRS: list[tuple[str, str, int, str, int]] = [
    *[
        (f"{t} (other split)", t, 1, t, 0)
        for t in (
            "svm-breast_cancer",
            "rf-diabetes",
            "hgb-wine",
            "knn-wine",
            "elasticnet-diabetes",
            "logreg-breast_cancer",
        )
    ],
    ("svm-digits -> svm-breast_cancer", "svm-digits", 0, "svm-breast_cancer", 0),
]


# Warm-start variants of auto (--variant).
VARIANTS: dict[str, dict[str, Any]] = {
    "replay": {},  # the default: the best earlier configs re-evaluated as the initial design
    "history": {"warm_start_tell": True},  # ... and every earlier value told to the members
}


def cached(path: Path, compute: Any) -> Any:
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.write_text(json.dumps(value, default=str))
    return value


def run(
    task_name: str, fold_seed: int, seed: int, budget: int, warm: Any = None, **variant: Any
) -> list[Any]:
    """Sequential ``auto`` run; returns the trials as warm-start records, in order."""
    task = tasks.get_task(task_name)
    options = {} if warm is None else {"warm_start": warm, **variant}
    searcher = make_searcher("auto", seed=seed, **options)
    searcher.set_search_properties("loss", "min", task.make_space())
    memo: dict[str, float] = {}
    out = []
    for i in range(budget):
        config = searcher.suggest(f"t{i}")
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in memo:
            memo[key] = tasks.evaluate(task, config, fold_seed=fold_seed)
        value = memo[key]
        searcher.on_trial_complete(f"t{i}", {"loss": value})
        out.append({"config": config, "value": value})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--out", default="bench_results/warm")
    parser.add_argument("--pairs", nargs="*", help="pair names (default: all)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="replay")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    third = args.budget // 3
    rows = []
    started = time.time()
    for name, source, source_fold, target, target_fold in PAIRS:
        if args.pairs and name not in args.pairs:
            continue
        for seed in range(args.seeds):
            stem = out / f"{name.replace(' ', '_').replace('>', '')}-{seed}"
            warm = cached(
                stem.with_suffix(".source.json"),
                functools.partial(run, source, source_fold, seed + 100, args.budget),
            )
            cold = cached(
                stem.with_suffix(".cold.json"),
                functools.partial(run, target, target_fold, seed, args.budget),
            )
            hot = cached(
                stem.with_suffix(f".warm-{args.variant}.json"),
                functools.partial(
                    run, target, target_fold, seed, args.budget, warm, **VARIANTS[args.variant]
                ),
            )
            record = {"cold": [r["value"] for r in cold], "warm": [r["value"] for r in hot]}
            cold_best = np.minimum.accumulate(record["cold"])
            warm_best = np.minimum.accumulate(record["warm"])
            bar = cold_best[-1]
            reached = np.nonzero(warm_best <= bar)[0]
            rows.append(
                {
                    "pair": name,
                    "seed": seed,
                    "trials_to_cold_final": int(reached[0]) + 1 if len(reached) else None,
                    "cold_at_third": float(cold_best[third - 1]),
                    "warm_at_third": float(warm_best[third - 1]),
                    "cold_final": float(bar),
                    "warm_final": float(warm_best[-1]),
                }
            )
            print(
                f"[{time.time() - started:.0f}s] {name} seed {seed}: warm reaches the cold final "
                f"{bar:.4g} at trial {rows[-1]['trials_to_cold_final']}",
                flush=True,
            )
    lines = [
        f"| pair | seeds reaching the cold final by trial {third} | median trials to reach it "
        f"| cold best at {third} | warm best at {third} | cold best at {args.budget} "
        f"| warm best at {args.budget} |",
        "|---|---|---|---|---|---|---|",
    ]
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    n_ok = 0
    for pair in pairs:
        sub = [r for r in rows if r["pair"] == pair]
        hits = [
            r["trials_to_cold_final"] if r["trials_to_cold_final"] is not None else np.inf
            for r in sub
        ]
        ok = sum(h <= third for h in hits)
        n_ok += ok
        median = float(np.median(hits))
        lines.append(
            f"| {pair} | {ok} / {len(sub)} | {median:.0f} "
            f"| {np.mean([r['cold_at_third'] for r in sub]):.4g} "
            f"| {np.mean([r['warm_at_third'] for r in sub]):.4g} "
            f"| {np.mean([r['cold_final'] for r in sub]):.4g} "
            f"| {np.mean([r['warm_final'] for r in sub]):.4g} |"
        )
    lines.append("")
    lines.append(
        f"All pairs: {n_ok} of {len(rows)} runs reach the cold run's final best within "
        f"{third} trials (a third of {args.budget}); medians above (inf: not within the budget)."
    )
    table = "\n".join(lines)
    (out / f"table-{args.variant}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
