"""Your own training loop as a trial: softmax regression in numpy, trained by mini-batch SGD.

``hpt-ray run softmax_function.yaml`` tunes it (``kind: function``): the function takes the
trial's config and the data the factory returned, and reports once per epoch, so ASHA can stop
poor trials early. Any loop that calls ``hpt_ray.report`` (or Ray Tune's ``ray.tune.report``)
runs the same way.
"""

from __future__ import annotations

import numpy as np

import hpt_ray


def train_fn(config, data):
    (X, y), (X_val, y_val) = data
    rng = np.random.default_rng(config.get("seed", 0))
    n_classes = int(max(y.max(), y_val.max())) + 1
    W = np.zeros((X.shape[1], n_classes))  # (n_features, n_classes)
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]  # (n_samples, n_classes)
    for epoch in range(1, config["epochs"] + 1):
        order = rng.permutation(len(X))
        for start in range(0, len(X), config["batch_size"]):
            rows = order[start : start + config["batch_size"]]
            p = _softmax(X[rows] @ W + b)  # (batch, n_classes)
            grad = p - onehot[rows]
            W -= config["lr"] * (X[rows].T @ grad / len(rows) + config["l2"] * W)
            b -= config["lr"] * grad.mean(axis=0)
        p_val = _softmax(X_val @ W + b)
        val_loss = float(-np.log(p_val[np.arange(len(y_val)), y_val] + 1e-12).mean())
        accuracy = float((p_val.argmax(axis=1) == y_val).mean())
        hpt_ray.report({"val_loss": val_loss, "val_accuracy": accuracy, "epoch": epoch})


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
