"""Scenarios in a space: knobs a scenario cannot use and objectives it cannot measure are
refused with the reason; the shipped serving and offline spaces load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from infertune.space.loader import load_space
from infertune.space.schema import Scenario, ScenarioSpec, SearchSpace


def _space(scenario: Any, objectives: dict[str, str] | None = None, **knobs: Any) -> SearchSpace:
    return SearchSpace.model_validate(
        {
            "knobs": knobs or {"runtime": {"type": "categorical", "choices": ["tflite"]}},
            "objectives": objectives or {"latency_p95_ms": "minimize"},
            "measurement": {"scenario": scenario},
        }
    )


def test_batch_size_under_single_stream_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="batch_size cannot matter under the single_stream"):
        _space("single_stream", batch_size={"type": "pow2", "low": 1, "high": 8})
    # The same knob under offline is fine; the shipped default space no longer searches it.
    assert _space("offline", batch_size={"type": "pow2", "low": 1, "high": 8})
    assert load_space("default")[0].knobs.batch_size is None


def test_queue_delay_is_for_the_server_only() -> None:
    delay = {"type": "categorical", "choices": [0.0, 2.0]}
    with pytest.raises(ValidationError, match="max_queue_delay_ms cannot matter under the offline"):
        _space("offline", max_queue_delay_ms=delay)
    assert _space({"name": "server", "target_qps": 100}, max_queue_delay_ms=delay)


def test_server_needs_exactly_one_of_a_rate_and_an_objective() -> None:
    with pytest.raises(ValidationError, match="exactly one of target_qps"):
        ScenarioSpec(name=Scenario.SERVER)
    with pytest.raises(ValidationError, match="exactly one of target_qps"):
        ScenarioSpec(name=Scenario.SERVER, target_qps=10, slo_p99_ms=5)
    with pytest.raises(ValidationError, match="server scenario only"):
        ScenarioSpec(name=Scenario.OFFLINE, target_qps=10)
    assert ScenarioSpec.model_validate("offline").name is Scenario.OFFLINE


def test_max_qps_at_slo_needs_a_p99_objective() -> None:
    with pytest.raises(ValidationError, match="max_qps_at_slo needs the server scenario"):
        _space("offline", {"max_qps_at_slo": "maximize"})
    with pytest.raises(ValidationError, match="should be maximized"):
        _space({"name": "server", "slo_p99_ms": 10}, {"max_qps_at_slo": "minimize"})


def test_shipped_serving_spaces_load() -> None:
    serving = load_space("serving")[0]
    assert serving.measurement.scenario.name is Scenario.SERVER
    assert serving.measurement.scenario.slo_p99_ms == 10
    assert "max_qps_at_slo" in serving.objectives
    offline = load_space("offline")[0]
    assert offline.measurement.scenario.name is Scenario.OFFLINE
    assert "throughput_sps" in offline.objectives
