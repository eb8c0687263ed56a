"""A second process that holds a directory's lock, for the tests of one writer per directory."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Iterator

ALGOS = Path(__file__).resolve().parents[1] / "algos" / "run"  # rundir.py imports only the standard library


@contextlib.contextmanager
def hold_lock(directory: Path, what: str) -> Iterator[int]:
    """Another process holding ``directory``'s lock as ``what`` (a training run, a sweep, a dataset build); yields its PID."""
    holder = subprocess.Popen(  # rundir.py imports only the standard library: the holder starts at once
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[2]); from rundir import DirectoryLock; "
            "lock = DirectoryLock(sys.argv[1], sys.argv[3]).acquire(); print('locked', flush=True); sys.stdin.read(); lock.release()",
            str(directory),
            str(ALGOS),
            what,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.stdin.close()  # its read returns: it releases the lock and exits
        holder.wait(timeout=60)
