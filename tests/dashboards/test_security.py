"""The dashboard's security: login, Host/Origin checks, allowed folders, actors on record.

Each test reproduces a reported failure (issue 18): a dashboard without login serving on
every interface, a DNS-rebinding WebSocket handshake, a Launch path outside any model
folder, a promotion recorded under the server's OS user instead of who clicked.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from infertune import audit, auth
from infertune.config import load_settings
from infertune.exceptions import InputError
from infertune.tuning.launch import launch_study, tune_command

from ..test_cli import _one_error_line
from .conftest import APP, STUDY

PASSWORD = "correct horse battery staple"


def _env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no login configured, and no Streamlit secrets of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERTUNE_DASHBOARD")}
    env.update(INFERTUNE_HOME=str(home), HOME=str(home), **extra)
    return env


def _cli(home: Path, *args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=_env(home, **extra),
        cwd=home,
        timeout=120,
        check=False,
    )


# -- the CLI refuses an open dashboard ---------------------------------------------------


def test_no_login_on_a_non_loopback_address_is_refused(tmp_path: Path) -> None:
    line = _one_error_line(_cli(tmp_path, "dashboard", "--host", "0.0.0.0"))
    assert "Refusing to serve the dashboard on 0.0.0.0 without a login" in line
    line = _one_error_line(
        _cli(tmp_path, "dashboard", "--host", "0.0.0.0", INFERTUNE_DASHBOARD_AUTH="none")
    )
    assert "without a login" in line
    line = _one_error_line(_cli(tmp_path, "dashboard", INFERTUNE_DASHBOARD_AUTH="password"))
    assert "needs an account" in line
    line = _one_error_line(_cli(tmp_path, "dashboard", INFERTUNE_DASHBOARD_AUTH="oidc"))
    assert "needs an [auth] section" in line


def test_add_user_stores_a_salted_hash_only(tmp_path: Path) -> None:
    proc = _cli(tmp_path, "dashboard", "--add-user", "alice", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert proc.returncode == 0, proc.stderr
    users_file = tmp_path / "dashboard-users"
    assert users_file.stat().st_mode & 0o077 == 0
    assert PASSWORD not in users_file.read_text()
    settings = load_settings(home=tmp_path)
    assert auth.check_login(settings, "alice", PASSWORD)
    assert not auth.check_login(settings, "alice", PASSWORD + "!")
    assert not auth.check_login(settings, "bob", PASSWORD)
    short = _cli(tmp_path, "dashboard", "--add-user", "bob", stdin="short\nshort\n")
    assert "at least 12 characters" in _one_error_line(short)
    bad = _cli(tmp_path, "dashboard", "--add-user", "bad name;rm", stdin="")
    assert "account name" in _one_error_line(bad)
    # A damaged users file is named by line, never quoted.
    users_file.write_text(users_file.read_text() + f"garbage {PASSWORD}\n")
    with pytest.raises(InputError, match="Line 3 of the dashboard users file") as err:
        auth.check_login(settings, "alice", PASSWORD)
    assert PASSWORD not in str(err.value)


def test_environment_account_and_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("INFERTUNE_DASHBOARD"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INFERTUNE_DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.setenv("INFERTUNE_DASHBOARD_USER", "ops")
    settings = load_settings(home=tmp_path)
    assert PASSWORD not in repr(settings)
    assert auth.resolve_mode(settings, oidc=False) is auth.AuthMode.PASSWORD
    assert auth.resolve_mode(settings, oidc=True) is auth.AuthMode.OIDC
    assert auth.check_login(settings, "ops", PASSWORD)
    assert not auth.check_login(settings, "admin", PASSWORD)
    assert not auth.check_login(settings, "ops", "")
    secrets_file = tmp_path / ".streamlit" / "secrets.toml"
    secrets_file.parent.mkdir()
    secrets_file.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    assert auth.oidc_configured([secrets_file])
    secrets_file.write_text(f"[auth\n{PASSWORD}")
    with pytest.raises(InputError, match="is not valid TOML") as err:
        auth.oidc_configured([secrets_file])
    assert PASSWORD not in str(err.value)


def test_allowed_hosts() -> None:
    settings = load_settings()
    settings.dashboard_allowed_hosts = "tune.example.com, *.corp.example"
    allowed = auth.allowed_hosts(settings, "127.0.0.1")
    for host in ("127.0.0.1:8501", "localhost:8501", "[::1]:8501", "tune.example.com",
                 "a.corp.example:443"):  # fmt: skip
        assert auth.host_allowed(host, allowed), host
    for host in ("evil.example:8501", "127.0.0.1.evil.example", "", "localhost@evil.example"):
        assert not auth.host_allowed(host, allowed), host
    assert socket.gethostname().lower() in auth.allowed_hosts(settings, "0.0.0.0")
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("::1")
    assert auth.is_loopback("localhost") and not auth.is_loopback("0.0.0.0")


# -- a served dashboard refuses foreign Host and Origin headers ---------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _handshake(port: int, host: str, origin: str | None) -> int:
    """A raw WebSocket handshake to Streamlit's stream; the HTTP status it gets."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: streamlit",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = conn.recv(1024).split(b"\r\n", 1)[0].decode()
    return int(status.split()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("served")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "infertune", "dashboard", "--port", str(port)],
        env=_env(home, INFERTUNE_DASHBOARD_PASSWORD=PASSWORD),
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start in 90 s"
                time.sleep(0.5)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_dns_rebinding_handshakes_are_refused(served: int) -> None:
    port = served
    own = f"127.0.0.1:{port}"
    assert _handshake(port, own, f"http://{own}") == 101
    assert _handshake(port, f"localhost:{port}", f"http://localhost:{port}") == 101
    # A page on evil.example whose name was rebound to 127.0.0.1: same-origin for the
    # browser, but not a host this dashboard answers to.
    rebound = f"evil.example:{port}"
    assert _handshake(port, rebound, f"http://{rebound}") == 403
    assert _handshake(port, rebound, None) == 403
    # A foreign page opening a socket to the real address: refused by its Origin.
    assert _handshake(port, own, "http://evil.example") == 403


# -- the app's sign-in, and who is on record ---------------------------------------------


@pytest.fixture()
def locked_app(dash_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    for key in list(os.environ):
        if key.startswith("INFERTUNE_DASHBOARD"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INFERTUNE_HOME", str(dash_home["home"]))
    monkeypatch.setenv("INFERTUNE_DASHBOARD_USER", "carol")
    monkeypatch.setenv("INFERTUNE_DASHBOARD_PASSWORD", PASSWORD)
    monkeypatch.setenv("INFERTUNE_DASHBOARD_ROOTS", str(dash_home["home"]))
    monkeypatch.delenv("INFERTUNE_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield AppTest.from_file(str(APP), default_timeout=120)


def _sign_in(app: AppTest, name: str, password: str) -> None:
    fields = {t.label: t for t in app.text_input}
    fields["Account"].input(name)
    fields["Password"].input(password)
    next(b for b in app.button if b.label == "Sign in").click().run()


def test_pages_need_a_sign_in_and_actions_carry_the_user(
    locked_app: AppTest, dash_home: dict[str, Any]
) -> None:
    app = locked_app
    app.run()
    assert not app.exception
    assert app.title[0].value == "infertune — sign in"
    assert not app.dataframe  # no page drawn
    _sign_in(app, "carol", "wrong password!")
    assert "Wrong account or password." in [e.value for e in app.error]
    assert not app.dataframe
    _sign_in(app, "carol", PASSWORD)
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value == "Studies"
    assert "Signed in as **carol**" in app.sidebar.caption[0].value
    # Promote from the trial page: the audit row names carol, not the OS user.
    number = dash_home["front"]["points"][0]["number"]
    app.switch_page("views/trial.py")
    app.query_params.update({"study": STUDY, "trial": str(number)})
    app.run()
    form = {t.label: t for t in app.text_input}
    form["Registered model name"].input("sec-model")
    app.checkbox[-1].check()
    next(b for b in app.button if b.label == "Promote").click().run()
    assert not app.exception, [e.value for e in app.exception]
    from infertune.storage.db import Database
    from infertune.storage.repository import promotions

    db = Database(load_settings(home=dash_home["home"]).database_url)
    (row,) = promotions(db, "sec-model")
    assert row["actor"] == "carol"
    # Pausing a schedule is on record too.
    from infertune.scheduling.schedules import add_schedule

    add_schedule(db, STUDY, "0 3 * * *", None, trials=4)
    app.switch_page("views/schedules.py")
    app.run()
    next(b for b in app.button if b.label in ("Pause", "Resume")).click().run()
    changes = audit.entries(load_settings(home=dash_home["home"]), target=STUDY)
    assert changes[0]["actor"] == "carol" and changes[0]["action"] in ("pause", "resume")
    assert app.subheader[0].value == "Changes"


# -- Launch reads only from the configured folders ----------------------------------------


def test_launch_accepts_paths_only_inside_the_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERTUNE_DASHBOARD_ROOTS", raising=False)
    home = tmp_path / "home"
    settings = load_settings(home=home)
    assert settings.launch_roots == [(home / "models").resolve()]
    models = home / "models"
    models.mkdir(parents=True)
    secret = tmp_path / "credentials"
    secret.write_text("[default]\naws_secret_access_key = SECRETKEY\n")
    (models / "escape.yaml").symlink_to(secret)
    for space in (str(secret), "/etc/shadow", str(models / "escape.yaml"), "../../credentials"):
        with pytest.raises(InputError, match="outside the folders the dashboard may read") as err:
            launch_study(settings, "demo:digits-cnn", "s", 1, space, actor="eve")
        assert "SECRETKEY" not in str(err.value) and "INFERTUNE_DASHBOARD_ROOTS" in str(err.value)
    with pytest.raises(InputError, match="outside the folders"):
        launch_study(settings, "/etc/passwd", "s", 1, "quick", data=str(secret), actor="eve")
    with pytest.raises(InputError, match="data .* does not exist"):
        launch_study(settings, "demo:digits-cnn", "s", 1, "quick", data="eval.npz", actor="eve")
    assert not (home / "launches").exists()  # nothing was started
    # A model is passed after "--": a name shaped like an option stays a positional.
    command = tune_command(settings, "--storage=postgresql://x", "--help", 1, "quick")
    assert command[-2:] == ["--", "--storage=postgresql://x"] and "--study=--help" in command


def test_launch_records_who_started_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(home=home)
    (home / "models").mkdir(parents=True)
    space = home / "models" / "bad.yaml"
    space.write_text("knobs: {}\n")  # refused by tune at once: the launch ends quickly
    record = launch_study(settings, "demo:digits-cnn", "who", 1, "bad.yaml", actor="dave")
    assert record["actor"] == "dave" and record["space"] == str(space.resolve())
    (entry,) = audit.entries(settings, target="who")
    assert entry["actor"] == "dave" and entry["action"] == "launch"
    from infertune.tuning.launch import launches

    deadline = time.monotonic() + 120
    while launches(settings)[0]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert launches(settings)[0]["error"]  # tune refused the empty space, as it should
