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
    spec, table = _vega(app, "front")
    drawn = _drawn_points(table, spec)
    on_front = drawn.loc[drawn["role"].isin(["front", "front, verified"]), "trial"]
    assert sorted(on_front) == sorted(p["number"] for p in dash_home["front"]["points"])
    assert len(drawn) == int(metrics["complete trials"])  # every completed trial is drawn
    params = [p["name"] for layer in spec["layer"] for p in layer.get("params", [])]
    assert params == ["pick", "pick_front"]  # a click on any point selects its trial
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


def _vega(app: AppTest, key: str) -> tuple[dict[str, Any], Any]:
    """A Vega-Lite chart's spec and the table it was given."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    chart = next(c.proto for c in app.get("vega_lite_chart") if c.proto.id.endswith(key))
    return json.loads(chart.spec), convert_arrow_bytes_to_pandas_df(chart.data.data)


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


def _front_point(number: int, config: dict[str, Any], **roles: Any) -> dict[str, Any]:
    return {
        "number": number,
        "figures": {"latency_p95_ms": 0.002 * (number + 1), "accuracy": 0.9},
        "config": config,
        "precision": config["precision"],
        "speedup_p95": None,
        "feasible": True,
        "violations": [],
        "on_front": False,
        "verified": False,
        "kept": False,
        "error": {},
        "ties_with": [],
        "dominated_by": [],
    } | roles


def _drawn_points(table: Any, spec: dict[str, Any]) -> Any:
    """Every point of a front chart: its table (plain trials) and the front's layer."""
    import pandas as pd

    picked = [layer for layer in spec["layer"] if "pick_front" in json.dumps(layer.get("params"))]
    front = picked[0]["data"]["values"] if picked else []
    return pd.concat([table.assign(role="other trials"), pd.DataFrame(front)], ignore_index=True)


def _layer(spec: dict[str, Any], mark: str, **kind: Any) -> dict[str, Any]:
    """The first layer (nested ones too) drawing ``mark`` with these mark properties."""
    for layer in spec["layer"]:
        for inner in layer.get("layer", [layer]):
            drawn = inner["mark"]
            if drawn["type"] == mark and all(drawn.get(k) == v for k, v in kind.items()):
                return {"data": layer.get("data"), **inner}
    raise AssertionError(f"no {mark} layer with {kind}")


def test_front_chart_draws_intervals_and_joins_ties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APP.parent))
    from front_chart import front_chart

    int8 = {"runtime": "tflite", "precision": "int8"}
    points = [
        _front_point(0, int8, on_front=True, verified=True, kept=True, ties_with=[1],
                     error={"latency_p95_ms": [0.0019, 0.0022]}, speedup_p95=5.0),
        _front_point(1, int8, on_front=True, verified=True, kept=True, ties_with=[0],
                     error={"latency_p95_ms": [0.0038, 0.0043]}),
        _front_point(2, int8, on_front=True, verified=True, kept=False),
    ]  # fmt: skip
    plot = {"x": "latency_p95_ms", "y": "accuracy", "baseline": {}, "points": points}
    table, spec, _ = front_chart(plot, "precision")
    drawn = _drawn_points(table, spec)
    stars = drawn[drawn["role"] == "front, verified"]
    assert list(stars["x_lo"]) == pytest.approx([0.0019, 0.0038])
    assert list(stars["x_hi"]) == pytest.approx([0.0022, 0.0043])
    assert drawn["y_lo"].isna().all()  # accuracy is exact: no bar
    encoded = [json.dumps(layer["encoding"]) for layer in spec["layer"] if "encoding" in layer]
    assert sum('"field": "x_lo"' in e for e in encoded) == 1  # one layer of bars, along x
    assert not any('"field": "y_lo"' in e for e in encoded)
    ties = _layer(spec, "rule", strokeDash=[2, 3])
    assert ties["data"]["values"] == [
        {"x": 0.002, "y": 0.9, "x2": 0.004, "y2": 0.9, "pair": "#0-#1"}
    ]
    assert "tied with #1" in stars.iloc[0]["details"] and "5.00x" in stars.iloc[0]["details"]
    assert drawn.set_index("trial").loc[2, "role"] == "dropped by verification"


def test_front_chart_reads_in_dark_mode_and_on_log_axes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(APP.parent))
    from common import BASELINE_COLOUR, MANY_POINTS
    from front_chart import front_chart

    tflite = {"runtime": "tflite", "precision": "int8"}
    points = [_front_point(1, tflite, on_front=True),
              _front_point(0, {"runtime": "tf", "precision": "fp32"})]  # fmt: skip
    plot = {"x": "latency_p95_ms", "y": "accuracy", "baseline": {"latency_p95_ms": 0.01,
            "accuracy": 0.9}, "points": points}  # fmt: skip
    table, spec, _ = front_chart(plot, "precision")
    baseline = _layer(spec, "point", shape="cross")
    assert baseline["mark"]["color"] == BASELINE_COLOUR != "black"
    assert baseline["data"]["values"][0]["x"] == 0.01
    # Trial 0 ran the baseline's settings: ringed.
    assert _layer(spec, "point", stroke=BASELINE_COLOUR)["data"]["values"] == [
        {"trial": 0, "x": 0.002, "y": 0.9}
    ]
    # Log axis with plain ticks: 0.002 ms is not "2m" (SI milli) but 0.002 ms.
    x = _layer(spec, "point", filled=True, cursor="pointer")["encoding"]["x"]
    assert x["scale"]["type"] == "log" and x["axis"]["labelExpr"].endswith("+ ' ms'")
    assert x["axis"]["values"] == [0.001, 0.002, 0.005, 0.01, 0.02]
    assert "(log scale)" in x["title"]
    marks = [layer.get("mark", {}).get("type") for layer in spec["layer"]]
    assert marks.index("point") < len(marks) - 1  # plain trials first: the front on top
    assert list(table["trial"]) == [0] and "configuration" in table  # a few: a full hover
    crowd = [_front_point(n, tflite) for n in range(MANY_POINTS + 1)]
    dense, dense_spec, _ = front_chart({**plot, "points": crowd}, "precision")
    faint = dense_spec["layer"][0]
    assert faint["mark"]["size"] < 20 and faint["encoding"]["opacity"]["value"] < 0.5
    # Thousands: their coordinates and numbers only, no text per point.
    assert list(dense.columns) == ["trial", "group", "x", "y"]
    assert dense_spec["usermeta"]["embedOptions"]["renderer"] == "canvas"
    assert "usermeta" not in spec  # a few points stay SVG, each labelled for screen readers


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
