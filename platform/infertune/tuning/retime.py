"""Interleaved re-timing: several configurations timed in rounds (A, B, C, A, B, C, ...).

A shared machine drifts (another process starts, the CPU clocks down): timing every
configuration once per round makes such drifts hit all of them alike, so the medians
compare like with like. Verification of the front and the re-tune's best-vs-production
comparison both time this way.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.measure.hostlock import host_work_lock
from infertune.measure.window import MeasurementWindow
from infertune.space.schema import ScenarioSpec
from infertune.workers.protocol import Timing

__all__ = ["retime_interleaved"]

K = TypeVar("K", bound=Hashable)

#: Called before each timing with (timings done, timings in all).
Progress = Callable[[int, int], None]
#: Called after each timing with the configuration's key and the timing; may raise to stop.
TimingCheck = Callable[[Any, Timing], None]


def retime_interleaved(
    engine: Engine,
    subject: Subject,
    configs: Mapping[K, InferenceConfig],
    window: MeasurementWindow,
    repeats: int,
    finetune_epochs: int,
    on_progress: Progress | None = None,
    on_timing: TimingCheck | None = None,
    scenario: ScenarioSpec | None = None,
) -> dict[K, list[Timing]]:
    """Time every configuration ``repeats`` times, one of each per round.

    ``scenario`` is the load each timing runs under (default: single stream).

    The variants are built (or taken from the cache) before the first timing, so no
    build runs between two timings of a round.

    Returns:
        Each configuration's timings in round order, valid or not (the caller decides what
        an invalid timing means).
    """
    variants = {}
    for key, config in configs.items():
        with host_work_lock():  # no build beside another process's timing
            variants[key] = engine.variant(subject, config, finetune_epochs)
    timings: dict[K, list[Timing]] = {k: [] for k in configs}
    done, total = 0, repeats * len(configs)
    for _ in range(repeats):
        for key, config in configs.items():
            if on_progress is not None:
                on_progress(done, total)
            timing = engine.time(subject, variants[key], config, window, scenario)
            if on_timing is not None:
                on_timing(key, timing)
            timings[key].append(timing)
            done += 1
    if on_progress is not None:
        on_progress(total, total)
    return timings
