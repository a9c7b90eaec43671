"""Where a run lives: one directory (or storage URI location) per run, never an earlier run's.

`claim_directory` / `claim_location` give a new run a fresh ``<storage>/<name>`` (or refuse an
explicit name that already holds a run unless resuming, `ExperimentExistsError`); `holds_run`
says whether a place holds (part of) a run; `stage_remote_run` rebuilds a remote run's local
staging directory for a resume.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from hpt_ray.cluster import (
    is_uri,
)
from hpt_ray.results import (
    LOG_FILE,
    RESULTS_FILE,
    SEGMENTS_DIR,
    read_remote_file,
    remote_log_text,
    remote_names,
)
from hpt_ray.schedulers import SafeScheduler

DEFAULT_STORAGE = "hpt_ray_results"


class ExperimentExistsError(ValueError):
    """The experiment directory already holds a run, and ``resume`` was not asked for."""


def holds_run(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` (a path or a storage URI) holds (part of) a run: our log or table,
    or Ray's own state."""
    names = {LOG_FILE, SEGMENTS_DIR, RESULTS_FILE, "tuner.pkl", SafeScheduler.STATE_FILE}
    if is_uri(directory):
        present = remote_names(str(directory))
        return bool(present & names) or any(
            n.startswith("experiment_state-") and n.endswith(".json") for n in present
        )
    path = Path(directory)
    if not path.is_dir():
        return False
    return any((path / n).exists() for n in names) or any(path.glob("experiment_state-*.json"))


def claim_location(
    storage: str, name: str | None, *, prefix: str = "experiment", resume: bool = False
) -> tuple[str, str]:
    """`claim_directory` for a storage URI: ``(name, "<storage>/<name>")``.

    Without a ``name`` a fresh one is made; an explicit ``name`` whose location already holds a
    run needs ``resume=True``, else an `ExperimentExistsError`. Nothing is written.
    """
    storage = storage.rstrip("/")
    if name is None:
        while True:
            name = unique_name(prefix)
            if not holds_run(f"{storage}/{name}"):
                return name, f"{storage}/{name}"
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a directory name (no '/'), got {name!r}")
    location = f"{storage}/{name}"
    if not resume and holds_run(location):
        raise ExperimentExistsError(
            f"name: {location} already holds a run. To continue it: resume=True (CLI: "
            f"`hpt-ray resume {location}`); to start a new run: give another name (CLI: "
            "--name NEW), or omit the name for a fresh one; nothing was changed"
        )
    return name, location


def stage_remote_run(location: str, directory: Path, *, names: Sequence[str] = ()) -> None:
    """Rebuild a remote run's staging ``directory`` from ``location``: the log (its segments
    joined) and ``names`` that are there, so that a resumed run continues from them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOG_FILE).write_text(remote_log_text(location), encoding="utf-8")
    for name in names:
        data = read_remote_file(location, name)
        if data is not None:
            (directory / name).write_bytes(data)


def unique_name(prefix: str) -> str:
    """``<prefix>-<YYYYmmdd-HHMMSS>-<4 hex>``: two runs started in the same second differ."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix).strip("-") or "experiment"
    return f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def claim_directory(
    storage: Path, name: str | None, *, prefix: str = "experiment", resume: bool = False
) -> tuple[str, Path]:
    """The run's directory: a new one for a new run, never an earlier run's.

    Without a ``name`` a fresh one is made (`unique_name`). An explicit ``name`` whose directory
    already holds a run needs ``resume=True``; otherwise an `ExperimentExistsError` says how to
    go on. Nothing is deleted.
    """
    if name is None:
        storage.mkdir(parents=True, exist_ok=True)
        while True:
            name = unique_name(prefix)
            try:
                (storage / name).mkdir()
            except FileExistsError:
                continue
            return name, storage / name
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a directory name (no '/'), got {name!r}")
    directory = storage / name
    if not resume and holds_run(directory):
        raise ExperimentExistsError(
            f"name: {directory} already holds a run. To continue it: resume=True (CLI: "
            f"`hpt-ray resume {directory}`); to start a new run: give another name (CLI: "
            "--name NEW), or omit the name for a fresh directory; nothing was changed"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return name, directory
