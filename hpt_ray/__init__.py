"""hpt_ray: hyperparameter tuning for PyTorch and scikit-learn models on Ray Tune.

    result = hpt_ray.tune_model(model, space, data="digits", searcher="optuna-tpe", num_samples=20)
    result.best_config, result.best_score, result.trials
    model = result.best_model()        # ready to predict (PyTorch: with its preprocessing)

``TuneSearchCV`` is a drop-in for scikit-learn's GridSearchCV / RandomizedSearchCV.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

# The version is written once, in pyproject.toml's [project] table; the installed metadata
# carries it here. A source tree on PYTHONPATH without `pip install -e .` has no metadata.
try:
    __version__ = importlib.metadata.version("hpt_ray")
except importlib.metadata.PackageNotFoundError:
    __version__ = "0+unknown"

# Imported on first use, so `hpt-ray --help` and `import hpt_ray` stay fast (Ray and scikit-learn
# take seconds to import).
_EXPORTS = {
    "ExperimentExistsError": "hpt_ray.tuning",
    "ExperimentInterrupted": "hpt_ray.tuning",
    "TuneResult": "hpt_ray.tuning",
    "load_model": "hpt_ray.tuning",
    "tune_model": "hpt_ray.tuning",
    "TuneSearchCV": "hpt_ray.search_cv",
    "make_scheduler": "hpt_ray.schedulers",
    "read_results": "hpt_ray.results",
    "report_html": "hpt_ray.report",
}
__all__ = [
    "ExperimentExistsError",
    "ExperimentInterrupted",
    "TuneResult",
    "TuneSearchCV",
    "load_model",
    "make_scheduler",
    "read_results",
    "report_html",
    "tune_model",
]

if TYPE_CHECKING:
    from hpt_ray.report import report_html
    from hpt_ray.results import read_results
    from hpt_ray.schedulers import make_scheduler
    from hpt_ray.search_cv import TuneSearchCV
    from hpt_ray.tuning import (
        ExperimentExistsError,
        ExperimentInterrupted,
        TuneResult,
        load_model,
        tune_model,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpt_ray' has no attribute {name!r}")
