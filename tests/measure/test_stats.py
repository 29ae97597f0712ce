import numpy as np
import pytest

from infertune.measure.stats import histogram, summarize
from infertune.measure.window import MeasurementWindow

WINDOW = MeasurementWindow(min_duration_s=0.5, min_calls=100, max_duration_s=5)


def test_percentiles_are_observed_values_nearest_rank() -> None:
    latencies_ns = [int(ms * 1e6) for ms in range(1, 201)]  # 1..200 ms
    result = summarize(latencies_ns, batch_size=4, wall_s=20.1, window=WINDOW)
    assert result["valid"] and result["invalid_reason"] is None
    assert result["latency_p50_ms"] == 100.0
    assert result["latency_p90_ms"] == 180.0
    assert result["latency_p95_ms"] == 190.0
    assert result["latency_p99_ms"] == 198.0
    assert result["latency_mean_ms"] == pytest.approx(100.5)
    assert result["throughput_sps"] == pytest.approx(4 * 200 / 20.1)
    assert result["timed_calls"] == 200


@pytest.mark.parametrize(
    ("calls", "wall_s", "reason"),
    [
        (50, 1.0, "50 timed calls, fewer than the minimum 100"),
        (200, 0.2, "0.20 s timed, shorter than the minimum 0.5 s"),
    ],
)
def test_missed_minimums_withhold_the_figures(calls: int, wall_s: float, reason: str) -> None:
    result = summarize(np.full(calls, 1_000_000), batch_size=1, wall_s=wall_s, window=WINDOW)
    assert result["valid"] is False
    assert reason in result["invalid_reason"]
    assert "--max-duration" in result["invalid_reason"]
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_sps"):
        assert result[key] is None


def test_window_rejects_max_below_min() -> None:
    with pytest.raises(ValueError, match="below the minimum duration"):
        MeasurementWindow(min_duration_s=10, max_duration_s=5)


def test_histogram_counts_every_call_and_keeps_the_tail_in_the_last_bin() -> None:
    ms = np.concatenate([np.full(990, 1.0) + np.linspace(0, 0.1, 990), np.full(10, 50.0)])
    hist = histogram(ms, bins=10)
    assert sum(hist["counts"]) == len(ms)
    assert len(hist["edges_ms"]) == 11 and hist["edges_ms"][0] == pytest.approx(1.0)
    assert hist["counts"][-1] >= 10  # the 50 ms outliers, clipped into the last bin
    assert histogram(np.full(5, 2.0))["counts"][0] == 5  # all equal: one full bin


def test_tail_percentiles_carry_an_early_stopping_bound() -> None:
    rng = np.random.default_rng(0)
    many = (rng.exponential(1.0, 2000) * 1e6).astype(np.int64)
    result = summarize(many, batch_size=1, wall_s=20.1, window=WINDOW)
    assert result["latency_p99_bound_ms"] >= result["latency_p99_ms"]
    assert result["latency_p95_bound_ms"] >= result["latency_p95_ms"]
    # 100 calls: too few to bound a p95 (130) or a p99 (662) with 99% confidence.
    few = summarize(many[:100], batch_size=1, wall_s=20.1, window=WINDOW)
    assert few["latency_p99_bound_ms"] is None and few["latency_p95_bound_ms"] is None
