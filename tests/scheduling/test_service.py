"""The scheduler service end to end: it fires, warm-starts, decides, records; one per DB."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from infertune.config import load_settings
from infertune.scheduling.schedules import add_schedule, job_runs
from infertune.scheduling.service import JOB_TABLE
from infertune.storage.db import Database
from infertune.tuning import queries

from ..test_cli import run, tune_tiny

STUDY = "sched-study"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("sched-home")
    front = tune_tiny(home, STUDY)
    return {"home": home, "front": front}


def _service(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infertune", "scheduler", "--sync", "1", "--stale-after", "5"],
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(check: Any, what: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def test_run_now_warm_starts_from_the_front_and_decides(home: dict[str, Any]) -> None:
    settings = load_settings(home=home["home"])
    db = Database(settings.database_url)
    points = home["front"]["points"]
    slowest = max(points, key=lambda p: p["figures"]["latency_p95_ms"])
    promoted = run("promote", STUDY, "--trial", str(slowest["number"]), "--name", "sched-model",
                   home=home["home"])  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr
    add_schedule(db, STUDY, None, "1d", trials=4, auto_promote="sched-model", min_gain=0.05)
    proc = run("schedule", "run-now", STUDY, "--json", home=home["home"])
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["decision"] in ("promoted", "no improvement")
    assert outcome["figures"]["production_version"] == "1"
    assert "gain" in outcome["figures"] or outcome["decision"] == "no improvement"
    # The new study's first trials are the previous front (which holds production here).
    new = queries.load(outcome["study"], settings.database_url)
    assert new.user_attrs["infertune.retune_of"] == STUDY
    first = [t.user_attrs["config"] for t in new.trials[: len(points)]]
    assert sorted(json.dumps(c, sort_keys=True) for c in first) == sorted(
        json.dumps(p["config"], sort_keys=True) for p in points
    )
    (last,) = job_runs(db, STUDY, limit=1)
    assert last["status"] == "finished" and last["trigger"] == "run-now"
    assert last["study_created"] == outcome["study"] and last["decision"] == outcome["decision"]
    listed = json.loads(run("schedule", "list", "--json", home=home["home"]).stdout)
    assert listed[0]["last_run"]["decision"] == outcome["decision"]


def test_service_fires_refuses_a_second_one_stops_cleanly_and_keeps_its_job(
    home: dict[str, Any],
) -> None:
    settings = load_settings(home=home["home"])
    db = Database(settings.database_url)
    add_schedule(db, STUDY, None, "2s", trials=4)
    last_id = max((r["id"] for r in job_runs(db, STUDY, limit=500)), default=0)

    def new_runs(status: str) -> list[dict[str, Any]]:
        runs = job_runs(db, STUDY, limit=500)
        return [r for r in runs if r["id"] > last_id and r["status"] == status]

    service = _service(home["home"])
    try:
        (fired, *_) = _wait_for(lambda: new_runs("finished"), "a scheduled re-tune to finish")
        assert fired["trigger"] == "schedule" and fired["study_created"]
        second = _service(home["home"])
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert "Another scheduler runs on this database" in err
        # Runs due while one is going are skipped and recorded, not run twice at once.
        _wait_for(lambda: new_runs("skipped"), "a skipped overlapping run", timeout=60)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        _, err = service.communicate(timeout=180)
    assert service.returncode == 0, err
    assert "scheduler stopped" in err
    # Nothing left running: job runs ended, Optuna trials ended.
    assert all(r["status"] != "running" for r in job_runs(db, STUDY, limit=500))
    for summary in optuna.get_all_study_summaries(settings.database_url):
        study = optuna.load_study(study_name=summary.study_name, storage=settings.database_url)
        assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # A restart keeps the job without duplicating it, and the lock was freed.
    again = _service(home["home"])
    try:
        time.sleep(8)
        assert again.poll() is None, again.stderr.read() if again.stderr else ""
        with db.engine.connect() as conn:
            ids = conn.execute(sa.text(f"SELECT id FROM {JOB_TABLE}")).scalars().all()
        assert [i for i in ids if i.startswith("retune:")] == [f"retune:{STUDY}"]
    finally:
        os.killpg(again.pid, signal.SIGTERM)
        again.communicate(timeout=180)
