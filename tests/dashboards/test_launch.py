"""The Launch page's backend (issue 17): no silent resume, Stop, states in words, order."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from infertune.config import Settings, load_settings
from infertune.exceptions import InputError
from infertune.tuning import launch
from infertune.tuning.launch import (
    default_study_name,
    existing_study,
    launch_study,
    launches,
    stop_launch,
)

from .conftest import STUDY


def _fake_tune(seconds: float, code: int = 0) -> Any:
    """A stand-in for ``infertune tune``: sleeps, then exits with ``code``."""

    def command(*_args: object) -> list[str]:
        script = f"import sys, time; time.sleep({seconds}); sys.exit({code})"
        return [sys.executable, "-c", script, "infertune", "tune"]

    return command


def _wait(settings: Settings, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        records = launches(settings)
        if not any(r["state"] == "running" for r in records):
            return records
        assert time.monotonic() < deadline, records
        time.sleep(0.2)


def test_an_existing_study_is_not_resumed_without_asking(dash_home: dict[str, Any]) -> None:
    settings = load_settings(home=dash_home["home"])
    existing = existing_study(settings, STUDY)
    assert existing is not None and existing["study"] == STUDY
    with pytest.raises(InputError, match=f"Study '{STUDY}' exists .*verifies its front again"):
        launch_study(settings, "demo:digits-cnn", STUDY, 2, actor="t")
    assert existing_study(settings, "no-such-study") is None


def test_an_empty_name_gets_a_new_one() -> None:
    first = default_study_name("demo:digits-cnn", "quick")
    assert first.startswith("digits-cnn-quick-") and first != "digits-cnn-quick"
    assert default_study_name("/models/m.keras", "/models/s.yaml").startswith("m-s-")


def test_no_database_yet_means_no_study_and_none_created(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert existing_study(settings, "x") is None
    assert not list(tmp_path.glob("*.db"))


def test_stop_states_in_words_and_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=tmp_path)
    monkeypatch.setattr(launch, "tune_command", _fake_tune(0))
    done = launch_study(settings, "demo:digits-cnn", "ok", 1, actor="t")
    _wait(settings)
    monkeypatch.setattr(launch, "tune_command", _fake_tune(0, code=1))
    time.sleep(1.1)  # started a second later
    launch_study(settings, "demo:digits-cnn", "bad", 1, actor="t")
    _wait(settings)
    monkeypatch.setattr(launch, "tune_command", _fake_tune(120))
    time.sleep(1.1)
    slow = launch_study(settings, "demo:digits-cnn", "slow", 1, actor="t")
    records = launches(settings)
    assert [r["study"] for r in records] == ["slow", "bad", "ok"]  # newest first
    assert [r["status"] for r in records] == ["running", "failed (exit 1)", "finished"]
    stopped = stop_launch(settings, slow["log"], actor="ann")
    assert stopped["stopped_by"] == "ann"
    records = _wait(settings, 30)
    assert records[0]["status"] == "stopped" and records[0]["study"] == "slow"
    with pytest.raises(InputError, match="'slow' is not running"):
        stop_launch(settings, slow["log"], actor="ann")
    with pytest.raises(InputError, match="No launch with log"):
        stop_launch(settings, str(tmp_path / "elsewhere.log"), actor="ann")
    assert "not running" in str(_raises(lambda: stop_launch(settings, done["log"])))


def _raises(call: Any) -> Exception:
    try:
        call()
    except InputError as exc:
        return exc
    raise AssertionError("no InputError")
