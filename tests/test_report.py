"""The one-file HTML report (hpt_ray/html_report.py, issue #14): importance on tables with a known
answer, edge cases, and real experiments rendered in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hpt_ray.cli import main
from hpt_ray.html_report import (
    Session,
    best_so_far,
    cut_points,
    lanes,
    load_experiment,
    param_importance,
    report_html,
    report_png,
)
from hpt_ray.table import write_metadata, write_results

SECTIONS = (
    "glance",
    "history",
    "curves",
    "importance",
    "slices",
    "parallel",
    "timeline",
    "trials",
)


# -- a synthetic experiment directory, in the formats the writer and Ray write ---------------


def write_experiment(
    directory: Path,
    trials: Sequence[dict[str, Any]],
    *,
    metric: str = "score",
    mode: str = "max",
    space: dict[str, Any] | None = None,
) -> Path:
    """trials: dicts with trial_id, status, config, curve (metric per iteration, may hold NaN),
    and optionally start (s), node, error. Writes results.parquet, experiment.json,
    experiment.yaml (when ``space`` is given) and each trial's result.json."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = 1_790_000_000.0
    for trial in trials:
        curve = [float(v) for v in trial.get("curve", [])]
        finite = [v for v in curve if np.isfinite(v)]
        last = curve[-1] if curve and np.isfinite(curve[-1]) else None
        best = (max(finite) if mode == "max" else min(finite)) if finite else None
        row: dict[str, Any] = {
            "trial_id": trial["trial_id"],
            "status": trial["status"],
            "final_metric": last,
            "best_metric": best,
            "best_iteration": None,
            "iterations": len(curve),
            "bad_reports": sum(not np.isfinite(v) for v in curve),
            "wall_time_s": float(len(curve)),
            "error": trial.get("error"),
            "checkpoint": None,
            "config_json": json.dumps(trial["config"], sort_keys=True),
        }
        row.update({f"config/{k}": v for k, v in trial["config"].items()})
        rows.append(row)
        if curve:
            trial_dir = directory / f"train_{trial['trial_id']}"
            trial_dir.mkdir()
            start = t0 + float(trial.get("start", 0.0))
            lines = []
            for i, value in enumerate(curve, start=1):
                lines.append(
                    json.dumps(
                        {
                            metric: value,
                            "training_iteration": i,
                            "trial_id": trial["trial_id"],
                            "timestamp": int(start + i),
                            "time_total_s": float(i),
                            "time_since_restore": float(i),
                            "iterations_since_restore": i,
                            "node_ip": trial.get("node", "10.0.0.1"),
                            "config": trial["config"],
                        }
                    )
                )
            (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
    frame = pd.DataFrame(rows)
    for column in ("best_iteration", "iterations", "bad_reports"):
        frame[column] = frame[column].astype("Int64")
    for column in ("final_metric", "best_metric", "wall_time_s"):
        frame[column] = frame[column].astype("float64")
    write_results(frame, directory)
    write_metadata(
        directory,
        {
            "model": "synthetic",
            "kind": "sklearn",
            "data": "table",
            "metric": metric,
            "mode": mode,
            "searcher": "random",
            "scheduler": "asha",
            "num_samples": len(trials),
            "max_t": 4,
            "seed": 0,
            "name": directory.name,
        },
    )
    if space is not None:
        import yaml

        (directory / "experiment.yaml").write_text(
            yaml.safe_dump({"model": "synthetic", "data": "table", "space": space})
        )
    return directory


def section(text: str, kind: str, index: int = 0) -> str:
    match = re.search(rf'<section id="{kind}-{index}".*?</section>', text, flags=re.S)
    assert match, f"section {kind}-{index} is missing"
    return match.group(0)


# -- statistics ------------------------------------------------------------------------------


def test_importance_goes_to_the_only_parameter_that_matters() -> None:
    rng = np.random.default_rng(0)
    for relevant in range(3):  # not always the first column
        X = rng.uniform(size=(200, 3))  # (n, p)
        y = np.sin(3 * X[:, relevant]) + 0.01 * rng.normal(size=200)
        shares, explained = param_importance(X, y)
        assert shares.argmax() == relevant
        assert shares[relevant] > 0.95, shares
        assert shares.sum() == pytest.approx(1.0)
        assert explained > 0.85


@pytest.mark.parametrize(("a", "b"), [(2.0, 1.0), (1.0, 1.0), (1.0, 3.0)])
def test_importance_shares_follow_the_variances_of_independent_parameters(
    a: float, b: float
) -> None:
    # y = a x0 + b x1 with x uniform on [0, 1]: Var = (a^2 + b^2) / 12, shares a^2 : b^2.
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(400, 3))
    y = a * X[:, 0] + b * X[:, 1]
    shares, _ = param_importance(X, y)
    expected = a**2 / (a**2 + b**2)
    assert shares[0] == pytest.approx(expected, abs=0.06), shares
    assert shares[1] == pytest.approx(1 - expected, abs=0.06), shares
    assert shares[2] < 0.02


def test_importance_of_a_categorical_and_a_log_parameter_through_the_report(
    tmp_path: Path,
) -> None:
    # The metric depends on the optimizer (a category) only; lr is log-uniform noise.
    rng = np.random.default_rng(2)
    trials = []
    for i in range(60):
        opt = ["adam", "sgd", "rmsprop"][i % 3]
        lr = float(10 ** rng.uniform(-5, -1))
        score = {"adam": 0.9, "sgd": 0.5, "rmsprop": 0.7}[opt] + 0.005 * rng.normal()
        trials.append(
            {
                "trial_id": f"t{i:03d}",
                "status": "completed",
                "config": {"lr": lr, "optimizer": opt},
                "curve": [score - 0.1, score],
            }
        )
    space = {"lr": {"loguniform": [1e-5, 1e-1]}, "optimizer": ["adam", "sgd", "rmsprop"]}
    exp = load_experiment(write_experiment(tmp_path / "cat", trials, space=space))
    params = {p.name: p for p in exp.params}
    assert params["lr"].log
    assert params["lr"].kind == "float"
    assert params["optimizer"].kind == "cat"
    text = report_html(exp.path).read_text()
    bars = re.findall(r"<title>(\w+): ([0-9.]+)</title></rect>", section(text, "importance"))
    shares = {name: float(value) for name, value in bars}
    assert shares["optimizer"] > 0.9, shares
    assert "completed trials" in section(text, "importance")
    # Slices: categories as strips, lr on a log axis (ticks at powers of ten).
    slices = section(text, "slices")
    assert all(f">{c}</text>" in slices for c in ("adam", "sgd", "rmsprop"))
    assert ">0.001</text>" in slices
    assert "lr (log)" in slices


def test_best_so_far_follows_the_mode_and_skips_nan() -> None:
    values = np.array([np.nan, 0.3, 0.1, np.nan, 0.5, 0.2])
    np.testing.assert_allclose(
        best_so_far(values, "max"), [np.nan, 0.3, 0.3, 0.3, 0.5, 0.5], equal_nan=True
    )
    np.testing.assert_allclose(
        best_so_far(values, "min"), [np.nan, 0.3, 0.1, 0.1, 0.1, 0.1], equal_nan=True
    )


def test_lanes_stack_overlapping_trials_of_a_node_only() -> None:
    sessions = [
        Session("a", "n1", "", 0.0, 10.0),
        Session("b", "n1", "", 2.0, 5.0),  # overlaps a: second slot
        Session("c", "n1", "", 6.0, 9.0),  # b ended: reuses slot 2
        Session("d", "n2", "0", 0.0, 3.0),  # another node: its own slot 1
        Session("e", "n1", "", 10.5, 12.0),  # within a second of a's end: slot 1 (stamps)
    ]
    placed = {s.trial_id: (node, lane) for node, lane, s in lanes(sessions)}
    assert placed == {
        "a": ("n1", 0),
        "b": ("n1", 1),
        "c": ("n1", 1),
        "e": ("n1", 0),
        "d": ("n2", 0),
    }


# -- edge cases: a clear report, not a crash -------------------------------------------------


def _trials_asha(n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    trials = []
    for i in range(n):
        x = float(rng.uniform())
        lr = float(10 ** rng.uniform(-4, -1))
        full = [x * (1 - 0.5**k) for k in range(1, 5)]
        length = 4 if i % 3 == 0 else (1 if i % 3 == 1 else 2)
        trials.append(
            {
                "trial_id": f"t{i:04d}",
                "status": "completed" if length == 4 else "stopped",
                "config": {"x": x, "lr": lr, "act": ["relu", "tanh"][i % 2]},
                "curve": full[:length],
                "start": 1.5 * i,
                "node": f"10.0.0.{1 + i % 2}",
            }
        )
    return trials


def test_cut_points_and_rungs_are_shown(tmp_path: Path) -> None:
    exp_dir = write_experiment(tmp_path / "asha", _trials_asha(12, np.random.default_rng(3)))
    assert cut_points(load_experiment(exp_dir)) == [1, 2]
    curves = section(report_html(exp_dir).read_text(), "curves")
    assert "cut@1 (4)" in curves
    assert "cut@2 (4)" in curves


def test_a_population_run_shows_each_members_schedule(tmp_path: Path) -> None:
    from ray import tune

    from hpt_ray.pbt import make_population_scheduler

    trials = [
        {"trial_id": t, "status": "completed", "config": {"lr": lr, "act": "relu"}, "curve": c}
        for t, lr, c in (("a", 1e-2, [0.5, 0.7, 0.8]), ("b", 1e-4, [0.3, 0.4, 0.8]))
    ]
    directory = write_experiment(tmp_path / "pbt", trials)
    # The schedule as the population scheduler writes it (hpt_ray.pbt), without a Ray run:
    # member b copies a's checkpoint after its second report and goes on with a's values.
    scheduler = make_population_scheduler(
        "pbt",
        max_t=3,
        space={"lr": tune.loguniform(1e-5, 1e-1), "act": tune.choice(["relu", "tanh"])},
        log_config=False,
    )
    for iteration in (1, 2, 3):
        for member, lr, act in (
            ("a", 1e-2, "relu"),
            ("b", 1e-4 if iteration < 3 else 2e-2, "tanh"),
        ):
            copied = member == "b" and iteration == 3
            scheduler.schedule_rows.append(
                {
                    "trial_id": member,
                    "iteration": iteration,
                    "metric": 0.1 * iteration,
                    "exploited_from": "a" if copied else None,
                    "checkpoint": "/runs/a/checkpoint_000001" if copied else None,
                    "config/lr": lr,
                    "config/act": act if not copied else "relu",
                }
            )
    scheduler.write_tables(directory)
    text = report_html(directory).read_text()
    schedule = section(text, "schedule")
    assert "2 members, 1 exploit(s)" in schedule
    assert schedule.count("<svg") == 2  # one step plot per perturbed parameter
    assert 'aria-label="lr"' in schedule
    assert 'aria-label="act"' in schedule
    assert "trial b copied a's checkpoint at iteration 3; lr=0.02" in schedule
    # Runs of other schedulers have no schedule section.
    assert (
        'id="schedule-0"'
        not in report_html(write_experiment(tmp_path / "asha", trials)).read_text()
    )
    binary = browser()
    if binary is not None:
        dom = chromium(binary, "--dump-dom", (directory / "report.html").as_uri()).stdout
        assert 'data-ready="1"' in dom
        assert 'id="schedule-0" data-section="schedule"' in dom


def test_zero_finished_trials(tmp_path: Path) -> None:
    trials = [
        {"trial_id": f"r{i}", "status": "running", "config": {"x": i / 3}, "curve": []}
        for i in range(3)
    ]
    text = report_html(write_experiment(tmp_path / "zero", trials)).read_text()
    assert "No trial has reported a finite score yet" in section(text, "glance")
    assert "no learning curves" in section(text, "curves")
    assert "needs at least 3 trials" in section(text, "importance")
    assert "no timeline" in section(text, "timeline")
    assert section(text, "trials").count('data-status="running"') == 3


def test_all_trials_errored(tmp_path: Path) -> None:
    trials = [
        {
            "trial_id": f"e{i}",
            "status": "error",
            "config": {"x": i / 4},
            "curve": [],
            "error": f"ValueError: bad x={i}",
        }
        for i in range(4)
    ]
    text = report_html(write_experiment(tmp_path / "errors", trials)).read_text()
    assert "4 error" in section(text, "glance")
    assert "ValueError: bad x=3" in section(text, "trials")
    assert "nothing to plot" in section(text, "history")


def test_a_single_trial(tmp_path: Path) -> None:
    trials = [
        {"trial_id": "one", "status": "completed", "config": {"x": 0.5}, "curve": [0.1, 0.2]}
    ]
    text = report_html(write_experiment(tmp_path / "single", trials)).read_text()
    assert "Best score: <b>0.2</b>" in section(text, "glance")
    assert "no parameter varies" in section(text, "importance")
    assert "<polyline" in section(text, "curves")


def test_nan_metrics(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    trials = _trials_asha(9, rng)
    trials[0]["curve"] = [0.2, float("nan"), float("nan"), float("nan")]  # diverged to NaN
    trials[0]["status"] = "diverged"
    trials[1]["curve"] = [float("inf")]
    text = report_html(write_experiment(tmp_path / "nan", trials)).read_text()
    assert "NaN" not in text
    assert "inf<" not in text
    table = section(text, "trials")
    row = re.search(r'<tr data-status="diverged">(.*?)</tr>', table)
    assert row
    assert "<td>–</td>" in row.group(1)
    # the finite point before the NaNs is still on the curve's plot, the NaNs are not
    assert "trial t0000 (diverged): 0.2" in section(text, "curves")


def test_categorical_only_space(tmp_path: Path) -> None:
    trials = [
        {
            "trial_id": f"c{i}",
            "status": "completed",
            "config": {"kernel": ["rbf", "linear", "poly"][i % 3], "shrink": bool(i % 2)},
            "curve": [0.5 + 0.1 * (i % 3) + 0.01 * (i % 2)],
        }
        for i in range(12)
    ]
    text = report_html(write_experiment(tmp_path / "cats", trials)).read_text()
    assert ">rbf</text>" in section(text, "slices")
    assert ">True</text>" in section(text, "slices")
    shares = dict(re.findall(r"<title>(\w+): ([0-9.]+)</title></rect>", text))
    assert float(shares["kernel"]) > 0.9


def test_thousand_trials_size_and_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    trials = _trials_asha(1000, rng)
    for trial in trials:  # 20 reports for the ones run to the end
        if trial["status"] == "completed":
            trial["curve"] = [trial["config"]["x"] * (1 - 0.8**k) for k in range(1, 21)]
    exp_dir = write_experiment(tmp_path / "big", trials)
    exp = load_experiment(exp_dir)
    # CPU time, not wall time: the 2-core test machine is shared, and the work is one thread.
    started = time.process_time()
    from hpt_ray.html_report import experiment_importance

    imp = experiment_importance(exp)
    importance_cpu = time.process_time() - started
    assert importance_cpu < 2.0, importance_cpu
    assert imp.names[int(imp.shares.argmax())] == "x"
    started = time.process_time()
    path = report_html(exp_dir, tmp_path / "big.html")
    report_cpu = time.process_time() - started
    size = path.stat().st_size
    print(
        f"1,000 trials: {size / 1e6:.2f} MB, report {report_cpu:.2f} s CPU, "
        f"importance {importance_cpu:.2f} s CPU"
    )
    assert size < 5_000_000
    assert report_cpu < 15.0
    assert section(path.read_text(), "trials").count("<tr data-status=") == 1000


def test_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dirs"):
        report_html([])
    with pytest.raises(FileNotFoundError, match="not a directory"):
        report_html(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"results\.parquet"):
        report_html(tmp_path / "empty")
    assert main(["report", str(tmp_path / "nope")]) == 2


# -- real experiments, rendered in a real browser --------------------------------------------


@pytest.fixture(scope="module")
def real_experiments(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A torch MLP on digits under ASHA and a scikit-learn estimator: one small run each."""
    from ray import tune
    from sklearn.ensemble import HistGradientBoostingClassifier

    import hpt_ray
    from trainables.torch_trainable import mlp

    root = tmp_path_factory.mktemp("report-runs")
    torch_run = hpt_ray.tune_model(
        mlp,
        {
            "lr": tune.loguniform(1e-4, 3e-2),
            "hidden_size": tune.choice([16, 32]),
            "dropout": tune.uniform(0.0, 0.4),
        },
        data="digits",
        searcher="random",
        scheduler="asha",
        scheduler_options={"grace_period": 1, "reduction_factor": 2},
        epochs=3,
        num_samples=6,
        max_concurrent=2,
        seed=0,
        storage_path=str(root),
        name="digits-mlp",
        verbose=0,
    )
    sklearn_run = hpt_ray.tune_model(
        HistGradientBoostingClassifier(max_iter=10),
        {"learning_rate": tune.loguniform(0.01, 0.5), "max_leaf_nodes": tune.randint(4, 32)},
        data="breast_cancer",
        searcher="random",
        num_samples=4,
        max_stages=2,
        max_concurrent=2,
        seed=0,
        storage_path=str(root),
        name="cancer-hgb",
        verbose=0,
    )
    return [Path(torch_run.path), Path(sklearn_run.path)]


def browser() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("HPT_RAY_REQUIRE_BROWSER"):
        pytest.fail("chromium is not on PATH and HPT_RAY_REQUIRE_BROWSER is set (.ci/run)")
    return found


def chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.slow
def test_real_experiments_report_offline_and_render(
    real_experiments: list[Path], tmp_path: Path
) -> None:
    torch_dir, sklearn_dir = real_experiments
    out = tmp_path / "report.html"
    assert main(["report", str(torch_dir), str(sklearn_dir), "-o", str(out)]) == 0
    text = out.read_text()

    # Self-contained: no external URL in any src or href, nothing loaded by CSS either.
    for attribute, value in re.findall(r'\b(src|href)\s*=\s*["\']?([^"\'\s>]*)', text):
        assert value.startswith("#"), f"{attribute}={value}"
    assert "url(" not in text
    assert "@import" not in text
    assert "default-src 'none'" in text

    # What the runs did is in the report.
    torch_exp = load_experiment(torch_dir)
    assert set(torch_exp.frame["status"]) <= {"completed", "stopped"}
    assert torch_exp.curves
    assert len(torch_exp.curves) == 6
    if cut_points(torch_exp):  # ASHA cut something: its cut points are drawn
        assert "cut@" in section(text, "curves", 0)
    assert "Experiments compared" in text

    binary = browser()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    dom = chromium(binary, "--dump-dom", out.as_uri()).stdout
    assert 'data-ready="1"' in dom, "the report's script did not run to its end"
    errors = re.search(r'<pre id="js-errors">(.*?)</pre>', dom, flags=re.S)
    assert errors is not None
    assert errors.group(1).strip() == "", errors.group(1)
    for index in (0, 1):
        for kind in SECTIONS:
            assert f'id="{kind}-{index}" data-section="{kind}"' in dom, (kind, index)
    assert 'id="compare-0"' in dom
    # The table's script ran: it counted the rows.
    assert "6 of 6 trials" in dom
    assert "4 of 4 trials" in dom
    screenshot = Path(tempfile.gettempdir()) / "hpt_ray_report_screenshot.png"
    chromium(binary, f"--screenshot={screenshot}", "--window-size=1280,2400", out.as_uri())
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


@pytest.mark.slow
def test_png_figures_of_a_real_experiment(real_experiments: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    torch_dir, _ = real_experiments
    written = report_png([torch_dir], tmp_path / "png")
    names = {p.name for p in written}
    for figure in ("history", "curves", "importance", "slices", "parallel", "timeline"):
        assert f"digits-mlp-{figure}.png" in names
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_scale_is_recognised_without_the_space(tmp_path: Path) -> None:
    # A run from Python leaves no experiment.yaml: log axes come from how the values spread.
    rng = np.random.default_rng(6)
    trials = [
        {
            "trial_id": f"l{i}",
            "status": "completed",
            "config": {
                "lr": float(10 ** rng.uniform(-4, -1)),
                "dropout": float(rng.uniform(0.0, 0.5)),
                "width": float(rng.uniform(10.0, 20.0)),
            },
            "curve": [0.5],
        }
        for i in range(40)
    ]
    params = {p.name: p for p in load_experiment(write_experiment(tmp_path / "x", trials)).params}
    assert params["lr"].log
    assert not params["dropout"].log
    assert not params["width"].log
