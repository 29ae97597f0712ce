"""The scheduler service (``infertune scheduler``): APScheduler 3 on the platform database.

- Jobs live in the platform database (table ``infertune_apscheduler_jobs``) as data, not
  pickles (:class:`~infertune.scheduling.jobstore.DataJobStore`): the schedule, the reason
  and the trigger's fields; the function is fixed and its arguments come from the job id,
  so write access to the table cannot run code. Explicit ids (``retune:<study>``) and
  ``replace_existing`` keep a restart from duplicating them.
- The schedules table is the truth: the service syncs it into the job store every few
  seconds (added, changed, paused, resumed, removed schedules).
- Exactly one service per database (``infertune.scheduling.lock``).
- Misfire policy: runs missed while the service was down are coalesced into one run if the
  latest is less than an hour late (``misfire_grace_time``); older ones are recorded as
  missed. A schedule never runs twice at once: an overlapping run is skipped and recorded.
- Each re-tune runs as its own ``infertune schedule run-now`` process: a crash or a leak
  cannot take the service down, and a failure is recorded by that process and the service
  goes on. SIGTERM stops new runs, ends the running one cleanly (it records itself as
  failed) and frees the lock.
- Changes trigger a run too: a new model file (content hash) or a different hardware
  fingerprint than the schedule last saw.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from infertune.config import Settings, load_settings
from infertune.hashing import file_sha256
from infertune.measure.fingerprint import fingerprint
from infertune.scheduling.lock import SchedulerLockHolder
from infertune.scheduling.retune import finish_run, start_run
from infertune.scheduling.schedules import (
    JOB_PREFIX,
    JOB_TABLE,
    all_schedules,
    trigger_of,
    update_schedule,
)
from infertune.storage.db import Database
from infertune.storage.models import Schedule
from infertune.tuning import queries
from infertune.tuning.records import StudyView
from infertune.tuning.study import storage_url

log = logging.getLogger("infertune.scheduler")

#: Model and hardware changes are looked for once every this many syncs (hashing costs).
CHANGE_CHECK_EVERY = 12
#: How late (s) a missed run may still start after the service comes back.
MISFIRE_GRACE_S = 3600

_CHILDREN: set[subprocess.Popen[bytes]] = set()
_CHILDREN_LOCK = threading.Lock()


#: The running service's settings, for its job function (set by SchedulerService).
_SETTINGS: Settings | None = None


def scheduled_retune(name: str, trigger: str = "schedule") -> int:
    """The job function: one re-tune of ``name`` in its own process; its exit status."""
    settings = _SETTINGS or load_settings()
    command = [sys.executable, "-m", "infertune", "schedule", "run-now", "--trigger", trigger]
    command += ["--", name]  # a name never passes as an option
    log_dir = settings.home / "scheduler"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name.replace('/', '_')}.log", "ab") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=settings.child_env(),
            start_new_session=True,  # Ctrl-C reaches the service, which ends it once
        )
        with _CHILDREN_LOCK:
            _CHILDREN.add(proc)
        try:
            code = proc.wait()
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(proc)
    log.info("re-tune of %s (%s) ended with status %s", name, trigger, code)
    return code


class SchedulerService:
    """Runs the schedules of one platform database until stopped.

    Args:
        settings: Home, database and MLflow store (passed on to the job processes through
            the environment).
        sync_s: How often schedules are re-read from the database.
        stale_after_s: When a silent lock holder counts as dead.
    """

    def __init__(self, settings: Settings, sync_s: float = 5.0, stale_after_s: float = 60.0):
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        from infertune.scheduling.jobstore import DataJobStore

        global _SETTINGS
        _SETTINGS = settings
        self.settings = settings
        self.db = Database(settings.database_url)
        self.db.ensure_schema()
        self.sync_s = sync_s
        self.lock = SchedulerLockHolder(
            self.db, stale_after_s=stale_after_s, heartbeat_s=min(10.0, stale_after_s / 4)
        )
        self.scheduler = BackgroundScheduler(
            jobstores={
                "default": DataJobStore(self.db.engine, JOB_TABLE, MISFIRE_GRACE_S),
            },
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_S,
            },
            timezone=dt.UTC,
        )
        self._stop = threading.Event()
        self._syncs = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take the lock, start APScheduler, load the schedules."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        self.lock.acquire()
        try:
            self.scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
            self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
            # Paused first: stored jobs are brought in line with the schedules (paused,
            # removed or re-timed while the service was down) before anything fires.
            self.scheduler.start(paused=True)
            self.sync()
            self.scheduler.resume()
        except BaseException:
            self.lock.release()
            raise

    def run_forever(self) -> None:
        """Sync schedules until SIGTERM/SIGINT (or :meth:`stop`), then shut down cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        try:
            while not self._stop.wait(self.sync_s):
                if self.lock.lost:
                    log.error("the scheduler lock was lost (another scheduler took it): stopping")
                    break
                try:
                    self.sync()
                except Exception:  # a database hiccup must not stop the service
                    log.exception("reading the schedules failed; trying again")
        finally:
            self.shutdown()

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return."""
        self._stop.set()

    def shutdown(self) -> None:
        """Stop starting jobs, end running re-tunes (SIGTERM, then kill), free the lock."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with _CHILDREN_LOCK:
            children = list(_CHILDREN)
        for child in children:
            child.terminate()  # the child records its run as failed and ends its trials
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        self.lock.release()
        self.db.dispose()

    # -- schedules -> jobs ---------------------------------------------------------------

    def sync(self) -> None:
        """Bring the job store in line with the schedules table; fire change triggers."""
        schedules = {row.name: row for row in all_schedules(self.db)}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id[len(JOB_PREFIX) :] not in schedules:
                job.remove()
        for name, row in schedules.items():
            job_id = JOB_PREFIX + name
            trigger = trigger_of(row)
            job = self.scheduler.get_job(job_id)
            if job is None or str(job.trigger) != str(trigger):
                self.scheduler.add_job(
                    "infertune.scheduling.service:scheduled_retune",
                    trigger=trigger,
                    id=job_id,
                    name=f"re-tune {name}",
                    args=[name],
                    replace_existing=True,
                )
                job = self.scheduler.get_job(job_id)
            if row.paused and job is not None and job.next_run_time is not None:
                job.pause()
            elif not row.paused and job is not None and job.next_run_time is None:
                job.resume()
            if not row.paused and self._syncs % CHANGE_CHECK_EVERY == 0:
                try:
                    self._check_changes(row)
                except Exception:
                    log.exception("checking %s for a new model or hardware failed", name)
        self._syncs += 1

    def _check_changes(self, row: Schedule) -> None:
        """Run now if the model file or the hardware changed since the schedule last ran."""
        try:
            study = queries.load(row.latest_study or row.name, storage_url(self.settings, None))
        except Exception:
            return
        view = StudyView(study)
        spec = view.spec
        if spec is None or not Path(spec.model_path).exists():
            return
        sha = file_sha256(Path(spec.model_path))
        hardware = fingerprint()["hardware_id"]
        seen_sha = row.seen_model_sha256 or spec.model_sha256
        seen_hw = row.seen_hardware_id or view.hardware_id
        reason = "model" if sha != seen_sha else "hardware" if hardware != seen_hw else None
        if reason is None:
            return
        update_schedule(self.db, row.name, seen_model_sha256=sha, seen_hardware_id=hardware)
        log.info("%s changed for %s: re-tuning now", reason, row.name)
        self.scheduler.add_job(
            "infertune.scheduling.service:scheduled_retune",
            id=f"change:{row.name}",
            args=[row.name, reason],
            replace_existing=True,
        )

    # -- events --------------------------------------------------------------------------

    def _record(self, event: Any, status: str, detail: str) -> None:
        if not str(event.job_id).startswith(JOB_PREFIX):
            return
        name = str(event.job_id)[len(JOB_PREFIX) :]
        run_id = start_run(self.db, name, "schedule", status=status)
        finish_run(self.db, run_id, status, detail=detail)

    def _on_skipped(self, event: Any) -> None:
        self._record(
            event,
            "skipped",
            f"run due at {event.scheduled_run_times[0]:%Y-%m-%d %H:%M:%S} UTC skipped: the "
            "previous run of this schedule was still going",
        )

    def _on_missed(self, event: Any) -> None:
        self._record(
            event,
            "missed",
            f"run due at {event.scheduled_run_time:%Y-%m-%d %H:%M:%S} UTC missed (the service "
            f"was down for more than {MISFIRE_GRACE_S} s past it)",
        )
