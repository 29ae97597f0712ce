"""Was the machine busy while we timed? Other processes' CPU, and the host's steal and iowait.

A timing taken while other work runs on the same cores is slower and noisier, and nothing in
the latency figures says so. Around every timing window a :class:`ContentionProbe` reads
``/proc/stat`` (the machine's busy, steal and iowait time) and the timing process's own CPU
time; what the machine spent beyond ours is the rest's. Above a threshold the window is
**disturbed**: the engine re-times it and, if it stays disturbed, records it as such.
The busiest other processes are named so a user can see what to stop.

Linux only (``/proc``); elsewhere the probe reports nothing and never marks a window.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "DEFAULT_OTHER_CORES",
    "DEFAULT_STEAL_PCT",
    "Contention",
    "ContentionProbe",
    "CpuTimes",
    "read_cpu_times",
]

#: Other processes using more than this many cores' worth of CPU disturb a window.
DEFAULT_OTHER_CORES = 0.25
#: A hypervisor stealing more than this share of the machine's CPU time disturbs a window.
DEFAULT_STEAL_PCT = 5.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time so far, in seconds summed over cores (``/proc/stat``)."""

    busy: float
    idle: float
    iowait: float
    steal: float

    @property
    def total(self) -> float:
        """All of it."""
        return self.busy + self.idle + self.iowait + self.steal


def read_cpu_times(stat: Path = Path("/proc/stat")) -> CpuTimes | None:
    """The machine's CPU times, or ``None`` where ``/proc/stat`` cannot be read."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) / _TICKS for v in first[1:9]] + [0.0] * (8 - len(first[1:9]))
    user, nice, system, idle, iowait, irq, softirq, steal = values
    return CpuTimes(
        busy=user + nice + system + irq + softirq, idle=idle, iowait=iowait, steal=steal
    )


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _process_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process we may read, by pid."""
    seen: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["pid", "name", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if times is not None:
            seen[info["pid"]] = (info.get("name") or "?", float(times.user + times.system))
    return seen


@dataclass(frozen=True)
class Contention:
    """How busy the rest of the machine was during one window.

    Attributes:
        window_s: Wall-clock length of the window.
        other_cores: CPU the rest of the machine used, in cores (1.0: one core's worth).
        steal_pct: Share of the machine's CPU time taken by the hypervisor.
        iowait_pct: Share of the machine's CPU time idle waiting for I/O.
        busiest: The other processes that used most CPU: pid, name, cores.
        disturbed: Over a threshold: this window's timing is not a quiet machine's.
        reason: Why it is disturbed, in words (``None`` when it is not).
    """

    window_s: float
    other_cores: float
    steal_pct: float
    iowait_pct: float
    busiest: list[dict[str, Any]] = field(default_factory=list)
    disturbed: bool = False
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The documented record."""
        return {
            "window_s": round(self.window_s, 3),
            "other_cores": round(self.other_cores, 3),
            "steal_pct": round(self.steal_pct, 2),
            "iowait_pct": round(self.iowait_pct, 2),
            "busiest": self.busiest,
            "disturbed": self.disturbed,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Contention:
        """Read back :meth:`to_json`'s record (extra keys, such as ``attempts``, ignored)."""
        return cls(**{k: record[k] for k in cls.__dataclass_fields__ if k in record})

    def warning(self, attempts: int | None = None) -> str:
        """One line for the user: what disturbed the window, and who."""
        who = ", ".join(
            f"{p['name']} (pid {p['pid']}, {p['cores']:.2f} cores)" for p in self.busiest
        )
        after = f", still after {attempts} attempts" if attempts else ""
        return (
            f"the machine was busy while timing ({self.reason}{after}); these figures are "
            "slower and noisier than a quiet machine's" + (f"; busiest: {who}" if who else "")
        )


class ContentionProbe:
    """Measure what the rest of the machine did between :meth:`start` and :meth:`stop`.

    Args:
        other_cores: Threshold on other processes' CPU, in cores.
        steal_pct: Threshold on the hypervisor's steal.
        name_processes: Also find the busiest other processes (reads every process's CPU
            time at both ends: a few milliseconds, outside the timed calls).
        own_cpu: The timing process's CPU seconds so far (default: this process's).
        cpu_times: Reader of the machine's CPU times (default: ``/proc/stat``).
    """

    def __init__(
        self,
        other_cores: float = DEFAULT_OTHER_CORES,
        steal_pct: float = DEFAULT_STEAL_PCT,
        name_processes: bool = True,
        own_cpu: Callable[[], float] = _own_cpu_s,
        cpu_times: Callable[[], CpuTimes | None] = read_cpu_times,
    ) -> None:
        self.other_cores_limit = other_cores
        self.steal_limit = steal_pct
        self.name_processes = name_processes
        self._own_cpu = own_cpu
        self._cpu_times = cpu_times
        self._start: tuple[float, CpuTimes | None, float, dict[int, tuple[str, float]]] | None = (
            None
        )

    def start(self) -> None:
        """Take the first reading (call just before the timed loop)."""
        processes = _process_cpu() if self.name_processes else {}
        self._start = (time.monotonic(), self._cpu_times(), self._own_cpu(), processes)

    def stop(self) -> Contention | None:
        """Take the second reading; ``None`` where the machine's CPU times cannot be read."""
        if self._start is None:
            raise RuntimeError("ContentionProbe.stop() before start()")
        own_after = self._own_cpu()
        after = self._cpu_times()
        ended = time.monotonic()
        started, before, own_before, processes = self._start
        self._start = None
        if before is None or after is None:
            return None
        window = max(ended - started, 1e-9)
        total = max(after.total - before.total, 1e-9)
        own = max(0.0, own_after - own_before)
        others = max(0.0, (after.busy - before.busy) - own) / window
        steal = 100.0 * (after.steal - before.steal) / total
        iowait = 100.0 * (after.iowait - before.iowait) / total
        reasons = []
        if others > self.other_cores_limit:
            reasons.append(f"other processes used {others:.2f} cores")
        if steal > self.steal_limit:
            reasons.append(f"the hypervisor stole {steal:.1f}% of the CPU")
        busiest = self._busiest(processes, window) if reasons and self.name_processes else []
        return Contention(
            window_s=window,
            other_cores=others,
            steal_pct=steal,
            iowait_pct=iowait,
            busiest=busiest,
            disturbed=bool(reasons),
            reason="; ".join(reasons) or None,
        )

    @staticmethod
    def _busiest(
        before: dict[int, tuple[str, float]], window: float, top: int = 3
    ) -> list[dict[str, Any]]:
        me = os.getpid()
        used: list[tuple[float, dict[str, Any]]] = []
        for pid, (name, cpu) in _process_cpu().items():
            if pid == me:
                continue
            start = before.get(pid, (name, 0.0))[1] if pid in before else 0.0
            cores = (cpu - start) / window
            if cores > 0.02:
                used.append((cores, {"pid": pid, "name": name, "cores": round(cores, 3)}))
        used.sort(key=lambda item: -item[0])
        return [entry for _, entry in used[:top]]
