"""Where a trial's wall time goes: the platform-overhead accounting of every trial.

Each trial stores ``phases_s`` (seconds per phase) as a user attribute; a study's totals
show whether the platform itself (sampling, storage, tracking, process start-up) costs more
than the work it exists to do (building, evaluating, timing). ``benchmarks/overhead.py``
reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

#: Build, accuracy and timing are the work; the rest is the platform's overhead.
WORK_PHASES = ("build", "accuracy", "timing")
OVERHEAD_PHASES = ("sampling_storage", "tracking", "process_start")
PHASES = WORK_PHASES + OVERHEAD_PHASES


class PhaseClock:
    """Splits one trial's wall time into phases.

    Time inside :meth:`phase` blocks goes to that phase, minus the worker start-up it
    contained (read from ``startup_s``), which goes to ``process_start``. Whatever is left of
    the wall time (Optuna's ask/tell and storage writes) is ``sampling_storage``.

    Args:
        startup_s: Returns the engine's running total of worker start-up seconds.
        gap_s: Wall time before the objective started that belongs to this trial (Optuna
            creating the trial and sampling), charged to ``sampling_storage``.
    """

    def __init__(self, startup_s: Callable[[], float], gap_s: float = 0.0) -> None:
        self._startup_s = startup_s
        self._started = time.perf_counter() - gap_s
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the block's wall time to ``name`` (and its worker start-up to start-up)."""
        start, startup_before = time.perf_counter(), self._startup_s()
        try:
            yield
        finally:
            startup = self._startup_s() - startup_before
            self.seconds[name] += time.perf_counter() - start - startup
            self.seconds["process_start"] += startup

    def result(self) -> dict[str, float]:
        """Seconds per phase and the wall time (``total``), rounded to milliseconds."""
        total = time.perf_counter() - self._started
        named = sum(v for k, v in self.seconds.items() if k != "sampling_storage")
        seconds = dict(self.seconds, sampling_storage=max(0.0, total - named))
        return {k: round(v, 4) for k, v in seconds.items()} | {"total": round(total, 4)}


def summarize(phases: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals and shares over many trials' ``phases_s`` records.

    Returns:
        ``seconds`` and ``share`` (of the summed wall time) per phase, ``overhead_share``
        (sampling/storage, tracking and start-up together) and ``trials``.
    """
    totals = {name: sum(float(p.get(name, 0.0)) for p in phases) for name in PHASES}
    wall = sum(float(p.get("total", 0.0)) for p in phases)
    share = {name: (totals[name] / wall if wall else 0.0) for name in PHASES}
    return {
        "trials": len(phases),
        "wall_s": wall,
        "seconds": totals,
        "share": share,
        "overhead_share": sum(share[name] for name in OVERHEAD_PHASES),
    }
