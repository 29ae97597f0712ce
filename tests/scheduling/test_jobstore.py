"""The scheduler's job table holds data: a pickle planted there is never loaded."""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from infertune.scheduling.jobstore import JOB_FUNCTION, DataJobStore, UnsafeJobError
from infertune.scheduling.schedules import JOB_TABLE, parse_cron
from infertune.storage.db import Database


class _Planted:
    """What an attacker with write access to the database stores: it runs on unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "the pickle ran"))


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'platform.db'}")


def _scheduler(db: Database) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": DataJobStore(db.engine, JOB_TABLE, 3600)}, timezone=dt.UTC
    )
    scheduler.start(paused=True)
    return scheduler


@pytest.fixture()
def scheduler(db: Database) -> Iterator[BackgroundScheduler]:
    running = _scheduler(db)
    yield running
    if running.running:
        running.shutdown(wait=False)


def _rows(db: Database) -> dict[str, bytes]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, job_state FROM {JOB_TABLE}")).all()
    return {r[0]: bytes(r[1]) for r in rows}


def _plant(db: Database, job_id: str, state: bytes) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {JOB_TABLE} WHERE id = :id"), {"id": job_id})
        conn.execute(
            sa.text(f"INSERT INTO {JOB_TABLE} (id, next_run_time, job_state) VALUES (:i, :t, :s)"),
            {"i": job_id, "t": 4102444800, "s": state},  # due in 2100: never fires here
        )


def test_jobs_are_stored_as_json_and_come_back_the_same(
    db: Database, scheduler: BackgroundScheduler
) -> None:
    cron = parse_cron("0 2 * * 1-5")
    scheduler.add_job(JOB_FUNCTION, trigger=cron, id="retune:a", args=["a"])
    scheduler.add_job(JOB_FUNCTION, trigger="interval", seconds=90, id="retune:b", args=["b"])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    scheduler.add_job(JOB_FUNCTION, "date", run_date=later, id="change:a", args=["a", "model"])
    scheduler.get_job("retune:b").pause()
    documents = {k: json.loads(v) for k, v in _rows(db).items()}
    assert documents["retune:a"]["trigger"]["type"] == "cron"
    assert documents["change:a"]["reason"] == "model"
    assert all("func" not in d for d in documents.values())
    before = {j.id: (str(j.trigger), j.next_run_time, j.args) for j in scheduler.get_jobs()}
    interval_start = scheduler.get_job("retune:b").trigger.start_date
    scheduler.shutdown(wait=False)
    again = _scheduler(db)  # a restart reads the same jobs back
    try:
        after = {j.id: (str(j.trigger), j.next_run_time, j.args) for j in again.get_jobs()}
        assert after == before
        assert after["retune:b"][1] is None  # still paused
        assert again.get_job("retune:b").trigger.start_date == interval_start
        assert again.get_job("retune:a").func_ref == JOB_FUNCTION
    finally:
        again.shutdown(wait=False)


def test_only_re_tunes_are_stored(scheduler: BackgroundScheduler) -> None:
    for func, job_id, args in [
        ("os:system", "retune:x", ["x"]),
        (JOB_FUNCTION, "retune:x", ["y"]),  # arguments the id does not give
        (JOB_FUNCTION, "change:x", ["x", "anything"]),
        (JOB_FUNCTION, "other:x", ["x"]),
    ]:
        with pytest.raises(UnsafeJobError):
            scheduler.add_job(func, trigger="interval", seconds=60, id=job_id, args=args)


def test_a_planted_pickle_is_dropped_not_run(
    db: Database,
    scheduler: BackgroundScheduler,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = tmp_path / "pwned"
    scheduler.add_job(JOB_FUNCTION, trigger="interval", seconds=60, id="retune:s", args=["s"])
    # The failure this fixes: APScheduler's own store runs whatever pickle it finds.
    _plant(db, "retune:s", pickle.dumps(_Planted(marker)))
    stock = SQLAlchemyJobStore(engine=db.engine, tablename=JOB_TABLE)
    with pytest.raises(Exception):  # noqa: B017 - the payload runs before the job is built
        stock.lookup_job("retune:s")
    assert marker.read_text() == "the pickle ran"
    marker.unlink()
    # The data store never unpickles: the row is dropped (the next sync re-creates the job).
    _plant(db, "retune:s", pickle.dumps(_Planted(marker)))
    with caplog.at_level(logging.WARNING, logger="infertune.scheduler"):
        assert scheduler.get_job("retune:s") is None
        assert scheduler.get_jobs() == []
    assert not marker.exists()
    assert "retune:s" not in _rows(db)
    assert "not a JSON document" in caplog.text


@pytest.mark.parametrize(
    "document",
    [
        {"format": "infertune-job/1", "id": "retune:other", "reason": None, "trigger": {}},
        {"format": "infertune-job/1", "id": "change:s", "reason": "rm -rf", "trigger": {}},
        {"format": "x", "id": "retune:s"},
        {
            "format": "infertune-job/1",
            "id": "retune:s",
            "trigger": {"type": "cron", "fields": {"__class__": "x"}},
        },
        [1, 2],
    ],
)
def test_tampered_documents_are_dropped(
    db: Database, scheduler: BackgroundScheduler, document: Any
) -> None:
    job_id = document["id"] if isinstance(document, dict) and "id" in document else "retune:s"
    if job_id == "retune:other":
        job_id = "retune:s"
    _plant(db, job_id, json.dumps(document).encode())
    assert scheduler.get_jobs() == []
    assert _rows(db) == {}


def test_a_stored_function_name_is_ignored(db: Database, scheduler: BackgroundScheduler) -> None:
    scheduler.add_job(JOB_FUNCTION, trigger="interval", seconds=60, id="retune:s", args=["s"])
    document = json.loads(_rows(db)["retune:s"])
    document.update(func="os:system", args=["touch /tmp/x"], kwargs={"x": 1})
    _plant(db, "retune:s", json.dumps(document).encode())
    (job,) = scheduler.get_jobs()
    assert job.func_ref == JOB_FUNCTION and job.args == ("s",) and job.kwargs == {}
