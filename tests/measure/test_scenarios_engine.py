"""The offline and server scenarios through the engine and the CLI, on a real model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.measure.fingerprint import usable_cores
from infertune.space.schema import Scenario, ScenarioSpec
from tests.conftest import QUICK

LITERT = {"runtime": "tflite", "threads": 1}


def test_server_at_a_rate_reports_the_load_figures(engine: Engine, cnn: Subject) -> None:
    config = InferenceConfig.parse(**LITERT, batch_size=4, max_queue_delay_ms=1.0)
    scenario = ScenarioSpec(name=Scenario.SERVER, target_qps=200.0, min_duration_s=0.5)
    result = engine.bench(cnn, config, QUICK, scenario=scenario)
    assert result.valid, result.invalid_reason
    assert result.scenario == "server" and result.target_qps == 200.0
    assert result.achieved_qps == pytest.approx(200.0, rel=0.05)
    serving = result.measurement.serving or {}
    assert serving["queries"] == 662 and serving["max_batch_size"] == 4
    assert serving["latency_p99_bound_ms"] >= result.latency_p99_ms
    # A million inferences at 200/s on one core at the default price.
    assert result.cost_per_million == pytest.approx(0.05 / (200 * 3600) * 1e6, rel=0.06)


def test_offline_reports_samples_per_second(engine: Engine, cnn: Subject) -> None:
    scenario = ScenarioSpec(name=Scenario.OFFLINE, min_duration_s=0.5)
    one = engine.bench(cnn, InferenceConfig.parse(**LITERT), QUICK, scenario=scenario)
    many = engine.bench(
        cnn, InferenceConfig.parse(**LITERT, batch_size=32), QUICK, scenario=scenario
    )
    assert one.valid and many.valid and one.scenario == "offline"
    assert many.throughput_sps > one.throughput_sps  # batching amortises the call
    assert many.cost_per_million < one.cost_per_million


def test_server_objective_finds_the_highest_rate(engine: Engine, cnn: Subject) -> None:
    scenario = ScenarioSpec(name=Scenario.SERVER, slo_p99_ms=20.0, min_duration_s=0.3)
    result = engine.bench(cnn, InferenceConfig.parse(**LITERT), QUICK, scenario=scenario)
    assert result.valid, result.invalid_reason
    assert result.max_qps_at_slo and result.max_qps_at_slo > 20
    assert result.slo_p99_ms == 20.0
    curve = (result.measurement.serving or {})["curve"]
    best = pytest.approx(result.max_qps_at_slo, abs=0.01)
    assert len(curve) >= 2 and any(p["target_qps"] == best for p in curve)


def test_more_cores_than_the_machine_has_is_refused(engine: Engine, cnn: Subject) -> None:
    cores = usable_cores()
    config = InferenceConfig.parse(runtime="tflite", threads=cores, instances=2)
    scenario = ScenarioSpec(name=Scenario.OFFLINE)
    with pytest.raises(ConfigurationError, match="instances x threads <= cores"):
        engine.bench(cnn, config, QUICK, scenario=scenario)


def test_cli_refuses_a_server_without_rate_or_objective(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infertune", "--home", str(tmp_path), "bench", "demo:digits-cnn",
         "--scenario", "server"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "exactly one of --qps" in lines[0], proc.stderr


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_a_server_run_on_a_busy_machine_is_run_again_then_said_disturbed(
    engine: Engine, cnn: Subject
) -> None:
    burner = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 60\nwhile time.time() < end: pass"]
    )
    try:
        scenario = ScenarioSpec(name=Scenario.SERVER, target_qps=600.0, min_duration_s=0.3)
        result = engine.bench(cnn, InferenceConfig.parse(**LITERT), QUICK, scenario=scenario)
    finally:
        burner.kill()
        burner.wait()
    seen = result.measurement.contention or {}
    assert seen["disturbed"] and seen["attempts"] == 3  # two runs again, then recorded
    assert burner.pid in [p["pid"] for p in seen["busiest"]]
