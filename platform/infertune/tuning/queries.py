"""Read-side queries over studies: the same functions serve the CLI, tests and dashboard."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from sqlalchemy.exc import SQLAlchemyError

from infertune.exceptions import InputError, StorageError
from infertune.storage.db import safe_url
from infertune.tuning import summaries
from infertune.tuning.phases import summarize
from infertune.tuning.records import StudyView, TrialRecord


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
        return optuna.get_all_study_names(storage)
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

    A verification is current if no trial finished after it was made. Read from the
    study's summary (:mod:`infertune.tuning.summaries`), brought up to date first.
    """
    return summaries.sync(study).front


def summary(study: optuna.Study) -> dict[str, Any]:
    """One line's worth of facts about a study."""
    return summaries.sync(study).summary


def version(study: optuna.Study) -> str:
    """A key that changes whenever a trial of the study starts or ends or it is verified.

    Cache what is drawn from a study under it.
    """
    return summaries.sync(study).version


def all_studies(url: str | optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """A summary of every infertune study in the storage."""
    storage = optuna.storages.get_storage(url) if isinstance(url, str) else url
    out = []
    for name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
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
    shown = front(study)
    objectives = dict(shown["objectives"])
    names = list(objectives)
    on_front = {p["number"] for p in shown["points"]}
    # Verified candidates, kept or dropped (none while the front is the search's).
    candidates = (
        {c["number"]: c for c in [*shown["points"], *shown["dropped_by_verification"]]}
        if shown["verified"]
        else {}
    )
    points = []
    with summaries.bulk_read():  # 10,000 rows make 50,000 small objects
        for row in summaries.rows(study, states=("COMPLETE",), synced=True):
            if not row["figures"]:
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


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {"trial": row["number"], "state": row["state"]}
    flat.update({k: v for k, v in (row["config"] or {}).items()})
    flat.update({k: v for k, v in (row["figures"] or {}).items()})
    flat["speedup_p95"] = row["speedup_p95"]
    flat["feasible"] = row["feasible"]
    flat["on_front"] = row.get("on_front", False)
    flat["why"] = row["fail_reason"] or row["pruned_reason"] or "; ".join(row["violations"] or [])
    flat["duration_s"] = row["duration_s"]
    return flat


def trials_table(
    study: optuna.Study,
    *,
    states: Sequence[str] | None = None,
    front_only: bool = False,
    feasible: bool | None = None,
    runtime: Sequence[str] | None = None,
    precision: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Trials as flat rows (knobs and figures as columns), filtered and paged in the database.

    ``states`` keeps trials in those states (``COMPLETE``, ``PRUNED``, ``FAIL``,
    ``RUNNING``), ``front_only`` those on the shown front; ``limit``/``offset`` page
    through them (oldest first, or newest first).
    """
    return [
        _flat(row)
        for row in summaries.rows(
            study,
            states=states,
            on_front=True if front_only else None,
            feasible=feasible,
            runtime=runtime,
            precision=precision,
            limit=limit,
            offset=offset,
            newest_first=newest_first,
        )
    ]


def count_trials(
    study: optuna.Study,
    *,
    states: Sequence[str] | None = None,
    front_only: bool = False,
    feasible: bool | None = None,
    runtime: Sequence[str] | None = None,
    precision: Sequence[str] | None = None,
) -> int:
    """How many trials :func:`trials_table` would list without a limit."""
    return summaries.count_trials(
        study,
        states=states,
        on_front=True if front_only else None,
        feasible=feasible,
        runtime=runtime,
        precision=precision,
    )


def knob_choices(study: optuna.Study) -> dict[str, list[str]]:
    """The runtimes and precisions the study's trials used (choices for filters)."""
    return summaries.knob_values(study)


def history(study: optuna.Study) -> dict[str, Any]:
    """Each objective per completed trial, with the best so far (optimisation history)."""
    objectives = StudyView(study).objectives
    series: dict[str, dict[str, list[Any]]] = {}
    completed = [r for r in summaries.rows(study, states=("COMPLETE",)) if r.get("values")]
    for index, (figure, direction) in enumerate(objectives.items()):
        pick = min if str(direction) == "minimize" else max
        numbers: list[int] = []
        values: list[float] = []
        best: list[float] = []
        for row in completed:
            if len(row["values"]) <= index:
                continue
            numbers.append(row["number"])
            values.append(row["values"][index])
            best.append(values[-1] if not best else pick(best[-1], values[-1]))
        series[str(figure)] = {"trial": numbers, "value": values, "best": best}
    return {"objectives": {str(k): str(v) for k, v in objectives.items()}, "series": series}


def importance(study: optuna.Study) -> dict[str, dict[str, float]]:
    """Optuna's hyperparameter importance of each knob, per objective.

    Empty for an objective when there is too little to tell (fewer than two completed
    trials, or a single knob value throughout).
    """
    out: dict[str, dict[str, float]] = {}
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for index, (figure, direction) in enumerate(StudyView(study).objectives.items()):
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
    trial = _trial(study, number)
    record = TrialRecord.from_trial(trial)
    view = StudyView(study)
    row = record.row()
    row["phases_s"] = record.phases_s
    row["duplicate_of"] = record.duplicate_of
    row["on_front"] = number in {p["number"] for p in front(study)["points"]}
    row["mlflow_experiment_id"] = view.experiment_id
    row["baseline"] = view.baseline
    return row


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """One trial, read alone (not every trial of the study).

    Raises:
        InputError: The study has no such trial.
    """
    storage = study._storage  # Optuna's handle on the study's storage (no public one)
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        return storage.get_trial(trial_id)
    except KeyError:
        raise InputError(f"Study '{study.study_name}' has no trial {number}.") from None


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
    curves = []
    for point in front(study)["points"]:
        curve = _trial(study, point["number"]).user_attrs.get("serving_curve")
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

    rows = [r for r in summaries.rows(study, states=("COMPLETE",)) if r["figures"]]
    stored = summaries.stored_importance(study, len(rows))
    if stored is not None and stored.get("seed") == seed:
        return dict(stored["objectives"])
    knobs = sorted({k for r in rows for k in (r["config"] or {})})
    values = {k: sorted({str((r["config"] or {}).get(k, "default")) for r in rows}) for k in knobs}
    varied = [k for k in knobs if len(values[k]) > 1]
    out: dict[str, dict[str, Any]] = {}
    for figure in StudyView(study).objectives:
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
    summaries.store_importance(study, len(rows), {"seed": seed, "objectives": out})
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

    if trial is not None:
        _trial(study, trial)  # says so if the study has no such trial
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
    runs = summaries.run_ids(study)
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
