"""The re-tune job: a new study warm-started from the last front, and a promotion decision.

1. A new study (``<schedule>-retune-<UTC time>``) with the same model, data and space as
   the schedule's latest study, the model and data re-read from their paths (a new model
   version is exactly what a re-tune is for).
2. Warm start: the previous verified front and the current production configuration are
   enqueued as the first trials.
3. The study runs and its front is verified. With ``auto_promote``, the best verified point
   (lowest p95 within the constraints) and the production configuration are then timed
   again, interleaved, on this machine today, so "better" compares like with like.
4. Policy: promote only when the best is faster than production by more than ``min_gain``
   (and feasible); otherwise record "no improvement". Every decision, with the figures that
   justified it, goes to the job-run history.
"""

from __future__ import annotations

import datetime as dt
import signal
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from infertune.config import Settings
from infertune.exceptions import InfertuneError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.fingerprint import fingerprint
from infertune.scheduling.schedules import get_schedule, update_schedule
from infertune.space.schema import SearchSpace
from infertune.storage.db import Database
from infertune.storage.models import JobRun, Schedule, utcnow
from infertune.tuning import queries
from infertune.tuning.lifecycle import StudyRun
from infertune.tuning.records import StudyView
from infertune.tuning.retime import retime_interleaved
from infertune.tuning.sampling import config_params, enumerate_configs, make_sampler
from infertune.tuning.study import open_study, storage_url, study_spec, window
from infertune.workers.server import one_line

#: Interleaved repeats of the best-vs-production comparison.
COMPARE_REPEATS = 5


def start_run(db: Database, schedule: str, trigger: str, status: str = "running") -> int:
    """Record the start of a job run; returns its id."""
    with db.session() as session:
        row = JobRun(schedule=schedule, trigger=trigger, status=status, host=socket.gethostname())
        session.add(row)
        session.flush()
        return int(row.id)


def finish_run(db: Database, run_id: int, status: str, **values: Any) -> None:
    """Record how a job run ended."""
    with db.session() as session:
        session.execute(
            sa.update(JobRun)
            .where(JobRun.id == run_id)
            .values(status=status, ended_at=utcnow(), **values)
        )


#: A "running" job run older than this is an orphan (its process was killed), not a run.
RUN_ORPHANED_AFTER = dt.timedelta(hours=24)


def _running(db: Database, name: str) -> dict[str, Any] | None:
    """A job run of this schedule that is going now, if any."""
    since = utcnow() - RUN_ORPHANED_AFTER
    with db.session() as session:
        row = session.scalar(
            sa.select(JobRun)
            .where(JobRun.schedule == name, JobRun.status == "running", JobRun.started_at > since)
            .order_by(JobRun.id.desc())
        )
        return {"id": row.id, "started_at": row.started_at} if row is not None else None


def production_config(settings: Settings, db: Database, schedule: Schedule) -> dict[str, Any]:
    """The configuration the schedule's alias points to now (empty if none)."""
    if not schedule.auto_promote:
        return {}
    from infertune.promotion.registry import Registry

    registry = Registry(settings, db)
    version = registry.aliases(schedule.auto_promote).get(schedule.alias)
    if version is None:
        return {}
    # A version registered by hand has no configuration to compare with (None).
    return {"version": version, "config": registry.version_config(schedule.auto_promote, version)}


def run_retune(settings: Settings, name: str, trigger: str = "schedule") -> dict[str, Any]:
    """Run one re-tune of schedule ``name`` and record it (the scheduler's job).

    Returns the job run's facts. Errors are recorded as a failed run and raised.
    """
    db = Database(settings.database_url)
    db.ensure_schema()
    schedule = get_schedule(db, name)
    going = _running(db, name)
    if going is not None:
        detail = f"run {going['id']} of this schedule (since {going['started_at']}) is still going"
        finish_run(db, start_run(db, name, trigger, status="skipped"), "skipped", detail=detail)
        raise InfertuneError(f"Skipped: {detail}; one re-tune of a schedule runs at a time.")
    run_id = start_run(db, name, trigger)
    try:
        outcome = _retune(settings, db, schedule)
    except BaseException as exc:  # recorded (Ctrl-C and SIGTERM too), then raised
        if isinstance(exc, KeyboardInterrupt):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
            detail = "interrupted (Ctrl-C or SIGTERM): the running trial was marked failed"
        else:
            detail = f"{type(exc).__name__}: {one_line(exc, 1000)}"
        finish_run(db, run_id, "failed", detail=detail)
        raise
    finish_run(
        db,
        run_id,
        "finished",
        study_created=outcome["study"],
        decision=outcome["decision"],
        figures=outcome["figures"],
        detail=outcome["detail"],
    )
    return {"run_id": run_id, **outcome}


def _retune(settings: Settings, db: Database, schedule: Schedule) -> dict[str, Any]:
    url = storage_url(settings, None)
    previous = queries.load(schedule.latest_study or schedule.name, url)
    spec = StudyView(previous).spec
    if spec is None:
        raise InfertuneError(f"Study '{previous.study_name}' was not created by infertune.")
    space = spec.search_space()
    production = production_config(settings, db, schedule)
    warm = [p["config"] for p in queries.front(previous)["points"]]
    if (
        production.get("config")
        and production["config"] not in warm
        and _in_space(production["config"], space)
    ):
        warm.append(production["config"])
    name = f"{schedule.name}-retune-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    with Engine(settings) as engine:
        subject = engine.resolve(
            # The resolved path: the scheduler may run in another working directory.
            spec.model if spec.model.startswith("demo:") else spec.model_path,
            Path(spec.data),
            Path(spec.train_data) if spec.train_data else None,
            spec.x_key,
            spec.y_key,
            output=spec.output,
            x_keys=spec.x_keys,
            trust_saved_model=spec.trust_saved_model,
        )
        trials = max(schedule.trials, len(warm))
        study, _ = open_study(
            name, url, study_spec(subject, space), space, make_sampler("auto", None, trials, space)
        )
        StudyView(study).set_retune_of(previous.study_name)
        for config in warm:
            study.enqueue_trial(
                config_params(InferenceConfig.parse(**config), space), skip_if_exists=True
            )
        StudyRun(settings, db, engine, study, subject, space, url).execute(trials)
        update_schedule(
            db,
            schedule.name,
            latest_study=name,
            seen_model_sha256=subject.source.sha256,
            seen_hardware_id=fingerprint()["hardware_id"],
        )
        front = queries.front(study)
        points = [p for p in front["points"] if p["figures"].get("latency_p95_ms")]
        if not points:
            return {
                "study": name,
                "decision": "no feasible configuration",
                "figures": {},
                "detail": "No configuration met the constraints; production left as it is.",
            }
        best = min(points, key=lambda p: p["figures"]["latency_p95_ms"])
        figures: dict[str, Any] = {
            "best_trial": best["number"],
            "best_config": best["config"],
            "best_latency_p95_ms": best["figures"]["latency_p95_ms"],
            "best_accuracy": best["figures"].get("accuracy"),
            "best_quality": best["figures"].get("quality"),
        }
        if not schedule.auto_promote:
            return {
                "study": name,
                "decision": "recorded",
                "figures": figures,
                "detail": "No --auto-promote: the new front is recorded only.",
            }
        if not production:
            return _promote(settings, db, schedule, study, best, figures, name, "no production yet")
        if production["config"] is None:
            return {
                "study": name,
                "decision": "production not comparable",
                "figures": figures | {"production_version": production["version"]},
                "detail": (
                    f"Version {production['version']} carries no infertune configuration "
                    "(registered by hand?): not replaced automatically."
                ),
            }
        if production["config"] == best["config"]:
            return {
                "study": name,
                "decision": "no improvement",
                "figures": figures | {"production_version": production["version"]},
                "detail": "The best verified configuration is the production one.",
            }
        compared = _compare(engine, subject, space, best["config"], production["config"])
    gain = compared["production_p95_ms"] / compared["best_p95_ms"] - 1
    figures |= compared | {"gain": gain, "production_version": production["version"]}
    if gain > schedule.min_gain:
        why = (
            f"{gain:.1%} faster than version {production['version']} at p95 "
            f"(min {schedule.min_gain:.0%})"
        )
        return _promote(settings, db, schedule, study, best, figures, name, why)
    return {
        "study": name,
        "decision": "no improvement",
        "figures": figures,
        "detail": (
            f"Best is {gain:+.1%} faster than production version {production['version']} at "
            f"p95, not more than the {schedule.min_gain:.0%} margin: production kept."
        ),
    }


def _in_space(config: dict[str, Any], space: SearchSpace) -> bool:
    """Whether a configuration is one the space can propose (else it cannot be enqueued)."""
    try:
        wanted = InferenceConfig.parse(**config)
        return wanted in enumerate_configs(space)
    except InfertuneError:
        return False


def _compare(
    engine: Engine,
    subject: Any,
    space: SearchSpace,
    best: dict[str, Any],
    production: dict[str, Any],
) -> dict[str, Any]:
    """Time best and production interleaved on this machine now; medians of p95."""
    configs = {
        "best": InferenceConfig.parse(**best),
        "production": InferenceConfig.parse(**production),
    }
    timings = retime_interleaved(
        engine,
        subject,
        configs,
        window(space.measurement.verify),
        COMPARE_REPEATS,
        space.finetune_epochs,
    )
    p95 = {
        k: [r.latency_p95_ms for r in runs if r.valid and r.latency_p95_ms is not None]
        for k, runs in timings.items()
    }
    if not p95["best"] or not p95["production"]:
        raise InfertuneError("The best-vs-production comparison produced no valid timing.")
    return {
        "best_p95_ms": statistics.median(p95["best"]),
        "production_p95_ms": statistics.median(p95["production"]),
        "compare_repeats": COMPARE_REPEATS,
    }


def _promote(
    settings: Settings,
    db: Database,
    schedule: Schedule,
    study: Any,
    best: dict[str, Any],
    figures: dict[str, Any],
    name: str,
    why: str,
) -> dict[str, Any]:
    from infertune.promotion.registry import Registry

    assert schedule.auto_promote is not None
    result = Registry(settings, db).promote(
        study,
        best["number"],
        schedule.auto_promote,
        schedule.alias,
        reason=f"scheduled re-tune '{schedule.name}': {why}",
    )
    return {
        "study": name,
        "decision": "promoted" if result.changed else "no improvement",
        "figures": figures | {"promoted_version": result.version},
        "detail": result.message,
    }
