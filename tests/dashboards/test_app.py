"""Every page of the dashboard through Streamlit's AppTest, on a small real study."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from infertune.config import load_settings
from infertune.tuning.launch import launches

from .conftest import APP, STUDY


@pytest.fixture()
def app(dash_home: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("INFERTUNE_HOME", str(dash_home["home"]))
    for key in [k for k in os.environ if k.startswith("INFERTUNE_DASHBOARD")]:
        monkeypatch.delenv(key)  # no login: loopback, as the CLI's default
    monkeypatch.setenv("INFERTUNE_DASHBOARD_ROOTS", str(dash_home["home"]))
    monkeypatch.delenv("INFERTUNE_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()  # settings are cached per server: this test's home
    yield AppTest.from_file(str(APP), default_timeout=120)


def _open(app: AppTest, page: str, **params: str) -> AppTest:
    app.switch_page(page)
    app.query_params.update(params)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _submit(app: AppTest, label: str) -> None:
    next(b for b in app.button if b.label == label).click().run()


def _texts(app: AppTest) -> str:
    parts = [m.value for m in app.markdown] + [c.value for c in app.caption]
    parts += [e.value for e in app.success] + [e.value for e in app.error]
    parts += [e.value for e in app.warning] + [e.value for e in app.info]
    return "\n".join(str(p) for p in parts)


def test_studies_page_lists_the_study(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert app.title[0].value == "Studies"
    table = app.dataframe[0].value
    assert STUDY in list(table["study"])
    row = table[table["study"] == STUDY].iloc[0]
    assert row["complete"] + row["pruned"] + row["failed"] == 6
    assert any(STUDY in link.label for link in app.get("page_link"))
    app.text_input[0].input("no-such-study").run()
    assert "No study matches" in _texts(app)


def test_study_page_draws_front_trials_history_importance(
    app: AppTest, dash_home: dict[str, Any]
) -> None:
    _open(app, "views/study.py", study=STUDY)
    assert app.selectbox[0].value == STUDY
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["on the front"] == str(len(dash_home["front"]["points"]))
    assert _chart(app, "front")["data"]
    # The costly sections are drawn only once opened.
    assert not any("history" in k or "importance" in k for k in _charts(app))
    for section in ("show-knobs", "show-history", "show-importance", "show-compare"):
        app.toggle(key=section).set_value(True).run()
        assert not app.exception, [e.value for e in app.exception]
    assert _chart(app, "history-latency_p95_ms")["data"]
    assert _chart(app, "importance-latency_p95_ms")["data"]
    front_table = app.dataframe[0].value
    assert sorted(front_table["trial"]) == sorted(p["number"] for p in dash_home["front"]["points"])
    # Verified: each point's interval and ties; two repeats say their low coverage.
    assert {"latency_p95_ms interval", "tied with"} <= set(front_table.columns)
    assert all(str(v).startswith("[") for v in front_table["latency_p95_ms interval"])
    assert "order-statistic interval of the median over 2 repeats" in _texts(app)
    assert "short of 90%" in _texts(app)
    assert len(app.dataframe[1].value) == 6  # all trials
    assert [s.value for s in app.subheader] == [
        "Pareto front",
        "All trials",
        "Knobs against objectives",
        "Optimisation history",
        "Knob importance",
        "Compare studies",
    ]
    app.radio[0].set_value("runtime").run()
    assert not app.exception


def _charts(app: AppTest) -> dict[str, dict[str, Any]]:
    return {c.proto.id: json.loads(c.proto.spec) for c in app.get("plotly_chart")}


def _chart(app: AppTest, key: str) -> dict[str, Any]:
    return next(v for k, v in _charts(app).items() if k.endswith(key) or key in k)


def test_study_page_importance_by_knob_name_with_a_reliability_warning(app: AppTest) -> None:
    _open(app, "views/study.py", study=STUDY)
    app.toggle(key="show-importance").set_value(True).run()
    # 6 trials: too few for fANOVA to be trusted, and the page says so.
    assert "only 6 complete trials; with fewer than 20" in _texts(app)
    spec = _chart(app, "importance-latency_p95_ms")
    knobs = set(spec["data"][0]["y"])
    assert knobs and knobs <= {"runtime", "precision", "prune_ratio"}, knobs


def test_study_page_filters_exports_links_and_plots(app: AppTest) -> None:
    _open(app, "views/study.py", study=STUDY)
    front = len(app.dataframe[0].value)
    assert "MLflow run" in app.dataframe[0].value.columns
    assert app.dataframe[1].value["MLflow run"].notna().sum() >= front
    downloads = [d.proto.label for d in app.get("download_button")]
    assert downloads == [
        "Download the front (CSV)",
        "Download the front (JSON)",
        "Download the trials (CSV)",
        "Download the trials (JSON)",
    ]
    app.toggle(key="show-knobs").set_value(True).run()
    assert _chart(app, "parallel")["data"][0]["type"] == "parcoords"
    assert _chart(app, "slices")["data"][0]["type"] == "scatter"
    next(c for c in app.checkbox if c.label == "Front only").check().run()
    assert len(app.dataframe[1].value) == front  # the trials table, front only
    assert f"Trials 1-{front} of {front} matching the filters (6 in all)" in _texts(app)
    runtime = next(m for m in app.multiselect if m.label == "runtime")
    runtime.set_value(["tflite"]).run()
    assert set(app.dataframe[1].value["runtime"]) <= {"tflite"}


def test_study_and_trial_notes_are_kept(app: AppTest, dash_home: dict[str, Any]) -> None:
    from infertune.tuning import queries
    from infertune.tuning.study import storage_url

    _open(app, "views/study.py", study=STUDY)
    next(t for t in app.text_area if t.label == "Study note").input("int8 needs a recheck")
    next(b for b in app.button if b.key == "save-study-note").click().run()
    assert "int8 needs a recheck" in _texts(app)
    _open(app, "views/trial.py", study=STUDY, trial="1")
    next(t for t in app.text_area if t.label == "Trial note").input("flaky timing")
    next(b for b in app.button if b.key == "save-trial-note").click().run()
    assert "flaky timing" in _texts(app)
    url = storage_url(load_settings(home=dash_home["home"]), None)
    stored = queries.notes(queries.load(STUDY, url))
    assert stored["study"]["text"] == "int8 needs a recheck"
    assert stored["trials"][1]["text"] == "flaky timing"
    queries.set_note(queries.load(STUDY, url), "")  # cleared by an empty text
    assert queries.notes(queries.load(STUDY, url))["study"] is None


def test_front_figure_draws_intervals_and_joins_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APP.parent))
    from common import front_figure

    def point(number: int, p95: float, span: list[float], ties: list[int]) -> dict[str, Any]:
        return {
            "number": number,
            "figures": {"latency_p95_ms": p95, "accuracy": 0.95},
            "config": {"runtime": "tflite", "precision": "int8"},
            "precision": "int8",
            "speedup_p95": 5 / p95,
            "feasible": True,
            "violations": [],
            "on_front": True,
            "verified": True,
            "kept": True,
            "error": {"latency_p95_ms": span},
            "ties_with": ties,
            "dominated_by": [],
        }

    plot = {
        "x": "latency_p95_ms",
        "y": "accuracy",
        "baseline": {},
        "points": [point(0, 1.0, [0.96, 1.04], [1]), point(1, 1.1, [1.03, 1.18], [0])],
    }
    traces = {t.name: t for t in front_figure(plot, "precision").data}
    stars = traces["int8 · front, verified"]
    assert list(stars.error_x.array) == pytest.approx([0.04, 0.08])
    assert list(stars.error_x.arrayminus) == pytest.approx([0.04, 0.07])
    assert stars.error_y.array is None  # accuracy is exact: no bar
    assert list(traces["tie (intervals overlap)"].x) == [1.0, 1.1, None]
    assert "tied with #1" in stars.hovertext[0]


def test_front_figure_reads_in_dark_mode_and_on_log_axes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APP.parent))
    from common import BASELINE_COLOUR, MANY_POINTS, front_figure

    def point(number: int, config: dict[str, Any], on_front: bool) -> dict[str, Any]:
        return {
            "number": number,
            "figures": {"latency_p95_ms": 0.002 * (number + 1), "accuracy": 0.9},
            "config": config,
            "precision": config["precision"],
            "speedup_p95": None,
            "feasible": True,
            "violations": [],
            "on_front": on_front,
            "verified": False,
            "kept": False,
            "error": {},
            "ties_with": [],
            "dominated_by": [],
        }

    tflite = {"runtime": "tflite", "precision": "int8"}
    points = [point(0, {"runtime": "tf", "precision": "fp32"}, False), point(1, tflite, True)]
    plot = {"x": "latency_p95_ms", "y": "accuracy", "baseline": {"latency_p95_ms": 0.01,
            "accuracy": 0.9}, "points": points}  # fmt: skip
    figure = front_figure(plot, "precision")
    traces = {t.name: t for t in figure.data}
    assert traces["baseline (tf fp32)"].marker.color == BASELINE_COLOUR != "black"
    # Trial 0 ran the baseline's settings: ringed.
    assert list(traces["trial with the baseline's settings"].customdata) == [[0]]
    # Log axis with plain ticks: 0.002 ms is not "2m" (SI milli) but 0.002 ms.
    assert figure.layout.xaxis.type == "log" and figure.layout.xaxis.exponentformat == "none"
    assert list(figure.layout.xaxis.ticktext) == ["0.001 ms", "0.002 ms", "0.005 ms", "0.01 ms",
                                                  "0.02 ms"]  # fmt: skip
    assert "(log scale)" in figure.layout.xaxis.title.text
    names = [t.name for t in figure.data]
    assert names.index("fp32 · other trials") < names.index("int8 · front")  # front on top
    crowd = [point(n, tflite, False) for n in range(MANY_POINTS + 1)]
    dense = front_figure({**plot, "points": crowd}, "precision")
    (others,) = [t for t in dense.data if t.name == "int8 · other trials"]
    assert others.type == "scattergl" and others.marker.size == 4


def test_trial_page_says_force_as_the_form_does(app: AppTest, dash_home: dict[str, Any]) -> None:
    front = {p["number"] for p in dash_home["front"]["points"]}
    off_front = next(n for n in range(6) if n not in front)
    _open(app, "views/trial.py", study=STUDY, trial=str(off_front))
    next(t for t in app.text_input if t.label == "Registered model name").input("off-model")
    app.checkbox[-1].check()
    _submit(app, "Promote")
    errors = " ".join(e.value for e in app.error)
    assert "Tick *Force* to promote it anyway" in errors and "--force" not in errors


def test_trial_page_shows_figures_and_promotes(app: AppTest, dash_home: dict[str, Any]) -> None:
    number = dash_home["front"]["points"][0]["number"]
    _open(app, "views/trial.py", study=STUDY, trial=str(number))
    assert app.subheader[0].value.startswith(f"Trial {number}:")
    assert "MLflow run" in _texts(app)
    latency = _chart(app, "latency")  # the latency distribution
    labels = {a["text"].split()[0]: a for a in latency["layout"]["annotations"]}
    assert set(labels) == {"p50", "p95"} and labels["p50"]["text"].endswith(" ms")
    # On opposite sides of their lines, so close percentiles do not overlap.
    assert labels["p50"]["xanchor"] != labels["p95"]["xanchor"]
    form = {t.label: t for t in app.text_input}
    form["Registered model name"].input("dash-model")
    form["Reason"].input("clicked in the dashboard")
    _submit(app, "Promote")  # without the confirmation
    assert "Tick the confirmation first" in _texts(app)
    app.checkbox[-1].check()
    _submit(app, "Promote")
    assert not app.exception
    assert "Promoted: dash-model@production -> version 1" in _texts(app)


def test_registry_page_shows_history_and_refuses_a_first_rollback(
    app: AppTest, dash_home: dict[str, Any]
) -> None:
    from ..test_cli import run

    number = dash_home["front"]["points"][0]["number"]
    proc = run("promote", STUDY, "--trial", str(number), "--name", "reg-model",
               home=dash_home["home"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _open(app, "views/registry.py", model="reg-model")
    assert app.selectbox[0].value == "reg-model"
    assert "`production` → version 1" in _texts(app)
    history = app.dataframe[1].value
    assert list(history["action"]) == ["promote"]
    app.checkbox[-1].check()
    _submit(app, "Roll back")
    assert "no earlier version" in _texts(app)


def test_registry_page_shows_the_rolled_back_alias_at_once(
    app: AppTest, dash_home: dict[str, Any]
) -> None:
    from ..test_cli import run

    front = [p["number"] for p in dash_home["front"]["points"]]
    other = next(n for n in range(6) if n != front[0])
    for number in (front[0], other):
        proc = run("promote", STUDY, "--trial", str(number), "--name", "back-model", "--force",
                   home=dash_home["home"])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    _open(app, "views/registry.py", model="back-model")
    assert "`production` → version 2" in _texts(app)
    app.checkbox[-1].check()
    _submit(app, "Roll back")
    assert not app.exception
    # Drawn after the rollback: the alias above the form already moved back.
    aliases = next(m.value for m in app.markdown if m.value.startswith("**Aliases:**"))
    assert "`production` → version 1" in aliases, aliases
    assert app.success and "version 1" in app.success[0].value


@pytest.mark.slow
def test_launch_page_starts_a_background_study(app: AppTest, dash_home: dict[str, Any]) -> None:
    _open(app, "views/launch.py")
    fields = {t.label: t for t in app.text_input}
    fields["Model"].input("/no/such/model.keras")
    _submit(app, "Start")
    assert "outside the folders the dashboard may read" in _texts(app)
    fields = {t.label: t for t in app.text_input}
    fields["Model"].input(str(dash_home["home"] / "no-such-model.keras"))
    _submit(app, "Start")
    assert "does not exist" in _texts(app)
    fields = {t.label: t for t in app.text_input}
    fields["Model"].input("demo:digits-cnn")
    fields["Search space"].input(str(dash_home["space"]))
    fields["Study name"].input(STUDY)  # exists: warned, not resumed
    _submit(app, "Start")
    assert f"Study '{STUDY}' exists (" in _texts(app) and "tick *Resume" in _texts(app)
    settings = load_settings(home=dash_home["home"])
    assert not launches(settings)
    # An empty name: a new study of its own, never an existing one; then stopped.
    next(t for t in app.text_input if t.label == "Study name").input("")
    _submit(app, "Start")
    (record,) = launches(settings)
    assert record["study"].startswith("digits-cnn-tiny-") and "Started" in _texts(app)
    assert f"**{record['study']}** — running" in _texts(app)
    assert "redraws every 3 s while a launch runs" in _texts(app)  # follows by itself
    _submit(app, "Stop")
    # Stopping until the process has ended (at once, or a moment later).
    assert f"**{record['study']}** — stopp" in _texts(app) and "Stop" not in [
        b.label for b in app.button
    ]
    deadline = time.monotonic() + 60
    while launches(settings)[0]["state"] == "running":
        assert time.monotonic() < deadline, "the stopped study did not end in 60 s"
        time.sleep(0.5)
    app.run()
    assert f"**{record['study']}** — stopped by " in _texts(app)
    next(t for t in app.text_input if t.label == "Study name").input("launched")
    app.number_input[0].set_value(2)
    _submit(app, "Start")
    assert "Started 'launched'" in _texts(app)
    deadline = time.monotonic() + 300
    while launches(settings)[0]["state"] == "running":
        assert time.monotonic() < deadline, "the launched study did not finish in 300 s"
        time.sleep(2)
    record = launches(settings)[0]
    assert record["error"] is None, record["log_tail"]
    st.cache_data.clear()
    app.run()
    assert "**launched** — finished — 2/2 trials" in _texts(app)
    newest = [m.value for m in app.markdown if m.value.startswith("**")]
    assert newest[0].startswith("**launched**")  # newest first


def test_schedules_page_lists_and_pauses(app: AppTest, dash_home: dict[str, Any]) -> None:
    from infertune.scheduling.schedules import add_schedule, overview, remove_schedule
    from infertune.storage.db import Database

    db = Database(load_settings(home=dash_home["home"]).database_url)
    add_schedule(db, STUDY, "0 2 * * *", None, trials=4)
    add_schedule(db, "other-study", None, "6h", trials=4)
    _open(app, "views/schedules.py")
    table = app.dataframe[0].value
    when = dict(zip(table["study"], table["when"], strict=True))
    assert when == {STUDY: "0 2 * * *", "other-study": "every 6h"}  # not "every 21600 s"
    _submit(app, "Pause")
    assert next(r for r in overview(db) if r["study"] == STUDY)["paused"] is True
    assert "No runs yet." in _texts(app)
    remove_schedule(db, "other-study")
