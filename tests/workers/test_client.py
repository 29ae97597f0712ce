import os
import signal
import threading
import time

import pytest

from infertune.exceptions import InfertuneError, WorkerCrashed, WorkerError, WorkerTimeout
from infertune.workers import WorkerProcess, WorkerRole


@pytest.fixture()
def worker():  # type: ignore[no-untyped-def]
    with WorkerProcess(WorkerRole.MEASURE, threads=1) as w:
        yield w


def test_ping_runs_in_another_process_with_its_threads(worker: WorkerProcess) -> None:
    answer = worker.call("ping", timeout=60)
    assert answer["pid"] == worker.pid != os.getpid()
    assert answer["threads"] == "1"


def test_hung_worker_is_killed_and_reported(worker: WorkerProcess) -> None:
    worker.call("ping", timeout=60)
    pid = worker.pid
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match="did not finish 'sleep' within 1 s and was killed"):
        worker.call("sleep", {"seconds": 60}, timeout=1)
    assert time.monotonic() - started < 10
    assert not worker.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
    # The next request gets a fresh process.
    assert worker.call("ping", timeout=60)["pid"] != pid


def test_killed_worker_is_reported_with_its_signal(worker: WorkerProcess) -> None:
    pid = worker.call("ping", timeout=60)["pid"]
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(WorkerCrashed, match="exited with signal SIGKILL while running 'sleep'"):
        worker.call("sleep", {"seconds": 30}, timeout=60)
    assert worker.call("ping", timeout=60)["pid"] != pid


def test_errors_cross_the_process_boundary(worker: WorkerProcess) -> None:
    with pytest.raises(InfertuneError, match="Unknown worker operation 'nope'"):
        worker.call("nope", timeout=60)
    with pytest.raises(WorkerError, match="'sleep' failed in the measure worker: TypeError"):
        worker.call("sleep", {"wrong": 1}, timeout=60)
    # An error answered by a live worker leaves it usable.
    pid = worker.pid
    assert worker.call("ping", timeout=60)["pid"] == pid
