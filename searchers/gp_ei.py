"""Ray Tune adapter of the GP Expected-Improvement core (``make_searcher("gp-ei", seed=...)``).

The algorithm lives in `searchers.gp` (kernel, model, acquisition, optimizer, core); this file only
says which core the shared `searchers.base.BaseSearcher` drives.
"""

from __future__ import annotations

from searchers.base import CoreSearcher
from searchers.gp.core import GPEICore, GPEIOptions

__all__ = ["GPEIOptions", "GPEISearcher"]


class GPEISearcher(CoreSearcher):
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
    core_class = GPEICore
    options_class = GPEIOptions
