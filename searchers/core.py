"""The protocol every search algorithm core implements, and its RNG helpers. No Ray here.

A core is the algorithm alone: it sees unit-cube points and minimized floats, never configs, trial
ids, metrics or Ray. `searchers.base.BaseSearcher` drives it and does the rest (space conversion,
sign, pending trials, bad results, duplicates, state files).

Notation:
    dim: number of tunable parameters (``space.dim``).
    u: (dim,) float64 in [0, 1].
    pending: (n_pending, dim) unit points suggested but not yet told.
    value: float, finite, to be MINIMIZED (the base flips the sign for mode="max").

Lifecycle: ``core = Core(space, rng=rng, **options)``; repeatedly ``u = core.ask(pending)`` and
later ``core.tell(u, value)``; ``core.state()`` returns JSON-safe data (with the RNG state) and
``Core.from_state(space, state)`` rebuilds a core that continues exactly where it was.
A core reads the space only for metadata (``dim``, ``kinds``, ``n_choices``, ``unit_levels``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from searchers.space import SearchSpace

__all__ = ["SearchCore", "rng_from_state", "rng_state", "spawn_rngs"]


@runtime_checkable
class SearchCore(Protocol):
    """An ask/tell optimizer on the unit cube that minimizes."""

    def ask(self, pending: np.ndarray) -> np.ndarray | None:
        """The next point to evaluate ((dim,) in [0, 1]), or None when it has none right now.

        ``pending`` ((n_pending, dim)) lists points in flight, for cores that condition on them
        (a constant liar, a population waiting for its generation). Asking twice without a tell
        may return the same point; the base then asks again a bounded number of times.
        """
        ...

    def tell(self, u: np.ndarray, value: float) -> None:
        """Record that point ``u`` ((dim,)) scored ``value`` (finite; lower is better)."""
        ...

    @property
    def finished(self) -> bool:
        """True when ``ask`` will never return a point again (e.g. a grid is exhausted)."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-serializable state, RNG included."""
        ...

    @classmethod
    def from_state(cls, space: SearchSpace, state: dict[str, Any]) -> SearchCore:
        """Rebuild the core ``state()`` came from."""
        ...


def spawn_rngs(seed: int | None, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one seed (None: fresh OS entropy)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's bit-generator state: a JSON-safe dict (big ints are fine in JSON)."""
    return dict(rng.bit_generator.state)


def rng_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A generator that continues exactly where the one ``rng_state`` read from was."""
    name = state.get("bit_generator")
    bit_generator_cls = getattr(np.random, str(name), None)
    if bit_generator_cls is None or not isinstance(bit_generator_cls, type):
        raise ValueError(f"unknown bit generator {name!r} in saved RNG state")
    bit_generator = bit_generator_cls()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
