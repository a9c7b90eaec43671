"""Search spaces as plain data: one unit-cube dimension per tunable parameter.

Every search core works on the unit cube and never sees Ray domains or Python values; this module
is the one place that maps between the two. It imports no Ray (`searchers/tune_domains.py` builds a
`SearchSpace` from a Ray Tune ``param_space``).

Notation:
    dim: number of tunable parameters; constants are not dimensions.
    u: (dim,) float64 in [0, 1], one point of the unit cube.
    config: the nested dict a trial receives, with constants in place.
    k: integer multiplier of a discrete numeric parameter; its value is ``k * q``.

Dimensions are ordered by parameter name (the path joined with "/"), so the same space gives the
same cube whatever the order of the user's dict; configs keep the user's key order.

How each parameter sits on its dimension:
    - continuous float: affine in the value, or in log(value) when ``log=True``;
    - discrete numeric (every int, and a float with quantization ``q``): the values ``k * q`` for
      ``k_lo <= k <= k_hi``. Without log, equal-width cells and ``to_unit`` gives a cell centre.
      With log, u is affine in log over ``[log k_lo, log(k_hi + 1))`` and ``k = floor(exp(.))``,
      the law Ray uses for ``tune.lograndint``; ``to_unit`` gives the cell's log-midpoint;
    - categorical with ``n`` choices: cell ``i`` is ``[i/n, (i+1)/n)``, ``to_unit`` gives
      ``(i + 0.5) / n``. A core that wants one-hot or crossover reads ``kinds`` and ``n_choices``;
    - the choice between the sub-spaces (dicts with their own domains) of a conditional
      ``tune.choice`` is a categorical (`BranchParam`) whose value is the branch index; each
      branch's parameters have their own dimensions, held at `INACTIVE_UNIT` while their branch
      is not chosen (`SearchSpace` says how and why).

``encode`` gives a JSON-safe scalar per dimension (float value, integer value, multiplier ``k`` of
a quantized float, category index, None for an inactive parameter); it is exact both ways and
is what state files and duplicate keys store, so category objects never need to be serialized.
"""

from __future__ import annotations

import copy
import decimal
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import numpy as np

from searchers.validation import InvalidParameterError

Path: TypeAlias = tuple[Any, ...]
Code: TypeAlias = float | int
Encoded: TypeAlias = Code | None  # None: an inactive parameter of a conditional space

__all__ = [
    "INACTIVE_UNIT",
    "Branch",
    "BranchParam",
    "CategoricalParam",
    "Constant",
    "FloatParam",
    "IntParam",
    "Lattice",
    "Param",
    "SearchSpace",
    "config_path",
    "is_new",
    "path_name",
]

#: The unit coordinate of every inactive parameter (see "Conditional spaces" in `SearchSpace`).
INACTIVE_UNIT = 0.5


@dataclass(frozen=True)
class Branch:
    """A path element: branch ``index`` of the conditional choice whose path precedes it.

    ``("optimizer", Branch(1), "momentum")`` is the ``momentum`` of the second dict of
    ``tune.choice([...])`` at ``optimizer``; in the config it sits at ``optimizer/momentum``.
    """

    index: int


def path_name(path: Path) -> str:
    """The name of a parameter: its path joined with "/" (as Ray's ``flatten_dict`` does); a
    branch of a conditional choice shows as ``[i]``: ``optimizer[1]/momentum``."""
    name = ""
    for part in path:
        if isinstance(part, Branch):
            name += f"[{part.index}]"
        else:
            name += ("/" if name else "") + str(part)
    return name


def config_path(path: Path) -> Path:
    """Where a parameter sits in the config: its path without the `Branch` elements."""
    return tuple(part for part in path if not isinstance(part, Branch))


@dataclass(frozen=True)
class _ParamBase:
    path: Path
    kind: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return path_name(self.path)

    @property
    def n_choices(self) -> int | None:
        """Number of distinct values, or None for a continuous parameter."""
        raise NotImplementedError

    def _error(self, message: str) -> InvalidParameterError:
        return InvalidParameterError(f"parameter {self.name!r}: {message}")


@dataclass(frozen=True)
class FloatParam(_ParamBase):
    """A float in ``[lower, upper]``; with ``q`` only the multiples of ``q`` in that interval."""

    lower: float = 0.0
    upper: float = 1.0
    log: bool = False
    q: float | None = None
    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        _check_bounds(self, self.lower, self.upper, self.log)
        if self.q is not None:
            if not _is_real(self.q) or not self.q > 0 or not math.isfinite(self.q):
                raise self._error(f"quantization q={self.q!r} must be a positive number")
            if self.k_lo > self.k_hi:
                raise self._error(
                    f"no multiple of q={self.q} lies in [{self.lower}, {self.upper}]; "
                    "widen the bounds or use a smaller q"
                )

    @property
    def k_lo(self) -> int:
        if self.q is None:
            raise self._error("k_lo is defined only for a quantized float")
        return _grid_index(self.lower, self.q, math.ceil)

    @property
    def k_hi(self) -> int:
        if self.q is None:
            raise self._error("k_hi is defined only for a quantized float")
        return _grid_index(self.upper, self.q, math.floor)

    @property
    def n_choices(self) -> int | None:
        return None if self.q is None else self.k_hi - self.k_lo + 1

    def from_unit(self, x: float) -> float:
        if self.q is not None:
            return self._value_at(_k_from_unit(x, self.k_lo, self.k_hi, self.log))
        if self.log:
            lo, hi = math.log(self.lower), math.log(self.upper)
            value = math.exp(lo + x * (hi - lo))
        else:
            value = self.lower + x * (self.upper - self.lower)
        return float(min(max(value, self.lower), self.upper))

    def to_unit(self, value: Any) -> float:
        if self.q is not None:
            return _unit_from_k(int(self.encode(value)), self.k_lo, self.k_hi, self.log)
        v = self.encode(value)
        if self.log:
            lo, hi = math.log(self.lower), math.log(self.upper)
            return min(max((math.log(v) - lo) / (hi - lo), 0.0), 1.0)
        return min(max((v - self.lower) / (self.upper - self.lower), 0.0), 1.0)

    def encode(self, value: Any) -> Code:
        if not _is_real(value) or not math.isfinite(float(value)):
            raise self._error(f"{value!r} is not a finite number")
        v = float(value)
        if self.q is None:
            if not self.lower <= v <= self.upper:
                raise self._error(f"{v!r} is outside [{self.lower}, {self.upper}]")
            return v
        # Quantized: compare multipliers, since k * q carries binary noise at the bounds.
        k = round(v / self.q)
        if not math.isclose(k * self.q, v, rel_tol=1e-9, abs_tol=1e-12) or not (
            self.k_lo <= k <= self.k_hi
        ):
            raise self._error(f"{v!r} is not a multiple of q={self.q} inside the bounds")
        return int(k)

    def decode(self, code: Code) -> float:
        if self.q is None:
            return float(code)
        return self._value_at(int(code))

    def values(self) -> list[float]:
        if self.q is None:
            raise self._error("a continuous float has no finite list of values")
        return [self._value_at(k) for k in range(self.k_lo, self.k_hi + 1)]

    def _value_at(self, k: int) -> float:
        # Clipped so that a bound like 3 * 0.1 = 0.30000000000000004 is never undercut by 0.3.
        return float(min(max(_quantized_value(k, self.q or 1.0), self.lower), self.upper))


@dataclass(frozen=True)
class IntParam(_ParamBase):
    """An int in ``[lower, upper]`` (both INCLUSIVE), restricted to the multiples of ``q``."""

    lower: int = 0
    upper: int = 1
    log: bool = False
    q: int = 1
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        for label, bound in (("lower", self.lower), ("upper", self.upper)):
            if not _is_integer(bound):
                raise self._error(f"{label} bound {bound!r} must be an int")
        if not _is_integer(self.q) or self.q < 1:
            raise self._error(f"quantization q={self.q!r} must be a positive int")
        if self.lower > self.upper:
            raise self._error(
                f"lower bound {self.lower} is above the inclusive upper bound {self.upper}"
            )
        if self.log and self.lower <= 0:
            raise self._error(f"log scale needs a lower bound > 0, got {self.lower}")
        if self.k_lo > self.k_hi:
            raise self._error(
                f"no multiple of q={self.q} lies in [{self.lower}, {self.upper}]; "
                "widen the bounds or use a smaller q"
            )

    @property
    def k_lo(self) -> int:
        return -((-int(self.lower)) // int(self.q))  # ceil division, exact for big ints

    @property
    def k_hi(self) -> int:
        return int(self.upper) // int(self.q)

    @property
    def n_choices(self) -> int | None:
        return self.k_hi - self.k_lo + 1

    def from_unit(self, x: float) -> int:
        return _k_from_unit(x, self.k_lo, self.k_hi, self.log) * int(self.q)

    def to_unit(self, value: Any) -> float:
        k = int(self.encode(value)) // int(self.q)
        return _unit_from_k(k, self.k_lo, self.k_hi, self.log)

    def encode(self, value: Any) -> Code:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_integer(value):
            raise self._error(f"{value!r} is not an int")
        v = int(value)
        if not self.lower <= v <= self.upper or v % int(self.q) != 0:
            step = "" if self.q == 1 else f" and a multiple of {self.q}"
            raise self._error(f"{v!r} is not in [{self.lower}, {self.upper}]{step}")
        return v

    def decode(self, code: Code) -> int:
        return int(code)

    def values(self) -> list[int]:
        return [k * int(self.q) for k in range(self.k_lo, self.k_hi + 1)]


@dataclass(frozen=True)
class CategoricalParam(_ParamBase):
    """One of ``choices``; the value handed out is the choice object itself."""

    choices: tuple[Any, ...] = ()
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise self._error("has no choices; give at least one value")

    @property
    def n_choices(self) -> int | None:
        return len(self.choices)

    def from_unit(self, x: float) -> Any:
        return self.choices[_cell(x, len(self.choices))]

    def to_unit(self, value: Any) -> float:
        return (self.encode(value) + 0.5) / len(self.choices)

    def encode(self, value: Any) -> Code:
        # Identity first, then same-type equality, so that choice([1, True, 1.0]) keeps three
        # distinct options although 1 == True == 1.0 in Python.
        for i, choice in enumerate(self.choices):
            if choice is value:
                return i
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and _safe_equal(choice, value):
                return i
        for i, choice in enumerate(self.choices):
            if _safe_equal(choice, value):
                return i
        raise self._error(f"{value!r} is not one of the choices {list(self.choices)!r}")

    def decode(self, code: Code) -> Any:
        return self.choices[int(code)]

    def values(self) -> list[Any]:
        return list(self.choices)


@dataclass(frozen=True)
class BranchParam(CategoricalParam):
    """The choice between the sub-spaces of a conditional ``tune.choice``: a categorical whose
    value is the index of the active branch (``choices`` is ``(0, ..., n - 1)``).

    ``branch_keys[i]``: the keys of branch ``i`` when it is a dict (its parameters and constants
    then sit under this parameter's config path), or None when the branch is a plain value.
    """

    branch_keys: tuple[tuple[Any, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if tuple(self.choices) != tuple(range(len(self.choices))):
            raise self._error("a branch choice's values are its branch indices 0..n-1")
        if len(self.branch_keys) != len(self.choices):
            raise self._error("branch_keys must list one entry per branch")


Param: TypeAlias = FloatParam | IntParam | CategoricalParam


@dataclass(frozen=True)
class Constant:
    """A value passed through unchanged (deep-copied into every config)."""

    path: Path
    value: Any

    @property
    def name(self) -> str:
        return path_name(self.path)


@dataclass(frozen=True)
class SearchSpace:
    """Tunable parameters (one unit-cube dimension each) plus constants, addressed by path.

    ``params`` is stored sorted by name. ``order`` lists every leaf path (parameters and constants)
    in the order configs should present them; it defaults to constants first, then parameters.

    Conditional spaces. A `BranchParam` at path P chooses among sub-spaces (branches); the
    parameters and constants of branch i have paths ``(*P, Branch(i), ...)`` and are *active*
    only when P is active and takes the value i (a branch may hold further choices, to any
    depth). A config holds the active parameters only: the chosen dict with its values, never
    another branch's keys. On the unit cube:

    - the choice itself is one categorical dimension (the cores already handle categoricals:
      one-hot in the GP kernel, category moves in PSO and the GA);
    - every parameter of every branch keeps its own dimension, and while inactive it sits at the
      fixed coordinate `INACTIVE_UNIT` (0.5): ``from_unit`` ignores it, ``to_unit`` returns 0.5,
      ``encode`` gives None for it, and `Lattice.snap` writes 0.5 there.

    Why this encoding ("imputation of inactive parameters", as SMAC's random forest does, Hutter
    et al., LION 2011; Lévesque et al., IJCNN 2017, compare it with dedicated kernels):

    - the distance between two configs of the same branch is the distance between their active
      values, exactly as in the unconditional space (their inactive coordinates are equal), so a
      GP length scale, a particle's velocity or a GA step learned inside a branch mean the same
      thing whatever the other branches hold;
    - no dimension is wasted: two unit points that differ only in inactive coordinates are the
      same config, and because every point a core emits is snapped (inactive coordinates set to
      0.5), a core never proposes, evaluates or de-duplicates "different" points that are one
      config, and the GP never explains its data with a coordinate that had no effect;
    - configs of different branches differ in the choice's dimension (for the GP kernel a
      constant distance, one-hot) plus the active values' offsets from 0.5, the centre of each
      domain, which bounds that offset at half the range.
    A dedicated kernel (Swersky et al., 2013, "arc kernel"; Jenatton et al., ICML 2017, tree
    GPs) would make cross-branch distances independent of the values, at the cost of a feature
    map and gradients of its own; we keep one encoding that all three cores share. The price is
    the extra dimensions themselves: a GP over two branches with one parameter each fits 3
    length scales (the choice, momentum, beta1) where each branch alone would fit 1.
    """

    params: tuple[Param, ...]
    constants: tuple[Constant, ...] = ()
    order: tuple[Path, ...] = field(default=())
    # Derived in __post_init__: per parameter (and constant), the (choice dimension, branch
    # index) pairs that must all hold for it to be active, outermost first; the choices.
    _param_conds: tuple[tuple[tuple[int, int], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _const_conds: tuple[tuple[tuple[int, int], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _selectors: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = tuple(sorted(self.params, key=lambda p: p.name))
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "constants", tuple(self.constants))
        leaves = [c.path for c in self.constants] + [p.path for p in params]
        seen: set[Path] = set()
        for path in leaves:
            if not isinstance(path, tuple) or len(path) == 0:
                raise InvalidParameterError(
                    f"parameter path {path!r} must be a non-empty tuple of keys"
                )
            if path in seen:
                raise InvalidParameterError(f"parameter {path_name(path)!r} is defined twice")
            seen.add(path)
        for path in leaves:
            for i in range(1, len(path)):
                if path[:i] in seen and not isinstance(path[i], Branch):
                    raise InvalidParameterError(
                        f"parameter {path_name(path[:i])!r} is both a value and a nested dict"
                    )
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise InvalidParameterError(
                f"two parameters share a name after joining paths with '/': {names}"
            )
        if self.order:
            if sorted(map(repr, self.order)) != sorted(map(repr, leaves)):
                raise InvalidParameterError(
                    "order must list every parameter and constant path exactly once"
                )
        else:
            object.__setattr__(self, "order", tuple(leaves))
        dim_of = {p.path: d for d, p in enumerate(params)}
        param_conds = tuple(_conditions(p.path, dim_of, params) for p in params)
        const_conds = tuple(_conditions(c.path, dim_of, params) for c in self.constants)
        object.__setattr__(self, "_param_conds", param_conds)
        object.__setattr__(self, "_const_conds", const_conds)
        object.__setattr__(
            self,
            "_selectors",
            tuple(d for d, p in enumerate(params) if isinstance(p, BranchParam)),
        )

    # ---- metadata a core reads -------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Per dimension: "float", "int" or "categorical" (a branch choice is categorical)."""
        return tuple(p.kind for p in self.params)

    @property
    def n_choices(self) -> tuple[int | None, ...]:
        """Per dimension: number of distinct values, None for a continuous float."""
        return tuple(p.n_choices for p in self.params)

    @property
    def conditional(self) -> bool:
        """Whether some parameter is active only in some branch of a choice."""
        return bool(self._selectors)

    @property
    def conditions(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per dimension: the (choice dimension, branch index) pairs that make it active."""
        return self._param_conds

    @property
    def size(self) -> int | None:
        """Number of distinct configs, or None when a reachable dimension is continuous."""
        if self.conditional:
            return self._scope_size(())
        total = 1
        for n in self.n_choices:
            if n is None:
                return None
            total *= n
        return total

    def unit_levels(self, d: int) -> np.ndarray | None:
        """The unit coordinate of each value of discrete dimension ``d`` ((n,)), else None."""
        param = self.params[d]
        if param.n_choices is None:
            return None
        return np.array([param.to_unit(v) for v in param.values()])  # (n,)

    def values(self, d: int) -> list[Any]:
        """Every value of discrete dimension ``d``, in order (ValueError when continuous)."""
        return self.params[d].values()

    def active(self, U: np.ndarray) -> np.ndarray:
        """Which coordinates of unit points ``U`` ((m, dim) or (dim,)) are active, same shape."""
        X = np.asarray(U, dtype=np.float64)
        rows = np.atleast_2d(X)  # (m, dim)
        mask = np.ones(rows.shape, dtype=bool)  # (m, dim)
        if not self._selectors:
            return mask if X.ndim == 2 else mask[0]
        branch = {}  # the branch each row's unit point picks, per choice dimension
        for sel in self._selectors:
            n = len(self.params[sel].choices)  # type: ignore[union-attr]
            branch[sel] = np.minimum(np.floor(np.maximum(rows[:, sel], 0.0) * n), n - 1)  # (m,)
        for d, cond in enumerate(self._param_conds):
            for sel, index in cond:
                mask[:, d] &= branch[sel] == index
        return mask if X.ndim == 2 else mask[0]

    def canonical(self, U: np.ndarray) -> np.ndarray:
        """``U`` ((m, dim) or (dim,)) with every inactive coordinate set to `INACTIVE_UNIT`: the
        one unit point of each config. The identity on an unconditional space."""
        X = np.array(U, dtype=np.float64)
        if not self.conditional:
            return X
        return np.where(self.active(X), X, INACTIVE_UNIT)

    # ---- configs <-> unit cube -------------------------------------------------------------
    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """The unit-cube point of a config; ValueError naming the parameter when out of domain."""
        if self.conditional:
            codes = self.encode(config)
            return np.array(
                [
                    INACTIVE_UNIT if c is None else p.to_unit(p.decode(c))
                    for p, c in zip(self.params, codes, strict=True)
                ],
                dtype=np.float64,
            )  # (dim,)
        return np.array(
            [p.to_unit(_lookup(config, p)) for p in self.params], dtype=np.float64
        )  # (dim,)

    def from_unit(self, u: np.ndarray | Sequence[float]) -> dict[str, Any]:
        """The config at unit-cube point ``u`` ((dim,)); values always lie in their domains."""
        x = np.asarray(u, dtype=np.float64)
        if x.shape != (self.dim,):
            raise ValueError(f"expected a unit vector of shape ({self.dim},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"unit vector has non-finite entries: {x.tolist()}")
        x = np.clip(x, 0.0, 1.0)
        if self.conditional:
            active = self.active(x)
            values = [
                p.from_unit(float(xi)) if on else None
                for p, xi, on in zip(self.params, x, active, strict=True)
            ]
            return self._assemble(values)
        values = [p.from_unit(float(xi)) for p, xi in zip(self.params, x, strict=True)]
        return self._assemble(values)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A config drawn uniformly on the unit cube (so log domains are sampled in log space)."""
        return self.from_unit(rng.random(self.dim))

    # ---- exact encoding, keys, state -------------------------------------------------------
    def encode(self, config: Mapping[str, Any]) -> list[Encoded]:
        """JSON-safe scalars, one per dimension (None for an inactive one); ValueError naming
        the parameter if invalid."""
        if not self.conditional:
            return [p.encode(_lookup(config, p)) for p in self.params]
        codes: list[Encoded] = [None] * self.dim
        branch: dict[int, int] = {}
        # Outer choices first: a parameter's conditions name only choices with shorter paths.
        for d in sorted(range(self.dim), key=lambda d: len(self._param_conds[d])):
            if not all(branch.get(s) == i for s, i in self._param_conds[d]):
                continue
            param = self.params[d]
            if isinstance(param, BranchParam):
                branch[d] = self._match_branch(d, config)
                codes[d] = branch[d]
            else:
                codes[d] = param.encode(_lookup(config, param))
        return codes

    def decode(self, codes: Sequence[Encoded]) -> dict[str, Any]:
        """The config of ``encode``'s output (inverse of ``encode``)."""
        if len(codes) != self.dim:
            raise ValueError(f"expected {self.dim} encoded values, got {len(codes)}")
        return self._assemble(
            [None if c is None else p.decode(c) for p, c in zip(self.params, codes, strict=True)]
        )

    def key(self, config: Mapping[str, Any]) -> tuple[Encoded, ...]:
        """A hashable key; two configs share it exactly when they are the same point."""
        return tuple(self.encode(config))

    def fingerprint(self) -> list[Any]:
        """A JSON description of the dimensions, stored in state to catch a changed space."""
        out: list[Any] = []
        for p in self.params:
            if isinstance(p, BranchParam):
                keys = [None if k is None else [_choice_tag(x) for x in k] for k in p.branch_keys]
                out.append([p.name, "branch", len(p.choices), keys])
            elif isinstance(p, CategoricalParam):
                out.append([p.name, p.kind, len(p.choices), [_choice_tag(c) for c in p.choices]])
            else:
                out.append([p.name, p.kind, repr(p.lower), repr(p.upper), p.log, repr(p.q)])
        return out

    # ---- finite spaces: the grid -----------------------------------------------------------
    def grid_blocks(self) -> list[tuple[dict[int, int], list[int]]]:
        """The grid as scikit-learn's ``ParameterGrid`` over a list of dicts: one block per
        combination of branches (outer choices vary slowest, each choice's branches in order),
        each block the product of its active non-choice dimensions (name order, last fastest).

        Each block is ``(branch by choice dimension, free dimensions)``. An unconditional space
        is one block of every dimension.
        """
        blocks = []
        for assignment in self._assignments(()):
            branch = dict(assignment)
            free = [
                d
                for d in range(self.dim)
                if d not in branch and all(branch.get(s) == i for s, i in self._param_conds[d])
            ]
            blocks.append((branch, free))
        return blocks

    def grid_unit(self, block: tuple[dict[int, int], list[int]], index: int) -> np.ndarray:
        """Point ``index`` of a block of `grid_blocks` ((dim,), canonical)."""
        branch, free = block
        u = np.full(self.dim, INACTIVE_UNIT)  # (dim,)
        for d, i in branch.items():
            u[d] = (i + 0.5) / len(self.params[d].choices)  # type: ignore[union-attr]
        for d in reversed(free):
            levels = self.unit_levels(d)
            if levels is None:
                raise ValueError(f"parameter {self.params[d].name!r} is continuous")
            index, digit = divmod(index, len(levels))
            u[d] = levels[digit]
        return u

    # ---- helpers ---------------------------------------------------------------------------
    def _assemble(self, values: list[Any]) -> dict[str, Any]:
        if self.conditional:
            return self._assemble_conditional(values)
        by_path: dict[Path, Any] = {p.path: v for p, v in zip(self.params, values, strict=True)}
        for c in self.constants:
            by_path[c.path] = copy.deepcopy(c.value)
        config: dict[Any, Any] = {}
        for path in self.order:
            node = config
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = by_path[path]
        return config

    def _assemble_conditional(self, values: list[Any]) -> dict[str, Any]:
        branch = {d: int(values[d]) for d in self._selectors if values[d] is not None}
        by_path: dict[Path, Any] = {}
        dicts: set[Path] = set()  # choices whose active branch is a dict
        for p, v in zip(self.params, values, strict=True):
            if v is None:
                continue
            if isinstance(p, BranchParam):
                if p.branch_keys[int(v)] is not None:
                    dicts.add(p.path)
            else:
                by_path[p.path] = v
        for c, cond in zip(self.constants, self._const_conds, strict=True):
            if all(branch.get(s) == i for s, i in cond):
                by_path[c.path] = copy.deepcopy(c.value)
        config: dict[Any, Any] = {}
        for path in self.order:
            if path in by_path:
                where, value = config_path(path), by_path[path]
            elif path in dicts:
                where = config_path(path)
                value = _find(config, where, {})
            else:
                continue  # inactive, or a choice whose branch is a plain value (its constant)
            node = config
            for part in where[:-1]:
                node = node.setdefault(part, {})
            node[where[-1]] = value
        return config

    def _match_branch(self, d: int, config: Mapping[str, Any]) -> int:
        """The first branch of choice ``d`` that the config's value at its path fits."""
        param = self.params[d]
        if not isinstance(param, BranchParam):
            raise TypeError(f"internal: dimension {d} is not a branch choice")
        node = _lookup(config, param)
        scope = self._param_conds[d]
        for strict in (True, False):
            for i, keys in enumerate(param.branch_keys):
                if self._fits_branch(node, (*scope, (d, i)), keys, strict):
                    return i
        raise param._error(
            f"{node!r} matches none of its {len(param.choices)} branches (a branch matches when "
            "its keys, its constant values and the domains of its parameters all agree)"
        )

    def _fits_branch(
        self, node: Any, cond: tuple[tuple[int, int], ...], keys: Any, strict: bool
    ) -> bool:
        if keys is not None and not (isinstance(node, Mapping) and set(node) == set(keys)):
            return False
        for c, c_cond in zip(self.constants, self._const_conds, strict=True):
            if c_cond != cond:
                continue
            value = _find(node, self._relative(c.path, cond))
            same_type = type(value) is type(c.value) or not strict
            if value is _ABSENT or not (
                value is c.value or (same_type and _safe_equal(value, c.value))
            ):
                return False
        for p, p_cond in zip(self.params, self._param_conds, strict=True):
            if p_cond != cond or isinstance(p, BranchParam):
                continue
            value = _find(node, self._relative(p.path, cond))
            if value is _ABSENT:
                return False
            try:
                p.encode(value)
            except ValueError:
                return False
        return True

    def _relative(self, path: Path, cond: tuple[tuple[int, int], ...]) -> Path:
        """The keys of ``path`` below the branch named last in ``cond`` (its direct branch)."""
        return path[len(self.params[cond[-1][0]].path) + 1 :]

    def _scope_size(self, cond: tuple[tuple[int, int], ...]) -> int | None:
        total = 1
        for d, p in enumerate(self.params):
            if self._param_conds[d] != cond:
                continue
            if isinstance(p, BranchParam):
                sizes = [self._scope_size((*cond, (d, i))) for i in range(len(p.choices))]
                if any(s is None for s in sizes):
                    return None
                total *= sum(s for s in sizes if s is not None)
            elif p.n_choices is None:
                return None
            else:
                total *= p.n_choices
        return total

    def _assignments(self, cond: tuple[tuple[int, int], ...]) -> list[list[tuple[int, int]]]:
        """Every combination of branches of the choices in scope ``cond`` (first slowest)."""
        out: list[list[tuple[int, int]]] = [[]]
        for d in self._selectors:
            if self._param_conds[d] != cond:
                continue
            options = [
                [(d, i), *inner]
                for i in range(len(self.params[d].choices))  # type: ignore[union-attr]
                for inner in self._assignments((*cond, (d, i)))
            ]
            out = [[*a, *b] for a in out for b in options]
        return out


class Lattice:
    """The space's metadata as the cores (GP, PSO, GA) need it: which dimensions are categorical,
    and each discrete dimension's unit levels, to snap a point onto values that exist."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.conditional = space.conditional
        self.dim = space.dim
        self.levels: list[np.ndarray | None] = [space.unit_levels(d) for d in range(self.dim)]
        kinds = space.kinds
        self.categorical = np.array([k == "categorical" for k in kinds], dtype=bool)  # (dim,)
        self.cat_dims = [int(d) for d in np.flatnonzero(self.categorical)]
        self.n_choices = [int(n) if n is not None else 0 for n in space.n_choices]
        # Step of one value, in unit coordinates: a mutation smaller than this on a discrete
        # dimension changes nothing, so steps are floored at it (continuous: 0).
        self.min_step = np.array(
            [
                0.0 if lv is None or len(lv) < 2 else float(np.min(np.diff(lv)))
                for lv in self.levels
            ]
        )  # (dim,)

    def snap(self, u: np.ndarray) -> np.ndarray:
        """``u`` clipped to [0, 1], each discrete coordinate moved to its nearest level, each
        inactive coordinate of a conditional space set to `INACTIVE_UNIT` (`SearchSpace`)."""
        out = self._snap_levels(u)
        return self.space.canonical(out) if self.conditional else out

    def _snap_levels(self, u: np.ndarray) -> np.ndarray:
        out = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)  # (dim,)
        for d, lv in enumerate(self.levels):
            if lv is not None:
                out[d] = lv[self.level_index(d, out[d])]
        return out

    def snap_rows(self, U: np.ndarray) -> np.ndarray:
        """`snap` of each row of ``U`` ((m, dim)), the inactive coordinates set all at once."""
        out = np.stack([self._snap_levels(u) for u in U])  # (m, dim)
        return self.space.canonical(out) if self.conditional else out

    def canonical(self, U: np.ndarray) -> np.ndarray:
        """`SearchSpace.canonical`: inactive coordinates of ``U`` ((m, dim) or (dim,)) set to
        `INACTIVE_UNIT`; ``U`` itself on an unconditional space."""
        return self.space.canonical(U) if self.conditional else U

    def level_index(self, d: int, x: float) -> int:
        """Index of the level of discrete dimension ``d`` nearest to ``x``."""
        lv = self.levels[d]
        if lv is None:
            raise ValueError(f"dimension {d} is continuous")
        i = int(np.searchsorted(lv, x))
        if i <= 0:
            return 0
        if i >= len(lv):
            return len(lv) - 1
        return i if lv[i] - x < x - lv[i - 1] else i - 1

    def category_unit(self, d: int, index: int) -> float:
        """The unit coordinate of category ``index`` of categorical dimension ``d``."""
        return (index + 0.5) / self.n_choices[d]

    def category_of(self, d: int, x: float) -> int:
        n = self.n_choices[d]
        return min(max(math.floor(x * n), 0), n - 1)


_ABSENT: Any = object()


def _find(node: Any, path: Path, default: Any = _ABSENT) -> Any:
    """The value at ``path`` (config keys) below ``node``, or ``default`` when absent."""
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _conditions(
    path: Path, dim_of: Mapping[Path, int], params: Sequence[Param]
) -> tuple[tuple[int, int], ...]:
    """The (choice dimension, branch index) pairs a path's `Branch` elements name."""
    out = []
    for k, part in enumerate(path):
        if isinstance(part, Branch):
            d = dim_of.get(path[:k])
            if d is None or not isinstance(params[d], BranchParam):
                raise ValueError(f"{path_name(path)!r}: {path_name(path[:k])!r} is not a choice")
            if not 0 <= part.index < len(params[d].choices):  # type: ignore[union-attr]
                raise ValueError(f"{path_name(path)!r}: no such branch")
            out.append((d, part.index))
    return tuple(out)


def _lookup(config: Mapping[str, Any], param: _ParamBase) -> Any:
    node: Any = config
    for part in config_path(param.path):
        if not isinstance(node, Mapping) or part not in node:
            raise ValueError(f"parameter {param.name!r} is missing from the config")
        node = node[part]
    return node


def _check_bounds(param: _ParamBase, lower: Any, upper: Any, log: bool) -> None:
    for label, bound in (("lower", lower), ("upper", upper)):
        if not _is_real(bound) or not math.isfinite(bound):
            raise param._error(f"{label} bound {bound!r} must be a finite number")
    if not lower < upper:
        raise param._error(f"lower bound {lower} must be below upper bound {upper}")
    if log and lower <= 0:
        raise param._error(f"log scale needs bounds > 0, got lower={lower}")


def _choice_tag(choice: Any) -> str:
    """A process-independent tag of a category: repr for plain data, else the type name (the repr
    of an arbitrary object often holds its memory address, which changes between processes)."""
    plain = (type(None), bool, int, float, str, tuple, list, dict)
    if isinstance(choice, plain) and " at 0x" not in repr(choice):
        return repr(choice)
    return f"<{type(choice).__module__}.{type(choice).__qualname__}>"


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _safe_equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. numpy arrays, whose == is elementwise
        return False


def _grid_index(bound: float, q: float, round_fn: Any) -> int:
    """Index of ``bound`` on the multiples of ``q``, rounded inwards (as Ray's ``Quantized``)."""
    scaled = bound / q
    nearest = round(scaled)
    if math.isclose(scaled, nearest, rel_tol=1e-9, abs_tol=1e-9):
        return int(nearest)
    return int(round_fn(scaled))


def _quantized_value(k: int, q: float) -> float:
    """``k * q`` without binary noise when ``q`` is a short decimal (3 * 0.1 gives 0.3)."""
    value = k * q
    exponent = decimal.Decimal(repr(float(q))).as_tuple().exponent
    if isinstance(exponent, int) and exponent < 0:
        rounded = round(value, -exponent)
        if math.isclose(rounded, value, rel_tol=1e-12, abs_tol=0.0):
            return float(rounded)
    return float(value)


def _cell(x: float, n: int) -> int:
    return min(max(math.floor(x * n), 0), n - 1)


def _k_from_unit(x: float, k_lo: int, k_hi: int, log: bool) -> int:
    if not log:
        return k_lo + _cell(x, k_hi - k_lo + 1)
    lo, hi = math.log(k_lo), math.log(k_hi + 1)
    k = math.floor(math.exp(lo + x * (hi - lo)))
    return min(max(k, k_lo), k_hi)


def _unit_from_k(k: int, k_lo: int, k_hi: int, log: bool) -> float:
    if not log:
        return (k - k_lo + 0.5) / (k_hi - k_lo + 1)
    lo, hi = math.log(k_lo), math.log(k_hi + 1)
    return (0.5 * (math.log(k) + math.log(k + 1)) - lo) / (hi - lo)


def is_new(U: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(m,) whether each row of ``U`` ((m, dim)) differs from every row of ``seen`` ((n, dim))
    by more than a rounding error in some coordinate (snapped points: equal configs are equal
    unit points)."""
    U, seen = np.atleast_2d(U), np.atleast_2d(seen)
    if not len(seen) or not len(U):
        return np.ones(len(U), dtype=bool)
    out = np.empty(len(U), dtype=bool)
    for start in range(0, len(U), 256):  # (256, n, dim) at a time: bounded memory
        block = U[start : start + 256]
        gap = np.max(np.abs(block[:, None, :] - seen[None, :, :]), axis=2)  # (b, n)
        out[start : start + 256] = np.min(gap, axis=1) > 1e-9
    return out
