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
        page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=90_000)
        # Trial numbers of the points drawn as "front" in the first (front) chart.
        drawn = page.evaluate(
            """() => {
                const plot = document.querySelector('.js-plotly-plot');
                return plot.data
                    .filter(t => (t.name || '').includes('front'))
                    .flatMap(t => (t.customdata || []).map(c => c[0]));
            }"""
        )
        assert sorted(drawn) == front
        for number in front:  # each front point has its link to the trial page
            page.get_by_text(f"Trial {number}:").first.wait_for(timeout=60_000)
        if os.environ.get("INFERTUNE_SCREENSHOT"):
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        # Clicking a front point opens its trial.
        star = page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace")
        index = page.evaluate(
            """() => document.querySelector('.js-plotly-plot').data
                .findIndex(t => (t.name || '').includes('front'))"""
        )
        number = page.evaluate(
            f"() => document.querySelector('.js-plotly-plot').data[{index}].customdata[0][0]"
        )
        star.nth(index).locator(".point").first.click(force=True)
        page.wait_for_url(f"**/trial?*trial={number}*", timeout=60_000)
        page.get_by_text(f"Trial {number}:").first.wait_for(timeout=60_000)
        # "/studies", the menu's name of the default page, is that page (no "Page not found").
        page.goto(f"{server}/studies", wait_until="domcontentloaded")
        page.wait_for_selector("h1:has-text('Studies')", timeout=60_000)
        page.get_by_text(f"{STUDY} —").first.wait_for(timeout=60_000)
        assert page.get_by_text("Page not found").count() == 0
        browser.close()
