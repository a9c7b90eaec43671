"""Fine-tuning the bundled digits 0-4 backbone on digits 5-9 with few labels: tuned fine-tuning vs
the same CNN from scratch with tuned hyperparameters vs fine-tuning with a fixed default recipe,
side by side in one run, at equal trial budget and epochs.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_finetune.py                        # 3 seeds, 12 trials x 15
    .venv/bin/python scripts/bench_finetune.py --seeds 0 1 2 3 4 --trials 12 --epochs 15

Per seed ``s`` (``trainables.finetune.few_label_digits(per_class=10, seed=s)``: digits 5-9, a
stratified 40% test split never seen while tuning, 10 labelled training images per class, the
rest of the 60% for validation), three ``hpt_ray.tune_model`` runs of ``trainables.cnn.cnn``
with the backbone's architecture, each ``--trials`` trials of ``--epochs`` epochs, FIFO (every
trial trains all its epochs, so the arms see the same number of epochs), two at once, batch 16:

- ``finetune``: ``init_checkpoint`` = the backbone's body, ``finetune_space()`` (lr, weight
  decay, warmup, freeze_epochs, layer_decay, head_lr_mult) searched by ``--searcher`` (seed s);
- ``scratch``: no initial weights, ``scratch_space()`` (lr, weight decay, warmup) searched by the
  same searcher with the same seed;
- ``default``: ``init_checkpoint`` = the backbone, the default recipe (Adam, lr 1e-3, nothing
  frozen, no warmup, no weight decay, layer_decay 1, head_lr_mult 1); its ``--trials`` trials
  differ only in the trial seed (head initialization and shuffling, drawn by the random
  searcher), so it spends the same budget and picks its best trial by validation accuracy the
  same way. The table also gives the mean validation accuracy of its trials: what one untuned
  run scores on average.

For each run: the best trial's final validation accuracy (``result.best_score``) and the test
accuracy of ``result.best_model()`` on the test split (``--out DIR`` also writes each run's
trials, config and final validation accuracy, as ``DIR/<arm>-<seed>.csv``). Prints a markdown
table per seed and the mean +- std (sample std over seeds) per arm, and the wall time of each
arm.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.cnn import cnn
from trainables.finetune import (
    BACKBONE_CONFIG,
    BACKBONE_PATH,
    DEFAULT_RECIPE,
    few_label_digits,
    finetune_space,
    scratch_space,
)

ARMS: tuple[str, ...] = ("finetune", "scratch", "default")


def arm_run(arm: str, seed: int, batch_size: int) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The space, searcher name override ("" = the benchmark's) and trainer options of an arm."""
    init = {"init_checkpoint": str(BACKBONE_PATH)}
    if arm == "finetune":
        return finetune_space(batch_size=batch_size, seed=seed), "", init
    if arm == "scratch":
        return scratch_space(batch_size=batch_size, seed=seed), "", {}
    space = {
        **BACKBONE_CONFIG,
        **DEFAULT_RECIPE,
        "batch_size": batch_size,
        "seed": tune.randint(0, 2**31 - 1),
    }
    return space, "random", init


def run(
    seeds: Sequence[int],
    *,
    trials: int,
    epochs: int,
    per_class: int,
    searcher: str,
    batch_size: int,
    out: Path | None = None,
) -> list[dict[str, Any]]:
    from hpt_ray import tune_model

    rows = []
    for seed in seeds:
        train, val, test = few_label_digits(per_class=per_class, seed=seed)
        X_test, y_test = test.tensors  # (n_test, 1, 8, 8), (n_test,)
        for arm in ARMS:
            space, searcher_override, options = arm_run(arm, seed, batch_size)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as storage:
                result = tune_model(
                    cnn,
                    space,
                    data=(train, val),
                    kind="torch",
                    metric="val_accuracy",
                    mode="max",
                    searcher=searcher_override or searcher,
                    scheduler="fifo",
                    num_samples=trials,
                    max_concurrent=2,
                    epochs=epochs,
                    seed=seed,
                    trainer_options=options,
                    storage_path=storage,
                    name=f"{arm}-{seed}",
                    verbose=0,
                )
                wall = time.perf_counter() - start
                model = result.best_model()
                predicted = model(X_test).argmax(dim=1).numpy()
            finals = result.trials["final_metric"].to_numpy(dtype=float)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                columns = ["final_metric", "status"] + [
                    c for c in result.trials.columns if c.startswith("config/")
                ]
                result.trials[columns].to_csv(out / f"{arm}-{seed}.csv", index=False)
            row = {
                "seed": seed,
                "arm": arm,
                "val": math.nan if result.best_score is None else float(result.best_score),
                "test": float(np.mean(predicted == y_test.numpy())),
                "mean_trial_val": float(np.nanmean(finals)),
                "n_trials": len(finals),
                "wall_s": wall,
                "best_config": {
                    k: v for k, v in (result.best_config or {}).items() if k not in BACKBONE_CONFIG
                },
            }
            print(
                f"seed {seed} {arm:8s} val {row['val']:.4f} test {row['test']:.4f} "
                f"mean trial val {row['mean_trial_val']:.4f} ({row['n_trials']} trials, "
                f"{wall:.0f} s) best {row['best_config']}",
                flush=True,
            )
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Per-seed rows, then mean +- std per arm, as markdown."""
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["arm"], r["seed"]): r for r in rows}
    lines = [
        "| arm | " + " | ".join(f"seed {s} val / test" for s in seeds) + " | val mean ± std "
        "| test mean ± std | mean trial val | wall (s) |",
        "|---|" + "---|" * (len(seeds) + 4),
    ]
    for arm in ARMS:
        mine = [by[(arm, s)] for s in seeds]

        def stat(key: str, mine: list[dict[str, Any]] = mine) -> str:
            values = [r[key] for r in mine]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} ± {spread:.3f}"

        cells = [f"{r['val']:.3f} / {r['test']:.3f}" for r in mine]
        wall = sum(r["wall_s"] for r in mine)
        lines.append(
            f"| {arm} | " + " | ".join(cells) + f" | {stat('val')} | {stat('test')} | "
            f"{stat('mean_trial_val')} | {wall:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--searcher", default="gp-ei")
    parser.add_argument("--out", type=Path, default=None, help="write each run's trials as CSV")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(
        args.seeds,
        trials=args.trials,
        epochs=args.epochs,
        per_class=args.per_class,
        searcher=args.searcher,
        batch_size=args.batch_size,
        out=args.out,
    )
    print()
    print(table(rows))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
