"""Scheduled re-tuning: schedules, the scheduler service and its lock, the re-tune job.

The public names load on first use (the service imports APScheduler; a schedule listing
does not need it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infertune._lazy import lazy_getattr

if TYPE_CHECKING:
    from infertune.scheduling.retune import run_retune
    from infertune.scheduling.schedules import add_schedule, overview, remove_schedule
    from infertune.scheduling.service import SchedulerService

__all__ = ["SchedulerService", "add_schedule", "overview", "remove_schedule", "run_retune"]

_MODULE_OF = {
    "SchedulerService": "service",
    "add_schedule": "schedules",
    "overview": "schedules",
    "remove_schedule": "schedules",
    "run_retune": "retune",
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF)
