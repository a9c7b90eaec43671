"""Convert a Ray Tune ``param_space`` into a `searchers.space.SearchSpace`.

Semantics follow Ray 2.60's own samplers (``ray/tune/search/sample.py``), not its searcher
converters, which disagree with the samplers on several edges:

    tune.uniform(a, b)           FloatParam(a, b)
    tune.loguniform(a, b)        FloatParam(a, b, log=True)
    tune.quniform(a, b, q)       FloatParam(a, b, q=q): multiples of q in [a, b], ends included
    tune.qloguniform(a, b, q)    FloatParam(a, b, log=True, q=q)
    tune.randint(a, b)           IntParam(a, b - 1): b EXCLUDED
    tune.lograndint(a, b)        IntParam(a, b - 1, log=True): b EXCLUDED
    tune.qrandint(a, b, q)       IntParam(a, b, q=q): multiples of q in [a, b], b INCLUDED;
                                 for q == 1 Ray's sampler excludes b (as randint), and so do we
    tune.qlograndint(a, b, q)    IntParam(a, b, log=True, q=q), same edge rule as qrandint
    tune.choice(xs)              CategoricalParam(xs)
    {"grid_search": xs}          CategoricalParam(xs) when ``allow_grid``, else ValueError
    tune.choice([{...}, ...])    a conditional choice when some choice holds a domain: a
                                 BranchParam at the path, and each branch's own parameters and
                                 constants at ``(*path, Branch(i), key, ...)`` (the same for
                                 a grid_search whose values hold domains, when ``allow_grid``)
    anything else                Constant

A branch of a conditional choice is a dict (its keys go under the choice's key in the config), a
domain (its value is the choice's value) or a plain value (given as is). Unsupported domains
(``tune.randn``/``qrandn``, ``tune.sample_from``, a domain inside a list) raise ValueError naming
the parameter path (``optimizer[1]/momentum`` for the second branch of ``optimizer``) and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.tune.search.sample import (
    Categorical,
    Domain,
    Float,
    Function,
    Integer,
    LogUniform,
    Normal,
    Quantized,
    Uniform,
)

from searchers.space import (
    Branch,
    BranchParam,
    CategoricalParam,
    Constant,
    FloatParam,
    IntParam,
    Param,
    Path,
    SearchSpace,
    path_name,
)
from searchers.validation import Interval, InvalidParameterError, check, is_real

__all__ = ["from_ray", "has_grid"]

GRID_KEY = "grid_search"


def from_ray(param_space: Mapping[str, Any], *, allow_grid: bool = False) -> SearchSpace:
    """Build a `SearchSpace` from a (nested) Ray Tune param_space.

    ``allow_grid``: accept ``{"grid_search": [...]}`` (and ``Categorical.grid()``) as categorical
    axes; only the grid searcher sets it.
    """
    if not isinstance(param_space, Mapping):
        raise InvalidParameterError(
            f"param_space must be a dict of Ray Tune domains, got {type(param_space).__name__}"
        )
    params: list[Param] = []
    constants: list[Constant] = []
    order: list[Path] = []
    _walk(param_space, (), allow_grid, params, constants, order)
    return SearchSpace(tuple(params), tuple(constants), tuple(order))


def has_grid(param_space: Mapping[str, Any]) -> list[str]:
    """Names of the parameters of ``param_space`` that are grid_search axes."""
    found: list[str] = []

    def visit(node: Mapping[str, Any], prefix: Path) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            branches: Any = ()
            if _is_grid_dict(value) or (isinstance(value, Domain) and value.is_grid()):
                found.append(path_name(path))
                branches = value[GRID_KEY] if _is_grid_dict(value) else value.categories
            elif isinstance(value, Categorical):
                branches = value.categories
            elif isinstance(value, Mapping):
                visit(value, path)
            for i, branch in enumerate(branches if isinstance(branches, (list, tuple)) else ()):
                if isinstance(branch, Mapping):
                    visit(branch, (*path, Branch(i)))

    visit(param_space, ())
    return found


def _walk(
    node: Mapping[Any, Any],
    prefix: Path,
    allow_grid: bool,
    params: list[Param],
    constants: list[Constant],
    order: list[Path],
) -> None:
    for key, value in node.items():
        path = (*prefix, key)
        branches = _conditional_branches(value)
        if branches is not None:
            if _is_grid(value) and not allow_grid:
                _grid_axis(path, branches, allow_grid)  # raises the grid error
            _walk_branches(path, branches, allow_grid, params, constants, order)
        elif _is_grid_dict(value):
            params.append(_grid_axis(path, value[GRID_KEY], allow_grid))
            order.append(path)
        elif isinstance(value, Mapping) and value:
            _walk(value, path, allow_grid, params, constants, order)
        elif isinstance(value, Domain):
            params.append(_convert_domain(path, value, allow_grid))
            order.append(path)
        else:
            _reject_nested_domain(path, value)
            constants.append(Constant(path, value))
            order.append(path)


def _conditional_branches(value: Any) -> list[Any] | None:
    """The choices of a choice or grid axis that holds a search domain in a choice, else None."""
    if _is_grid_dict(value):
        choices = value[GRID_KEY]
    elif isinstance(value, Categorical):
        choices = value.categories
    else:
        return None
    if not isinstance(choices, (list, tuple)) or not any(_holds_domain(c) for c in choices):
        return None
    return list(choices)


def _walk_branches(
    path: Path,
    branches: list[Any],
    allow_grid: bool,
    params: list[Param],
    constants: list[Constant],
    order: list[Path],
) -> None:
    """A conditional choice: its BranchParam, then each branch's parameters and constants."""
    keys: list[tuple[Any, ...] | None] = []
    order.append(path)  # before its branches: the config keeps the choice's place
    for i, branch in enumerate(branches):
        branch_path = (*path, Branch(i))
        if isinstance(branch, Mapping):
            keys.append(tuple(branch))
            _walk(branch, branch_path, allow_grid, params, constants, order)
        elif isinstance(branch, Domain) or _is_grid_dict(branch):
            # A domain as a branch: e.g. choice([tune.uniform(0, 1), None]) is a float or None.
            keys.append(None)
            _walk({Branch(i): branch}, path, allow_grid, params, constants, order)
        else:
            _reject_nested_domain(branch_path, branch, inside="a list")
            keys.append(None)
            constants.append(Constant(branch_path, branch))
            order.append(branch_path)
    params.append(BranchParam(path, tuple(range(len(branches))), branch_keys=tuple(keys)))


def _holds_domain(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Domain) or _is_grid_dict(item):
            return True
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _is_grid(value: Any) -> bool:
    return _is_grid_dict(value) or (isinstance(value, Domain) and value.is_grid())


def _convert_domain(path: Path, domain: Domain, allow_grid: bool) -> Param:
    name = path_name(path)
    if isinstance(domain, Function):
        raise InvalidParameterError(
            f"parameter {name!r}: tune.sample_from / function domains are not supported by "
            "these searchers; use tune.uniform/randint/choice, or compute the value inside the "
            "trainable from the other parameters"
        )
    if isinstance(domain, Categorical):
        if domain.is_grid():
            return _grid_axis(path, domain.categories, allow_grid)
        if not domain.categories:
            raise InvalidParameterError(
                f"parameter {name!r}: tune.choice([]) has no choices; give one"
            )
        return CategoricalParam(path, tuple(domain.categories))

    sampler = domain.get_sampler()
    q: Any = None
    if isinstance(sampler, Quantized):
        q = sampler.q
        sampler = sampler.get_sampler()
    if isinstance(sampler, Normal):
        raise InvalidParameterError(
            f"parameter {name!r}: tune.randn/qrandn (normal distributions) are unbounded and not "
            "supported; use tune.uniform(lower, upper) or tune.quniform with explicit bounds"
        )
    if not isinstance(sampler, (Uniform, LogUniform)):
        raise InvalidParameterError(
            f"parameter {name!r}: sampler {type(sampler).__name__} is not supported; use "
            "tune.uniform, loguniform, quniform, qloguniform, randint, lograndint, qrandint, "
            "qlograndint or choice"
        )
    log = isinstance(sampler, LogUniform)
    if isinstance(domain, Float):
        return FloatParam(path, lower=domain.lower, upper=domain.upper, log=log, q=q)
    if isinstance(domain, Integer):
        lower, upper = domain.lower, domain.upper
        if is_real(q) and float(q).is_integer():
            q = int(q)  # a whole float step (2.0) is the integer step
        check(f"parameter {name!r}: integer quantization q", q, Interval(int, 1, None), None)
        check(f"parameter {name!r}: lower bound", lower, Interval(int, None, None))
        check(f"parameter {name!r}: upper bound", upper, Interval(int, None, None))
        lower, upper = int(lower), int(upper)
        if lower >= upper:
            raise InvalidParameterError(
                f"parameter {name!r}: lower bound {lower} must be below upper bound {upper}"
            )
        if log and lower <= 0:
            raise InvalidParameterError(
                f"parameter {name!r}: log scale needs bounds > 0, got lower={lower}"
            )
        # Ray's samplers: randint/lograndint exclude the upper bound; quantized ones include it,
        # except q == 1, where Quantized samples index range [lower, upper) (sample.py, 2.60).
        inclusive_upper = upper if q is not None and int(q) != 1 else upper - 1
        return IntParam(path, lower=lower, upper=inclusive_upper, log=log, q=int(q or 1))
    raise InvalidParameterError(
        f"parameter {name!r}: domain type {type(domain).__name__} is not supported; use "
        "tune.uniform, randint or choice"
    )


def _grid_axis(path: Path, values: Any, allow_grid: bool) -> CategoricalParam:
    name = path_name(path)
    if not allow_grid:
        raise InvalidParameterError(
            f"parameter {name!r} uses grid_search, which only the grid searcher supports; "
            "use searcher='grid', or replace it with tune.choice([...])"
        )
    if not isinstance(values, (list, tuple)):
        raise InvalidParameterError(
            f"parameter {name!r}: grid_search needs a list of values, got {type(values).__name__}"
        )
    if not values:
        raise InvalidParameterError(f"parameter {name!r}: grid_search([]) has no values; give one")
    for value in values:
        _reject_nested_domain(path, value, inside="grid_search")
    return CategoricalParam(path, tuple(values))


def _is_grid_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and GRID_KEY in value


def _reject_nested_domain(path: Path, value: Any, *, inside: str = "a list") -> None:
    """A domain inside a list has no key to address it by: say so clearly."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Domain) or _is_grid_dict(item):
            raise InvalidParameterError(
                f"parameter {path_name(path)!r}: a search domain inside {inside} is not "
                "supported; give every tunable value its own key in a dict (for a choice between "
                "sub-spaces, tune.choice([{'name': 'a', 'x': tune.uniform(0, 1)}, {...}]))"
            )
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
