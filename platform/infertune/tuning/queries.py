"""Read-side queries over studies: the same functions serve the CLI, tests and dashboard."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna

from infertune.exceptions import InputError
from infertune.tuning.front import pareto_front
from infertune.tuning.phases import summarize
from infertune.tuning.records import StudyView, TrialRecord, trial_rows
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
    view = StudyView(study)
    verified = view.verified
    current = verified is not None and {c["number"] for c in verified["candidates"]} == {
        r["number"] for r in search_front
    }
    baseline = view.baseline or {}
    if verified is not None and current and verified.get("baseline"):
        # Timed with the candidates, in the same rounds: the speed-ups refer to it.
        baseline = verified["baseline"]["figures"]
    if verified is not None and current:
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
        "verified_at": verified["verified_at"] if verified is not None and current else None,
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
    view = StudyView(study)
    spec = view.spec
    shown = front(study)
    speedups = [p["speedup_p95"] for p in shown["points"] if p.get("speedup_p95")]
    return {
        "study": study.study_name,
        "model": spec.model if spec is not None else None,
        "trials": states,
        "front_size": len(shown["points"]),
        "best_speedup_p95": max(speedups, default=None),
        "verified": shown["verified"],
        "hardware_id": view.hardware_id,
        "created_at": view.created_at,
    }


def all_studies(url: str) -> list[dict[str, Any]]:
    """A summary of every infertune study in the storage."""
    out = []
    for s in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=s.study_name, storage=url)
        if StudyView(study).created_by_infertune:
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


# -- dashboard views: data only, drawn by dashboards/app.py ---------------------------------

#: Figures whose spread a verification records (error bars on the front plot).
LATENCY_FIGURES = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms")


def front_plot_data(study: optuna.Study) -> dict[str, Any]:
    """Every completed trial placed for a front plot, as optuna's ``_get_pareto_front_info``.

    Returns:
        ``objectives`` (figure -> direction), ``x``/``y`` (the first two objectives),
        ``z`` (a third one or ``None``), ``baseline`` (its figures) and ``points``: one per
        completed trial with its figures, knobs, whether it is on the front, verified, kept
        by verification and feasible, and ``error`` (low, high) of each latency figure where a
        verification measured a spread.
    """
    objectives = {str(k): str(v) for k, v in objectives_of(study).items()}
    names = list(objectives)
    shown = front(study)
    on_front = {p["number"]: p for p in shown["points"]}
    verified = StudyView(study).verified if shown["verified"] else None
    candidates = {c["number"]: c for c in (verified or {}).get("candidates", [])}
    points = []
    for row in trial_rows(study):
        if row["state"] != "COMPLETE" or not row["figures"]:
            continue
        number = row["number"]
        candidate = candidates.get(number)
        figures = dict(candidate["figures"] if candidate else row["figures"])
        spread = (candidate or {}).get("spread") or {}
        config = row["config"] or {}
        points.append(
            {
                "number": number,
                "figures": figures,
                "config": config,
                "runtime": config.get("runtime"),
                "precision": config.get("precision"),
                "speedup_p95": (candidate or row).get("speedup_p95"),
                "feasible": row["feasible"],
                "violations": row["violations"],
                "on_front": number in on_front,
                "verified": candidate is not None,
                "kept": bool(candidate and candidate.get("kept")),
                "error": {k: spread[k] for k in LATENCY_FIGURES if k in spread},
            }
        )
    return {
        "study": study.study_name,
        "objectives": objectives,
        "x": names[0],
        "y": names[1] if len(names) > 1 else None,
        "z": names[2] if len(names) > 2 else None,
        "baseline": shown["baseline"],
        "verified": shown["verified"],
        "points": points,
    }


def trials_table(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial as one flat row (knobs and figures as columns), for a sortable table."""
    rows = []
    for row in trial_rows(study):
        flat: dict[str, Any] = {"trial": row["number"], "state": row["state"]}
        flat.update({k: v for k, v in (row["config"] or {}).items()})
        flat.update({k: v for k, v in (row["figures"] or {}).items()})
        flat["speedup_p95"] = row["speedup_p95"]
        flat["feasible"] = row["feasible"]
        flat["why"] = row["fail_reason"] or row["pruned_reason"] or "; ".join(row["violations"])
        flat["duration_s"] = row["duration_s"]
        rows.append(flat)
    return rows


def history(study: optuna.Study) -> dict[str, Any]:
    """Each objective per completed trial, with the best so far (optimisation history)."""
    objectives = objectives_of(study)
    series: dict[str, dict[str, list[Any]]] = {}
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for index, (figure, direction) in enumerate(objectives.items()):
        pick = min if str(direction) == "minimize" else max
        numbers, values, best = [], [], []
        for trial in completed:
            if trial.values is None:
                continue
            numbers.append(trial.number)
            values.append(trial.values[index])
            best.append(pick(values))
        series[str(figure)] = {"trial": numbers, "value": values, "best": best}
    return {"objectives": {str(k): str(v) for k, v in objectives.items()}, "series": series}


def importance(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Optuna's hyperparameter importance of each knob, per objective.

    Empty for an objective when there is too little to tell (fewer than two completed
    trials, or a single knob value throughout).
    """
    out: dict[str, dict[str, float]] = {}
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for index, (figure, direction) in enumerate(objectives_of(study).items()):
        try:
            if len(completed) < 2:
                raise ValueError("too few trials")
            # Optuna's default evaluator scores what leads to *low* targets: negate maxima.
            sign = 1.0 if str(direction) == "minimize" else -1.0
            with warnings.catch_warnings():  # its reminder about low targets, handled above
                warnings.simplefilter("ignore", UserWarning)
                scores = optuna.importance.get_param_importances(
                    study, target=_objective_value(index, sign)
                )
            out[str(figure)] = {k: float(v) for k, v in scores.items()}
        except (ValueError, RuntimeError, ZeroDivisionError):
            out[str(figure)] = {}
    return out


def _objective_value(index: int, sign: float) -> Callable[[optuna.trial.FrozenTrial], float]:
    def value(trial: optuna.trial.FrozenTrial) -> float:
        return sign * float(trial.values[index])

    return value


def trial_detail(study: optuna.Study, number: int) -> dict[str, Any]:
    """One trial: its row, timing phases and the MLflow ids to link to."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise InputError(f"Study '{study.study_name}' has no trial {number}.")
    trial = trials[number]
    record = TrialRecord.from_trial(trial)
    view = StudyView(study)
    row = record.row()
    row["phases_s"] = record.phases_s
    row["duplicate_of"] = record.duplicate_of
    row["on_front"] = number in {p["number"] for p in front(study)["points"]}
    row["mlflow_experiment_id"] = view.experiment_id
    row["baseline"] = view.baseline
    return row
