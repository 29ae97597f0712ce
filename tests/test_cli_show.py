"""``studies``, ``show`` and ``front`` on a study written with Optuna directly (no tuning).

The study carries infertune's attributes (spec, objectives, baseline; each trial's config,
figures and reasons), so the commands read it as they read a tuned one, in well under a
second per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from infertune.cli import app
from infertune.config import load_settings
from infertune.storage.db import Database

STUDY = "made-by-hand"
#: States of the trials, in trial order: 0..7.
STATES = ("COMPLETE", "PRUNED", "COMPLETE", "FAIL", "COMPLETE", "PRUNED", "COMPLETE", "RUNNING")
#: Libraries the read commands must not import (seconds of start-up between them).
HEAVY = ("mlflow", "tensorflow", "streamlit", "plotly", "pandas", "scipy", "keras")


def add_study(url: str, name: str = STUDY, states: tuple[str, ...] = STATES) -> optuna.Study:
    """An infertune-like study of the given trial states, made without measuring anything.

    Each trial has its own configuration (prune ratio ``number / 100``); a completed trial
    ``n`` has p95 latency ``8 - n`` ms and accuracy ``0.99 - n / 100``, so every completed
    trial is on the front. Pruned and failed trials carry their reasons.
    """
    study = optuna.create_study(study_name=name, storage=url, directions=["minimize", "maximize"])
    study.set_user_attr("infertune.spec", {"model": "demo:by-hand", "space": {}})
    study.set_user_attr("infertune.spec_hash", "by-hand")
    study.set_user_attr(
        "infertune.objectives", {"latency_p95_ms": "minimize", "accuracy": "maximize"}
    )
    study.set_user_attr(
        "infertune.baseline",
        {
            "latency_p50_ms": 9.0,
            "latency_p95_ms": 10.0,
            "accuracy": 0.99,
            "agreement": 1.0,
            "model_size_mb": 1.0,
        },
    )
    distributions: dict[str, BaseDistribution] = {"prune_ratio": FloatDistribution(0.0, 1.0)}
    trials = []
    for number, state in enumerate(states):
        ratio = number / 100
        attrs: dict[str, Any] = {
            "config": {
                "runtime": "tflite",
                "precision": "int8",
                "prune_ratio": ratio,
                "batch_size": 1,
                "threads": None,
            }
        }
        values = None
        if state == "COMPLETE":
            latency, accuracy = 8.0 - number, 0.99 - number / 100
            attrs.update(
                figures={
                    "latency_p50_ms": latency * 0.9,
                    "latency_p95_ms": latency,
                    "accuracy": accuracy,
                    "agreement": 0.99,
                    "model_size_mb": 0.5,
                },
                feasible=True,
                violations=[],
                speedup_p95=10.0 / latency,
            )
            values = [latency, accuracy]
        elif state == "PRUNED":
            attrs.update(pruned_reason="accuracy 0.5 already breaks the constraint")
        elif state == "FAIL":
            attrs.update(fail_reason="the conversion failed")
        trials.append(
            create_trial(
                state=TrialState[state],
                params={"prune_ratio": ratio},
                distributions=distributions,
                values=values,
                user_attrs=attrs,
            )
        )
    study.add_trials(trials)
    return study


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """A home whose platform database holds the study (with its summary tables)."""
    settings = load_settings(home=tmp_path)
    Database(settings.database_url).ensure_schema()
    add_study(settings.database_url)
    return tmp_path


def cli(home: Path, *args: str) -> str:
    """Run a command in this process; its standard output."""
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def show(home: Path, *args: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(cli(home, "show", STUDY, "--json", *args))
    return shown


def numbers(shown: dict[str, Any]) -> list[int]:
    return [t["number"] for t in shown["trials"]]


def numbers_in(states: tuple[str, ...]) -> list[int]:
    return [n for n, s in enumerate(STATES) if s in states]


def test_show_lists_every_trial_of_a_small_study_with_its_summary(home: Path) -> None:
    shown = show(home)
    assert numbers(shown) == list(range(len(STATES)))
    assert shown["matching"] == len(STATES)
    assert shown["summary"]["trials"]["PRUNED"] == STATES.count("PRUNED")
    assert shown["baseline"]["latency_p95_ms"] == 10.0
    pruned = shown["trials"][1]
    assert pruned["state"] == "PRUNED" and "breaks the constraint" in pruned["pruned_reason"]
    table = cli(home, "show", STUDY)
    assert "the conversion failed" in table and "Showing" not in table


def test_show_state_filters_in_any_case_repeated_or_comma_separated(home: Path) -> None:
    pruned = show(home, "--state", "pruned")
    assert numbers(pruned) == numbers_in(("PRUNED",))
    assert pruned["matching"] == STATES.count("PRUNED")
    both = numbers_in(("PRUNED", "FAIL"))
    assert numbers(show(home, "--state", "Pruned,FAIL")) == both
    assert numbers(show(home, "--state", "fail", "--state", "pruned")) == both
    assert numbers(show(home, "--state", "running")) == numbers_in(("RUNNING",))
    table = cli(home, "show", STUDY, "--state", "pruned")
    assert f"{STATES.count('PRUNED')} of {len(STATES)} trials match" in table


def test_show_front_lists_the_trials_on_the_shown_front(home: Path) -> None:
    front = json.loads(cli(home, "front", STUDY, "--json"))
    on_front = sorted(p["number"] for p in front["points"])
    assert on_front == numbers_in(("COMPLETE",))
    shown = show(home, "--front")
    assert numbers(shown) == on_front
    assert all(t["on_front"] for t in shown["trials"])
    # Filters combine: no pruned trial is on a front.
    assert numbers(show(home, "--front", "--state", "pruned")) == []
    assert "No trials match" in cli(home, "show", STUDY, "--front", "--state", "pruned")


def test_show_limit_pages_from_the_newest_trial(home: Path) -> None:
    newest = len(STATES) - 1
    two = show(home, "--limit", "2")
    assert numbers(two) == [newest - 1, newest]  # the newest two, in trial order
    assert two["matching"] == len(STATES)
    assert numbers(show(home, "--limit", "2", "--offset", "2")) == [newest - 3, newest - 2]
    assert numbers(show(home, "--limit", "0")) == list(range(len(STATES)))
    complete = numbers_in(("COMPLETE",))
    assert numbers(show(home, "--state", "complete", "--limit", "1")) == complete[-1:]
    table = cli(home, "show", STUDY, "--limit", "2")
    assert f"2 of {len(STATES)} trials" in table and "--limit 0" in table
    assert "--offset 2" in table


def test_show_reads_a_storage_without_summary_tables(tmp_path: Path) -> None:
    """An Optuna storage apart from the platform database is filtered over its trials."""
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    add_study(url)
    shown = show(tmp_path / "home", "--storage", url, "--state", "pruned", "--limit", "1")
    assert numbers(shown) == numbers_in(("PRUNED",))[-1:]
    assert shown["matching"] == STATES.count("PRUNED")


@pytest.mark.postgres
def test_show_filters_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    Database(pg_url).ensure_schema()
    add_study(pg_url)
    args = ("--db-url", pg_url, "show", STUDY, "--json", "--state", "complete", "--limit", "2")
    shown = json.loads(cli(tmp_path, *args))
    assert numbers(shown) == numbers_in(("COMPLETE",))[-2:]
    assert shown["matching"] == STATES.count("COMPLETE")


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        timeout=120,
    )


def test_a_bad_state_is_one_line(home: Path) -> None:
    proc = _run(home, "show", STUDY, "--state", "complete,finished")
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "infertune: error: Unknown trial state 'finished' for --state; choose from "
        "complete, pruned, fail, running."
    ]


#: Runs each read command in one fresh process; prints the heavy libraries it imported.
_IMPORTS = f"""
import json, sys
from infertune.cli import main

found = {{}}
for args in (["--help"], ["studies"], ["show", "{STUDY}"], ["front", "{STUDY}"]):
    sys.argv = ["infertune", *args]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
    found[args[0]] = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print("IMPORTED " + json.dumps(found))
"""


def test_read_commands_import_no_heavy_library(home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS],
        capture_output=True,
        text=True,
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED ")]
    found = json.loads(line.removeprefix("IMPORTED "))
    assert found == {"--help": [], "studies": [], "show": [], "front": []}
