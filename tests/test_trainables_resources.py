"""resources_from_spec: canonical keys, Ray's quantity rules, and errors that name the key."""

from __future__ import annotations

import pytest

from trainables.resources import resources_from_spec


def test_defaults_and_canonical_keys() -> None:
    assert resources_from_spec(None) == {"cpu": 1, "gpu": 0}
    assert resources_from_spec({"CPU": 2, "GPU": 0.5}) == {"cpu": 2, "gpu": 0.5}
    spec = {"cpu": 0.5, "gpu": 2, "memory": 2 * 1024**3, "tpu_slice": 1}
    assert resources_from_spec(spec) == spec


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ({"cpu": -1}, ValueError, r"'cpu' must be a finite number >= 0"),
        ({"gpu": 1.5}, ValueError, r"'gpu' above 1 must be a whole number"),
        ({"gpu": 0.00001}, ValueError, r"'gpu' = 1e-05 is finer than Ray's precision"),
        ({"memory": 1.5}, ValueError, r"'memory' is a number of bytes"),
        ({"my_res": "2"}, TypeError, r"'my_res' must be a number"),
        ({"gpu": True}, TypeError, r"'gpu' must be a number"),
        ({"cpu": 1, "CPU": 2}, ValueError, r"'cpu' is given twice"),
        ({"custom_resources": {"a": 1}}, ValueError, r"'custom_resources' cannot be requested"),
        ({"cpu": float("nan")}, ValueError, r"'cpu' must be a finite number"),
        ([("cpu", 1)], TypeError, r"resources must be a dict"),
    ],
)
def test_invalid_specs(spec: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        resources_from_spec(spec)  # type: ignore[arg-type]
