"""TuneSearchCV's two executors: plain Ray tasks under FIFO, Tune trials when a scheduler stages.

Under FIFO with no storage_path every trial is a single function call, so TuneSearchCV runs it as
a Ray task on the pooled workers (no trial actor to start); a scheduler that stops trials early,
or a storage_path to keep the experiment in, takes the Tune path. Each fit records the Ray actor
it ran in, which tells the two apart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from ray import cloudpickle
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from hpt_ray import TuneSearchCV

pytestmark = pytest.mark.usefixtures("ray_local")
# Test modules are not importable on Ray's workers: ship this one's classes by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class RecordingSVC(ClassifierMixin, BaseEstimator):
    """SVC that appends the id of the Ray actor it is fitted in (or "task") to `log`."""

    def __init__(self, C: float = 1.0, log: str = "") -> None:
        self.C = C
        self.log = log

    def fit(self, X: Any, y: Any) -> RecordingSVC:
        actor = ray.get_runtime_context().get_actor_id()
        with open(self.log, "a") as f:
            f.write(f"{actor or 'task'}\n")
        self.model_ = SVC(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X: Any) -> Any:
        return self.model_.predict(X)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.mark.slow
def test_fifo_without_storage_runs_fits_as_tasks_and_matches_gridsearchcv(
    iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    log = tmp_path / "fits.txt"
    grid = {"C": [0.01, 0.1, 1.0, 10.0]}
    search = TuneSearchCV(RecordingSVC(log=str(log)), param_grid=grid, cv=3, n_jobs=2).fit(X, y)
    fits = log.read_text().split()
    assert len(fits) == 4 * 3 + 1  # every candidate on every fold, then the refit here
    assert set(fits[:-1]) == {"task"}, fits
    expected = GridSearchCV(SVC(), grid, cv=3).fit(X, y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"], atol=1e-12
    )
    assert search.best_params_ == expected.best_params_


@pytest.mark.slow
@pytest.mark.parametrize("how", ["asha", "storage_path"])
def test_a_stopping_scheduler_or_a_storage_path_takes_the_tune_path(
    how: str, iris: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = iris
    log = tmp_path / "fits.txt"
    options: dict[str, Any] = (
        {"scheduler": "asha"} if how == "asha" else {"storage_path": str(tmp_path / "runs")}
    )
    TuneSearchCV(
        RecordingSVC(log=str(log)),
        param_grid={"C": [0.1, 1.0]},
        cv=2,
        n_jobs=2,
        refit=False,
        **options,
    ).fit(X, y)
    fits = log.read_text().split()
    assert len(fits) == 4
    assert "task" not in fits, fits  # each fit ran inside a Tune trial actor


@pytest.mark.slow
def test_adaptive_searchers_run_on_tasks_with_trials_pending(
    iris: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = iris
    space = {"C": [0.01, 0.1, 1.0, 10.0, 100.0], "kernel": ["linear", "rbf"]}
    for name in ("gp-ei", "pso", "optuna-tpe"):
        search = TuneSearchCV(
            SVC(), space, searcher=name, n_iter=6, cv=3, n_jobs=2, random_state=0
        ).fit(X, y)
        assert len(search.cv_results_["params"]) == 6, name
        assert np.isfinite(search.cv_results_["mean_test_score"]).all(), name
        assert len({repr(p) for p in search.cv_results_["params"]}) > 1, name
