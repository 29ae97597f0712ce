"""Timing workers that use fewer threads than the machine has are pinned, and say so; every
timing records how busy the rest of the machine was."""

from __future__ import annotations

import os

import pytest

from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.measure.runner import pin_cores
from tests.conftest import QUICK

CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@pytest.mark.skipif(len(CORES) < 2, reason="pinning needs at least two usable cores")
def test_one_thread_timing_is_pinned_to_the_last_core(engine: Engine, cnn: Subject) -> None:
    result = engine.bench(cnn, InferenceConfig.parse(runtime="tflite", threads=1), QUICK)
    assert result.valid
    assert result.measurement.runtime_settings["pinned_cores"] == CORES[-1:]
    contention = result.measurement.contention
    assert contention is not None
    assert {"other_cores", "steal_pct", "disturbed", "attempts"} <= set(contention)
    # All cores used: not pinned.
    every = engine.bench(cnn, InferenceConfig.parse(runtime="tflite", threads=len(CORES)), QUICK)
    assert every.measurement.runtime_settings["pinned_cores"] is None


@pytest.mark.skipif(len(CORES) < 2, reason="pinning needs at least two usable cores")
def test_pinning_is_undone_for_an_operation_that_uses_every_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = os.sched_getaffinity(0)
    try:
        assert pin_cores(1) == CORES[-1:] and os.sched_getaffinity(0) == {CORES[-1]}
        assert pin_cores(len(CORES)) is None and os.sched_getaffinity(0) == set(CORES)
        monkeypatch.setenv("INFERTUNE_PIN_CORES", "off")
        assert pin_cores(1) is None and os.sched_getaffinity(0) == set(CORES)
    finally:
        os.sched_setaffinity(0, before)
