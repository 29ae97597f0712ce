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
    holder = ctx.Process(target=_hold, args=(str(path), 1.5, ready))
    holder.start()
    assert ready.wait(30)
    with host_timing_lock() as waited:
        assert waited > 0.5  # had to wait for the other process
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
