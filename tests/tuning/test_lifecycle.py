"""The one study lifecycle: status rule, platform record, MLflow parent run, worker joins."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from infertune.config import Settings
from infertune.exceptions import InfertuneError
from infertune.measure.engine import Engine, Subject
from infertune.storage.db import Database
from infertune.storage.models import StudyRecord
from infertune.tracking.tracker import Tracker
from infertune.tuning.distributed import finished_count
from infertune.tuning.lifecycle import RunEnd, StudyRun, join_study, study_status
from infertune.tuning.records import StudyView, TrialRecord
from infertune.tuning.sampling import make_sampler
from infertune.tuning.study import open_study, study_spec

from .test_study import tiny_space


@pytest.mark.parametrize(
    ("end", "owner", "budget_met", "expected"),
    [
        (RunEnd.COMPLETED, True, True, "finished"),
        (RunEnd.COMPLETED, True, False, "finished"),  # --timeout stopped new trials
        (RunEnd.INTERRUPTED, True, False, "interrupted"),
        (RunEnd.FAILED, True, True, "failed"),
        (RunEnd.COMPLETED, False, True, "finished"),
        (RunEnd.COMPLETED, False, False, "running"),  # other workers still run trials
        (RunEnd.FAILED, False, False, "running"),  # a worker's error is its own
        (RunEnd.INTERRUPTED, False, True, "running"),
    ],
)
def test_one_status_rule(end: RunEnd, owner: bool, budget_met: bool, expected: str) -> None:
    assert study_status(end, owner, budget_met) == expected


def _status(db: Database, name: str) -> str:
    with db.session() as session:
        return str(session.scalar(sa.select(StudyRecord.status).where(StudyRecord.name == name)))


def _stores(tmp_path: Path, settings: Settings, tracker: Tracker) -> tuple[Settings, str, Database]:
    """Settings whose MLflow store is the tracker fixture's, a study storage, a platform DB."""
    settings = settings.model_copy(update={"home": tracker.settings.home})
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    db.ensure_schema()
    return settings, f"sqlite:///{tmp_path / 'studies.db'}", db


def test_owner_then_worker_share_one_lifecycle(
    tmp_path: Path, settings: Settings, engine: Engine, cnn: Subject, tracker: Tracker
) -> None:
    settings, url, db = _stores(tmp_path, settings, tracker)
    space = tiny_space()
    study, _ = open_study(
        "life", url, study_spec(cnn, space), space, make_sampler("grid", 0, 3, space)
    )
    seen: list[int] = []

    def progress(total: int, done: int):  # type: ignore[no-untyped-def]
        assert (total, done) == (2, 0)
        return lambda trial: seen.append(trial.number)

    outcome = StudyRun(settings, db, engine, study, cnn, space, url).execute(
        2, verify=True, progress=progress
    )
    assert outcome.status == "finished" and outcome.verified and outcome.budget_met
    assert outcome.trials_run == 2 and seen == [0, 1]
    assert _status(db, "life") == "finished"
    assert tracker.run_status(outcome.parent_run_id) == "FINISHED"
    view = StudyView(study)
    assert view.verified is not None and view.baseline is not None
    assert [TrialRecord.from_trial(t).worker for t in study.trials] != [None, None]

    # A worker joins with a larger budget: it runs the extra trial, does not verify, and as
    # the budget is met at its end, the study is finished again.
    joined, joined_space = join_study(settings, "life", url, trials=3)
    assert joined_space == space
    outcome = StudyRun(settings, db, engine, joined, cnn, joined_space, url).execute(3, owner=False)
    # One counted trial more; a trial that failed under load (CI's busy machine once showed
    # one) or repeated a configuration does not count, and another is run in its place.
    assert outcome.trials_run >= 1 and not outcome.verified and outcome.budget_met
    assert finished_count(joined) == 3
    assert _status(db, "life") == "finished"


def test_a_failed_start_is_recorded_as_failed(
    tmp_path: Path, settings: Settings, engine: Engine, cnn: Subject, tracker: Tracker
) -> None:
    settings, url, db = _stores(tmp_path, settings, tracker)
    space = tiny_space()
    study, _ = open_study(
        "broken", url, study_spec(cnn, space), space, make_sampler("grid", 0, 3, space)
    )
    # The baseline window cannot be met: the start fails before any trial.
    impossible = tiny_space(
        measurement={
            "search": {
                "warmup_s": 0,
                "min_duration_s": 0.1,
                "min_calls": 10**7,
                "max_duration_s": 0.2,
            },
            "verify": {"min_duration_s": 0.1, "min_calls": 10, "max_duration_s": 20},
        }
    )
    with pytest.raises(InfertuneError, match="baseline"):
        StudyRun(settings, db, engine, study, cnn, impossible, url).execute(2)
    assert _status(db, "broken") == "failed"
    parent = StudyView(study).parent_run_id
    assert parent is not None
    assert tracker.run_status(parent) == "FAILED"


def test_join_refuses_a_study_not_made_by_infertune(tmp_path: Path, settings: Settings) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="plain", storage=url)
    with pytest.raises(InfertuneError, match="not created by infertune"):
        join_study(settings, "plain", url, trials=2)


def test_builds_and_accuracy_hold_the_work_lock_and_timings_never_do(
    tmp_path: Path,
    settings: Settings,
    engine: Engine,
    cnn: Subject,
    tracker: Tracker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18 (item 7): under --jobs a build ran beside the baseline's timing (4.49 ms vs
    1.5 ms). Every build and accuracy pass of a study holds the host's work lock, so a
    timing (which takes the lock exclusively) never overlaps one; no timing holds it."""
    import contextlib
    import threading

    from infertune.measure.hostlock import host_work_lock as real_lock

    held = threading.local()
    calls: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def recording_lock():  # type: ignore[no-untyped-def]
        with real_lock() as waited:
            held.on = True
            try:
                yield waited
            finally:
                held.on = False

    def spy(name: str):  # type: ignore[no-untyped-def]
        original = getattr(Engine, name)

        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append((name, getattr(held, "on", False)))
            return original(self, *args, **kwargs)

        return wrapper

    monkeypatch.setattr("infertune.tuning.study.host_work_lock", recording_lock)
    for name in ("variant", "evaluate", "time"):
        monkeypatch.setattr(Engine, name, spy(name))
    settings, url, db = _stores(tmp_path, settings, tracker)
    space = tiny_space()
    study, _ = open_study(
        "locks", url, study_spec(cnn, space), space, make_sampler("grid", 0, 3, space)
    )
    StudyRun(settings, db, engine, study, cnn, space, url).execute(2, verify=False)
    names = {name for name, _ in calls}
    assert names == {"variant", "evaluate", "time"}  # the baseline and the trials
    assert all(locked for name, locked in calls if name in ("variant", "evaluate"))
    assert not any(locked for name, locked in calls if name == "time")
