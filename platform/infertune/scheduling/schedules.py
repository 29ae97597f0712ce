"""Schedules in the platform database: validation, CRUD, next and last runs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from infertune.exceptions import ConfigurationError, InputError
from infertune.storage.db import Database
from infertune.storage.models import JobRun, Schedule, utcnow

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The shortest interval accepted: a re-tune takes minutes.
MIN_EVERY_S = 1.0


def parse_every(text: str) -> float:
    """``90s``, ``30m``, ``6h``, ``1d`` as seconds.

    Raises:
        ConfigurationError: Not of that form, or shorter than a second.
    """
    match = _EVERY.match(text)
    if match is None:
        raise ConfigurationError(
            f"Invalid interval '{text}': use a number and a unit, e.g. 90s, 30m, 6h or 1d."
        )
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_EVERY_S:
        raise ConfigurationError(f"Invalid interval '{text}': at least {MIN_EVERY_S:g} s.")
    return seconds


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(text: str) -> str:
    """Numeric weekdays as names: crontab counts 0 (and 7) as Sunday, APScheduler 0 as Monday."""
    fields = text.split()
    if len(fields) != 5:
        return text
    fields[4] = re.sub(
        r"(?<![/\d])\d+",
        lambda m: _WEEKDAYS[int(m.group())] if int(m.group()) <= 7 else m.group(),
        fields[4],
    )
    return " ".join(fields)


def parse_cron(text: str) -> CronTrigger:
    """A five-field crontab expression (``minute hour day month weekday``), in UTC.

    Weekdays follow crontab: 0 or 7 is Sunday, 1 Monday (names work too).

    Raises:
        ConfigurationError: The expression is not valid, with the reason.
    """
    try:
        return CronTrigger.from_crontab(_crontab_weekdays(text), timezone=dt.UTC)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"Invalid cron expression '{text}': {exc} (five fields: minute hour day month "
            "weekday, e.g. '0 2 * * *' for 02:00 UTC every day)."
        ) from None


def trigger_of(schedule: Schedule) -> BaseTrigger:
    """The APScheduler trigger of a schedule."""
    if schedule.cron:
        return parse_cron(schedule.cron)
    assert schedule.every_s is not None
    return IntervalTrigger(seconds=schedule.every_s, timezone=dt.UTC)


def add_schedule(
    db: Database,
    study: str,
    cron: str | None,
    every: str | None,
    trials: int,
    auto_promote: str | None = None,
    alias: str = "production",
    min_gain: float = 0.05,
) -> dict[str, Any]:
    """Create (or replace) the schedule of ``study``."""
    if (cron is None) == (every is None):
        raise InputError("Give exactly one of --cron or --every.")
    if trials < 1:
        raise InputError("--trials must be at least 1.")
    if not 0 <= min_gain < 1:
        raise InputError("--min-gain is a fraction between 0 and 1 (0.05 = 5% faster).")
    if cron is not None:
        parse_cron(cron)
    every_s = parse_every(every) if every is not None else None
    with db.session() as session:
        row = session.scalar(sa.select(Schedule).where(Schedule.name == study))
        if row is None:
            row = Schedule(name=study, paused=False)
            session.add(row)
        row.cron, row.every_s, row.trials = cron, every_s, trials
        row.auto_promote, row.alias, row.min_gain = auto_promote, alias, min_gain
        session.flush()
        return schedule_dict(row)


def get_schedule(db: Database, name: str) -> Schedule:
    """One schedule, detached from its session."""
    with db.session() as session:
        row = session.scalar(sa.select(Schedule).where(Schedule.name == name))
        if row is None:
            names = ", ".join(session.scalars(sa.select(Schedule.name)).all()) or "none"
            raise InputError(f"No schedule for study '{name}' (schedules: {names}).")
        session.expunge(row)
        return row


def set_paused(db: Database, name: str, paused: bool) -> None:
    """Pause or resume a schedule."""
    get_schedule(db, name)
    with db.session() as session:
        session.execute(sa.update(Schedule).where(Schedule.name == name).values(paused=paused))


def remove_schedule(db: Database, name: str) -> None:
    """Delete a schedule (its job-run history stays)."""
    get_schedule(db, name)
    with db.session() as session:
        session.execute(sa.delete(Schedule).where(Schedule.name == name))


def update_schedule(db: Database, name: str, **values: Any) -> None:
    """Set fields of a schedule."""
    with db.session() as session:
        session.execute(sa.update(Schedule).where(Schedule.name == name).values(**values))


def all_schedules(db: Database) -> list[Schedule]:
    """Every schedule, detached."""
    with db.session() as session:
        rows = list(session.scalars(sa.select(Schedule).order_by(Schedule.name)).all())
        for row in rows:
            session.expunge(row)
        return rows


#: APScheduler's job store table (in the platform database) and the ids of our jobs.
JOB_TABLE = "infertune_apscheduler_jobs"
JOB_PREFIX = "retune:"


def next_run(
    schedule: Schedule, now: dt.datetime | None = None, db: Database | None = None
) -> dt.datetime | None:
    """When the schedule fires next (``None`` while paused).

    The scheduler's own job store is asked first (an interval counts from its last run);
    without a job there yet, the trigger's next time from now.
    """
    if schedule.paused:
        return None
    if db is not None:
        stored = _stored_next_run(db, JOB_PREFIX + schedule.name)
        if stored is not None:
            return stored
    now = now or utcnow()
    fire: dt.datetime | None = trigger_of(schedule).get_next_fire_time(None, now)
    return fire


def _stored_next_run(db: Database, job_id: str) -> dt.datetime | None:
    try:
        with db.engine.connect() as conn:
            value = conn.execute(
                sa.text(f"SELECT next_run_time FROM {JOB_TABLE} WHERE id = :id"), {"id": job_id}
            ).scalar()
    except sa.exc.SQLAlchemyError:  # no scheduler has run on this database yet
        return None
    return dt.datetime.fromtimestamp(float(value), dt.UTC) if value is not None else None


def job_runs(db: Database, name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Recent job runs, newest first."""
    with db.session() as session:
        query = sa.select(JobRun).order_by(JobRun.id.desc()).limit(limit)
        if name is not None:
            query = query.where(JobRun.schedule == name)
        return [_run_dict(r) for r in session.scalars(query).all()]


def schedule_dict(
    row: Schedule, last: dict[str, Any] | None = None, db: Database | None = None
) -> dict[str, Any]:
    """A schedule as JSON-ready facts, with its next (and last) run."""
    upcoming = next_run(row, db=db)
    return {
        "study": row.name,
        "cron": row.cron,
        "every_s": row.every_s,
        "trials": row.trials,
        "auto_promote": row.auto_promote,
        "alias": row.alias,
        "min_gain": row.min_gain,
        "paused": row.paused,
        "latest_study": row.latest_study,
        "next_run": upcoming.isoformat() if upcoming else None,
        "last_run": last,
    }


def overview(db: Database) -> list[dict[str, Any]]:
    """Every schedule with its next and last run (``schedule list``, the dashboard)."""
    out = []
    for row in all_schedules(db):
        runs = job_runs(db, row.name, limit=1)
        out.append(schedule_dict(row, runs[0] if runs else None, db))
    return out


def _run_dict(row: JobRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "schedule": row.schedule,
        "trigger": row.trigger,
        "status": row.status,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "study_created": row.study_created,
        "decision": row.decision,
        "figures": row.figures,
        "detail": row.detail,
        "host": row.host,
    }
