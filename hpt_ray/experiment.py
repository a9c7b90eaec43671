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
``ray.tune``), a list, a scalar, or a nested mapping of such entries. Numbers such as ``1e-4``
are read as floats (YAML 1.2; PyYAML alone would read them as strings).

Your own project
----------------
``data`` takes, besides a bundled name:

- a table file: ``{path: train.csv, target: label}``. ``.csv``, ``.parquet`` (``.pq``) and
  ``.npz``; ``features: [a, b]`` picks columns (default: every column but the target);
  ``val: val.csv`` is an explicit validation file (else a seeded hold-out split, or ``cv``). A
  table stays a pandas DataFrame (column names kept). An ``.npz`` holds two arrays named ``X``
  and ``y`` (``target``/``features`` do not apply).
- a data factory: ``{factory: mypkg.data:load, options: {n_rows: 500}}``, or just
  ``mypkg.data:load`` without options; ``load(**options)`` returns any form ``tune_model``
  takes as data: ``(X, y)``, ``((X_tr, y_tr), (X_val, y_val))``, a bundled name, PyTorch
  ``Dataset`` objects.

Relative paths (data files, ``trainer_options.init_checkpoint``) are relative to ``base_dir``
(default: the experiment file's directory).
``model`` and ``data.factory`` are import paths looked up on the Python path, then in
``base_dir``, then in the working directory, so a ``train.py`` next to the experiment file needs
no PYTHONPATH; a module found there is shipped to Ray's workers by value (cloudpickle), so they
need not find it either.

``cv`` is a number of folds or a scikit-learn splitter by name with its options:
``cv: {StratifiedKFold: {n_splits: 5, shuffle: true, random_state: 0}}`` (``cv: KFold`` for the
defaults); any splitter class of ``sklearn.model_selection`` that needs no groups.

``kind`` says which trainable runs the model (sklearn, torch or function; default: detected, see
`hpt_ray.function`); a training function ``train_fn(config)`` that reports with
``hpt_ray.report`` runs as ``model: mypkg.train:train_fn``, ``kind: function`` with ``metric``
and ``mode``. ``trainer_options`` go to ``tune_model(trainer_options=...)``.

Overrides: ``hpt-ray run FILE --set searcher=pso --set space.lr.loguniform=[1e-4,1e-2]``: each
value is read as YAML, a dotted key reaches into mappings (`apply_overrides`), and the changed
document is checked like the file.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune

from hpt_ray.function import KINDS
from searchers.validation import (
    InstanceOf,
    InvalidParameterError,
    Options,
    check,
    closest,
    did_you_mean,
    is_integer,
    is_real,
)

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
        False,
        (str, Mapping),
        "a bundled data set name (digits, breast_cancer, wine, iris, diabetes), a file "
        "{path: train.csv, target: label} or a factory {factory: 'mymodule:load'}",
    ),
    "space": (True, (Mapping,), "a mapping of parameter name -> domain"),
    "name": (False, (str,), "the experiment directory name"),
    "kind": (False, (str,), "sklearn, torch or function (default: detected from the model)"),
    "model_params": (False, (Mapping,), "constructor arguments of a scikit-learn estimator class"),
    "trainer_options": (False, (Mapping,), "PyTorch trainable options that are not searched"),
    "metric": (False, (str,), "the reported metric to optimize"),
    "mode": (False, (str,), "'min' or 'max'"),
    "searcher": (False, (str,), "a searcher name (hpt-ray searchers lists them)"),
    "searcher_options": (False, (Mapping,), "options for the searcher"),
    "scheduler": (False, (str,), "asha, hyperband, median, fifo, pbt or pb2"),
    "scheduler_options": (False, (Mapping,), "options for the scheduler (grace_period, ...)"),
    "num_samples": (False, (int,), "number of trials"),
    "max_concurrent": (False, (int,), "most trials at once"),
    "resources_per_trial": (False, (Mapping,), "e.g. {cpu: 1, gpu: 0.5}"),
    "epochs": (False, (int,), "PyTorch epochs (or a function's most reports) per trial"),
    "max_stages": (False, (int,), "reports per trial for iterative scikit-learn estimators"),
    "cv": (
        False,
        (int, str, Mapping),
        "a number of folds or a splitter {StratifiedKFold: {n_splits: 5}} (scikit-learn)",
    ),
    "scoring": (False, (str, list), "a scikit-learn scorer name or list of names"),
    "time_budget_s": (False, (int, float), "seconds before no new trial starts"),
    "storage_path": (False, (str,), "where results are written"),
    "seed": (False, (int,), "seed for the searcher and the data split"),
    "max_failures": (False, (int,), "retries of a failing trial from its last checkpoint"),
    "fail_fast": (False, (bool,), "true to stop the experiment at the first trial error"),
    "base_dir": (
        False,
        (str,),
        "the directory relative paths and modules are found in (default: the file's directory)",
    ),
}

# Fields that configure how the file is read, not tune_model.
_FILE_ONLY = ("model", "model_params", "space", "base_dir")

# data: {...} keys: a file, or a factory.
_FILE_KEYS = ("path", "target", "features", "val")
_FACTORY_KEYS = ("factory", "options")
_READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
# Splitters that need `groups`, which a file cannot give (tune_model splits X, y only).
_GROUP_SPLITTERS = ("Group",)


class ExperimentError(InvalidParameterError):
    """An experiment file is invalid; the message names the field and the fix.

    An `InvalidParameterError` (so a ValueError and a TypeError): a bad file is bad user input,
    caught and printed as one line by the CLI like any other.
    """


@dataclass(frozen=True)
class Experiment:
    """A validated experiment file: ``kwargs`` go to ``tune_model(model, space, **kwargs)``.

    Attributes:
        document: the file's fields after overrides, as read (what `hpt-ray run` keeps in the
            run directory).
        base_dir: where relative paths and modules were looked up.
    """

    model: Any
    space: dict[str, Any]
    kwargs: dict[str, Any]
    source: str
    document: dict[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-4`` is a float, not the string '1e-4'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """YAML as experiment files are read (``1e-4`` is a float)."""
    return yaml.load(text, Loader=_Loader)


def load_experiment(
    path: str | Path,
    *,
    overrides: Sequence[str | tuple[str, Any]] = (),
    load_data: bool = True,
) -> Experiment:
    """Read and check an experiment file; raise ExperimentError naming the first bad field.

    Args:
        path: the YAML file.
        overrides: ``"key=value"`` strings (``--set``) or ``(key, value)`` pairs applied before
            the check (`apply_overrides`).
        load_data: False checks the ``data`` field without reading files or calling a factory
            (``hpt-ray submit`` checks a file it runs elsewhere).
    """
    path = Path(path)
    if not path.exists():
        raise ExperimentError(f"{path}: no such file")
    try:
        document = read_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentError(f"{path}: not valid YAML: {exc}") from exc
    source = str(path)
    if overrides:
        document = apply_overrides(document, overrides, source=source)
        # A bad value may come from the command line, not the file: say both.
        shown = " ".join(
            f"--set {item}" if isinstance(item, str) else f"{item[0]}={item[1]!r}"
            for item in overrides
        )
        source = f"{path} with {shown}"
    return parse_experiment(
        document, source=source, base_dir=path.resolve().parent, load_data=load_data
    )


def _check_names(document: Mapping[str, Any], source: str) -> None:
    """The searcher's and the scheduler's names and options, with the file: `hpt-ray submit`
    checks it here before the upload. A searcher the model's module registers is known by now
    (the model was imported)."""
    import searchers
    from hpt_ray.schedulers import check_scheduler_options

    try:
        if isinstance(document.get("searcher"), str):
            searchers.check_searcher(document["searcher"], document.get("searcher_options"))
        check_scheduler_options(
            document.get("scheduler", "asha"), document.get("scheduler_options") or {}
        )
    except InvalidParameterError as exc:
        raise ExperimentError(f"{source}: {exc}") from None


def parse_experiment(
    document: Any,
    *,
    source: str = "<experiment>",
    base_dir: str | Path | None = None,
    load_data: bool = True,
) -> Experiment:
    """Check a document's fields and build ``tune_model``'s arguments.

    ``base_dir`` (the experiment file's directory) anchors relative paths and module lookup; a
    ``base_dir`` field in the document, relative or absolute, takes precedence.
    """
    if not isinstance(document, Mapping):
        raise ExperimentError(
            f"{source}: the file must be a mapping of fields (model, data, space, ...)"
        )
    for key in document:
        if key not in FIELDS:
            raise ExperimentError(f"{source}: unknown field {key!r}{_field_hint(str(key))}")
    for key, (required, types, help_text) in FIELDS.items():
        if key not in document:
            if required:
                raise ExperimentError(f"{source}: missing field {key!r}: {help_text}")
            continue
        try:
            check(f"field {key!r}", document[key], InstanceOf(types, help_text))
        except InvalidParameterError as exc:
            raise ExperimentError(f"{source}: {exc}") from None
    root = _base_dir(document.get("base_dir"), base_dir, source)
    kind = document.get("kind")
    if kind is not None and kind not in KINDS:
        try:
            check("field 'kind'", kind, Options(KINDS))
        except InvalidParameterError as exc:
            raise ExperimentError(f"{source}: {exc}") from None
    model = resolve_model(
        document["model"], document.get("model_params") or {}, source=source, base_dir=root
    )
    space = {str(k): parse_domain(v, f"space.{k}", source) for k, v in document["space"].items()}
    _check_names(document, source)
    kwargs = {k: v for k, v in document.items() if k not in _FILE_ONLY}
    if "data" in kwargs:
        kwargs["data"] = resolve_data(kwargs["data"], source=source, base_dir=root, load=load_data)
    elif kind in ("sklearn", "torch") or hasattr(model, "get_params"):
        raise ExperimentError(
            f"{source}: missing field 'data': {FIELDS['data'][2]} "
            "(only a training function may go without data)"
        )
    if "cv" in kwargs:
        kwargs["cv"] = resolve_cv(kwargs["cv"], source=source)
    for key in ("searcher_options", "scheduler_options", "resources_per_trial", "trainer_options"):
        if key in kwargs:
            kwargs[key] = dict(kwargs[key])
    checkpoint = kwargs.get("trainer_options", {}).get("init_checkpoint")
    if isinstance(checkpoint, str) and not Path(checkpoint).expanduser().is_absolute():
        # Like data paths: relative to the experiment file (base_dir), wherever it is run from.
        kwargs["trainer_options"]["init_checkpoint"] = str(root / Path(checkpoint).expanduser())
    return Experiment(
        model=model,
        space=space,
        kwargs=kwargs,
        source=source,
        document=copy.deepcopy(dict(document)),
        base_dir=root,
    )


# -- overrides (hpt-ray run --set) --------------------------------------------------------------


def apply_overrides(
    document: Any, overrides: Sequence[str | tuple[str, Any]], *, source: str = "<experiment>"
) -> dict[str, Any]:
    """A copy of ``document`` with each override applied, in order.

    An override is ``"key=value"`` (the value read as YAML: ``epochs=3`` is an int,
    ``space.lr.loguniform=[1e-4,1e-2]`` a list of floats) or a ``(key, value)`` pair. A dotted key
    reaches into mappings, creating the missing ones (``scheduler_options.grace_period=2``); the
    first part must be a known field.

    >>> apply_overrides({"searcher": "random", "space": {"lr": {"uniform": [0, 1]}}},
    ...                 ["searcher=pso", "space.lr.uniform=[0.1, 0.5]", "seed=1"])
    {'searcher': 'pso', 'space': {'lr': {'uniform': [0.1, 0.5]}}, 'seed': 1}
    """
    if not isinstance(document, Mapping):
        raise ExperimentError(
            f"{source}: the file must be a mapping of fields (model, data, space, ...)"
        )
    result = copy.deepcopy(dict(document))
    for override in overrides:
        if isinstance(override, str):
            key, value = _parse_override(override)
            shown = f"--set {override}"
        else:
            key, value = override
            shown = f"{key}={value!r}"
        parts = key.split(".")
        if parts[0] not in FIELDS:
            raise ExperimentError(f"{shown}: unknown field {parts[0]!r}{_field_hint(parts[0])}")
        target: dict[str, Any] = result
        for depth, part in enumerate(parts[:-1]):
            child = target.get(part)
            if child is None:
                child = target[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise ExperimentError(
                    f"{shown}: {where} is {type(child).__name__} {child!r}, not a mapping; "
                    f"set it whole: --set {where}=..."
                )
            target = child
        target[parts[-1]] = value
    return result


def _parse_override(text: str) -> tuple[str, Any]:
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key or any(not part for part in key.split(".")):
        raise ExperimentError(
            f"--set {text}: write KEY=VALUE, e.g. --set searcher=pso, --set epochs=3 or "
            "--set space.lr.loguniform=[1e-4,1e-2]"
        )
    try:
        value = read_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise ExperimentError(
            f"--set {text}: the value is not valid YAML ({problem}); quote it for the shell, "
            "e.g. --set 'space.lr={loguniform: [1e-4, 1e-2]}'"
        ) from exc
    return key, value


# -- data -----------------------------------------------------------------------------------------


def resolve_data(
    spec: Any, *, source: str = "<experiment>", base_dir: Path | None = None, load: bool = True
) -> Any:
    """The ``data`` field -> what ``tune_model(data=...)`` takes (the module docstring's forms).

    With ``load=False`` the spec is checked (keys, files exist, factory importable) and returned
    as it is.
    """
    root = base_dir or Path.cwd()
    if isinstance(spec, str):
        if ":" in spec:
            return _call_factory(spec, {}, source=source, root=root, load=load, field="data")
        return _bundled_name(spec, source)
    if not isinstance(spec, Mapping):
        raise ExperimentError(f"{source}: field 'data' must be {FIELDS['data'][2]}")
    keys = [str(k) for k in spec]
    if "factory" in spec:
        _check_keys(keys, _FACTORY_KEYS, source)
        options = spec.get("options")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise ExperimentError(
                f"{source}: field 'data.options' must be a mapping of keyword arguments for "
                f"the factory, got {type(options).__name__} {options!r}"
            )
        factory = spec["factory"]
        if not isinstance(factory, str):
            raise ExperimentError(
                f"{source}: field 'data.factory' must be an import path 'mymodule:load', "
                f"got {type(factory).__name__} {factory!r}"
            )
        return _call_factory(
            factory, dict(options), source=source, root=root, load=load, field="data.factory"
        )
    if "path" in spec:
        _check_keys(keys, _FILE_KEYS, source)
        return _read_data_files(spec, source=source, root=root, load=load)
    hint = did_you_mean(keys[0], (*_FILE_KEYS, *_FACTORY_KEYS)) if keys else ""
    raise ExperimentError(
        f"{source}: field 'data' as a mapping needs 'path' (a file: {{path: train.csv, target: "
        f"label}}) or 'factory' ({{factory: 'mymodule:load'}}); got keys {keys}{hint}"
    )


def _bundled_name(name: str, source: str) -> str:
    from trainables.data import dataset_names

    names = dataset_names()
    if name in names:
        return name
    if Path(name).suffix.lower() in _READERS:
        raise ExperimentError(
            f"{source}: field 'data': {name!r} looks like a file; write "
            f"data: {{path: {name}, target: <label column>}}"
        )
    raise ExperimentError(
        f"{source}: field 'data': unknown data set {name!r}{did_you_mean(name, names)} "
        f"(bundled: {', '.join(names)}; your own data: {{path: FILE, target: COLUMN}} or "
        "{factory: 'mymodule:load'})"
    )


def _check_keys(keys: list[str], allowed: Sequence[str], source: str) -> None:
    for key in keys:
        if key not in allowed:
            raise ExperimentError(
                f"{source}: field 'data': unknown key {key!r}{did_you_mean(key, allowed)} "
                f"(this form takes {', '.join(allowed)})"
            )


def _call_factory(
    path: str, options: dict[str, Any], *, source: str, root: Path, load: bool, field: str
) -> Any:
    factory = import_object(path, field=field, source=source, base_dir=root)
    if not callable(factory):
        raise ExperimentError(f"{source}: field {field!r}: {path!r} is not callable")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ExperimentError(
            f"{source}: field 'data.options': {path} does not take them ({exc}); its "
            f"signature is {path.rpartition(':')[2] or path}{inspect.signature(factory)}"
        ) from exc
    except ValueError:  # no signature (a builtin): let the call say
        pass
    if not load:
        return {"factory": path, "options": options}
    data = factory(**options)
    if data is None:
        raise ExperimentError(
            f"{source}: field {field!r}: {path}() returned None; return (X, y), "
            "((X_train, y_train), (X_val, y_val)), a bundled data set name or PyTorch datasets"
        )
    return data


def _read_data_files(spec: Mapping[str, Any], *, source: str, root: Path, load: bool) -> Any:
    target = spec.get("target")
    features = spec.get("features")
    if target is not None and not isinstance(target, (str, int)):
        raise ExperimentError(
            f"{source}: field 'data.target' must be a column name, got "
            f"{type(target).__name__} {target!r}"
        )
    if features is not None and (
        not isinstance(features, list) or not all(isinstance(f, (str, int)) for f in features)
    ):
        raise ExperimentError(
            f"{source}: field 'data.features' must be a list of column names, got {features!r}"
        )
    files = {"path": _data_path(spec["path"], "data.path", source, root)}
    if spec.get("val") is not None:
        files["val"] = _data_path(spec["val"], "data.val", source, root)
    if _READERS[files["path"].suffix.lower()] != "npz" and target is None:
        raise ExperimentError(
            f"{source}: field 'data.target' is missing: name the label column of "
            f"{files['path'].name}, e.g. data: {{path: {spec['path']}, target: label}}"
        )
    if not load:
        return dict(spec)
    parts = [
        _read_one(path, f"data.{key}", source, target=target, features=features)
        for key, path in files.items()
    ]
    if len(parts) == 1:
        return parts[0]
    (X, y), (X_val, y_val) = parts
    columns = list(getattr(X, "columns", []))
    val_columns = list(getattr(X_val, "columns", []))
    if columns != val_columns:
        missing = [c for c in columns if c not in val_columns]
        extra = [c for c in val_columns if c not in columns]
        raise ExperimentError(
            f"{source}: field 'data.val': {files['val'].name} must have the columns of "
            f"{files['path'].name} in the same order; missing {missing}, extra {extra}"
        )
    return (X, y), (X_val, y_val)


def _data_path(value: Any, field: str, source: str, root: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise ExperimentError(
            f"{source}: field {field!r} must be a file path, got {type(value).__name__} {value!r}"
        )
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = root / path
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ExperimentError(
            f"{source}: field {field!r}: cannot read {value!r} (extension {suffix or 'none'!r}); "
            "hpt-ray reads .csv, .parquet (.pq) and .npz; for other data write a factory "
            "(data: {factory: 'mymodule:load'})"
        )
    if not path.is_file():
        relative = "" if Path(value).is_absolute() else f" ({value!r} relative to {root})"
        raise ExperimentError(f"{source}: field {field!r}: no such file {path}{relative}")
    return path


def _read_one(
    path: Path, field: str, source: str, *, target: Any, features: list[Any] | None
) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    reader = _READERS[path.suffix.lower()]
    if reader == "npz":
        if target is not None or features is not None:
            raise ExperimentError(
                f"{source}: field 'data.{'target' if target is not None else 'features'}' "
                f"applies to tables; {path.name} is an .npz whose arrays are named X and y"
            )
        try:
            with np.load(path, allow_pickle=False) as arrays:
                missing = [name for name in ("X", "y") if name not in arrays.files]
                if missing:
                    raise ExperimentError(
                        f"{source}: field {field!r}: {path.name} has arrays {arrays.files}; "
                        "save the features as X and the labels as y "
                        "(np.savez(path, X=X, y=y))"
                    )
                return arrays["X"], arrays["y"]
        except (OSError, ValueError) as exc:
            if isinstance(exc, ExperimentError):
                raise
            raise ExperimentError(f"{source}: field {field!r}: cannot read {path}: {exc}") from exc
    try:
        frame = pd.read_csv(path) if reader == "csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ExperimentError(f"{source}: field {field!r}: cannot read {path}: {exc}") from exc
    columns = list(frame.columns)
    if target not in columns:
        names = [str(c) for c in columns]
        raise ExperimentError(
            f"{source}: field 'data.target': no column {target!r} in {path.name}"
            f"{did_you_mean(str(target), names)} (columns: {_shorten(names)})"
        )
    if features is None:
        X = frame.drop(columns=[target])
    else:
        missing = [f for f in features if f not in columns]
        if missing:
            names = [str(c) for c in columns]
            hint = did_you_mean(str(missing[0]), names)
            raise ExperimentError(
                f"{source}: field 'data.features': no column {missing[0]!r} in {path.name}"
                f"{hint} (columns: {_shorten(names)})"
            )
        X = frame[list(features)]
    if X.shape[1] == 0:
        raise ExperimentError(
            f"{source}: field {field!r}: {path.name} has no feature column besides {target!r}"
        )
    return X, frame[target]


def _shorten(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# -- cross-validation -----------------------------------------------------------------------------


def resolve_cv(value: Any, *, source: str = "<experiment>") -> Any:
    """``cv``: an int stays an int; ``Name`` or ``{Name: {options}}`` -> that splitter instance."""
    if is_integer(value):
        return value
    options: Any = {}
    if isinstance(value, str):
        name = value
    elif isinstance(value, Mapping) and len(value) == 1:
        name, options = next(iter(value.items()))
        options = {} if options is None else options
    else:
        raise ExperimentError(
            f"{source}: field 'cv' must be {FIELDS['cv'][2]}, one splitter, got {value!r}"
        )
    splitters = _splitters()
    if name not in splitters:
        raise ExperimentError(
            f"{source}: field 'cv': unknown splitter {name!r}{did_you_mean(str(name), splitters)}"
            f" (sklearn.model_selection has {', '.join(splitters)})"
        )
    if any(marker in name for marker in _GROUP_SPLITTERS):
        raise ExperimentError(
            f"{source}: field 'cv': {name} needs groups, which an experiment file cannot give; "
            "use KFold, StratifiedKFold, ShuffleSplit, ... or pass cv= a list of (train, test) "
            "index pairs from Python"
        )
    if not isinstance(options, Mapping):
        raise ExperimentError(
            f"{source}: field 'cv.{name}' must be a mapping of options, e.g. "
            f"{{{name}: {{n_splits: 5}}}}, got {options!r}"
        )
    import sklearn.model_selection

    cls = getattr(sklearn.model_selection, name)
    try:
        return cls(**dict(options))
    except (TypeError, ValueError) as exc:
        params = ", ".join(inspect.signature(cls).parameters)
        raise ExperimentError(
            f"{source}: field 'cv.{name}': {exc} ({name} takes {params})"
        ) from exc


def _splitters() -> list[str]:
    """The splitter classes of sklearn.model_selection (abstract bases left out)."""
    import sklearn.model_selection

    names = []
    for name in sklearn.model_selection.__all__:
        try:
            obj = getattr(sklearn.model_selection, name)
        except ImportError:  # experimental estimators refuse to load without an opt-in
            continue
        if (
            inspect.isclass(obj)
            and hasattr(obj, "split")
            and hasattr(obj, "get_n_splits")
            and not inspect.isabstract(obj)
            and not name.startswith("Base")
        ):
            names.append(name)
    return names


# -- space --------------------------------------------------------------------------------------


def parse_domain(entry: Any, where: str, source: str) -> Any:
    if isinstance(entry, Mapping):
        if len(entry) == 1 and next(iter(entry)) in DOMAINS:
            kind, args = next(iter(entry.items()))
            args = list(args) if isinstance(args, (list, tuple)) else [args]
            if kind in ("choice", "grid_search"):
                if not args:
                    raise ExperimentError(f"{source}: {where}: {kind} needs at least one value")
                return DOMAINS[kind](*args)
            if not all(is_real(a) for a in args):
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
    return [] if name in DOMAINS else closest(name, DOMAINS, cutoff=0.75)


# -- import paths -------------------------------------------------------------------------------


def resolve_model(
    path: str,
    params: Mapping[str, Any],
    *,
    source: str = "<experiment>",
    base_dir: Path | None = None,
) -> Any:
    """'pkg.mod.Class', 'pkg.mod:Class' or 'pkg.mod:function' -> an estimator or a callable."""
    target = import_object(path, field="model", source=source, base_dir=base_dir)
    if isinstance(target, type) and hasattr(target, "get_params"):
        try:
            return target(**dict(params))
        except TypeError as exc:
            raise ExperimentError(f"{source}: field 'model_params': {exc}") from exc
    if params:
        raise ExperimentError(
            f"{source}: field 'model_params' applies to scikit-learn classes; "
            f"{path!r} is a model factory or function: put its settings in 'space' as constants"
        )
    if not callable(target):
        raise ExperimentError(f"{source}: field 'model': {path!r} is not callable")
    return target


def import_object(
    path: str, *, field: str, source: str = "<experiment>", base_dir: Path | None = None
) -> Any:
    """Import 'pkg.mod:name' or 'pkg.mod.name' from the Python path, ``base_dir`` or the working
    directory (in that order).

    A module found only in ``base_dir`` or the working directory is added to ``sys.path`` for
    this process and registered with Ray's cloudpickle to be pickled by value, so Ray's worker
    processes, which do not have that directory on their path, can still unpickle what it
    defines (the model, the training function, classes the data factory returns).
    """
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ExperimentError(
            f"{source}: field {field!r}: {path!r} is not an import path such as "
            "'sklearn.svm.SVC' or 'mymodule:build_model'"
        )
    module = _import_module(module_name, field=field, source=source, base_dir=base_dir)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            public = [n for n in dir(module) if not n.startswith("_")]
            raise ExperimentError(
                f"{source}: field {field!r}: {module_name!r} ({getattr(module, '__file__', '')})"
                f" has no attribute {attr!r}{did_you_mean(attr, public)}"
            )
        target = getattr(target, part)
    return target


def _import_module(name: str, *, field: str, source: str, base_dir: Path | None) -> Any:
    top = name.partition(".")[0]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if importlib.util.find_spec(top) is not None or exc.name not in _parents(name):
            # Found, but it (or a module it imports) is missing something: say so as it is.
            raise ExperimentError(
                f"{source}: field {field!r}: importing {name!r} failed: {exc}"
            ) from exc
    except Exception as exc:
        # The user's module raised while importing: show its error and where, not ours.
        raise ExperimentError(
            f"{source}: field {field!r}: importing {name!r} failed: {_describe(exc)}"
        ) from exc
    places = _search_dirs(base_dir)
    for directory in places:
        if importlib.machinery.PathFinder.find_spec(top, [str(directory)]) is not None:
            return _import_from(name, directory, field=field, source=source)
    looked = ", ".join(str(d) for d in places)
    raise ExperimentError(
        f"{source}: field {field!r}: cannot import {name!r}: no module {top!r} on the Python "
        f"path or in {looked} (put {top}.py next to the experiment file, or install it)"
    )


def _import_from(name: str, directory: Path, *, field: str, source: str) -> Any:
    from ray import cloudpickle

    before = set(sys.modules)
    if str(directory) not in sys.path:
        sys.path.append(str(directory))
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise ExperimentError(
            f"{source}: field {field!r}: importing {name!r} from {directory} failed: "
            f"{_describe(exc)}"
        ) from exc
    # Ray's workers do not have `directory` on their path: ship its modules by value. Every
    # module newly imported from there (the one named and its siblings) is registered, since a
    # function pickled by value still refers to the modules it uses by name.
    for module_name in sorted(set(sys.modules) - before):
        loaded = sys.modules.get(module_name)
        file = getattr(loaded, "__file__", None)
        if loaded is not None and file and Path(file).resolve().is_relative_to(directory):
            cloudpickle.register_pickle_by_value(loaded)
    return module


def _search_dirs(base_dir: Path | None) -> list[Path]:
    places: list[Path] = []
    for directory in (base_dir, Path.cwd()):
        if directory is not None and directory.resolve() not in places:
            places.append(directory.resolve())
    return places


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts))}


def _base_dir(value: Any, default: str | Path | None, source: str) -> Path:
    anchor = Path(default) if default is not None else Path.cwd()
    if value is None:
        return anchor.resolve()
    if not value:
        raise ExperimentError(f"{source}: field 'base_dir' must be a directory, got {value!r}")
    path = Path(value).expanduser()
    return (path if path.is_absolute() else anchor / path).resolve()


# -- messages -----------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    """'NameError: name 'x' is not defined (at /path/train.py:12)': the user's error and line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError):
        where = ""  # its message names the file and line
    return f"{type(exc).__name__}: {exc}{where}"


def _field_hint(name: str) -> str:
    return did_you_mean(name, list(FIELDS)) or f"; known fields: {', '.join(FIELDS)}"
