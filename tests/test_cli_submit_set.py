"""`hpt-ray submit --set`: the overrides are checked here, with the file, before any upload, and
travel to the job's `hpt-ray run` (the job itself runs in tests/test_cluster.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

from hpt_ray.cli import main

EXPERIMENT = {
    "model": "sklearn.linear_model:LogisticRegression",
    "data": "iris",
    "searcher": "random",
    "num_samples": 2,
    "space": {"C": {"loguniform": [0.01, 10.0]}},
}


def test_a_misspelled_set_fails_here_naming_the_field_before_any_connection(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    # Nothing listens on port 9: reaching the Jobs API would fail differently (and later).
    address = ["--address", "http://127.0.0.1:9", "--working-dir", str(tmp_path)]
    code = main(["submit", str(path), *address, "--set", "searcher=psoo"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "searcher" in err, err
    assert "psoo" in err, err
    assert "--set" in err, err  # where the bad value came from


def test_set_reaches_the_jobs_entrypoint(tmp_path):
    from hpt_ray.cluster import submit_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))

    class Recorder:  # stands in for the Jobs API client: only what it was asked to run matters
        def submit_job(self, **request):
            self.request = request
            return "job-1"

    client = Recorder()
    submission = submit_experiment(
        path,
        address="http://127.0.0.1:9",
        working_dir=tmp_path,
        overrides={"num_samples": 3},
        sets=["searcher=pso", "space.C.loguniform=[0.1, 1.0]"],
        python=sys.executable,
        client=client,
    )
    words = shlex.split(submission.entrypoint)
    assert words[words.index("--set") :] == [
        "--set",
        "searcher=pso",
        "--set",
        "space.C.loguniform=[0.1, 1.0]",
    ]
    assert words[words.index("--num-samples") + 1] == "3"
    assert client.request["entrypoint"] == submission.entrypoint
    assert Path(client.request["runtime_env"]["working_dir"]) == tmp_path.resolve()
