"""Cluster features with real Ray processes: configs, GPU placement, autoscaling, jobs, fail-fast.

These tests never use the session ``ray_local`` fixture: each calls ``ray.shutdown()`` before and
after, starts its own cluster (``ray.cluster_utils.Cluster`` in-process, or ``ray start`` through
``scripts/local_cluster.py`` on non-default ports and a temp dir) and stops only what it started.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"lr": 0.01, "hidden_size": 16, "n_layers": 1, "batch_size": 256}


def _local_cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "local_cluster", ROOT / "scripts" / "local_cluster.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_ray() -> Iterator[None]:
    """Leave no driver connection behind (another module may share this pytest process)."""
    ray.shutdown()
    yield
    ray.shutdown()


# ---------------------------------------------------------------------------------- configs


def test_cluster_yaml_passes_ray_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    types = config["available_node_types"]
    assert types["ray.worker.gpu"]["resources"]["GPU"] >= 1
    assert "GPU" not in types["ray.worker.cpu"]["resources"]


def test_local_cluster_yaml_passes_ray_schema() -> None:
    # prepare_config would read fake_multi_node/example.yaml, which the 2.60 wheel lacks; the
    # local config spells every field out instead, so the schema check alone applies.
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((ROOT / "scripts" / "local_cluster.yaml").read_text())
    validate_config(config)
    assert config["available_node_types"]["ray.worker.gpu"]["resources"]["GPU"] == 2


def test_setup_pins_satisfy_pyproject() -> None:
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    commands = " ".join(yaml.safe_load((ROOT / "cluster.yaml").read_text())["setup_commands"])
    pins = {}
    for token in commands.replace('"', " ").split():
        if "==" in token:
            requirement = Requirement(token)
            pins[requirement.name.lower()] = requirement
    assert set(wanted) <= set(pins), f"unpinned: {sorted(set(wanted) - set(pins))}"
    for name, requirement in wanted.items():
        version = next(iter(pins[name].specifier)).version
        assert requirement.specifier.contains(version), (name, version, requirement)
        assert requirement.extras <= pins[name].extras, name
    assert str(pins["torch"].specifier) == "==2.13.0"
    assert str(pins["ray"].specifier) == "==2.60.0"


# ------------------------------------------------------------- in-process multi-node cluster


@pytest.fixture(scope="module")
def head_only_cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 0, "include_dashboard": False},
    )
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_impossible_gpu_request_fails_fast(head_only_cluster: Any, no_ray: None) -> None:
    from hpt_ray import tune_model
    from hpt_ray.cluster import InfeasibleResourcesError
    from trainables.torch_trainable import mlp

    started = time.monotonic()
    with pytest.raises(InfeasibleResourcesError, match=r"resources_per_trial=.*'gpu': 1"):
        tune_model(
            mlp,
            SPACE,
            data="iris",
            searcher="random",
            num_samples=1,
            epochs=1,
            resources_per_trial={"cpu": 1, "gpu": 1},
            ray_address=head_only_cluster.address,
            verbose=0,
        )
    assert time.monotonic() - started < 30

    # The GridSearchCV drop-in checks its resources the same way.
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from hpt_ray import TuneSearchCV

    X, y = load_iris(return_X_y=True)
    search = TuneSearchCV(
        LogisticRegression(max_iter=200),
        {"C": [0.1, 1.0]},
        searcher="grid",
        cv=2,
        resources_per_trial={"cpu": 1, "gpu": 1},
        verbose=0,
    )
    started = time.monotonic()  # still connected to the cluster by tune_model above
    with pytest.raises(InfeasibleResourcesError, match=r"'gpu': 1"):
        search.fit(X, y)
    assert time.monotonic() - started < 30


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_gpu_trials_run_on_the_gpu_worker(
    head_only_cluster: Any, no_ray: None, tmp_path: Path
) -> None:
    from hpt_ray import tune_model
    from trainables.torch_trainable import mlp

    # The worker declares 2 GPUs (none exist); its 4 CPUs let 4 half-GPU trials run at once.
    worker = head_only_cluster.add_node(num_cpus=4, num_gpus=2)
    head_only_cluster.wait_for_nodes()
    result = tune_model(
        mlp,
        {**SPACE, "lr": ray.tune.loguniform(1e-3, 1e-1)},
        data="iris",
        searcher="random",
        scheduler="fifo",
        num_samples=6,
        epochs=2,
        resources_per_trial={"cpu": 1, "gpu": 0.5},
        ray_address=head_only_cluster.address,
        storage_path=tmp_path,
        name="gpu",
        verbose=0,
        seed=0,
    )
    metrics = [r.metrics for r in result.result_grid]
    assert len(metrics) == 6
    assert {m["node_id"] for m in metrics} == {worker.node_id}
    ids = [m["gpu_ids"] for m in metrics]
    assert all(i in ("0", "1") for i in ids), ids
    # Ray's ``timestamp`` is whole seconds (the true end lies in [timestamp, timestamp + 1)), so
    # each interval is shrunk to the part surely inside the trial's run: never an overlap that
    # did not happen (a CI run once counted 5 with the unshrunk intervals).
    intervals = [(m["timestamp"] - m["time_total_s"] + 1, m["timestamp"]) for m in metrics]
    most = max(sum(s <= t < e for s, e in intervals) for t, _ in intervals)
    assert most <= 4

    # CPU-only trials run too, with no GPU ids.
    ray.shutdown()
    cpu = tune_model(
        mlp,
        {**SPACE, "lr": ray.tune.loguniform(1e-3, 1e-1)},
        data="iris",
        searcher="random",
        scheduler="fifo",
        num_samples=6,
        epochs=5,
        # 2 CPUs each: the worker (4 CPUs) holds two trials at once, the head (2) a third.
        resources_per_trial={"cpu": 2},
        ray_address=head_only_cluster.address,
        storage_path=tmp_path,
        name="cpu",
        verbose=0,
        seed=0,
    )
    cpu_metrics = [r.metrics for r in cpu.result_grid]
    assert len(cpu_metrics) == 6
    assert all(m["gpu_ids"] == "" for m in cpu_metrics)

    # CPU-only trials also use the head: three 2-CPU trials that overlap need the worker's 4 CPUs
    # and the head's 2. (The short MLP trials above finish before a third starts, so with actor
    # reuse they never need the head; these hold their CPUs for 4 s.)
    from hpt_ray.schedulers import make_scheduler
    from hpt_ray.tuning import run_experiment
    from searchers import make_searcher

    def hold(config: dict) -> None:
        import time

        import ray
        from ray import tune

        time.sleep(4)
        tune.report({"loss": config["x"], "node_id": ray.get_runtime_context().get_node_id()})

    ray.shutdown()
    held = run_experiment(
        ray.tune.with_resources(hold, {"cpu": 2}),
        {"x": ray.tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=make_searcher("random", seed=0),
        scheduler=make_scheduler("fifo", max_t=1),
        max_t=1,
        num_samples=3,
        resources={"cpu": 2, "gpu": 0},
        ray_address=head_only_cluster.address,
        storage_path=tmp_path,
        name="held",
        verbose=0,
    )
    nodes = {r.metrics["node_id"] for r in held.result_grid}
    assert nodes == {head_only_cluster.head_node.node_id, worker.node_id}


# ------------------------------------------------------------------- `ray start` clusters


@pytest.fixture
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start/stop helpers over scripts/local_cluster.py; stops whatever the test started."""
    module = _local_cluster_module()
    started: list[Path] = []

    def start(port: int, dashboard_port: int, *, autoscaler: bool, head_cpus: int) -> dict:
        state_dir = tmp_path_factory.mktemp("lc", numbered=True)
        started.append(state_dir)
        return dict(
            module.start(
                config=module.DEFAULT_CONFIG if autoscaler else None,
                state_dir=state_dir,
                head_cpus=head_cpus,
                port=port,
                dashboard_port=dashboard_port,
            )
        )

    yield start
    for state_dir in started:
        module.stop(state_dir)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_autoscaler_adds_a_gpu_worker(local_cluster: Any, no_ray: None, tmp_path: Path) -> None:
    from hpt_ray import tune_model
    from trainables.torch_trainable import mlp

    state = local_cluster(6440, 8340, autoscaler=True, head_cpus=1)
    result = tune_model(
        mlp,
        SPACE,
        data="iris",
        searcher="random",
        scheduler="fifo",
        num_samples=2,
        epochs=1,
        resources_per_trial={"cpu": 1, "gpu": 0.5},
        ray_address=state["gcs_address"],
        storage_path=tmp_path,
        name="autoscaled",
        verbose=0,
    )
    nodes = [n for n in ray.nodes() if n["Alive"]]
    gpu_nodes = {n["NodeID"] for n in nodes if n["Resources"].get("GPU")}
    assert gpu_nodes, "the autoscaler added no GPU node"
    assert {r.metrics["node_id"] for r in result.result_grid} <= gpu_nodes
    assert len(result.trials) == 2
    assert set(result.trials["status"]) == {"completed"}


@pytest.mark.slow
@pytest.mark.timeout(170)
def test_submit_runs_a_job_and_show_reads_its_results(
    local_cluster: Any, no_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpt_ray.cli import main

    state = local_cluster(6460, 8360, autoscaler=False, head_cpus=2)
    # A small working dir: the three packages and the experiment files (the job's upload).
    project = tmp_path / "project"
    for package in ("hpt_ray", "searchers", "trainables"):
        shutil.copytree(
            ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    experiment = {
        "name": "job-iris",
        "model": "trainables.torch_trainable:mlp",
        "data": "iris",
        "searcher": "random",
        "scheduler": "fifo",
        "num_samples": 4,
        "epochs": 2,
        "seed": 0,
        "space": {"lr": {"loguniform": [1.0e-3, 1.0e-1]}, "hidden_size": 16},
    }
    (project / "ok.yaml").write_text(yaml.safe_dump(experiment))
    failing = {**experiment, "name": "job-gpu", "resources_per_trial": {"cpu": 1, "gpu": 1}}
    (project / "gpu.yaml").write_text(yaml.safe_dump(failing))
    storage = tmp_path / "results"
    common = ["--address", state["dashboard"], "--working-dir", str(project)]
    common += ["--python", sys.executable]

    code = main(
        ["submit", str(project / "ok.yaml"), *common, "--storage-path", str(storage),
         "--num-samples", "3"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCEEDED" in out
    assert "best val_accuracy" in out  # the job's own output, streamed
    assert f"results: {storage / 'job-iris' / 'results.parquet'}" in out
    assert main(["show", str(storage / "job-iris")]) == 0
    shown = capsys.readouterr().out
    assert "3 trials" in shown

    started = time.monotonic()
    code = main(["submit", str(project / "gpu.yaml"), *common, "--storage-path", str(storage)])
    out = capsys.readouterr().out
    assert code != 0
    assert "FAILED" in out
    assert "cannot be met on this cluster" in out
    assert time.monotonic() - started < 60
