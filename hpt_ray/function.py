"""Your own training code as a trial: ``tune_model(train_fn, space, metric=..., mode=...)``.

A training function takes the trial's config, trains, and reports as it goes::

    def train_fn(config):
        start = 0
        checkpoint = hpt_ray.get_checkpoint()          # None on a fresh start
        if checkpoint is not None:
            start = load_my_state(checkpoint.path)
        for epoch in range(start, 20):
            loss = train_one_epoch(config)
            hpt_ray.report({"val_loss": loss}, checkpoint=save_my_state(epoch))

``hpt_ray.report`` and ``hpt_ray.get_checkpoint`` are Ray Tune's ``ray.tune.report`` and
``ray.tune.get_checkpoint``, so existing Ray Tune code runs unchanged. Each report is one unit
of fidelity for the scheduler (ASHA cuts after a report); ``tune_model(epochs=N)`` is the most
reports a trial makes (the scheduler's ``max_t``, default 100 for a function).

A function may also return its result instead of reporting (as an Optuna objective does): a
number is reported as ``{metric: value}``, a mapping as it is. A function that neither reports
nor returns a result fails its trial with a message saying so.

Large objects (arrays, data sets, a pretrained network) reach the function as keyword arguments,
put once in Ray's object store (``ray.tune.with_parameters``), not captured in a closure::

    tune_model(hpt_ray.with_data(train_fn, train=train_ds, val=val_ds), space, ...)
    def train_fn(config, train, val): ...

``tune_model(train_fn, space, data=X, kind="function")`` passes ``data`` the same way, as the
keyword ``data``.

How ``tune_model`` tells a training function from a PyTorch model factory (both are
``config -> ...`` callables), first rule that applies:

1. ``kind="function"`` / ``"torch"`` / ``"sklearn"`` (``kind:`` in an experiment file);
2. a `with_data` wrapper is a training function;
3. a return annotation: a ``torch.nn.Module`` (sub)class means a model factory, ``None`` a
   training function;
4. otherwise a callable given ``data`` is a model factory (trained by the built-in PyTorch
   trainable), and one given no ``data`` is a training function.
"""

from __future__ import annotations

import inspect
import numbers
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ray import tune

from searchers.validation import InvalidParameterError, Options, check

# Ray Tune's own functions: code written for Ray Tune runs unchanged under hpt_ray.
report = tune.report
get_checkpoint = tune.get_checkpoint
Checkpoint = tune.Checkpoint

DEFAULT_MAX_REPORTS = 100
# The kinds of trainable (``kind=``), in the order the rules below try them.
KINDS = ("function", "torch", "sklearn")


@dataclass(frozen=True)
class WithData:
    """A training function and the objects it receives as keyword arguments (`with_data`)."""

    fn: Callable[..., Any]
    objects: dict[str, Any] = field(default_factory=dict)

    @property
    def __name__(self) -> str:  # the default experiment name
        return getattr(self.fn, "__name__", type(self.fn).__name__)


def with_data(fn: Callable[..., Any], **objects: Any) -> WithData:
    """``fn`` as a training function that gets ``objects`` as keyword arguments in every trial.

    Each object is put in Ray's object store once and shared by all trials on a node (as
    ``ray.tune.with_parameters``), so a large array or data set is not pickled per trial.

    Args:
        fn: ``fn(config, **objects)``; it reports with `report` (``ray.tune.report``).
        **objects: the keyword arguments ``fn`` receives, e.g. ``train=..., val=...``.

    Raises:
        TypeError: ``fn`` is not callable, or cannot take ``config`` and these keywords.
    """
    if isinstance(fn, WithData):
        return WithData(fn.fn, {**fn.objects, **objects})
    if not callable(fn):
        raise InvalidParameterError(
            f"with_data: fn must be a training function, got {type(fn).__name__}"
        )
    check_signature(fn, objects, where="with_data", partial=True)
    return WithData(fn, dict(objects))


def check_signature(
    fn: Callable[..., Any], objects: Mapping[str, Any], *, where: str, partial: bool = False
) -> None:
    """Refuse a function that cannot be called as ``fn(config, **objects)``, naming why
    (``partial``: more keywords may come, e.g. tune_model's ``data``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C callable: its call will tell
    try:
        (signature.bind_partial if partial else signature.bind)({}, **objects)
    except TypeError as exc:
        name = getattr(fn, "__name__", type(fn).__name__)
        wanted = ", ".join(["config", *objects])
        raise InvalidParameterError(
            f"{where}: {name}{signature} cannot be called as {name}({wanted}): {exc}. A "
            "training function takes the trial's config as its first argument"
            + (
                f", and {', '.join(objects)} as keyword arguments"
                if objects
                else "; pass data to it with hpt_ray.with_data(fn, name=value)"
            )
        ) from exc


def resolve_kind(model: Any, kind: str | None, data: Any) -> str:
    """Which trainable runs ``model``: "sklearn", "torch" or "function" (the module docstring's
    rules)."""
    from sklearn.base import BaseEstimator

    if kind is not None:
        return str(check("kind", kind, Options(KINDS)))
    if isinstance(model, WithData):
        return "function"
    if isinstance(model, BaseEstimator) or (
        inspect.isclass(model) and issubclass(model, BaseEstimator)
    ):
        return "sklearn"
    annotated = _return_kind(model)
    if annotated is not None:
        return annotated
    return "function" if data is None else "torch"


def _return_kind(model: Any) -> str | None:
    """ "torch" for a ``-> nn.Module`` annotation, "function" for ``-> None``, else None."""
    if not callable(model) or inspect.isclass(model):
        return None
    try:
        hints = typing.get_type_hints(model)
    except Exception:
        # Unresolvable string annotations: read the text.
        try:
            raw = inspect.signature(model).return_annotation
        except (TypeError, ValueError):
            return None
        if isinstance(raw, str):
            raw = raw.strip("'\"")
            if raw == "None":
                return "function"
            if raw.rsplit(".", 1)[-1] in ("Module", "Sequential"):
                return "torch"
        return None
    if "return" not in hints:
        return None
    returned = hints["return"]
    if returned is type(None):
        return "function"
    if inspect.isclass(returned) and any(
        base.__module__.startswith("torch.nn") and base.__name__ == "Module"
        for base in returned.__mro__
    ):
        return "torch"
    return None


def make_function_trainable(fn: Callable[..., Any], *, metric: str) -> Callable[..., None]:
    """Wrap a training function for Tune: a returned number or mapping becomes a final report."""
    name = getattr(fn, "__name__", type(fn).__name__)

    def function_trainable(config: dict[str, Any], **objects: Any) -> None:
        out = fn(config, **objects)
        if out is None:
            return
        if isinstance(out, Mapping):
            report(dict(out))
        elif isinstance(out, numbers.Real) and not isinstance(out, bool):
            report({metric: float(out)})
        else:
            raise TypeError(
                f"{name} returned {type(out).__name__}; a training function returns None (it "
                f"reports with hpt_ray.report), a number (its {metric!r}) or a dict of metrics"
            )

    function_trainable.__name__ = name
    function_trainable.__qualname__ = name
    return function_trainable
