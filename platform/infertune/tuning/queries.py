"""Read-side queries over studies: the same functions serve the CLI, tests and dashboard."""

from __future__ import annotations

from typing import Any

import optuna

from infertune.exceptions import InputError
from infertune.tuning.front import pareto_front, study_attr, trial_rows
from infertune.tuning.phases import summarize
from infertune.tuning.study import objectives_of


def load(name: str, url: str) -> optuna.Study:
    """Open an existing study, or say which ones exist."""
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(url)) or "none"
        raise InputError(f"No study named '{name}' in {url} (studies there: {names}).") from None


def front(study: optuna.Study) -> dict[str, Any]:
    """The front to show: the verified one when it exists and is current, else the search's.

    A verification is current if no trial finished after it was made.
    """
    objectives = objectives_of(study)
    rows = trial_rows(study)
    search_front = pareto_front(rows, objectives)
    verified = study_attr(study, "verified")
    current = verified is not None and {c["number"] for c in verified["candidates"]} == {
        r["number"] for r in search_front
    }
    baseline = study_attr(study, "baseline", {})
    if current:
        points = [c for c in verified["candidates"] if c["kept"]]
        dropped = [c for c in verified["candidates"] if not c["kept"]]
    else:
        points = [
            {
                "number": r["number"],
                "config": r["config"],
                "figures": r["figures"],
                "speedup_p95": r["speedup_p95"],
                "spread": None,
            }
            for r in search_front
        ]
        dropped = []
    feasible = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"]]
    infeasible = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"] is False]
    nearest = sorted(infeasible, key=lambda r: len(r["violations"]))[:3]
    return {
        "study": study.study_name,
        "objectives": {str(k): str(v) for k, v in objectives.items()},
        "baseline": baseline,
        "verified": current,
        "verified_at": verified["verified_at"] if current else None,
        "points": points,
        "dropped_by_verification": dropped,
        "feasible_count": len(feasible),
        "nearest_infeasible": nearest if not feasible else [],
    }


def summary(study: optuna.Study) -> dict[str, Any]:
    """One line's worth of facts about a study."""
    rows = trial_rows(study)
    states = {
        s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
    }
    spec = study_attr(study, "spec", {})
    shown = front(study)
    speedups = [p["speedup_p95"] for p in shown["points"] if p.get("speedup_p95")]
    return {
        "study": study.study_name,
        "model": spec.get("model"),
        "trials": states,
        "front_size": len(shown["points"]),
        "best_speedup_p95": max(speedups, default=None),
        "verified": shown["verified"],
        "hardware_id": (study_attr(study, "fingerprint") or {}).get("hardware_id"),
        "created_at": study_attr(study, "created_at"),
    }


def all_studies(url: str) -> list[dict[str, Any]]:
    """A summary of every infertune study in the storage."""
    out = []
    for s in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=s.study_name, storage=url)
        if study_attr(study, "spec") is not None:
            out.append(summary(study))
    return out


def overhead(study: optuna.Study) -> dict[str, Any]:
    """Where the study's trial time went (``infertune.tuning.phases``) and its cache hit rate.

    Trials proposed again (duplicates) reuse figures and build nothing; they count in the
    time split but not in the cache hit rate.
    """
    trials = study.get_trials(deepcopy=False)
    result = summarize([t.user_attrs["phases_s"] for t in trials if "phases_s" in t.user_attrs])
    looked_up = [t.user_attrs.get("variant_cache_hit") for t in trials]
    hits = [hit for hit in looked_up if hit is not None]
    result["variant_cache_hit_rate"] = sum(hits) / len(hits) if hits else None
    result["variants_looked_up"] = len(hits)
    return result
