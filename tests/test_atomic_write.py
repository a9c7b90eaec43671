"""`searchers.files.atomic_write`: the one way a run replaces a file (issue #13 item 4).

A reader, or a resumed run after a crash, finds the old content or the new, never half; nothing
is left behind when a write fails; the bytes and the new name are synced to disk. Failures here
are real ones: a file-size limit hit mid-write (as a full disk would), a read-only directory, a
text that cannot be encoded.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest

from hpt_ray.table import write_metadata, write_results
from searchers.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_writes_bytes_and_text(tmp_path):
    target = tmp_path / "state.bin"
    assert atomic_write(target, b"\x00\x01binary") == target
    assert target.read_bytes() == b"\x00\x01binary"
    atomic_write(str(target), "größe: 1 µm")  # str is written as UTF-8, a str path works too
    assert target.read_bytes() == "größe: 1 µm".encode()
    assert _names(tmp_path) == ["state.bin"]


def test_a_write_cut_short_keeps_the_old_file_and_no_temp_file(tmp_path):
    """The file-size limit (RLIMIT_FSIZE) fails the write after the temp file has part of the
    new bytes, as a full disk does; the old content stays and the temp file is removed."""
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old table")
    script = textwrap.dedent(f"""
        import resource, signal
        from searchers.files import atomic_write
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG as an OSError, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
        try:
            atomic_write({str(target)!r}, b"x" * 1_000_000)
        except OSError as exc:
            print("failed:", exc.errno)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed: 27" in done.stdout  # EFBIG: the write itself failed, mid-way
    assert target.read_bytes() == b"old table"
    assert _names(tmp_path) == ["results.parquet"]


def test_text_that_cannot_be_encoded_leaves_the_old_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old report")
    with pytest.raises(UnicodeEncodeError):
        atomic_write(target, "half \udcff a surrogate")
    assert target.read_text() == "old report"
    assert _names(tmp_path) == ["report.html"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_raises_and_keeps_the_old_file(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    target = directory / "experiment.json"
    target.write_text("{}")
    directory.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            atomic_write(target, "{'new': 1}")
        assert target.read_text() == "{}"
        assert _names(directory) == ["experiment.json"]
    finally:
        directory.chmod(0o755)


def test_a_reader_sees_the_old_or_the_new_content_never_a_mix(tmp_path):
    target = tmp_path / "table.bin"
    versions = [b"a" * 200_000, b"b" * 300_000]
    atomic_write(target, versions[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(60):
            atomic_write(target, versions[i % 2])
    finally:
        stop.set()
        reader.join()
    assert seen <= set(versions)
    assert _names(tmp_path) == ["table.bin"]


def _record_fsyncs(monkeypatch) -> list[tuple[int, bool]]:
    """``(inode, is a directory)`` of every fsync-ed descriptor; the real fsync still runs."""
    calls: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        calls.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


@pytest.mark.parametrize(
    ("write", "name"),
    [
        (
            lambda d: write_results(pd.DataFrame({"trial_id": ["a"], "final_metric": [1.0]}), d),
            "results.parquet",
        ),
        (lambda d: write_metadata(d, {"metric": "acc", "mode": "max"}), "experiment.json"),
    ],
    ids=["results.parquet", "experiment.json"],
)
def test_the_run_files_are_synced_before_and_after_the_rename(tmp_path, monkeypatch, write, name):
    """The table and the metadata were renamed into place unsynced: a power cut could leave an
    empty results.parquet under the new name. Now the file's bytes (the temp file, whose inode
    the target keeps) and its directory are synced."""
    calls = _record_fsyncs(monkeypatch)
    write(tmp_path)
    assert (os.stat(tmp_path / name).st_ino, False) in calls
    assert (os.stat(tmp_path).st_ino, True) in calls
