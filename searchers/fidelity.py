"""Per-trial fidelity bookkeeping for searchers under early-stopping schedulers. No Ray here.

Under ASHA or HyperBand a trial reports its metric after every epoch (or stage) and may be
stopped at any rung; its last result then reaches the searcher as an ordinary completion. A 1-epoch
loss and a 27-epoch loss are not comparable, so the cores (`searchers.gp`, `searchers.pso`,
`searchers.genetic`) keep each observation *at its fidelity* (the scheduler's time attribute,
``training_iteration`` by default) in a `FidelityBook` (issue #15):

- ``report(u, fidelity, value)``: an intermediate result of the trial running at unit point ``u``
  (O(1): one dict write; no model is fitted per epoch);
- ``complete(u, bad=...)``: the trial ended (finished, stopped by the scheduler, or errored); its
  *level* is the fidelity of its last report (-inf for a bad final result, +inf for a point that
  never reported one: a point evaluated elsewhere counts as fully trained).

Running trials are keyed by their unit point: the base never has two identical configs in flight,
and it computes the same ``u`` for a trial's reports and its completion.

Gate (what keeps FIFO runs unchanged): the book is *multi-fidelity* once a trial completed with a
valid result below the highest fidelity any trial has reported (`FidelityBook.multi_fidelity`).
With FIFO every trial ends at the same fidelity, so the gate never opens and the cores run their
old code path bit for bit; under ASHA it opens at the first trial the scheduler stops.

Notation: dim: space dimensions; u: (dim,) unit point; a curve: {fidelity: minimized value}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_FIDELITY_ATTR",
    "BookedCore",
    "FidelityBook",
    "better",
    "fidelity_of",
    "level_from_json",
    "level_to_json",
]

#: The scheduler's time attribute by default (``hpt_ray.schedulers.TIME_ATTR``; the searchers
#: import no hpt_ray, a test checks that the two agree).
DEFAULT_FIDELITY_ATTR = "training_iteration"

#: The level of a trial whose final result was bad (error, NaN, missing): below every fidelity.
BAD_LEVEL = -math.inf
#: The level of a point without fidelity (evaluated elsewhere): above every fidelity.
FULL_LEVEL = math.inf


def fidelity_of(result: Mapping[str, Any] | None, attr: str) -> float | None:
    """The finite real fidelity ``result[attr]`` (a nested ``a/b`` path too), or None."""
    if not isinstance(result, Mapping):
        return None
    node: Any = result.get(attr, _MISSING)
    if node is _MISSING:
        node = result
        for part in attr.split("/"):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
    if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, float, np.number)):
        return None
    value = float(node)
    return value if math.isfinite(value) else None


def better(level_a: float, value_a: float, level_b: float, value_b: float, lex: bool) -> bool:
    """Whether observation a beats b. ``lex`` (multi-fidelity): the higher level wins, and equal
    levels compare values (DEHB's comparison at equal fidelity, Awad et al. 2021: a trial the
    scheduler stopped at a rung loses to one that went past it). Else the values alone."""
    if lex and level_a != level_b:
        return level_a > level_b
    return value_a < value_b


class FidelityBook:
    """Curves of running trials and levels (and curves) of completed ones.

    ``keep_curves``: keep completed trials' curves (gp-ei models them; the population cores only
    need the level).
    """

    def __init__(self, *, keep_curves: bool = True) -> None:
        self.keep_curves = keep_curves
        self.running: dict[tuple[float, ...], dict[float, float]] = {}
        self.done_u: list[tuple[float, ...]] = []
        self.done_curves: list[dict[float, float]] = []
        self.done_levels: list[float] = []
        self.bad: set[tuple[float, ...]] = set()  # running trials whose final result was bad
        self.top = -math.inf  # highest fidelity reported by any trial
        self.lowest_valid_end = math.inf  # lowest level of a valid completion with a fidelity

    # ---- recording -------------------------------------------------------------------------
    def report(self, u: np.ndarray, fidelity: float, value: float) -> None:
        """Trial at ``u`` scored ``value`` (minimized, finite) at ``fidelity``. O(1)."""
        key = _key(u)
        curve = self.running.get(key)
        if curve is None:
            curve = self.running[key] = {}
        curve[float(fidelity)] = float(value)
        if fidelity > self.top:
            self.top = float(fidelity)

    def report_bad(self, u: np.ndarray) -> None:
        """The trial at ``u`` ends with a bad result (error, NaN, missing metric): its level is
        `BAD_LEVEL` at `complete`, whatever it reported before."""
        self.bad.add(_key(u))

    def complete(self, u: np.ndarray) -> float:
        """The trial at ``u`` ended; returns its level (see the module docstring)."""
        key = _key(u)
        curve = self.running.pop(key, None)
        if key in self.bad:
            self.bad.discard(key)
            level = BAD_LEVEL
        elif not curve:
            level = FULL_LEVEL
        else:
            level = max(curve)
            self.lowest_valid_end = min(self.lowest_valid_end, level)
        self.done_levels.append(level)
        if self.keep_curves:
            self.done_u.append(key)
            self.done_curves.append(curve or {})
        return level

    # ---- queries ---------------------------------------------------------------------------
    @property
    def multi_fidelity(self) -> bool:
        """A valid completion ended below the highest fidelity seen (the gate; monotone)."""
        return self.lowest_valid_end < self.top

    def curves(self) -> list[tuple[tuple[float, ...], dict[float, float], float | None]]:
        """(u, curve, level) of every trial, completed first; a running one has level None."""
        out: list[tuple[tuple[float, ...], dict[float, float], float | None]] = list(
            zip(self.done_u, self.done_curves, self.done_levels, strict=True)
        )
        out.extend((u, c, None) for u, c in self.running.items())
        return out

    def at_fidelity(self, min_points: int) -> float | None:
        """The highest fidelity at which at least ``min_points`` trials reported (None: none).

        BOHB's rule (Falkner et al. 2018): model the highest budget that has enough points.
        """
        counts: dict[float, int] = {}
        for _, curve, _ in self.curves():
            for f in curve:
                counts[f] = counts.get(f, 0) + 1
        enough = [f for f, n in counts.items() if n >= min_points]
        return max(enough) if enough else None

    # ---- state -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "keep_curves": self.keep_curves,
            "running": [[list(u), _curve_to_json(c)] for u, c in self.running.items()],
            "done_u": [list(u) for u in self.done_u],
            "done_curves": [_curve_to_json(c) for c in self.done_curves],
            "done_levels": [level_to_json(v) for v in self.done_levels],
            "bad": [list(u) for u in self.bad],
            "top": level_to_json(self.top),
            "lowest_valid_end": level_to_json(self.lowest_valid_end),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, *, keep_curves: bool) -> FidelityBook:
        """Rebuild; None (a state saved before issue #15) gives an empty book."""
        book = cls(keep_curves=keep_curves)
        if state is None:
            return book
        book.keep_curves = bool(state["keep_curves"])
        book.running = {_key(u): _curve_from_json(c) for u, c in state["running"]}
        book.done_u = [_key(u) for u in state["done_u"]]
        book.done_curves = [_curve_from_json(c) for c in state["done_curves"]]
        book.done_levels = [level_from_json(v) for v in state["done_levels"]]
        book.bad = {_key(u) for u in state["bad"]}
        book.top = level_from_json(state["top"])
        book.lowest_valid_end = level_from_json(state["lowest_valid_end"])
        return book


def level_to_json(v: float) -> float | str:
    """A level as JSON (infinities as strings: the state is written with ``allow_nan=False``)."""
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def level_from_json(v: float | str) -> float:
    return float(v)


_MISSING: Any = object()


def _key(u: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(u, dtype=np.float64).ravel())


def _curve_to_json(curve: Mapping[float, float]) -> list[list[float]]:
    return [[f, v] for f, v in curve.items()]


def _curve_from_json(data: list[list[float]]) -> dict[float, float]:
    return {float(f): float(v) for f, v in data}


class BookedCore:
    """The `searchers.base.FidelityAware` side of a core that keeps its observations in a
    `FidelityBook` (``self._book``) and reads its ``fidelity_attr`` option from ``self._opt``:
    gp-ei, pso and genetic inherit it."""

    _opt: Any
    _book: FidelityBook

    @property
    def fidelity_attr(self) -> str | None:
        return self._opt.fidelity_attr  # type: ignore[no-any-return]

    def report(self, u: np.ndarray, fidelity: float, value: float) -> None:
        self._book.report(u, fidelity, value)

    def report_bad(self, u: np.ndarray) -> None:
        self._book.report_bad(u)
