"""Experiment files: a YAML document that says what ``tune_model`` should run, checked field by
field.

Example (see ``scripts/examples/``; tests/test_docstrings.py loads and checks this one)::

    name: digits-mlp
    model: trainables.torch_trainable:mlp     # or sklearn.ensemble.RandomForestClassifier
    model_params: {}                          # constructor arguments of a scikit-learn class
    data: digits                              # a bundled scikit-learn data set
    metric: val_accuracy
    mode: max
    searcher: optuna-tpe
    searcher_options: {}
    scheduler: asha
    scheduler_options: {grace_period: 2, reduction_factor: 3}
    num_samples: 16
    max_concurrent: 2
    resources_per_trial: {cpu: 1, gpu: 0}
    epochs: 12
    seed: 0
    storage_path: hpt_ray_results
    space:
      lr: {loguniform: [1.0e-4, 1.0e-1]}
      hidden_size: {choice: [32, 64, 128]}
      n_layers: {randint: [1, 4]}         # Ray semantics: upper bound excluded
      dropout: {uniform: [0.0, 0.5]}
      optimizer: [adam, adamw]            # a list is a choice (a grid axis with searcher: grid)
      batch_size: 64                      # a scalar is a constant

A space entry is ``{<domain>: [args...]}`` for the Ray Tune domains uniform, quniform, loguniform,
qloguniform, randint, qrandint, lograndint, qlograndint, choice and grid_search (arguments as in
``ray.tune``), a list, a scalar, or a nested mapping of such entries.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml
from ray import tune

DOMAINS: dict[str, Any] = {
    "uniform": tune.uniform,
    "quniform": tune.quniform,
    "loguniform": tune.loguniform,
    "qloguniform": tune.qloguniform,
    "randint": tune.randint,
    "qrandint": tune.qrandint,
    "lograndint": tune.lograndint,
    "qlograndint": tune.qlograndint,
    "choice": lambda *values: tune.choice(list(values)),
    "grid_search": lambda *values: tune.grid_search(list(values)),
}

# Field -> (required, accepted types, help). The order is the order errors are reported in.
FIELDS: dict[str, tuple[bool, tuple[type, ...], str]] = {
    "model": (True, (str,), "an import path: 'package.module.Class' or 'package.module:function'"),
    "data": (
        True,
        (str, Mapping),
        "a bundled data set name (digits, breast_cancer, wine, iris, diabetes)",
    ),
    "space": (True, (Mapping,), "a mapping of parameter name -> domain"),
    "name": (False, (str,), "the experiment directory name"),
    "model_params": (False, (Mapping,), "constructor arguments of a scikit-learn estimator class"),
    "metric": (False, (str,), "the reported metric to optimize"),
    "mode": (False, (str,), "'min' or 'max'"),
    "searcher": (False, (str,), "a searcher name (hpt-ray searchers lists them)"),
    "searcher_options": (False, (Mapping,), "options for the searcher"),
    "scheduler": (False, (str,), "asha, hyperband, median or fifo"),
    "scheduler_options": (False, (Mapping,), "options for the scheduler (grace_period, ...)"),
    "num_samples": (False, (int,), "number of trials"),
    "max_concurrent": (False, (int,), "most trials at once"),
    "resources_per_trial": (False, (Mapping,), "e.g. {cpu: 1, gpu: 0.5}"),
    "epochs": (False, (int,), "PyTorch epochs per trial"),
    "max_stages": (False, (int,), "reports per trial for iterative scikit-learn estimators"),
    "cv": (False, (int,), "number of cross-validation folds (scikit-learn)"),
    "scoring": (False, (str, list), "a scikit-learn scorer name or list of names"),
    "time_budget_s": (False, (int, float), "seconds before no new trial starts"),
    "storage_path": (False, (str,), "where results are written"),
    "seed": (False, (int,), "seed for the searcher and the data split"),
    "max_failures": (False, (int,), "retries of a failing trial from its last checkpoint"),
    "fail_fast": (False, (bool,), "true to stop the experiment at the first trial error"),
}


class ExperimentError(ValueError):
    """An experiment file is invalid; the message names the field and the fix."""


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file: ``kwargs`` go to ``tune_model(model, space, **kwargs)``."""

    model: Any
    space: dict[str, Any]
    kwargs: dict[str, Any]
    source: str


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file; raise ExperimentError naming the first bad field."""
    path = Path(path)
    if not path.exists():
        raise ExperimentError(f"{path}: no such file")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentError(f"{path}: not valid YAML: {exc}") from exc
    return parse_experiment(document, source=str(path))


def parse_experiment(document: Any, *, source: str = "<experiment>") -> Experiment:
    if not isinstance(document, Mapping):
        raise ExperimentError(
            f"{source}: the file must be a mapping of fields (model, data, space, ...)"
        )
    for key in document:
        if key not in FIELDS:
            close = get_close_matches(str(key), list(FIELDS), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known fields: {', '.join(FIELDS)}"
            )
            raise ExperimentError(f"{source}: unknown field {key!r}{hint}")
    for key, (required, types, help_text) in FIELDS.items():
        if key not in document:
            if required:
                raise ExperimentError(f"{source}: missing field {key!r}: {help_text}")
            continue
        value = document[key]
        bad_bool = isinstance(value, bool) and bool not in types
        if bad_bool or not isinstance(value, types):
            raise ExperimentError(
                f"{source}: field {key!r} must be {help_text}, "
                f"got {type(value).__name__} {value!r}"
            )
    model = resolve_model(document["model"], document.get("model_params") or {}, source=source)
    space = {str(k): parse_domain(v, f"space.{k}", source) for k, v in document["space"].items()}
    kwargs = {k: v for k, v in document.items() if k not in ("model", "model_params", "space")}
    data = kwargs.get("data")
    if isinstance(data, Mapping):
        raise ExperimentError(
            f"{source}: field 'data' must be a bundled data set name in a file; "
            "pass arrays through the Python API (tune_model(data=(X, y)))"
        )
    for key in ("searcher_options", "scheduler_options", "resources_per_trial"):
        if key in kwargs:
            kwargs[key] = dict(kwargs[key])
    return Experiment(model=model, space=space, kwargs=kwargs, source=source)


def parse_domain(entry: Any, where: str, source: str) -> Any:
    if isinstance(entry, Mapping):
        if len(entry) == 1 and next(iter(entry)) in DOMAINS:
            kind, args = next(iter(entry.items()))
            args = list(args) if isinstance(args, (list, tuple)) else [args]
            if kind in ("choice", "grid_search"):
                if not args:
                    raise ExperimentError(f"{source}: {where}: {kind} needs at least one value")
                return DOMAINS[kind](*args)
            if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
                raise ExperimentError(
                    f"{source}: {where}: {kind} takes numbers [low, high(, q)], got {args!r}"
                )
            if kind.startswith("q") and len(args) == 3 and not args[2] > 0:
                raise ExperimentError(
                    f"{source}: {where}: {kind}'s step q must be > 0, got {args[2]!r}"
                )
            try:
                return DOMAINS[kind](*args)
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise ExperimentError(
                    f"{source}: {where}: bad arguments for {kind}: {exc}"
                ) from exc
        if len(entry) == 1:
            key, value = next(iter(entry.items()))
            near = _near_domains(str(key))
            if near and isinstance(value, list):
                raise ExperimentError(
                    f"{source}: {where}: unknown domain {key!r}; did you mean {near[0]!r}?"
                )
        return {str(k): parse_domain(v, f"{where}.{k}", source) for k, v in entry.items()}
    if isinstance(entry, list):
        if not entry:
            raise ExperimentError(f"{source}: {where}: empty list; give at least one value")
        return list(entry)
    return entry


def _near_domains(name: str) -> list[str]:
    return [] if name in DOMAINS else get_close_matches(name, list(DOMAINS), n=1, cutoff=0.75)


def resolve_model(path: str, params: Mapping[str, Any], *, source: str = "<experiment>") -> Any:
    """'pkg.mod.Class', 'pkg.mod:Class' or 'pkg.mod:function' -> an estimator or model factory."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ExperimentError(
            f"{source}: field 'model': {path!r} is not an import path such as "
            "'sklearn.svm.SVC' or 'mypkg.models:build_mlp'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExperimentError(
            f"{source}: field 'model': cannot import {module_name!r} ({exc})"
        ) from exc
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ExperimentError(
                f"{source}: field 'model': {module_name!r} has no attribute {attr!r}"
            )
        target = getattr(target, part)
    if isinstance(target, type) and hasattr(target, "get_params"):
        try:
            return target(**dict(params))
        except TypeError as exc:
            raise ExperimentError(f"{source}: field 'model_params': {exc}") from exc
    if params:
        raise ExperimentError(
            f"{source}: field 'model_params' applies to scikit-learn classes; "
            f"{path!r} is a model factory: put its settings in 'space' as constants"
        )
    if not callable(target):
        raise ExperimentError(f"{source}: field 'model': {path!r} is not callable")
    return target
