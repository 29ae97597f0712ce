"""Dashboard and CLI at scale: pages and commands on studies of 100 to 10,000 trials.

Issue 17's goal: at 10,000 trials every dashboard page draws in under 2 s and ``studies``,
``show --limit 50`` and ``front`` answer in under 1.5 s, on SQLite and on PostgreSQL.

A small real study (``infertune tune``, the ``quick`` space on ``demo:digits-midcnn``) is
run once; synthetic studies of each ``--sizes`` are copied from it (its study attributes
as they are, its trials drawn again and again with varied figures: see
``_synthetic_studies.py``), one study per database, in a SQLite file and in a fresh
PostgreSQL database each. ``infertune db upgrade`` then writes their summaries (timed).

* CLI: wall seconds of fresh ``infertune --db-url URL ...`` processes: ``--help`` (the
  start-up floor), ``studies``, ``show STUDY --limit 50`` and ``front STUDY``; median of
  ``--repeats``, repeats interleaved.
* Pages, in headless Chromium (Debian's, through Playwright): seconds from navigation until
  the page is drawn and idle: the script finished (``stApp``'s script state
  ``notRunning``), no spinner or skeleton left, every Plotly chart drawn, the page's main
  elements present. Per repeat a fresh ``infertune dashboard`` is started and warmed on the
  Registry page (code imported, no study data read), then the Studies page, the Study page
  and the Trial page (a front point) are opened in the order a user clicks through:
  *first* loads (nothing of the study cached on the server), then each again (*again*:
  cached). On the Study page, each section drawn only on demand (a "Show ..." switch:
  history, knob importance, parallel coordinates) is switched on in turn and timed from
  the click until drawn. Median of ``--repeats``.

A host busy with other work inflates every figure: the 1-minute load average before each
size is recorded, and a warning printed when it is 1 or more.

    python benchmarks/dashboard_scale.py [--sizes 100,1000,10000] [--backends sqlite,postgresql]
        [--repeats 3] [--template-dir DIR]

Prints a table per backend (figures over the goal marked ``!``) and writes
``benchmarks/results/dashboard-scale-<model>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _results import write_results
from _synthetic_studies import (
    CLI,
    Template,
    child_env,
    load_template,
    make_study,
    tune_template,
)

from infertune.storage.db import normalize_url

#: Issue 17's goal, at 10,000 trials.
GOAL_PAGE_S = 2.0
GOAL_CLI_S = 1.5
GOAL_TRIALS = 10_000
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: A 1-minute load average from this on, before a size is measured, marks the host busy.
BUSY_LOAD = 1.0
#: Seconds one page may take before it counts as not drawn.
PAGE_TIMEOUT_S = 300

#: The time (ms) since navigation, or since the click armed by ARM_JS, once the page is
#: drawn and idle; false until then.
DRAWN_JS = """
([selectors, anyOf, texts, sinceClick]) => {
  // The click's rerun has not begun. A cached section can rerun between two frames, the
  // script state never seen "running": then the charts it added tell that it ran.
  if (sinceClick && !window.__rerun && window.__charts() === window.__chartsBefore) return false;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  const done = () => performance.now() - (sinceClick ? window.__clickAt : 0);
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')) {
    return false;
  }
  if (document.querySelector('[data-testid="stException"]')) return done();
  for (const s of selectors) { if (!document.querySelector(s)) return false; }
  if (anyOf.length && !anyOf.some(s => document.querySelector(s))) return false;
  const text = document.body.innerText;
  for (const t of texts) { if (!text.includes(t)) return false; }
  for (const chart of document.querySelectorAll('[data-testid="stPlotlyChart"]')) {
    // Charts in a closed expander or another tab are not drawn until shown.
    if (chart.offsetParent !== null && !chart.querySelector('.main-svg')) return false;
  }
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    // Vega draws on a canvas past 2,000 marks, as SVG below.
    if (chart.offsetParent === null) continue;
    const canvas = chart.querySelector('canvas.marks');
    if (!(canvas && canvas.width > 0) && !chart.querySelector('svg.marks .mark-symbol path')) {
      return false;
    }
  }
  return done();
}
"""
#: Before a click: note the time and watch for the rerun it starts.
ARM_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  window.__rerun = false;
  if (window.__watch) window.__watch.disconnect();
  window.__watch = new MutationObserver(() => { window.__rerun = true; });
  window.__watch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  window.__charts = () => document.querySelectorAll(
    '[data-testid="stPlotlyChart"], [data-testid="stVegaLiteChart"]').length;
  window.__chartsBefore = window.__charts();
  window.__clickAt = performance.now();
}
"""
#: The Study page's switches that draw a section ("Show the history", ...).
SECTIONS_JS = """
() => Array.from(document.querySelectorAll('input[role="switch"]'))
  .map(i => i.getAttribute('aria-label') || '')
  .filter(label => label.startsWith('Show'))
"""
ERRORS_JS = """
() => Array.from(document.querySelectorAll(
    '[data-testid="stException"], [data-testid="stAlertContentError"]'
  )).map(e => e.innerText.split('\\n')[0].slice(0, 200))
"""
TABLES = ['[data-testid="stDataFrame"]', '[data-testid="stTable"]']
#: The Study page's front chart, drawn (Vega-Lite: a canvas at thousands of points).
FRONT_CHART = '[data-testid="stVegaLiteChart"] .marks'


# -- databases -----------------------------------------------------------------------------


class Postgres:
    """Fresh databases on a PostgreSQL server, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = sa.create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
        self.made: list[str] = []

    def reachable(self) -> str | None:
        """``None`` when the server answers, else why not (one line)."""
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            return str(exc).strip().splitlines()[0]
        return None

    def create(self, name: str) -> str:
        """A new empty database; its URL."""
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        url: str = sa.make_url(self.server).set(database=name).render_as_string(hide_password=False)
        return url

    def drop_all(self) -> None:
        """Drop every database made here."""
        with self.admin.connect() as conn:
            for name in self.made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.made.clear()
        self.admin.dispose()


# -- CLI -----------------------------------------------------------------------------------


def cli(template: Template, url: str, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """One fresh CLI process on the database ``url``: wall seconds and the result."""
    command = [*CLI, "--db-url", url, "--mlflow-uri", template.mlflow_uri, *args]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=child_env(template.home)
    )
    return time.perf_counter() - start, done


def show_has_limit(template: Template) -> bool:
    """Whether this infertune's ``show`` takes ``--limit`` (issue 17 adds it)."""
    _, done = cli(template, "sqlite://", "show", "--help")
    return "--limit" in done.stdout


def cli_timings(
    template: Template, url: str, study: str, repeats: int, limit: bool
) -> dict[str, Any]:
    """Median wall seconds of each command, repeats interleaved."""
    show = ["show", study, "--limit", "50"] if limit else ["show", study]
    commands = {
        "--help": ["--help"],
        "studies": ["studies"],
        "show --limit 50" if limit else "show (every trial)": show,
        "front": ["front", study],
    }
    runs: dict[str, list[float]] = {name: [] for name in commands}
    errors: dict[str, str] = {}
    for _ in range(repeats):
        for name, args in commands.items():
            wall, done = cli(template, url, *args)
            runs[name].append(wall)
            if done.returncode != 0:
                errors[name] = (done.stderr.strip().splitlines() or ["?"])[-1][:300]
    return {
        name: {
            "median_s": statistics.median(walls),
            "runs_s": walls,
            "error": errors.get(name),
        }
        for name, walls in runs.items()
    }


def front_number(template: Template, url: str, study: str) -> int | None:
    """A trial on the study's front (the Trial page's subject), from ``front --json``."""
    _, done = cli(template, url, "front", study, "--json")
    if done.returncode != 0:
        return None
    points = json.loads(done.stdout).get("points") or []
    return int(points[0]["number"]) if points else None


# -- pages ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dashboard(template: Template, url: str, log: Path) -> Iterator[tuple[str, float]]:
    """A fresh ``infertune dashboard`` on ``url``: its address and seconds to start."""
    port = _free_port()
    command = [
        *CLI, "--db-url", url, "--mlflow-uri", template.mlflow_uri,
        "dashboard", "--port", str(port),
    ]  # fmt: skip
    start = time.perf_counter()
    with log.open("a") as out:
        proc = subprocess.Popen(
            command,
            env=child_env(template.home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = start + 120
        while True:
            if proc.poll() is not None:
                sys.exit(f"the dashboard stopped (exit {proc.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.perf_counter() > deadline:
                    sys.exit(f"the dashboard did not start in 120 s; see {log}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", time.perf_counter() - start
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_drawn(page: Any, wanted: dict[str, list[str]], since_click: bool) -> dict[str, Any]:
    """Seconds until drawn and idle (since navigation or the armed click), and errors shown."""
    try:
        handle = page.wait_for_function(
            DRAWN_JS,
            arg=[
                wanted.get("selectors", []),
                wanted.get("any_of", []),
                wanted.get("texts", []),
                since_click,
            ],
            polling="raf",
            timeout=PAGE_TIMEOUT_S * 1000,
        )
    except Exception as exc:  # Playwright's TimeoutError, or the page went away
        return {"s": None, "error": f"not drawn: {str(exc).splitlines()[0][:200]}"}
    seconds = float(handle.json_value()) / 1000
    shown = page.evaluate(ERRORS_JS)
    return {"s": seconds, "error": "; ".join(shown) if shown else None}


def load_page(page: Any, address: str, wanted: dict[str, list[str]]) -> dict[str, Any]:
    """Open ``address``; seconds from navigation until drawn and idle, and any error shown."""
    page.goto(address, wait_until="commit", timeout=PAGE_TIMEOUT_S * 1000)
    return _wait_drawn(page, wanted, since_click=False)


def open_sections(page: Any) -> dict[str, dict[str, Any]]:
    """Switch on each of the Study page's sections in turn: seconds from click until drawn."""
    out = {}
    for label in page.evaluate(SECTIONS_JS):
        switch = page.locator(f'[data-testid="stCheckbox"]:has(input[aria-label="{label}"]) label')
        page.evaluate(ARM_JS)
        switch.first.click()
        out[label] = _wait_drawn(page, {}, since_click=True)
    return out


def page_timings(
    template: Template, url: str, study: str, trial: int | None, repeats: int, log: Path
) -> dict[str, Any]:
    """First and cached loads of the Studies, Study and Trial pages; fresh server per repeat."""
    from playwright.sync_api import sync_playwright

    pages: dict[str, tuple[str, dict[str, list[str]]]] = {
        "Studies": ("/", {"selectors": ["h1"], "any_of": TABLES, "texts": ["Studies"]}),
        "Study": (
            f"/study?study={study}",
            {"selectors": ["h1", FRONT_CHART], "any_of": TABLES},
        ),
    }
    if trial is not None:
        pages["Trial"] = (
            f"/trial?study={study}&trial={trial}",
            {"selectors": ["h1"], "texts": [f"Trial {trial}"]},
        )
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"first": [], "again": []} for name in pages
    }
    starts: list[float] = []
    warmups: list[float | None] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--enable-unsafe-swiftshader",  # WebGL in software, should a plot use it
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            for _ in range(repeats):
                with dashboard(template, url, log) as (base, started):
                    starts.append(started)
                    context = browser.new_context(viewport={"width": 1400, "height": 1800})
                    page = context.new_page()
                    warm = load_page(page, f"{base}/registry", {"selectors": ["h1"]})
                    warmups.append(warm["s"])
                    for load in ("first", "again"):
                        for name, (path, wanted) in pages.items():
                            runs[name][load].append(load_page(page, base + path, wanted))
                            if name != "Study" or runs[name][load][-1]["s"] is None:
                                continue
                            for label, result in open_sections(page).items():
                                runs.setdefault(f"Study: {label}", {"first": [], "again": []})
                                runs[f"Study: {label}"][load].append(result)
                    context.close()
        finally:
            browser.close()
    out: dict[str, Any] = {
        "dashboard_start_s": statistics.median(starts),
        "warmup_page_s": statistics.median([w for w in warmups if w is not None] or [0.0]),
    }
    for name, loads in runs.items():
        entry: dict[str, Any] = {}
        for load, results in loads.items():
            seconds = [r["s"] for r in results if r["s"] is not None]
            entry[f"{load}_s"] = statistics.median(seconds) if seconds else None
            entry[f"{load}_runs_s"] = [r["s"] for r in results]
            errors = sorted({r["error"] for r in results if r["error"]})
            if errors:
                entry[f"{load}_errors"] = errors
        out[name] = entry
    return out


# -- one database ------------------------------------------------------------------------


def measure(
    template: Template,
    source: Any,
    url: str,
    size: int,
    args: argparse.Namespace,
    limit: bool,
    log: Path,
) -> dict[str, Any]:
    """Make one study of ``size`` trials in ``url`` and time the CLI and pages on it."""
    study = f"scale-{size}"
    made = make_study(url, study, source, size, args.seed)
    load = os.getloadavg()[0]  # other work on the host inflates every figure below
    if load >= BUSY_LOAD:
        print(f"  warning: the host is busy (load average {load:.1f}): figures are inflated")
    print(f"  {size:>6} trials: written in {made:.1f} s; db upgrade ...", flush=True)
    upgrade_s, done = cli(template, url, "db", "upgrade")
    result: dict[str, Any] = {
        "study": study,
        "load_average_1m": load,
        "write_s": made,
        "db_upgrade_s": upgrade_s,
        "db_upgrade_output": done.stdout.strip(),
    }
    if done.returncode != 0:
        result["error"] = f"db upgrade failed: {done.stderr.strip()[-300:]}"
        print(f"  {result['error']}")
        return result
    print(f"  {size:>6} trials: db upgrade {upgrade_s:.1f} s; CLI ...", flush=True)
    result["cli"] = cli_timings(template, url, study, args.repeats, limit)
    if args.pages:
        trial = front_number(template, url, study)
        result["trial_page_trial"] = trial
        print(f"  {size:>6} trials: pages (trial {trial}) ...", flush=True)
        result["pages"] = page_timings(template, url, study, trial, args.repeats, log)
    return result


# -- report --------------------------------------------------------------------------------


def _cell(seconds: float | None, goal: float | None, error: Any = None) -> str:
    if seconds is None:
        return "fail" if error else "—"
    mark = "!" if goal is not None and seconds >= goal else ""
    if error:
        mark += "E"
    return f"{seconds:.2f}{mark}"


def _loads(entry: dict[str, Any]) -> str:
    """``first / again`` seconds of one page, marked against the goal."""
    return (
        _cell(entry.get("first_s"), GOAL_PAGE_S, entry.get("first_errors"))
        + " / "
        + _cell(entry.get("again_s"), GOAL_PAGE_S, entry.get("again_errors"))
    )


def _failed(result: Any) -> bool:
    """Whether a size's result holds an error (the dashboard's log may tell why)."""
    if not isinstance(result, dict):
        return False
    pages = [e for e in (result.get("pages") or {}).values() if isinstance(e, dict)]
    return (
        "error" in result
        or any(e["error"] for e in (result.get("cli") or {}).values())
        or any(k.endswith("_errors") for e in pages for k in e)
    )


def over_goal(sizes: dict[str, Any]) -> list[str]:
    """Every figure over the goal (any size; the goal itself is at 10,000 trials)."""
    out = []
    for size, r in sizes.items():
        for name, entry in (r.get("cli") or {}).items():
            if name != "--help" and entry["median_s"] >= GOAL_CLI_S:
                out.append(f"{size} trials: {name} {entry['median_s']:.2f} s")
        for name, entry in (r.get("pages") or {}).items():
            if not isinstance(entry, dict):
                continue
            for load in ("first", "again"):
                s = entry.get(f"{load}_s")
                if s is None or s >= GOAL_PAGE_S:
                    shown = "not drawn" if s is None else f"{s:.2f} s"
                    out.append(f"{size} trials: {name} ({load}) {shown}")
    return out


def print_table(backend: str, sizes: dict[str, Any]) -> None:
    """One row per size: setup, CLI and page seconds; then the Study page's sections."""
    print(f"\n{backend}: seconds (median; ! at or over the goal, E an error shown)")
    head = (
        f"{'trials':>7} {'write':>6} {'upgrade':>7} | {'--help':>6} {'studies':>7} {'show':>6} "
        f"{'front':>6} | {'Studies 1st/again':>17} {'Study 1st/again':>17} "
        f"{'Trial 1st/again':>17} | {'start':>5}"
    )
    print(head)
    print("-" * len(head))
    for size, r in sizes.items():
        if "error" in r:
            print(f"{size:>7} {r['error']}")
            continue
        clis = list((r.get("cli") or {}).values())
        cli_cells = [
            _cell(e["median_s"], None if i == 0 else GOAL_CLI_S, e["error"])
            for i, e in enumerate(clis)
        ]
        pages = r.get("pages") or {}
        page_cells = [_loads(pages.get(name) or {}) for name in ("Studies", "Study", "Trial")]
        start = pages.get("dashboard_start_s")
        print(
            f"{size:>7} {r['write_s']:>6.1f} {r['db_upgrade_s']:>7.2f} | "
            + " ".join(f"{c:>{w}}" for c, w in zip(cli_cells, (6, 7, 6, 6), strict=False))
            + " | "
            + " ".join(f"{c:>17}" for c in page_cells)
            + (f" | {start:>5.1f}" if start is not None else " |     —")
        )
    sections = sorted(
        {k for r in sizes.values() for k in (r.get("pages") or {}) if k.startswith("Study: ")}
    )
    if sections:
        print("Study page sections, seconds from switching one on until drawn (first / again):")
        for size, r in sizes.items():
            pages = r.get("pages") or {}
            cells = [f"{k[7:]} {_loads(pages[k])}" for k in sections if k in pages]
            print(f"{size:>7}  " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="trials per study, commas")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="demo:digits-midcnn", help="of the template study")
    parser.add_argument("--space", default="quick", help="of the template study")
    parser.add_argument("--template-trials", type=int, default=12)
    parser.add_argument("--template-study", default="scale-template")
    parser.add_argument(
        "--template-dir",
        type=Path,
        default=None,
        help="keep the template study here and reuse it on the next run (default: temporary)",
    )
    parser.add_argument("--pg-server", default=PG_SERVER, help="where PostgreSQL databases go")
    parser.add_argument("--no-pages", dest="pages", action="store_false", help="CLI only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        sys.exit(f"unknown backend(s): {', '.join(sorted(unknown))} (sqlite, postgresql)")
    pages_skipped = None
    if args.pages and CHROMIUM is None:
        pages_skipped = "Debian's chromium is not installed (apt-get install chromium)"
    elif args.pages:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            pages_skipped = "playwright is not installed (pip install playwright)"
    if pages_skipped:
        print(f"pages skipped: {pages_skipped}")
        args.pages = False

    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="infertune-scale-") as tmp_name:
        tmp = Path(tmp_name)
        template_start = time.perf_counter()
        template = tune_template(
            args.template_dir or tmp / "template",
            args.model,
            args.space,
            args.template_trials,
            args.template_study,
        )
        template_s = time.perf_counter() - template_start
        source = load_template(template)
        limit = show_has_limit(template)
        if not limit:
            print("show has no --limit here: timing `show STUDY` (every trial) instead")
        log = tmp / "dashboard.log"
        for backend in backends:
            print(f"{backend}:", flush=True)
            if backend == "sqlite":
                results[backend] = {
                    str(n): measure(
                        template, source, f"sqlite:///{tmp / f'scale-{n}.db'}", n, args, limit, log
                    )
                    for n in sizes
                }
                continue
            pg = Postgres(args.pg_server)
            why = pg.reachable()
            if why is not None:
                print(f"  PostgreSQL at {args.pg_server} is not reachable ({why}): skipped")
                results[backend] = {"skipped": f"not reachable: {why}"}
                continue
            try:
                results[backend] = {
                    str(n): measure(
                        template,
                        source,
                        pg.create(f"infertune_bench_{os.getpid()}_{n}"),
                        n,
                        args,
                        limit,
                        log,
                    )
                    for n in sizes
                }
            finally:
                pg.drop_all()
        if log.is_file() and any(_failed(r) for b in results.values() for r in b.values()):
            print(f"\ndashboard log (last lines):\n{log.read_text()[-2000:]}")

    goal: dict[str, Any] = {}
    for backend, by_size in results.items():
        if "skipped" in by_size:
            print(f"\n{backend}: skipped ({by_size['skipped']})")
            goal[backend] = None
            continue
        print_table(backend, by_size)
        over = over_goal(by_size)
        at_goal = by_size.get(str(GOAL_TRIALS))
        goal[backend] = {
            "over_goal": over,
            "meets_goal_at_10000": None
            if at_goal is None
            else not [o for o in over if o.startswith(f"{GOAL_TRIALS} trials")]
            and "error" not in at_goal
            and (not args.pages or "pages" in at_goal),
        }
        for line in over:
            print(f"  over the goal: {line}")
    elapsed = time.perf_counter() - started
    print(f"\ntook {elapsed / 60:.1f} min")
    write_results(
        args.out,
        "dashboard-scale",
        args.model,
        {
            "goal": {"page_s": GOAL_PAGE_S, "cli_s": GOAL_CLI_S, "at_trials": GOAL_TRIALS},
            "sizes": sizes,
            "repeats": args.repeats,
            "template": {
                "space": args.space,
                "trials": args.template_trials,
                "seconds": template_s,
                "reused": template.reused,
            },
            "busy_load_average": BUSY_LOAD,
            "show_limit": limit,
            "pages_skipped": pages_skipped,
            "chromium": CHROMIUM,
            "results": results,
            "goal_check": goal,
            "elapsed_s": elapsed,
        },
    )


if __name__ == "__main__":
    main()
