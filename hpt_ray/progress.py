"""A one-line progress display for the driver: trials done, running, failed, best so far."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any, TextIO

from ray.tune import Callback

from hpt_ray.results import ResultsWriter

# Statuses shown in the line only when some trial has them, with their label.
RARE_STATUSES: dict[str, str] = {
    "diverged": "diverged",
    "interrupted": "interrupted",
    "timeout": "timed out",
}


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
        counts = Counter(r.status for r in records)
        # Every status but running/pending ends a trial (results.STATUSES); the rarer ones are
        # named only when they occur, so the usual line stays short.
        done = sum(n for status, n in counts.items() if status not in ("running", "pending"))
        total = "?" if self.total is None or self.total < 0 else str(self.total)
        rare = [(s, label) for s, label in RARE_STATUSES.items() if counts[s]]
        best = ""
        scored = [(value, r.trial_id) for r in records if (value := r.final_metric) is not None]
        if scored:
            value, trial_id = max(scored) if self.writer.mode == "max" else min(scored)
            best = f" | best {self.writer.metric}={value:.5g} ({trial_id})"
        line = (
            f"[{time.monotonic() - self._start:6.1f}s] trials {done}/{total} done: "
            f"{counts['completed']} completed, {counts['stopped']} stopped early, "
            f"{counts['error']} failed, "
            + "".join(f"{counts[s]} {label}, " for s, label in rare)
            + f"{counts['running']} running{best}"
        )
        print(line, file=self.stream or sys.stdout, flush=True)
