"""One writer per output directory: an exclusive lock held for the life of a run, and the cleanup
of what a killed writer left behind.

A training run, a dataset build and a sweep trial each write into one directory. Two processes
started on the same directory at the same moment would both pass an "already holds a run" check
(a check-then-act race) and interleave their files. :class:`DirectoryLock` closes the race with
``fcntl.flock`` on ``<dir>/.lock``: the kernel grants it to one process, and releases it when that
process exits, however it exits. The lock file also records the holder's PID, so a second process
names the holder, and a lock left by a process that died is reported as stale before it is taken.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"
#: ``<run dir>/aside-<time>-<why>/``: a run's files that a restart would otherwise have replaced
ASIDE_PREFIX = "aside-"


class DirectoryLockedError(RuntimeError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """An exclusive lock on ``directory`` (created if missing) for one writer, as a context manager.

    ``what`` names the writer (``"training run"``, ``"dataset build"``); it is recorded with the PID, so
    acquiring raises :class:`DirectoryLockedError` naming the holder and its PID when another process holds it.
    A lock file whose process is gone is reported (``stale`` holds its record) and taken over.
    """

    def __init__(self, directory: str | os.PathLike, what: str = "run") -> None:
        self.directory = Path(directory)
        self.what = what
        self.path = self.directory / LOCK_FILE
        self.stale: dict[str, str] | None = None
        self._fd: int | None = None

    def acquire(self) -> "DirectoryLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(fd)
            os.close(fd)
            raise DirectoryLockedError(
                f"{self.directory} is in use by another {holder.get('what', 'process')} (PID {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('started', '?')}); wait for it to finish, stop it, or "
                "pass another directory"
            ) from None
        previous = _read_record(fd)
        if previous.get("pid"):  # a holder that released the lock by exiting without clearing its record
            self.stale = previous
            warnings.warn(
                f"{self.path}: a stale lock of PID {previous['pid']} (since {previous.get('started', '?')}), whose "
                f"process is gone: its {self.what} ended without finishing; taking the directory over",
                RuntimeWarning,
                stacklevel=2,
            )
        os.ftruncate(fd, 0)
        record = (
            f"pid={os.getpid()}\nwhat={self.what}\nhost={socket.gethostname()}\nstarted={time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
        )
        os.pwrite(fd, record.encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the record and release the lock (a clean end leaves no stale record)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_record(fd: int) -> dict[str, str]:
    raw = os.pread(fd, 4096, 0).decode(errors="replace")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def remove_temporary_files(directory: str | os.PathLike, patterns: tuple[str, ...] = (".*.tmp", "*.tmp")) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in ``directory`` (call it holding the
    directory's lock, so no live writer's file is removed). Returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = sorted({p for pattern in patterns for p in directory.glob(pattern) if p.is_file()})
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def move_aside(run_dir: str | os.PathLike, why: str, keep: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
    """Move what ``run_dir`` holds into ``run_dir/aside-<time>-<why>/``; returns that folder and the names moved.

    A run's files are never deleted: what a restart replaces stays readable (and restorable) beside it.
    Call it holding the directory's lock, so no live writer's files move. Kept in place: the lock, earlier
    asides and the names in ``keep``."""
    run_dir = Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = run_dir / f"{ASIDE_PREFIX}{stamp}-{why}", 0
    while aside.exists():
        n += 1
        aside = run_dir / f"{ASIDE_PREFIX}{stamp}-{why}-{n}"
    items = sorted(p for p in run_dir.iterdir() if p.name not in (LOCK_FILE, *keep) and not is_aside(p))
    aside.mkdir()
    for item in items:
        item.rename(aside / item.name)
    return aside, [p.name for p in items]


def is_aside(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in (or is) a folder of files moved aside, which tools that find runs skip."""
    return any(part.startswith(ASIDE_PREFIX) for part in Path(path).parts)
