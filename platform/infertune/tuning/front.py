"""Dominance and the Pareto front of trial rows (data only: no drawing here).

Two kinds of dominance: :func:`dominates` on single figures (with a relative tie margin for
measured times), used on the search's trials; and :func:`dominates_surely` on figures with
confidence intervals, used on the verified front, where a candidate is dropped only when
another beats it beyond both intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from infertune.space.schema import Direction, Figure

__all__ = [
    "Interval",
    "dominates",
    "dominates_surely",
    "median_interval",
    "pareto_front",
    "surely_better",
    "tied",
]

#: A confidence interval ``(low, high)``.
Interval = tuple[float, float]


def _better(a: float, b: float, direction: Direction, margin: float, relative: bool) -> bool:
    """Whether ``a`` beats ``b`` by more than the margin."""
    gap = margin * abs(b) if relative else margin
    return a < b - gap if direction is Direction.MINIMIZE else a > b + gap


def dominates(
    a: dict[str, float],
    b: dict[str, float],
    objectives: dict[Figure, Direction],
    margin: float = 0.0,
) -> bool:
    """Whether figures ``a`` dominate ``b``: nowhere worse beyond ``margin``, somewhere better.

    ``margin`` is relative and applies to measured-time figures (latency, throughput,
    memory), whose run-to-run noise it absorbs; accuracy-type figures are exact.
    """
    strictly = False
    for figure, direction in objectives.items():
        noisy = figure.startswith(("latency", "throughput", "peak_memory"))
        m = margin if noisy else 0.0
        if _better(b[figure], a[figure], direction, m, relative=True):
            return False
        if _better(a[figure], b[figure], direction, m, relative=True):
            strictly = True
    return strictly


def pareto_front(
    rows: list[dict[str, Any]], objectives: dict[Figure, Direction], margin: float = 0.0
) -> list[dict[str, Any]]:
    """Feasible completed rows that no other feasible completed row dominates."""
    pool, seen = [], []
    for r in rows:
        # One row per configuration: parallel workers may measure one configuration twice.
        if r["state"] == "COMPLETE" and r["feasible"] and r["figures"] and r["config"] not in seen:
            pool.append(r)
            seen.append(r["config"])
    front = [
        r
        for r in pool
        if not any(
            dominates(o["figures"], r["figures"], objectives, margin) for o in pool if o is not r
        )
    ]
    return sorted(
        front,
        key=lambda r: [
            r["figures"][f] * (1 if d is Direction.MINIMIZE else -1) for f, d in objectives.items()
        ],
    )


def _binom_half_cdf(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``."""
    return float(sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def median_interval(values: Sequence[float], confidence: float = 0.9) -> tuple[Interval, float]:
    """A distribution-free confidence interval for the median, from order statistics.

    The true median lies between the ``j``-th lowest and ``j``-th highest of ``n``
    independent repeats with probability ``1 - 2 P(Binomial(n, 1/2) < j)``; the narrowest
    such interval with at least ``confidence`` is returned, with its exact coverage. Five
    repeats give ``[min, max]`` at 93.75%; fewer than five cannot reach 90%, so the
    interval is ``[min, max]`` with its lower coverage (0 for one repeat).
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values")
    lower, coverage = 0, 1 - 2 * _binom_half_cdf(0, n)
    for j in range(1, n // 2):
        cover = 1 - 2 * _binom_half_cdf(j, n)
        if cover < confidence:
            break
        lower, coverage = j, cover
    return (ordered[lower], ordered[n - 1 - lower]), coverage


def surely_better(a: Interval, b: Interval, direction: Direction) -> bool:
    """Whether ``a`` beats ``b`` beyond both intervals (they do not overlap)."""
    return a[1] < b[0] if direction is Direction.MINIMIZE else a[0] > b[1]


def _interval(figures: Mapping[str, Any], intervals: Mapping[str, Interval], f: str) -> Interval:
    value = float(figures[f])
    return intervals.get(f, (value, value))  # exact figures (quality) have no spread


def dominates_surely(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    objectives: Mapping[Figure, Direction],
    a_intervals: Mapping[str, Interval],
    b_intervals: Mapping[str, Interval],
) -> bool:
    """Whether ``a`` dominates ``b`` beyond the noise of measurement.

    ``a`` is nowhere surely worse (overlapping intervals are a tie) and somewhere surely
    better. Figures without an interval (accuracy, quality) compare exactly.
    """
    better = False
    for figure, direction in objectives.items():
        ia, ib = _interval(a, a_intervals, figure), _interval(b, b_intervals, figure)
        if surely_better(ib, ia, direction):
            return False
        better = better or surely_better(ia, ib, direction)
    return better


def tied(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    objectives: Mapping[Figure, Direction],
    a_intervals: Mapping[str, Interval],
    b_intervals: Mapping[str, Interval],
) -> bool:
    """Whether neither is surely better than the other on any objective."""
    return not any(
        surely_better(ia, ib, d) or surely_better(ib, ia, d)
        for f, d in objectives.items()
        for ia, ib in [(_interval(a, a_intervals, f), _interval(b, b_intervals, f))]
    )
