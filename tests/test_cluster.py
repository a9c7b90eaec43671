"""Cluster features with real Ray processes: configs, GPU placement, autoscaling, jobs, fail-fast.

These tests never use the session ``ray_local`` fixture: each calls ``ray.shutdown()`` before and
after, starts its own cluster (``ray.cluster_utils.Cluster`` in-process, or ``ray start`` through
``scripts/local_cluster.py`` on non-default ports and a temp dir) and stops only what it started.

No assertion here depends on the machine's speed: placements are forced by resources (and a
barrier where trials must overlap), and no test has a tighter timeout than the suite's 600 s hang
guard (pyproject), since on 2 busy cores a test here took 3 minutes where it takes 1 when idle.
"""

from __future__ import annotations

import copy
import importlib.util
import shlex
import shutil
import sys
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


def _ray_start_head_commands(config: dict[str, Any]) -> list[list[str]]:
    """Every simple ``ray start --head ...`` command in the config's command lists, as words."""
    found = []
    for key, commands in config.items():
        if not key.endswith("_commands"):
            continue
        for command in commands or []:
            lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            simple: list[str] = []
            for word in [*lexer, ";"]:
                if word not in {";", "&&", "||", "|", "&"}:
                    simple.append(word)
                    continue
                ray_start = (
                    simple[:1] and Path(simple[0]).name == "ray" and simple[1:2] == ["start"]
                )
                if ray_start and "--head" in simple:
                    found.append(simple)
                simple = []
    return found


def _option_values(words: list[str], option: str) -> list[str]:
    """Values of ``--option=VALUE`` and ``--option VALUE`` in a command's words."""
    values = [w.split("=", 1)[1] for w in words if w.startswith(f"{option}=")]
    values += [words[i + 1] for i, w in enumerate(words[:-1]) if w == option]
    return values


def test_cluster_yaml_dashboard_listens_on_localhost_only() -> None:
    # The dashboard serves the Jobs API, which runs any code it is sent. `ray dashboard
    # cluster.yaml` reaches it through an SSH forward, so it never needs more than 127.0.0.1.
    # Ray 2.60's own default for --dashboard-host is localhost (get_localhost_ip()), but earlier
    # Rays defaulted to 0.0.0.0 and a default can move again: the flag must be spelled out.
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(config)
    heads = _ray_start_head_commands(config)
    assert heads, "cluster.yaml starts no head (`ray start --head`)"
    for words in heads:
        hosts = _option_values(words, "--dashboard-host")
        assert hosts == ["127.0.0.1"], (
            f"`{shlex.join(words)}` must bind the dashboard (the Jobs API) with exactly one "
            f"--dashboard-host=127.0.0.1, found {hosts}"
        )


def test_cluster_nodes_run_a_python_pyproject_accepts() -> None:
    # pyproject asks for Python 3.11+; an image's own python3 may be older (Ubuntu 22.04: 3.10,
    # where `pip install -e ~/hpt_ray` refuses the project), so every node builds a venv with a
    # Python that requires-python admits, installs everything into it, and puts it on PATH.
    import tomllib

    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requires = SpecifierSet(project["requires-python"])
    commands = yaml.safe_load((ROOT / "cluster.yaml").read_text())["setup_commands"]
    venvs = [shlex.split(c) for c in commands if " venv " in f" {c} "]
    assert len(venvs) == 1, venvs
    pythons = _option_values(venvs[0], "--python")
    assert len(pythons) == 1
    assert requires.contains(pythons[0]), (pythons[0], str(requires))
    venv = venvs[0][-1]
    installs = [shlex.split(c) for c in commands if "pip install" in c and "uv==" not in c]
    assert len(installs) >= 2
    assert all(words[0] == f"{venv}/bin/python" for words in installs), installs
    assert any(".bashrc" in c and f"{Path(venv).name}/bin:$PATH" in c for c in commands)


def test_head_command_parsing_sees_every_form() -> None:
    # The check above must not pass a config only because it failed to read a command.
    config = {
        "head_start_ray_commands": [
            "ray stop && ray start --head --dashboard-host 0.0.0.0; echo up",
            "~/env/bin/ray start --head --port=6379",
        ],
        "worker_start_ray_commands": ["ray start --address=$RAY_HEAD_IP:6379"],
    }
    heads = _ray_start_head_commands(config)
    assert [_option_values(words, "--dashboard-host") for words in heads] == [["0.0.0.0"], []]


def _listening_hosts(port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port`` on this machine (Linux /proc/net)."""
    import ipaddress

    hosts = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: TCP_LISTEN
                continue
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = bytes.fromhex(address)
            words = [raw[i : i + 4][::-1] for i in range(0, width, 4)]
            hosts.add(str(ipaddress.ip_address(b"".join(words))))
    return hosts


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
def test_impossible_gpu_request_fails_fast(head_only_cluster: Any, no_ray: None) -> None:
    from hpt_ray import tune_model
    from hpt_ray.cluster import InfeasibleResourcesError
    from trainables.torch_trainable import mlp

    # No wall-clock bound (a busy machine would break it): without the check Tune waits forever
    # on the infeasible trial and the suite's timeout fails the test; with it the run is refused
    # before it starts, and the message says that no autoscaler can add a GPU node.
    with pytest.raises(
        InfeasibleResourcesError, match=r"resources_per_trial=.*'gpu': 1.*no autoscaler runs"
    ):
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
    # Still connected to the cluster by tune_model above.
    with pytest.raises(InfeasibleResourcesError, match=r"'gpu': 1.*no autoscaler runs"):
        search.fit(X, y)


@pytest.mark.slow
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
    assert [r.error for r in result.result_grid] == [None] * 6
    metrics = [r.metrics for r in result.result_grid]
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
        num_samples=3,
        epochs=2,
        resources_per_trial={"cpu": 2},
        ray_address=head_only_cluster.address,
        storage_path=tmp_path,
        name="cpu",
        verbose=0,
        seed=0,
    )
    assert [r.error for r in cpu.result_grid] == [None] * 3
    cpu_metrics = [r.metrics for r in cpu.result_grid]
    assert all(m["gpu_ids"] == "" for m in cpu_metrics)

    # CPU-only trials also use the head: three 2-CPU trials running at once need the worker's 4
    # CPUs and the head's 2. Each trial waits at a barrier until all three have started, so they
    # do run at once however slowly the machine starts them (a sleep only made it likely), and
    # the only placement that lets them is two on the worker and one on the head.
    from hpt_ray.run import run_experiment
    from hpt_ray.schedulers import make_scheduler
    from searchers import make_searcher

    (tmp_path / "barrier").mkdir()
    barrier = str(tmp_path / "barrier")

    def hold(config: dict) -> None:
        import time
        import uuid
        from pathlib import Path

        import ray
        from ray import tune

        Path(barrier, uuid.uuid4().hex).touch()
        deadline = time.monotonic() + 300
        while len(list(Path(barrier).iterdir())) < 3:
            if time.monotonic() > deadline:
                raise RuntimeError("the three 2-CPU trials never ran at once")
            time.sleep(0.1)
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
    assert [r.error for r in held.result_grid] == [None] * 3
    nodes = [r.metrics["node_id"] for r in held.result_grid]
    assert sorted(nodes) == sorted([head_only_cluster.head_node.node_id, *[worker.node_id] * 2])


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
def test_submit_runs_a_job_and_show_reads_its_results(
    local_cluster: Any, no_ray: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpt_ray.cli import main

    state = local_cluster(6460, 8360, autoscaler=False, head_cpus=2)
    if Path("/proc/net/tcp").exists():
        # The Jobs API runs any code it is sent: scripts/local_cluster.py serves it on loopback.
        assert _listening_hosts(8360) == {"127.0.0.1"}
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
        [
            "submit",
            str(project / "ok.yaml"),
            *common,
            "--storage-path",
            str(storage),
            "--num-samples",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SUCCEEDED" in out
    assert "best val_accuracy" in out  # the job's own output, streamed
    assert f"results: {storage / 'job-iris' / 'results.parquet'}" in out
    assert main(["show", str(storage / "job-iris")]) == 0
    shown = capsys.readouterr().out
    assert "3 trials" in shown

    # Refused by the check before the run, not by a pending timeout (no wall-clock bound: a
    # missing check would hang the job until the suite's timeout fails the test).
    code = main(["submit", str(project / "gpu.yaml"), *common, "--storage-path", str(storage)])
    out = capsys.readouterr().out
    assert code != 0
    assert "FAILED" in out
    assert "cannot be met on this cluster" in out
