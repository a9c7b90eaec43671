"""A multi-node, autoscaling Ray cluster on one machine, for trying hpt_ray's cluster features.

    python scripts/local_cluster.py start     # CPU head + autoscaler with a 2-GPU worker type
    python scripts/local_cluster.py status    # nodes, their resources, the autoscaler's view
    python scripts/local_cluster.py stop      # ends this cluster's processes (and nothing else)

The head runs with Ray's ``fake_multinode`` provider (``RAY_FAKE_CLUSTER=1``): when trials ask for
resources the head lacks, the autoscaler starts another set of Ray processes on this machine as a
new "node" of a type from ``scripts/local_cluster.yaml``. ``ray.cluster_utils.AutoscalingCluster``
would do the same but fails in the Ray 2.60 wheel (it reads an example file the wheel does not
ship; see /work/shared/RAY-NOTES.md).

Ports and the temp directory are non-default, so the cluster coexists with a ``ray.init()`` or
another ``ray start`` on the same machine; ``stop`` ends only processes whose command line names
this cluster's temp directory or GCS address (never ``ray stop``, which ends every Ray on the
machine). The state (ports, temp dir) is kept in ``<state-dir>/cluster.json``.

Then: ``hpt-ray submit EXPERIMENT.yaml --address http://127.0.0.1:<dashboard-port>``, or
``RAY_ADDRESS=127.0.0.1:<port> hpt-ray run EXPERIMENT.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "local_cluster.yaml"
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "hpt_ray_local_cluster"
# Away from Ray's defaults (6379, 8265, 10001, 52365) so a default `ray start` still works.
DEFAULT_PORT = 6390
DEFAULT_DASHBOARD_PORT = 8290


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", choices=("start", "stop", "status"), help="what to do with the cluster"
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="autoscaler config (YAML)")
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="state and Ray temp")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="head GCS port")
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_DASHBOARD_PORT)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the head")
    parser.add_argument(
        "--no-autoscaler",
        action="store_true",
        help="a plain head without autoscaler (what a cluster without GPUs looks like)",
    )
    parser.add_argument("--head-cpus", type=int, default=None, help="CPUs of the head")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir).resolve()
    if args.command == "start":
        state = start(
            config=None if args.no_autoscaler else Path(args.config),
            head_cpus=args.head_cpus,
            state_dir=state_dir,
            port=args.port,
            dashboard_port=args.dashboard_port,
            wait_s=args.wait,
        )
        print(f"local cluster up: GCS {state['gcs_address']}, jobs/dashboard {state['dashboard']}")
        print(f"  hpt-ray submit EXPERIMENT.yaml --address {state['dashboard']}")
        print(f"  RAY_ADDRESS={state['gcs_address']} hpt-ray run EXPERIMENT.yaml")
        print(f"  python {Path(__file__).name} stop --state-dir {state_dir}")
        return 0
    if args.command == "stop":
        ended = stop(state_dir)
        print(f"ended {ended} process(es) of the local cluster in {state_dir}")
        return 0
    return status(state_dir)


def start(
    *,
    config: Path | None,
    state_dir: Path,
    head_cpus: int | None = None,
    port: int = DEFAULT_PORT,
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    wait_s: float = 60.0,
) -> dict[str, Any]:
    """Start the head with the fake_multinode autoscaler (none when ``config`` is None).

    Returns the saved state: ``gcs_address``, ``dashboard`` URL, ``temp_dir``.
    """
    if (state_dir / "cluster.json").exists() and _pids(read_state(state_dir)):
        raise SystemExit(
            f"a local cluster from {state_dir} is still running; "
            f"`python scripts/local_cluster.py stop --state-dir {state_dir}` first"
        )
    import ray._private.services

    ip = ray._private.services.get_node_ip_address()
    gcs_address = f"{ip}:{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = state_dir / "ray"
    env = dict(os.environ)
    autoscaling: list[str] = []
    runtime_config = None
    if config is not None:
        document = yaml.safe_load(config.read_text())
        if not isinstance(document, dict) or document.get("provider", {}).get("type") != (
            "fake_multinode"
        ):
            raise SystemExit(f"{config}: provider.type must be fake_multinode here")
        # Worker nodes join the head at provider.gcs_address (default ip:6379, Ray's default).
        document["provider"]["gcs_address"] = gcs_address
        head_type = document["available_node_types"]["ray.head.default"]
        if head_cpus is None:
            head_cpus = int(head_type["resources"].get("CPU", 1))
        # The autoscaler's idea of the head must match what the head really offers.
        head_type["resources"]["CPU"] = head_cpus
        runtime_config = state_dir / "autoscaler.yaml"
        runtime_config.write_text(yaml.safe_dump(document, sort_keys=False))
        autoscaling = [f"--autoscaling-config={runtime_config}"]
        env["RAY_FAKE_CLUSTER"] = "1"
        # The autoscaler looks at demand every second instead of every 5 s: nodes appear faster.
        env["AUTOSCALER_UPDATE_INTERVAL_S"] = "1"
    head_cpus = 1 if head_cpus is None else head_cpus
    env.pop("RAY_ADDRESS", None)
    # `ray start` turns on token authentication when ~/.ray/auth_token exists, and then every
    # client (hpt-ray submit, ray job submit) needs RAY_AUTH_MODE=token plus the token. A cluster
    # on this machine with its dashboard on 127.0.0.1 goes without, unless you set the mode.
    env.setdefault("RAY_AUTH_MODE", "disabled")
    # Jobs run `python -m hpt_ray.cli`: the head's PATH must find this environment's python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        f"--port={port}",
        f"--num-cpus={head_cpus}",
        "--num-gpus=0",
        *autoscaling,
        f"--temp-dir={temp_dir}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={port + 1}",
        f"--dashboard-agent-listen-port={port + 2}",
        f"--dashboard-agent-grpc-port={port + 3}",
        f"--runtime-env-agent-port={port + 4}",
        f"--metrics-export-port={port + 5}",
        "--disable-usage-stats",
    ]
    state = {
        "version": 1,
        "gcs_address": gcs_address,
        "dashboard": f"http://127.0.0.1:{dashboard_port}",
        "temp_dir": str(temp_dir),
        "config": None if runtime_config is None else str(runtime_config),
    }
    _write_state(state_dir, state)
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        stop(state_dir)
        raise SystemExit(f"ray start failed ({completed.returncode}):\n{completed.stderr}")
    _wait_for_dashboard(state["dashboard"], wait_s)
    return state


def stop(state_dir: Path) -> int:
    """End every process of the cluster saved in ``state_dir``: SIGTERM, then SIGKILL after 5 s."""
    if not (state_dir / "cluster.json").exists():
        return 0
    state = read_state(state_dir)
    pids = _pids(state)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    # Processes started while we waited (a node the autoscaler was adding) are ended too.
    for pid in set(pids) | set(_pids(state)):
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return len(pids)


def status(state_dir: Path) -> int:
    """Print the nodes and the autoscaler's status of the cluster in ``state_dir``."""
    if not (state_dir / "cluster.json").exists():
        print(f"no local cluster state in {state_dir}")
        return 1
    state = read_state(state_dir)
    if not _pids(state):
        print(f"the local cluster of {state_dir} is not running")
        return 1
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    completed = subprocess.run(
        [ray_bin, "status", f"--address={state['gcs_address']}"], env=env, check=False
    )
    return completed.returncode


def read_state(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads((state_dir / "cluster.json").read_text()))


def _write_state(state_dir: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".cluster-", suffix=".json", dir=state_dir)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2)
    os.replace(tmp, state_dir / "cluster.json")


def _pids(state: dict[str, Any]) -> list[int]:
    """Processes whose command line names this cluster's temp dir or GCS address."""
    markers = (state["temp_dir"].encode(), f"--gcs-address={state['gcs_address']}".encode())
    if not Path("/proc").is_dir():
        raise SystemExit("stop/status read /proc to find the cluster's processes (Linux only)")
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        if any(marker in cmdline for marker in markers):
            found.append(int(entry.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_for_dashboard(url: str, wait_s: float) -> None:
    """The Jobs API answers once the dashboard is up; `ray start` returns a little earlier."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (401 means token auth is on: see RAY_AUTH_MODE above)
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                message = f"the dashboard at {url} did not answer in {wait_s:.0f} s"
                raise SystemExit(message) from None
            time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
