"""One study lifecycle for every way a study runs: ``tune``, ``worker``, scheduled re-tunes.

(The dashboard's Launch page runs ``infertune tune`` in a process of its own, so it takes
this path too.) Each run goes through the same steps:

1. **open**: create or resume a study (:func:`~infertune.tuning.study.open_study`), or
   join one as a worker (:func:`join_study`: heartbeats, hardware check);
2. **start**: a lease on the study (one live owner at most: a second ``tune`` is refused, a
   dead one's taken over), reconciliation (trials of dead processes failed, their MLflow
   runs ended), the MLflow experiment and parent run, the baseline measured once;
3. **trials** until the study's global budget is spent (or the timeout);
4. **verify** the front (owners only: a worker leaves that to the study's owner);
5. **finish**: the parent run ends with a summary of the front (the owner's, or the last
   live process's);
6. **record** the study's status in the platform database by one rule,
   :func:`study_status`.

A study whose every trial failed raises :class:`~infertune.exceptions.StudyFailedError`
with the most common reason: nothing was measured, and the command exits non-zero. A full
disk stops the study at the first trial it fails
(:class:`~infertune.exceptions.DiskFullError`): every later build would fail the same way.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import optuna

from infertune.config import Settings
from infertune.exceptions import (
    DiskFullError,
    InfertuneError,
    StudyFailedError,
    TrackingError,
)
from infertune.measure.engine import Engine, Subject
from infertune.space.schema import SearchSpace
from infertune.storage.db import Database
from infertune.storage.leases import OWNER, WORKER, LeaseHolder
from infertune.storage.repository import save_study
from infertune.tracking.tracker import Tracker
from infertune.tuning import queries
from infertune.tuning.distributed import (
    check_hardware,
    fail_stale,
    failure_summary,
    finished_count,
    heartbeat_storage,
    reconcile,
)
from infertune.tuning.records import StudyView
from infertune.tuning.sampling import make_sampler
from infertune.tuning.study import EventHandler, Tuner, verify_front

__all__ = [
    "RunEnd",
    "StudyOutcome",
    "StudyRun",
    "TrialCallback",
    "disk_full",
    "join_study",
    "study_status",
]

#: Called after each finished trial (Optuna's callback signature).
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
#: Given (budget, trials already done), returns a per-trial callback: a progress bar.
ProgressFactory = Callable[[int, int], Callable[[optuna.trial.FrozenTrial], None]]


class RunEnd(StrEnum):
    """How one process's part in a study ended."""

    COMPLETED = "completed"
    """Its trials (and verification) ran to the end, or the timeout stopped new trials."""
    INTERRUPTED = "interrupted"
    """Ctrl-C or SIGTERM."""
    FAILED = "failed"
    """An error stopped it."""


#: The MLflow status of the parent run for each way a run ends.
_PARENT_RUN_STATUS = {
    RunEnd.COMPLETED: "FINISHED",
    RunEnd.INTERRUPTED: "KILLED",
    RunEnd.FAILED: "FAILED",
}


def study_status(end: RunEnd, owner: bool, budget_met: bool) -> str:
    """The platform's status of a study once one process's part in it ended: the one rule.

    The owner (``tune``, a re-tune) speaks for the study: ``finished``, ``interrupted`` or
    ``failed`` as its run ended. A worker only joins: when it ends, other workers may still
    run trials, so the study is ``finished`` once its budget is met and otherwise stays
    ``running`` (a worker's error or interruption is its own, not the study's).
    """
    if owner:
        return {
            RunEnd.COMPLETED: "finished",
            RunEnd.INTERRUPTED: "interrupted",
            RunEnd.FAILED: "failed",
        }[end]
    return "finished" if end is RunEnd.COMPLETED and budget_met else "running"


@dataclass(frozen=True)
class StudyOutcome:
    """What one run of a study did."""

    name: str
    storage_url: str
    status: str
    """The platform status recorded at the end (see :func:`study_status`)."""
    trials_run: int
    budget_met: bool
    verified: bool
    experiment_id: str
    parent_run_id: str


class StudyRun:
    """Runs one opened study through start, trials, verification, finish and record.

    Args:
        settings: Where caches, MLflow and the platform database are.
        db: The platform database (its schema already checked).
        engine: Builds, times and scores configurations.
        study: The opened (created, resumed or joined) Optuna study.
        subject: The study's model and data, resolved.
        space: The study's search space.
        storage_url: The Optuna storage URL (recorded with the study).
        on_event: Receives the engine's and the study's events (for a display).
        heartbeat_s: Seconds between the heartbeats of this process's lease (its trial
            heartbeats are the storage's, :func:`~infertune.tuning.distributed.
            heartbeat_storage`).
    """

    def __init__(
        self,
        settings: Settings,
        db: Database | None,
        engine: Engine,
        study: optuna.Study,
        subject: Subject,
        space: SearchSpace,
        storage_url: str,
        on_event: EventHandler | None = None,
        heartbeat_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.heartbeat_s = heartbeat_s
        self.engine = engine
        self.study = study
        self.subject = subject
        self.space = space
        self.storage_url = storage_url
        self.on_event: EventHandler = on_event or (lambda e: None)

    def execute(
        self,
        trials: int,
        *,
        owner: bool = True,
        timeout: float | None = None,
        jobs: int = 1,
        verify: bool = True,
        progress: ProgressFactory | None = None,
    ) -> StudyOutcome:
        """Run the study until its budget of ``trials`` is spent, then verify and record.

        Args:
            trials: The study's global trial budget (all processes together).
            owner: Whether this process owns the study (``tune``, a re-tune) or joins it
                (``worker``); see :func:`study_status`. Only an owner verifies the front
                and always ends the MLflow parent run; a worker ends it when the budget is
                met.
            timeout: Stop starting new trials after this many seconds.
            jobs: Parallel trials in this process (PostgreSQL storage only).
            verify: Re-measure the front after the trials (owners only).
            progress: Makes the per-trial callback once the baseline is known.

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM; the study's status says ``interrupted``.
            InfertuneError: What stopped the run; the status says ``failed``.
        """
        name = self.study.study_name
        lease = (
            LeaseHolder(self.db, name, OWNER if owner else WORKER, self.heartbeat_s)
            if self.db is not None
            else None
        )
        if lease is not None:
            lease.acquire()  # StudyBusyError: a live owner has it (nothing is recorded)
        tuner = Tuner(
            self.settings,
            self.study,
            self.subject,
            self.space,
            Tracker(self.settings),
            self.engine,
            on_event=self.on_event,
        )
        dead = {lease.taken_over.worker} if lease is not None and lease.taken_over else set()

        def reap() -> object:
            # Trials of processes that died since: failed (and retried) at once.
            if self.db is None:
                return fail_stale(self.study, dead)
            return reconcile(self.settings, self.study, self.db, dead)

        tuner.reaper = reap
        end = RunEnd.FAILED
        ran = 0
        verified = False
        try:
            counts = reconcile(self.settings, self.study, self.db, dead)
            if counts["stale_trials_failed"]:
                self.on_event(
                    {
                        "event": "warning",
                        "message": f"{counts['stale_trials_failed']} trial(s) of a dead "
                        "process failed (they do not count against the budget; retried)",
                    }
                )
            tuner.start()
            self._record("running", tuner)
            on_trial = (
                progress(trials, finished_count(self.study)) if progress is not None else None
            )

            def after_trial(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                if on_trial is not None:
                    on_trial(trial)
                self._stop_if_disk_full(trial)

            ran = tuner.run(trials, timeout, jobs, after_trial)
            failed = failure_summary(self.study)
            if failed is not None:
                raise StudyFailedError(failed)
            if verify and owner:
                verify_front(
                    self.engine, self.study, self.subject, self.space, on_event=self.on_event
                )
                verified = True
            end = RunEnd.COMPLETED
        except KeyboardInterrupt:
            end = RunEnd.INTERRUPTED
            raise
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise DiskFullError(self._disk_full_message(str(exc))) from exc
        finally:
            tuner.close()
            budget_met = _budget_met(self.study, trials, tuner)
            last = lease is None or not _others_alive(lease)
            # Every step below runs whatever the others do (a read-only or full disk, a
            # store gone): the lease is given back. A cleanup error is raised only when the
            # run itself succeeded; otherwise the run's own error is the one shown.
            unfinished: Exception | None = None
            if tuner.parent_run_id and (owner or budget_met or last):
                try:
                    tuner.finish(_PARENT_RUN_STATUS[end])
                except Exception as exc:
                    unfinished = exc
            status = study_status(end, owner, budget_met)
            if not owner and last and not budget_met:
                status = "interrupted"  # no live process works on it any more
            with contextlib.suppress(Exception):
                self._record(status, tuner)
            if lease is not None:
                lease.release()
            if unfinished is not None and end is RunEnd.COMPLETED:
                raise TrackingError(
                    f"Study '{name}' ran, but its MLflow parent run could not be ended: "
                    f"{_first_line(unfinished)}. `infertune reconcile {name}` ends it once the "
                    "tracking store can be written."
                ) from unfinished
        return StudyOutcome(
            name=self.study.study_name,
            storage_url=self.storage_url,
            status=status,
            trials_run=ran,
            budget_met=budget_met,
            verified=verified,
            experiment_id=tuner.experiment_id,
            parent_run_id=tuner.parent_run_id,
        )

    def _stop_if_disk_full(self, trial: optuna.trial.FrozenTrial) -> None:
        """Stop the study when a trial failed for want of disk space (see :func:`disk_full`).

        Raises:
            DiskFullError: It did; the trial is already recorded as failed.
        """
        if trial.state != optuna.trial.TrialState.FAIL:
            return
        reason = str(trial.user_attrs.get("fail_reason") or "")
        if disk_full(reason):
            raise DiskFullError(
                self._disk_full_message(f"trial {trial.number} failed: {reason.rstrip('.')}")
            )

    def _disk_full_message(self, what: str) -> str:
        return (
            f"The disk is full (ENOSPC): {what}. Study '{self.study.study_name}' stopped, as "
            "every later build would fail the same way: free space on the disk of "
            f"{self.settings.home} (built variants, caches, stores) and of the temporary "
            "folder, then run the same command to resume."
        )

    def _record(self, status: str, tuner: Tuner) -> None:
        """The study's row in the platform database."""
        if self.db is None:
            return
        view = StudyView(self.study)
        save_study(
            self.db,
            self.study.study_name,
            view.raw_spec or {},
            view.fingerprint,
            self.storage_url,
            status,
            tuner.experiment_id or None,
            tuner.parent_run_id or None,
        )


#: How running out of disk space reads in a trial's reason: an ``OSError`` in this process
#: or relayed as text from a worker process (errno 28), or SQLite's own words.
_DISK_FULL_SIGNS = (
    f"[Errno {errno.ENOSPC}]",
    "No space left on device",
    "database or disk is full",
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def disk_full(reason: str) -> bool:
    """Whether a failure's reason says that a disk is full (ENOSPC)."""
    return any(sign in reason for sign in _DISK_FULL_SIGNS)


def _others_alive(lease: LeaseHolder) -> bool:
    """Whether another live process works on the study. Never raises (assumes one does)."""
    try:
        return bool(lease.others_alive())
    except Exception:
        return True


def _budget_met(study: optuna.Study, trials: int, tuner: Tuner) -> bool:
    """Whether the budget is spent or the space measured in full.

    Never raises: it runs while another error or an interruption may be on its way out.
    """
    try:
        return finished_count(study) >= trials or tuner.exhausted()
    except Exception:  # the storage is gone: it cannot be said to be met
        return False


def join_study(
    settings: Settings,
    name: str,
    storage_url: str,
    trials: int,
    heartbeat_s: int = 10,
    ignore_hardware: bool = False,
) -> tuple[optuna.Study, SearchSpace]:
    """Open an existing study as a worker.

    Heartbeats are on (a trial whose worker dies is failed and retried) and the hardware is
    checked; :meth:`StudyRun.execute` then reconciles (stale trials failed, orphaned MLflow
    runs ended).

    Raises:
        InfertuneError: The study does not exist, was not created by infertune, or was
            measured on other hardware (unless ``ignore_hardware``).
    """
    spec = StudyView(queries.load(name, storage_url)).spec
    if spec is None:
        raise InfertuneError(f"Study '{name}' was not created by infertune.")
    space = spec.search_space()
    study = optuna.load_study(
        study_name=name,
        storage=heartbeat_storage(storage_url, heartbeat_s),
        sampler=make_sampler("auto", None, trials, space),
    )
    check_hardware(study, ignore_hardware)
    return study, space
