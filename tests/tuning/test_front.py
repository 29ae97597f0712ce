"""Dominance with confidence intervals: drop only beyond the noise, show ties as ties."""

from __future__ import annotations

import pytest

from infertune.space.schema import Direction
from infertune.tuning.front import dominates_surely, median_interval, surely_better, tied

OBJ = {"latency_p95_ms": Direction.MINIMIZE, "quality": Direction.MAXIMIZE}


def test_median_interval_from_order_statistics() -> None:
    # Five repeats: [min, max] covers the median with 1 - 2/32.
    assert median_interval([5.0, 1.0, 3.0, 2.0, 4.0]) == ((1.0, 5.0), pytest.approx(0.9375))
    # Eleven repeats at 90%: the 3rd lowest to the 3rd highest (coverage 0.935).
    interval, coverage = median_interval([float(v) for v in range(11)])
    assert interval == (2.0, 8.0) and coverage == pytest.approx(0.9346, abs=1e-4)
    assert median_interval([7.0]) == ((7.0, 7.0), 0.0)
    with pytest.raises(ValueError):
        median_interval([])


def test_surely_better_needs_disjoint_intervals() -> None:
    assert surely_better((1.0, 1.2), (1.3, 1.5), Direction.MINIMIZE)
    assert not surely_better((1.0, 1.3), (1.3, 1.5), Direction.MINIMIZE)
    assert surely_better((0.9, 0.95), (0.8, 0.85), Direction.MAXIMIZE)


def test_overlapping_latency_with_better_quality_dominates() -> None:
    a, b = {"latency_p95_ms": 1.01, "quality": 0.95}, {"latency_p95_ms": 1.00, "quality": 0.93}
    ia, ib = {"latency_p95_ms": (0.95, 1.10)}, {"latency_p95_ms": (0.97, 1.05)}
    assert dominates_surely(a, b, OBJ, ia, ib)
    assert not dominates_surely(b, a, OBJ, ib, ia)


def test_a_median_win_inside_the_noise_is_a_tie() -> None:
    a, b = {"latency_p95_ms": 1.00, "quality": 0.95}, {"latency_p95_ms": 1.20, "quality": 0.95}
    ia, ib = {"latency_p95_ms": (0.90, 1.25)}, {"latency_p95_ms": (1.10, 1.30)}
    assert not dominates_surely(a, b, OBJ, ia, ib)
    assert tied(a, b, OBJ, ia, ib)
    # Tighter intervals make the same medians a real win.
    ia = {"latency_p95_ms": (0.98, 1.02)}
    assert dominates_surely(a, b, OBJ, ia, ib) and not tied(a, b, OBJ, ia, ib)


def test_surely_worse_somewhere_never_dominates() -> None:
    a, b = {"latency_p95_ms": 2.0, "quality": 0.99}, {"latency_p95_ms": 1.0, "quality": 0.90}
    ia, ib = {"latency_p95_ms": (1.9, 2.1)}, {"latency_p95_ms": (0.9, 1.1)}
    assert not dominates_surely(a, b, OBJ, ia, ib) and not dominates_surely(b, a, OBJ, ib, ia)
