"""Where a run lives: its directory or storage URI location, the files in it, and the I/O that
reaches a location through ``pyarrow.fs``.

A run's files, in ``<storage_path>/<name>/``:
    ``trials.jsonl`` (`LOG_FILE`): the trial log (`hpt_ray.trial_log`); at a URI a folder of
    segments, ``trials.jsonl.d/<6-digit sequence>.jsonl`` (`SEGMENTS_DIR`), since S3 objects
    cannot be appended to;
    ``results.parquet`` (`RESULTS_FILE`) and ``experiment.json`` (`META_FILE`): the trials table
    and what ranks it (`hpt_ray.table`);
    Ray's own state (``tuner.pkl``, ``experiment_state-*.json``) and the scheduler's
    (``SafeScheduler.STATE_FILE``).

Claiming. `claim_directory` / `claim_location` give a new run a fresh ``<storage>/<name>`` (or
refuse an explicit name that already holds a run unless resuming, `ExperimentExistsError`);
`holds_run` says whether a place holds (part of) a run.

Storage URIs (`is_uri`: ``s3://bucket/hpt``, ``gs://...``, ``file:///...``) are opened with the
credentials of this machine (`open_uri`). A run at a URI keeps its files in a local
`staging_directory` and a `RemoteMirror` uploads them: each finished trial's log bytes as a new
segment before the driver moves on, whole files (the table) each time they are rewritten.
`remote_log_text` joins the segments back in order; `stage_remote_run` rebuilds a staging
directory from a location for a resume.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from hpt_ray.schedulers import SafeScheduler
from searchers.validation import InvalidParameterError

DEFAULT_STORAGE = "hpt_ray_results"
LOG_FILE = "trials.jsonl"
# At a URI, the log is a folder of segments (S3 objects cannot be appended to).
SEGMENTS_DIR = "trials.jsonl.d"
RESULTS_FILE = "results.parquet"
META_FILE = "experiment.json"


class RunNotFoundError(InvalidParameterError, FileNotFoundError):
    """A run directory or URI to show, resume or report on that holds no run (or no table)."""


class ExperimentExistsError(InvalidParameterError):
    """The experiment directory already holds a run, and ``resume`` was not asked for."""


def is_uri(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` storage (s3, gs, file, ...), False for a local path.

    >>> is_uri("s3://bucket/hpt"), is_uri("hpt_ray_results")
    (True, False)
    """
    return "://" in str(path)


# -- claiming a run's place --------------------------------------------------------------------
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


# -- a run at a storage URI --------------------------------------------------------------------
def staging_directory(location: str) -> Path:
    """The local directory where the writer of a run stored at ``location`` (a URI) keeps its
    files before they go up: one per location on this machine, emptied at each start."""
    tail = location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in tail) or "experiment"
    digest = hashlib.sha1(location.rstrip("/").encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "hpt_ray_staging" / f"{safe}-{digest}"


def stage_remote_run(location: str, directory: Path, *, names: Sequence[str] = ()) -> None:
    """Rebuild a remote run's staging ``directory`` from ``location``: the log (its segments
    joined) and ``names`` that are there, so that a resumed run continues from them."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LOG_FILE).write_text(remote_log_text(location), encoding="utf-8")
    for name in names:
        data = read_remote_file(location, name)
        if data is not None:
            (directory / name).write_bytes(data)


class RemoteMirror:
    """The writer's files at a storage URI: log segments, and copies of whole files.

    Pickled (Ray pickles callbacks into ``tuner.pkl``) as its location only: the filesystem
    object is opened again where it is used.
    """

    def __init__(self, location: str) -> None:
        self.location = location.rstrip("/")
        self._fs: Any = None
        self._base = ""
        self._offset = 0  # bytes of the local log already uploaded
        self._next: int | None = None  # sequence number of the next segment
        self._failed = False

    def start(self, log_path: Path) -> None:
        """Continue after the local log as it is now (rebuilt from the URI on resume)."""
        self._offset = log_path.stat().st_size if log_path.exists() else 0
        self._next = None

    def push_log(self, log_path: Path) -> None:
        """Upload the bytes of the local log appended since the last upload, as a new segment."""
        if not log_path.exists():
            return
        with open(log_path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        if not data:
            return
        if self._next is None:
            existing = _segment_numbers(*self._filesystem())
            self._next = max(existing, default=0) + 1
        name = f"{SEGMENTS_DIR}/{self._next:06d}.jsonl"
        if self._put(name, data):
            self._offset += len(data)
            self._next += 1

    def put_file(self, path: Path) -> None:
        """Upload a copy of a local file (if it exists) under its own name."""
        if path.exists():
            self._put(path.name, path.read_bytes())

    def _put(self, name: str, data: bytes) -> bool:
        try:
            fs, base = self._filesystem()
            # One PUT: an S3 object appears whole or not at all, so a reader never sees half.
            with fs.open_output_stream(f"{base}/{name}") as out:
                out.write(data)
        except OSError as exc:
            # A storage hiccup must not end a long experiment: the bytes stay in the local log
            # and go up with the next segment. Said once; the final upload says it again.
            if not self._failed:
                warnings.warn(
                    f"{self.location}/{name}: upload failed ({exc}); retried with the next "
                    "finished trial",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._failed = True
            return False
        return True

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            self._fs, base = open_uri(self.location)
            self._base = base.rstrip("/")
        return self._fs, self._base

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]


def remote_log_text(location: str) -> str:
    """The log of the run at ``location``: its segments in order, else a whole ``trials.jsonl``
    (the segments hold everything the whole file would, and lines written after it)."""
    fs, base = open_uri(location)
    base = base.rstrip("/")
    numbers = sorted(_segment_numbers(fs, base))
    if numbers:
        parts = []
        for number in numbers:
            data = _read_bytes(fs, f"{base}/{SEGMENTS_DIR}/{number:06d}.jsonl") or b""
            parts.append(data.decode("utf-8"))
        return "".join(parts)
    whole = _read_bytes(fs, f"{base}/{LOG_FILE}")
    return "" if whole is None else whole.decode("utf-8")


# -- files at a storage URI --------------------------------------------------------------------
def open_uri(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path in it)`` for a storage URI; ValueError if pyarrow cannot."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(
            f"{uri!r}: pyarrow cannot open this storage URI ({exc}); give a local directory or "
            "an s3:// / gs:// URI with credentials configured on this machine"
        ) from exc


def remote_names(location: str) -> set[str]:
    """Names of the files and folders directly under ``location`` (empty if there is none)."""
    import pyarrow.fs

    fs, base = open_uri(location)
    selector = pyarrow.fs.FileSelector(base.rstrip("/"), allow_not_found=True)
    return {info.base_name for info in fs.get_file_info(selector)}


def read_remote_file(location: str, name: str) -> bytes | None:
    """The bytes of ``<location>/<name>``, or None if there is no such file."""
    fs, base = open_uri(location)
    return _read_bytes(fs, f"{base.rstrip('/')}/{name}")


def read_replaced(fs: Any, path: str, parse: Callable[[bytes], Any], *, attempts: int = 5) -> Any:
    """``parse(bytes)`` of ``path`` in ``fs`` (from `open_uri`), an object that a running writer
    replaces from time to time, or None if there is none.

    pyarrow reads an S3 object as a size request, then ranged reads: an object replaced in
    between comes back as a prefix of the new version (seen against a local S3 server while a
    run rewrote results.parquet). Such a read does not parse; it is read again.
    """
    for attempt in range(attempts):
        data = _read_bytes(fs, path)
        if data is None:
            return None
        try:
            return parse(data)
        except (pa.ArrowInvalid, OSError, ValueError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return None


def write_remote_file(location: str, name: str, data: bytes) -> None:
    """Write ``<location>/<name>`` (one object, replaced whole)."""
    fs, base = open_uri(location)
    with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as out:
        out.write(data)


def upload_files(local_dir: str | os.PathLike[str], location: str, names: Sequence[str]) -> None:
    """Copy ``names`` (those that exist) from ``local_dir`` to ``location`` (overwriting)."""
    fs, base = open_uri(location)
    fs.create_dir(base, recursive=True)
    for name in names:
        source = Path(local_dir) / name
        if source.exists():
            with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as out:
                out.write(source.read_bytes())


def _read_bytes(fs: Any, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as handle:
            return bytes(handle.read())
    except FileNotFoundError:
        return None


def _segment_numbers(fs: Any, base: str) -> list[int]:
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(f"{base}/{SEGMENTS_DIR}", allow_not_found=True)
    numbers = []
    for info in fs.get_file_info(selector):
        stem, _, suffix = info.base_name.partition(".")
        if suffix == "jsonl" and stem.isdigit():
            numbers.append(int(stem))
    return numbers
