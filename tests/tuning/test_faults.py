"""Faults an operator meets (issue 18): killed processes, two owners, failing studies.

Real processes throughout: ``infertune tune`` killed with SIGKILL in the middle of a trial,
two ``tune`` on one study, a study whose every trial fails, an unreachable MLflow server.
After each: nothing RUNNING in Optuna or MLflow, no budget slot lost, one clear line and a
non-zero exit for every failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from infertune.config import Settings, load_settings
from infertune.measure.engine import Subject
from infertune.tracking.tracker import Tracker
from infertune.tuning.distributed import finished_count
from infertune.tuning.launch import launch_study
from infertune.tuning.records import StudyView

from ..test_cli import TINY_SPACE, _one_error_line, run

STUDY = "faults"


def _sqlite(home: Path) -> str:
    return f"sqlite:///{home / 'infertune.db'}"


def _tune(home: Path, trials: int, *extra: str) -> subprocess.Popen[str]:
    space = home / "tiny.yaml"
    home.mkdir(parents=True, exist_ok=True)
    space.write_text(TINY_SPACE)
    return subprocess.Popen(
        [sys.executable, "-m", "infertune", "tune", "demo:digits-cnn", "--space", str(space),
         "--study", STUDY, "--trials", str(trials), "--no-verify", "--heartbeat", "1", *extra],
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _study(url: str) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=url.replace("postgresql://", "postgresql+psycopg://")
    )


def _wait_for_running_trial(proc: subprocess.Popen[str], url: str) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            trials = _study(url).get_trials(states=(optuna.trial.TrialState.RUNNING,))
        except KeyError:
            trials = []  # not created yet
        if trials and trials[0].user_attrs.get("mlflow_run_id"):
            return trials[0]
        time.sleep(0.2)
    raise AssertionError("no trial ever ran")


def _nothing_running(home: Path, study: optuna.Study) -> None:
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    tracker = Tracker(load_settings(home=home))
    experiment = tracker.client.get_experiment_by_name(STUDY)
    assert experiment is not None
    runs = tracker.client.search_runs([experiment.experiment_id], max_results=1000)
    assert runs and not [r.info.run_name for r in runs if r.info.status == "RUNNING"]


def _kill_tune_mid_trial(home: Path, url: str, *storage: str) -> None:
    budget = 3
    victim = _tune(home, budget, *storage)
    dead = _wait_for_running_trial(victim, url)
    os.killpg(victim.pid, signal.SIGKILL)  # tune and its measurement processes
    victim.wait(timeout=30)
    # At once (not after a grace period): its process is known dead on this host.
    proc = run("reconcile", STUDY, *storage, "--json", home=home)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)[STUDY]
    assert counts["stale_trials_failed"] == 1 and counts["parent_runs_ended"] == 1
    assert counts["runs_killed"] == 1
    study = _study(url)
    failed = study.trials[dead.number]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "died" in failed.user_attrs["fail_reason"]
    _nothing_running(home, study)
    # The resumed study runs the whole budget: the dead trial freed its slot.
    resumed = _tune(home, budget, *storage)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    study = _study(url)
    assert finished_count(study) == budget
    _nothing_running(home, study)
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert retry and retry[0].params == dead.params  # retried with the same knobs


@pytest.mark.slow
def test_kill_9_of_tune_mid_trial_sqlite(tmp_path: Path) -> None:
    _kill_tune_mid_trial(tmp_path, _sqlite(tmp_path))


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_of_tune_mid_trial_postgres(tmp_path: Path, pg_url: str) -> None:
    _kill_tune_mid_trial(tmp_path, pg_url, "--storage", pg_url)


@pytest.mark.slow
def test_a_second_tune_on_a_study_is_refused(tmp_path: Path) -> None:
    first = _tune(tmp_path, 2)
    _wait_for_running_trial(first, _sqlite(tmp_path))
    second = _tune(tmp_path, 2)
    _, err = second.communicate(timeout=300)
    line = _one_error_line(subprocess.CompletedProcess([], second.returncode, "", err))
    assert "already being tuned by" in line and f"pid {first.pid}" in line
    assert f"infertune worker {STUDY}" in line
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    study = _study(_sqlite(tmp_path))
    assert finished_count(study) == 2
    tracker = Tracker(load_settings(home=tmp_path))
    experiment = tracker.client.get_experiment_by_name(STUDY)
    assert experiment is not None
    parents = tracker.client.search_runs(
        [experiment.experiment_id], "tags.`infertune.study` = 'faults'", max_results=100
    )
    assert len([r for r in parents if "mlflow.parentRunId" not in r.data.tags]) == 1
    _nothing_running(tmp_path, study)


ALL_FAIL_SPACE = TINY_SPACE.replace(
    "  prune_ratio: {type: float, low: 0.0, high: 0.5, step: 0.5}",
    "  prune_ratio: {type: float, low: 0.0, high: 0.5, step: 0.5}\n"
    f"  threads: {{type: categorical, choices: [{4 * (os.cpu_count() or 1)}]}}",
)


@pytest.mark.slow
def test_a_study_whose_every_trial_failed_exits_non_zero_saying_why(tmp_path: Path) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text(ALL_FAIL_SPACE)
    proc = run(
        "tune", "demo:digits-cnn", "--space", str(space), "--study", STUDY,
        "--trials", "2", "--no-verify", home=tmp_path,
    )  # fmt: skip
    line = _one_error_line(proc)
    assert "Every trial of study 'faults' failed (2 trial(s))" in line
    assert "usable cores" in line
    study = _study(_sqlite(tmp_path))
    assert all("usable cores" in t.user_attrs["fail_reason"] for t in study.trials)
    _nothing_running(tmp_path, study)


def test_an_unreachable_mlflow_server_is_one_line_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    started = time.monotonic()
    proc = run(
        "--mlflow-uri", f"http://127.0.0.1:{port}", "tune", "demo:digits-cnn",
        "--trials", "1", home=tmp_path,
    )  # fmt: skip
    line = _one_error_line(proc)
    assert f"The MLflow server http://127.0.0.1:{port} cannot be reached" in line
    assert time.monotonic() - started < 60


def _worker(home: Path, url: str, trials: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infertune", "worker", STUDY, "--trials", str(trials),
         "--storage", url, "--heartbeat", "1"],
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_at_the_end_of_the_budget_leaves_nothing_behind(
    tmp_path: Path, pg_url: str
) -> None:
    """Issue 18: the survivor exited with a RUNNING trial, the budget unmet, the parent run
    RUNNING. Now it waits for the last slot, runs the dead trial's retry and ends the run."""
    created = _tune(tmp_path, 1, "--storage", pg_url)
    _, err = created.communicate(timeout=600)
    assert created.returncode == 0, err
    budget = 2  # one slot left: one worker runs it, the other waits
    workers = [_worker(tmp_path, pg_url, budget) for _ in range(2)]
    running = _wait_for_running_trial(workers[0], pg_url)
    victim = next(w for w in workers if running.user_attrs["worker"].endswith(f":{w.pid}"))
    survivor = next(w for w in workers if w is not victim)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    study = _study(pg_url)
    assert finished_count(study) == budget
    _nothing_running(tmp_path, study)


# -- the disk: a read-only home, a full one (real mounts: root only) ------------------------


@pytest.fixture()
def tmpfs() -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs (``mount(path, size)``); unmounted at the end.

    Skips, saying why, where this process may not mount (not root, no mount namespace).
    """
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("no mount command on this machine")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, mode: str) -> None:
    proc = subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def _with_demo(home: Path, settings: Settings) -> Path:
    """``home`` with the session's trained digits-cnn copied in (no training per test).

    Only that demo: other tests of the session may have trained digits-midcnn, whose files
    would not fit the small file systems these tests mount.
    """
    shutil.copytree(
        settings.demo_dir / "digits-cnn", home / "demo" / "digits-cnn", dirs_exist_ok=True
    )
    return home


def _read_only_resume(tmpfs: Callable[..., Path], home: Path, settings: Settings, *db: str) -> str:
    """Create the study in ``home`` (a tmpfs), make ``home`` read-only, resume: the line.

    ``db``: ``--db-url URL`` to keep the platform database (and the study) elsewhere.
    """
    tmpfs(home, "64m")
    _with_demo(home, settings)
    (home / "tiny.yaml").write_text(TINY_SPACE)
    tune = ("tune", "demo:digits-cnn", "--space", str(home / "tiny.yaml"), "--study", STUDY,
            "--no-verify")  # fmt: skip
    created = run(*db, *tune, "--trials", "1", home=home)
    assert created.returncode == 0, created.stderr
    _remount(home, "ro")
    try:
        return _one_error_line(run(*db, *tune, "--trials", "2", home=home))
    finally:
        _remount(home, "rw")


def _status_of(url: str) -> str | None:
    from infertune.storage.db import Database
    from infertune.storage.repository import study_status_of

    db = Database(url)
    try:
        return study_status_of(db, STUDY)
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_resume_in_a_read_only_home_is_one_line(
    tmpfs: Callable[..., Path], settings: Settings, cnn: Subject, tmp_path: Path
) -> None:
    """Issue 18: six chained tracebacks. Now one line, and the study as it was."""
    home = tmp_path / "home"
    line = _read_only_resume(tmpfs, home, settings)
    assert "attempt to write a readonly database; the database file or its folder is " in line
    study = _study(_sqlite(home))
    assert finished_count(study) == 1  # the refused resume used no slot of the budget
    _nothing_running(home, study)
    assert _status_of(_sqlite(home)) == "finished"


@pytest.mark.slow
@pytest.mark.postgres
def test_a_resume_in_a_read_only_home_with_the_database_elsewhere_is_one_line(
    tmpfs: Callable[..., Path], settings: Settings, cnn: Subject, tmp_path: Path, pg_url: str
) -> None:
    """The study on PostgreSQL, MLflow's store in the read-only home: MLflow's own traceback
    and an 'unexpected MlflowException' before; now one line naming the store."""
    home = tmp_path / "home"
    line = _read_only_resume(tmpfs, home, settings, "--db-url", pg_url)
    assert f"Cannot open the parent run of study '{STUDY}' in the MLflow store" in line
    assert "readonly database; the database file or its folder is read-only" in line
    study = _study(pg_url)
    assert finished_count(study) == 1
    _nothing_running(home, study)
    assert _status_of(pg_url) == "failed"  # the last run of it failed (to start)
    assert run("--db-url", pg_url, "reconcile", STUDY, home=home).returncode == 0


@pytest.mark.slow
def test_a_full_disk_stops_the_study_with_one_line(
    tmpfs: Callable[..., Path], settings: Settings, cnn: Subject, tmp_path: Path
) -> None:
    """Issue 18: the disk full before any build, every trial failed, yet exit 0.

    Built variants go to a disk with no room for one (a tiny tmpfs on HOME/variants); the
    stores stay writable, so what happened is recorded. The first trial that fails for want
    of space stops the study: every other build would fail the same way.
    """
    home = _with_demo(tmp_path, settings)
    tmpfs(home / "variants", "64k")
    proc = _tune(home, 4)
    _, err = proc.communicate(timeout=600)
    line = _one_error_line(subprocess.CompletedProcess([], proc.returncode, "", err))
    assert "The disk is full (ENOSPC)" in line and "No space left on device" in line, line
    assert "resume" in line
    study = _study(_sqlite(home))
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(failed) == 1 and len(study.trials) == 1, "it went on after the disk was full"
    assert "No space left on device" in failed[0].user_attrs["fail_reason"]
    _nothing_running(home, study)
    assert _status_of(_sqlite(home)) == "failed"
    tracker = Tracker(load_settings(home=home))
    parent = StudyView(study).parent_run_id
    assert parent is not None and tracker.run_status(parent) == "FAILED"


@pytest.mark.slow
def test_a_home_on_a_full_disk_is_one_line_then_resumes_once_space_is_freed(
    tmpfs: Callable[..., Path], settings: Settings, cnn: Subject, tmp_path: Path
) -> None:
    """The whole home (stores included) on a disk with 64 KiB left: one line that says the
    disk is full; once space is freed, the same command runs the study to its end."""
    home = _with_demo(tmpfs(tmp_path / "home", "24m"), settings)
    (home / "tiny.yaml").write_text(TINY_SPACE)
    filler = home / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(home).free - 64 * 1024))
    tune = ("tune", "demo:digits-cnn", "--space", str(home / "tiny.yaml"), "--study", STUDY,
            "--trials", "1", "--no-verify")  # fmt: skip
    line = _one_error_line(run(*tune, home=home))
    assert "database or disk is full; the disk is full (ENOSPC): free space" in line, line
    filler.unlink()
    proc = run(*tune, home=home)
    assert proc.returncode == 0, proc.stderr
    study = _study(_sqlite(home))
    assert finished_count(study) == 1
    _nothing_running(home, study)


# -- Launch (the dashboard's backend) submitted twice ------------------------------------


def test_two_launches_in_one_second_keep_their_own_log_and_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both records once named STUDY-STAMP: the second overwrote the first's log."""
    from infertune.tuning import launch

    settings = load_settings(home=tmp_path)

    def says(*_args: object) -> list[str]:
        return [sys.executable, "-c", "import os; print('pid', os.getpid())"]

    monkeypatch.setattr(launch, "tune_command", says)
    monkeypatch.setattr(time, "strftime", lambda *_: "20250101T000000")  # one second
    first = launch_study(settings, "demo:digits-cnn", STUDY, 1, actor="test")
    second = launch_study(settings, "demo:digits-cnn", STUDY, 1, actor="test")
    assert first["log"] != second["log"]
    records = _launches_when_done(settings)
    assert [r["pid"] for r in records] == [second["pid"], first["pid"]]  # newest first
    for record in records:
        assert record["exit_code"] == 0
        assert f"pid {record['pid']}" in Path(record["log"]).read_text()


def _launches_when_done(settings: Settings, timeout_s: float = 600) -> list[dict[str, Any]]:
    from infertune.tuning.launch import launches

    deadline = time.monotonic() + timeout_s
    while True:
        records = launches(settings)
        if not any(r["state"] == "running" for r in records):
            return records
        assert time.monotonic() < deadline, records
        time.sleep(0.5)


@pytest.mark.slow
def test_a_launch_submitted_twice_tunes_once(
    tmp_path: Path, settings: Settings, cnn: Subject
) -> None:
    """Issue 18: Launch pressed twice. One study run, one parent run, one baseline; the
    other launch ends with the one-line refusal in its record and log."""
    home = _with_demo(tmp_path, settings)
    (home / "models").mkdir()
    (home / "models" / "tiny.yaml").write_text(TINY_SPACE + "\n")
    mine = load_settings(home=home)
    # The second press may find the study the first one just created: it asks to resume
    # (as the page does once its box is ticked), so the owner lease is what refuses it.
    for _ in range(2):
        launch_study(mine, "demo:digits-cnn", STUDY, 2, "tiny.yaml", actor="test", resume=True)
    records = _launches_when_done(mine)
    assert sorted(r["exit_code"] for r in records) == [0, 1], [r["log_tail"] for r in records]
    refused = next(r for r in records if r["exit_code"] == 1)
    ran = next(r for r in records if r["exit_code"] == 0)
    assert "already being tuned by" in refused["error"], refused["log_tail"]
    assert f"pid {ran['pid']}" in refused["error"]
    log = Path(refused["log"]).read_text()
    assert "Traceback" not in log and log.count("infertune: error:") == 1
    study = _study(_sqlite(home))
    assert finished_count(study) == 2
    tracker = Tracker(mine)
    experiment = tracker.client.get_experiment_by_name(STUDY)
    assert experiment is not None
    runs = tracker.client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    baselines = [a.path for a in tracker.client.list_artifacts(parents[0].info.run_id)]
    assert baselines.count("baseline.json") == 1
    assert len(runs) == 1 + len(study.trials)  # no trial of the refused launch
    _nothing_running(home, study)


# -- a migration stopped half-way -------------------------------------------------------


def test_a_migration_stopped_half_way_leaves_a_fresh_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during the first migration left tables without their revision: every
    later command said 'at schema revision base ... run infertune db upgrade', and that
    failed too. Now the migration is one transaction on SQLite as well."""
    import sqlalchemy as sa
    from alembic import command

    from infertune.exceptions import StorageError
    from infertune.storage import db as db_module

    upgrade = command.upgrade

    def half_way(config: Any, revision: str) -> None:
        upgrade(config, "0001")  # the first revision's tables are made...
        raise sa.exc.OperationalError("INSERT", {}, Exception("database or disk is full"))

    database = db_module.Database(_sqlite(tmp_path))
    monkeypatch.setattr(command, "upgrade", half_way)
    with pytest.raises(StorageError, match="disk is full; the disk is full \\(ENOSPC\\)"):
        database.ensure_schema()
    monkeypatch.undo()
    with database.engine.connect() as conn:
        assert not [t for t in sa.inspect(conn).get_table_names() if t.startswith("infertune")]
    database.ensure_schema()  # ...and rolled back: the next use creates the schema
    assert database.current_revision() == db_module.head_revision()
