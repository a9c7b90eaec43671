"""Files that survive a crash: `atomic_write` and `fsync_directory` (standard library only).

Every state file and table of a run (a searcher's JSON state, the scheduler's state, the trials
table, ``experiment.json``, the HTML report) is replaced whole, so a reader, or a resumed run
after a crash or a power cut, finds the old file or the new one, never half of one. It lives in
the lowest package (``searchers`` imports neither Ray's runner nor ``hpt_ray``) so that
``searchers`` and ``hpt_ray`` share it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "fsync_directory"]


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Replace ``path`` with ``data`` (str is written as UTF-8) atomically and durably.

    The bytes go to a temp file in the same directory (``os.replace`` is atomic only within one
    filesystem), are flushed and ``fsync``-ed, and the temp file is renamed over ``path``; then
    the directory is synced, so the new name survives a power cut too (POSIX). If anything fails
    (encoding, a full disk, a read-only directory) the exception propagates, ``path`` keeps its
    old content and no temp file is left. Returns ``path`` as a `Path`.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    # Temp files start with a dot and the target's stem (".results-XXXX.tmp"), so a listing
    # shows whose they are; hidden, so a glob for the real files never picks one up.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)
    return target


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a new or renamed name in ``directory`` durable (POSIX needs the directory synced).

    Best effort: a filesystem or platform that cannot sync a directory (Windows cannot open one)
    is skipped silently, since the file's own bytes are already synced.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
