"""The Ray Tune adapters of ``auto`` (the portfolio of `searchers.portfolio`, with warm starts
from `searchers.warm_start`) and of our own ``tpe`` (`searchers.tpe`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from searchers.adapters import CoreSearcher
from searchers.portfolio import AutoOptions, PortfolioCore
from searchers.tpe import TPECore, TPEOptions
from searchers.validation import Interval, check

if TYPE_CHECKING:
    from searchers.warm_start import WarmStartReport, WarmTrials

__all__ = ["AutoSearcher", "TPESearcher"]


class AutoSearcher(CoreSearcher):
    """Ray Tune searcher for `PortfolioCore` (``make_searcher("auto", seed=..., **options)``).

    ``options`` are the fields of `AutoOptions` (``members``, ``discount``, ...) and
    ``warm_start``: an earlier experiment's directory (or its ``results.parquet``), a pandas
    DataFrame with ``config/<name>`` columns and the metric, or a list of
    ``{"config": {...}, "value": float}`` records. Its trials are told to every member before the
    first suggestion (`searchers.warm_start`: what fits the space is used, what does not is skipped
    with one logged note per reason), and its ``warm_start_replay`` best configs (default 3) are
    the first suggestions, re-evaluated on this task.
    """

    searcher_name = "auto"
    core_class = PortfolioCore
    options_class = AutoOptions

    def __init__(
        self, *, warm_start: Any = None, warm_start_replay: int = 3, **kwargs: Any
    ) -> None:
        from searchers.warm_start import load_trials

        check("warm_start_replay", warm_start_replay, Interval(int, 0, None))
        self._replay = int(warm_start_replay)
        # Read now, so a missing file or a bad source fails before any trial; told to the members
        # at the first suggestion, once the space and the metric are known.
        self._warm: WarmTrials | None = None if warm_start is None else load_trials(warm_start)
        self._warm_report: WarmStartReport | None = None
        super().__init__(**kwargs)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self._warm is not None and self._space is not None:
            from searchers.warm_start import tell_warm_start

            warm, self._warm = self._warm, None
            self._warm_report = tell_warm_start(self, warm)
            # The best earlier configs are re-evaluated first (auto-sklearn's meta-learned initial
            # design, Feurer et al. 2015): on a related task the old optimum is rarely far off, and
            # its new value tells the model how the two tasks' scales compare.
            sign = -1.0 if self.mode == "max" else 1.0
            best = sorted(self._warm_report.trials, key=lambda t: sign * t[1])[: self._replay]
            space = self._ready_space()
            self._points = [space.encode(config) for config, _ in best] + self._points
        return super().suggest(trial_id)

    @property
    def warm_start_report(self) -> WarmStartReport | None:
        """What the warm start used and skipped (None before the first suggestion or without
        one)."""
        return self._warm_report

    @property
    def portfolio(self) -> PortfolioCore:
        """The running portfolio (its members' suggestion counts and credit)."""
        core = self._ready_core()
        if not isinstance(core, PortfolioCore):
            raise RuntimeError("internal: auto's core is not a portfolio")
        return core

    def _algorithm_state(self) -> dict[str, Any]:
        state = super()._algorithm_state()
        if self._warm is not None:  # saved before the first suggestion: keep what is untold
            state["warm_start"] = {
                "trials": [[config, value] for config, value in self._warm.trials],
                "metric": self._warm.metric,
                "skipped": dict(self._warm.skipped),
                "source": self._warm.source,
            }
        return state

    def _load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        from searchers.warm_start import WarmTrials

        super()._load_algorithm_state(state)
        # The saved history already holds a warm start told before the save; one saved untold
        # is told at the next suggestion. Either way the constructor's copy is not told again.
        saved = state.get("warm_start")
        self._warm = None
        if saved is not None:
            self._warm = WarmTrials(
                trials=[(dict(c), float(v)) for c, v in saved["trials"]],
                metric=saved["metric"],
                skipped=Counter(saved["skipped"]),
                source=saved["source"],
            )


class TPESearcher(CoreSearcher):
    """Ray Tune searcher for our own `searchers.tpe.TPECore` (``make_searcher("tpe", seed=...)``):
    multivariate TPE with a constant liar for pending trials; options are `TPEOptions`' fields.
    (``optuna-tpe`` and ``hyperopt-tpe`` are the libraries' own, wrapped.)"""

    searcher_name = "tpe"
    core_class = TPECore
    options_class = TPEOptions
