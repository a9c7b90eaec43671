"""Train the bundled fine-tuning backbone: the small CNN of ``trainables.cnn`` on digits 0-4.

    .venv/bin/python scripts/train_backbone.py [--out PATH] [--epochs 40]

Trains ``cnn(trainables.finetune.BACKBONE_CONFIG)`` on the stratified 80% of scikit-learn's
digits 0-4 (``trainables.cnn.digits_images(seed=0, labels=(0, 1, 2, 3, 4))``) with Adam, on the
CPU with one thread, and writes ``trainables/weights/digits04_cnn.pt`` (format in
``trainables.finetune``), then prints the accuracy on the held-out 20%.

Deterministic: torch is seeded, shuffling uses ``np.random.default_rng([seed, epoch])`` and one
CPU thread fixes the reduction order, so a rerun with the same torch version writes the same
bytes (the script prints the file's SHA-256 to compare).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables.cnn import cnn, digits_images
from trainables.finetune import BACKBONE_CONFIG, BACKBONE_PATH, PRETRAIN_LABELS


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``X`` (n, 1, 8, 8) classified as ``y`` (n,)."""
    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BACKBONE_PATH)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    torch.set_num_threads(1)
    train, val = digits_images(seed=args.seed, labels=PRETRAIN_LABELS)
    X_tr, y_tr = train.tensors  # (n_train, 1, 8, 8), (n_train,)
    X_va, y_va = val.tensors  # (n_val, 1, 8, 8), (n_val,)
    torch.manual_seed(args.seed)
    model = cnn({**BACKBONE_CONFIG, "_input_shape": (1, 8, 8), "_n_outputs": len(PRETRAIN_LABELS)})
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        order = torch.as_tensor(np.random.default_rng([args.seed, epoch]).permutation(len(y_tr)))
        for batch in order.split(args.batch_size):
            optimizer.zero_grad()
            loss_fn(model(X_tr[batch]), y_tr[batch]).backward()
            optimizer.step()
    val_accuracy = accuracy(model, X_va, y_va)
    state = model.state_dict()
    saved = {
        # The body only: init_checkpoint loads it and the fine-tuned model's head starts fresh.
        "state_dict": {k: v for k, v in state.items() if k.startswith("features.")},
        "head": {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")},
        "config": dict(BACKBONE_CONFIG),
        "labels": list(PRETRAIN_LABELS),
        "val_accuracy": val_accuracy,
        "seed": args.seed,
        "epochs": args.epochs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"digits 0-4: train accuracy {accuracy(model, X_tr, y_tr):.4f}, held-out accuracy "
        f"{val_accuracy:.4f} ({len(y_va)} images); {args.epochs} epochs in "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
