import multiprocessing
import time
from pathlib import Path

import pytest

from infertune.measure.hostlock import host_timing_lock, lock_path


def _hold(path: str, seconds: float, ready: "multiprocessing.synchronize.Event") -> None:
    import os

    os.environ["INFERTUNE_MEASURE_LOCK"] = path
    with host_timing_lock():
        ready.set()
        time.sleep(seconds)


def test_one_timing_at_a_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "measure.lock"
    monkeypatch.setenv("INFERTUNE_MEASURE_LOCK", str(path))
    assert lock_path() == path
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), 3.0, ready))
    holder.start()
    assert ready.wait(30)
    with host_timing_lock() as waited:
        assert waited > 0.5  # had to wait for the other process (which holds it for 3 s)
    holder.join()


def test_a_dead_holder_frees_the_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "measure.lock"
    monkeypatch.setenv("INFERTUNE_MEASURE_LOCK", str(path))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), 60, ready))
    holder.start()
    assert ready.wait(30)
    holder.kill()
    holder.join()
    with host_timing_lock() as waited:
        assert waited < 5


def _work(
    path: str,
    seconds: float,
    ready: "multiprocessing.synchronize.Event",
    done: "multiprocessing.synchronize.Event",
) -> None:
    import os

    from infertune.measure.hostlock import host_work_lock

    os.environ["INFERTUNE_MEASURE_LOCK"] = path
    with host_work_lock():
        ready.set()
        time.sleep(seconds)
        done.set()  # the last thing the build does while it holds the lock


def test_a_timing_waits_for_running_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A build or load in another process holds the work lock: the timing waits for it."""
    path = tmp_path / "measure.lock"
    monkeypatch.setenv("INFERTUNE_MEASURE_LOCK", str(path))
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    builder = ctx.Process(target=_work, args=(str(path), 1.5, ready, done))
    builder.start()
    assert ready.wait(30)
    told: list[bool] = []
    with host_timing_lock(on_wait=lambda: told.append(True)):
        assert done.is_set()  # the build ended before the timing window opened
    assert told == [True]
    builder.join()


def test_work_waits_while_a_timing_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from infertune.measure.hostlock import host_work_lock

    path = tmp_path / "measure.lock"
    monkeypatch.setenv("INFERTUNE_MEASURE_LOCK", str(path))
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    timer = ctx.Process(target=_hold, args=(str(path), 3.0, ready))
    timer.start()
    assert ready.wait(30)
    with host_work_lock() as waited:
        assert waited > 0.5  # the work waited for the timing to end
    timer.join(timeout=30)  # (on a busy machine the process may take a while to exit)
    assert timer.exitcode == 0


def test_builds_overlap_each_other_and_a_waiting_timing_is_not_starved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Work overlaps work; once a timing waits, new work queues behind it."""
    import threading

    from infertune.measure.hostlock import host_work_lock

    path = tmp_path / "measure.lock"
    monkeypatch.setenv("INFERTUNE_MEASURE_LOCK", str(path))
    order: list[str] = []
    first = threading.Event()
    with host_work_lock():
        with host_work_lock() as waited:  # a second build beside the first: no wait
            assert waited < 0.5

        def timing() -> None:
            with host_timing_lock(on_wait=first.set):
                order.append("timing")

        def late_build() -> None:
            with host_work_lock():
                order.append("late build")

        timer = threading.Thread(target=timing)
        timer.start()
        assert first.wait(10)  # the timing waits for the running build
        time.sleep(0.2)
        late = threading.Thread(target=late_build)
        late.start()
        time.sleep(0.5)
        assert order == []  # neither runs while the first build holds the lock
    timer.join(10)
    late.join(10)
    assert order == ["timing", "late build"]
