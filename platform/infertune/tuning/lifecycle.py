"""One study lifecycle for every way a study runs: ``tune``, ``worker``, scheduled re-tunes.

(The dashboard's Launch page runs ``infertune tune`` in a process of its own, so it takes
this path too.) Each run goes through the same steps:

1. **open**: create or resume a study (:func:`~infertune.tuning.study.open_study`), or
   join one as a worker (:func:`join_study`: heartbeats, hardware check, reconcile);
2. **start**: the MLflow experiment and parent run, the baseline measured once;
3. **trials** until the study's global budget is spent (or the timeout);
4. **verify** the front (owners only: a worker leaves that to the study's owner);
5. **finish**: the parent run ends with a summary of the front;
6. **record** the study's status in the platform database by one rule,
   :func:`study_status`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import optuna

from infertune.config import Settings
from infertune.exceptions import InfertuneError
from infertune.measure.engine import Engine, Subject
from infertune.space.schema import SearchSpace
from infertune.storage.db import Database
from infertune.storage.repository import save_study
from infertune.tracking.tracker import Tracker
from infertune.tuning import queries
from infertune.tuning.distributed import (
    check_hardware,
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
    ) -> None:
        self.settings = settings
        self.db = db
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
        tuner = Tuner(
            self.settings,
            self.study,
            self.subject,
            self.space,
            Tracker(self.settings),
            self.engine,
            on_event=self.on_event,
        )
        end = RunEnd.FAILED
        ran = 0
        verified = False
        try:
            tuner.start()
            self._record("running", tuner)
            on_trial = (
                progress(trials, finished_count(self.study)) if progress is not None else None
            )
            ran = tuner.run(
                trials,
                timeout,
                jobs,
                (lambda _study, trial: on_trial(trial)) if on_trial is not None else None,
            )
            if verify and owner:
                verify_front(
                    self.engine, self.study, self.subject, self.space, on_event=self.on_event
                )
                verified = True
            end = RunEnd.COMPLETED
        except KeyboardInterrupt:
            end = RunEnd.INTERRUPTED
            raise
        finally:
            tuner.close()
            budget_met = _budget_met(self.study, trials, tuner)
            if tuner.parent_run_id and (owner or budget_met):
                with contextlib.suppress(InfertuneError):  # never hide the run's own error
                    tuner.finish(_PARENT_RUN_STATUS[end])
            status = study_status(end, owner, budget_met)
            with contextlib.suppress(InfertuneError):
                self._record(status, tuner)
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

    Heartbeats are on (a trial whose worker dies is failed and retried), the hardware is
    checked, stale trials are failed and orphaned MLflow runs ended.

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
    reconcile(settings, study)
    return study, space
