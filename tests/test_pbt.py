"""Population-based training (issue #17 part 2): real runs where members exploit, the schedule,
a driver kill and resume, and the checks made before any trial starts."""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from ray import cloudpickle, tune
from sklearn.linear_model import LogisticRegression

import hpt_ray
from hpt_ray.html_report import load_experiment
from hpt_ray.pbt import CheckpointRequiredError, read_schedule
from searchers.validation import InvalidParameterError

# Ray workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
pytestmark = pytest.mark.usefixtures("ray_local")


def sparse_checkpoints(config):
    """Score is highest near x = 0.7 and rises a little with training (a level, not a sum: a
    member behind in epochs is not taken for a worse one, so the worst x is reliably in the
    bottom quantile and copies); a checkpoint only every second report, so with
    perturbation_interval=1 half the exploit and pause points have no checkpoint (ray#27170).
    Each start is logged with the checkpoint it restored (None: from scratch). With ``hold``,
    a member waits before that iteration until the file ``gate`` exists (at most a minute): the
    kill test kills the driver while its members wait there. With ``together``, a member's first
    report waits until that many members have started (at most a minute): under load one
    member's worker can start so late that the other has finished alone, with nobody to copy."""
    import json
    import os
    import tempfile
    import time

    from ray import tune as ray_tune

    import hpt_ray as hr

    trial_id = ray_tune.get_context().get_trial_id()
    start, score, restored = 0, 0.0, None
    checkpoint = hr.get_checkpoint()
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as f:
            restored = json.load(f)
        start, score = restored["iteration"], restored["score"]
    with open(os.path.join(config["side"], trial_id), "a") as f:
        f.write(json.dumps(restored) + "\n")
    if restored is not None and config.get("quit_when_restored"):
        return
    waited = 0.0
    while len(os.listdir(config["side"])) < config.get("together", 1) and waited < 60:
        time.sleep(0.05)
        waited += 0.05
    for iteration in range(start + 1, config["epochs"] + 1):
        waited = 0.0
        while iteration == config.get("hold") and waited < 60:
            if os.path.exists(config["gate"]):
                break
            time.sleep(0.05)
            waited += 0.05
        score = 1.0 - abs(config["x"] - 0.7) + 0.01 * iteration
        metrics = {"score": score}
        if iteration % 2:
            hr.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({"iteration": iteration, "score": score, "owner": trial_id}, f)
            hr.report(metrics, checkpoint=hr.Checkpoint.from_directory(tmp))


def checkpoint_once(config):
    """Two members: the first to start leads (score 1) and checkpoints only at its first report;
    the other follows (score 0) and makes its first report only once the leader's second is
    through the driver, so the leader's last perturbation carried no checkpoint whenever the
    follower is in the bottom quantile. The leader waits before its third report until the
    follower has reported (or been restarted), so it is still training then. Each start is
    logged with the checkpoint it restored."""
    import json
    import os
    import tempfile
    import time

    from ray import tune as ray_tune

    import hpt_ray as hr

    side = config["side"]
    trial_id = ray_tune.get_context().get_trial_id()
    role_file = os.path.join(side, "role-" + trial_id)
    if not os.path.exists(role_file):
        try:
            os.close(os.open(os.path.join(side, "leader"), os.O_CREAT | os.O_EXCL))
            role = "leader"
        except FileExistsError:
            role = "follower"
        with open(role_file, "w") as f:
            f.write(role)
    with open(role_file) as f:
        role = f.read()
    checkpoint = hr.get_checkpoint()
    restored = None
    if checkpoint is not None:
        with open(os.path.join(checkpoint.path, "state.json")) as f:
            restored = json.load(f)
    with open(os.path.join(side, "starts-" + trial_id), "a") as f:
        f.write(json.dumps(restored) + "\n")

    def wait_for(done):
        deadline = time.monotonic() + 120
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)

    def follower_went_on():
        names = os.listdir(side)
        if "follower-reported" in names:
            return True
        followers = [n for n in names if n.startswith("role-") and n != "role-" + trial_id]
        return any(
            len(open(os.path.join(side, "starts-" + n[5:])).readlines()) > 1
            for n in followers
            if os.path.exists(os.path.join(side, "starts-" + n[5:]))
        )

    start = 0 if restored is None else restored["iteration"]
    for iteration in range(start + 1, 7):
        if role == "follower" and iteration == start + 1:
            wait_for(lambda: os.path.exists(os.path.join(side, "leader-2")))
        if role == "leader" and iteration == 3:
            wait_for(follower_went_on)
        score = (1.0 if role == "leader" else 0.0) + 0.01 * iteration
        if role == "leader" and iteration == 1:
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "state.json"), "w") as f:
                    json.dump({"iteration": iteration, "owner": trial_id}, f)
                hr.report({"score": score}, checkpoint=hr.Checkpoint.from_directory(tmp))
        else:
            hr.report({"score": score})
        if role == "leader" and iteration == 2:
            open(os.path.join(side, "leader-2"), "w").close()
        if role == "follower" and restored is None and iteration == 1:
            open(os.path.join(side, "follower-reported"), "w").close()


def never_checkpoints(config):
    import hpt_ray as hr

    for i in range(1, 9):
        hr.report({"score": config["x"] * i})


def _starts(side: Path) -> dict[str, list]:
    return {
        p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in side.iterdir()
    }


@pytest.fixture
def side(tmp_path):
    directory = tmp_path / "side"
    directory.mkdir()
    return directory


def _population_of_four(tmp_path, side, *, explore="ray", **config):
    """A 6-epoch population of 4 members of `sparse_checkpoints` on 2 slots, where the bottom
    half copies the top half at every report: more exploits, none of them left to chance."""
    return hpt_ray.tune_model(
        sparse_checkpoints,
        {"x": tune.uniform(0.0, 1.0), "epochs": 6, "together": 2, "side": str(side), **config},
        metric="score",
        mode="max",
        searcher="random",
        scheduler="pbt",
        scheduler_options={
            "perturbation_interval": 1,
            "quantile_fraction": 0.5,
            "explore": explore,
        },
        num_samples=4,
        max_concurrent=2,  # in two waves of two (plan warns): each pair copies within itself
        epochs=6,
        seed=3,
        storage_path=tmp_path / "runs",
        verbose=0,
    )


@pytest.mark.slow
def test_members_exploit_real_checkpoints_and_the_schedule_is_recorded(tmp_path, side):
    result = _population_of_four(tmp_path, side, explore="gp-ei")
    schedule = result.schedule
    assert schedule is not None
    assert read_schedule(result.path).equals(schedule)
    exploits = schedule[schedule["exploited_from"].notna()]
    assert len(exploits) >= 1, schedule
    starts = _starts(side)
    for _, row in exploits.iterrows():
        # The checkpoint copied is the donor's, on disk, of the report just before this one.
        assert Path(row["checkpoint"]).is_dir(), row
        state = json.loads((Path(row["checkpoint"]) / "state.json").read_text())
        assert state["owner"] == row["exploited_from"]
        assert state["iteration"] == row["iteration"] - 1
        assert state in starts[row["trial_id"]]
    for trial_id, restored in starts.items():
        # Started from scratch once; every later start restored a checkpoint (a pause at a
        # report without one would have started it over: ray#27170).
        assert restored[0] is None, trial_id
        assert all(r is not None for r in restored[1:]), (
            trial_id,
            restored,
        )
    # The config changes over time and each change is in the schedule: the exploit rows carry
    # values no member started with, chosen by the searcher within the domain.
    initial = set(result.trials["config/x"])
    assert set(exploits["config/x"]) - initial
    assert exploits["config/x"].between(0.0, 1.0).all()
    per_trial = schedule.groupby("trial_id")["config/x"].nunique()
    assert (per_trial > 1).any()
    # Every member's lineage trains 6 reports, and the best config is its last values.
    assert (result.trials["iterations"] == 6).all()
    best = result.trials.loc[result.trials["final_metric"].idxmax(), "trial_id"]
    last = schedule[schedule["trial_id"] == best].sort_values("iteration").iloc[-1]
    assert result.best_config["x"] == pytest.approx(last["config/x"])


@pytest.mark.slow
def test_a_donor_perturbed_since_its_last_checkpoint_is_copied_at_that_checkpoint(tmp_path, side):
    # A member that checkpoints less often than it is perturbed: Ray copies only the checkpoint
    # of the donor's last perturbation and skips the exploit when that report carried none, so
    # whether anything is copied depended on which report the driver saw first (CI: a
    # population of four made 24 reports and no exploit). The donor's latest checkpoint is
    # copied instead, with the iteration it was made at.
    result = hpt_ray.tune_model(
        checkpoint_once,
        {"x": tune.uniform(0.0, 1.0), "side": str(side)},
        metric="score",
        mode="max",
        searcher="random",
        scheduler="pbt",
        scheduler_options={"perturbation_interval": 1, "quantile_fraction": 0.5},
        num_samples=2,
        max_concurrent=2,
        epochs=6,
        seed=0,
        storage_path=tmp_path / "runs",
        verbose=0,
    )
    leader = next(p.name[5:] for p in side.glob("role-*") if p.read_text() == "leader")
    follower = next(p.name[5:] for p in side.glob("role-*") if p.read_text() == "follower")
    starts = {
        t: [json.loads(line) for line in (side / f"starts-{t}").read_text().splitlines()]
        for t in (leader, follower)
    }
    # The leader may be paused at its checkpoint while the follower's worker starts.
    assert starts[leader][0] is None
    assert all(s["owner"] == leader for s in starts[leader][1:]), starts
    copied = {"iteration": 1, "owner": leader}
    assert copied in starts[follower], starts
    schedule = result.schedule
    exploits = schedule[schedule["exploited_from"].notna()]
    assert len(exploits) >= 1, schedule
    assert set(exploits["trial_id"]) == {follower}
    assert set(exploits["exploited_from"]) == {leader}
    for _, row in exploits.iterrows():
        assert json.loads((Path(row["checkpoint"]) / "state.json").read_text()) == copied
        assert row["iteration"] == 2  # the copy restarts at the checkpoint's iteration
    assert (result.trials["iterations"] == 6).all(), result.trials
    # The report's learning curves hold every report of each member, also the follower's from
    # before it copied: Ray's result.json of a restarted member can lose them (seen in a user's
    # run: a member that reported iteration 1, then copied a checkpoint of 6, had 7-9 only);
    # the follower's is cut so here, as Ray left that one.
    (log,) = Path(result.path).glob(f"*_{follower}_*/result.json")
    lines = log.read_text().splitlines()
    log.write_text("".join(f"{x}\n" for x in lines if json.loads(x)["training_iteration"] > 2))
    curves = load_experiment(result.path).curves
    for trial_id, rows in schedule.groupby("trial_id"):
        assert list(curves[trial_id][0]) == sorted(rows["iteration"]), trial_id
        assert list(curves[trial_id][1]) == list(rows.sort_values("iteration")["metric"])


@pytest.mark.slow
def test_a_member_that_ends_without_a_report_after_copying_is_told(tmp_path, side, caplog):
    # Someone else's training function: it returns when it is handed a checkpoint. A member
    # that copies a donor then ends with nothing reported under its new values: the row cannot
    # say so, the log must.
    with caplog.at_level(logging.WARNING, logger="hpt_ray.pbt"):
        result = _population_of_four(tmp_path, side, quit_when_restored=True)
    # A member restored from its own checkpoint after a pause also quits; only copiers count.
    copied = [
        t for t, starts in _starts(side).items() if any(s and s["owner"] != t for s in starts)
    ]
    assert copied, "no member copied another: nothing to check"
    told = [r.getMessage() for r in caplog.records if "ended without a report" in r.getMessage()]
    assert sorted(m.split()[1] for m in told) == sorted(copied), told
    assert len(result.trials) == 4


DRIVER = """
import os
import sys
import time
from ray import tune
import hpt_ray

{function}

storage, mode, side, gate, address = sys.argv[1:]
if mode == "resume":  # started with the first driver, imports done: resumes once it is killed
    deadline = time.monotonic() + 300
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
hpt_ray.tune_model(
    sparse_checkpoints,
    {{"x": tune.uniform(0.0, 1.0), "epochs": 6, "hold": 4, "side": side, "gate": gate}},
    metric="score", mode="max", searcher="random", scheduler="pbt",
    scheduler_options={{"perturbation_interval": 2}}, num_samples=2, max_concurrent=2,
    epochs=6, seed=0, storage_path=storage, name="exp", resume=mode == "resume",
    ray_address=address, verbose=0,
)
"""


def _saved_checkpoints(directory: Path) -> dict[str, int]:
    """The training iteration of each trial's latest checkpoint in Ray's newest saved
    experiment state (what a resume restores from)."""
    states = sorted(directory.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        trials = json.loads(states[-1].read_text())["trial_data"]
    except (OSError, ValueError, KeyError):
        return {}  # caught mid-write
    saved = {}
    for trial_json, run_json in trials:
        manager = json.loads(run_json)["checkpoint_manager"]
        latest = cloudpickle.loads(bytes.fromhex(manager["value"])).latest_checkpoint_result
        if latest is not None:
            state = Path(latest.checkpoint.path) / "state.json"
            saved[json.loads(trial_json)["trial_id"]] = json.loads(state.read_text())["iteration"]
    return saved


@pytest.mark.slow
@pytest.mark.fault
def test_a_killed_driver_resumes_the_population(tmp_path, side):
    # Both drivers join the session's Ray (no Ray start-up each) and Ray saves its experiment
    # state every second. The first driver's members wait before their 4th report at a gate; it
    # is killed once Ray's saved state holds a checkpoint of each member (at the 2nd report, the
    # first perturbation). The second driver starts with the first (its imports cost seconds)
    # and resumes the run when the gate opens after the kill.
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(function=inspect.getsource(sparse_checkpoints)))
    storage, gate = tmp_path / "runs", tmp_path / "gate"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["HPT_RAY_SNAPSHOT_BUDGET"] = "1"
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "1"
    if not ray.is_initialized():  # an earlier test of the session shut the session's Ray down
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, str(script), str(storage)]
    arguments = [str(side), str(gate), address]
    driver = subprocess.Popen(
        [*command, "new", *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    resumer = subprocess.Popen(
        [*command, "resume", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    try:
        while len(_saved_checkpoints(storage / "exp")) < 2:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the population did not get going in time"
            time.sleep(0.1)
    except BaseException:
        os.killpg(resumer.pid, signal.SIGKILL)
        resumer.wait()
        raise
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    saved = _saved_checkpoints(storage / "exp")
    before = read_schedule(storage / "exp")
    assert before is not None
    assert before["iteration"].max() < 4

    started = {trial_id: len(restored) for trial_id, restored in _starts(side).items()}

    gate.touch()
    try:
        _, stderr = resumer.communicate(timeout=300)
    finally:
        if resumer.poll() is None:
            os.killpg(resumer.pid, signal.SIGKILL)
            resumer.wait()
    assert resumer.returncode == 0, stderr[-3000:]
    table = hpt_ray.read_results(storage / "exp")
    assert len(table) == 2
    assert (table["iterations"] == 6).all(), table
    after = read_schedule(storage / "exp")
    assert after["iteration"].max() == 6
    # The resumed scheduler kept the first driver's schedule: its rows are still there.
    kept = before.merge(after, on=["trial_id", "iteration"])
    assert len(kept) == len(before)
    # Each member continued from the checkpoint Ray had saved for it, not from scratch.
    starts = _starts(side)
    assert set(starts) == set(saved) == set(started)
    for trial_id, restored in starts.items():
        assert restored[0] is None, (trial_id, restored)
        assert len(restored) > started[trial_id], (trial_id, restored)
        first_after_kill = restored[started[trial_id]]
        assert first_after_kill is not None, (trial_id, restored)
        assert first_after_kill["iteration"] == saved[trial_id], (trial_id, restored, saved)


@pytest.mark.slow
def test_a_function_that_never_checkpoints_stops_the_run(tmp_path):
    with pytest.raises(CheckpointRequiredError, match="checkpoint") as info:
        hpt_ray.tune_model(
            never_checkpoints,
            {"x": tune.uniform(0.0, 1.0)},
            metric="score",
            mode="max",
            searcher="random",
            scheduler="pbt",
            scheduler_options={"perturbation_interval": 1},
            num_samples=1,  # the refusal is per member: one shows it
            epochs=8,
            storage_path=tmp_path,
            verbose=0,
        )
    assert "model:" in str(info.value)
    assert "hpt_ray.report" in str(info.value)


def test_an_exploit_from_a_checkpoint_gone_from_disk_is_skipped(tmp_path):
    # Ray checks only that the donor has a checkpoint object (ray#27170); ours also that its
    # directory exists. The real scheduler and Ray's trial and checkpoint objects, no run.
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    from hpt_ray.pbt import make_population_scheduler

    scheduler = make_population_scheduler(
        "pbt", max_t=4, space={"x": tune.uniform(0.0, 1.0)}, log_config=False
    )
    scheduler.set_search_properties("score", "max")
    donor, member = (Trial("fn", config={"x": x}, stub=True) for x in (0.7, 0.1))
    gone = tmp_path / "checkpoint_000001"
    gone.mkdir()
    checkpoint = hpt_ray.Checkpoint.from_directory(str(gone))
    gone.rmdir()
    for trial, score in ((donor, 1.0), (member, 0.1)):
        scheduler._trial_state[trial] = _PBTTrialState(trial)
        scheduler._trial_state[trial].last_score = score
    scheduler._trial_state[donor].last_checkpoint = checkpoint
    scheduler._exploit(None, member, donor)  # skipped before Ray's exploit needs a controller
    assert scheduler.exploits == []
    assert member.config == {"x": 0.1}


@pytest.mark.parametrize("name", ["pbt", "pb2"])
def test_a_member_that_trained_max_t_reports_is_neither_copied_nor_copies(name):
    # Under load Ray marks a stopped trial finished a moment late; meanwhile a member in the
    # bottom quantile copied the final checkpoint of one at max_t and ended at once without a
    # report: its row kept the metric of the config it had before (CI: iterations 4, not 6).
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    from hpt_ray.pbt import make_population_scheduler

    scheduler = make_population_scheduler(
        name,
        max_t=6,
        space={"x": tune.uniform(0.0, 1.0)},
        quantile_fraction=0.5,
        log_config=False,
    )
    scheduler.set_search_properties("score", "max")
    members = {}
    population = ((0.7, 1.0, 6), (0.6, 0.9, 4), (0.3, 0.5, 4), (0.1, 0.2, 4), (0.2, 0.4, 5))
    for x, score, trained in population:
        trial = Trial("fn", config={"x": x}, stub=True)  # all RUNNING to Ray: none finished
        trial.status = Trial.RUNNING
        state = scheduler._trial_state[trial] = _PBTTrialState(trial)
        state.last_score, state.last_train_time = score, trained
        members[x] = trial
    lower, upper = scheduler._quantiles()
    assert members[0.7] not in lower + upper  # trained max_t reports: done
    assert lower == [members[0.1], members[0.2]]
    assert upper == [members[0.3], members[0.6]]


def test_a_scheduler_saved_before_own_checkpoints_were_tracked_resumes():
    # A run started on the previous release and resumed on this one unpickles a scheduler
    # without `_own_checkpoint`: it starts empty (no donor is copied at an older checkpoint until
    # it reports one), instead of an AttributeError at the first checkpoint.
    import pickle

    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    from hpt_ray.pbt import make_population_scheduler

    scheduler = make_population_scheduler(
        "pbt", max_t=6, space={"x": tune.uniform(0.0, 1.0)}, log_config=False
    )
    scheduler.set_search_properties("score", "max")
    del scheduler._own_checkpoint
    resumed = pickle.loads(pickle.dumps(scheduler))
    assert resumed._own_checkpoint == {}
    donor = Trial("fn", config={"x": 0.7}, stub=True)
    resumed._trial_state[donor] = _PBTTrialState(donor)
    resumed._resolve_donor(donor)
    assert resumed._trial_state[donor].last_checkpoint is None


def test_a_resumed_trial_replaces_its_stale_entry_in_the_ranking():
    # A resume unpickles the scheduler with the killed driver's Trial objects as keys; Ray then
    # adds the restored trials, new objects with the same ids. The stale entries kept their
    # scores and never finish: they would rank (and be copied at old checkpoints) forever.
    import pickle

    from ray.tune.experiment import Trial
    from ray.tune.schedulers.pbt import _PBTTrialState

    from hpt_ray.pbt import make_population_scheduler

    scheduler = make_population_scheduler(
        "pbt", max_t=6, space={"x": tune.uniform(0.0, 1.0)}, log_config=False
    )
    scheduler.set_search_properties("score", "max")
    from ray.tune.execution.placement_groups import PlacementGroupFactory

    resources = PlacementGroupFactory([{"CPU": 1}])
    before = [Trial("fn", config={"x": x}, stub=True) for x in (0.7, 0.5, 0.3, 0.1)]
    for trial, score in zip(before, (1.0, 0.8, 0.6, 0.4), strict=True):
        trial.placement_group_factory = resources  # what Ray's unpickling of a Trial needs
        trial.status = Trial.RUNNING
        state = scheduler._trial_state[trial] = _PBTTrialState(trial)
        state.last_score, state.last_train_time = score, 2
    resumed = pickle.loads(pickle.dumps(scheduler))
    restored = []
    for old in before:
        trial = Trial("fn", config=dict(old.config), trial_id=old.trial_id, stub=True)
        trial.status = Trial.RUNNING
        resumed.on_trial_add(None, trial)
        restored.append(trial)
    assert len(resumed._trial_state) == 4
    assert all(resumed._trial_state.get(t) is not None for t in restored)
    assert resumed._quantiles() == ([], [])  # no restored member has reported yet
    for trial, score in zip(restored, (0.2, 0.9), strict=False):
        resumed._trial_state[trial].last_score = score
    assert resumed._quantiles() == ([restored[0]], [restored[1]])


def test_the_schedule_records_what_a_member_reported_not_the_value_the_scheduler_saw():
    # SafeScheduler shows a scheduler the worst finite value so far in place of a NaN; the
    # schedule's `metric` is the reported value (the doc's word): NaN there, not a made-up score.
    from ray.tune.experiment import Trial

    from hpt_ray.pbt import make_population_scheduler
    from hpt_ray.schedulers import SafeScheduler

    inner = make_population_scheduler(
        "pbt",
        max_t=6,
        space={"x": tune.uniform(0.0, 1.0)},
        perturbation_interval=5,  # no perturbation in these reports: it needs a controller
        log_config=False,
    )
    safe = SafeScheduler(inner)
    safe.set_search_properties("score", "max")
    trial = Trial("fn", config={"x": 0.5}, stub=True)
    inner.on_trial_add(None, trial)
    for iteration, score in ((1, 0.5), (2, float("nan")), (3, 0.7)):
        safe.on_trial_result(None, trial, {"score": score, "training_iteration": iteration})
    assert [r["metric"] for r in inner.schedule_rows] == [0.5, None, 0.7]


def test_a_population_capped_below_its_size_is_told_it_trains_in_waves(caplog):
    # Ray's max_concurrent_trials creates a trial only when another finishes: 4 members on
    # max_concurrent=2 ran as two pairs in a user's run, the last member alone, copying nobody.
    from hpt_ray.plan import plan_experiment
    from hpt_ray.settings import SearchSettings, TrialSettings

    def plan(**search):
        settings = SearchSettings(
            searcher="random", scheduler="pbt", num_samples=4, seed=0, **search
        )
        with caplog.at_level(logging.WARNING, logger="hpt_ray.plan"):
            plan_experiment(
                sparse_checkpoints,
                {"x": tune.uniform(0.0, 1.0)},
                data=None,
                metric="score",
                mode="max",
                kind=None,
                search=settings,
                trial=TrialSettings(epochs=6),
            )
        told = [r.getMessage() for r in caplog.records if "waves" in r.getMessage()]
        caplog.clear()
        return told

    told = plan(max_concurrent=2)
    assert len(told) == 1, told
    assert "max_concurrent=2 < num_samples=4" in told[0]
    assert plan(max_concurrent=4) == []
    assert plan() == []


def _refused(**kwargs):
    arguments = {
        "model": sparse_checkpoints,
        "space": {"x": tune.uniform(0.0, 1.0)},
        "metric": "score",
        "mode": "max",
        "scheduler": "pbt",
        "num_samples": 2,
        "verbose": 0,
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidParameterError) as info:
        hpt_ray.tune_model(arguments.pop("model"), arguments.pop("space"), **arguments)
    return str(info.value)


def test_a_typo_in_explore_names_the_field_and_the_closest_searcher(tmp_path):
    message = _refused(scheduler_options={"explore": "gp_ei"}, storage_path=tmp_path)
    assert "scheduler_options.explore" in message
    assert "'gp-ei'" in message
    assert not list(tmp_path.iterdir())  # refused before a run directory exists


def test_an_unknown_option_and_pb2_with_explore_are_refused(tmp_path):
    message = _refused(scheduler_options={"perturbation_intervall": 2}, storage_path=tmp_path)
    assert "perturbation_interval" in message
    assert "scheduler_options" in message
    message = _refused(
        scheduler="pb2", scheduler_options={"explore": "pso"}, storage_path=tmp_path
    )
    assert "scheduler_options" in message
    assert "'explore'" in message


def test_scikit_learn_trials_cannot_be_a_population(tmp_path):
    message = _refused(
        model=LogisticRegression(),
        space={"C": tune.loguniform(1e-3, 10.0)},
        data="iris",
        metric=None,
        mode=None,
        storage_path=tmp_path,
    )
    assert message.startswith("scheduler: 'pbt'")
    assert "checkpoint" in message


@pytest.mark.parametrize(
    "space",
    [
        {"act": tune.choice(["relu", "tanh"]), "x": 0.5},
        {"opt": tune.choice([{"name": "sgd", "lr": tune.uniform(0.0, 1.0)}, {"name": "adam"}])},
    ],
    ids=["categorical-only", "conditional-only"],
)
def test_a_space_without_a_top_level_numeric_parameter_is_refused(tmp_path, space):
    message = _refused(space=space, storage_path=tmp_path)
    assert message.startswith("space: scheduler='pbt'")
    assert "numeric" in message


@pytest.mark.parametrize("scheduler", ["pbt", "PB2", "instance"])
def test_tune_search_cv_refuses_a_population_scheduler(scheduler):
    if scheduler == "instance":
        scheduler = hpt_ray.make_scheduler(
            "pbt", max_t=4, space={"C": tune.loguniform(1e-3, 10.0)}
        )
    search = hpt_ray.TuneSearchCV(
        LogisticRegression(), {"C": [0.1, 1.0]}, scheduler=scheduler, cv=2
    )
    with pytest.raises(InvalidParameterError) as info:
        search.fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])
    message = str(info.value)
    assert message.startswith("scheduler: ")
    assert "scikit-learn models cannot checkpoint-and-exploit" in message
    assert "TuneSearchCV" in message
    assert "scheduler: " in hpt_ray.TuneSearchCV.__doc__
    assert '"pbt"' in hpt_ray.TuneSearchCV.__doc__.split("scheduler:")[1]


def test_pbt_outside_tune_model_needs_the_space():
    with pytest.raises(InvalidParameterError, match="scheduler: 'pbt'"):
        hpt_ray.make_scheduler("pbt", max_t=10)
