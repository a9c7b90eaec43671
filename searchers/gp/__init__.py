"""The Gaussian-process Expected-Improvement core, split by concern. No Ray here.

- `searchers.gp.kernel`: input features (one-hot categoricals) and the Matérn-5/2 ARD kernel;
- `searchers.gp.model`: output warping, hyperparameter fit, posterior, kriging-believer fantasies;
- `searchers.gp.acquisition`: log expected improvement and its gradient;
- `searchers.gp.optimize`: maximizing it over a mixed space;
- `searchers.gp.core`: `GPEICore`, the ask/tell loop with its options and exact state.

The Ray adapter is `searchers.adapters.GPEISearcher` (``make_searcher("gp-ei", seed=...)``).
"""

from __future__ import annotations

from searchers.gp.core import GPEICore, GPEIOptions

__all__ = ["GPEICore", "GPEIOptions"]
