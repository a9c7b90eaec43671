"""The driver's progress display: trials done, running, stopped, failed, best so far, and an ETA.

On a terminal it is a live ``tqdm`` bar, redrawn in place; anywhere else (CI logs, files, pytest's
capture) it stays a plain status line every few seconds, with no carriage returns or escape codes,
so a log reads top to bottom.

The ETA is the sooner of two estimates, and the bar names the one that binds:
- trials: ``(num_samples - done) * mean duration of the ended trials / concurrency``, where the
  concurrency is the most trials seen running at once; unknown ("?") before a trial has ended;
- time budget: ``time_budget_s`` minus the time spent, when the run has one.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from ray.tune import Callback
from tqdm import tqdm

from hpt_ray.results import ResultsWriter
from hpt_ray.trial_log import TrialRecord

# Statuses shown in the line only when some trial has them, with their label.
RARE_STATUSES: dict[str, str] = {
    "diverged": "diverged",
    "interrupted": "interrupted",
    "timeout": "timed out",
}
# A bar is redrawn at most this often; often enough for the elapsed time and ETA to tick.
BAR_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Eta:
    """Seconds left (None: unknown) and what binds them: "trials" or "time budget"."""

    seconds: float | None
    basis: str | None

    def text(self) -> str:
        if self.seconds is None:
            return "eta ?"
        return f"eta {tqdm.format_interval(self.seconds)} ({self.basis})"


class ProgressPrinter(Callback):
    """Shows progress at most every ``interval_s`` seconds (a bar: every ``BAR_INTERVAL_S``) and a
    last time at the end.

    Reads the ``ResultsWriter``'s records, so it adds no bookkeeping of its own to the driver loop.
    ``stream`` defaults to ``sys.stdout``; a bar is drawn only when ``stream.isatty()``.
    """

    def __init__(
        self,
        writer: ResultsWriter,
        *,
        total: int | None,
        time_budget_s: float | None = None,
        interval_s: float = 2.0,
        stream: TextIO | None = None,
    ) -> None:
        self.writer = writer
        self.total = total if total is not None and total >= 0 else None
        self.time_budget_s = time_budget_s
        self.interval_s = interval_s
        self.stream = stream
        self._start = time.monotonic()
        self._last = 0.0
        self._peak_running = 0
        self._bar: tqdm | None = None

    def setup(
        self,
        stop: Any = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        # The clock starts with the run, also a resumed one (this object comes back unpickled).
        self._start = time.monotonic()
        self._last = 0.0

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Only the bar ticks between events; plain lines come with trial events, as before.
        if self._bar is not None:
            self._maybe_print()

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
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles its callbacks with the experiment; a live bar holds the terminal.
        return {**self.__dict__, "_bar": None}

    # -- helpers ---------------------------------------------------------------------------------
    def _maybe_print(self) -> None:
        interval = BAR_INTERVAL_S if self._is_tty() else self.interval_s
        if time.monotonic() - self._last >= interval:
            self._print()

    def _print(self) -> None:
        self._last = time.monotonic()
        records = list(self.writer.records.values())
        counts = Counter(r.status for r in records)
        self._peak_running = max(self._peak_running, counts["running"])
        if self._is_tty():
            self._draw_bar(records, counts)
        else:
            print(self._line(records, counts), file=self._stream(), flush=True)

    def _line(self, records: list[TrialRecord], counts: Counter[str]) -> str:
        total = "?" if self.total is None else str(self.total)
        return (
            f"[{time.monotonic() - self._start:6.1f}s] trials {done_count(counts)}/{total} done: "
            + self._counts_text(counts)
            + self._best_text(records)
        )

    def _draw_bar(self, records: list[TrialRecord], counts: Counter[str]) -> None:
        if self._bar is None:
            meter = "{percentage:3.0f}%|{bar}| " if self.total is not None else ""
            self._bar = tqdm(
                total=self.total,
                file=self._stream(),
                desc="trials",
                unit="trial",
                # tqdm puts ", " before the postfix: "3/8 [00:12, eta 00:25 (trials) | ...]".
                bar_format="{desc} " + meter + "{n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                mininterval=0,
            )
        eta = estimate_eta(
            records,
            total=self.total,
            time_budget_s=self.time_budget_s,
            elapsed_s=time.monotonic() - self._start,
            concurrency=self._peak_running,
        )
        self._bar.n = done_count(counts)
        # Fit the terminal's width as it is now. A terminal of unknown size (a pty that reports
        # 0x0, as under `script`) gets no trimming: tqdm reads 0 columns and -1 rows there and
        # prints nothing at all.
        self._bar.ncols = terminal_columns(self._stream())
        self._bar.nrows = None
        # Most telling first: a narrow terminal cuts the line's end.
        self._bar.set_postfix_str(
            eta.text() + self._best_text(records) + " | " + self._counts_text(counts),
            refresh=False,
        )
        self._bar.refresh()

    def _counts_text(self, counts: Counter[str]) -> str:
        # Every status but running/pending ends a trial (table.STATUSES); the rarer ones are
        # named only when they occur, so the usual line stays short.
        rare = [(s, label) for s, label in RARE_STATUSES.items() if counts[s]]
        return (
            f"{counts['completed']} completed, {counts['stopped']} stopped early, "
            f"{counts['error']} failed, "
            + "".join(f"{counts[s]} {label}, " for s, label in rare)
            + f"{counts['running']} running"
        )

    def _best_text(self, records: list[TrialRecord]) -> str:
        scored = [(value, r.trial_id) for r in records if (value := r.final_metric) is not None]
        if not scored:
            return ""
        value, trial_id = max(scored) if self.writer.mode == "max" else min(scored)
        return f" | best {self.writer.metric}={value:.5g} ({trial_id})"

    def _stream(self) -> TextIO:
        return self.stream or sys.stdout

    def _is_tty(self) -> bool:
        isatty = getattr(self._stream(), "isatty", None)
        return bool(isatty and isatty())


def terminal_columns(stream: TextIO) -> int | None:
    """The width of the terminal behind ``stream``, or None when it has none or reports 0."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal
        return None
    return columns or None


def done_count(counts: Counter[str]) -> int:
    """Trials that ended, in any way (every status but running and pending)."""
    return sum(n for status, n in counts.items() if status not in ("running", "pending"))


def estimate_eta(
    records: Iterable[TrialRecord],
    *,
    total: int | None,
    time_budget_s: float | None,
    elapsed_s: float,
    concurrency: int,
) -> Eta:
    """Seconds left: the sooner of the trials' estimate and the time budget (module docstring)."""
    records = list(records)
    ended = [r.wall_time_s for r in records if r.status not in ("running", "pending")]
    by_trials = None
    if total is not None and ended:
        left = max(total - len(ended), 0)
        by_trials = left * (sum(ended) / len(ended)) / max(concurrency, 1)
    by_budget = None if time_budget_s is None else max(time_budget_s - elapsed_s, 0.0)
    if by_budget is not None and (by_trials is None or by_budget < by_trials):
        return Eta(by_budget, "time budget")
    if by_trials is not None:
        return Eta(by_trials, "trials")
    return Eta(None, None)
