"""Serving knobs: validated, shown in labels, and absent from stored configurations at their
defaults (so configurations stored before they existed keep their identity)."""

from __future__ import annotations

import pytest

from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import InferenceConfig


def test_defaults_are_left_out_of_the_stored_form() -> None:
    stored_before = {
        "runtime": "tflite",
        "precision": "int8",
        "prune_ratio": 0.25,
        "batch_size": 1,
        "threads": 1,
    }
    config = InferenceConfig(**stored_before)
    assert config.model_dump(mode="json") == stored_before
    assert config.label() == "tflite/int8/prune0.25/bs1/threads=1"


def test_set_serving_knobs_round_trip_and_label() -> None:
    config = InferenceConfig(
        runtime="tflite", batch_size=8, threads=1, instances=2, max_queue_delay_ms=2.5
    )
    dumped = config.model_dump(mode="json")
    assert dumped["instances"] == 2 and dumped["max_queue_delay_ms"] == 2.5
    assert InferenceConfig(**dumped) == config
    assert config.label() == "tflite/fp32/prune0.00/bs8/threads=1/x2/delay=2.5ms"
    assert config.cores(default_threads=4) == 2
    assert InferenceConfig(instances=3).cores(default_threads=2) == 6


@pytest.mark.parametrize("bad", [{"instances": 0}, {"max_queue_delay_ms": -1.0}])
def test_bad_serving_knobs_are_one_clear_error(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="Invalid inference configuration"):
        InferenceConfig.parse(**bad)
