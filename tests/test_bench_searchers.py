"""Smoke test of the searcher benchmark (`scripts/bench_searchers.py`) and its problems."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_problems
import bench_searchers


@pytest.mark.parametrize("name", list(bench_problems.PROBLEMS))
def test_problem_optimum_is_reached_at_its_argmin(name: str) -> None:
    problem = bench_problems.PROBLEMS[name]
    assert problem.argmin is not None
    assert problem.value(problem.argmin) == pytest.approx(problem.optimum, abs=1e-9)
    assert set(problem.argmin) == set(problem.space())


def test_branin_has_three_minimizers() -> None:
    optimum = bench_problems.PROBLEMS["branin"].optimum
    for x in [(-math.pi, 12.275), (math.pi, 2.275), (3 * math.pi, 2.475)]:
        assert bench_problems.branin(np.array(x)) == pytest.approx(optimum, abs=1e-9)


def test_mixed_train_optimum_is_not_beaten_by_dense_random_search() -> None:
    problem = bench_problems.PROBLEMS["mixed-train"]
    space = problem.space()
    rng = np.random.default_rng(0)
    best = min(
        problem.value({k: d.sample(random_state=rng) for k, d in space.items()})
        for _ in range(5000)
    )
    assert problem.optimum < best < problem.optimum + 0.05


def test_robustness_set_is_separate_and_its_optima_hold() -> None:
    assert set(bench_problems.MAIN).isdisjoint(bench_problems.HOLDOUT)
    assert bench_searchers.BenchOptions(searchers=("random",)).problems == bench_problems.MAIN
    problem = bench_problems.PROBLEMS["michalewicz5"]  # argmin found numerically
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, math.pi, size=(20000, 5))
    best = min(bench_problems.michalewicz(x) for x in X)
    assert problem.optimum < best


def test_noise_is_added_only_where_declared() -> None:
    rng = np.random.default_rng(0)
    clean, noisy = bench_problems.PROBLEMS["hartmann6"], bench_problems.PROBLEMS["hartmann6-noisy"]
    at = clean.argmin
    assert at is not None
    assert clean.observe(at, rng) == clean.value(at)
    draws = np.array([noisy.observe(at, rng) for _ in range(2000)]) - noisy.value(at)
    assert abs(draws.mean()) < 0.01
    assert draws.std() == pytest.approx(0.1, rel=0.1)


def test_benchmark_smoke(tmp_path: Path) -> None:
    options = bench_searchers.BenchOptions(
        searchers=("random", "optuna-tpe"),
        problems=("branin",),
        seeds=2,
        budget=12,
        pending=(1, 2),
        out=tmp_path,
    )
    report = bench_searchers.run_benchmark(options)

    assert len(report.traces) == 2 * 2 * 2
    assert {t["status"] for t in report.traces} == {"ok"}
    for t in report.traces:
        assert len(t["incumbent_value"]) == 12
        assert len(t["suggest_s"]) >= 12
        assert all(s >= 0 for s in t["suggest_s"])
    for (searcher, _, _, budget), cell in report.cells.items():
        assert budget in (6, 12)
        assert cell.normalized is not None
        assert math.isfinite(cell.normalized)
        if searcher == "random":
            assert cell.normalized == 1.0
    for mean, counted in report.means.values():
        assert mean is not None
        assert math.isfinite(mean)
        assert counted == 1
    table = (tmp_path / "table.md").read_text()
    assert table == report.table
    assert "| random | 1.00 |" in table
    assert "| optuna-tpe | " in table
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + 8 * 2
    assert (tmp_path / "plots" / "branin.png").stat().st_size > 0
    assert (tmp_path / "traces" / "optuna-tpe" / "branin" / "k2-seed1.json").exists()

    rerun = bench_searchers.run_benchmark(options)
    assert all(t["cached"] for t in rerun.traces)
    assert rerun.table == report.table


def test_searcher_variants_run_side_by_side_and_bad_options_fail_early(tmp_path: Path) -> None:
    assert bench_searchers.split_variant("gp-ei") == ("gp-ei", {})
    assert bench_searchers.split_variant("gp-ei:min_loo_skill=null,local_scales=[0.1],x=a") == (
        "gp-ei",
        {"min_loo_skill": None, "local_scales": [0.1], "x": "a"},
    )
    variant = "pso:n_particles=4,v_max=0.5"
    options = bench_searchers.BenchOptions(
        searchers=("random", "pso", variant),
        problems=("branin",),
        seeds=1,
        budget=12,
        pending=(1,),
        out=tmp_path,
        plots=False,
    )
    report = bench_searchers.run_benchmark(options)
    runs = {t["searcher"]: t for t in report.traces}
    assert runs[variant]["status"] == "ok"
    assert runs[variant]["incumbent_value"] != runs["pso"]["incumbent_value"]  # options applied
    assert f"| {variant} | " in report.table

    for bad, match in [
        ("gp-ei:bogus=1", "bogus"),
        ("gp-ei:min_loo_skill=2", "min_loo_skill"),
        ("gp-ei:noequals", "key=value"),
        ("nope:a=1", "unknown searcher"),
    ]:
        with pytest.raises(ValueError, match=match):
            bench_searchers.BenchOptions(searchers=(bad,), problems=("branin",), out=tmp_path)


def test_paired_comparison_counts_runs_and_its_interval_excludes_zero_only_for_a_real_gap(
    tmp_path: Path,
) -> None:
    import csv

    import bench_paired

    rows = []
    for problem in ("p1", "p2"):
        for seed in range(6):
            # A: better than B on every run of p1, the same as B on p2.
            for searcher, normalized in (
                ("A", 0.2 if problem == "p1" else 0.5),
                ("B", 0.6 if problem == "p1" else 0.5),
            ):
                rows.append(
                    {
                        "searcher": searcher,
                        "problem": problem,
                        "pending": 1,
                        "seed": seed,
                        "budget": 10,
                        "regret": normalized * 2.0,
                        "normalized_regret": normalized,
                    }
                )
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (result,) = bench_paired.compare(bench_paired.read_results(path), "A", "B")
    assert (result.pairs, result.wins, result.ties, result.losses) == (12, 6, 6, 0)
    assert result.score_diff == pytest.approx(20.0)  # (80 - 40) on half the pairs, 0 on the rest
    assert result.ci_low > 0.0
    assert result.p_value == pytest.approx(2 / 2**6)
    assert result.per_problem["p1"] == (0.2, 0.6, 6, 0)
    (reverse,) = bench_paired.compare(bench_paired.read_results(path), "B", "A")
    assert reverse.score_diff == pytest.approx(-20.0)
    assert reverse.ci_high < 0.0
    assert "| 1 | 10 | 12 | 6 / 6 / 0 |" in bench_paired.render([result], "A", "B")
