"""One timing at a time per host, and no build or load running beside a timing.

Parallel timings disturb each other's latency, and so does any other heavy work on the host:
a build (pruning, fine-tuning, conversion), an accuracy pass, a model load. Two ``flock``
files make a readers-writer lock across every process of the host:

* heavy work holds the *work* lock shared (:func:`host_work_lock`): builds overlap each
  other freely;
* a timing holds it exclusive (:func:`host_timing_lock`): it waits until running work is done,
  and no new work starts until the timing ends.

A timing first takes the *gate* exclusive, and work passes the gate (shared, briefly) before
it takes the work lock: so a waiting timing is not starved by a stream of builds that keep
the work lock busy. The kernel releases an ``flock`` when its holder dies, so a killed
process never leaves the host locked.
"""

from __future__ import annotations

import contextlib
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


def _gate_path() -> Path:
    path = lock_path()
    return path.with_name(path.name + ".gate")


def _open(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    # Shared by every user of the host: let the next user take it too (umask permitting).
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    return fd


def _take(fd: int, mode: int, on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait is not None:
            on_wait()
        fcntl.flock(fd, mode)


@contextmanager
def host_timing_lock(on_wait: Callable[[], None] | None = None) -> Iterator[float]:
    """Hold the host's timing lock (exclusive); yields the seconds spent waiting for it.

    Waits for other timings and for running work (:func:`host_work_lock`); work that has
    not started waits until this timing ends. ``on_wait`` is called once if the lock is
    busy (to tell the user). Never call it while this thread holds :func:`host_work_lock`.
    """
    gate = _open(_gate_path())
    try:
        work = _open(lock_path())
        try:
            started = time.monotonic()
            told: list[bool] = []

            def waiting() -> None:
                if on_wait is not None and not told:
                    told.append(True)
                    on_wait()

            _take(gate, fcntl.LOCK_EX, waiting)
            _take(work, fcntl.LOCK_EX, waiting)
            try:
                yield time.monotonic() - started
            finally:
                fcntl.flock(work, fcntl.LOCK_UN)
                fcntl.flock(gate, fcntl.LOCK_UN)
        finally:
            os.close(work)
    finally:
        os.close(gate)


@contextmanager
def host_work_lock() -> Iterator[float]:
    """Hold the work lock shared: heavy work (a build, a load) that must not overlap a timing.

    Other work runs beside it; a timing waits until it ends. Yields the seconds spent
    waiting (for a timing to end).
    """
    gate = _open(_gate_path())
    try:
        work = _open(lock_path())
        try:
            started = time.monotonic()
            fcntl.flock(gate, fcntl.LOCK_SH)  # waits while a timing runs or waits
            try:
                fcntl.flock(work, fcntl.LOCK_SH)
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            try:
                yield time.monotonic() - started
            finally:
                fcntl.flock(work, fcntl.LOCK_UN)
        finally:
            os.close(work)
    finally:
        os.close(gate)
