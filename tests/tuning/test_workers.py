"""Distributed workers on PostgreSQL: a shared budget, a killed worker, reconciliation."""

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

from infertune.config import load_settings
from infertune.tracking.tracker import Tracker
from infertune.tuning.distributed import finished_count, retried_numbers

from ..test_cli import TINY_SPACE, _one_error_line, run

pytestmark = pytest.mark.postgres

STUDY = "workers"


def _create(home: Path, url: str) -> None:
    """The study exists before workers join it (baseline measured, no trials yet)."""
    space = home / "tiny.yaml"
    space.write_text(TINY_SPACE)
    proc = run(
        "tune", "demo:digits-cnn", "--space", str(space), "--study", STUDY, "--trials", "1",
        "--storage", url, "--no-verify", home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _worker(home: Path, url: str, trials: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infertune", "worker", STUDY, "--trials", str(trials),
         "--storage", url, "--heartbeat", "1"],
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _study(url: str) -> optuna.Study:
    return optuna.load_study(
        study_name=STUDY, storage=url.replace("postgresql://", "postgresql+psycopg://")
    )


def test_four_workers_share_one_budget(tmp_path: Path, pg_url: str) -> None:
    _create(tmp_path, pg_url)
    # A budget below the space's 6 configurations: exactly 5 trials count. (A repeated
    # configuration does not count, and a space measured in full ends the search.)
    workers = [_worker(tmp_path, pg_url, 5) for _ in range(4)]
    errors = [w.communicate(timeout=600)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], errors
    study = _study(pg_url)
    assert finished_count(study) == 5
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len(numbers) == 5 + sum("uncounted_repeat" in t.user_attrs for t in study.trials)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.user_attrs["worker"] for t in study.trials}) >= 2  # shared out


def test_a_killed_worker_s_trial_is_failed_retried_and_reconciled(
    tmp_path: Path, pg_url: str
) -> None:
    _create(tmp_path, pg_url)
    budget = 6
    victim, other = _worker(tmp_path, pg_url, budget), _worker(tmp_path, pg_url, budget)
    deadline = time.monotonic() + 300
    killed: dict[str, Any] = {}
    while not killed:
        assert time.monotonic() < deadline, "no trial of the first worker ever ran"
        for trial in _study(pg_url).trials:
            host_pid = trial.user_attrs.get("worker", "")
            if trial.state == optuna.trial.TrialState.RUNNING and host_pid.endswith(
                f":{victim.pid}"
            ):
                os.killpg(victim.pid, signal.SIGKILL)  # the worker and its measurement processes
                killed = {"number": trial.number, "run": trial.user_attrs.get("mlflow_run_id")}
                break
        time.sleep(0.2)
    victim.wait(timeout=30)
    _, err = other.communicate(timeout=600)
    assert other.returncode == 0, err
    study = _study(pg_url)
    dead = study.trials[killed["number"]]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert killed["number"] in retried_numbers(study.trials)
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed["number"]]
    assert retry and retry[0].state != optuna.trial.TrialState.RUNNING
    assert retry[0].params == dead.params
    assert finished_count(study) == budget
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    # The killed worker's MLflow run is ended by the reconciler; nothing is left RUNNING.
    proc = run("reconcile", STUDY, "--storage", pg_url, "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tracker = Tracker(load_settings(home=tmp_path))
    if killed["run"]:
        assert tracker.client.get_run(killed["run"]).info.status == "KILLED"
    for trial in study.trials:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            assert tracker.client.get_run(run_id).info.status != "RUNNING"
    assert json.loads(proc.stdout)[STUDY]["runs_killed"] >= (1 if killed["run"] else 0)


def test_a_worker_on_other_hardware_is_refused(tmp_path: Path, pg_url: str) -> None:
    _create(tmp_path, pg_url)
    study = _study(pg_url)
    recorded = dict(study.user_attrs["infertune.fingerprint"], hardware_id="0123456789ab")
    study.set_user_attr("infertune.fingerprint", recorded)
    message = _one_error_line(
        run("worker", STUDY, "--trials", "2", "--storage", pg_url, home=tmp_path)
    )
    assert "measured on hardware 0123456789ab" in message and "--ignore-hardware" in message
