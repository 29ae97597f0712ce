"""``infertune dashboard``: serve the Streamlit web dashboard on this machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from infertune.cli._common import current_settings, platform_db
from infertune.exceptions import InfertuneError

__all__ = ["dashboard"]


def dashboard(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on (0.0.0.0 for every interface; no login!)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Open the web dashboard: studies, Pareto fronts, trials, promotion, registry, launch.

    It reads the same platform database and MLflow store as the other commands (the global
    --home, --db-url and --mlflow-uri apply). Stop it with Ctrl-C.
    """
    import os

    from infertune._resources import dashboard_app

    settings = current_settings()
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
    ]  # fmt: skip
    typer.echo(f"infertune dashboard on http://{host}:{port} (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    os.execve(sys.executable, command, env)
