"""Start-up cost of a worker process: interpreter start and heavy first imports.

A worker reports the seconds it spent importing a runtime for the first time with its next
answer, so the caller can tell process start-up from the work itself (platform-overhead
accounting, ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import importlib
import time
from types import ModuleType

_pending_s = 0.0


def timed_import(name: str) -> ModuleType:
    """Import ``name``, counting the time as start-up cost if it was not imported yet."""
    global _pending_s
    start = time.perf_counter()
    module = importlib.import_module(name)
    _pending_s += time.perf_counter() - start
    return module


def take() -> float:
    """Start-up seconds accumulated since the last call (reset to zero)."""
    global _pending_s
    value, _pending_s = _pending_s, 0.0
    return value
