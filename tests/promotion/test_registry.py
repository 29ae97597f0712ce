"""Promotion to the MLflow Model Registry: pyfunc model, aliases, rollback, audit trail."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infertune.config import Settings, load_settings
from infertune.exceptions import RegistryError, StorageError
from infertune.promotion.registry import Registry
from infertune.storage.db import Database
from infertune.storage.repository import promotions
from infertune.tuning import queries

from ..test_cli import _one_error_line, run, tune_tiny

STUDY = "registry-study"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real study of demo:digits-cnn (6 configurations) in its own home."""
    home = tmp_path_factory.mktemp("registry-home")
    return {"home": home, "front": tune_tiny(home, STUDY)}


def _settings(tuned: dict[str, Any]) -> Settings:
    return load_settings(home=tuned["home"])


def _registry(tuned: dict[str, Any]) -> Registry:
    settings = _settings(tuned)
    return Registry(settings, Database(settings.database_url))


def _study(tuned: dict[str, Any]) -> Any:
    return queries.load(STUDY, _settings(tuned).database_url)


def _load_and_predict(home: Path, uri: str, x_path: Path) -> np.ndarray:
    """Load a registered model in a fresh process, as a user's service would."""
    out = x_path.with_name("predictions.npy")
    code = (
        "import sys, numpy as np, mlflow.pyfunc as p; "
        "m = p.load_model(sys.argv[1]); np.save(sys.argv[3], m.predict(np.load(sys.argv[2])))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": _uri(home)}
    proc = subprocess.run(
        [sys.executable, "-c", code, uri, str(x_path), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


def _uri(home: Path) -> str:
    return load_settings(home=home).tracking_uri


def _eval_set(home: Path) -> tuple[np.ndarray, np.ndarray]:
    spec = queries.load(STUDY, load_settings(home=home).database_url).user_attrs["infertune.spec"]
    with np.load(spec["data"]) as data:
        return data["x"], data["y"]


def test_promote_load_predict_rollback_history(tuned: dict[str, Any], tmp_path: Path) -> None:
    home, points = tuned["home"], tuned["front"]["points"]
    assert len(points) >= 1
    best = max(points, key=lambda p: p["figures"]["accuracy"])
    proc = run(
        "promote", STUDY, "--trial", str(best["number"]), "--name", "digits",
        "--reason", "first release", "--json", home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert first["version"] == "1" and first["changed"] and first["alias"] == "production"

    # A fresh process loads it by alias and predicts like the trial's variant did.
    x, y = _eval_set(home)
    np.save(tmp_path / "x.npy", x)
    predictions = _load_and_predict(home, "models:/digits@production", tmp_path / "x.npy")
    assert predictions.shape == (len(x), 10)
    accuracy = float(np.mean(predictions.argmax(axis=1) == y))
    trial_accuracy = _study(tuned).trials[best["number"]].user_attrs["figures"]["accuracy"]
    assert accuracy == pytest.approx(trial_accuracy, abs=1e-9)

    # Promoting the same trial again changes nothing.
    again = run("promote", STUDY, "--trial", str(best["number"]), "--name", "digits", home=home)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stderr

    # A second configuration (forced if it is not on the front), then roll back to the first.
    other = next(
        t.number
        for t in _study(tuned).trials
        if t.number != best["number"] and t.state.name == "COMPLETE"
    )
    second = run(
        "promote", STUDY, "--trial", str(other), "--name", "digits", "--force", "--json",
        home=home,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["version"] == "2"
    back = run("rollback", "digits", "--reason", "regression", "--json", home=home)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["version"] == "1"
    assert "no earlier version" in _one_error_line(run("rollback", "digits", home=home))

    shown = json.loads(run("registry", "digits", "--json", home=home).stdout)
    assert shown["aliases"] == {"production": "1"}
    assert [v["version"] for v in shown["versions"]] == ["1", "2"]
    version = shown["versions"][0]
    assert version["study"] == STUDY and version["trial"] == str(best["number"])
    assert version["config"] == best["config"]
    assert version["scenario"] == "single_stream"  # how it was measured to serve
    registry = _registry(tuned)
    assert "digits" in registry.registered_models()
    assert registry.aliases("digits") == {"production": "1"}
    assert registry.version_config("digits", "1") == best["config"]
    with pytest.raises(RegistryError, match="Cannot read version 9 of 'digits'"):
        registry.version_config("digits", "9")
    history = [(h["action"], h["version"], h["previous_version"]) for h in shown["history"]]
    assert history == [("promote", "1", None), ("promote", "2", "1"), ("rollback", "1", "2")]
    assert shown["history"][0]["reason"] == "first release"
    assert shown["history"][0]["figures"]["accuracy"] == trial_accuracy
    table = run("registry", "digits", home=home)
    assert "promotion history" in table.stdout and "rollback" in table.stdout


def test_unsafe_promotions_need_force(tuned: dict[str, Any]) -> None:
    study = _study(tuned)
    on_front = {p["number"] for p in tuned["front"]["points"]}
    off_front = [t for t in study.trials if t.number not in on_front]
    assert off_front, "the tiny space should leave some trials off the front"
    for trial in off_front:
        message = _one_error_line(
            run("promote", STUDY, "--trial", str(trial.number), "--name", "unsafe",
                home=tuned["home"])
        )  # fmt: skip
        assert "--force" in message
    assert "no trial 99" in _one_error_line(
        run("promote", STUDY, "--trial", "99", "--name", "unsafe", home=tuned["home"])
    )
    assert "No registered model named 'unsafe'" in _one_error_line(
        run("registry", "unsafe", home=tuned["home"])
    )


def _failing_commit(session_scope: Any) -> Any:
    @contextmanager
    def scope() -> Iterator[Any]:
        with session_scope() as session:
            yield session
            raise StorageError("simulated: the audit row could not be written")

    return scope


def test_promotion_is_atomic(tuned: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _registry(tuned)
    study = _study(tuned)
    number = tuned["front"]["points"][0]["number"]
    # Registration fails: no version, no alias, no audit row.
    monkeypatch.setattr(
        registry._client,
        "create_model_version",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("registry down")),
    )
    with pytest.raises(RegistryError, match="registry down"):
        registry.promote(study, number, "atomic")
    monkeypatch.undo()
    assert registry.aliases("atomic") == {}
    assert promotions(registry.db, "atomic") == []

    registry.promote(study, number, "atomic")  # version 1 in production
    other = next(
        t.number for t in study.trials if t.number != number and t.state.name == "COMPLETE"
    )
    # The alias cannot move: no audit row.
    monkeypatch.setattr(
        registry._client,
        "set_registered_model_alias",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("alias refused")),
    )
    with pytest.raises(RuntimeError, match="alias refused"):
        registry.promote(study, other, "atomic", force=True)
    monkeypatch.undo()
    assert registry.aliases("atomic") == {"production": "1"}
    assert len(promotions(registry.db, "atomic")) == 1

    # The audit row cannot be written: the alias moves back.
    monkeypatch.setattr(registry.db, "session", _failing_commit(registry.db.session))
    with pytest.raises(StorageError, match="simulated"):
        registry.promote(study, other, "atomic", force=True)
    monkeypatch.undo()
    assert registry.aliases("atomic") == {"production": "1"}
    assert len(promotions(registry.db, "atomic")) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_mlflow_models_serve_answers(tuned: dict[str, Any]) -> None:
    home = tuned["home"]
    registry = _registry(tuned)
    number = tuned["front"]["points"][0]["number"]
    registry.promote(_study(tuned), number, "served")
    port = _free_port()
    # MLflow starts `uvicorn` by name: the venv's bin folder must be on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": _uri(home), "PATH": path}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/served@production",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read()[-2000:] if server.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the model server did not start in 180 s"
                time.sleep(1)
        x, y = _eval_set(home)
        body = json.dumps({"inputs": x[:8].tolist()}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        predictions = np.asarray(answer["predictions"])
        assert predictions.shape == (8, 10)
        assert np.mean(predictions.argmax(axis=1) == y[:8]) >= 0.75
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
