"""A DataFrame stays a DataFrame for scikit-learn: a pipeline that selects columns by name tunes
(found using an experiment file with a CSV: every trial failed with "Specifying the columns using
strings is only supported for dataframes")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ray import tune
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import hpt_ray
from trainables.data import load_data


def _table(n: int = 240) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, n),
            "city": rng.choice(["north", "south", "east"], n),
            "income": rng.normal(0.0, 1.0, n),
        }
    )
    y = ((frame["income"] + (frame["city"] == "north")) > 0.5).astype(int).to_numpy()
    return frame, y


def test_load_data_keeps_the_dataframe_and_its_columns():
    frame, y = _table()
    data = load_data((frame, y), seed=0)
    for part in (data.X, data.X_train, data.X_val):
        assert isinstance(part, pd.DataFrame)
        assert list(part.columns) == ["age", "city", "income"]
    assert len(data.X_train) + len(data.X_val) == len(frame)
    split = load_data(((frame.iloc[:200], y[:200]), (frame.iloc[200:], y[200:])))
    assert isinstance(split.X, pd.DataFrame)
    assert split.X.shape == (240, 3)
    assert split.X["city"].tolist() == frame["city"].tolist()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_a_pipeline_selecting_columns_by_name_tunes(tmp_path):
    frame, y = _table()
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), ["age", "income"]),
                        ("onehot", OneHotEncoder(), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    result = hpt_ray.tune_model(
        pipeline,
        {"clf__C": tune.grid_search([0.01, 1.0])},
        data=(frame, y),
        searcher="grid",
        scheduler="fifo",
        cv=3,
        storage_path=tmp_path,
        verbose=0,
    )
    assert (result.trials["status"] == "completed").all(), result.trials["error"]
    assert result.best_score > 0.8
    model = result.best_model()
    assert model.score(frame, y) > 0.8
