"""TuneSearchCV drops in for GridSearchCV / RandomizedSearchCV: their parameter names, and no
results folder left behind unless asked (issue #11, "A drop-in that really drops in")."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from hpt_ray import TuneSearchCV

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

GRID = {"C": [0.01, 1.0]}


def _iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def test_param_grid_spelling_is_a_grid_search(tmp_path: Path) -> None:
    X, y = _iris()
    estimator = LogisticRegression(max_iter=2000)
    theirs = GridSearchCV(estimator, param_grid=GRID, cv=3).fit(X, y)
    ours = TuneSearchCV(estimator, param_grid=GRID, cv=3, storage_path=str(tmp_path)).fit(X, y)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], atol=1e-12
    )


def test_param_distributions_and_n_iter_spelling(tmp_path: Path) -> None:
    X, y = _iris()
    search = TuneSearchCV(
        LogisticRegression(max_iter=2000),
        param_distributions={"C": loguniform(1e-3, 1e2)},
        n_iter=3,
        cv=3,
        random_state=0,
        storage_path=str(tmp_path),
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3


def test_spelling_errors_name_the_parameters() -> None:
    X, y = _iris()
    estimator = LogisticRegression()
    with pytest.raises(ValueError, match=r"param_grid .* or param_distributions .*not both"):
        TuneSearchCV(estimator, GRID, param_grid=GRID).fit(X, y)
    with pytest.raises(TypeError, match=r"param_grid=.*param_distributions="):
        TuneSearchCV(estimator).fit(X, y)
    with pytest.raises(ValueError, match="n_iter=3 and n_trials=4 disagree"):
        TuneSearchCV(estimator, GRID, n_iter=3, n_trials=4).fit(X, y)
    with pytest.raises(ValueError, match="n_iter must be a positive integer"):
        TuneSearchCV(estimator, GRID, n_iter=0).fit(X, y)
    with pytest.raises(ValueError, match=r"param_grid: a list of dicts .* searcher=.grid."):
        TuneSearchCV(estimator, param_grid=[GRID, GRID], searcher="random").fit(X, y)


def test_no_results_folder_left_without_storage_path(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("hpt_ray-TuneSearchCV-*"))
    X, y = _iris()
    search = TuneSearchCV(LogisticRegression(max_iter=2000), param_grid=GRID, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert list(work.iterdir()) == []
    assert set(temp.glob("hpt_ray-TuneSearchCV-*")) == before  # the temporary one is gone


def test_two_fits_in_the_same_second_keep_their_own_runs(tmp_path: Path, monkeypatch) -> None:
    # Freeze the clock's text at one second, as two quick fits in a script would see it.
    frozen = time.strftime("%Y%m%d-%H%M%S")
    monkeypatch.setattr(time, "strftime", lambda *_: frozen)
    X, y = _iris()
    estimator = LogisticRegression(max_iter=2000)
    first = TuneSearchCV(estimator, param_grid=GRID, cv=3, storage_path=str(tmp_path)).fit(X, y)
    second = TuneSearchCV(
        estimator, param_grid={"C": [0.1, 10.0, 100.0]}, cv=3, storage_path=str(tmp_path)
    ).fit(X, y)
    assert [p["C"] for p in first.cv_results_["params"]] == [0.01, 1.0]
    assert [p["C"] for p in second.cv_results_["params"]] == [0.1, 10.0, 100.0]
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert len(runs) == 2, runs
    assert all(name.startswith(f"TuneSearchCV-LogisticRegression-{frozen}-") for name in runs)
