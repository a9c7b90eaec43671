"""The spaces users write, translated to Ray Tune domains (the canonical language of the run).

Accepted for each parameter (nested dicts allowed for PyTorch configs):
    - a Ray Tune domain: ``tune.uniform``, ``loguniform``, ``quniform``, ``qloguniform``,
      ``randint``, ``lograndint``, ``qrandint``, ``qlograndint``, ``choice``, ``grid_search``;
    - a list or tuple (scikit-learn style): a choice, or a grid axis when the searcher is
      ``"grid"``; a dict among its values that holds domains, lists or distributions is a
      sub-space (a conditional choice: only the chosen dict's parameters are in a config);
    - ``tune.choice([{...}, {...}])`` whose dicts hold domains: a conditional choice between
      sub-spaces, e.g. ``{"optimizer": tune.choice([{"name": "sgd", "momentum":
      tune.uniform(0.5, 0.99)}, {"name": "adam", "beta1": tune.uniform(0.8, 0.99)}])}``; every
      searcher supports it (see `searchers.space.SearchSpace`), and errors name a branch's
      parameter as ``optimizer[1]/beta1``;
    - a frozen ``scipy.stats`` distribution from the bounded families ``uniform``, ``loguniform``
      / ``reciprocal`` and ``randint``: translated to the matching Tune domain, so model-based
      searchers see its bounds rather than an opaque sampler;
    - anything else is a constant.

>>> from scipy import stats
>>> from hpt_ray.user_space import to_tune_space
>>> space = to_tune_space({"C": stats.loguniform(1e-3, 1e2), "kernel": ["rbf", "linear"]})
>>> type(space["C"]).__name__, space["C"].lower, space["C"].upper
('Float', 0.001, 100.0)
>>> space["kernel"].categories
['rbf', 'linear']
>>> to_tune_space({"kernel": ["rbf", "linear"]}, grid=True)
{'kernel': {'grid_search': ['rbf', 'linear']}}

``validate_space`` runs before Ray starts any trial and raises ``InvalidParameterError`` (a
ValueError) naming the parameter and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import tune
from ray.tune.search.sample import Categorical, Domain

import searchers
from searchers.tune_domains import from_ray, has_grid
from searchers.validation import InvalidParameterError, did_you_mean


def to_tune_space(space: Mapping[str, Any], *, grid: bool = False) -> dict[str, Any]:
    """Translate a scikit-learn style space to Ray Tune domains (see the module docstring)."""
    if not isinstance(space, Mapping):
        raise InvalidParameterError(
            f"space must be a dict of parameter name -> domain, got {type(space).__name__}; "
            "e.g. {'lr': tune.loguniform(1e-4, 1e-1), 'max_depth': [3, 5, 8]}"
        )
    return {str(name): _translate(str(name), value, grid=grid) for name, value in space.items()}


def _translate(path: str, value: Any, *, grid: bool) -> Any:
    if isinstance(value, Domain):
        return value
    if isinstance(value, Mapping):
        if "grid_search" in value and len(value) == 1:
            return dict(value)
        return {str(k): _translate(f"{path}.{k}", v, grid=grid) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise InvalidParameterError(
                f"space: parameter {path!r} is an empty list; give at least one value"
            )
        # A dict among the values that holds lists, distributions or domains is a sub-space of
        # its own (a conditional choice), as in scikit-learn's list-of-dicts param_grid; a dict
        # of plain values (e.g. a class_weight) stays a value, keys untouched.
        values = [
            {k: _translate(f"{path}[{i}].{k}", v, grid=grid) for k, v in item.items()}
            if isinstance(item, Mapping) and any(map(_is_searchable, item.values()))
            else item
            for i, item in enumerate(value)
        ]
        return tune.grid_search(values) if grid else tune.choice(values)
    if _is_scipy_distribution(value):
        return _from_scipy(path, value)
    return value


def _is_searchable(value: Any) -> bool:
    """Whether ``value`` (a dict's value) is or holds something to search over."""
    if isinstance(value, (Domain, list, tuple)) or _is_scipy_distribution(value):
        return True
    return isinstance(value, Mapping) and any(map(_is_searchable, value.values()))


def _is_scipy_distribution(value: Any) -> bool:
    return hasattr(value, "dist") and hasattr(value, "rvs") and hasattr(value, "support")


def _from_scipy(path: str, frozen: Any) -> Domain:
    name = frozen.dist.name
    low, high = (float(b) for b in frozen.support())
    if name == "uniform":
        return tune.uniform(low, high)
    if name in ("loguniform", "reciprocal"):
        return tune.loguniform(low, high)
    if name == "randint":
        # scipy's support ends at high - 1 inclusive; tune.randint excludes its upper bound.
        return tune.randint(int(low), int(high) + 1)
    raise InvalidParameterError(
        f"space: parameter {path!r} uses scipy.stats.{name}, which has no bounded equivalent "
        "our searchers can model; use scipy.stats.uniform / loguniform / randint, or a tune "
        "domain such as tune.loguniform(low, high)"
    )


def validate_space(
    space: Mapping[str, Any],
    *,
    searcher: str | Any,
    estimator: Any = None,
) -> None:
    """Check a translated space before any trial starts.

    Raises ValueError for an empty choice, lower >= upper, log bounds <= 0, unsupported domains,
    a grid with a searcher that cannot do grids, and (for a scikit-learn estimator) a parameter
    ``get_params`` does not list.
    """
    if not space:
        raise InvalidParameterError(
            "space: the search space is empty; give at least one parameter to tune"
        )
    grid_names = has_grid(space)
    if grid_names and isinstance(searcher, str) and not searchers.supports_grid(searcher):
        raise InvalidParameterError(
            f"space: parameter {grid_names[0]!r} is a grid (tune.grid_search, or a list with "
            f"searcher='grid'), but searcher {searcher!r} cannot enumerate grids; use "
            "searcher='grid', or tune.choice([...]) to let the searcher pick among the values"
        )
    # searchers.space raises InvalidParameterError for a domain it refuses (bounds, steps).
    from_ray(space, allow_grid=bool(grid_names))
    if estimator is not None:
        _check_estimator_params(space, estimator)


def _check_estimator_params(space: Mapping[str, Any], estimator: Any, *, where: str = "") -> None:
    valid = set(estimator.get_params(deep=True))
    for name, value in space.items():
        branches = _branches(value)
        if name not in valid and branches:
            # A conditional choice: its key names the choice; each branch's keys are parameters.
            for i, branch in enumerate(branches):
                _check_estimator_params(branch, estimator, where=f"{where}{name}[{i}].")
            continue
        if isinstance(value, Mapping) and "grid_search" not in value:
            raise InvalidParameterError(
                f"space: parameter {name!r} is a nested dict, but scikit-learn parameters are "
                "flat; name nested estimator parameters with '__' (e.g. 'clf__C')"
            )
        if name not in valid:
            hint = did_you_mean(name, sorted(valid), n=3)
            place = f"space: {where}{name}: " if where else "space: "
            raise InvalidParameterError(
                f"{place}{type(estimator).__name__} has no parameter {name!r}{hint} "
                f"(its parameters: {', '.join(sorted(valid))})"
            )


def _branches(value: Any) -> list[Mapping[str, Any]]:
    """The sub-spaces of a conditional choice (a choice or grid whose values are all dicts)."""
    if isinstance(value, Categorical):
        values = list(value.categories)
    elif isinstance(value, Mapping) and "grid_search" in value:
        values = list(value["grid_search"])
    else:
        return []
    return values if values and all(isinstance(v, Mapping) for v in values) else []
