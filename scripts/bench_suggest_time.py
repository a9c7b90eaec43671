"""Suggest time after N observations, as in a real run's driver (issue #16).

Usage (from the repository root)::

    .venv/bin/python scripts/bench_suggest_time.py --searchers gp-ei optuna-gp ax-botorch hebo \\
        --observations 100 500 --threads default 1 --busy 0 2 --repeats 20

For each searcher, N (``--observations``), BLAS/torch thread setting (``--threads``) and number of
busy cores (``--busy``), one fresh process (spawned, so that thread pools start as configured):

1. builds the searcher (seed 0) on a 6-d space (hartmann6's, ``--problem`` to change it) and
   feeds it N observations through ``Searcher.add_evaluated_point``: configs drawn uniformly
   on the unit cube (seed 0), with their objective values;
2. makes one untimed suggest (SMAC's initial design is kept to that one config, see `measure`),
   then times ``--repeats`` suggests; each suggested trial is completed with its value before
   the next suggest, so the i-th timed call has seen N + 1 + i observations.

Thread settings: ``default`` changes nothing (a driver where nobody sets thread variables: BLAS
and torch use every core), ``1`` limits BLAS (threadpoolctl) and torch to one thread. Busy
cores: ``B`` processes spin on pure-Python loops while the suggests are timed (a run whose trials
keep every core busy), started after the observations are fed and stopped right after.

Outputs the table (median, p95 and max of the timed suggests, in seconds, plus the seconds to
feed the N observations) and ``--out`` JSON with every time. A searcher whose library is not
installed is skipped with its install hint.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Measure", "main", "measure"]

METRIC = "loss"
WARMUP = 1  # untimed suggests after the observations are fed (see `measure`)


@dataclass(frozen=True)
class Measure:
    """One measurement: a searcher after `observations` observations, `threads` ("default" or
    "1") and `busy` spinning processes; seconds of each timed suggest."""

    searcher: str
    problem: str
    observations: int
    threads: str
    busy: int
    repeats: int
    feed_s: float = 0.0
    suggest_s: tuple[float, ...] = ()
    error: str | None = None


def measure(m: Measure) -> Measure:
    """Run one measurement in this process (call it in a fresh one: thread pools)."""
    if m.threads == "1":
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        import torch

        torch.set_num_threads(1)
    import bench_searchers as bench

    problem = bench.get_bench_problem(m.problem)
    space = problem.space()
    # budget (read by the SMAC anchors only, as Scenario.n_trials): SMAC asks its Sobol initial
    # design (a quarter of n_trials) even after N observations were added, so a small budget
    # keeps that design to one config, which the untimed warm-up suggest takes; the timed
    # suggests are then the model's. Ax and HEBO count the added observations themselves.
    searcher = bench.build_searcher(m.searcher, seed=0, budget=4, pending=1, space=space)
    searcher.set_search_properties(METRIC, "min", space)
    from searchers.tune_domains import from_ray

    unit_space = from_ray(space)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(m.observations):
        config = unit_space.sample(rng)
        searcher.add_evaluated_point(config, problem.value(config))
    feed_s = time.perf_counter() - t0
    for i in range(WARMUP):  # untimed
        config = searcher.suggest(f"warmup_{i}")
        if config is not None:
            searcher.on_trial_complete(f"warmup_{i}", {METRIC: problem.value(config)})
    spinners = _start_spinners(m.busy)
    times = []
    try:
        for i in range(m.repeats):
            t0 = time.perf_counter()
            config = searcher.suggest(f"timed_{i}")
            times.append(time.perf_counter() - t0)
            if config is None:
                continue
            searcher.on_trial_complete(f"timed_{i}", {METRIC: problem.value(config)})
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    return Measure(**{**asdict(m), "feed_s": feed_s, "suggest_s": tuple(times)})


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x = (x * 1103515245 + 12345) % 2147483648


def _start_spinners(n: int) -> list[multiprocessing.process.BaseProcess]:
    # Bounded: a spinner stops by itself after an hour if this process dies without stopping it.
    context = multiprocessing.get_context("spawn")
    spinners = [context.Process(target=_spin, args=(3600.0,), daemon=True) for _ in range(n)]
    for p in spinners:
        p.start()
    return spinners


def _run_isolated(m: Measure, timeout: float) -> Measure:
    """`measure` in a spawned process (clean thread pools; not a Pool worker, as those may not
    start the busy-core spinners), errors returned as data."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_measure_child, args=(m, results))
    child.start()
    try:
        result = results.get(timeout=timeout)
    except queue.Empty:  # hung or killed: the table says so
        result = {**asdict(m), "error": f"no result within {timeout:.0f}s (exit {child.exitcode})"}
        child.terminate()
    child.join()
    return Measure(**result)


def _measure_child(m: Measure, results: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        results.put(asdict(measure(m)))
    # A searcher that fails on a setting is a finding for the table, as in bench_searchers.
    except Exception as exc:
        results.put({**asdict(m), "error": f"{type(exc).__name__}: {exc}"[:200]})


def render(measures: Sequence[Measure]) -> str:
    lines = [
        "| searcher | observations | threads | busy cores | feed s | suggest p50 s | p95 s | "
        "max s | suggests |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in measures:
        if m.error:
            lines.append(
                f"| {m.searcher} | {m.observations} | {m.threads} | {m.busy} | — | {m.error} |"
                " | | |"
            )
            continue
        s = np.array(m.suggest_s)  # (repeats,)
        lines.append(
            f"| {m.searcher} | {m.observations} | {m.threads} | {m.busy} | {m.feed_s:.1f} | "
            f"{np.median(s):.3f} | {np.percentile(s, 95):.3f} | {s.max():.3f} | {s.size} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searchers", nargs="+", required=True)
    parser.add_argument("--problem", default="hartmann6")
    parser.add_argument("--observations", nargs="+", type=int, default=[100, 500])
    parser.add_argument("--threads", nargs="+", choices=["default", "1"], default=["default", "1"])
    parser.add_argument("--busy", nargs="+", type=int, default=[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed suggests per setting")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds per measurement before giving up"
    )
    parser.add_argument("--out", type=Path, default=Path("bench_results/suggest_time.json"))
    args = parser.parse_args(argv)
    for name, value in (
        ("repeats", args.repeats),
        *(("observations", n) for n in args.observations),
    ):
        if value < 1:
            raise SystemExit(f"bench_suggest_time.py: error: {name} must be >= 1, got {value}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_searchers as bench

    measures: list[Measure] = []
    for name in args.searchers:
        missing = bench._missing_modules(name)
        if missing:
            print(f"skipping {name}: needs {', '.join(missing)}", file=sys.stderr)
            continue
        for n in args.observations:
            for threads in args.threads:
                for busy in args.busy:
                    m = _run_isolated(
                        Measure(name, args.problem, n, threads, busy, args.repeats), args.timeout
                    )
                    measures.append(m)
                    print(render([m]).splitlines()[-1], file=sys.stderr, flush=True)
    table = render(measures)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "version": 1,
        "command": "python scripts/bench_suggest_time.py " + " ".join(sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "measures": [asdict(m) for m in measures],
    }
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
