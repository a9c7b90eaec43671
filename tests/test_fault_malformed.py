"""Property-based: malformed experiment files and spaces give a clear error before any trial
starts, never a traceback from deep inside Ray; the error names the field (or the parameter of
the space) that is wrong."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ray import tune

from hpt_ray.experiment import FIELDS, ExperimentError, parse_experiment
from hpt_ray.user_space import to_tune_space, validate_space

pytestmark = pytest.mark.fault

GOOD = {
    "model": "sklearn.linear_model.Ridge",
    "data": "diabetes",
    "space": {"alpha": {"loguniform": [1e-3, 10.0]}},
    "num_samples": 2,
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
domain_names = st.sampled_from(
    [
        "uniform",
        "loguniform",
        "quniform",
        "randint",
        "qrandint",
        "lograndint",
        "choice",
        "grid_search",
        "unifrom",
        "normal",
    ]
)
domain_entry = st.one_of(
    junk,
    st.builds(lambda name, args: {name: args}, domain_names, st.lists(junk, max_size=4)),
    st.builds(
        lambda name, a, b: {name: [a, b]},
        domain_names,
        st.floats(-10, 10, allow_nan=False),
        st.floats(-10, 10, allow_nan=False),
    ),
    # [low, high, q] for the quantized kinds: q of 0 or below must be refused by name.
    st.builds(
        lambda name, a, b, q: {name: [a, b, q]},
        st.sampled_from(["quniform", "qloguniform", "qrandint", "qlograndint"]),
        st.integers(-5, 20),
        st.integers(-5, 20),
        st.one_of(st.integers(-2, 3), st.floats(-1, 1, allow_nan=False)),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from([*FIELDS, "bogus_field"]), value=junk)
def test_any_bad_field_value_is_an_experiment_error_or_accepted(field, value):
    document = {**GOOD, field: value}
    try:
        experiment = parse_experiment(document)
    except ExperimentError as exc:
        message = str(exc)
        assert message.startswith("<experiment>: ")  # it names where, then what
        assert named(message, [field]) == [field], message
        return
    # Accepted: then the space must also pass validation or fail naming its parameter.
    _validate_or_clear_error(experiment.space)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(entries={"alpha": {"quniform": [0, 0, 0]}})  # once a ZeroDivisionError inside Ray
@given(
    entries=st.dictionaries(
        st.sampled_from(["alpha", "tol", "max_iter"]), domain_entry, min_size=1, max_size=3
    )
)
def test_random_spaces_fail_clearly_or_validate(entries):
    document = {**GOOD, "space": entries}
    try:
        experiment = parse_experiment(document)
    except ExperimentError as exc:
        # It names a parameter of the space, and one that is wrong on its own.
        message = str(exc)
        culprits = named(message, list(entries))
        assert culprits, message
        with pytest.raises(ExperimentError):
            parse_experiment({**GOOD, "space": {culprits[0]: entries[culprits[0]]}})
        return
    _validate_or_clear_error(experiment.space)


@settings(max_examples=200, deadline=None)
@given(
    low=st.floats(-1e3, 1e3, allow_nan=False),
    high=st.floats(-1e3, 1e3, allow_nan=False),
    kind=st.sampled_from(["uniform", "loguniform", "randint"]),
)
def test_python_api_bounds_fail_before_ray(low, high, kind):
    try:
        domain = {
            "uniform": lambda: tune.uniform(low, high),
            "loguniform": lambda: tune.loguniform(low, high),
            "randint": lambda: tune.randint(int(low), int(high)),
        }[kind]()
    except ValueError:
        return  # Ray's own constructor refused it, before anything started
    _validate_or_clear_error({"alpha": domain})


def _validate_or_clear_error(space):
    from sklearn.linear_model import Ridge

    try:
        validate_space(to_tune_space(space), searcher="random", estimator=Ridge())
    except (ValueError, TypeError) as exc:
        # It names the parameter, or the field itself when there is no parameter to name.
        message = str(exc)
        assert named(message, list(space) or ["space"]), message


def named(message: str, names: list[str]) -> list[str]:
    """The names that ``message`` shows: quoted as Python writes them (``'\\x1f'``, ``''``), or
    as a word (``tol`` in "space.tol", not in "tolerance")."""
    return [
        n
        for n in names
        if repr(n) in message or (n and re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message))
    ]
