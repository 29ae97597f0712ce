"""Turn timed calls into latency figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from infertune.measure.early_stopping import percentile_upper_bound
from infertune.measure.window import MeasurementWindow

PERCENTILES = (50, 90, 95, 99)


def summarize(
    latencies_ns: list[int] | np.ndarray,
    *,
    batch_size: int,
    wall_s: float,
    window: MeasurementWindow,
) -> dict[str, Any]:
    """Summarize one timing run.

    Percentiles use the nearest-rank definition (an observed value, never an interpolation
    between two), as MLPerf does. Throughput is samples per second of wall-clock time over
    the timed loop. A run that missed a minimum of ``window`` gets ``valid=False``, an
    ``invalid_reason`` and ``None`` for every figure.
    """
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    calls = int(ms.size)
    reasons = []
    if calls < window.min_calls:
        reasons.append(f"{calls} timed calls, fewer than the minimum {window.min_calls}")
    if wall_s < window.min_duration_s:
        reasons.append(f"{wall_s:.2f} s timed, shorter than the minimum {window.min_duration_s} s")
    result: dict[str, Any] = {
        "valid": not reasons,
        "invalid_reason": None,
        "timed_calls": calls,
        "timed_s": round(wall_s, 4),
        "batch_size": batch_size,
    }
    if reasons:
        result["invalid_reason"] = (
            "; ".join(reasons)
            + f" before the {window.max_duration_s} s limit (raise --max-duration or lower "
            "--min-calls/--min-duration)"
        )
        for p in PERCENTILES:
            result[f"latency_p{p}_ms"] = None
        result.update(
            latency_mean_ms=None,
            latency_std_ms=None,
            latency_min_ms=None,
            latency_max_ms=None,
            throughput_sps=None,
        )
        return result
    for p in PERCENTILES:
        result[f"latency_p{p}_ms"] = float(np.percentile(ms, p, method="inverted_cdf"))
    # Tail percentiles from few calls are not exact: MLPerf's early-stopping bound says what
    # they are under with 99% confidence (None below the 64 / 662 calls a bound needs).
    result.update(
        latency_p95_bound_ms=percentile_upper_bound(ms.tolist(), 0.95),
        latency_p99_bound_ms=percentile_upper_bound(ms.tolist(), 0.99),
    )
    result.update(
        latency_mean_ms=float(ms.mean()),
        latency_std_ms=float(ms.std()),
        latency_min_ms=float(ms.min()),
        latency_max_ms=float(ms.max()),
        throughput_sps=batch_size * calls / wall_s,
        latency_histogram=histogram(ms),
    )
    return result


def histogram(ms: np.ndarray, bins: int = 30) -> dict[str, list[float] | list[int]]:
    """The latency distribution: ``bins`` equal bins up to p99.5 (the tail in the last one).

    Kept small on purpose: it travels with every measurement record.
    """
    high = float(np.percentile(ms, 99.5))
    low = float(ms.min())
    if high <= low:
        high = low + 1e-6
    counts, edges = np.histogram(np.clip(ms, low, high), bins=bins, range=(low, high))
    return {
        "edges_ms": [round(float(e), 6) for e in edges],
        "counts": [int(c) for c in counts],
    }
