"""Ray's saved experiment state, checked before a resume trusts it (and repaired where it can be).

Ray writes its state (the trials, the search generator, the searcher, the callbacks) to a staging
directory on the driver, each file replaced whole (the experiment state excepted), and copies the
files to the experiment's directory one by one in a background thread. A driver killed during a
copy leaves a file there cut short. Asked to restore from it, Ray logs "Failed to restore the run
state", starts the experiment over from zero in the same directory, and the resume ends with
success and a table of the wrong trials (seen in CI after a SIGKILL: 5 rows of 8, one pending).

So a resume first loads the newest of each state file (`check_ray_state`). If one does not load
and the killed run's staging directory is still on this machine (its path is noted in the
experiment directory when the first trial starts, `note_staging`), its whole, loadable set
replaces the experiment directory's set (`repair_from_staging`): what Ray would have copied had
the driver lived. Otherwise the resume stops with `ResumeStateError`, naming the file, before
anything runs; `RestoreGuard` turns any other failure of Ray's restore into the same error.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpt_ray.storage import is_uri, open_uri
from searchers.files import atomic_write
from searchers.validation import InvalidParameterError

logger = logging.getLogger(__name__)

#: Where the first trial's start notes the driver's staging directory (local experiments).
STAGING_FILE = "ray-staging.txt"

#: Ray's state files that ``Tuner.restore`` reads (the newest of each kind, by name).
RAY_STATE_PATTERNS = (
    "experiment_state-*.json",
    "search_gen_state-*.json",
    "searcher-state-*.pkl",
    "callback-states-*.pkl",
)


class ResumeStateError(InvalidParameterError):
    """``resume`` found Ray's saved state of the experiment unreadable, and ran nothing."""


def check_ray_state(location: str | os.PathLike[str]) -> None:
    """Raise `ResumeStateError` if a state file that a restore of ``location`` (a local
    directory or a storage URI) reads does not load."""
    problem = _first_unreadable(str(location))
    if problem is not None:
        name, exc = problem
        raise ResumeStateError(_unreadable_state(str(location), name, exc)) from exc


def note_staging(directory: str | os.PathLike[str], staging: str | os.PathLike[str]) -> None:
    """Note the driver's staging directory of a local experiment in ``directory``."""
    atomic_write(Path(directory, STAGING_FILE), str(staging))


def repair_from_staging(directory: str | os.PathLike[str]) -> bool:
    """Replace a local experiment's Ray state files by its staging directory's, if one of them
    does not load and the staging set does. True if it did (and logged what it did)."""
    directory = Path(directory)
    problem = _first_unreadable(str(directory))
    noted = directory / STAGING_FILE
    if problem is None or not noted.is_file():
        return False
    staging = Path(noted.read_text().strip())
    if not staging.is_dir() or _first_unreadable(str(staging)) is not None:
        return False
    replaced = []
    for pattern in RAY_STATE_PATTERNS:
        for source in staging.glob(pattern):
            atomic_write(directory / source.name, source.read_bytes())
            replaced.append(source.name)
    logger.warning(
        "resume: %s (%s) was cut short; Ray's staging copy of the state, whole, replaced %s",
        problem[0],
        type(problem[1]).__name__,
        ", ".join(sorted(replaced)),
    )
    return True


class RestoreGuard(logging.Filter):
    """While a restore runs: turn Ray's "Failed to restore the run state" (after which Ray
    restarts the experiment from zero) into `ResumeStateError`, for a failure that
    `check_ray_state` cannot see (a state that loads but does not apply)."""

    LOGGER = "ray.tune.execution.tune_controller"

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Failed to restore the run state"):
            exc = record.exc_info[1] if record.exc_info else None
            cause = exc if exc is not None else RuntimeError("no detail")
            message = _unreadable_state(self.location, "in Ray's restore", cause)
            raise ResumeStateError(message) from exc
        return True

    def __enter__(self) -> RestoreGuard:
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(self.LOGGER).removeFilter(self)


def _first_unreadable(location: str) -> tuple[str, Exception] | None:
    """``(file name, error)`` of the first newest state file that does not load, or None."""
    import pyarrow.fs
    import ray.cloudpickle as cloudpickle

    if is_uri(location):
        fs, base = open_uri(location)
    else:
        fs, base = pyarrow.fs.LocalFileSystem(), location
    base = base.rstrip("/")
    listing = fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
    names = [info.base_name for info in listing if info.type == pyarrow.fs.FileType.File]
    for pattern in RAY_STATE_PATTERNS:
        matching = fnmatch.filter(names, pattern)
        if not matching:
            continue
        newest = max(matching)  # what Ray loads
        with fs.open_input_stream(f"{base}/{newest}") as stream:
            data = stream.readall()
        # The experiment state is JSON; the others are pickles, except that a searcher's own
        # save (searchers.base) writes JSON.
        loaders: list[Callable[[bytes], Any]]
        loaders = [json.loads] if pattern.startswith("experiment") else [cloudpickle.loads]
        if pattern.startswith("searcher"):
            loaders.append(json.loads)
        errors = []
        for load in loaders:
            try:
                load(data)
                break
            except Exception as exc:  # any failure to load is the same refusal
                errors.append(exc)
        else:
            return newest, errors[0]
    return None


def _unreadable_state(location: str, what: str, exc: BaseException) -> str:
    # warm_start reads a local directory or table: from a URI, a downloaded results.parquet.
    source = f"{location}/results.parquet, downloaded" if is_uri(location) else repr(location)
    return (
        f"resume: Ray's saved state of this experiment cannot be read ({what}: "
        f"{type(exc).__name__}: {exc}); nothing was run. A driver killed while Ray copied its "
        "state leaves such a file cut short, and Ray would start the experiment over from zero. "
        f"The trials finished so far are kept in {location} (`hpt-ray show {location}`); to go "
        "on, start a new experiment (with searcher 'auto', searcher_options "
        f"{{'warm_start': {source}}} starts it from these trials)"
    )
