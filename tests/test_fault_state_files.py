"""Faults around state files: a searcher restored in a fresh process; a writer killed mid-write.

Each fault runs in a subprocess, as a real crash would: the process dies where the test says, and
a second process reads what the first left on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hpt_ray.table import read_results, write_results

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[1]
SEARCHERS = ["random", "pso", "genetic", "optuna-tpe"]

SPACE = """
from ray import tune
SPACE = {"x": tune.uniform(-2.0, 2.0), "n": tune.randint(1, 8), "c": tune.choice(["a", "b", "c"])}
def loss(config):
    cost = {"a": 0.0, "b": 0.3, "c": 0.6}[config["c"]]
    return (config["x"] - 0.5) ** 2 + 0.1 * config["n"] + cost
"""


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def fresh_process_restores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """For every searcher in SEARCHERS: the pending config process 1 saved with, the
    uninterrupted reference, and what a fresh process 2 suggested after restoring the file.

    Process 1 saves every searcher mid-run and dies; process 2 restores them all. One pair of
    processes serves every searcher (starting Python with Ray and the libraries costs seconds
    each; three processes per searcher took ~12 s each in CI). Each searcher's failure is caught
    and reported by its own test case.
    """
    directory = tmp_path_factory.mktemp("fresh-restore")
    names = json.dumps(SEARCHERS)
    # Process 1: per searcher, 6 trials complete, trial t6 is suggested but still pending; save.
    # Then the uninterrupted reference of it, on its own searcher object: same seed, same calls,
    # then two more steps. The process dies after the last save (os._exit: no clean-up runs).
    first = python(f"""
        import json, os, traceback
        import searchers
        {textwrap.indent(SPACE, "        ").strip()}
        out = {{}}
        for name in {names}:
            try:
                s = searchers.make_searcher(name, seed=7)
                s.set_search_properties("loss", "min", SPACE)
                for i in range(6):
                    cfg = s.suggest(f"t{{i}}")
                    s.on_trial_complete(f"t{{i}}", {{"loss": loss(cfg)}})
                pending = s.suggest("t6")
                s.save(os.path.join({str(directory)!r}, name + ".json"))
                ref = searchers.make_searcher(name, seed=7)
                ref.set_search_properties("loss", "min", SPACE)
                for i in range(6):
                    cfg = ref.suggest(f"t{{i}}")
                    ref.on_trial_complete(f"t{{i}}", {{"loss": loss(cfg)}})
                ref_pending = ref.suggest("t6")
                ref.on_trial_complete("t6", {{"loss": loss(ref_pending)}})
                nxt = [ref.suggest("t7"), ref.suggest("t8")]
                reference = {{"pending": ref_pending, "next": nxt}}
                out[name] = {{"pending": pending, "reference": reference}}
            except Exception:
                out[name] = {{"error": traceback.format_exc()}}
        print(json.dumps(out))
        os._exit(0)
    """)
    assert first.returncode == 0, first.stderr[-2000:]
    saved = json.loads(first.stdout.strip().splitlines()[-1])
    # Process 2: a fresh searcher restores each file, completes the pending trial, suggests on.
    restored = python(f"""
        import json, os, traceback
        import searchers
        {textwrap.indent(SPACE, "        ").strip()}
        out = {{}}
        for name, pending in {json.dumps({n: v.get("pending") for n, v in saved.items()})}.items():
            try:
                s = searchers.make_searcher(name, seed=7)
                s.set_search_properties("loss", "min", SPACE)
                s.restore(os.path.join({str(directory)!r}, name + ".json"))
                s.on_trial_complete("t6", {{"loss": loss(pending)}})
                out[name] = {{"next": [s.suggest("t7"), s.suggest("t8")]}}
            except Exception:
                out[name] = {{"error": traceback.format_exc()}}
        print(json.dumps(out))
    """)
    assert restored.returncode == 0, restored.stderr[-2000:]
    got = json.loads(restored.stdout.strip().splitlines()[-1])
    return {name: {"saved": saved[name], "restored": got.get(name)} for name in SEARCHERS}


@pytest.mark.parametrize("name", SEARCHERS)
def test_restored_in_a_fresh_process_continues_exactly(fresh_process_restores, name):
    saved = fresh_process_restores[name]["saved"]
    assert "error" not in saved, saved.get("error")
    restored = fresh_process_restores[name]["restored"]
    assert restored is not None, f"{name} was not restored"
    assert "error" not in restored, restored.get("error")
    pending, ref = saved["pending"], saved["reference"]
    assert ref["pending"] == pending
    assert restored["next"] == ref["next"]


def test_results_writer_killed_mid_write_keeps_previous_file(tmp_path):
    write_results(pd.DataFrame({"trial_id": ["a", "b"], "final_metric": [1.0, 2.0]}), tmp_path)
    # The process dies (SIGKILL-like os._exit) half-way through writing the new table: at the
    # temp file's fsync, with half of its bytes on disk (searchers.files.atomic_write).
    crashed = python(f"""
        import os
        import pandas as pd
        from hpt_ray import table
        def dying_fsync(fd):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os._exit(9)
        os.fsync = dying_fsync
        frame = pd.DataFrame({{"trial_id": ["a", "b", "c"], "final_metric": [1.0, 2.0, 3.0]}})
        table.write_results(frame, {str(tmp_path)!r})
    """)
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    # The half-written temp file is there (the crash came mid-write), the table is the old one.
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".results-")]
    table = read_results(tmp_path)
    assert list(table["trial_id"]) == ["a", "b"]


@pytest.mark.parametrize("name", ["random", "pso", "genetic"])
def test_searcher_state_killed_mid_write_keeps_previous_file(tmp_path, name):
    state = tmp_path / "searcher.json"
    crashed = python(f"""
        import json, os
        import searchers
        {textwrap.indent(SPACE, "        ").strip()}
        s = searchers.make_searcher({name!r}, seed=1)
        s.set_search_properties("loss", "min", SPACE)
        for i in range(3):
            cfg = s.suggest(f"t{{i}}")
            s.on_trial_complete(f"t{{i}}", {{"loss": loss(cfg)}})
        s.save({str(state)!r})
        for i in range(3, 6):
            cfg = s.suggest(f"t{{i}}")
            s.on_trial_complete(f"t{{i}}", {{"loss": loss(cfg)}})
        def dying_fsync(fd):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os._exit(9)
        os.fsync = dying_fsync
        s.save({str(state)!r})
    """)
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    # The kill hit mid-write: a partial temp file is left, the state file itself is whole.
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".searcher-")]
    saved = json.loads(state.read_text())
    assert saved["version"] >= 1
    from ray import tune

    import searchers

    fresh = searchers.make_searcher(name, seed=1)
    fresh.set_search_properties(
        "loss",
        "min",
        {"x": tune.uniform(-2.0, 2.0), "n": tune.randint(1, 8), "c": tune.choice(["a", "b", "c"])},
    )
    fresh.restore(str(state))
    assert fresh.suggest("after") is not None
