"""Shared pytest fixtures: one local Ray runtime for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """Start a 2-CPU local Ray once per session (it costs seconds) and stop it at the end."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
