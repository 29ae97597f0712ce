"""Schedules: validation, the CLI, and the one-scheduler lock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from infertune.exceptions import ConfigurationError, InfertuneError, InputError
from infertune.scheduling.lock import SchedulerLocked, SchedulerLockHolder
from infertune.scheduling.schedules import (
    add_schedule,
    next_run,
    overview,
    parse_cron,
    parse_every,
    remove_schedule,
    set_paused,
)
from infertune.storage.db import Database
from infertune.storage.models import SchedulerLock

from ..test_cli import _one_error_line, run


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'platform.db'}")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("6h", 21600), ("1d", 86400), ("1.5h", 5400)]
)
def test_intervals(text: str, seconds: float) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["6", "h", "6 hours", "-1h", "0s", ""])
def test_invalid_intervals_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="Invalid interval"):
        parse_every(text)


@pytest.mark.parametrize("text", ["0 2 * *", "61 * * * *", "* 25 * * *", "every day", ""])
def test_invalid_cron_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ConfigurationError, match="Invalid cron expression .*five fields"):
        parse_cron(text)


def test_add_pause_resume_remove_and_next_run(db: Database) -> None:
    added = add_schedule(db, "s", "0 2 * * *", None, trials=10, auto_promote="m")
    upcoming = dt.datetime.fromisoformat(added["next_run"])
    assert (upcoming.hour, upcoming.minute) == (2, 0)
    with pytest.raises(InputError, match="exactly one of --cron or --every"):
        add_schedule(db, "s", "0 2 * * *", "6h", trials=10)
    add_schedule(db, "s", None, "6h", trials=5)  # replaces
    (row,) = overview(db)
    assert row["every_s"] == 21600 and row["cron"] is None and row["trials"] == 5
    set_paused(db, "s", True)
    assert overview(db)[0]["paused"] and overview(db)[0]["next_run"] is None
    set_paused(db, "s", False)
    assert overview(db)[0]["next_run"] is not None
    remove_schedule(db, "s")
    assert overview(db) == []
    with pytest.raises(InputError, match="No schedule for study 's'"):
        set_paused(db, "s", True)


def test_one_scheduler_per_database_and_a_dead_holder_frees_it(db: Database) -> None:
    first = SchedulerLockHolder(db, stale_after_s=30, heartbeat_s=1)
    first.acquire()
    second = SchedulerLockHolder(db, stale_after_s=30)
    second.name = "other-host:1"
    with pytest.raises(
        SchedulerLocked, match=f"Another scheduler runs on this database: {first.name}"
    ):
        second.acquire()
    first.release()
    second.acquire()  # released: free at once
    # The holder dies (no release, no heartbeat): after stale_after_s the lock is free.
    second._stop.set()
    with db.session() as session:
        session.execute(
            sa.update(SchedulerLock).values(
                heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31)
            )
        )
    third = SchedulerLockHolder(db, stale_after_s=30)
    third.name = "third-host:2"
    third.acquire()
    third.release()


def test_schedule_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert "No study named 'nope'" in _one_error_line(
        run("schedule", "add", "nope", "--every", "6h", home=home)
    )
    assert "Invalid" in _one_error_line(
        run("schedule", "add", "nope", "--cron", "not a cron", home=home)
    )
    listed = run("schedule", "list", "--json", home=home)
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    assert "No schedule for study" in _one_error_line(run("schedule", "pause", "x", home=home))


def test_schedule_add_refuses_to_replace_silently(tmp_path: Path) -> None:
    import optuna

    from infertune.config import load_settings
    from infertune.tuning.study import storage_url

    home = tmp_path / "home"
    assert run("db", "upgrade", home=home).returncode == 0
    url = storage_url(load_settings(home=home), None)
    optuna.create_study(study_name="s", storage=url)
    first = run("schedule", "add", "s", "--every", "6h", "--auto-promote", "m", home=home)
    assert first.returncode == 0, first.stderr
    line = _one_error_line(run("schedule", "add", "s", "--every", "1d", home=home))
    assert "already has a schedule (every 6h, 15 trials, auto-promote m@production)" in line
    assert "--replace" in line and "when: every 6h -> every 1d" in line
    assert "auto-promote: m -> off" in line
    (row,) = json.loads(run("schedule", "list", "--json", home=home).stdout)
    assert row["auto_promote"] == "m" and row["every_s"] == 21600  # untouched
    replaced = run("schedule", "add", "s", "--every", "1d", "--replace", home=home)
    assert replaced.returncode == 0, replaced.stderr
    assert "Replaced the schedule of 's': when: every 6h -> every 1d; auto-promote: m -> off" in (
        replaced.stdout
    )
    (row,) = json.loads(run("schedule", "list", "--json", home=home).stdout)
    assert row["auto_promote"] is None and row["every_s"] == 86400


def test_next_run_of_an_interval(db: Database) -> None:
    add_schedule(db, "i", None, "30m", trials=3)
    (row,) = overview(db)
    assert row["next_run"] is not None
    from infertune.scheduling.schedules import get_schedule

    now = dt.datetime.now(dt.UTC)
    fire = next_run(get_schedule(db, "i"), now)
    assert fire is not None and 0 <= (fire - now).total_seconds() <= 1801


def test_cron_weekdays_count_like_crontab() -> None:
    monday = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)  # a Monday, after 02:00
    assert parse_cron("0 2 * * 0").get_next_fire_time(None, monday).strftime("%A") == "Sunday"
    assert parse_cron("0 2 * * 7").get_next_fire_time(None, monday).strftime("%A") == "Sunday"
    weekdays = parse_cron("0 2 * * 1-5")
    fire = weekdays.get_next_fire_time(None, monday)
    assert fire.strftime("%A") == "Tuesday"
    friday = dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)
    assert weekdays.get_next_fire_time(None, friday).strftime("%A") == "Monday"


def test_a_schedule_runs_once_at_a_time(db: Database, tmp_path: Path) -> None:
    from infertune.config import load_settings
    from infertune.scheduling.retune import run_retune, start_run

    settings = load_settings(home=tmp_path, db_url=db.url)
    add_schedule(db, "busy", None, "6h", trials=3)
    start_run(db, "busy", "schedule")  # another process is re-tuning it now
    with pytest.raises(InfertuneError, match="Skipped: run .* is still going"):
        run_retune(settings, "busy", "run-now")
    from infertune.scheduling.schedules import job_runs

    assert [r["status"] for r in job_runs(db, "busy")] == ["skipped", "running"]
