"""The tracker's public reads, and typed records stored as their fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import BaseModel

from infertune.config import load_settings
from infertune.tracking import Tracker


class _Figures(BaseModel):
    latency_p95_ms: float
    artifact: Path


@dataclasses.dataclass
class _Record:
    figures: _Figures
    valid: bool


def test_runs_are_read_through_public_methods(tmp_path: Path) -> None:
    tracker = Tracker(load_settings(home=tmp_path))
    experiment = tracker.experiment("study")
    parent = tracker.start_parent(experiment, "study", None, {"space": "quick"}, {})
    record = _Record(_Figures(latency_p95_ms=1.5, artifact=Path("/v/model.tflite")), True)

    tracker.log_json(parent, "measurement.json", record)
    tracker.log(parent, metrics={"baseline": record.figures})

    assert tracker.load_json(parent, "measurement.json") == {
        "figures": {"latency_p95_ms": 1.5, "artifact": "/v/model.tflite"},
        "valid": True,
    }
    assert tracker.load_json(parent, "missing.json") is None
    assert tracker.client.get_run(parent).data.metrics == {"baseline.latency_p95_ms": 1.5}
    assert tracker.run_status(parent) == "RUNNING"
    tracker.end(parent, "KILLED")
    assert tracker.run_status(parent) == "KILLED"
    assert tracker.run_status("no-such-run") is None
