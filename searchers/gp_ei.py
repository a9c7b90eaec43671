"""Ray Tune adapter of the GP Expected-Improvement core (``make_searcher("gp-ei", seed=...)``).

The algorithm lives in `searchers.gp` (kernel, model, acquisition, optimizer, core); this file only
says which core the shared `searchers.base.BaseSearcher` drives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchers.base import BaseSearcher
from searchers.core import SearchCore
from searchers.gp.core import GPEICore, GPEIOptions
from searchers.population import options_from
from searchers.space import SearchSpace

__all__ = ["GPEIOptions", "GPEISearcher"]


class GPEISearcher(BaseSearcher):
    """Ray Tune searcher for `GPEICore` (``make_searcher("gp-ei", seed=..., **options)``).

    ``options`` are the fields of `GPEIOptions`. The first ``n_initial`` trials follow a scrambled
    Sobol design (``points_to_evaluate`` and ``add_evaluated_point`` count toward it); then each
    suggestion maximizes log expected improvement under a Matérn-5/2 GP, conditioned on the trials
    still running (kriging believer), so concurrent trials spread out.

    Bad results follow the base policy: an errored, missing or non-finite metric is imputed with
    the worst finite value seen so far (dropped while none is known). For a GP that is the right
    signal ("do not go there") and a bounded one: outputs are warped (robust centring and a
    clipped Yeo-Johnson transform) before standardization, so repeated worst values cannot stretch
    the scale and flatten the good region.

    Early-stopped trials (ASHA and other schedulers): ``on_trial_complete`` brings the trial's
    last, low-fidelity result, and it is kept as an ordinary observation. The scheduler stopped
    the trial because it was behind its peers at that rung, so its final value would most likely
    have been worse than theirs too; the truncated value is pessimistic about the config, which
    is consistent with the bad-result policy (a point imputed as worse than seen is avoided, not
    retried), and dropping it would make the GP suggest the same poor region again.
    """

    searcher_name = "gp-ei"

    def __init__(
        self,
        *,
        space: Any = None,
        metric: str | None = None,
        mode: str | None = None,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        seed: int | None = None,
        duplicate_retries: int = 16,
        random_retries: int = 64,
        **options: Any,
    ) -> None:
        self.options: GPEIOptions = options_from(GPEIOptions, self.searcher_name, options)
        super().__init__(
            space=space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate,
            seed=seed, duplicate_retries=duplicate_retries, random_retries=random_retries,
        )

    def _make_core(self, space: SearchSpace, rng: np.random.Generator) -> SearchCore:
        return GPEICore(space, rng=rng, options=self.options)

    def _core_from_state(self, space: SearchSpace, state: dict[str, Any]) -> SearchCore:
        return GPEICore.from_state(space, state)
