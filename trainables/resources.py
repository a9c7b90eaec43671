"""Per-trial resource requests: validate a user's spec before Ray turns it into a placement group.

A spec is a mapping such as ``{"cpu": 2, "gpu": 0.5, "memory": 4 * 1024**3, "accelerator_x": 1}``:

- ``cpu``: CPUs per trial (fractions allowed; the PyTorch trainable uses ``max(1, floor(cpu))``
  threads);
- ``gpu``: GPUs per trial; a fraction below 1 shares one device (Ray requires quantities above 1
  to be whole numbers);
- ``memory``: bytes of RAM reserved for the trial (a whole number; Ray only schedules on it);
- any other key: a custom resource declared on the cluster's nodes (``ray start --resources``).

Ray's own precision limit (0.0001) applies to every quantity. The returned dict is what
``tune.with_resources(trainable, resources)`` accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

from searchers.validation import InstanceOf, Interval, InvalidParameterError, check

# Ray rejects fractional quantities finer than this ("The precision of the fractional quantity of
# resource ... cannot go beyond 0.0001").
RESOURCE_PRECISION = 1e-4

DEFAULT_RESOURCES: dict[str, float] = {"cpu": 1, "gpu": 0}

# Keys Ray spells in upper case in placement-group bundles; we accept either spelling.
_ALIASES = {"cpu": "cpu", "CPU": "cpu", "gpu": "gpu", "GPU": "gpu", "memory": "memory"}
# Keys Ray's resource dict treats specially or that a trial cannot request.
_REJECTED = {
    "custom_resources": "list custom resources as top-level keys, e.g. {'cpu': 1, 'my_res': 1}",
    "object_store_memory": "the object store is shared by the node; request 'memory' instead",
}


def resources_from_spec(spec: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Validate a per-trial resource spec and return it with canonical keys.

    Args:
        spec: ``{"cpu": n, "gpu": n, "memory": bytes, "<custom>": n}``; missing ``cpu``/``gpu``
            default to 1 and 0. None gives the defaults.

    Returns:
        A new dict with lower-case ``cpu``, ``gpu`` (and ``memory`` and custom keys when given),
        ready for ``tune.with_resources``.

    Raises:
        InvalidParameterError (a TypeError and a ValueError): the spec is not a mapping, a key
            is not a string, a value is not a number; a negative, non-finite or too precise
            quantity, a fractional GPU count above 1, a fractional memory size, a key given
            twice (``cpu`` and ``CPU``) or a key that cannot be requested per trial.
    """
    if spec is None:
        return dict(DEFAULT_RESOURCES)
    if not isinstance(spec, Mapping):
        raise InvalidParameterError(
            f"resources must be a dict like {{'cpu': 1, 'gpu': 0.5}}; got {type(spec).__name__}."
        )
    out: dict[str, float] = {}
    for key, value in spec.items():
        if not isinstance(key, str) or not key:
            raise InvalidParameterError(f"resource names must be non-empty strings; got {key!r}.")
        if key in _REJECTED:
            raise InvalidParameterError(
                f"resource {key!r} cannot be requested here: {_REJECTED[key]}."
            )
        name = _ALIASES.get(key, key)
        if name in out:
            raise InvalidParameterError(
                f"resource {name!r} is given twice (as {name!r} and {key!r}); keep one."
            )
        out[name] = _check_quantity(name, value)
    for name, default in DEFAULT_RESOURCES.items():
        out.setdefault(name, default)
    return out


def _check_quantity(name: str, value: Any) -> float:
    # bool is a Real subclass; {"gpu": True} is almost surely a mistake for 1.
    check(f"resource {name!r}", value, InstanceOf(Real, "a number"))
    check(f"resource {name!r}", value, Interval(float, 0, math.inf, closed="left"))
    quantity = float(value)
    whole = quantity.is_integer()
    if name == "memory":
        if not whole:
            raise InvalidParameterError(f"resource 'memory' is a number of bytes; got {value!r}.")
        return int(quantity)
    if name == "gpu" and quantity > 1 and not whole:
        raise InvalidParameterError(
            f"resource 'gpu' above 1 must be a whole number (Ray shares a device only in "
            f"fractions below 1); got {value!r}. "
            f"Use {math.floor(quantity)} or {math.ceil(quantity)}."
        )
    rounded = round(quantity / RESOURCE_PRECISION) * RESOURCE_PRECISION
    if not whole and abs(rounded - quantity) > 1e-12:
        raise InvalidParameterError(
            f"resource {name!r} = {value!r} is finer than Ray's precision of "
            f"{RESOURCE_PRECISION}; round it to 4 decimals."
        )
    return int(quantity) if whole else quantity
