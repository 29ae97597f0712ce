"""Every page of the dashboard through Streamlit's AppTest, on a small real study."""

from __future__ import annotations

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
    charts = app.get("plotly_chart")
    assert len(charts) >= 2  # the front and at least one history chart
    front_table = app.dataframe[0].value
    assert sorted(front_table["trial"]) == sorted(p["number"] for p in dash_home["front"]["points"])
    assert len(app.dataframe[1].value) == 6  # all trials
    assert [s.value for s in app.subheader] == [
        "Pareto front",
        "All trials",
        "Optimisation history",
        "Knob importance (Optuna)",
    ]
    app.radio[0].set_value("runtime").run()
    assert not app.exception


def test_trial_page_shows_figures_and_promotes(app: AppTest, dash_home: dict[str, Any]) -> None:
    number = dash_home["front"]["points"][0]["number"]
    _open(app, "views/trial.py", study=STUDY, trial=str(number))
    assert app.subheader[0].value.startswith(f"Trial {number}:")
    assert "MLflow run" in _texts(app)
    assert any(c.proto.spec for c in app.get("plotly_chart"))  # the latency distribution
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


def test_launch_page_starts_a_background_study(app: AppTest, dash_home: dict[str, Any]) -> None:
    _open(app, "views/launch.py")
    fields = {t.label: t for t in app.text_input}
    fields["Model"].input("/no/such/model.keras")
    _submit(app, "Start")
    assert "does not exist" in _texts(app)
    fields = {t.label: t for t in app.text_input}
    fields["Model"].input("demo:digits-cnn")
    fields["Search space"].input(str(dash_home["space"]))
    fields["Study name"].input("launched")
    app.number_input[0].set_value(2)
    _submit(app, "Start")
    assert "Started 'launched'" in _texts(app)
    settings = load_settings(home=dash_home["home"])
    deadline = time.monotonic() + 300
    while launches(settings)[0]["state"] == "running":
        assert time.monotonic() < deadline, "the launched study did not finish in 300 s"
        time.sleep(2)
    record = launches(settings)[0]
    assert record["error"] is None, record["log_tail"]
    st.cache_data.clear()
    app.run()
    assert "2/2 trials" in _texts(app)


def test_schedules_page_lists_and_pauses(app: AppTest, dash_home: dict[str, Any]) -> None:
    from infertune.scheduling.schedules import add_schedule, overview
    from infertune.storage.db import Database

    db = Database(load_settings(home=dash_home["home"]).database_url)
    add_schedule(db, STUDY, "0 2 * * *", None, trials=4)
    _open(app, "views/schedules.py")
    table = app.dataframe[0].value
    assert list(table["study"]) == [STUDY] and list(table["when"]) == ["0 2 * * *"]
    _submit(app, "Pause")
    assert overview(db)[0]["paused"] is True
    assert "No runs yet." in _texts(app)
