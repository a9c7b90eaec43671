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

    ``options`` are the fields of `AutoOptions` (``members``, ``credit``, ``eta``, ...) and
    ``warm_start``: an earlier experiment's directory (or its ``results.parquet``), a pandas
    DataFrame with ``config/<name>`` columns and the metric, or a list of
    ``{"config": {...}, "value": float}`` records (`searchers.warm_start`: what fits the space is
    used, what does not is skipped with one logged note per reason).

    How it is used, measured on related tasks (``scripts/bench_warm_start.py``, BENCHMARKS.md):
    ``warm_start_replay`` of its best configs (default: as many as the warm-up design, so they
    replace it) are the first suggestions, re-evaluated on this task, as auto-sklearn's
    meta-learned initial design (Feurer et al., AAAI 2015). The earlier *values* are told to the
    members only with ``warm_start_tell=True``: right when the objective is the same one (an
    experiment continued), wrong on a related one, whose values differ in scale and noise (on
    3 related pairs, 3 seeds: 5 of 9 warm runs reached the cold run's final best within a third
    of its trials by replay alone, 1 of 9 with the values told as well).
    """

    searcher_name = "auto"
    core_class = PortfolioCore
    options_class = AutoOptions

    def __init__(
        self,
        *,
        warm_start: Any = None,
        warm_start_replay: int | None = None,
        warm_start_tell: bool = False,
        **kwargs: Any,
    ) -> None:
        from searchers.warm_start import load_trials

        check("warm_start_replay", warm_start_replay, Interval(int, 0, None), None)
        self._replay = warm_start_replay
        self._warm_tell = bool(warm_start_tell)
        # Read now, so a missing file or a bad source fails before any trial; told to the members
        # at the first suggestion, once the space and the metric are known.
        self._warm: WarmTrials | None = None if warm_start is None else load_trials(warm_start)
        self._warm_report: WarmStartReport | None = None
        super().__init__(**kwargs)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if self._warm is not None and self._space is not None:
            from searchers.warm_start import tell_warm_start

            warm, self._warm = self._warm, None
            self._warm_report = tell_warm_start(
                self, warm, tell=self._warm_tell, fill=self._fallback_rng
            )
            # The best earlier configs are re-evaluated first (see the class docstring).
            sign = -1.0 if self.mode == "max" else 1.0
            space = self._ready_space()
            replay = self._replay
            if replay is None:
                replay = self.options.initial_points(space.dim)
            best = sorted(self._warm_report.trials, key=lambda t: sign * t[1])[:replay]
            self._points = [space.encode(config) for config, _ in best] + self._points
        return super().suggest(trial_id)

    @property
    def warm_start_report(self) -> WarmStartReport | None:
        """What the warm start used and skipped (None before the first suggestion or without
        one)."""
        return self._warm_report

    @property
    def portfolio(self) -> PortfolioCore:
        """The running portfolio (its members' suggestion counts and standing)."""
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
