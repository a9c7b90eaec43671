"""Property tests for space conversion (`searchers.space`, `searchers.tune_domains`).

Each test builds a one-parameter space from a real Ray Tune domain, so Ray's own edge semantics
(randint excludes its upper bound, qrandint includes it) are what is checked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ray import tune

from searchers.space import SearchSpace
from searchers.tune_domains import from_ray

SETTINGS = settings(max_examples=60, deadline=None)
units = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def float_domains(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    kind = draw(st.sampled_from(["uniform", "loguniform", "quniform", "qloguniform"]))
    if kind == "uniform":
        lo = draw(st.floats(-1e3, 1e3))
        hi = lo + draw(st.floats(1e-3, 1e3))
        return tune.uniform(lo, hi), {"lo": lo, "hi": hi, "log": False, "q": None}
    if kind == "loguniform":
        lo = draw(st.floats(1e-6, 1e2))
        hi = lo * draw(st.floats(1.001, 1e4))
        return tune.loguniform(lo, hi), {"lo": lo, "hi": hi, "log": True, "q": None}
    q = draw(st.sampled_from([0.5, 0.1, 0.25, 0.01, 2.0]))
    k_lo = draw(st.integers(1 if kind == "qloguniform" else -50, 50))
    k_hi = k_lo + draw(st.integers(1, 60))
    lo, hi = k_lo * q, k_hi * q
    domain = tune.quniform(lo, hi, q) if kind == "quniform" else tune.qloguniform(lo, hi, q)
    return domain, {"lo": lo, "hi": hi, "log": kind == "qloguniform", "q": q}


@st.composite
def int_domains(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    kind = draw(st.sampled_from(["randint", "lograndint", "qrandint", "qlograndint"]))
    log = kind in ("lograndint", "qlograndint")
    lo = draw(st.integers(1, 40) if log else st.integers(-40, 40))
    hi = lo + draw(st.integers(1, 80))
    if kind == "randint":
        return tune.randint(lo, hi), {"lo": lo, "hi": hi - 1, "q": 1}
    if kind == "lograndint":
        return tune.lograndint(lo, hi), {"lo": lo, "hi": hi - 1, "q": 1}
    q = draw(st.integers(2, 7))
    if math.floor(hi / q) < math.ceil(lo / q):
        hi = math.ceil(lo / q) * q  # make sure a multiple of q lies inside
        hi = max(hi, lo + 1)
    domain = tune.qrandint(lo, hi, q) if kind == "qrandint" else tune.qlograndint(lo, hi, q)
    # Ray's Quantized sampler: multiples of q from ceil(lo/q)*q up to floor(hi/q)*q, hi INCLUDED.
    return domain, {"lo": math.ceil(lo / q) * q, "hi": math.floor(hi / q) * q, "q": q}


def _space(domain: Any) -> SearchSpace:
    return from_ray({"group": {"x": domain}, "c": "const"})


def _check_float(value: Any, info: dict[str, Any]) -> None:
    assert type(value) is float
    q = info["q"]
    if q is None:
        assert info["lo"] <= value <= info["hi"]
    else:
        k = round(value / q)
        assert math.isclose(k * q, value, rel_tol=1e-12, abs_tol=1e-12)
        assert round(info["lo"] / q) <= k <= round(info["hi"] / q)


def _check_int(value: Any, info: dict[str, Any]) -> None:
    assert type(value) is int
    assert info["lo"] <= value <= info["hi"]
    assert value % info["q"] == 0


@SETTINGS
@given(float_domains(), units)
def test_float_from_unit_in_domain_and_round_trip(case: Any, x: float) -> None:
    domain, info = case
    space = _space(domain)
    config = space.from_unit(np.array([x]))
    assert config["c"] == "const"
    value = config["group"]["x"]
    _check_float(value, info)
    again = space.from_unit(space.to_unit(config))["group"]["x"]
    if info["q"] is None:
        assert math.isclose(again, value, rel_tol=1e-9, abs_tol=1e-9 * (info["hi"] - info["lo"]))
    else:
        assert again == value
    assert space.decode(space.encode(config)) == config


@SETTINGS
@given(int_domains(), units)
def test_int_from_unit_in_domain_and_round_trip(case: Any, x: float) -> None:
    domain, info = case
    space = _space(domain)
    config = space.from_unit(np.array([x]))
    _check_int(config["group"]["x"], info)
    assert space.from_unit(space.to_unit(config)) == config
    assert space.decode(space.encode(config)) == config


@SETTINGS
@given(int_domains())
def test_int_edges_match_ray(case: Any) -> None:
    """The unit cube's ends are the domain's ends: randint's upper bound excluded, qrandint's
    included (Ray's sampler semantics), and every value is reachable."""
    domain, info = case
    space = _space(domain)
    assert space.from_unit(np.array([0.0]))["group"]["x"] == info["lo"]
    assert space.from_unit(np.array([1.0]))["group"]["x"] == info["hi"]
    values = space.values(0)
    assert values == list(range(info["lo"], info["hi"] + 1, info["q"]))
    for value in values:  # every value has a cell of its own
        u = space.to_unit({"group": {"x": value}, "c": 0})
        assert space.from_unit(u)["group"]["x"] == value


@SETTINGS
@given(float_domains())
def test_float_edges(case: Any) -> None:
    domain, info = case
    space = _space(domain)
    low = space.from_unit(np.array([0.0]))["group"]["x"]
    high = space.from_unit(np.array([1.0]))["group"]["x"]
    assert math.isclose(low, info["lo"], rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(high, info["hi"], rel_tol=1e-12, abs_tol=1e-12)
    _check_float(low, info)
    _check_float(high, info)


@SETTINGS
@given(st.one_of(float_domains(), int_domains()), st.integers(0, 2**32 - 1))
def test_ray_samples_lie_in_our_domain(case: Any, seed: int) -> None:
    """Every value Ray's own sampler draws is a value of our converted domain, and ours are
    valid for Ray's domain."""
    domain, info = case
    space = _space(domain)
    rng = np.random.default_rng(seed)
    for value in np.atleast_1d(domain.sample(size=20, random_state=rng)):
        space.encode({"group": {"x": value.item() if hasattr(value, "item") else value}})
    for _ in range(20):
        ours = space.sample(rng)["group"]["x"]
        if "log" in info or isinstance(ours, float):
            _check_float(ours, info)
        else:
            _check_int(ours, info)
        assert domain.is_valid(ours)


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.none(), st.booleans(), st.integers(), st.text(max_size=3), st.tuples(st.integers())
        ),
        min_size=1,
        max_size=6,
    ),
    units,
)
def test_categorical_returns_the_choice_object(choices: list[Any], x: float) -> None:
    space = _space(tune.choice(choices))
    value = space.from_unit(np.array([x]))["group"]["x"]
    assert any(value is c for c in choices)
    index = space.encode({"group": {"x": value}})[0]
    assert choices[index] is value or choices[index] == value
    assert space.from_unit(space.to_unit({"group": {"x": value}}))["group"]["x"] == value


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_log_domains_sampled_in_log_space(seed: int) -> None:
    """A log-uniform over 6 decades puts about half its mass below the geometric midpoint."""
    space = from_ray({"x": tune.loguniform(1e-6, 1.0), "k": tune.lograndint(1, 10_001)})
    rng = np.random.default_rng(seed)
    draws = [space.sample(rng) for _ in range(400)]
    below = sum(d["x"] < 1e-3 for d in draws) / len(draws)
    assert 0.35 < below < 0.65
    k_below = sum(d["k"] < 100 for d in draws) / len(draws)
    assert 0.35 < k_below < 0.65


def test_qrandint_q1_excludes_upper_like_ray() -> None:
    """Ray 2.60's Quantized sampler is upper-EXCLUSIVE for q == 1 (unlike q > 1)."""
    assert _space(tune.qrandint(0, 5, 1)).values(0) == [0, 1, 2, 3, 4]
    assert _space(tune.qrandint(0, 6, 2)).values(0) == [0, 2, 4, 6]
    assert _space(tune.qrandint(1, 10, 3)).values(0) == [3, 6, 9]
    rng = np.random.default_rng(0)
    assert max(tune.qrandint(0, 5, 1).sample(size=500, random_state=rng)) == 4
