"""Trials as rows, feasibility, and the Pareto front (data only: no drawing here)."""

from __future__ import annotations

from typing import Any

import optuna

from infertune.space.schema import Direction, Figure

ATTR = "infertune."


def study_attr(study: optuna.Study, name: str, default: Any = None) -> Any:
    """An infertune attribute of the study."""
    return study.user_attrs.get(ATTR + name, default)


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as a flat, JSON-ready row."""
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        "config": attrs.get("config"),
        "figures": attrs.get("figures"),
        "feasible": attrs.get("feasible"),
        "violations": attrs.get("violations", []),
        "speedup_p95": attrs.get("speedup_p95"),
        "fail_reason": attrs.get("fail_reason"),
        "pruned_reason": attrs.get("pruned_reason"),
        "mlflow_run_id": attrs.get("mlflow_run_id"),
        "variant_key": attrs.get("variant_key"),
        "duration_s": trial.duration.total_seconds() if trial.duration else None,
    }


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial of the study, oldest first."""
    return [trial_row(t) for t in study.get_trials(deepcopy=False)]


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
