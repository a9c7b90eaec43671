"""Scale benchmark: hpt_ray's driver overhead against bare Ray Tune, and ASHA against FIFO.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_scale.py                  # both parts, defaults below
    .venv/bin/python scripts/bench_scale.py --trials 500 --reports 10 --skip-asha

1. Overhead: the same N trials of a trivial function trainable (R reports each, no work) through
   ``hpt_ray.run.run_experiment`` (our results writer, progress line, SafeScheduler, 1 s state
   snapshots) and through a bare ``ray.tune.Tuner`` with the same searcher ("random", seed 0),
   FIFO, ``reuse_actors=True`` and concurrency, in one process and one Ray session; the order
   alternates (bare, ours, bare, ours) and the median of the repeats is reported.
2. ASHA vs FIFO: ``tune_model`` on a PyTorch MLP (trainables.torch_trainable.mlp) on digits,
   ``--epochs`` max, ``--asha-trials`` trials, the same searcher and seed, for ``--asha-seeds``
   seeds (one seed's best accuracy moves by a few of the 360 validation images): total epochs
   trained, best validation accuracy, and wall time until the final best accuracy was first
   reported; per seed and their mean.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import ray
from ray import tune

import searchers
from hpt_ray import tune_model
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import make_scheduler
from trainables.torch_trainable import mlp


def trivial(config: dict, reports: int = 10) -> None:
    for i in range(reports):
        tune.report({"loss": config["x"] + i})


def bare_tune(n: int, reports: int, storage: Path, name: str) -> float:
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_parameters(trivial, reports=reports),
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=searchers.make_searcher("random", seed=0),
            num_samples=n,
            max_concurrent_trials=2,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0),
    )
    grid = tuner.fit()
    assert len(grid) == n
    return time.perf_counter() - start


def ours(n: int, reports: int, storage: Path, name: str) -> float:
    start = time.perf_counter()
    run = run_experiment(
        tune.with_parameters(trivial, reports=reports),
        {"x": tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=searchers.make_searcher("random", seed=0),
        scheduler=make_scheduler("fifo", max_t=reports),
        max_t=reports,
        num_samples=n,
        max_concurrent=2,
        storage_path=storage,
        name=name,
        verbose=0,
    )
    assert len(run.frame) == n
    return time.perf_counter() - start


def overhead(n: int, reports: int, repeats: int, storage: Path) -> None:
    bare_tune(20, reports, storage, "warmup")  # worker start-up and imports, not measured
    bare_s, ours_s = [], []
    for r in range(repeats):
        bare_s.append(bare_tune(n, reports, storage, f"bare-{r}"))
        ours_s.append(ours(n, reports, storage, f"ours-{r}"))
    b, o = statistics.median(bare_s), statistics.median(ours_s)
    print(f"\n## Overhead: {n} trials x {reports} reports, 2 concurrent, median of {repeats}\n")
    print("| runner | wall s (each repeat) | trials/s |")
    print("|---|---|---|")
    print(f"| bare Ray Tuner | {', '.join(f'{x:.1f}' for x in bare_s)} | {n / b:.2f} |")
    print(f"| hpt_ray run_experiment | {', '.join(f'{x:.1f}' for x in ours_s)} | {n / o:.2f} |")
    print(f"\nhpt_ray / bare wall time: {o / b:.3f} (overhead {100 * (o / b - 1):+.1f}%)")


def asha_vs_fifo(
    trials: int, epochs: int, grace: int, eta: int, seeds: int, storage: Path
) -> None:
    space = {
        "lr": tune.loguniform(1e-4, 3e-2),
        "hidden_size": tune.choice([32, 64, 128, 256]),
        "n_layers": tune.randint(1, 4),
        "dropout": tune.uniform(0.0, 0.5),
        "batch_size": 64,
    }
    rows = []
    for seed in range(seeds):
        for scheduler in ("fifo", "asha"):
            start = time.time()
            result = tune_model(
                mlp,
                space,
                data="digits",
                searcher="random",
                scheduler=scheduler,
                scheduler_options={"grace_period": grace, "reduction_factor": eta}
                if scheduler == "asha"
                else None,
                num_samples=trials,
                max_concurrent=2,
                epochs=epochs,
                seed=seed,
                storage_path=storage,
                name=f"{scheduler}-{seed}",
                verbose=0,
            )
            best = float(result.best_score)
            reached = math.nan
            for trial in result.result_grid:
                history = trial.metrics_dataframe
                if history is None or "val_accuracy" not in history:
                    continue
                hits = history[history["val_accuracy"] >= best]
                if len(hits):
                    t = float(hits["timestamp"].min()) - start
                    reached = t if math.isnan(reached) else min(reached, t)
            epochs_trained = int(result.trials["iterations"].sum())
            rows.append((seed, scheduler, best, epochs_trained, reached, time.time() - start))
    print(
        f"\n## ASHA vs FIFO: MLP on digits, {trials} trials, {epochs} epochs max, random, "
        f"seeds 0..{seeds - 1} (searcher and data split seeded alike for both schedulers)\n"
    )
    print("| seed | scheduler | best val accuracy | epochs trained | s to final best | total s |")
    print("|---|---|---|---|---|---|")
    for seed, name, best, trained, reached, total in rows:
        print(f"| {seed} | {name} | {best:.4f} | {trained} | {reached:.1f} | {total:.1f} |")
    for name in ("fifo", "asha"):
        mine = [r for r in rows if r[1] == name]
        print(
            f"| mean | {name} | {statistics.mean(r[2] for r in mine):.4f} | "
            f"{statistics.mean(r[3] for r in mine):.0f} | "
            f"{statistics.mean(r[4] for r in mine):.1f} | "
            f"{statistics.mean(r[5] for r in mine):.1f} |"
        )
    gaps = [100 * (a[2] - f[2]) for f, a in zip(rows[::2], rows[1::2], strict=True)]
    ratios = [a[3] / f[3] for f, a in zip(rows[::2], rows[1::2], strict=True)]
    print(
        f"\nASHA - FIFO best accuracy, points: {', '.join(f'{g:+.2f}' for g in gaps)} "
        f"(mean {statistics.mean(gaps):+.2f}); ASHA epochs / FIFO epochs: "
        f"{', '.join(f'{r:.3f}' for r in ratios)} (mean {statistics.mean(ratios):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="overhead: trials per run")
    parser.add_argument("--reports", type=int, default=10, help="overhead: reports per trial")
    parser.add_argument("--repeats", type=int, default=2, help="overhead: runs per runner")
    parser.add_argument("--asha-trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--grace", type=int, default=3, help="ASHA grace period (epochs)")
    parser.add_argument("--eta", type=int, default=3, help="ASHA reduction factor")
    parser.add_argument("--asha-seeds", type=int, default=3, help="ASHA vs FIFO: seeds 0..N-1")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-asha", action="store_true")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_overhead:
            overhead(args.trials, args.reports, args.repeats, Path(tmp) / "overhead")
        if not args.skip_asha:
            asha_vs_fifo(
                args.asha_trials,
                args.epochs,
                args.grace,
                args.eta,
                args.asha_seeds,
                Path(tmp) / "asha",
            )


if __name__ == "__main__":
    main()
