"""Dominance and the Pareto front of trial rows (data only: no drawing here)."""

from __future__ import annotations

from typing import Any

from infertune.space.schema import Direction, Figure

__all__ = ["dominates", "pareto_front"]


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
