"""Real tuning tasks for the searcher benchmark, in the style of Bayesmark (issue #16).

A task is a scikit-learn model on one of scikit-learn's bundled data sets, with a search space
as a practitioner writes it (log scales for rates and penalties, ints for sizes, categoricals
for choices) and, as objective (MINIMIZED), the mean over fixed cross-validation folds of a loss:

    nll    log loss of predict_proba (classification)
    error  1 - accuracy (classification; for models without cheap probabilities, as Bayesmark's
           "acc")
    mse    mean squared error (regression, in the target's units)

Deterministic: the folds are fixed (3 folds, shuffled with seed 0, stratified for
classification), every model with randomness has ``random_state=0``, and every model runs on one
thread (``n_jobs=1`` where it has one; the benchmark sets one BLAS/OpenMP thread per process).
So a config's value is the same in every run, and the benchmark's ``value`` (noise-free) and
``observe`` (what the searcher is told) are the same number. Each evaluation is fast (tens of
milliseconds to ~0.5 s): digits is subsampled to 600 rows (stratified, seed 0) and iterative
models have a practitioner's fixed iteration budget (their convergence warnings are part of the
objective, not errors, and are not shown).

Tasks (`TASKS`; benchmark names ``task:NAME``, or ``tasks`` for all):

    svm-breast_cancer    scaled RBF SVC: C, gamma (log); error
    svm-digits           scaled RBF SVC: C, gamma (log), shrinking; error
    rf-breast_cancer     random forest, 10 trees (as Bayesmark's): max_depth, max_features,
                         min_samples_split, min_samples_leaf, criterion; nll
    rf-diabetes          random forest regressor, 10 trees: max_depth, max_features,
                         min_samples_split, min_samples_leaf, bootstrap; mse
    gb-diabetes          gradient boosting regressor: learning_rate (log), n_estimators,
                         max_depth, subsample, min_samples_leaf (log int); mse
    hgb-wine             histogram gradient boosting: learning_rate, l2 (log), max_iter,
                         max_leaf_nodes, min_samples_leaf (log ints); nll
    mlp-digits           scaled MLP, one hidden layer: width (log int), alpha, lr (log),
                         batch_size (choice of 4), activation (choice); 25 epochs; nll
    knn-wine             scaled k-NN: n_neighbors, weights, Minkowski p (float); nll
    elasticnet-diabetes  scaled elastic net on degree-2 features: alpha (log), l1_ratio; mse
    logreg-breast_cancer scaled logistic regression (liblinear): C (log), penalty, class_weight,
                         intercept_scaling (log); nll
    svr-diabetes         scaled RBF SVR on a standardized target: C, gamma, epsilon (log); mse
    svm-iris             scaled RBF SVC with Platt-scaled probabilities: C, gamma (log); nll

The "optimum" of a real task is not known, and normalized regret (random = 1, optimum = 0) needs
one. Decision: a STORED REFERENCE, combined Bayesmark-style with the run's own observations.
``scripts/results/tasks_reference.json`` holds, per task, the best value of a fixed random search
(configs drawn uniformly on the unit cube, log domains in log space, seed 0; the command that
made it is stored with it: ``python scripts/tasks.py --reference --evaluations N``), and the
benchmark uses

    optimum = min(reference value, best value any run of the benchmark observed on the task)

The stored part keeps scores comparable between benchmark runs with different searcher sets (a
pure best-seen-in-this-run optimum, as Bayesmark's, moves every searcher's regret when a searcher
is added); the min keeps regrets >= 0 when a searcher beats the reference, and the benchmark's
table says when that happened, so that the reference can be extended (rerun with more
evaluations, or add the config found). A task missing from the file falls back to the run's best
value alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune

__all__ = [
    "REFERENCE_PATH",
    "TASKS",
    "TaskSpec",
    "evaluate",
    "load_reference",
    "reference_search",
]

REFERENCE_PATH = Path(__file__).resolve().parent / "results" / "tasks_reference.json"
N_FOLDS = 3
DIGITS_ROWS = 600
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class TaskSpec:
    """One tuning task.

    name: ``MODEL-DATASET``; data: a loader name of `_load`; metric: "nll", "error" or "mse".
    make_space: returns a fresh Ray Tune param_space.
    make_model: a fresh (unfitted) estimator for a config.
    """

    name: str
    data: str
    metric: str
    make_space: Callable[[], dict[str, Any]]
    make_model: Callable[[Mapping[str, Any]], Any]

    @property
    def classification(self) -> bool:
        return self.metric in ("nll", "error")


# ---- data and folds ------------------------------------------------------------------------


@functools.cache
def _load(data: str) -> tuple[np.ndarray, np.ndarray]:
    """X: (n, p) float64, y: (n,); digits subsampled to `DIGITS_ROWS` rows (stratified, seed 0)."""
    import sklearn.datasets

    X, y = getattr(sklearn.datasets, f"load_{data}")(return_X_y=True)
    if data == "digits":
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(
            X, y, train_size=DIGITS_ROWS, stratify=y, random_state=0, shuffle=True
        )
    return np.asarray(X, dtype=np.float64), np.asarray(y)


@functools.cache
def _folds(
    data: str, classification: bool, fold_seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    from sklearn.model_selection import KFold, StratifiedKFold

    X, y = _load(data)
    splitter = (StratifiedKFold if classification else KFold)(
        n_splits=N_FOLDS, shuffle=True, random_state=fold_seed
    )
    return tuple(splitter.split(X, y))


# ---- the objective -------------------------------------------------------------------------


def evaluate(task: TaskSpec, config: Mapping[str, Any], *, fold_seed: int = 0) -> float:
    """The task's loss for ``config``: the mean over the fixed folds (deterministic).
    ``fold_seed`` shuffles the folds differently: the same task on another split, a related task
    for the warm-start benchmark (`scripts/bench_warm_start.py`)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error

    X, y = _load(task.data)
    labels = np.unique(y)
    losses = []
    for train, test in _folds(task.data, task.classification, fold_seed):
        model = task.make_model(config)
        with warnings.catch_warnings():
            # A fixed iteration budget that does not converge is part of the practitioner's
            # setting being scored, not a fault: only this warning class is hidden.
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            model.fit(X[train], y[train])
        if task.metric == "nll":
            proba = model.predict_proba(X[test])  # (n_test, n_classes)
            losses.append(log_loss(y[test], proba, labels=labels))
        elif task.metric == "error":
            losses.append(1.0 - accuracy_score(y[test], model.predict(X[test])))
        else:
            losses.append(mean_squared_error(y[test], model.predict(X[test])))
    return float(np.mean(losses))


def cached_objective(task: TaskSpec) -> Callable[[Mapping[str, Any]], float]:
    """`evaluate` with a per-task memo: the benchmark asks for a config's value twice (what the
    searcher observes, then the incumbent's noise-free value), and CV is the expensive part."""
    memo: dict[str, float] = {}

    def value(config: Mapping[str, Any]) -> float:
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in memo:
            if len(memo) >= _CACHE_SIZE:
                memo.clear()
            memo[key] = evaluate(task, config)
        return memo[key]

    return value


# ---- the tasks -----------------------------------------------------------------------------


def _scaled(model: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def _svc(c: Mapping[str, Any]) -> Any:
    from sklearn.svm import SVC

    return _scaled(SVC(C=c["C"], gamma=c["gamma"], shrinking=c.get("shrinking", True)))


def _svm_space() -> dict[str, Any]:
    return {"C": tune.loguniform(1e-2, 1e3), "gamma": tune.loguniform(1e-5, 1e1)}


def _svm_digits_space() -> dict[str, Any]:
    return {**_svm_space(), "shrinking": tune.choice([True, False])}


def _rf_classifier(c: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=10,
        max_depth=c["max_depth"],
        max_features=c["max_features"],
        min_samples_split=c["min_samples_split"],
        min_samples_leaf=c["min_samples_leaf"],
        criterion=c["criterion"],
        random_state=0,
        n_jobs=1,
    )


def _rf_classifier_space() -> dict[str, Any]:
    return {
        "max_depth": tune.randint(1, 21),
        "max_features": tune.uniform(0.05, 1.0),
        "min_samples_split": tune.randint(2, 21),
        "min_samples_leaf": tune.lograndint(1, 33),
        "criterion": tune.choice(["gini", "entropy"]),
    }


def _rf_regressor(c: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=10,
        max_depth=c["max_depth"],
        max_features=c["max_features"],
        min_samples_split=c["min_samples_split"],
        min_samples_leaf=c["min_samples_leaf"],
        bootstrap=c["bootstrap"],
        random_state=0,
        n_jobs=1,
    )


def _rf_regressor_space() -> dict[str, Any]:
    return {
        "max_depth": tune.randint(1, 21),
        "max_features": tune.uniform(0.05, 1.0),
        "min_samples_split": tune.randint(2, 21),
        "min_samples_leaf": tune.lograndint(1, 33),
        "bootstrap": tune.choice([True, False]),
    }


def _gb_regressor(c: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(
        learning_rate=c["learning_rate"],
        n_estimators=c["n_estimators"],
        max_depth=c["max_depth"],
        subsample=c["subsample"],
        min_samples_leaf=c["min_samples_leaf"],
        random_state=0,
    )


def _gb_space() -> dict[str, Any]:
    return {
        "learning_rate": tune.loguniform(1e-3, 1.0),
        "n_estimators": tune.randint(10, 101),
        "max_depth": tune.randint(1, 7),
        "subsample": tune.uniform(0.5, 1.0),
        "min_samples_leaf": tune.lograndint(1, 51),
    }


def _hgb_classifier(c: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=c["learning_rate"],
        max_iter=c["max_iter"],
        max_leaf_nodes=c["max_leaf_nodes"],
        min_samples_leaf=c["min_samples_leaf"],
        l2_regularization=c["l2_regularization"],
        early_stopping=False,
        random_state=0,
    )


def _hgb_space() -> dict[str, Any]:
    return {
        "learning_rate": tune.loguniform(1e-3, 1.0),
        "max_iter": tune.randint(10, 101),
        "max_leaf_nodes": tune.lograndint(2, 65),
        "min_samples_leaf": tune.lograndint(2, 41),
        "l2_regularization": tune.loguniform(1e-6, 10.0),
    }


def _mlp(c: Mapping[str, Any]) -> Any:
    from sklearn.neural_network import MLPClassifier

    return _scaled(
        MLPClassifier(
            hidden_layer_sizes=(c["width"],),
            alpha=c["alpha"],
            learning_rate_init=c["learning_rate_init"],
            batch_size=c["batch_size"],
            activation=c["activation"],
            max_iter=25,
            random_state=0,
        )
    )


def _mlp_space() -> dict[str, Any]:
    return {
        "width": tune.lograndint(8, 129),
        "alpha": tune.loguniform(1e-6, 1e-1),
        "learning_rate_init": tune.loguniform(1e-4, 1e-1),
        "batch_size": tune.choice([32, 64, 128, 256]),
        "activation": tune.choice(["relu", "tanh"]),
    }


def _knn(c: Mapping[str, Any]) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return _scaled(
        KNeighborsClassifier(
            n_neighbors=c["n_neighbors"], weights=c["weights"], p=c["p"], n_jobs=1
        )
    )


def _knn_space() -> dict[str, Any]:
    return {
        "n_neighbors": tune.randint(1, 51),
        "weights": tune.choice(["uniform", "distance"]),
        # Minkowski's p as a float (any p >= 1 is a metric): an all-discrete space this small
        # (50 x 2 x 2) would let random search hit the optimum and leave no regret to score.
        "p": tune.uniform(1.0, 3.0),
    }


def _elasticnet(c: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(
        PolynomialFeatures(degree=2, include_bias=False),
        StandardScaler(),
        ElasticNet(alpha=c["alpha"], l1_ratio=c["l1_ratio"], max_iter=2000, random_state=0),
    )


def _elasticnet_space() -> dict[str, Any]:
    return {"alpha": tune.loguniform(1e-4, 10.0), "l1_ratio": tune.uniform(0.0, 1.0)}


def _logreg(c: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return _scaled(
        LogisticRegression(
            C=c["C"],
            # scikit-learn >= 1.8 spells the penalty as l1_ratio (penalty= is deprecated).
            l1_ratio=1.0 if c["penalty"] == "l1" else 0.0,
            class_weight=c["class_weight"],
            intercept_scaling=c["intercept_scaling"],
            solver="liblinear",
            max_iter=200,
            random_state=0,
        )
    )


def _logreg_space() -> dict[str, Any]:
    return {
        "C": tune.loguniform(1e-4, 1e4),
        "penalty": tune.choice(["l1", "l2"]),
        "class_weight": tune.choice([None, "balanced"]),
        "intercept_scaling": tune.loguniform(1e-2, 1e2),
    }


def _svr(c: Mapping[str, Any]) -> Any:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return TransformedTargetRegressor(
        regressor=_scaled(SVR(C=c["C"], gamma=c["gamma"], epsilon=c["epsilon"])),
        transformer=StandardScaler(),
    )


def _svr_space() -> dict[str, Any]:
    return {
        "C": tune.loguniform(1e-2, 1e3),
        "gamma": tune.loguniform(1e-4, 1.0),
        "epsilon": tune.loguniform(1e-3, 1.0),
    }


def _svc_proba(c: Mapping[str, Any]) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # Platt-scaled probabilities (scikit-learn >= 1.9's spelling of SVC(probability=True)): an
    # internal, unshuffled 5-fold CV, cheap on 100 training rows.
    svc = _scaled(SVC(C=c["C"], gamma=c["gamma"]))
    return CalibratedClassifierCV(svc, method="sigmoid", ensemble=False)


_TASK_LIST = [
    TaskSpec("svm-breast_cancer", "breast_cancer", "error", _svm_space, _svc),
    TaskSpec("svm-digits", "digits", "error", _svm_digits_space, _svc),
    TaskSpec("rf-breast_cancer", "breast_cancer", "nll", _rf_classifier_space, _rf_classifier),
    TaskSpec("rf-diabetes", "diabetes", "mse", _rf_regressor_space, _rf_regressor),
    TaskSpec("gb-diabetes", "diabetes", "mse", _gb_space, _gb_regressor),
    TaskSpec("hgb-wine", "wine", "nll", _hgb_space, _hgb_classifier),
    TaskSpec("mlp-digits", "digits", "nll", _mlp_space, _mlp),
    TaskSpec("knn-wine", "wine", "nll", _knn_space, _knn),
    TaskSpec("elasticnet-diabetes", "diabetes", "mse", _elasticnet_space, _elasticnet),
    TaskSpec("logreg-breast_cancer", "breast_cancer", "nll", _logreg_space, _logreg),
    TaskSpec("svr-diabetes", "diabetes", "mse", _svr_space, _svr),
    TaskSpec("svm-iris", "iris", "nll", _svm_space, _svc_proba),
]
TASKS: dict[str, TaskSpec] = {t.name: t for t in _TASK_LIST}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {list(TASKS)}")
    return TASKS[name]


# ---- the reference ("optimum") -------------------------------------------------------------


def load_reference(path: Path = REFERENCE_PATH) -> dict[str, Any]:
    """The stored reference: ``{"tasks": {name: {"value": ..., "config": ...}}, ...}`` ({}
    when the file does not exist)."""
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def reference_value(name: str, path: Path = REFERENCE_PATH) -> float:
    """The task's stored best value, or +inf when none is stored (the benchmark then uses the
    run's best observed value alone)."""
    entry = load_reference(path).get("tasks", {}).get(name)
    return math.inf if entry is None else float(entry["value"])


def reference_search(
    task: TaskSpec, evaluations: int, *, seed: int = 0
) -> tuple[float, dict[str, Any], float]:
    """A fixed random search: (best value, its config, seconds). Configs are drawn uniformly on
    the unit cube of `searchers.space.SearchSpace` (log domains in log space)."""
    from searchers.tune_domains import from_ray

    space = from_ray(task.make_space())
    rng = np.random.default_rng(seed)
    best, best_config = math.inf, {}
    started = time.perf_counter()
    for _ in range(evaluations):
        config = space.sample(rng)
        value = evaluate(task, config)
        if value < best:
            best, best_config = value, config
    return best, best_config, time.perf_counter() - started


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="time one evaluation of each task")
    parser.add_argument("--reference", action="store_true", help="write the reference file")
    parser.add_argument("--evaluations", type=int, default=500)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--out", type=Path, default=REFERENCE_PATH)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as in the benchmark's processes
    if args.list:
        from searchers.tune_domains import from_ray

        for name in args.tasks:
            task = get_task(name)
            space = from_ray(task.make_space())
            config = space.sample(np.random.default_rng(0))
            t0 = time.perf_counter()
            value = evaluate(task, config)
            print(f"{name}: {value:.5g} ({task.metric}) in {time.perf_counter() - t0:.3f}s")
        return 0
    if args.reference:
        stored = load_reference(args.out)
        entries = dict(stored.get("tasks", {}))
        for name in args.tasks:
            best, config, seconds = reference_search(get_task(name), args.evaluations)
            entries[name] = {
                "value": best,
                "config": config,
                "evaluations": args.evaluations,
                "seconds": round(seconds, 1),
            }
            print(f"{name}: best {best:.6g} after {args.evaluations} in {seconds:.0f}s")
            _write_reference(args.out, entries, args.evaluations)
        return 0
    parser.print_help()
    return 2


def _write_reference(path: Path, entries: dict[str, Any], evaluations: int) -> None:
    data = {
        "version": 1,
        "method": "best of a fixed random search (uniform on the unit cube, seed 0)",
        "command": f"python scripts/tasks.py --reference --evaluations {evaluations}",
        "tasks": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n", "utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(_main())
