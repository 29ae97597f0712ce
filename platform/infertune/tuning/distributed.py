"""Processes on one study: heartbeats, retries of killed trials, reconciliation.

``tune`` and workers share a study through Optuna's RDB storage (PostgreSQL for more than
one process), each with trial heartbeats and a lease (:mod:`infertune.storage.leases`). A
trial whose process died (SIGKILL, a lost machine) is failed, with the reason stored, as
soon as its death is known: at once when the process was on this host, else after the
heartbeat's grace period; it is retried (a bounded number of times) as a new trial with the
same knobs, and never counts against the budget. Its MLflow run, which nobody will end, is
ended as KILLED by :func:`reconcile` (``infertune reconcile``, also run by every ``tune``
and worker at start), and so is the study's parent run once no live process works on it.
"""

from __future__ import annotations

import collections
import time
import warnings
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from infertune.config import Settings
from infertune.exceptions import ConfigurationError
from infertune.measure.fingerprint import fingerprint
from infertune.storage.db import Database
from infertune.storage.leases import leases, reap
from infertune.storage.repository import set_study_status, study_status_of
from infertune.tracking.tracker import Tracker
from infertune.tuning import summaries
from infertune.tuning.records import DIED_REASON, StudyView

#: How many times a trial killed with its worker is run again.
MAX_RETRY = 2
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def heartbeat_storage(url: str, heartbeat_s: int = 10, grace_s: int | None = None) -> RDBStorage:
    """Optuna storage with heartbeats and retries of stale trials."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            heartbeat_interval=heartbeat_s,
            grace_period=grace_s if grace_s is not None else 3 * heartbeat_s,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )


#: Trial attribute (with ``fail_reason``) of a trial failed because its process died.
DIED = "died"


def died(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a failed trial's process died while it ran (no reason was ever stored).

    A trial that fails in a live process always stores its reason (``fail_reason``).
    """
    return trial.state == optuna.trial.TrialState.FAIL and bool(
        trial.user_attrs.get(DIED) or "fail_reason" not in trial.user_attrs
    )


def fail_reason(trial: optuna.trial.FrozenTrial) -> str:
    """Why a failed trial failed, in words."""
    reason = trial.user_attrs.get("fail_reason")
    if reason:
        return str(reason)
    return DIED_REASON


def retried_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials that failed with their worker and were enqueued again."""
    numbers: set[int] = set()
    for trial in trials:
        numbers.update(trial.system_attrs.get("retry_history", []))
    return numbers


#: Trial attribute of a repeat that does not count (an unmeasured configuration was queued).
UNCOUNTED = "uncounted_repeat"


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count against the budget.

    Finished ones, less those whose process died (they free their slot, retried or not),
    those retried and the repeats of a measured configuration that were followed by a
    queued unmeasured one (their figures were reused: nothing ran).
    """
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return [
        t
        for t in trials
        if t.state in FINISHED
        and t.number not in retried
        and not t.user_attrs.get(UNCOUNTED)
        and not died(t)
    ]


def finished_count(study: optuna.Study) -> int:
    """How many trials count against the budget (see :func:`counted_trials`)."""
    return len(counted_trials(study))


class GlobalBudget:
    """Stops a worker once the whole study holds ``n_trials`` counted trials."""

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Called by Optuna after each trial."""
        if finished_count(study) >= self.n_trials:
            study.stop()


class BudgetGate:
    """Lets a worker start a trial only while the study's budget has room, one at a time.

    ``reserve`` takes a lock shared by every process on the study's storage (a PostgreSQL
    advisory lock; nothing is needed for SQLite, which serves one process), counts finished
    and running trials, and keeps the lock until :meth:`release`, called once the new trial
    is RUNNING in the storage. So N workers never start more than the budget.
    """

    def __init__(
        self,
        study: optuna.Study,
        n_trials: int,
        reaper: Callable[[], object] | None = None,
        poll_s: float = 2.0,
        on_wait: Callable[[int], None] | None = None,
    ) -> None:
        self.study = study
        self.n_trials = n_trials
        self.reaper = reaper or (lambda: fail_stale(study))
        self.poll_s = poll_s
        self.on_wait = on_wait
        storage = study._storage
        inner = getattr(storage, "_backend", storage)  # optuna wraps RDB storage in a cache
        engine = getattr(inner, "engine", None)
        self._conn = (
            engine.connect() if engine is not None and engine.dialect.name == "postgresql" else None
        )
        self._key = zlib.crc32(f"infertune-budget:{study.study_name}".encode())
        self._held = False

    def reserve(self, deadline: float | None = None) -> bool:
        """Lock, then say whether another trial may start (unlocks again if not).

        While the budget is not met but running trials fill it, waits (unlocked) for them:
        they finish, or their process turns out dead (:func:`fail_stale`, through the
        gate's reaper) and frees the slot. Gives up at ``deadline`` (``time.monotonic()``).
        """
        told = False
        while True:
            if self._conn is not None:
                self._conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                self._conn.commit()
                self._held = True
            trials = self.study.get_trials(deepcopy=False)
            in_flight = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
            done = finished_count(self.study)
            if done + in_flight < self.n_trials:
                return True
            self.release()
            if done >= self.n_trials or in_flight == 0:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if not told and self.on_wait is not None:
                self.on_wait(in_flight)
                told = True
            time.sleep(self.poll_s)
            self.reaper()

    def release(self) -> None:
        """Unlock (idempotent)."""
        if self._conn is not None and self._held:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._conn.commit()
            self._held = False

    def close(self) -> None:
        """Unlock and give the connection back."""
        self.release()
        if self._conn is not None:
            self._conn.close()


def check_hardware(study: optuna.Study, override: bool = False) -> None:
    """Refuse to join a study measured on different hardware (unless ``override``)."""
    recorded = StudyView(study).fingerprint
    mine = fingerprint()
    if override or recorded.get("hardware_id") in (None, mine["hardware_id"]):
        return

    def describe(fp: dict[str, Any]) -> str:
        hw = fp.get("hardware", {})
        flags = " ".join(hw.get("cpu_flags", []))
        cores = hw.get("usable_cores")
        return f"{fp.get('hardware_id')} ({hw.get('cpu_model')}, {cores} cores, {flags})"

    raise ConfigurationError(
        f"Study '{study.study_name}' was measured on hardware {describe(recorded)}, and this "
        f"machine is {describe(mine)}: latencies would not compare. Join from a machine of the "
        "same kind, or pass --ignore-hardware."
    )


def _set_died(study: optuna.Study, trial_id: int, reason: str) -> bool:
    """Fail a RUNNING trial whose process died, its reason stored first; whether it was."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, DIED, True)
        storage.set_trial_user_attr(trial_id, "fail_reason", reason)
        return bool(storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # it finished, or another process failed it first


def fail_stale(study: optuna.Study, dead_workers: Iterable[str] = ()) -> list[int]:
    """Fail the RUNNING trials whose process died; their numbers.

    Dead processes are those named in ``dead_workers`` (``host:pid``, known dead at once:
    see :func:`~infertune.storage.leases.reap`) and those whose trial heartbeat is older than
    the storage's grace period. Each failed trial stores why, and is retried (with the same
    knobs, a bounded number of times) where the storage has the retry callback.
    """
    dead = set(dead_workers)
    storage = study._storage
    failed: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker in dead and _set_died(
            study, trial._trial_id, f"its process ({worker}) died while it ran"
        ):
            failed.append(trial._trial_id)
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval and isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat):
        backend = getattr(storage, "_backend", storage)
        grace = getattr(backend, "grace_period", None) or 2 * interval
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            reason = f"its process stopped its heartbeat for over {grace} s (killed or lost)"
            if trial_id not in failed and _set_died(study, trial_id, reason):
                failed.append(trial_id)
    callback = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    numbers = []
    for trial_id in failed:
        frozen = storage.get_trial(trial_id)
        numbers.append(frozen.number)
        if callback is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback(study, frozen)
    return numbers


def failure_summary(study: optuna.Study) -> str | None:
    """One line when every trial of the study failed (nothing measured); else ``None``.

    Names how many failed and the most common reason.
    """
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in FINISHED and not t.user_attrs.get(UNCOUNTED)
    ]
    if not trials or any(t.state != optuna.trial.TrialState.FAIL for t in trials):
        return None
    reasons = collections.Counter(fail_reason(t) for t in trials)
    reason, count = reasons.most_common(1)[0]
    also = f" ({count} of them)" if len(trials) > 1 else ""
    return (
        f"Every trial of study '{study.study_name}' failed ({len(trials)} trial(s)); the most "
        f"common reason{also}: {reason.rstrip('.')}. See `infertune show {study.study_name}`."
    )


def reconcile(
    settings: Settings,
    study: optuna.Study,
    db: Database | None = None,
    dead_workers: Iterable[str] = (),
) -> dict[str, int]:
    """Fail stale trials and end the MLflow runs that no process will end.

    With the platform database (``db``), processes whose lease shows them dead are reaped
    (their trials failed at once), and the study's parent run is ended once no live process
    holds a lease on the study: ``FINISHED`` if its platform status says finished, else
    ``KILLED`` (and a ``running`` status becomes ``interrupted``).

    Returns counts: ``stale_trials_failed``, ``runs_killed`` and ``parent_runs_ended``.
    """
    name = study.study_name
    dead = set(dead_workers)
    if db is not None:
        dead.update(p.worker for p in reap(db, name))
    failed_now = fail_stale(study, dead)
    if failed_now:
        summaries.on_trial_end(study)
    trials = study.get_trials(deepcopy=False)
    tracker = Tracker(settings)
    killed = 0
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id is None or trial.state == optuna.trial.TrialState.RUNNING:
            continue
        if tracker.run_status(run_id) == "RUNNING":
            tracker.log(run_id, tags={"infertune.reconciled": "its process died during the trial"})
            tracker.end(run_id, "KILLED")
            killed += 1
    parents = 0
    parent = StudyView(study).parent_run_id
    if db is not None and not any(lease.alive() for lease in leases(db, name)):
        status = study_status_of(db, name)
        if status == "running":
            set_study_status(db, name, "interrupted")
        if parent and tracker.run_status(parent) == "RUNNING":
            tracker.log(parent, tags={"infertune.reconciled": "no live process works on it"})
            tracker.end(parent, "FINISHED" if status == "finished" else "KILLED")
            parents = 1
    return {
        "stale_trials_failed": len(failed_now),
        "runs_killed": killed,
        "parent_runs_ended": parents,
    }


__all__ = [
    "DIED",
    "FINISHED",
    "MAX_RETRY",
    "UNCOUNTED",
    "BudgetGate",
    "GlobalBudget",
    "check_hardware",
    "counted_trials",
    "died",
    "fail_reason",
    "fail_stale",
    "failure_summary",
    "finished_count",
    "heartbeat_storage",
    "reconcile",
    "retried_numbers",
]
