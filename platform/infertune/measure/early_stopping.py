"""How many queries a tail percentile needs, and an upper bound on it (MLPerf's early stopping).

A p99 computed from 100 calls is one of the two slowest calls, not a p99. MLPerf Inference's
LoadGen treats each query as a coin flip, "slower than the true percentile or not", and
asks how many queries ``h`` under a latency must be seen, given ``t`` over it, before one
can say with confidence ``c`` that the percentile is under it:
``P(Binomial(h + t, 1 - p) <= t) <= 1 - c``. From that:

- :func:`min_queries`: the fewest queries that give any estimate (662 for p99, 64 for p90
  at 99% confidence: LoadGen's "processed at least" counts);
- :func:`percentile_upper_bound`: the latency that the percentile is under with confidence
  ``c`` (LoadGen's "early stopping estimate"): a sorted latency a little above the plain
  percentile, by how few queries there were;
- :func:`meets_latency_target`: the server scenario's check, whether enough queries ran
  for the count of those over a latency target.

The binomial tail comes from SciPy (``binom.logcdf``), imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "CONFIDENCE",
    "meets_latency_target",
    "min_passing",
    "min_queries",
    "percentile_upper_bound",
]

#: LoadGen's confidence for every early-stopping estimate.
CONFIDENCE = 0.99


def _log_binom_cdf(t: int, n: int, q: float) -> float:
    """``log P(X <= t)`` for ``X ~ Binomial(n, q)``, ``0 < q < 1``."""
    from scipy.stats import binom

    return float(binom.logcdf(t, n, q))


@lru_cache(maxsize=4096)
def min_passing(overlatency: int, percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest queries under a latency that show the percentile is under it.

    With ``overlatency`` queries over the latency, how many under it show, with the given
    confidence, that the ``percentile`` is under that latency.

    Args:
        overlatency: Queries seen over the latency (``t``).
        percentile: The percentile as a fraction, e.g. 0.99.
        confidence: How sure the answer must be.
    """
    if not 0.0 < percentile < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError("percentile and confidence must lie strictly between 0 and 1")
    t = max(0, overlatency)
    threshold = math.log1p(-confidence)
    q = 1.0 - percentile  # chance that one query is over the true percentile

    def passes(h: int) -> bool:
        return _log_binom_cdf(t, h + t, q) <= threshold

    high = max(1, math.ceil(threshold / math.log(percentile)))
    while not passes(high):
        high *= 2
    low = 1
    while low < high:  # smallest passing h (the tail shrinks as h grows)
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid + 1
    return low


def min_queries(percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest queries for which :func:`percentile_upper_bound` gives an answer.

    LoadGen's single-stream rule: one query may be over the estimate (662 for p99, 64 for
    p90).
    """
    return min_passing(1, percentile, confidence) + 1


def percentile_upper_bound(
    latencies: Sequence[float], percentile: float, confidence: float = CONFIDENCE
) -> float | None:
    """A latency that the ``percentile`` is under with the given confidence.

    ``None`` when there are fewer than :func:`min_queries` latencies.

    LoadGen's estimate: the largest ``t`` whose passing count ``h`` still fits in the ``n``
    queries (``h + t <= n``); the answer is the ``t``-th slowest latency.
    """
    n = len(latencies)
    if n < min_queries(percentile, confidence):
        return None
    ordered = sorted(latencies)
    # h(t) + t grows with t: the largest t that still fits in n, by bisection.
    low, high = 1, n  # h(1) + 1 <= n holds (n >= min_queries)
    while low < high:
        mid = (low + high + 1) // 2
        if min_passing(mid, percentile, confidence) + mid <= n:
            low = mid
        else:
            high = mid - 1
    return float(ordered[n - low])


def meets_latency_target(
    latencies: Sequence[float],
    target: float,
    percentile: float,
    confidence: float = CONFIDENCE,
) -> tuple[bool, int]:
    """Whether the ``percentile`` of ``latencies`` is shown to be under ``target``.

    LoadGen's server check: with ``t`` latencies over the target, ``n >= h(t) + t``.

    Returns:
        ``(met, more_queries_needed)``: ``more_queries_needed`` is how many further queries,
        all under the target, would have made it pass (0 when met).
    """
    over = sum(1 for latency in latencies if latency > target)
    needed = min_passing(over, percentile, confidence) + over
    return len(latencies) >= needed, max(0, needed - len(latencies))
