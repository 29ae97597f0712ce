"""Many workers on one study: heartbeats, retries of killed trials, reconciliation.

Workers share a study through Optuna's RDB storage (PostgreSQL for more than one process).
With a heartbeat, a trial whose worker died (SIGKILL, a lost machine) is failed after the
grace period by the next worker that starts a trial, and retried (a bounded number of
times) as a new trial with the same knobs. Its MLflow run, which nobody will end, is ended
as KILLED by :func:`reconcile` (``infertune reconcile``, also run by every worker at start).
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from infertune.config import Settings
from infertune.exceptions import ConfigurationError
from infertune.measure.fingerprint import fingerprint
from infertune.tracking.tracker import Tracker
from infertune.tuning.records import StudyView

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

    Finished ones, less those retried and the repeats of a measured configuration that
    were followed by a queued unmeasured one (their figures were reused: nothing ran).
    """
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return [
        t
        for t in trials
        if t.state in FINISHED and t.number not in retried and not t.user_attrs.get(UNCOUNTED)
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

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        self.study = study
        self.n_trials = n_trials
        storage = study._storage
        inner = getattr(storage, "_backend", storage)  # optuna wraps RDB storage in a cache
        engine = getattr(inner, "engine", None)
        self._conn = (
            engine.connect() if engine is not None and engine.dialect.name == "postgresql" else None
        )
        self._key = zlib.crc32(f"infertune-budget:{study.study_name}".encode())
        self._held = False

    def reserve(self) -> bool:
        """Lock, then say whether another trial may start (unlocks again if not)."""
        if self._conn is not None:
            self._conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            self._conn.commit()
            self._held = True
        trials = self.study.get_trials(deepcopy=False)
        in_flight = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
        if finished_count(self.study) + in_flight < self.n_trials:
            return True
        self.release()
        return False

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


def reconcile(settings: Settings, study: optuna.Study) -> dict[str, int]:
    """Fail stale trials and end the MLflow runs that no worker will end.

    Returns counts: ``stale_trials_failed`` and ``runs_killed``.
    """
    before = {
        t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    failed_now = {t.number for t in trials if t.state == optuna.trial.TrialState.FAIL} - before
    tracker = Tracker(settings)
    killed = 0
    for trial in trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id is None or trial.state == optuna.trial.TrialState.RUNNING:
            continue
        if tracker.run_status(run_id) == "RUNNING":
            tracker.log(run_id, tags={"infertune.reconciled": "worker died during the trial"})
            tracker.end(run_id, "KILLED")
            killed += 1
    return {"stale_trials_failed": len(failed_now), "runs_killed": killed}
