"""Fault test 4: a worker node dies while it runs trials; they resume elsewhere from checkpoints.

A real multi-node Ray cluster in this process (``ray.cluster_utils.Cluster``: a head with no CPUs,
so every trial runs on a worker, and two 2-CPU workers). A watcher thread reads the trials' own
result files; once a trial on some worker has checkpointed two epochs, that worker is removed
(its raylet and every process on it killed). Ray reports those trials as failed; with
``max_failures`` they restart on the surviving worker from their last checkpoint, and the
experiment completes with every trial.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import tune

import searchers
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import make_scheduler
from hpt_ray.table import read_results

pytestmark = [pytest.mark.slow, pytest.mark.fault]

EPOCHS = 8
NUM_SAMPLES = 4


def make_trainable():
    """Checkpoints every epoch, reports where it runs and the epoch it (re)started from."""

    def trainable(config):
        import os
        import tempfile
        import time

        import ray
        from ray import tune

        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as path, open(os.path.join(path, "epoch")) as handle:
                start = int(handle.read())
        node = ray.get_runtime_context().get_node_id()
        for epoch in range(start + 1, EPOCHS + 1):
            time.sleep(0.6)
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "epoch"), "w") as handle:
                    handle.write(str(epoch))
                tune.report(
                    {"loss": (config["x"] - 0.3) ** 2 + 1.0 / epoch, "start": start, "node": node},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )

    return trainable


@pytest.fixture
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _reports(experiment: Path) -> list[dict]:
    rows = []
    for path in experiment.glob("*/result.json"):
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # a line being written
                rows.append(json.loads(line))
    return rows


@pytest.mark.timeout(240)
def test_trials_on_a_removed_node_resume_elsewhere_from_checkpoints(
    cluster: Any, tmp_path: Path
) -> None:
    storage = tmp_path / "results"
    workers = {node.node_id: node for node in cluster.list_all_nodes() if not node.head}
    assert len(workers) == 2
    removed: dict[str, Any] = {}

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for row in _reports(storage / "exp"):
                if row.get("training_iteration", 0) >= 2 and row.get("node") in workers:
                    node_id = row["node"]
                    cluster.remove_node(workers[node_id], allow_graceful=False)
                    removed["node"] = node_id
                    removed["trial"] = row["trial_id"]
                    return
            time.sleep(0.1)

    watcher = threading.Thread(target=kill_a_busy_worker, daemon=True)
    ray.init(address=cluster.address)
    watcher.start()
    run = run_experiment(
        make_trainable(),
        {"x": tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=searchers.make_searcher("gp-ei", seed=0),
        scheduler=make_scheduler("fifo", max_t=EPOCHS),
        max_t=EPOCHS,
        num_samples=NUM_SAMPLES,
        storage_path=storage,
        name="exp",
        verbose=0,
        max_failures=3,
    )
    watcher.join(timeout=1)
    assert "node" in removed, "no trial reached its second epoch on a worker"

    # Every trial completed, none lost, none counted twice.
    frame = read_results(run.path)
    assert len(frame) == NUM_SAMPLES
    assert frame["trial_id"].is_unique
    assert (frame["status"] == "completed").all(), frame[["trial_id", "status", "error"]]
    assert (frame["iterations"] == EPOCHS).all()

    # The trials that were on the removed node finished on the surviving one, restarted from a
    # checkpoint (not from epoch 0).
    survivor = next(node for node in workers if node != removed["node"])
    last = {r.metrics["trial_id"]: r.metrics for r in run.result_grid}
    moved = [m for m in last.values() if m["start"] > 0]
    assert removed["trial"] in {m["trial_id"] for m in moved}
    assert all(m["node"] == survivor for m in moved)
    assert last[removed["trial"]]["start"] >= 2
