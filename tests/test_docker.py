"""The docker deployment files: valid, secrets from the environment, health-checked."""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def _compose() -> dict:  # type: ignore[type-arg]
    loaded: dict = yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[type-arg]
    return loaded


def test_compose_has_the_platform_services_and_no_baked_secrets() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "mlflow", "migrate", "dashboard", "scheduler", "worker"} <= set(services)
    text = (DOCKER / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text
    for name, service in services.items():
        env = service.get("environment", {})
        for key, value in env.items() if isinstance(env, dict) else []:
            if "postgresql://" in str(value):
                assert "${POSTGRES_PASSWORD:?" in str(value), f"{name}.{key} bakes a secret"
            if re.search("PASSWORD|SECRET|USERNAME", key):
                # Required from the environment: ${VAR:?message}, never a default.
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key}"
    # MLflow keeps its own database; the platform's tables are migrated before use.
    assert any("/mlflow" in part for part in services["mlflow"]["command"])
    assert services["dashboard"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["command"][:2] == ["infertune", "worker"]
    for name in ("postgres", "mlflow", "scheduler"):
        assert "test" in services[name]["healthcheck"], name
    assert services["dashboard"]["ports"] == ["127.0.0.1:8501:8501"]


REQUIRED = {
    "POSTGRES_PASSWORD": "only-for-validation",
    "MLFLOW_ADMIN_USERNAME": "admin",
    "MLFLOW_ADMIN_PASSWORD": "only-for-validation",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "only-for-validation",
    "INFERTUNE_DASHBOARD_PASSWORD": "only-for-validation",
}


def test_mlflow_and_the_dashboard_require_credentials() -> None:
    services = _compose()["services"]
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in mlflow["command"]
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"].startswith("${MLFLOW_ADMIN_USERNAME:?")
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SERVER_SECRET_KEY:?")
    # Its user database survives a restart, and the config file holds no credential.
    assert "mlflow-auth:/mlflow-auth" in mlflow["volumes"]
    ini = configparser.ConfigParser()
    ini.read(DOCKER / "mlflow-basic-auth.ini")
    assert ini["mlflow"]["database_uri"].startswith("sqlite:////mlflow-auth/")
    assert "admin_password" not in ini["mlflow"] and "admin_username" not in ini["mlflow"]
    # Every infertune service signs in to MLflow; the dashboard's login is on by default.
    for name in ("migrate", "dashboard", "scheduler", "worker"):
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_ADMIN_USERNAME:?"), name
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?"), name
    dashboard = services["dashboard"]["environment"]
    assert dashboard["INFERTUNE_DASHBOARD_AUTH"] == "${INFERTUNE_DASHBOARD_AUTH:-password}"
    assert dashboard["INFERTUNE_DASHBOARD_PASSWORD"].startswith("${INFERTUNE_DASHBOARD_PASSWORD:?")
    assert dashboard["INFERTUNE_DASHBOARD_ROOTS"] == "/models"
    assert "INFERTUNE_DASHBOARD_ROOTS=/models" in (DOCKER / "Dockerfile").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet
        return 0


def _mlflow_server(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """``mlflow server`` as compose runs it (basic-auth, compose's config file)."""
    ini = (DOCKER / "mlflow-basic-auth.ini").read_text()
    config = tmp_path / "basic_auth.ini"
    config.write_text(ini.replace("sqlite:////mlflow-auth/", f"sqlite:///{tmp_path}/"))
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH_ADMIN")}
    env = {**base, **env, "MLFLOW_AUTH_CONFIG_PATH": str(config)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--backend-store-uri=sqlite:///{tmp_path}/mlflow.db",
            f"--artifacts-destination={tmp_path}/artifacts",
            "--serve-artifacts",
            "--app-name=basic-auth",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, port


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("flask_wtf") is None,
    reason="MLflow's basic-auth app needs Flask-WTF (mlflow[auth]; the docker image has it)",
)
def test_the_mlflow_server_of_compose_refuses_anonymous_requests(tmp_path: Path) -> None:
    # Without the admin password (compose would refuse; here MLflow itself does).
    refused, _ = _mlflow_server(
        tmp_path, {"MLFLOW_AUTH_ADMIN_USERNAME": "ops", "MLFLOW_FLASK_SERVER_SECRET_KEY": "k"}
    )
    out, _ = refused.communicate(timeout=180)
    assert refused.returncode != 0 and "MLFLOW_AUTH_ADMIN_PASSWORD" in out
    server, port = _mlflow_server(
        tmp_path,
        {
            "MLFLOW_AUTH_ADMIN_USERNAME": "ops",
            "MLFLOW_AUTH_ADMIN_PASSWORD": "a long test password",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        },
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while _get(f"{base}/health") != 200:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "MLflow did not start in 180 s"
            time.sleep(1)
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _get(search) == 401
        assert _get(search, ("ops", "wrong")) == 401
        assert _get(search, ("ops", "a long test password")) == 200
    finally:
        os.killpg(server.pid, 15)
        server.communicate(timeout=60)


def test_dockerfile_is_slim_pinned_non_root_and_health_checked() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    base = next(line for line in text.splitlines() if line.startswith("FROM "))
    assert "slim" in base and ":latest" not in base and base.count(":") == 1
    assert "\nUSER infertune" in text and "HEALTHCHECK" in text
    assert "-c docker/constraints.txt" in text
    pins = [
        line
        for line in (DOCKER / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert pins and all("==" in line for line in pins)
    names = {line.split("==")[0].lower().replace("_", "-") for line in pins}
    assert {"tensorflow-cpu", "mlflow", "optuna", "streamlit", "apscheduler"} <= names


def test_image_installs_the_built_wheel_without_the_source_tree() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    stages = text.split("\nFROM ")[1:]
    assert len(stages) == 2, "a build stage and the final stage"
    build, final = stages
    assert "AS build" in build and "pip wheel" in build
    assert "COPY --from=build" in final and ".whl" in final
    assert " -e " not in final and "COPY platform" not in final
    # The final stage ends in the folder of the data volume, not a source checkout.
    assert final.splitlines()[-1].startswith("CMD ") and "WORKDIR /data" in final


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("docker compose is not installed here (the structure is checked above)")
    proc = subprocess.run(
        [*command, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, **REQUIRED},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for missing in REQUIRED:
        env = {k: v for k, v in {**os.environ, **REQUIRED}.items() if k != missing}
        refused = subprocess.run(
            [*command, "-f", str(DOCKER / "compose.yaml"), "config", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert refused.returncode != 0 and missing in refused.stderr, missing
