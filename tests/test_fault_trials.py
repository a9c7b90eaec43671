"""Trial failures: retried from a checkpoint with max_failures, recorded and survived without,
fail_fast, and a searcher that sometimes has nothing to suggest while trials error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray import tune
from ray.tune.search import Searcher

import searchers
from hpt_ray.run import run_experiment
from hpt_ray.schedulers import make_scheduler

pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.usefixtures("ray_local")]

EPOCHS = 5


def make_flaky(marker_dir: Path, *, always: bool = False):
    """A checkpointing trainable that raises on its 3rd epoch: once per trial (a marker file
    remembers it), or every time with ``always``. Built in a function so Ray pickles it by value.
    """

    def flaky(config):
        import os
        import tempfile

        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as path, open(os.path.join(path, "epoch")) as handle:
                start = int(handle.read())
        for epoch in range(start + 1, EPOCHS + 1):
            marker = os.path.join(str(marker_dir), f"{config['x']:.12f}")
            if epoch == 3 and (always or not os.path.exists(marker)):
                open(marker, "w").close()
                raise RuntimeError("flaky trial: epoch 3")
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "epoch"), "w") as handle:
                    handle.write(str(epoch))
                tune.report(
                    {"loss": (config["x"] - 0.3) ** 2 + 1.0 / epoch, "start": start},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )

    return flaky


def _run(tmp_path, trainable, *, searcher="pso", num_samples=4, **kwargs):
    return run_experiment(
        trainable,
        {"x": tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=searchers.make_searcher(searcher, seed=0)
        if isinstance(searcher, str)
        else searcher,
        scheduler=make_scheduler("fifo", max_t=EPOCHS),
        max_t=EPOCHS,
        num_samples=num_samples,
        max_concurrent=2,
        storage_path=tmp_path / "results",
        name="exp",
        verbose=0,
        **kwargs,
    )


def _searcher_completions(directory: Path) -> int:
    state = sorted(directory.glob("searcher-state-*.pkl"))[-1]
    return int(json.loads(state.read_text())["n_completed"])


def test_max_failures_resumes_from_checkpoint(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    # Two trials: each failure starts a new trial actor (seconds of worker start-up on 2 busy
    # cores), and two show the retry as well as four did.
    run = _run(tmp_path, make_flaky(markers), num_samples=2, max_failures=2)
    frame = run.frame
    assert len(frame) == 2
    assert (frame["status"] == "completed").all(), frame[["status", "error"]]
    assert (frame["iterations"] == EPOCHS).all()
    assert len(list(markers.iterdir())) == 2  # every trial failed once...
    for trial_id in frame["trial_id"]:
        # ...and went on from its epoch-2 checkpoint, not from scratch.
        assert run.last_results[trial_id]["start"] == 2
    assert _searcher_completions(Path(run.path)) == 2


def test_failing_trials_are_recorded_and_the_experiment_goes_on(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    # Three trials with two in flight: the third starts only after an error (the experiment goes
    # on); each trial fails twice, and each failure starts a new trial actor.
    run = _run(tmp_path, make_flaky(markers, always=True), num_samples=3, max_failures=1)
    frame = run.frame
    assert len(frame) == 3
    assert (frame["status"] == "error").all()
    assert frame["error"].str.contains("flaky trial: epoch 3").all()
    assert (frame["iterations"] == 2).all()  # what they reported before failing is kept


def test_fail_fast_stops_at_the_first_error(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    run = _run(tmp_path, make_flaky(markers, always=True), num_samples=8, fail_fast=True)
    frame = run.frame
    assert (frame["status"] == "error").sum() >= 1
    assert len(frame) < 8  # the experiment stopped instead of starting every trial


class Hesitant(Searcher):
    """Wraps a searcher and has nothing to suggest on every other call (returns None)."""

    def __init__(self, inner: Searcher) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def set_search_properties(self, metric, mode, config, **spec):
        return self.inner.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id):
        self.calls += 1
        return None if self.calls % 2 else self.inner.suggest(trial_id)

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.inner.on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path):
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path):
        self.inner.restore(checkpoint_path)


def test_no_stall_with_none_suggestions_and_errors(tmp_path):
    def sometimes_fails(config):
        for epoch in range(1, 4):
            if config["x"] > 0.6:
                raise RuntimeError("bad region")
            tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / epoch})

    run = run_experiment(
        sometimes_fails,
        {"x": tune.uniform(0.0, 1.0)},
        metric="loss",
        mode="min",
        searcher=Hesitant(searchers.make_searcher("genetic", seed=3)),
        scheduler=make_scheduler("asha", max_t=3),
        max_t=3,
        num_samples=8,
        max_concurrent=4,
        storage_path=tmp_path / "results",
        name="exp",
        verbose=0,
    )
    frame = run.frame
    assert len(frame) == 8
    assert frame["status"].isin(["completed", "stopped", "error"]).all()
    assert (frame["status"] == "error").sum() == (frame["config/x"] > 0.6).sum()
    # Some trials did error (8 trials, each a new actor after an error: 12 took seconds more).
    assert (frame["status"] == "error").any()
