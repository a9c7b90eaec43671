"""SIGKILL the driver mid-experiment, then `hpt-ray resume`: nothing that completed is lost.

The driver is a real `hpt-ray run` subprocess in its own process group; the kill takes its local
Ray with it. `hpt-ray resume DIR` then continues from what was on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import searchers

pytestmark = [pytest.mark.slow, pytest.mark.fault]

ROOT = Path(__file__).resolve().parents[1]
HPT_RAY = str(Path(sys.executable).parent / "hpt-ray")
NUM_SAMPLES = 10
# One searcher (the suite's time budget): the searcher-specific part (its state, restored in a
# fresh process with trials pending) runs for every registered searcher in the conformance suite,
# and tests/test_function_trainable.py kills and resumes a random-searcher run.
SEARCHERS = [n for n in ("gp-ei",) if n in searchers.available()]


def _experiment(tmp_path: Path, searcher: str) -> Path:
    document = {
        "model": "trainables.torch_trainable:mlp",
        "data": "digits",
        "searcher": searcher,
        "scheduler": "asha",
        "scheduler_options": {"grace_period": 2},
        "num_samples": NUM_SAMPLES,
        "max_concurrent": 2,
        "epochs": 10,
        "seed": 0,
        "space": {
            "lr": {"loguniform": [1e-3, 1e-1]},
            "hidden_size": [64, 128, 256],
            "n_layers": 2,
            # Small batches: trials that take a second or more each. With the default 64, ten
            # trials ended within 1.3 s of each other on a fast CPU, all before the kill.
            "batch_size": 8,
        },
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _ended(directory: Path) -> dict[str, float]:
    """Trial id -> final metric of each trial that completed (or was stopped by ASHA), as the
    driver's durable log (``trials.jsonl``) has it: written as each trial ends, where
    ``results.parquet`` is rewritten at most once a second and can lag it."""
    try:
        lines = (directory / "trials.jsonl").read_text().splitlines()
    except OSError:
        return {}
    ended = {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written
        if event.get("event") == "end" and event["row"]["status"] in ("completed", "stopped"):
            ended[event["trial_id"]] = event["row"]["final_metric"]
    return ended


@pytest.mark.parametrize("name", SEARCHERS)
def test_sigkill_then_resume_keeps_every_completed_trial(tmp_path, name):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # A Ray state save in the step of every added trial, whatever it costs: the default budget
    # (2% of wall time) would fall back to Ray's timer on a slow machine and make this flaky.
    env["HPT_RAY_SNAPSHOT_BUDGET"] = "1"
    storage = tmp_path / "results"
    directory = storage / "exp"
    driver = subprocess.Popen(
        [
            HPT_RAY,
            "run",
            str(_experiment(tmp_path, name)),
            "--storage-path",
            str(storage),
            "--name",
            "exp",
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    try:
        while len(_ended(directory)) < 3:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = _ended(directory)
    assert 3 <= len(before) < NUM_SAMPLES, before

    resumed = subprocess.run(
        [HPT_RAY, "resume", str(directory), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    after = pd.read_parquet(directory / "results.parquet")
    # Exactly num_samples trials: Ray saved its state in the step each trial was added
    # (SafeScheduler.bind), so the resumed run knows every trial the killed one had.
    assert len(after) == NUM_SAMPLES, after[["trial_id", "status"]]
    assert after["trial_id"].is_unique
    assert after["status"].isin(["completed", "stopped"]).all(), after["status"]
    kept = after.set_index("trial_id")["final_metric"]
    for trial_id, value in before.items():
        assert kept[trial_id] == value, trial_id  # the completed result, untouched
    # Ray ran exactly num_samples trials, and the searcher saw each complete once (Ray names the
    # state file after the session's start time: the resumed session's is the last by name).
    state_files = sorted(directory.glob("searcher-state-*.pkl"))
    state = json.loads(state_files[-1].read_text())
    assert state["n_completed"] == NUM_SAMPLES
