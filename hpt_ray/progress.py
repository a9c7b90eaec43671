"""A one-line progress display for the driver: trials done, running, failed, best so far."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from hpt_ray.results import ResultsWriter


class ProgressPrinter(Callback):
    """Prints a status line at most every ``interval_s`` seconds and a last one at the end.

    Reads the ``ResultsWriter``'s records, so it adds no bookkeeping of its own to the driver loop.
    """

    def __init__(
        self,
        writer: ResultsWriter,
        *,
        total: int | None,
        interval_s: float = 2.0,
        stream: TextIO | None = None,
    ) -> None:
        self.writer = writer
        self.total = total
        self.interval_s = interval_s
        self.stream = stream
        self._start = time.monotonic()
        self._last = 0.0

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._maybe_print()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_print()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._maybe_print()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._print()

    def _maybe_print(self) -> None:
        if time.monotonic() - self._last >= self.interval_s:
            self._print()

    def _print(self) -> None:
        self._last = time.monotonic()
        records = list(self.writer.records.values())
        counts = {s: 0 for s in ("completed", "stopped", "error", "running")}
        for r in records:
            if r.status in counts:
                counts[r.status] += 1
        done = counts["completed"] + counts["stopped"] + counts["error"]
        total = "?" if self.total is None or self.total < 0 else str(self.total)
        finite = [r for r in records if r.final_metric is not None]
        best = ""
        if finite:
            pick = max if self.writer.mode == "max" else min
            top = pick(finite, key=lambda r: r.final_metric)
            best = f" | best {self.writer.metric}={top.final_metric:.5g} ({top.trial_id})"
        line = (
            f"[{time.monotonic() - self._start:6.1f}s] trials {done}/{total} done: "
            f"{counts['completed']} completed, {counts['stopped']} stopped early, "
            f"{counts['error']} failed, {counts['running']} running{best}"
        )
        print(line, file=self.stream or sys.stdout, flush=True)
