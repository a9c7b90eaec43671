"""load_data: bundled names, task inference, explicit splits and the errors users will hit."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.data import (
    MAX_INFERRED_CLASSES,
    Dataset,
    check_finite,
    dataset_names,
    infer_task,
    load_data,
)


@pytest.mark.parametrize(
    ("name", "task", "n_features", "n_classes"),
    [
        ("digits", "classification", 64, 10),
        ("breast_cancer", "classification", 30, 2),
        ("wine", "classification", 13, 3),
        ("iris", "classification", 4, 3),
        ("diabetes", "regression", 10, None),
    ],
)
def test_bundled_names(name: str, task: str, n_features: int, n_classes: int | None) -> None:
    data = load_data(name)
    assert (data.name, data.task, data.n_features, data.n_classes) == (
        name,
        task,
        n_features,
        n_classes,
    )
    n = data.n_samples
    assert data.X.shape == (n, n_features)
    assert data.X_train.shape[0] + data.X_val.shape[0] == n
    assert data.X_val.shape[0] == int(np.ceil(0.2 * n))
    # The hold-out split is a partition of X: same multiset of rows.
    merged = np.concatenate([data.X_train, data.X_val])
    np.testing.assert_array_equal(np.sort(merged, axis=0), np.sort(data.X, axis=0))


def test_holdout_is_stratified_and_seeded() -> None:
    a = load_data("iris", validation_fraction=0.2, seed=3)
    b = load_data("iris", validation_fraction=0.2, seed=3)
    c = load_data("iris", validation_fraction=0.2, seed=4)
    np.testing.assert_array_equal(a.X_val, b.X_val)
    assert not np.array_equal(a.X_val, c.X_val)
    # iris has 50 of each class: a stratified 20% hold-out has exactly 10 of each.
    assert np.unique(a.y_val, return_counts=True)[1].tolist() == [10, 10, 10]


def test_infer_task_from_labels() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    assert load_data((X, rng.integers(0, 3, 300))).task == "classification"
    assert load_data((X, rng.integers(0, 2, 300).astype(bool))).task == "classification"
    strings = np.array(["cat", "dog"] * 150)
    data = load_data((X, strings))
    assert (data.task, data.n_classes) == ("classification", 2)
    assert data.classes.tolist() == ["cat", "dog"]
    assert load_data((X, rng.normal(size=300))).task == "regression"
    many = np.arange(300)  # integers with more distinct values than classes are likely to have
    assert infer_task(many) == "regression"
    assert MAX_INFERRED_CLASSES < 300
    # task= overrides the guess both ways.
    assert load_data((X, rng.integers(0, 3, 300)), task="regression").task == "regression"
    labels = np.repeat([0.0, 1.0], 150)
    assert load_data((X, labels), task="classification").n_classes == 2


def test_explicit_split_is_kept_and_concatenated() -> None:
    rng = np.random.default_rng(1)
    X_tr, y_tr = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
    X_va, y_va = rng.normal(size=(10, 2)), rng.integers(0, 2, 10)
    data = load_data(((X_tr, y_tr), (X_va, y_va)))
    assert isinstance(data, Dataset)
    assert data.name == "split"
    np.testing.assert_array_equal(data.X_train, X_tr)
    np.testing.assert_array_equal(data.X_val, X_va)
    np.testing.assert_array_equal(data.X, np.concatenate([X_tr, X_va]))
    np.testing.assert_array_equal(data.y, np.concatenate([y_tr, y_va]))
    assert load_data(data) is data


def test_small_list_data_is_not_mistaken_for_a_split() -> None:
    X = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.1]] * 5
    y = [0.1, 0.9, 0.4, 0.3] * 5
    assert load_data((X, y)).task == "regression"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("mnist", r"unknown dataset name 'mnist'.*breast_cancer.*diabetes.*digits.*iris.*wine"),
        ((np.zeros(10), np.zeros(10)), r"X in data must be 2-D"),
        ((np.zeros((10, 2)), np.zeros((10, 2))), r"y in data must be 1-D"),
        ((np.zeros((10, 2)), np.zeros(9)), r"different lengths \(10 rows vs 9 labels\)"),
        ((np.zeros((0, 2)), np.zeros(0)), r"X in data is empty"),
        ((np.zeros((10, 2)), np.zeros(10, dtype=int)), r"at least 2 distinct labels"),
        ((np.zeros((11, 2)), np.r_[np.zeros(10, dtype=int), 1]), r"classes \[1\] have a single"),
        (
            ((np.zeros((5, 2)), np.arange(5.0)), (np.zeros((3, 4)), np.arange(3.0))),
            r"X_train has 2 features but X_val has 4",
        ),
    ],
)
def test_errors_name_the_problem(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_data(data)


def test_option_errors() -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        load_data("iris", validation_fraction=1.0)
    with pytest.raises(ValueError, match="task must be one of"):
        load_data("iris", task="ranking")
    with pytest.raises(ValueError, match="needs numeric targets"):
        load_data((np.zeros((4, 1)), np.array(list("abab"))), task="regression")
    with pytest.raises(TypeError, match="dataset name"):
        load_data(42)
    assert dataset_names() == ["breast_cancer", "diabetes", "digits", "iris", "wine"]


def _with_bad_values() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    X[[2, 5, 9], 3] = np.nan
    X[7, 1] = np.inf
    return X, rng.normal(size=40)


def test_check_finite_names_split_column_and_counts_for_arrays() -> None:
    X, y = _with_bad_values()
    data = load_data(((X[:30], y[:30]), (X[30:], y[30:])))
    with pytest.raises(ValueError, match="X has values the model cannot take") as err:
        check_finite(data)
    message = str(err.value)
    assert "in the training split, column 1 (1 inf), column 3 (3 NaN)" in message
    assert "validation split" not in message
    assert "Impute them" in message
    assert "drop those rows" in message
    X_val = X[30:].copy()
    X_val[0, 4] = -np.inf
    with pytest.raises(ValueError, match=r"in the validation split, column 4 \(1 inf\)"):
        check_finite(load_data(((X[:30], y[:30]), (X_val, y[30:]))))


def test_check_finite_names_dataframe_columns() -> None:
    pd = pytest.importorskip("pandas")
    X, y = _with_bad_values()
    frame = pd.DataFrame(X, columns=["age", "sex", "bmi", "bp", "s1"])
    frame["city"] = ["a", None] + ["b"] * 38  # a string column: missing values count as NaN
    data = load_data((frame, y), seed=0)
    assert data.feature_names == ("age", "sex", "bmi", "bp", "s1", "city")
    with pytest.raises(ValueError, match="X has values the model cannot take") as err:
        check_finite(data)
    message = str(err.value)
    # load_data's seeded split put all the bad rows in the training split.
    assert (
        "in the training split, column 'sex' (1 inf), column 'bp' (3 NaN), column 'city' (1 NaN)."
        in message
    )
    assert "column 3" not in message
    # A DataFrame kept as is (TuneSearchCV's cross-validation data): checked once as "the data".
    same = Dataset(
        X=frame, y=y, X_train=frame, y_train=y, X_val=frame, y_val=y, task="regression",
        n_features=6, n_classes=None, classes=None, name="arrays",
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"in the data, column 'sex' \(1 inf\), column 'bp' \(3 NaN\)"
    ):
        check_finite(same)


def test_check_finite_allow_nan_still_refuses_inf_and_bad_targets() -> None:
    X, y = _with_bad_values()
    X[7, 1] = 0.0  # only NaN left
    data = load_data(((X[:30], y[:30]), (X[30:], y[30:])))
    check_finite(data, allow_nan=True)
    with pytest.raises(ValueError, match=r"column 3 \(3 NaN\)"):
        check_finite(data)
    X[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"column 1 \(1 inf\)\. Replace inf") as err:
        check_finite(load_data(((X[:30], y[:30]), (X[30:], y[30:]))), allow_nan=True)
    assert "NaN" not in str(err.value).split(".")[0]
    y_bad = y.copy()
    y_bad[[31, 33]] = np.nan
    clean = np.ones((40, 2))
    with pytest.raises(ValueError, match=r"y \(the target\).*in the validation split, 2 NaN"):
        check_finite(
            load_data(((clean[:30], y_bad[:30]), (clean[30:], y_bad[30:]))), allow_nan=True
        )
    check_finite(load_data("digits"))  # clean data passes
