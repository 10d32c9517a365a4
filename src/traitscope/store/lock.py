"""One writer per run directory: an advisory lock (``filelock``) held while a process writes.

The holder's pid, host, command and start time sit beside the lock, so a second process stops
with one line that names who holds the directory. The lock is re-entrant within a process
(``run`` calls ``extract`` and then ``steer-eval`` on the same directory)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from traitscope.errors import TraitscopeError
from traitscope.store.atomic import atomic_write_json

_held: dict[str, tuple[FileLock, int]] = {}
_guard = threading.Lock()


def _holder_text(lock_path: Path) -> str:
    try:
        h = json.loads(Path(f"{lock_path}.holder").read_text())
        return f"pid {h['pid']} on {h['host']} ({h['command']}, since {h['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextlib.contextmanager
def locked(directory: Path, timeout: float = 0.0) -> Iterator[None]:
    """Hold ``directory/.lock`` for the duration; raise a one-line error if someone else holds it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / ".lock"
    key = str(lock_path.resolve())
    with _guard:
        if key in _held:
            lock, depth = _held[key]
            _held[key] = (lock, depth + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        lock = FileLock(str(lock_path), thread_local=False)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise TraitscopeError(
                f"{directory} is in use by {_holder_text(lock_path)}; wait for it to finish or pass another --out"
            ) from None
        atomic_write_json(
            Path(f"{lock_path}.holder"),
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200] or "python",
                "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
        with _guard:
            _held[key] = (lock, 1)
    try:
        yield
    finally:
        with _guard:
            lock, depth = _held[key]
            if depth > 1:
                _held[key] = (lock, depth - 1)
            else:
                del _held[key]
                Path(f"{lock_path}.holder").unlink(missing_ok=True)
                lock.release()
