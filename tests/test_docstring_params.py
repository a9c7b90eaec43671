"""Every parameter of the public API is documented (issue #13 item 7).

As scikit-learn's ``sklearn/tests/test_docstring_parameters.py``: for each public function and
class, and each public method a public class defines itself, every parameter of its signature
has an entry in the docstring's ``Args:`` section (``Attributes:`` also counts for a class, whose
constructor parameters are its fields). An entry is a line at the section's first indentation,
``name: ...``, ``a, b: ...`` or ``name (type): ...``; a mention in running text does not count.
Not checked: ``self``/``cls``, private parameters (``_name``), and ``*args``/``**kwargs`` whose
name the docstring mentions anywhere (``options: passed to ...``).

The public API: ``hpt_ray.__all__``, ``trainables.__all__``, and the functions of
``searchers.__all__`` (the registry: ``make_searcher``, ``register``...). The searcher classes
are not in it yet. ``tests/test_docstrings.py`` runs the ``>>>`` examples; this file only
reads signatures and docstrings.

`KNOWN_UNDOCUMENTED` lists what is missing today. It may only shrink: a parameter missing and
not listed fails (document it), and a listed one that is documented now (or gone) fails too
(remove it from the set).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hpt_ray
import searchers
import trainables

# To document: each is "<public name>:<parameter>". Remove an entry when its docstring gains it.
KNOWN_UNDOCUMENTED: set[str] = set()

PARAMETER_SECTIONS = ("Args", "Arguments", "Parameters")
# Any Google-style section header ends the one before it.
SECTION_HEADER = re.compile(r"^(?P<indent>[ \t]*)(?P<title>[A-Z][A-Za-z ]*):[ \t]*$")
# "name:", "a, b:" or "name (type):" at the start of a line.
ENTRY = re.compile(
    r"^[ \t]*(?P<names>[A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*)[ \t]*(?:\([^)]*\))?:"
)


def documented_names(doc: str, sections: tuple[str, ...]) -> set[str]:
    """The names with an entry in the docstring's ``sections`` (``Args:``...).

    An entry starts at the section's first indentation; deeper lines continue it.
    """
    names: set[str] = set()
    lines = doc.expandtabs().splitlines()
    i = 0
    while i < len(lines):
        header = SECTION_HEADER.match(lines[i])
        i += 1
        if not header or header["title"] not in sections:
            continue
        base = len(header["indent"])
        entry_indent = None
        while i < len(lines):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and indent <= base:
                break  # dedented: the section (or docstring part) ended
            if line.strip():
                entry_indent = indent if entry_indent is None else entry_indent
                entry = ENTRY.match(line) if indent == entry_indent else None
                if entry:
                    names |= {name.strip() for name in entry["names"].split(",")}
            i += 1
    return names


def _public_api() -> Iterator[tuple[str, Any]]:
    for name in hpt_ray.__all__:
        yield f"hpt_ray.{name}", getattr(hpt_ray, name)
    for name in trainables.__all__:
        yield f"trainables.{name}", getattr(trainables, name)
    for name in searchers.__all__:
        obj = getattr(searchers, name)
        if inspect.isfunction(obj):
            yield f"searchers.{name}", obj


OUR_PACKAGES = ("hpt_ray", "searchers", "trainables")


def _checked() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Each public callable, and the public methods a public class defines itself."""
    for name, obj in _public_api():
        if not str(getattr(obj, "__module__", "")).startswith(OUR_PACKAGES):
            continue  # re-exported from Ray (hpt_ray.report is ray.tune.report): its own docs
        yield name, obj
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and inspect.isfunction(value):
                    yield f"{name}.{attr}", value


def _undocumented(name: str, obj: Callable[..., Any]) -> set[str]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return set()  # no Python signature (an exception class keeping BaseException's)
    doc = inspect.getdoc(obj) or ""
    sections = PARAMETER_SECTIONS + (("Attributes",) if inspect.isclass(obj) else ())
    documented = documented_names(doc, sections)
    missing = set()
    for param in signature.parameters.values():
        if param.name in ("self", "cls") or param.name.startswith("_"):
            continue
        variadic = param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        if variadic and re.search(rf"\b{param.name}\b", doc):
            continue
        if param.name not in documented:
            missing.add(f"{name}:{param.name}")
    return missing


def _all_undocumented() -> set[str]:
    missing: set[str] = set()
    for name, obj in _checked():
        missing |= _undocumented(name, obj)
    return missing


def test_public_parameters_are_documented():
    new = _all_undocumented() - KNOWN_UNDOCUMENTED
    assert not new, (
        f"public parameters without an entry in their docstring's Args section: {sorted(new)}; "
        "document each one (`name: what it is`)"
    )


def test_known_undocumented_only_shrinks():
    done = KNOWN_UNDOCUMENTED - _all_undocumented()
    assert not done, (
        f"documented now (or gone): {sorted(done)}; remove them from KNOWN_UNDOCUMENTED in "
        "tests/test_docstring_params.py"
    )


def test_the_check_reads_the_whole_api():
    # Guards the discovery: the main entry points are seen with their parameters.
    checked = dict(_checked())
    for name in (
        "hpt_ray.tune_model",
        "hpt_ray.TuneSearchCV",
        "searchers.make_searcher",
        "trainables.make_torch_trainable",
        "hpt_ray.TuneResult.best_model",
    ):
        assert name in checked, name
    tune_model_params = set(inspect.signature(hpt_ray.tune_model).parameters)
    documented = documented_names(inspect.getdoc(hpt_ray.tune_model) or "", PARAMETER_SECTIONS)
    assert len(documented & tune_model_params) >= 20


DOC = """Do a thing.

Args:
    alpha: the first; ``beta`` is mentioned here, which is not an entry.
        a continuation line: with a colon, still not an entry
    gamma, delta: two at once.
    eps (float): typed.

Returns:
    zeta: not a parameter section.

Raises:
    ValueError: never.
    eta: not in Args.
"""


def test_documented_names_reads_entries_only():
    assert documented_names(DOC, PARAMETER_SECTIONS) == {"alpha", "gamma", "delta", "eps"}


def test_undocumented_parameter_is_found():
    def f(alpha: int, beta: int, *, eta: int = 0, **options: Any) -> None:
        """Do a thing.

        Args:
            alpha: the first; ``beta`` named in passing, ``options`` too.

        Raises:
            eta: misplaced.
        """

    assert _undocumented("f", f) == {"f:beta", "f:eta"}


@pytest.mark.parametrize("kind", ["class", "function"])
def test_attributes_count_for_classes_only(kind):
    doc = """A thing.

    Attributes:
        alpha: the field.
    """

    class Thing:
        def __init__(self, alpha: int) -> None:
            self.alpha = alpha

    def make_thing(alpha: int) -> None:
        pass

    Thing.__doc__ = doc
    make_thing.__doc__ = doc
    obj = Thing if kind == "class" else make_thing
    expected = set() if kind == "class" else {"make_thing:alpha"}
    assert _undocumented(obj.__name__, obj) == expected
