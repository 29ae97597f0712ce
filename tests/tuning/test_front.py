"""Dominance with confidence intervals: drop only beyond the noise, show ties as ties."""

from __future__ import annotations

import pytest

from infertune.space.schema import Direction
from infertune.tuning.front import (
    coverage_warning,
    dominates_surely,
    interval_coverage,
    median_interval,
    sift,
    surely_better,
    tied,
)

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


def test_overlapping_latency_never_drops_a_point() -> None:
    # More accurate but maybe slower, or less accurate but maybe faster: both stay (the
    # latencies' intervals overlap, so neither is surely at least as fast).
    a, b = {"latency_p95_ms": 1.01, "quality": 0.95}, {"latency_p95_ms": 1.00, "quality": 0.93}
    ia, ib = {"latency_p95_ms": (0.95, 1.10)}, {"latency_p95_ms": (0.97, 1.05)}
    assert not dominates_surely(a, b, OBJ, ia, ib)
    assert not dominates_surely(b, a, OBJ, ib, ia)
    # Surely at least as fast and more accurate: dominated.
    ia = {"latency_p95_ms": (0.90, 0.96)}
    assert dominates_surely(a, b, OBJ, ia, ib)


def test_a_noisy_busy_machine_keeps_the_trade_offs() -> None:
    # A verification on a busy machine (wide intervals): the most accurate point must not
    # swallow the fast ones.
    fast = {"latency_p95_ms": 0.26, "quality": 0.950}
    accurate = {"latency_p95_ms": 1.53, "quality": 0.975}
    i_fast, i_accurate = {"latency_p95_ms": (0.18, 1.76)}, {"latency_p95_ms": (0.62, 13.0)}
    assert not dominates_surely(accurate, fast, OBJ, i_accurate, i_fast)


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


def test_interval_coverage_of_min_max() -> None:
    assert interval_coverage(1) == 0.0
    assert interval_coverage(2) == pytest.approx(0.5)
    assert interval_coverage(3) == pytest.approx(0.75)
    assert interval_coverage(5) == pytest.approx(0.9375)
    assert interval_coverage(4, lower=2) == 0.0  # no interval left


def _point(number: int, p95: float, quality: float, low: float, high: float) -> dict[str, object]:
    return {
        "number": number,
        "figures": {"latency_p95_ms": p95, "quality": quality},
        "intervals": {"latency_p95_ms": [low, high]},
    }


def test_sift_keeps_the_undominated_and_names_ties() -> None:
    points = [
        _point(0, 1.00, 0.95, 0.96, 1.04),
        _point(1, 1.10, 0.95, 1.03, 1.18),  # slower by the median, inside the noise: a tie
        _point(2, 1.60, 0.94, 1.50, 1.70),  # surely slower and less accurate: dropped
        _point(3, 2.00, 0.99, 1.90, 2.10),  # slower but more accurate: a trade-off
    ]
    verdicts = sift(points, OBJ)
    assert [n for n, v in verdicts.items() if v.kept] == [0, 1, 3]
    assert verdicts[0].ties_with == [1] and verdicts[1].ties_with == [0]
    assert verdicts[3].ties_with == [] and verdicts[3].dominated_by == []
    assert verdicts[2].dominated_by == [0, 1] and verdicts[2].ties_with == []
    # Without intervals (an unverified point) medians compare exactly: #0 drops #1.
    bare = [{k: v for k, v in p.items() if k != "intervals"} for p in points[:2]]
    assert not sift(bare, OBJ)[1].kept


def test_coverage_warning_only_below_the_target() -> None:
    assert coverage_warning(5, 0.9375, 0.9) is None
    text = coverage_warning(3, 0.75, 0.9)
    assert text is not None and "75.0%" in text and "--repeats 5" in text
    assert "1 repeat gives" in str(coverage_warning(1, 0.0, 0.9))
