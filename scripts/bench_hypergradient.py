"""Benchmark of hypergradient learning rates (issue #17 part 1), side by side in one run.

The MLP (``trainables.torch_trainable.mlp``) and the CNN (``trainables.cnn.cnn``) on digits
(``load_data("digits")``: 1437 training and 360 validation rows), trained by the PyTorch
trainable's own training core (`resolve_settings`, `make_optimizer`, `set_epoch_lr`,
`_train_epoch`, `_evaluate`) without Ray, with Adam (the trainable's default optimizer):

(a) a log grid of initial learning rates (1e-5 .. 1e0, 11 points), with and without
    ``lr_adaptation="hypergradient"`` (``beta`` fixed at each of ``--betas``): final accuracy
    per seed; the range of initial rates whose mean accuracy is within 1 point of the best (as
    max/min, the grid's half-decade steps giving its resolution), against the arm's own best and
    against the plain arm's best (what a tuned plain run reaches);
(b) a random search of ``--trials`` trials per seed: ``lr`` log-uniform on 1e-5 .. 1e0 (the same
    draws for both arms), plus ``hypergradient_beta`` with the
    adapter (log-uniform on 0.03 .. 1); the best final validation accuracy of each search;
(c) the CPU time of a training step with and without the adapter: both arms built in this
    process, one epoch of each in turn (``--repeats`` rounds after one of warm-up), the median
    epoch divided by its steps.

Writes ``scripts/results/hypergradient/results.json`` and prints the tables BENCHMARKS.md holds::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_hypergradient.py --seeds 3 --first-seed 3 \
        --betas 0.5,0.1,0.3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.cnn import cnn
from trainables.data import Dataset, load_data
from trainables.torch_data import ArrayBatches
from trainables.torch_options import TrainerOptions
from trainables.torch_recipe import apply_freeze, make_optimizer, model_layers, set_epoch_lr
from trainables.torch_trainable import (
    TorchTrainingDefaults,
    _evaluate,
    _train_epoch,
    mlp,
    resolve_settings,
)

MODELS: dict[str, tuple[Any, dict[str, Any], int]] = {
    # name: (factory, its config, epochs)
    "mlp": (mlp, {"hidden_size": 64, "n_layers": 2}, 10),
    "cnn": (cnn, {"channels": 8, "n_blocks": 2}, 6),
}
GRID = [10.0**e for e in np.linspace(-5.0, 0.0, 11)]  # (11,) half-decade steps
OUT = Path(__file__).parent / "results" / "hypergradient"


def build(
    data: Dataset, model: str, lr: float, *, seed: int, beta: float | None, epochs: int | None
) -> tuple[nn.Module, torch.optim.Optimizer, Any, ArrayBatches, Any]:
    """The model, optimizer, settings, batches and layers of one run (``beta=None``: plain)."""
    factory, model_config, default_epochs = MODELS[model]
    config: dict[str, Any] = {
        **model_config,
        "lr": lr,
        "optimizer": "adam",
        "seed": seed,
        "epochs": epochs or default_epochs,
        "batch_size": 64,
    }
    if beta is not None:
        config.update(lr_adaptation="hypergradient", hypergradient_beta=beta)
    settings = resolve_settings(config, TorchTrainingDefaults())
    batches = ArrayBatches(data, torch.device("cpu"))
    torch.manual_seed(seed)
    net = factory(
        {
            **config,
            "_n_features": int(np.prod(batches.input_shape)),
            "_input_shape": batches.input_shape,
            "_n_outputs": data.n_classes,
            "_task": "classification",
        }
    )
    layers = model_layers(net)
    return net, make_optimizer(layers, settings.recipe), settings, batches, layers


def train(
    data: Dataset,
    model: str,
    lr: float,
    *,
    seed: int,
    beta: float | None,
    epochs: int | None = None,
) -> dict[str, float]:
    """One training run; ``beta=None`` trains without the adapter."""
    net, optimizer, settings, batches, layers = build(
        data, model, lr, seed=seed, beta=beta, epochs=epochs
    )
    loss_fn = nn.CrossEntropyLoss()
    epoch_seconds = []
    train_loss = math.nan
    for epoch in range(1, settings.epochs + 1):
        set_epoch_lr(optimizer, settings.recipe, epoch)
        apply_freeze(net, layers, 0)
        # CPU time of this thread (one torch thread): the shared cores' load inflates wall time
        # by 2-3x and by different amounts run to run, CPU time much less.
        start = time.thread_time()
        train_loss = _train_epoch(
            net, optimizer, None, loss_fn, batches, settings, epoch, "classification"
        )
        epoch_seconds.append(time.thread_time() - start)
        if not math.isfinite(train_loss):
            break
    metrics = _evaluate(net, loss_fn, batches, "classification", 4096, TrainerOptions(), False)
    diverged = not (math.isfinite(train_loss) and math.isfinite(metrics["val_loss"]))
    final_lr = getattr(optimizer, "effective_lr", lambda: lr)()
    return {
        "val_accuracy": 0.0 if diverged else metrics["val_accuracy"],
        "final_lr": float(final_lr),
        "epoch_seconds": epoch_seconds,  # type: ignore[dict-item]
    }


def good_range(
    lrs: list[float], accuracy: list[float], best: float | None = None
) -> tuple[float, float, float]:
    """(lowest, highest) initial rate within 1 point of ``best`` (default: the best of
    ``accuracy``), and their ratio; (nan, nan, 0) if none is."""
    best = max(accuracy) if best is None else best
    good = [lr for lr, acc in zip(lrs, accuracy, strict=True) if acc >= best - 0.01]
    if not good:
        return math.nan, math.nan, 0.0
    return min(good), max(good), max(good) / min(good)


def grid_part(data: Dataset, seeds: list[int], betas: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    arms: list[tuple[str, float | None]] = [("plain", None)]
    arms += [(f"hd beta={beta:g}", beta) for beta in betas]
    for model in MODELS:
        for arm, arm_beta in arms:
            rows = [
                [train(data, model, lr, seed=seed, beta=arm_beta)["val_accuracy"] for lr in GRID]
                for seed in seeds
            ]  # (n_seeds, n_grid)
            mean = np.mean(rows, axis=0).tolist()  # (n_grid,)
            sem = (np.std(rows, axis=0, ddof=1) / math.sqrt(len(seeds))).tolist()  # (n_grid,)
            lo, hi, ratio = good_range(GRID, mean)
            # The same rule against the plain arm's best: the accuracy a tuned plain run reaches.
            plain_best = out[f"{model}/plain"]["best"] if arm_beta is not None else max(mean)
            plo, phi, pratio = good_range(GRID, mean, plain_best)
            out[f"{model}/{arm}"] = {
                "accuracy": rows,
                "mean": mean,
                "sem": sem,
                "best": max(mean),
                "good_low": lo,
                "good_high": hi,
                "good_ratio": ratio,
                "good_vs_plain_best": [plo, phi, pratio],
            }
            print(
                f"grid {model:4s} {arm:13s} best {max(mean):.4f} good {lo:.1e}..{hi:.1e} "
                f"({ratio:.0f}x; vs plain's best {pratio:.0f}x)  "
                + " ".join(f"{a:.3f}" for a in mean)
                + f"  mean sem {statistics.fmean(sem):.3f}",
                flush=True,
            )
    return out


def search_part(data: Dataset, seeds: list[int], trials: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in MODELS:
        for arm in ("plain", "hypergradient"):
            bests = []
            for seed in seeds:
                rng = np.random.default_rng([17, seed])
                lrs = 10.0 ** rng.uniform(-5.0, 0.0, trials)  # (trials,) same draws per arm
                betas = 10.0 ** rng.uniform(math.log10(0.03), math.log10(1.0), trials)
                accuracy = [
                    train(
                        data,
                        model,
                        float(lr),
                        seed=seed,
                        beta=float(b) if arm == "hypergradient" else None,
                    )["val_accuracy"]
                    for lr, b in zip(lrs, betas, strict=True)
                ]
                bests.append(max(accuracy))
            out[f"{model}/{arm}"] = {"best_per_seed": bests, "mean": statistics.fmean(bests)}
            print(
                f"search {model:4s} {arm:13s} best accuracy per seed "
                + " ".join(f"{b:.4f}" for b in bests)
                + f"  mean {statistics.fmean(bests):.4f}",
                flush=True,
            )
    return out


def overhead_part(data: Dataset, repeats: int, beta: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    steps = math.ceil(data.X_train.shape[0] / 64)
    loss_fn = nn.CrossEntropyLoss()
    for model in MODELS:
        # Both arms in this process, one epoch each in turn, so that the load on the shared cores
        # and the CPU's clock hit both alike; the first round is warm-up.
        arms = {
            name: build(data, model, 1e-3, seed=0, beta=arm_beta, epochs=repeats + 1)
            for name, arm_beta in (("plain", None), ("adapted", beta))
        }
        seconds: dict[str, list[float]] = {name: [] for name in arms}
        for epoch in range(1, repeats + 2):
            for name, (net, optimizer, settings, batches, _) in arms.items():
                start = time.thread_time()
                _train_epoch(
                    net, optimizer, None, loss_fn, batches, settings, epoch, "classification"
                )
                if epoch > 1:
                    seconds[name].append(time.thread_time() - start)
        p = statistics.median(seconds["plain"]) / steps
        a = statistics.median(seconds["adapted"]) / steps
        out[model] = {"plain_step_ms": 1e3 * p, "adapted_step_ms": 1e3 * a, "overhead": a / p - 1}
        print(
            f"step {model:4s} plain {1e3 * p:.3f} ms  adapted {1e3 * a:.3f} ms  "
            f"overhead {100 * (a / p - 1):+.1f}%",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first .. first+seeds-1")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--betas", default="0.3", help="grid arms (the first: search, time)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--parts", default="grid,search,overhead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data("digits", seed=0)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    betas = [float(b) for b in args.betas.split(",")]
    start = time.perf_counter()
    results: dict[str, Any] = {"args": vars(args), "grid_lrs": GRID}
    parts = args.parts.split(",")
    if "grid" in parts:
        results["grid"] = grid_part(data, seeds, betas)
    if "search" in parts:
        results["search"] = search_part(data, seeds, args.trials)
    if "overhead" in parts:
        results["overhead"] = overhead_part(data, args.repeats, betas[0])
    results["wall_s"] = time.perf_counter() - start
    print(f"wall {results['wall_s']:.0f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, OUT / "results.json")


if __name__ == "__main__":
    main()
