"""Running on a Ray cluster: feasibility of per-trial resources, job submission, remote storage.

Feasibility. A trial is one placement-group bundle that must fit on a single node; Ray queues a
bundle no node can hold forever (Tune only warns), so a GPU request on a CPU-only cluster used to
hang. ``check_feasible`` decides before the first trial starts:

1. an alive node (``ray.nodes()``) has the bundle in its *total* resources: it fits;
2. else, is there an autoscaler that could add a node? Ray 2.60's monitor writes its report to
   the GCS key ``__autoscaling_status``. A plain ``ray start`` / ``ray.init`` /
   ``ray.cluster_utils.Cluster`` head runs a *read-only* monitor, whose report names every node
   type ``node_<node id hex>`` (``format_readonly_node_type``); a real autoscaler (cloud or
   fake_multinode provider) reports the config's type names (``ray.head.default``, ...). Checked
   on this machine with both. No fitting node and no real autoscaler:
   ``InfeasibleResourcesError`` at once, naming the request and the largest node;
3. with an autoscaler, its node types are not readable from a driver (the config lives in the
   monitor's process), so the trials wait and ``make_pending_timeout`` ends the run with
   ``InfeasibleResourcesError`` if no trial has started after ``pending_timeout_s``.

Jobs. ``submit_experiment`` sends the project as the job's ``working_dir`` through Ray's Jobs API
(``JobSubmissionClient``) and runs ``python -m hpt_ray.cli run FILE --address auto`` on the head;
``follow_logs`` streams the logs until the job ends.

"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchers.validation import InvalidParameterError

# Paths a job's working_dir never needs: environments, VCS data, caches and results (Ray refuses
# working dirs above 500 MiB, and a .venv is useless on another machine).
WORKING_DIR_EXCLUDES: tuple[str, ...] = (
    ".venv",
    "venv",
    ".git",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "hpt_ray_results",
    "bench_results",
    "ray_results",
)

# Final states of a Ray job and the exit code `hpt-ray submit` returns for each.
JOB_EXIT_CODES: dict[str, int] = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3}


class InfeasibleResourcesError(InvalidParameterError):
    """No node of the cluster can ever hold one trial's resources, and none can be added: the
    resources asked for per trial do not fit this cluster."""


# ---------------------------------------------------------------------------------- feasibility


@dataclass(frozen=True)
class FeasibilityOptions:
    """How ``check_feasible`` reads the cluster.

    Attributes:
        status_wait_s: how long to wait for the monitor's first ``__autoscaling_status`` report
            (written every AUTOSCALER_UPDATE_INTERVAL_S, 5 s by default) on a fresh cluster
            before concluding that no autoscaler runs.
    """

    status_wait_s: float = 6.0


def check_feasible(
    resources: Mapping[str, float], *, options: FeasibilityOptions | None = None
) -> str:
    """Raise ``InfeasibleResourcesError`` if no trial asking for ``resources`` can ever run.

    Args:
        resources: one trial's spec as ``trainables.resources.resources_from_spec`` returns it
            (``cpu``, ``gpu``, ``memory``, custom names).

    Returns:
        "fits" when an alive node can hold a trial; "autoscaler" when none can yet but an
        autoscaler may add one.
    """
    import ray

    options = options or FeasibilityOptions()
    request = ray_resource_names(resources)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if any(_covers(node.get("Resources", {}), request) for node in nodes):
        return "fits"
    if autoscaler_running(wait_s=options.status_wait_s):
        return "autoscaler"
    missing = sorted(
        k for k in request if not any(node.get("Resources", {}).get(k) for node in nodes)
    )
    hint = (
        f"no node has {', '.join(repr(k) for k in missing)} at all"
        if missing
        else f"the largest node offers {_largest_node(nodes)}"
    )
    raise InfeasibleResourcesError(
        f"resources_per_trial={dict(resources)!r} cannot be met on this cluster: {hint}, and "
        "no autoscaler runs that could add such a node. Lower resources_per_trial (e.g. gpu: 0 "
        "to train on CPUs), add a node that has them (`ray start --address=HEAD:6379 "
        "--num-gpus=N`), or start the cluster with an autoscaler whose node types have them "
        "(cluster.yaml, scripts/local_cluster.py)."
    )


def autoscaler_running(*, wait_s: float = 6.0) -> bool:
    """True when the GCS holds a report from a real (not read-only) autoscaler.

    Waits up to ``wait_s`` for a report that names node types (the first ones after a start may
    carry none).
    """
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

    if not _internal_kv_initialized():
        return False
    deadline = time.monotonic() + wait_s
    while True:
        raw = _internal_kv_get("__autoscaling_status")
        types = _reported_node_types(raw)
        if types:
            return not all(_readonly_type(name) for name in types)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def _reported_node_types(raw: bytes | None) -> list[str]:
    if not raw:
        return []
    try:
        report = json.loads(raw).get("autoscaler_report") or {}
    except (ValueError, AttributeError):
        return []
    mapping = report.get("node_type_mapping") or {}
    return [str(t) for t in mapping.values()] + [str(t) for t in report.get("active_nodes") or {}]


def _readonly_type(name: str) -> bool:
    # ray.autoscaler._private.util.format_readonly_node_type: "node_" + the node id in hex.
    suffix = name.removeprefix("node_")
    return suffix != name and all(c in "0123456789abcdef" for c in suffix)


def ray_resource_names(resources: Mapping[str, float]) -> dict[str, float]:
    """Our spec ({"cpu", "gpu", "memory", custom}) in Ray's node resource names, zeros dropped.

    >>> ray_resource_names({"cpu": 1, "gpu": 0.5, "memory": 0, "accelerator_a10g": 1})
    {'CPU': 1.0, 'GPU': 0.5, 'accelerator_a10g': 1.0}
    """
    names = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
    return {names.get(k, k): float(v) for k, v in resources.items() if float(v) > 0}


def _covers(available: Mapping[str, float], request: Mapping[str, float]) -> bool:
    # Ray stores quantities in units of 1e-4; compare with a tolerance below that.
    return all(float(available.get(k, 0.0)) + 1e-9 >= v for k, v in request.items())


def _largest_node(nodes: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for node in nodes:
        res = node.get("Resources", {})
        view = {"CPU": float(res.get("CPU", 0.0)), "GPU": float(res.get("GPU", 0.0))}
        if (view["GPU"], view["CPU"]) > (best.get("GPU", -1.0), best.get("CPU", -1.0)):
            best = view
    return best


def make_pending_timeout(timeout_s: float) -> Any:
    """A ``ray.tune.Callback`` raising ``InfeasibleResourcesError`` when no trial started in time.

    Built lazily so importing this module does not import Ray Tune.
    """
    from ray.tune import Callback

    class _PendingTimeout(Callback):
        def __init__(self) -> None:
            self.started_at = time.monotonic()
            self.any_started = False

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.any_started = True

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            waited = time.monotonic() - self.started_at
            if not self.any_started and waited > timeout_s:
                raise InfeasibleResourcesError(
                    f"no trial could start in {waited:.0f} s (pending timeout {timeout_s:.0f} s, "
                    "HPT_RAY_PENDING_TIMEOUT_S): the autoscaler added no node with the "
                    "requested resources_per_trial. Check the node types of the cluster config "
                    "(`ray status` lists pending demands), lower resources_per_trial, or raise "
                    "the timeout."
                )

    return _PendingTimeout()


# ------------------------------------------------------------------------------------------ jobs


@dataclass(frozen=True)
class Submission:
    """What ``submit_experiment`` started."""

    job_id: str
    address: str
    entrypoint: str


def job_client(address: str) -> Any:
    """A ``JobSubmissionClient`` for the dashboard at ``address`` (``http://HEAD:8265``)."""
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"--address must be the head's dashboard URL such as http://HEAD:8265, got "
            f"{address!r} (the Jobs API talks HTTP to the dashboard, not to the GCS port)"
        )
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def submit_experiment(
    experiment: str | os.PathLike[str],
    *,
    address: str,
    working_dir: str | os.PathLike[str] = ".",
    overrides: Mapping[str, Any] | None = None,
    sets: Sequence[str] = (),
    python: str = "python",
    job_id: str | None = None,
    client: Any = None,
) -> Submission:
    """Submit ``hpt-ray run EXPERIMENT --address auto`` as a Ray job.

    Args:
        experiment: the experiment file; it must lie inside ``working_dir`` (it travels with it).
        address: the head's dashboard URL, e.g. ``http://HEAD:8265``.
        working_dir: the project directory uploaded to the cluster, less
            ``WORKING_DIR_EXCLUDES`` (default: the current directory).
        overrides: ``num_samples``, ``storage_path``, ``name``, passed to ``hpt-ray run``.
        sets: ``"KEY=VALUE"`` overrides of the file's fields, passed as ``hpt-ray run --set``.
        python: the interpreter on the head that has this project's dependencies.
    """
    root = Path(working_dir).resolve()
    if not root.is_dir():
        raise InvalidParameterError(f"--working-dir: {root} is not a directory")
    path = Path(experiment).resolve()
    if not path.is_file():
        raise InvalidParameterError(f"experiment file {experiment}: no such file")
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise InvalidParameterError(
            f"experiment file {path} is outside the working directory {root}, which is what "
            "the job uploads; move the file into it or pass --working-dir"
        ) from None
    arguments = [python, "-m", "hpt_ray.cli", "run", relative.as_posix(), "--address", "auto"]
    for key, value in (overrides or {}).items():
        if value is not None:
            arguments += [f"--{key.replace('_', '-')}", str(value)]
    for item in sets:
        arguments += ["--set", item]
    entrypoint = shlex.join(arguments)
    client = client or job_client(address)
    submitted = client.submit_job(
        entrypoint=entrypoint,
        submission_id=job_id,
        runtime_env={"working_dir": str(root), "excludes": list(WORKING_DIR_EXCLUDES)},
        metadata={"hpt_ray_experiment": relative.as_posix()},
    )
    return Submission(job_id=str(submitted), address=address, entrypoint=entrypoint)


def follow_logs(
    job_id: str, *, client: Any, write: Callable[[str], Any], poll_s: float = 0.5
) -> str:
    """Stream a job's logs through ``write`` until it ends; return its final status name.

    Polls ``get_job_logs`` rather than the websocket tail, which needs an event loop and can drop
    the last lines when the job ends between two messages.
    """
    sent = 0
    while True:
        status = str(client.get_job_status(job_id)).rsplit(".", 1)[-1]
        logs = client.get_job_logs(job_id)
        if len(logs) > sent:
            write(logs[sent:])
            sent = len(logs)
        if status in JOB_EXIT_CODES:
            return status
        time.sleep(poll_s)


def results_location(logs: str) -> str | None:
    """The last ``results: PATH`` line ``hpt-ray run`` printed, if any.

    >>> logs = ["trial 1 done", "results: s3://bucket/hpt/digits/results.parquet"]
    >>> results_location("\\n".join(logs))
    's3://bucket/hpt/digits/results.parquet'
    >>> results_location("the job failed before the run") is None
    True
    """
    found = None
    for line in logs.splitlines():
        if line.startswith("results: "):
            found = line.removeprefix("results: ").strip()
    return found
