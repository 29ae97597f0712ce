"""Contention detection: a real CPU burner is seen and named; quiet readings are quiet."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infertune.measure.contention import ContentionProbe, CpuTimes, read_cpu_times

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")


def _readings(*values: CpuTimes) -> Iterator[CpuTimes]:
    yield from values


def test_proc_stat_is_read() -> None:
    times = read_cpu_times()
    assert times is not None and times.total > 0 and times.busy > 0


def test_a_burning_process_disturbs_the_window_and_is_named() -> None:
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.3)
        probe = ContentionProbe()
        probe.start()
        time.sleep(1.0)  # our own process sleeps: all the busy time is someone else's
        seen = probe.stop()
    finally:
        burner.kill()
        burner.wait()
    assert seen is not None
    assert seen.disturbed and seen.other_cores > 0.5
    assert burner.pid in [p["pid"] for p in seen.busiest]
    assert "other processes used" in seen.warning() and f"pid {burner.pid}" in seen.warning()


def test_own_cpu_is_not_counted_as_contention() -> None:
    # The machine was busy for exactly as long as this process was: nobody else.
    readings = _readings(CpuTimes(10.0, 90.0, 0.0, 0.0), CpuTimes(11.0, 91.0, 0.0, 0.0))
    own = iter([5.0, 6.0])
    probe = ContentionProbe(
        name_processes=False, own_cpu=lambda: next(own), cpu_times=lambda: next(readings)
    )
    probe.start()
    seen = probe.stop()
    assert seen is not None and not seen.disturbed and seen.other_cores == 0.0
    assert seen.reason is None


def test_steal_disturbs_the_window() -> None:
    readings = _readings(CpuTimes(0.0, 100.0, 0.0, 0.0), CpuTimes(1.0, 108.0, 0.0, 1.0))
    own = iter([0.0, 1.0])
    probe = ContentionProbe(
        name_processes=False, own_cpu=lambda: next(own), cpu_times=lambda: next(readings)
    )
    probe.start()
    seen = probe.stop()
    assert seen is not None and seen.disturbed
    assert seen.steal_pct == pytest.approx(10.0)
    assert "stole 10.0%" in (seen.reason or "")


def test_no_proc_means_no_verdict() -> None:
    probe = ContentionProbe(name_processes=False, cpu_times=lambda: None)
    probe.start()
    assert probe.stop() is None
