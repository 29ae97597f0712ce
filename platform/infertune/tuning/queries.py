"""Read-side queries over studies: the same functions serve the CLI, tests and dashboard."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna
from sqlalchemy.exc import SQLAlchemyError

from infertune.exceptions import InputError, StorageError
from infertune.space.schema import Direction, Figure
from infertune.storage.db import safe_url
from infertune.tuning.front import coverage_warning, interval_coverage, pareto_front, tied
from infertune.tuning.phases import summarize
from infertune.tuning.records import StudyView, TrialRecord, trial_rows
from infertune.tuning.study import VERIFY_CONFIDENCE, objectives_of, verify_method


def _where(storage: str | optuna.storages.BaseStorage) -> str:
    if isinstance(storage, str):
        return safe_url(storage)
    backend = getattr(storage, "_backend", storage)
    engine = getattr(backend, "engine", None)
    return safe_url(str(engine.url)) if engine is not None else "the storage"


def study_names(storage: str | optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in a storage.

    Raises:
        StorageError: The storage cannot be read.
    """
    try:
        return [s.study_name for s in optuna.get_all_study_summaries(storage)]
    except SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(
            f"Cannot read the studies in {_where(storage)}: {text[0] if text else exc}"
        ) from None


def load(name: str, storage: str | optuna.storages.BaseStorage) -> optuna.Study:
    """Open an existing study, or say which ones exist.

    ``storage`` is a URL or an Optuna storage (one with heartbeats, for instance).

    Raises:
        InputError: No study of that name (the message lists those there).
        StorageError: The storage cannot be read.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(study_names(storage)) or "none"
        raise InputError(
            f"No study named '{name}' in {_where(storage)} (studies there: {names})."
        ) from None
    except SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(
            f"Cannot read study '{name}' in {_where(storage)}: {text[0] if text else exc}"
        ) from None


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
    verification = None
    if verified is not None and current:
        verification, candidates = _verification(verified, objectives)
        points = [c for c in candidates if c["kept"]]
        dropped = [c for c in candidates if not c["kept"]]
    else:
        points = [
            {
                "number": r["number"],
                "config": r["config"],
                "figures": r["figures"],
                "speedup_p95": r["speedup_p95"],
                "spread": None,
                "intervals": None,
                "ties_with": [],
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
        "verification": verification,
        "points": points,
        "dropped_by_verification": dropped,
        "feasible_count": len(feasible),
        "nearest_infeasible": nearest if not feasible else [],
    }


def _verification(
    verified: dict[str, Any], objectives: dict[Figure, Direction]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """How a stored verification was made, and its candidates with intervals and ties.

    A verification stored before intervals existed kept its spreads: ``[min, max]`` of its
    repeats, a valid interval of the median with coverage ``1 - 2 / 2**repeats``; the ties
    among its kept candidates are worked out from them (its kept set stays as decided).
    """
    repeats = int(verified.get("repeats") or 0)
    legacy = "coverage" not in verified
    coverage = interval_coverage(repeats) if legacy else float(verified["coverage"])
    candidates = [dict(c) for c in verified["candidates"]]
    if legacy:
        for c in candidates:
            c.update(intervals=c.get("spread") or {}, coverage=coverage, repeats=repeats)
            c.setdefault("dominated_by", [])
        kept = [c for c in candidates if c["kept"]]
        for c in candidates:
            c["ties_with"] = [
                o["number"] for o in kept if c["kept"] and o is not c and _tied(o, c, objectives)
            ]
    confidence = float(verified.get("confidence", VERIFY_CONFIDENCE))
    baseline = verified.get("baseline") or {}
    disturbed = sum(int(c.get("disturbed_repeats") or 0) for c in candidates) + int(
        baseline.get("disturbed_repeats") or 0
    )
    return {
        "disturbed_timings": disturbed,
        "repeats": repeats,
        # Empty when no baseline timing of the rounds was valid (the search's stands in).
        "baseline_intervals": baseline.get("intervals", baseline.get("spread")) or {},
        "confidence": confidence,
        "coverage": coverage,
        "method": verified.get("method") or verify_method(repeats, coverage),
        "warning": coverage_warning(repeats, coverage, confidence),
    }, candidates


def _tied(a: dict[str, Any], b: dict[str, Any], objectives: dict[Figure, Direction]) -> bool:
    spans = [
        {k: (float(v[0]), float(v[1])) for k, v in (p.get("intervals") or {}).items()}
        for p in (a, b)
    ]
    return tied(a["figures"], b["figures"], objectives, spans[0], spans[1])


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


def front_plot_data(study: optuna.Study) -> dict[str, Any]:
    """Every completed trial placed for a front plot, as optuna's ``_get_pareto_front_info``.

    Returns:
        ``objectives`` (figure -> direction), ``x``/``y`` (the first two objectives),
        ``z`` (a third one or ``None``), ``baseline`` (its figures) and ``points``: one per
        completed trial with its figures, knobs, whether it is on the front, verified, kept
        by verification and feasible, ``error`` (the median's confidence interval, low and
        high, of each figure a verification measured) and ``ties_with`` (kept points it is
        tied with); and ``verification`` (method and coverage, ``None`` if not verified).
    """
    objectives = {str(k): str(v) for k, v in objectives_of(study).items()}
    names = list(objectives)
    shown = front(study)
    on_front = {p["number"]: p for p in shown["points"]}
    # Verified candidates, kept or dropped (none while the front is the search's).
    candidates = (
        {c["number"]: c for c in [*shown["points"], *shown["dropped_by_verification"]]}
        if shown["verified"]
        else {}
    )
    points = []
    for row in trial_rows(study):
        if row["state"] != "COMPLETE" or not row["figures"]:
            continue
        number = row["number"]
        candidate = candidates.get(number)
        figures = dict(candidate["figures"] if candidate else row["figures"])
        intervals = (candidate or {}).get("intervals") or {}
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
                "error": {k: list(v) for k, v in intervals.items()},
                "ties_with": list((candidate or {}).get("ties_with") or []),
                "dominated_by": list((candidate or {}).get("dominated_by") or []),
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
        "verification": shown["verification"],
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


def serving_curves(study: optuna.Study) -> dict[str, Any] | None:
    """Rate vs p99 of the front's points, for a server study with a p99 objective.

    ``None`` for other studies. Each curve is the search's bisection over the rate (one
    point per server run), sorted by rate.
    """
    spec = StudyView(study).spec
    if spec is None:
        return None
    scenario = spec.search_space().measurement.scenario
    if scenario.slo_p99_ms is None:
        return None
    shown = front(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    curves = []
    for point in shown["points"]:
        trial = trials.get(point["number"])
        curve = trial.user_attrs.get("serving_curve") if trial is not None else None
        if curve:
            curves.append(
                {
                    "number": point["number"],
                    "config": point["config"],
                    "points": sorted(curve, key=lambda p: p["target_qps"]),
                }
            )
    return {"slo_p99_ms": scenario.slo_p99_ms, "curves": curves}


#: Completed trials under which knob importance is shown as unreliable: fANOVA fits a
#: random forest, and on a handful of trials its split of the variance is mostly noise.
MIN_IMPORTANCE_TRIALS = 20


def knob_importance(study: optuna.Study, seed: int = 0) -> dict[str, dict[str, Any]]:
    """How much of each objective's variance each knob explains (fANOVA), per objective.

    The trials are scored on their knobs (``runtime``, ``batch_size``, ...), not on Optuna's
    parameters (``batch_size_log2``, ``precision_openvino``): a knob a trial did not sample
    counts at its default, so conditional knobs and the runtime are compared on every trial.
    Latency, size and memory objectives are scored on their logarithm, so a knob that
    multiplies latency by 50 outweighs one that adds a few milliseconds.

    Returns:
        For each objective: ``scores`` (knob -> share, summing to 1; empty when there is too
        little to tell), ``trials`` (completed trials used), ``reliable`` (at least
        :data:`MIN_IMPORTANCE_TRIALS`), ``log_scale`` and ``method``.
    """
    import math

    from optuna.distributions import BaseDistribution, CategoricalDistribution
    from optuna.importance import FanovaImportanceEvaluator

    rows = [r for r in trial_rows(study) if r["state"] == "COMPLETE" and r["figures"]]
    knobs = sorted({k for r in rows for k in (r["config"] or {})})
    values = {k: sorted({str((r["config"] or {}).get(k, "default")) for r in rows}) for k in knobs}
    varied = [k for k in knobs if len(values[k]) > 1]
    out: dict[str, dict[str, Any]] = {}
    for figure in objectives_of(study):
        name = str(figure)
        usable = [r for r in rows if isinstance(r["figures"].get(name), int | float)]
        targets = [float(r["figures"][name]) for r in usable]
        log_scale = name.startswith(("latency", "model_size", "peak_memory")) and all(
            t > 0 for t in targets
        )
        entry: dict[str, Any] = {
            "scores": {},
            "trials": len(usable),
            "reliable": len(usable) >= MIN_IMPORTANCE_TRIALS,
            "log_scale": log_scale,
            "method": "fANOVA",
        }
        out[name] = entry
        if len(usable) < 2 or not varied or len(set(targets)) < 2:
            continue
        distributions: dict[str, BaseDistribution] = {
            k: CategoricalDistribution(values[k]) for k in varied
        }
        scratch = optuna.create_study()  # in memory: the knobs as its parameters
        for row, target in zip(usable, targets, strict=True):
            params = {k: str((row["config"] or {}).get(k, "default")) for k in varied}
            scratch.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions=distributions,
                    value=math.log10(target) if log_scale else target,
                )
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = optuna.importance.get_param_importances(
                    scratch, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=True
                )
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        entry["scores"] = {k: float(v) for k, v in scores.items()}
    return out


#: Notes are study user attributes (a finished trial's own attributes are read-only in
#: Optuna): ``infertune.note`` for the study, ``infertune.note.trial.<number>`` for a trial.
NOTE_ATTR = "infertune.note"
#: The longest note kept, in characters.
MAX_NOTE_CHARS = 4000


def _note_key(trial: int | None) -> str:
    return NOTE_ATTR if trial is None else f"{NOTE_ATTR}.trial.{trial}"


def notes(study: optuna.Study) -> dict[str, Any]:
    """The notes on a study and its trials: ``study`` (or None) and ``trials`` by number.

    Each note is ``{"text", "by", "at"}``.
    """
    attrs = study.user_attrs
    prefix = f"{NOTE_ATTR}.trial."
    trials = {
        int(key.removeprefix(prefix)): value
        for key, value in attrs.items()
        if key.startswith(prefix) and key.removeprefix(prefix).isdigit() and value
    }
    return {"study": attrs.get(NOTE_ATTR) or None, "trials": dict(sorted(trials.items()))}


def set_note(
    study: optuna.Study, text: str, trial: int | None = None, actor: str = "unknown"
) -> dict[str, Any] | None:
    """Write (or, with empty text, clear) the note on a study or one of its trials.

    Raises:
        InputError: No such trial, or the note is longer than :data:`MAX_NOTE_CHARS`.
    """
    import datetime as dt

    if trial is not None and not 0 <= trial < len(study.get_trials(deepcopy=False)):
        raise InputError(f"Study '{study.study_name}' has no trial {trial}.")
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InputError(f"A note holds at most {MAX_NOTE_CHARS} characters ({len(text)} given).")
    note = (
        {"text": text, "by": actor, "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}
        if text
        else None
    )
    study.set_user_attr(_note_key(trial), note)
    return note


def trial_runs(study: optuna.Study) -> dict[str, Any]:
    """The MLflow experiment of a study and each trial's run id (trials without one left out)."""
    runs = {r["number"]: r["mlflow_run_id"] for r in trial_rows(study) if r["mlflow_run_id"]}
    return {"experiment_id": StudyView(study).experiment_id, "runs": runs}


def related_studies(study: optuna.Study, storage: str | optuna.storages.BaseStorage) -> list[str]:
    """The studies of the same line as ``study``: the one it re-tunes and its re-tunes.

    Re-tunes are named ``<schedule>-retune-<time>`` and record which study they continue
    (``retune_of``); both are followed, oldest first.
    """
    names = study_names(storage)
    root = study.study_name.split("-retune-")[0]
    family = [n for n in names if n == root or n.startswith(f"{root}-retune-")]
    previous = StudyView(study).retune_of
    if previous and previous not in family and previous in names:
        family.insert(0, previous)
    return family
