"""The experiment's objective, one metric and a mode: a reported value read as a score, which of
two scores is better, and the error for a metric the trainable does not report.

Used alike by the results writer, the scheduler wrapper, the run's pre-flight check and the
reports; it imports nothing of ours, so any of them can import it.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

from searchers.validation import InvalidParameterError


class MetricNotReportedError(InvalidParameterError):
    """The experiment's metric is not among the keys the trainable reports."""


def missing_metric_message(metric: str, keys: list[str], *, who: str) -> str:
    """The message for a metric that ``who`` does not report: the keys it does, the closest.

    >>> missing_metric_message("val_acc", ["val_accuracy", "loss"], who="trial t1")
    "metric: trial t1 does not report 'val_acc'; it reports ...; did you mean 'val_accuracy'?"
    """
    close = difflib.get_close_matches(metric, keys, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(repr(k) for k in sorted(keys)) or "none"
    return f"metric: {who} does not report {metric!r}; it reports {shown}{hint}"


def finite_metric(value: Any) -> float | None:
    """The metric as a float, or None when it is missing, not a number, NaN or infinite.

    A bool is not a score (``True`` would rank as 1.0); a numeric string is one.

    >>> finite_metric(3), finite_metric("0.25"), finite_metric(float("nan")), finite_metric(True)
    (3.0, 0.25, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def better(a: float, b: float, mode: str) -> bool:
    """Whether score ``a`` is strictly better than ``b`` in ``mode`` ("max" or "min")."""
    return a > b if mode == "max" else a < b
