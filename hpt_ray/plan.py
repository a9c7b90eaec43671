"""``plan_experiment``: validate a ``tune_model`` call and build what its run needs, before Ray
starts anything.

Three kinds of trainable (``hpt_ray.function.resolve_kind``): a scikit-learn estimator
(``trainables.sklearn_trainable``), a PyTorch model factory (``trainables.torch_trainable``) and
the user's own training function (``hpt_ray.function``). Each gets its metric checked, its
scheduler length (``max_t``) and the way ``TuneResult.best_model`` rebuilds its best model.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.search import Searcher
from sklearn.base import BaseEstimator, is_classifier
from sklearn.model_selection import check_cv

import searchers
from hpt_ray.function import (
    DEFAULT_MAX_REPORTS,
    WithData,
    check_signature,
    make_function_trainable,
    resolve_kind,
)
from hpt_ray.objective import (
    MetricNotReportedError,
    missing_metric_message,
)
from hpt_ray.pbt import is_population
from hpt_ray.schedulers import make_scheduler
from hpt_ray.settings import POSITIVE_INT, SearchSettings, TrialSettings
from hpt_ray.user_space import to_tune_space, validate_space
from searchers.validation import InvalidParameterError, Options, check, refused_input
from trainables.data import Dataset, load_data
from trainables.resources import resources_from_spec
from trainables.sklearn_trainable import check_cv_arg, make_sklearn_trainable, n_stages

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hpt_ray.tuning import TuneResult

MODES = ("min", "max")


@dataclass
class _Plan:
    trainable: Any
    space: dict[str, Any]
    metric: str
    mode: str
    searcher: Searcher
    scheduler: Any
    max_t: int
    num_samples: int
    label: str
    metadata: dict[str, Any]
    resources: dict[str, float]
    build_model: Any


def plan_experiment(
    model: Any,
    space: Mapping[str, Any],
    *,
    data: Any,
    metric: str | None,
    mode: str | None,
    kind: str | None = None,
    search: SearchSettings,
    trial: TrialSettings,
) -> _Plan:
    """Validate the model, data, space and metric against the (already validated) settings and
    build what the run needs, before Ray starts anything."""
    searcher, searcher_options = search.searcher, search.searcher_options
    scheduler, scheduler_options = search.scheduler, search.scheduler_options
    num_samples, seed = search.num_samples, search.seed
    resources_per_trial, epochs, max_stages = (
        trial.resources_per_trial,
        trial.epochs,
        trial.max_stages,
    )
    cv, scoring, trainer_options = trial.cv, trial.scoring, trial.trainer_options
    kind, model = _resolve_model(model, kind, data)
    check("mode", mode, Options(MODES), None)
    resources = resources_from_spec(dict(resources_per_trial or {"cpu": 1}))
    is_grid = isinstance(searcher, str) and searcher == "grid"
    tune_space = to_tune_space(space, grid=is_grid)
    validate_space(tune_space, searcher=searcher, estimator=model if kind == "sklearn" else None)

    if kind == "sklearn":
        if is_population(scheduler):
            raise InvalidParameterError(
                f"scheduler: {_scheduler_name(scheduler)!r} copies the checkpoint of a better "
                "member into a worse one, and scikit-learn trials do not checkpoint; use "
                "scheduler='asha' (iterative estimators) or 'fifo', or tune a PyTorch model or a "
                "training function that checkpoints"
            )
        if trainer_options:
            raise InvalidParameterError(
                "trainer_options apply to PyTorch model factories only; a scikit-learn "
                "estimator takes its settings as parameters (space or the instance)"
            )
        dataset = load_data(data, seed=0 if seed is None else seed)
        shipped, data_name = {"data": dataset}, dataset.name
        splits = _materialize_cv(cv, model, dataset)
        default_metric = "mean_test_score"
        if isinstance(scoring, (list, tuple, set, dict)) and metric is None:
            raise InvalidParameterError(
                "metric: with several scorers, name the one to optimize, "
                "e.g. metric='mean_test_accuracy'"
            )
        # A failing fit fails its trial (with its message in the table); staging only helps a
        # scheduler that stops trials early, and partial_fit epochs do not score as fit does.
        staged = not (isinstance(scheduler, str) and scheduler.lower() == "fifo")
        fn = make_sklearn_trainable(
            model,
            cv=splits,
            scoring=scoring,
            max_stages=max_stages,
            error_score="raise",
            staged=staged,
            data=dataset,
        )
        max_t = _max_stages(model, tune_space, max_stages) if staged else 1
        metric, mode = metric or default_metric, mode or "max"
        _check_metric(
            metric,
            _sklearn_keys(scoring, splits),
            who=f"{type(model).__name__} trials (the scorer's mean is mean_test_<name>; "
            "name the scorer with scoring=, e.g. scoring='accuracy')",
        )
        label = type(model).__name__
        build_model: Any = _sklearn_refit(model, dataset)
    elif kind == "function":
        fn, shipped, max_t, label, metric, mode = _plan_function(
            model,
            data,
            metric=metric,
            mode=mode,
            epochs=epochs,
            cv=cv,
            scoring=scoring,
            trainer_options=trainer_options,
        )
        data_name = "function"
        build_model = _function_best_model
    else:
        if cv is not None or scoring is not None:
            raise InvalidParameterError(
                "cv and scoring apply to scikit-learn models only; PyTorch trials use a "
                "hold-out validation split (pass data=((X_tr, y_tr), (X_val, y_val)) to fix it)"
            )
        epochs = check("epochs", 10 if epochs is None else epochs, POSITIVE_INT)
        if "epochs" in tune_space and not _holds_domain(tune_space["epochs"]):
            epochs = check("space: 'epochs'", tune_space["epochs"], POSITIVE_INT)
        elif "epochs" in tune_space:
            raise InvalidParameterError(
                "space: 'epochs' must be a constant (it is the scheduler's max_t); "
                "use tune_model(epochs=...) and let ASHA decide how long each trial trains"
            )
        # torch is imported only when a PyTorch model is tuned: scikit-learn users never
        # pay for it.
        from trainables.torch_trainable import plan_torch

        torch_plan = plan_torch(
            model,
            data,
            epochs=epochs,
            seed=0 if seed is None else seed,
            options=trainer_options,
        )
        _check_constant_training_keys(tune_space)
        fn, data_name = torch_plan.fn, torch_plan.data_name
        shipped = {"data": torch_plan.data}
        max_t = epochs
        if metric is None:
            metric, mode = torch_plan.default_metric, mode or torch_plan.default_mode
        elif mode is None and metric == torch_plan.default_metric:
            mode = torch_plan.default_mode
        _check_metric(metric, torch_plan.keys, who="PyTorch trials")
        if mode is None:
            raise InvalidParameterError(
                f"mode: say whether {metric!r} should be 'min'imized or 'max'imized"
            )
        label = getattr(model, "__name__", type(model).__name__)
        build_model = _torch_best_model
        if seed is not None and "seed" not in tune_space:
            tune_space["seed"] = seed

    if isinstance(searcher, str):
        search_alg = searchers.make_searcher(searcher, seed=seed, **dict(searcher_options or {}))
    else:
        search_alg = searcher  # a Searcher instance (SearchSettings checked it)
    if is_grid:
        num_samples = grid_size(tune_space, searcher_options)
    # The population schedulers perturb the planned space; the others ignore it.
    sched = make_scheduler(
        scheduler, max_t=max_t, space=tune_space, seed=seed, **dict(scheduler_options or {})
    )

    trainable = tune.with_resources(tune.with_parameters(fn, **shipped), resources)
    metadata = {
        "model": label,
        "kind": kind,
        "data": data_name,
        "metric": metric,
        "mode": mode,
        "searcher": searcher if isinstance(searcher, str) else type(searcher).__name__,
        "scheduler": scheduler,
        "num_samples": num_samples,
        "max_t": max_t,
        "seed": seed,
    }
    if is_population(scheduler):
        if search.max_concurrent is not None and search.max_concurrent < num_samples:
            logger.warning(
                "scheduler %r with max_concurrent=%d < num_samples=%d: Ray creates a member only "
                "when another finishes, so the population trains in waves and a later member "
                "never meets (nor copies) an earlier one; leave max_concurrent unset to train "
                "all %d side by side, Ray pausing them in turn at their checkpoints to share the "
                "slots",
                _scheduler_name(scheduler),
                search.max_concurrent,
                num_samples,
                num_samples,
            )
        metadata["scheduler"] = _scheduler_name(scheduler)
        metadata["explore"] = str(dict(scheduler_options or {}).get("explore", "ray"))
    return _Plan(
        trainable=trainable,
        space=tune_space,
        metric=metric,
        mode=mode,
        searcher=search_alg,
        scheduler=sched,
        max_t=max_t,
        num_samples=num_samples,
        label=label,
        metadata=metadata,
        resources=resources,
        build_model=build_model,
    )


def _scheduler_name(scheduler: Any) -> str:
    if isinstance(scheduler, str):
        return scheduler.lower()
    return type(getattr(scheduler, "inner", scheduler)).__name__


def grid_size(space: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> int:
    """Number of configurations the grid searcher will enumerate for ``space``.

    Asked of a probe: a searcher that has already seen its space makes Tune refuse the space.
    """
    probe = searchers.make_searcher("grid", **dict(options or {}))
    probe.set_search_properties("_", "max", dict(space))
    size = probe.grid_size if isinstance(probe, searchers.GridSearcher) else None
    if size is None:
        raise InvalidParameterError(
            f"space: the grid searcher could not enumerate {dict(space)!r}"
        )
    return int(size)


def _resolve_model(model: Any, kind: str | None, data: Any) -> tuple[str, Any]:
    kind = resolve_kind(model, kind, data)
    if kind == "sklearn":
        if inspect.isclass(model) and issubclass(model, BaseEstimator):
            try:
                return kind, model()
            except TypeError as exc:
                raise InvalidParameterError(
                    f"model: {model.__name__}() needs arguments ({exc}); pass an instance"
                ) from exc
        if not isinstance(model, BaseEstimator):
            raise InvalidParameterError(
                f"model: kind='sklearn' needs a scikit-learn estimator, got {type(model).__name__}"
            )
        return kind, model
    if kind == "function" and isinstance(model, WithData):
        return kind, model
    if callable(model) and not inspect.isclass(model):
        return kind, model
    raise InvalidParameterError(
        "model must be a scikit-learn estimator (instance or class), a training function "
        "train_fn(config) that reports with hpt_ray.report, or a PyTorch model factory "
        f"config -> torch.nn.Module; got {type(model).__name__}"
    )


def _check_constant_training_keys(space: Mapping[str, Any]) -> None:
    """A constant training key the PyTorch trainable refuses (``layer_decay: 0``) fails now, not
    in every trial: the constants are resolved as a trial would, the searched keys at defaults."""
    from ray.tune.search.sample import Domain

    from trainables.torch_trainable import TorchTrainingDefaults, resolve_settings

    constants = {
        key: value
        for key, value in space.items()
        if not isinstance(value, Domain)
        and not (isinstance(value, Mapping) and _holds_domain(value))
    }
    try:
        resolve_settings(constants, TorchTrainingDefaults())
    except (ValueError, TypeError) as exc:
        # resolve_settings raises InvalidParameterError for a refused key; anything else is a bug
        # and keeps its own type (and traceback).
        if not isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(f"space: {exc}") from exc


def _holds_domain(value: Any) -> bool:
    from ray.tune.search.sample import Domain

    if isinstance(value, Domain) or (isinstance(value, Mapping) and "grid_search" in value):
        return True
    if isinstance(value, Mapping):
        return any(_holds_domain(v) for v in value.values())
    return False


def _plan_function(
    model: Any,
    data: Any,
    *,
    metric: str | None,
    mode: str | None,
    epochs: int | None,
    cv: Any,
    scoring: Any,
    trainer_options: Any,
) -> tuple[Any, dict[str, Any], int, str, str, str]:
    """A training function's trainable, shipped objects, max_t, label, metric and mode."""
    fn, objects = (model.fn, dict(model.objects)) if isinstance(model, WithData) else (model, {})
    name = getattr(fn, "__name__", type(fn).__name__)
    if metric is None or mode is None:
        raise InvalidParameterError(
            f"metric and mode: a training function reports its own metrics, so name the one "
            f"to optimize and its direction, e.g. tune_model({name}, space, metric='val_loss', "
            "mode='min')"
        )
    for option, value in (("cv", cv), ("scoring", scoring), ("trainer_options", trainer_options)):
        if value:
            raise InvalidParameterError(
                f"{option} applies to the built-in trainables only; a training function "
                "validates and scores itself"
            )
    if data is not None:
        if "data" in objects:
            raise InvalidParameterError(
                "data: given twice, to tune_model and to hpt_ray.with_data; pass it once"
            )
        objects["data"] = data
    check_signature(fn, objects, where="model")
    epochs = check("epochs", DEFAULT_MAX_REPORTS if epochs is None else epochs, POSITIVE_INT)
    return make_function_trainable(fn, metric=metric), objects, epochs, name, metric, mode


def _function_best_model(result: TuneResult) -> Any:
    raise ValueError(
        "best_model: a training function builds its own model; load it from "
        f"result.best_checkpoint ({getattr(result.best_checkpoint, 'path', None)}) with your "
        "own code, and result.best_config holds its configuration"
    )


def _torch_best_model(result: TuneResult) -> Any:
    if result.best_checkpoint is None:
        raise ValueError(
            f"best_model: the best trial left no checkpoint (its row: {result.path}); a "
            "PyTorch trial checkpoints every epoch, so it ended before its first epoch did"
        )
    from trainables.torch_trainable import load_model

    return load_model(result.best_checkpoint)


def _sklearn_refit(estimator: Any, dataset: Dataset) -> Any:
    from sklearn.base import clone

    def refit(result: TuneResult) -> Any:
        from trainables.sklearn_trainable import estimator_params

        model = clone(estimator).set_params(
            **estimator_params(result.best_config or {}, estimator)
        )
        return model.fit(dataset.X, dataset.y)

    return refit


def _max_stages(estimator: Any, space: Mapping[str, Any], max_stages: int) -> int:
    """Reports a trial makes when run to the end: ASHA's max_t.

    When the space searches the staged parameter itself (n_estimators, max_iter), trials differ
    in their number of stages; take the count at a large value so no trial makes more reports
    than max_t.
    """
    staged = [k for k in space if k.rsplit("__", 1)[-1] in ("n_estimators", "max_iter")]
    if not staged:
        return n_stages(estimator, max_stages)
    from sklearn.base import clone

    return n_stages(clone(estimator).set_params(**{k: 10**6 for k in staged}), max_stages)


def _check_metric(metric: str, keys: list[str], *, who: str) -> None:
    """A metric the built-in trainable never reports is refused before any trial."""
    if metric not in keys:
        raise MetricNotReportedError(missing_metric_message(metric, keys, who=who))


def _sklearn_keys(scoring: Any, splits: Any) -> list[str]:
    """The keys a scikit-learn trial reports (``trainables.sklearn_trainable``'s docstring)."""
    if isinstance(scoring, (Mapping, list, tuple, set)):
        names = [str(k) for k in scoring]
    else:
        names = ["score"]
    n_splits = 1 if splits is None else len(splits)
    keys = ["stage", "mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"]
    for name in names:
        keys += [f"mean_test_{name}", f"std_test_{name}"]
        keys += [f"split{i}_test_{name}" for i in range(n_splits)]
    return keys


def _materialize_cv(cv: Any, estimator: Any, dataset: Dataset) -> Any:
    """Fixed folds: every trial is scored on the same splits (a shuffling splitter would not)."""
    if cv is None:
        return None
    cv = check_cv_arg(cv)
    with refused_input():  # scikit-learn's check of a splitter against the labels
        splitter = check_cv(cv, dataset.y, classifier=is_classifier(estimator))
    return [(train, test) for train, test in splitter.split(dataset.X, dataset.y)]
