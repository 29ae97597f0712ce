"""One timing at a time per host: parallel timings disturb each other's latency."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path() -> Path:
    """The host-wide lock file (``INFERTUNE_MEASURE_LOCK`` overrides it)."""
    override = os.environ.get("INFERTUNE_MEASURE_LOCK")
    return Path(override) if override else Path(tempfile.gettempdir()) / "infertune-measure.lock"


@contextmanager
def host_timing_lock(on_wait: Callable[[], None] | None = None) -> Iterator[float]:
    """Hold the host's timing lock; yields the seconds spent waiting for it.

    ``on_wait`` is called once if another process holds the lock (to tell the user).

    An ``flock`` is released by the kernel when its holder dies, so a killed measurement
    never leaves the host locked.
    """
    path = lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        started = time.monotonic()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.monotonic() - started
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
