"""Dominance and the Pareto front of trial rows (data only: no drawing here).

Two kinds of dominance: :func:`dominates` on single figures (with a relative tie margin for
measured times), used on the search's trials; and :func:`dominates_surely` on figures with
confidence intervals, used on the verified front, where a candidate is dropped only when
another beats it beyond both intervals (:func:`sift` applies it to a set of candidates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infertune.space.schema import Direction, Figure

__all__ = [
    "Interval",
    "Verdict",
    "coverage_warning",
    "dominates",
    "dominates_surely",
    "interval_coverage",
    "median_interval",
    "pareto_front",
    "sift",
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
        noisy = figure.startswith(
            ("latency", "throughput", "peak_memory", "achieved_qps", "max_qps", "cost")
        )
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


def interval_coverage(n: int, lower: int = 0) -> float:
    """How often ``[x(lower+1), x(n-lower)]`` of ``n`` sorted repeats holds their median.

    ``lower=0`` is ``[min, max]``: ``1 - 2 / 2**n`` (0 for one repeat, 0.5 for two).
    """
    return 1 - 2 * _binom_half_cdf(lower, n) if n > 2 * lower else 0.0


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
    lower, coverage = 0, interval_coverage(n)
    for j in range(1, n // 2):
        cover = interval_coverage(n, j)
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

    ``a`` is at least as good as ``b`` for sure on every objective (its whole interval is on
    the good side of ``b``'s: they touch at most) and better for sure on one. Overlapping
    intervals are *not* enough to be at least as good: ``b`` may really be the faster, so
    a ``b`` that is more accurate but might be slower stays, and so does a ``b`` that is
    less accurate but might be faster. Figures without an interval (accuracy, quality)
    compare exactly.
    """
    better = False
    for figure, direction in objectives.items():
        ia, ib = _interval(a, a_intervals, figure), _interval(b, b_intervals, figure)
        if not _surely_not_worse(ia, ib, direction):
            return False
        better = better or surely_better(ia, ib, direction)
    return better


def _surely_not_worse(a: Interval, b: Interval, direction: Direction) -> bool:
    """Whether ``a`` is at least as good as ``b`` whatever the true values in the intervals."""
    return a[1] <= b[0] if direction is Direction.MINIMIZE else a[0] >= b[1]


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


def _intervals(point: Mapping[str, Any]) -> dict[str, Interval]:
    """A point's stored intervals (JSON lists) as tuples; none for an unverified point."""
    return {k: (float(v[0]), float(v[1])) for k, v in (point.get("intervals") or {}).items()}


@dataclass(frozen=True)
class Verdict:
    """What verification decided for one candidate."""

    kept: bool
    ties_with: list[int] = field(default_factory=list)
    """Other kept candidates it is :func:`tied` with (no objective tells them apart)."""
    dominated_by: list[int] = field(default_factory=list)
    """Candidates that :func:`dominates_surely` it (empty for a kept one)."""


def sift(
    points: Sequence[Mapping[str, Any]], objectives: Mapping[Figure, Direction]
) -> dict[int, Verdict]:
    """Keep every candidate that no other surely dominates; name the ties among those kept.

    Args:
        points: Candidates with ``number``, ``figures`` and ``intervals`` (figure ->
            ``[low, high]``; figures without one compare exactly).
        objectives: The study's objectives.

    Returns:
        Each candidate's number -> its :class:`Verdict`.
    """
    spans = {p["number"]: _intervals(p) for p in points}
    beaten = {
        p["number"]: [
            o["number"]
            for o in points
            if o is not p
            and dominates_surely(
                o["figures"], p["figures"], objectives, spans[o["number"]], spans[p["number"]]
            )
        ]
        for p in points
    }
    kept = [p for p in points if not beaten[p["number"]]]
    return {
        p["number"]: Verdict(
            kept=not beaten[p["number"]],
            ties_with=[
                o["number"]
                for o in kept
                if o is not p
                and not beaten[p["number"]]
                and tied(
                    o["figures"], p["figures"], objectives, spans[o["number"]], spans[p["number"]]
                )
            ],
            dominated_by=beaten[p["number"]],
        )
        for p in points
    }


def coverage_warning(repeats: int, coverage: float, confidence: float) -> str | None:
    """A line saying the intervals are too narrow to trust, or ``None`` when they are not."""
    if coverage >= confidence:
        return None
    needed = next(n for n in range(1, 64) if interval_coverage(n) >= confidence)
    return (
        f"{repeats} repeat{'s give' if repeats != 1 else ' gives'} intervals of {coverage:.1%} "
        f"coverage, short of {confidence:.0%}: differences they call sure may be noise "
        f"(verify with --repeats {needed} or more)"
    )


#: The coverage verification's intervals aim for (five repeats or more reach it).
VERIFY_CONFIDENCE = 0.9


def verify_method(repeats: int, coverage: float) -> str:
    """How the verified front's intervals were made, in words (stored and shown)."""
    return (
        f"order-statistic interval of the median over {repeats} repeat"
        f"{'s' if repeats != 1 else ''}, coverage {coverage:.1%}"
    )
