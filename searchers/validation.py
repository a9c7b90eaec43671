"""User input checked in one way: declarative constraints, one error class, one message.

Every entry point (``tune_model``, ``TuneSearchCV``, ``make_searcher``, schedulers, experiment
files, the trainables' options) checks a user's value with `check`::

    check("epochs", epochs, Interval(int, 1, None), None)
    check("scheduler", scheduler, Options(("asha", "hyperband", "median", "fifo")))

and a refused value raises `InvalidParameterError` with one message template: the parameter,
what it got (value and type), what is accepted, and for a misspelt name the closest one:

    epochs must be a positive integer or None, got True (bool)
    scheduler must be one of 'asha', 'hyperband', 'median', 'fifo', got 'ahsa' (str); did you
    mean 'asha'?

The error class is both ValueError and TypeError (as scikit-learn's ``InvalidParameterError``
in ``sklearn/utils/_param_validation.py``), so callers written against either keep working,
and the CLI prints it as a user error (anything else is a bug and keeps its traceback).

This module is the lowest layer: it imports neither Ray nor ``hpt_ray``/``trainables``, so the
searcher cores use it too.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

__all__ = [
    "BOOL",
    "NONE",
    "Constraint",
    "InstanceOf",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Predicate",
    "check",
    "check_keys",
    "check_params",
    "closest",
    "did_you_mean",
    "is_integer",
    "is_real",
    "refused_input",
]


class InvalidParameterError(ValueError, TypeError):
    """A value the user gave is refused; the message names it, what it got and the fix.

    Both ValueError and TypeError: a wrong type and a wrong value are the same kind of mistake
    (a user's), and code that catches either keeps working.
    """


def is_integer(value: Any) -> bool:
    """An integer (Python or NumPy), and not a bool (``True`` is an int to Python)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (Python or NumPy), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Constraint:
    """One accepted form of a value: `accepts` says whether it holds, `describe` what it is."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def hint(self, value: Any) -> str:
        """Text appended to the message when ``value`` is refused (a did-you-mean)."""
        return ""


class Interval(Constraint):
    """A number between ``low`` and ``high`` (None: unbounded on that side).

    ``kind`` is ``int`` (integers, no bool) or ``float`` (any real number but bool and NaN).
    ``closed`` says which ends belong to the interval: "both", "left", "right" or "neither".
    """

    def __init__(
        self,
        kind: type[int] | type[float],
        low: float | None,
        high: float | None,
        *,
        closed: Literal["both", "left", "right", "neither"] = "both",
    ) -> None:
        if kind not in (int, float):
            raise TypeError(f"Interval: kind must be int or float, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval: closed must be both, left, right or neither: {closed!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"Interval: low {low} > high {high}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if not (is_integer(value) if self.kind is int else is_real(value)):
            return False
        if math.isnan(value):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (value < self.low if left else value <= self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        low, high = self.low, self.high
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        # An open infinite end means "finite" (Interval(float, 0, inf, closed="left")).
        if (high == math.inf and not right) or (low == -math.inf and not left):
            noun = "a finite number"
            high = None if high == math.inf else high
            low = None if low == -math.inf else low
        if high is None:
            if low is None:
                return noun
            if low == 0 and not left:
                return "a positive " + noun.split(" ", 1)[1]
            if self.kind is int and low == 1 and left:
                return "a positive integer"
            return f"{noun} {'>=' if left else '>'} {_number(low)}"
        if low is None:
            return f"{noun} {'<=' if right else '<'} {_number(high)}"
        opening, closing = "[" if left else "(", "]" if right else ")"
        return f"{noun} in {opening}{_number(low)}, {_number(high)}{closing}"


class Options(Constraint):
    """One of a set of strings; a near miss gets a did-you-mean.

    ``ignore_case``: ``"ASHA"`` is accepted for ``"asha"`` (the caller lower-cases before use).
    ``text``: how the message names a long set (``"a scorer name from get_scorer_names()"``)
    instead of listing it.
    """

    def __init__(
        self, values: Iterable[str], *, ignore_case: bool = False, text: str | None = None
    ) -> None:
        # A set is listed sorted; a sequence in its own order.
        self.values = tuple(values if isinstance(values, (list, tuple)) else sorted(values))
        self.ignore_case = ignore_case
        self.text = text

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        return (value.lower() if self.ignore_case else value) in self.values

    def describe(self) -> str:
        if self.text is not None:
            return self.text
        if len(self.values) <= 2:
            return " or ".join(repr(v) for v in self.values)
        return "one of " + ", ".join(repr(v) for v in self.values)

    def hint(self, value: Any) -> str:
        if not isinstance(value, str):
            return ""
        return did_you_mean(value.lower() if self.ignore_case else value, self.values)


class InstanceOf(Constraint):
    """An instance of ``types`` (a bool only when ``bool`` is among them), shown as ``text``."""

    def __init__(self, types: type | tuple[type, ...], text: str) -> None:
        self.types = types if isinstance(types, tuple) else (types,)
        self.text = text

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.text


class Predicate(Constraint):
    """Whatever ``test`` accepts, shown as ``text`` (for a rule the others cannot say)."""

    def __init__(self, test: Callable[[Any], bool], text: str) -> None:
        self.test, self.text = test, text

    def accepts(self, value: Any) -> bool:
        return bool(self.test(value))

    def describe(self) -> str:
        return self.text


class _NoneConstraint(Constraint):
    def accepts(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


#: Accepts None (an optional parameter): ``check("seed", seed, Interval(int, None, None), NONE)``.
NONE: Constraint = _NoneConstraint()
#: True or False, nothing else (not 0, 1 or "yes").
BOOL: Constraint = InstanceOf(bool, "True or False")

# Constraint shorthand: None stands for NONE.
ConstraintLike = Constraint | None


def check(name: str, value: Any, *constraints: ConstraintLike) -> Any:
    """``value`` if one of ``constraints`` accepts it, else raise `InvalidParameterError`.

    The message is the one template: ``<name> must be <what each constraint accepts, joined by
    'or'>, got <value> (<type>)`` and, for a near miss of an `Options`, ``; did you mean
    '<closest>'?``. A constraint given as None stands for `NONE`.
    """
    resolved = [NONE if c is None else c for c in constraints]
    if any(c.accepts(value) for c in resolved):
        return value
    raise InvalidParameterError(_message(name, value, resolved))


def check_params(
    values: Mapping[str, Any] | object, spec: Mapping[str, tuple[ConstraintLike, ...]]
) -> None:
    """`check` each ``name: constraints`` of ``spec`` against ``values[name]`` (a mapping) or
    ``values.name`` (an options dataclass), in the order of ``spec``."""
    for name, constraints in spec.items():
        value = values[name] if isinstance(values, Mapping) else getattr(values, name)
        check(name, value, *constraints)


def check_keys(
    name: str, keys: Iterable[Any], accepted: Iterable[str], *, what: str = "option"
) -> None:
    """Raise `InvalidParameterError` for the first key not in ``accepted``, with a did-you-mean.

    ``<name>: unknown <what> '<key>'; did you mean '<closest>'? (accepted: a, b, c)``
    """
    known = sorted(accepted)
    for key in keys:
        if key not in known:
            raise InvalidParameterError(
                f"{name}: unknown {what} {key!r}{did_you_mean(str(key), known)} "
                f"(accepted: {', '.join(known)})"
            )


@contextlib.contextmanager
def refused_input() -> Iterator[None]:
    """Turn the ValueError/TypeError of a third-party call that only checks user input
    (scikit-learn's ``check_cv``) into `InvalidParameterError`, keeping its message.

    Only around such calls: our own checks raise `InvalidParameterError` themselves, and
    elsewhere a ValueError is a bug and must keep its traceback.
    """
    try:
        yield
    except InvalidParameterError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(str(exc)) from exc


def closest(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The up to ``n`` choices closest to ``word`` (difflib's ratio >= ``cutoff``), best first."""
    return difflib.get_close_matches(word, [str(c) for c in choices], n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``word``, or ``""`` if none is close.

    >>> did_you_mean("gp_ei", ["gp-ei", "random", "grid"])
    "; did you mean 'gp-ei'?"
    """
    close = closest(word, choices, n=n, cutoff=cutoff)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _message(name: str, value: Any, constraints: list[Constraint]) -> str:
    accepted = " or ".join(c.describe() for c in constraints)
    hint = next((h for h in (c.hint(value) for c in constraints) if h), "")
    return f"{name} must be {accepted}, got {_shown(value)} ({type(value).__name__}){hint}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)
