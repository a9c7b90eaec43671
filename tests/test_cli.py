"""The hpt-ray command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
HPT_RAY = str(Path(sys.executable).parent / "hpt-ray")


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [HPT_RAY, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_help_everywhere():
    for args in ([], ["--help"], ["run", "--help"], ["show", "--help"], ["searchers", "--help"]):
        out = run(*args)
        assert "usage: hpt-ray" in out.stdout + out.stderr, args


def test_searchers_lists_the_registry():
    import searchers

    out = run("searchers")
    assert out.returncode == 0
    for name in searchers.available():
        assert name in out.stdout


def test_bad_file_exits_nonzero_with_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: sklearn.svm.SVC\ndata: iris\nspace: {C: {uniform: [1.0, 0.1]}}\n")
    out = run("run", str(bad), "--storage-path", str(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("hpt-ray: error:")
    assert "'C'" in lines[0]
    assert not any(tmp_path.glob("*/results.parquet"))


# Smaller than the files ask for, through the same --set a user would use (the examples' own
# budgets, 20 epochs of the MLP and 5-fold CV of 100-iteration boosting, are for a real run).
SMALLER = {
    "breast_cancer_hgb": ["--set", "cv=3", "--set", "model_params.max_iter=40"],
    "digits_mlp": ["--set", "epochs=4"],
}


@pytest.mark.slow
@pytest.mark.parametrize("example", ["breast_cancer_hgb", "digits_mlp"])
def test_run_and_show_examples(tmp_path, example):
    out = run(
        "run",
        f"scripts/examples/{example}.yaml",
        "--num-samples",
        "4",
        *SMALLER[example],
        "--storage-path",
        str(tmp_path),
        "--name",
        example,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "best config:" in out.stdout
    assert re.search(r"trials \d+/4 done", out.stdout)  # the progress line
    directory = tmp_path / example
    table = pd.read_parquet(directory / "results.parquet")
    assert len(table) == 4
    assert table["final_metric"].notna().all()

    shown = run("show", str(directory))
    assert shown.returncode == 0, shown.stderr
    assert "4 trials" in shown.stdout
    assert "best config:" in shown.stdout
