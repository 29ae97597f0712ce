"""APScheduler's job store, holding data instead of pickles.

APScheduler's ``SQLAlchemyJobStore`` pickles each job (its callable reference, trigger and
arguments) into the database, and unpickles whatever it finds there: anyone who can write
that table runs code in the scheduler. This store keeps the same table (so ``schedule
list`` still reads a job's next run time from it) but writes a small JSON document per
job: which schedule, why it runs, and its trigger as plain fields. The callable is not
stored at all: every job runs :func:`infertune.scheduling.service.scheduled_retune`, and
its arguments are rebuilt from the job id. A row that is not such a document (a pickle
written by an older infertune, or anything else) is never loaded: it is deleted, and the
next sync re-creates the job from the schedules table, the truth.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

log = logging.getLogger("infertune.scheduler")

#: The one function a stored job may run (a textual reference, never stored).
JOB_FUNCTION = "infertune.scheduling.service:scheduled_retune"
#: Job ids: a schedule's own job, and the one-off run its model or hardware change starts.
RETUNE_PREFIX, CHANGE_PREFIX = "retune:", "change:"
#: What a change job may give as its trigger.
CHANGE_REASONS = frozenset({"model", "hardware"})
FORMAT = "infertune-job/1"


class UnsafeJobError(ValueError):
    """A job that this store will not write or load (not a re-tune of a schedule)."""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnsafeJobError("a date is not an ISO string")
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def trigger_data(trigger: BaseTrigger) -> dict[str, Any]:
    """A trigger as plain fields (UTC cron, interval or one date)."""
    if str(getattr(trigger, "timezone", "UTC")) != "UTC":
        raise UnsafeJobError("only UTC triggers are stored")
    if isinstance(trigger, CronTrigger):
        return {
            "type": "cron",
            "fields": {field.name: str(field) for field in trigger.fields},
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
        }
    if isinstance(trigger, IntervalTrigger):
        return {
            "type": "interval",
            "seconds": trigger.interval.total_seconds(),
            "start_date": _iso(trigger.start_date),
            "end_date": _iso(trigger.end_date),
        }
    if isinstance(trigger, DateTrigger):
        return {"type": "date", "run_date": _iso(trigger.run_date)}
    raise UnsafeJobError(f"a {type(trigger).__name__} is not stored")


def trigger_from(data: Any) -> BaseTrigger:
    """The trigger of :func:`trigger_data`'s fields (anything else is refused)."""
    if not isinstance(data, dict):
        raise UnsafeJobError("the trigger is not a mapping")
    kind = data.get("type")
    if kind == "cron":
        fields = data.get("fields")
        if not isinstance(fields, dict) or not all(
            isinstance(k, str) and k in CronTrigger.FIELD_NAMES and isinstance(v, str)
            for k, v in fields.items()
        ):
            raise UnsafeJobError("bad cron fields")
        return CronTrigger(
            **fields,
            start_date=_when(data.get("start_date")),
            end_date=_when(data.get("end_date")),
            timezone=dt.UTC,
        )
    if kind == "interval":
        seconds = data.get("seconds")
        if not isinstance(seconds, int | float) or seconds <= 0:
            raise UnsafeJobError("bad interval")
        return IntervalTrigger(
            seconds=float(seconds),
            start_date=_when(data.get("start_date")),
            end_date=_when(data.get("end_date")),
            timezone=dt.UTC,
        )
    if kind == "date":
        return DateTrigger(run_date=_when(data.get("run_date")), timezone=dt.UTC)
    raise UnsafeJobError("unknown trigger type")


def job_args(job_id: str, reason: Any) -> tuple[str, ...]:
    """The arguments of :data:`JOB_FUNCTION` for a job id (never read from the row)."""
    if job_id.startswith(RETUNE_PREFIX) and len(job_id) > len(RETUNE_PREFIX):
        return (job_id[len(RETUNE_PREFIX) :],)
    if job_id.startswith(CHANGE_PREFIX) and reason in CHANGE_REASONS:
        return (job_id[len(CHANGE_PREFIX) :], str(reason))
    raise UnsafeJobError(f"job id {job_id!r} is not a re-tune")


class DataJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """``SQLAlchemyJobStore`` with JSON documents instead of pickles (see the module).

    Args:
        engine: The platform database's engine.
        tablename: The job table.
        misfire_grace_time: Seconds a missed run may still start (not stored per job).
    """

    def __init__(self, engine: Any, tablename: str, misfire_grace_time: int) -> None:
        super().__init__(engine=engine, tablename=tablename)
        self.misfire_grace_time = misfire_grace_time

    # -- writing -------------------------------------------------------------------------

    def _document(self, job: Job) -> bytes:
        if job.func_ref != JOB_FUNCTION or job.kwargs:
            raise UnsafeJobError(f"job {job.id} does not run {JOB_FUNCTION}")
        args = tuple(job.args)
        reason = args[1] if len(args) == 2 else None
        if job_args(job.id, reason) != args:
            raise UnsafeJobError(f"job {job.id} has arguments its id does not give")
        document = {
            "format": FORMAT,
            "id": job.id,
            "reason": reason,
            "trigger": trigger_data(job.trigger),
        }
        return json.dumps(document).encode()

    def add_job(self, job: Job) -> None:
        """Store a new job as its document."""
        insert = self.jobs_t.insert().values(
            id=job.id,
            next_run_time=datetime_to_utc_timestamp(job.next_run_time),
            job_state=self._document(job),
        )
        with self.engine.begin() as connection:
            try:
                connection.execute(insert)
            except IntegrityError:
                raise ConflictingIdError(job.id) from None

    def update_job(self, job: Job) -> None:
        """Rewrite a job's document and next run time."""
        update = (
            self.jobs_t.update()
            .values(
                next_run_time=datetime_to_utc_timestamp(job.next_run_time),
                job_state=self._document(job),
            )
            .where(self.jobs_t.c.id == job.id)
        )
        with self.engine.begin() as connection:
            if connection.execute(update).rowcount == 0:
                raise JobLookupError(job.id)

    # -- reading -------------------------------------------------------------------------

    def _job(self, job_id: str, next_run_time: float | None, state: bytes) -> Job:
        """A job from its row; :class:`UnsafeJobError` (or a JSON error) if it is not data."""
        try:
            document = json.loads(bytes(state).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UnsafeJobError(f"job {job_id} is not a JSON document") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise UnsafeJobError(f"job {job_id} is not an {FORMAT} document")
        if document.get("id") != job_id:
            raise UnsafeJobError(f"job {job_id} holds another job's document")
        args = job_args(job_id, document.get("reason"))
        job = Job.__new__(Job)
        job.__setstate__(
            {
                "version": 1,
                "id": job_id,
                "func": JOB_FUNCTION,
                "trigger": trigger_from(document.get("trigger")),
                "executor": "default",
                "args": args,
                "kwargs": {},
                "name": f"re-tune {args[0]}",
                "misfire_grace_time": self.misfire_grace_time,
                "coalesce": True,
                "max_instances": 1,
                "next_run_time": utc_timestamp_to_datetime(next_run_time),
            }
        )
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _load(self, *conditions: Any) -> list[Job]:
        query = select(
            self.jobs_t.c.id, self.jobs_t.c.next_run_time, self.jobs_t.c.job_state
        ).order_by(self.jobs_t.c.next_run_time)
        if conditions:
            query = query.where(and_(*conditions))
        jobs, refused = [], []
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                try:
                    jobs.append(self._job(row.id, row.next_run_time, row.job_state))
                except (UnsafeJobError, ValueError, TypeError) as exc:
                    log.warning("dropping stored job %r, which is not a re-tune's data: %s",
                                row.id, exc)  # fmt: skip
                    refused.append(row.id)
            if refused:
                connection.execute(self.jobs_t.delete().where(self.jobs_t.c.id.in_(refused)))
        return jobs

    def lookup_job(self, job_id: str) -> Job | None:
        """The job of that id, or None (a row that is not data is dropped)."""
        jobs = self._load(self.jobs_t.c.id == job_id)
        return jobs[0] if jobs else None

    def get_due_jobs(self, now: dt.datetime) -> list[Job]:
        """Jobs due by ``now``."""
        return self._load(self.jobs_t.c.next_run_time <= datetime_to_utc_timestamp(now))

    def get_all_jobs(self) -> list[Job]:
        """Every job, paused ones last."""
        jobs = self._load()
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def _get_jobs(self, *conditions: Any) -> list[Job]:
        return self._load(*conditions)

    def _reconstitute_job(self, job_state: Any) -> Job:
        raise UnsafeJobError("jobs are loaded with their row (see _load)")
