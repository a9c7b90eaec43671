"""hpt_ray: hyperparameter tuning for your training code, PyTorch and scikit-learn on Ray Tune.

    def train_fn(config):                   # your own training code
        for epoch in range(10):
            hpt_ray.report({"val_loss": train_one_epoch(config)})

    result = hpt_ray.tune_model(train_fn, space, metric="val_loss", mode="min")
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
    "InvalidParameterError": "searchers.validation",
    "TuneResult": "hpt_ray.tuning",
    "load_model": "hpt_ray.tuning",
    "tune_model": "hpt_ray.tuning",
    "TuneSearchCV": "hpt_ray.search_cv",
    "Checkpoint": "hpt_ray.function",
    "get_checkpoint": "hpt_ray.function",
    "report": "hpt_ray.function",
    "with_data": "hpt_ray.function",
    "make_scheduler": "hpt_ray.schedulers",
    "read_results": "hpt_ray.table",
    "report_html": "hpt_ray.html_report",
    "HypergradientOptimizer": "trainables.hypergradient",
    "hypergradient": "trainables.hypergradient",
    "CheckpointRequiredError": "hpt_ray.pbt",
    "read_schedule": "hpt_ray.pbt",
}
__all__ = [
    "Checkpoint",
    "CheckpointRequiredError",
    "ExperimentExistsError",
    "ExperimentInterrupted",
    "HypergradientOptimizer",
    "InvalidParameterError",
    "TuneResult",
    "TuneSearchCV",
    "get_checkpoint",
    "hypergradient",
    "load_model",
    "make_scheduler",
    "read_results",
    "read_schedule",
    "report",
    "report_html",
    "tune_model",
    "with_data",
]

if TYPE_CHECKING:
    from hpt_ray.function import Checkpoint, get_checkpoint, report, with_data
    from hpt_ray.html_report import report_html
    from hpt_ray.pbt import CheckpointRequiredError, read_schedule
    from hpt_ray.schedulers import make_scheduler
    from hpt_ray.search_cv import TuneSearchCV
    from hpt_ray.table import read_results
    from hpt_ray.tuning import (
        ExperimentExistsError,
        ExperimentInterrupted,
        TuneResult,
        load_model,
        tune_model,
    )
    from searchers.validation import InvalidParameterError
    from trainables.hypergradient import HypergradientOptimizer, hypergradient


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hpt_ray' has no attribute {name!r}")
