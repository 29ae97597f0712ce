"""The dashboard in a real headless browser (Debian's Chromium, no browser download)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import STUDY

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The Study page's front chart (Vega-Lite draws a small study as SVG).
FRONT_CHART = '[data-testid="stVegaLiteChart"]'
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard-study.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(dash_home: dict[str, Any]) -> Any:
    port = _free_port()
    env = {**os.environ, "INFERTUNE_HOME": str(dash_home["home"])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infertune", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "the dashboard did not start in 120 s"
            time.sleep(0.5)
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _completed(dash_home: dict[str, Any]) -> int:
    import optuna

    from infertune.config import load_settings
    from infertune.tuning.study import storage_url

    url = storage_url(load_settings(home=dash_home["home"]), None)
    study = optuna.load_study(study_name=STUDY, storage=url)
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_study_page_shows_the_front_in_a_browser(server: str, dash_home: dict[str, Any]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    front = sorted(p["number"] for p in dash_home["front"]["points"])
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1400, "height": 1800},
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(f"{server}/study?study={STUDY}", wait_until="domcontentloaded")
        page.wait_for_selector("text=Pareto front", timeout=90_000)
        page.wait_for_selector(f"{FRONT_CHART} .mark-symbol path", timeout=90_000)
        # The points drawn in the front chart: Vega-Lite labels each (ARIA) with its fields.
        labels = page.evaluate(
            f"""() => Array.from(document.querySelectorAll('{FRONT_CHART} .mark-symbol path'))
                .map(p => p.getAttribute('aria-label') || '')"""
        )
        roles = {}
        for label in labels:
            fields = dict(part.split(": ", 1) for part in label.split("; ") if ": " in part)
            if "trial" in fields:  # the baseline and its ring name no trial
                roles[int(fields["trial"])] = fields.get("role", "other trials")
        assert len(roles) == _completed(dash_home)  # every completed trial is drawn
        assert sorted(n for n, r in roles.items() if r.startswith("front")) == front
        for number in front:  # each front point has its link to the trial page
            page.get_by_text(f"Trial {number}:").first.wait_for(timeout=60_000)
        if os.environ.get("INFERTUNE_SCREENSHOT"):
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        # Clicking a front point opens its trial.
        number = front[0]
        box = page.evaluate(
            f"""() => {{
                const point = Array.from(
                    document.querySelectorAll('{FRONT_CHART} .mark-symbol path')
                ).find(p => (p.getAttribute('aria-label') || '').includes('trial: {number};'));
                const r = point.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
            }}"""
        )
        page.mouse.click(*box)
        page.wait_for_url(f"**/trial?*trial={number}*", timeout=60_000)
        page.get_by_text(f"Trial {number}:").first.wait_for(timeout=60_000)
        # "/studies", the menu's name of the default page, is that page (no "Page not found").
        page.goto(f"{server}/studies", wait_until="domcontentloaded")
        page.wait_for_selector("h1:has-text('Studies')", timeout=60_000)
        page.get_by_text(f"{STUDY} —").first.wait_for(timeout=60_000)
        assert page.get_by_text("Page not found").count() == 0
        browser.close()
