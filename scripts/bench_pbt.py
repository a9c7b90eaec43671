"""Population-based training side by side (issue #17 part 2): PBT explored by Ray's
perturbation, PB2, and PBT explored by our searchers (gp-ei, pso, genetic), populations of 4 and
8 (all explores at 4; Ray's PBT, the goal's anchor, also at 8), on the MLP on digits with a
learning-rate and weight-decay schedule, several seeds. The PyTorch trainable re-applies the
config's optimizer hyperparameters after a restore (commit 8172151), so a member's weight decay
after an exploit is the one its schedule says, not the donor's.

Measured: the population's best validation accuracy against the total epochs it trained (every
member's reports, counted from the schedule). Writes ``scripts/results/pbt/bench.csv``, a table
of the mean best accuracy at a few budgets (``table.md``) and a plot (``pbt.png``).

    .venv/bin/python scripts/bench_pbt.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from ray import tune

import hpt_ray
from trainables.torch_trainable import mlp

OUT = Path(__file__).resolve().parent / "results" / "pbt"
METHODS = {
    "pbt-ray": ("pbt", {}),
    "pb2": ("pb2", {}),
    "pbt-gp-ei": ("pbt", {"explore": "gp-ei"}),
    "pbt-pso": ("pbt", {"explore": "pso"}),
    "pbt-genetic": ("pbt", {"explore": "genetic"}),
}
EPOCHS = 6
# Wide enough that most initial draws are poor: a good schedule has to be found. Weight decay
# up to 0.3 shrinks SGD's weights by up to lr * 0.3 per step: a large draw costs accuracy.
SPACE = {
    "lr": tune.loguniform(1e-5, 1.0),
    "weight_decay": tune.loguniform(1e-5, 0.3),
    "batch_size": 64,
    "hidden_size": 32,
    "n_layers": 1,
    "optimizer": "sgd",
}


def run_one(method: str, population: int, seed: int, storage: str) -> pd.DataFrame:
    scheduler, options = METHODS[method]
    result = hpt_ray.tune_model(
        mlp,
        SPACE,
        data="digits",
        searcher="random",
        scheduler=scheduler,
        scheduler_options={"perturbation_interval": 1, **options},
        num_samples=population,
        max_concurrent=population,
        resources_per_trial={"cpu": 2 / population},
        epochs=EPOCHS,
        seed=seed,
        storage_path=storage,
        verbose=0,
    )
    schedule = result.schedule.sort_values(["iteration"]).reset_index(drop=True)
    # Every report is one epoch trained by one member; the curve is the best so far.
    schedule["epochs_total"] = np.arange(1, len(schedule) + 1)
    schedule["best_so_far"] = schedule["metric"].cummax()
    schedule["method"], schedule["population"], schedule["seed"] = method, population, seed
    return schedule[["method", "population", "seed", "epochs_total", "best_so_far"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="at population 4")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the runs already in bench.csv (a later invocation adds methods or seeds)",
    )
    parser.add_argument(
        "--replot", action="store_true", help="table and plot from bench.csv, nothing run"
    )
    parser.add_argument(
        "--methods-8", nargs="*", default=["pbt-ray"], help="at population 8 (the goal's anchor)"
    )
    args = parser.parse_args()
    if args.replot:
        data = pd.read_csv(OUT / "bench.csv")
        write_table(data)
        plot(data)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    OUT.mkdir(parents=True, exist_ok=True)
    frames = [pd.read_csv(OUT / "bench.csv")] if args.append else []
    with tempfile.TemporaryDirectory() as storage:
        for seed in args.seeds:
            runs = [(m, 4) for m in args.methods] + [(m, 8) for m in args.methods_8]
            for method, population in runs:
                start = time.monotonic()
                frames.append(run_one(method, population, seed, storage))
                best = frames[-1]["best_so_far"].iloc[-1]
                print(
                    f"{method:12s} pop {population} seed {seed}: best {best:.4f} "
                    f"({time.monotonic() - start:.0f} s)",
                    flush=True,
                )
                pd.concat(frames).to_csv(OUT / "bench.csv", index=False)
    data = pd.concat(frames)
    write_table(data)
    plot(data)


def best_at(data: pd.DataFrame, budget: int) -> pd.Series:
    """Mean (over seeds) of the best accuracy within ``budget`` total epochs."""
    within = data[data["epochs_total"] <= budget]
    per_seed = within.groupby(["method", "population", "seed"])["best_so_far"].max()
    return per_seed.groupby(["method", "population"]).agg(["mean", "std"])


def write_table(data: pd.DataFrame) -> None:
    budgets = [8, 16, 24, 48]
    lines = ["| method | population | " + " | ".join(f"{b} epochs" for b in budgets) + " |"]
    lines.append("|---|---|" + "---|" * len(budgets))
    stats = {b: best_at(data, b) for b in budgets}
    for method, population in stats[budgets[-1]].index:
        cells = []
        for b in budgets:
            row = stats[b].loc[(method, population)]
            reached = b <= EPOCHS * population
            cells.append(f"{row['mean']:.4f} ± {row['std']:.4f}" if reached else "-")
        lines.append(f"| {method} | {population} | " + " | ".join(cells) + " |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(data: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (method, population), group in data.groupby(["method", "population"]):
        # Each seed's best so far, held to the longest run's end (runs differ in length: a
        # member that copies a donor continues from the donor's epoch), then the mean.
        per_seed = group.pivot_table(
            index="epochs_total", columns="seed", values="best_so_far", aggfunc="max"
        )
        curve = per_seed.reindex(range(1, int(per_seed.index.max()) + 1)).ffill().mean(axis=1)
        ax.plot(
            curve.index,
            curve.values,
            label=f"{method} ({population})",
            linestyle="-" if population == 4 else "--",
        )
    ax.set_xlabel("total epochs trained by the population")
    ax.set_ylabel("best validation accuracy (mean over seeds)")
    ax.set_ylim(0.8, 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "pbt.png", dpi=100)


if __name__ == "__main__":
    main()
