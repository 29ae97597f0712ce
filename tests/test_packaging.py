"""infertune installs anywhere: the wheel carries its search spaces, migrations and dashboard.

The fast tests check that pyproject.toml lists every package and ships every data file; the
slow one builds the wheel, installs it in a clean virtual environment outside the checkout
and runs ``db upgrade``, a 2-trial ``tune`` and the dashboard from there.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from infertune import _resources

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]
PACKAGES: list[str] = SETUPTOOLS["packages"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS["package-dir"]
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS["package-data"]
#: The data packages mapped from the top of the repository (everything but the code root).
MAPPED = {name: ROOT / folder for name, folder in PACKAGE_DIR.items() if name}
SKIPPED_PARTS = ("__pycache__", ".egg-info", ".pyc")

# Slow test limits: installing TensorFlow and friends takes one to three minutes.
INSTALL_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 300
DASHBOARD_START_S = 90
POLL_S = 0.5
TRIALS = 2
RENDER_DASHBOARD = """
from streamlit.testing.v1 import AppTest
from infertune._resources import dashboard_app
app = AppTest.from_file(str(dashboard_app()), default_timeout=60)
app.run()
assert not app.exception, app.exception
print(*(title.value for title in app.title))
"""


def _shipped(path: Path) -> bool:
    return not any(part in str(path) for part in SKIPPED_PARTS)


def test_every_code_package_is_listed_for_the_wheel() -> None:
    code_root = ROOT / PACKAGE_DIR[""]
    found = {
        ".".join(init.parent.relative_to(code_root).parts)
        for init in code_root.rglob("__init__.py")
        if _shipped(init)
    }
    listed_code = {name for name in PACKAGES if not any(name.startswith(m) for m in MAPPED)}
    assert found - listed_code == set(), "add these to [tool.setuptools] packages"
    assert listed_code - found == set(), "these listed packages do not exist"


def test_every_data_file_is_in_the_wheel_mapping() -> None:
    missing = []
    for package, folder in MAPPED.items():
        assert folder.is_dir(), folder
        for path in folder.rglob("*"):
            if path.is_dir() or not _shipped(path):
                continue
            relative = path.relative_to(folder)
            owner = ".".join((package, *relative.parent.parts))
            if path.suffix == ".py" and owner in PACKAGES:
                continue
            globs = PACKAGE_DATA.get(package, [])
            if not any(fnmatch.fnmatch(relative.as_posix(), glob) for glob in globs):
                missing.append(relative.as_posix())
    assert missing == [], "add these to [tool.setuptools.package-data]"


def test_resources_are_found_through_the_installed_package() -> None:
    spaces = _resources.search_spaces_dir()
    assert (spaces / "quick.yaml").is_file() and (spaces / "default.yaml").is_file()
    migrations = _resources.migrations_dir()
    assert (migrations / "env.py").is_file() and any((migrations / "versions").glob("0*.py"))
    assert _resources.dashboard_app().is_file()
    assert (_resources.dashboard_app().parent / "views").is_dir()


# -- slow: the built wheel in a clean environment -------------------------------------------


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the shipped sources: a stale build/ in the checkout cannot leak."""
    source = tmp_path / "source"
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    source.mkdir()
    for name in ("pyproject.toml", readme):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for folder in set(PACKAGE_DIR.values()):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=INSTALL_TIMEOUT_S,
    )
    (wheel,) = dist.glob("infertune-*.whl")
    return wheel


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INFERTUNE_", "MLFLOW_"))
        and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env["INFERTUNE_HOME"] = str(home)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DASHBOARD_START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the dashboard exited: {server.communicate()[0][-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=POLL_S * 4) as response:
                if response.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(POLL_S)
    pytest.fail(f"{url} did not answer 'ok' within {DASHBOARD_START_S} s")


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT_S + 3 * COMMAND_TIMEOUT_S)
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ), COMMAND_TIMEOUT_S)
    python, infertune = venv / "bin" / "python", venv / "bin" / "infertune"
    constraints = ROOT / "docker" / "constraints.txt"
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(wheel)],
        tmp_path,
        dict(os.environ),
        INSTALL_TIMEOUT_S,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _clean_env(tmp_path / "home")

    imported = _run(
        [str(python), "-c", "import infertune; print(infertune.__file__)"],
        outside,
        env,
        COMMAND_TIMEOUT_S,
    )
    assert Path(imported.strip()).is_relative_to(venv)
    assert not Path(imported.strip()).is_relative_to(ROOT)

    _run([str(infertune), "db", "upgrade"], outside, env, COMMAND_TIMEOUT_S)
    current = _run([str(infertune), "db", "current"], outside, env, COMMAND_TIMEOUT_S)
    assert "up to date" in current
    tuned = _run(
        [str(infertune), "tune", "demo:digits-cnn", "--space", "quick", "--trials", str(TRIALS)],
        outside,
        env,
        COMMAND_TIMEOUT_S,
    )
    assert "Pareto front" in tuned

    # The shipped pages render from the installed package (views/ and common.py included).
    rendered = _run([str(python), "-c", RENDER_DASHBOARD], outside, env, COMMAND_TIMEOUT_S)
    assert rendered.split() == ["Studies"]

    port = _free_port()
    server = subprocess.Popen(
        [str(infertune), "dashboard", "--port", str(port)],
        cwd=outside,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
    finally:
        server.terminate()
        try:
            server.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
