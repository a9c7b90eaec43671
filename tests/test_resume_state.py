"""A resume whose Ray state is cut short is repaired from the killed driver's staging copy, or
refused naming the file, before anything runs and changing nothing.

Ray copies its state files to the experiment directory in a background thread; a driver killed
mid-copy leaves one cut short (seen in CI after a SIGKILL: `search_gen_state-*.json`, EOFError).
Ray then logs "Failed to restore the run state", starts the experiment over from zero in the same
directory, and the resume used to end with success and a table of the wrong trials (on f52d0a0,
5 trials then a resume: 6 rows, exit 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray.cloudpickle as cloudpickle
from ray import tune

import searchers
from hpt_ray.ray_state import STAGING_FILE, ResumeStateError
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import make_scheduler
from hpt_ray.storage import LOG_FILE, RESULTS_FILE

pytestmark = [pytest.mark.slow, pytest.mark.fault]

NUM_SAMPLES = 3


def _objective():
    # Built in a function: Ray's workers cannot import this module; a closure travels by value.
    def train(config):
        tune.report({"loss": (config["x"] - 0.3) ** 2})

    return train


def _run(storage: Path, *, resume: bool):
    return run_experiment(
        _objective(),
        {"x": tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=searchers.make_searcher("random", seed=0),
        scheduler=make_scheduler("fifo", max_t=1),
        num_samples=NUM_SAMPLES,
        max_t=1,
        max_concurrent=1,
        storage_path=storage,
        name="exp",
        resume=resume,
        verbose=0,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ray_local) -> Path:
    import shutil

    storage = tmp_path_factory.mktemp("resume_state")
    run = _run(storage, resume=False)
    assert len(run.frame) == NUM_SAMPLES
    # A restored run keeps the first run's staging path, so a resume of a copy in this process
    # (same Ray session) writes the copy's state into it: each test gets its own snapshot.
    staging = Path((storage / "exp" / STAGING_FILE).read_text())
    shutil.copytree(staging, storage / "staging-snapshot")
    return storage


def _copy(finished: Path, tmp_path: Path, *, staging: bool = False) -> Path:
    """A copy of the finished experiment; without ``staging``, as on another machine (or after a
    reboot): the killed driver's staging directory is not there."""
    import shutil

    shutil.copytree(finished / "exp", tmp_path / "storage" / "exp")
    note = tmp_path / "storage" / "exp" / STAGING_FILE
    if staging:
        shutil.copytree(finished / "staging-snapshot", tmp_path / "staging")
        note.write_text(str(tmp_path / "staging"))
    else:
        note.unlink()
    return tmp_path / "storage"


def _cut(directory: Path, pattern: str) -> Path:
    target = max(directory.glob(pattern))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # what a kill mid-copy leaves
    return target


def _files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in (RESULTS_FILE, LOG_FILE)}


# One file of each kind of check: a pickle (the search generator) and a pickle-or-JSON (the
# searcher); the JSON experiment state is cut in the repair test below, refused in the same code.
@pytest.mark.parametrize("pattern", ["search_gen_state-*.json", "searcher-state-*.pkl"])
def test_a_state_file_cut_short_is_refused_by_name_and_nothing_runs(finished, tmp_path, pattern):
    storage = _copy(finished, tmp_path)
    directory = storage / "exp"
    target = _cut(directory, pattern)
    before = _files(directory)
    with pytest.raises(ResumeStateError) as caught:
        _run(storage, resume=True)
    message = str(caught.value)
    assert target.name in message, message
    assert "nothing was run" in message, message
    assert f"hpt-ray show {directory}" in message, message
    assert _files(directory) == before  # the table and the log of the killed run, untouched
    assert len(list(directory.glob("train_*"))) == NUM_SAMPLES, "a trial of a restarted run"


def test_a_state_that_loads_but_does_not_apply_is_refused(finished, tmp_path):
    # Loads (so the file check passes), but Ray's search generator finds no counter in it: Ray
    # logs "Failed to restore the run state" and would start over; the guard stops it.
    storage = _copy(finished, tmp_path)
    directory = storage / "exp"
    target = max(directory.glob("search_gen_state-*.json"))
    target.write_bytes(cloudpickle.dumps({"not": "a search generator's state"}))
    before = _files(directory)
    with pytest.raises(ResumeStateError, match="nothing was run") as caught:
        _run(storage, resume=True)
    assert "KeyError: 'counter'" in str(caught.value), caught.value
    assert _files(directory) == before


@pytest.mark.parametrize("pattern", ["experiment_state-*.json"])
def test_a_file_cut_short_is_repaired_from_the_staging_copy_and_resumes(
    finished, tmp_path, pattern, caplog
):
    storage = _copy(finished, tmp_path, staging=True)
    directory = storage / "exp"
    whole = {p.name: p.read_bytes() for p in directory.glob(pattern)}
    trials = sorted(_run_frame(directory)["trial_id"])
    target = _cut(directory, pattern)
    with caplog.at_level("WARNING", logger="hpt_ray.ray_state"):
        run = _run(storage, resume=True)
    assert f"{target.name} (" in caplog.text, caplog.text
    assert target.read_bytes() == whole[target.name]  # the staging copy is the whole file
    # The same trials, not a restarted run's.
    assert sorted(run.frame["trial_id"]) == trials
    assert sorted(run.frame["status"]) == ["completed"] * NUM_SAMPLES


def _run_frame(directory: Path):
    import pandas as pd

    return pd.read_parquet(directory / RESULTS_FILE)
