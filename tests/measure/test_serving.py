"""The server and offline scenarios against a model whose service time is known.

The fake model sleeps (releasing the GIL, as the runtimes do): a fixed cost per call plus a
small cost per sample, so batching raises capacity exactly as it does for a real model.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from infertune.measure.serving import (
    BatchPolicy,
    ServerResult,
    ServerSettings,
    max_qps_at_slo,
    meets_slo,
    poisson_arrivals,
    run_offline,
    run_server,
)

SAMPLES = np.arange(64, dtype=np.float32).reshape(64, 1)


def fake_model(call_ms: float, per_sample_ms: float, log: list[int] | None = None):
    busy = threading.Lock()

    def predict(batch: np.ndarray) -> np.ndarray:
        assert busy.acquire(blocking=False), "an instance was called concurrently with itself"
        try:
            if log is not None:
                log.append(len(batch))
            time.sleep((call_ms + per_sample_ms * len(batch)) / 1000.0)
            return batch
        finally:
            busy.release()

    return predict


def test_poisson_schedule_has_the_rate_and_is_seeded() -> None:
    arrivals = poisson_arrivals(500.0, 5000, seed=3)
    assert arrivals[0] == 0.0 and np.all(np.diff(arrivals) >= 0)
    assert 4999 / arrivals[-1] == pytest.approx(500.0)
    gaps = np.diff(arrivals)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, rel=0.1)  # exponential
    assert np.array_equal(arrivals, poisson_arrivals(500.0, 5000, seed=3))


def test_a_light_load_is_valid_and_latency_starts_at_the_scheduled_arrival() -> None:
    result = run_server([fake_model(2.0, 0.0)], SAMPLES, ServerSettings(target_qps=300.0))
    assert result.valid, result.invalid_reason
    assert result.queries == 662  # the p99 minimum (more than 300 qps x 2 s)
    assert result.achieved_qps == pytest.approx(300.0, rel=0.05)
    assert result.latency_p50_ms >= 2.0  # never shorter than the service time
    assert result.mean_batch_size == 1.0


def test_overload_is_invalid_and_queueing_counts_in_latency() -> None:
    # One instance, 4 ms a call: 250 calls/s at most, offered 400/s.
    settings = ServerSettings(target_qps=400.0, min_duration_s=1.0, percentile=0.9)
    result = run_server([fake_model(4.0, 0.0)], SAMPLES, settings)
    assert not result.valid
    assert "could not keep up" in (result.invalid_reason or "")
    # Queued requests wait: the tail is far above the 4 ms service time.
    assert result.latency_p99_ms > 50.0


def test_batching_and_instances_raise_the_sustainable_rate() -> None:
    slow = ServerSettings(target_qps=400.0, min_duration_s=1.0, percentile=0.9)
    batched = ServerSettings(
        400.0, BatchPolicy(max_batch_size=8), min_duration_s=1.0, percentile=0.9
    )
    sizes: list[int] = []
    assert not run_server([fake_model(4.0, 0.1)], SAMPLES, slow).valid
    result = run_server([fake_model(4.0, 0.1, sizes)], SAMPLES, batched)
    assert result.valid, result.invalid_reason
    assert result.mean_batch_size > 1.0 and max(sizes) <= 8
    two = run_server([fake_model(4.0, 0.1), fake_model(4.0, 0.1)], SAMPLES, slow)
    assert two.valid, two.invalid_reason


def test_queue_delay_waits_to_fill_batches() -> None:
    policy = BatchPolicy(max_batch_size=16, max_queue_delay_ms=20.0)
    settings = ServerSettings(200.0, policy, min_duration_s=1.0, percentile=0.9)
    result = run_server([fake_model(1.0, 0.0)], SAMPLES, settings)
    # ~4 requests arrive in 20 ms at 200/s: batches form although the model keeps up.
    assert result.mean_batch_size > 2.0
    assert result.latency_p50_ms > 5.0  # the wait is part of each request's latency


def test_a_failing_model_raises_instead_of_hanging() -> None:
    def broken(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_server([broken], SAMPLES, ServerSettings(target_qps=1000.0))


def test_offline_throughput_scales_with_batch_size() -> None:
    one = run_offline([fake_model(2.0, 0.05)], SAMPLES, 1, min_duration_s=0.5, min_samples=64)
    eight = run_offline([fake_model(2.0, 0.05)], SAMPLES, 8, min_duration_s=0.5, min_samples=64)
    assert one.valid and eight.valid
    assert eight.throughput_sps > 3 * one.throughput_sps
    assert one.throughput_sps < 1000.0 / 2.0  # bounded by the 2 ms call


def test_slo_search_finds_the_rate_where_p99_crosses_the_objective() -> None:
    predict = fake_model(1.5, 0.0)  # 666 calls/s at most
    calls: list[float] = []

    def run_at(rate: float) -> ServerResult:
        calls.append(rate)
        return run_server([predict], SAMPLES, ServerSettings(target_qps=rate, min_duration_s=0.5))

    search = max_qps_at_slo(run_at, slo_p99_ms=15.0, ceiling_qps=800.0, steps=5)
    assert 0 < search.max_qps_at_slo < 666.0
    assert search.best is not None and search.best.latency_p99_ms <= 15.0
    # Every tried rate above the answer failed the objective or was invalid.
    assert all(r.target_qps <= search.max_qps_at_slo or not meets_slo(r, 15.0) for r in search.runs)
    assert len(calls) <= 6
    assert search.summary()["curve"][0]["target_qps"] == pytest.approx(720.0)


def test_slo_search_climbs_past_an_underestimated_ceiling() -> None:
    predict = fake_model(1.5, 0.0)  # 666 calls/s at most

    def run_at(rate: float) -> ServerResult:
        return run_server([predict], SAMPLES, ServerSettings(target_qps=rate, min_duration_s=0.5))

    # The estimate says 250/s; the model sustains more than twice that under the objective.
    search = max_qps_at_slo(run_at, slo_p99_ms=15.0, ceiling_qps=250.0, steps=7)
    rates = [r.target_qps for r in search.runs]
    assert rates[:3] == pytest.approx([225.0, 281.25, 351.5625])  # raised while passing
    assert search.max_qps_at_slo > 400.0
    assert search.max_qps_at_slo < 666.0
    assert any(not meets_slo(r, 15.0) for r in search.runs)  # it went on until one failed
