"""``infertune dashboard``: serve the Streamlit web dashboard on this machine."""

from __future__ import annotations

import importlib.util
import sys
from typing import Annotated

import typer

from infertune import auth
from infertune.cli._common import current_settings, platform_db
from infertune.exceptions import InfertuneError, InputError

__all__ = ["dashboard"]


def _add_user(name: str) -> None:
    """Add or replace a password account (the password is asked twice, never echoed)."""
    settings = current_settings()
    auth.check_name(name)
    password = typer.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
    )
    replaced = auth.add_user(settings.users_file, name, password)
    verb = "Replaced" if replaced else "Added"
    typer.echo(f"{verb} dashboard account '{name}' in {settings.users_file}.", err=True)


def dashboard(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on (0.0.0.0 for every interface: needs a login set up).",
        ),
    ] = "127.0.0.1",
    add_user: Annotated[
        str | None,
        typer.Option(
            "--add-user",
            metavar="NAME",
            help="Add (or change the password of) a dashboard account, then exit.",
        ),
    ] = None,
) -> None:
    """Open the web dashboard: studies, Pareto fronts, trials, promotion, registry, launch.

    It reads the same platform database and MLflow store as the other commands (the global
    --home, --db-url and --mlflow-uri apply). Users sign in with OIDC (an [auth] section
    in .streamlit/secrets.toml) or a password (INFERTUNE_DASHBOARD_PASSWORD, or accounts
    added with --add-user); without either it serves loopback only. Stop it with Ctrl-C.
    """
    import os

    from infertune._resources import dashboard_app

    if add_user is not None:
        _add_user(add_user)
        return
    settings = current_settings()
    mode = auth.resolve_mode(settings, auth.oidc_configured())
    if mode is auth.AuthMode.NONE and not auth.is_loopback(host):
        raise InputError(
            f"Refusing to serve the dashboard on {host} without a login: set "
            "INFERTUNE_DASHBOARD_PASSWORD, add an account with infertune dashboard --add-user "
            "NAME, or configure OIDC in .streamlit/secrets.toml; or keep --host 127.0.0.1."
        )
    if mode is auth.AuthMode.OIDC and importlib.util.find_spec("authlib") is None:
        raise InputError(
            "OIDC login (an [auth] section in .streamlit/secrets.toml) needs Authlib: "
            "pip install 'Authlib>=1.3.2'."
        )
    app_path = dashboard_app()
    if not app_path.is_file():
        raise InfertuneError(
            f"The dashboard app {app_path} is missing; run infertune from its source tree "
            "(pip install -e .)."
        )
    platform_db()  # schema check (and a fresh database created) before the server starts
    env = settings.child_env()
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
        # Checks on every WebSocket: a Host outside the list (DNS rebinding) and a
        # cross-origin page are refused; the agent API stays off.
        "--server.enableCORS", "true", "--server.enableXsrfProtection", "true",
        "--server.enableAgentApi", "false",
    ]  # fmt: skip
    for name in auth.allowed_hosts(settings, host):
        command += ["--server.allowedHosts", name]
    typer.echo(
        f"infertune dashboard on http://{host}:{port} (login: {mode.value}; Ctrl-C stops it)",
        err=True,
    )
    sys.stdout.flush()
    os.execve(sys.executable, command, env)
