"""The dashboard at many trials (issue 17): paged table, sections on demand, version caches.

A study of a few hundred trials written straight into a fresh platform database (no
tuning), so paging has pages; the figures of the plots are checked without a server.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
import streamlit as st
import yaml
from optuna.storages._cached_storage import _CachedStorage
from streamlit.testing.v1 import AppTest

from infertune.config import load_settings
from infertune.storage.db import Database
from infertune.tuning import queries, summaries
from infertune.tuning.study import storage_url

from ..conftest import ADMIN_URL
from ..test_cli import TINY_SPACE
from .conftest import APP

BIG = "scale-study"
MOVING = "moving-study"
TRIALS = 250
OBJECTIVES = {"latency_p95_ms": "minimize", "accuracy": "maximize"}


def _state(number: int) -> str:
    return "PRUNED" if number % 7 == 3 else "FAIL" if number % 11 == 5 else "COMPLETE"


def _trial(rng: random.Random, state: str) -> optuna.trial.FrozenTrial:
    config = {
        "runtime": rng.choice(("tf", "tflite")),
        "precision": rng.choice(("fp32", "int8")),
        "prune_ratio": rng.choice((0.0, 0.5)),
    }
    latency, accuracy = rng.uniform(0.2, 5.0), rng.uniform(0.9, 0.99)
    attrs: dict[str, Any] = {"config": config}
    if state == "COMPLETE":
        attrs.update(
            figures={"latency_p95_ms": latency, "accuracy": accuracy},
            feasible=True,
            violations=[],
            speedup_p95=5.0 / latency,
        )
    elif state == "PRUNED":
        attrs.update(pruned_reason="threads > cores", figures={})
    else:
        attrs.update(fail_reason="the worker died", figures={})
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state],
        values=[latency, accuracy] if state == "COMPLETE" else None,
        user_attrs=attrs,
    )


def _make_study(url: str, name: str, count: int, seed: int) -> optuna.Study:
    """An infertune-shaped study (spec, objectives, baseline) with ``count`` trials."""
    study = optuna.create_study(study_name=name, storage=url, directions=["minimize", "maximize"])
    spec = {
        "model": "demo:digits-cnn",
        "model_path": "digits-cnn.keras",
        "model_sha256": "0" * 64,
        "data": "digits.npz",
        "data_sha256": "0" * 64,
        "space": yaml.safe_load(TINY_SPACE),
    }
    for key, value in {
        "spec": spec,
        "spec_hash": "h",
        "objectives": OBJECTIVES,
        "baseline": {"latency_p95_ms": 5.0, "accuracy": 0.95},
        "fingerprint": {"hardware_id": "hw1"},
        "created_at": "2026-01-01T00:00:00Z",
    }.items():
        study.set_user_attr(f"infertune.{key}", value)
    rng = random.Random(seed)
    study.add_trials([_trial(rng, _state(n)) for n in range(count)])
    queries.version(study)  # summaries caught up, as a study's own processes leave them
    return study


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def scale(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A home whose platform database (SQLite, or a throwaway PostgreSQL one) holds the studies."""
    home = tmp_path_factory.mktemp(f"scale-{request.param}")
    admin, db_url = None, None
    if request.param == "postgres":
        try:
            admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            name = f"infertune_test_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # depends on the machine
            pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
        db_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    settings = load_settings(home=home, db_url=db_url)
    Database(settings.database_url).ensure_schema()
    url = storage_url(settings, None)
    _make_study(url, BIG, TRIALS, seed=1)
    _make_study(url, MOVING, 8, seed=2)
    yield {"home": home, "db_url": db_url, "url": url}
    if admin is not None:
        st.cache_resource.clear()  # the dashboard's engine on the database
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def app(scale: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("INFERTUNE_HOME", str(scale["home"]))
    for key in [k for k in os.environ if k.startswith("INFERTUNE_DASHBOARD")]:
        monkeypatch.delenv(key)
    if scale["db_url"]:
        monkeypatch.setenv("INFERTUNE_DB_URL", scale["db_url"])
    else:
        monkeypatch.delenv("INFERTUNE_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield AppTest.from_file(str(APP), default_timeout=120)


def _open(app: AppTest, page: str, **params: str) -> AppTest:
    app.switch_page(page)
    app.query_params.update(params)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _captions(app: AppTest) -> str:
    return "\n".join(str(c.value) for c in app.caption)


def _table(app: AppTest) -> Any:
    """The trials table (the second table: the front's comes first)."""
    return app.dataframe[1].value


def test_trials_table_is_paged_in_the_database(app: AppTest) -> None:
    _open(app, "views/study.py", study=BIG)
    first = _table(app)
    assert list(first["trial"]) == list(range(100))
    assert f"Trials 1-100 of {TRIALS} · page 1 of 3" in _captions(app)
    app.number_input(key="trials-page").set_value(2).run()
    assert not app.exception
    second = _table(app)
    assert list(second["trial"]) == list(range(100, 200))
    app.number_input(key="trials-page").set_value(3).run()
    assert list(_table(app)["trial"]) == list(range(200, TRIALS))
    app.toggle(key="trials-newest").set_value(True).run()
    assert list(_table(app)["trial"]) == list(range(49, -1, -1))  # page 3, newest first


def test_state_filter_narrows_the_count_and_starts_at_page_one(app: AppTest) -> None:
    pruned = [n for n in range(TRIALS) if _state(n) == "PRUNED"]
    _open(app, "views/study.py", study=BIG)
    app.number_input(key="trials-page").set_value(2).run()
    app.multiselect(key="filter-state").set_value(["PRUNED"]).run()
    assert not app.exception
    table = _table(app)
    assert list(table["trial"]) == pruned  # page 1 again: fewer than a page
    assert set(table["state"]) == {"PRUNED"}
    assert f"Trials 1-{len(pruned)} of {len(pruned)} matching the filters ({TRIALS} in all)" in (
        _captions(app)
    )
    app.multiselect(key="filter-state").set_value([]).run()
    assert "No trial matches the filters." in _captions(app)


def test_runtime_filter_runs_in_the_database(app: AppTest, scale: dict[str, Any]) -> None:
    url = scale["url"]
    expected = queries.count_trials(queries.load(BIG, url), runtime=["tflite"])
    _open(app, "views/study.py", study=BIG)
    app.multiselect(key="f-runtime").set_value(["tflite"]).run()
    assert set(_table(app)["runtime"]) == {"tflite"}
    assert f"of {expected} matching the filters" in _captions(app)


def test_history_and_importance_are_computed_only_when_opened(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("history", "knob_importance"):
        real = getattr(queries, name)

        def counted(study: optuna.Study, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(study)

        monkeypatch.setattr(queries, name, counted)
    _open(app, "views/study.py", study=BIG)
    assert calls == []
    charts = [c.proto.id for c in app.get("plotly_chart")]
    assert not any("history" in c or "importance" in c or "parallel" in c for c in charts)
    app.toggle(key="show-history").set_value(True).run()
    assert calls == ["history"]
    assert any("history-latency_p95_ms" in c.proto.id for c in app.get("plotly_chart"))
    app.toggle(key="show-importance").set_value(True).run()
    assert calls == ["history", "knob_importance"]  # the history came from the cache
    assert any("importance-latency_p95_ms" in c.proto.id for c in app.get("plotly_chart"))
    app.toggle(key="show-knobs").set_value(True).run()
    assert any("parallel" in c.proto.id for c in app.get("plotly_chart"))


def test_a_new_trial_shows_at_once_without_a_timer(app: AppTest, scale: dict[str, Any]) -> None:
    def complete(app: AppTest) -> int:
        return int({m.label: m.value for m in app.metric}["complete trials"])

    _open(app, "views/study.py", study=MOVING)
    before = complete(app)
    app.run()
    assert complete(app) == before
    study = queries.load(MOVING, scale["url"])
    study.add_trial(_trial(random.Random(5), "COMPLETE"))  # by another process, say
    app.run()  # no cache cleared, no time waited
    assert complete(app) == before + 1
    assert len(_table(app)) == 9


def test_trial_page_reads_one_trial(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the Trial page read a list of trials")

    monkeypatch.setattr(optuna.Study, "get_trials", refuse)
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_all_trials", refuse)
    monkeypatch.setattr(_CachedStorage, "get_all_trials", refuse)
    monkeypatch.setattr(summaries, "rows", refuse)
    monkeypatch.setattr(queries, "trials_table", refuse)
    _open(app, "views/trial.py", study=BIG, trial="120")
    assert app.subheader[0].value.startswith("Trial 120:")
    assert app.number_input[0].value == 120


# -- figures, without a server ------------------------------------------------------------


def _point(number: int, on_front: bool = False) -> dict[str, Any]:
    rng = random.Random(number)
    config = {"runtime": rng.choice(("tf", "tflite")), "precision": "int8", "prune_ratio": 0.0}
    return {
        "number": number,
        "figures": {"latency_p95_ms": rng.uniform(0.2, 5), "accuracy": rng.uniform(0.9, 1)},
        "config": config,
        "runtime": config["runtime"],
        "precision": "int8",
        "speedup_p95": 2.0,
        "feasible": True,
        "violations": [],
        "on_front": on_front,
        "verified": False,
        "kept": False,
        "error": {},
        "ties_with": [],
        "dominated_by": [],
    }


@pytest.fixture()
def common(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(APP.parent))
    import common

    return common


def test_thousands_of_points_go_to_the_browser_as_a_sample_of_coordinates(common: Any) -> None:
    from front_chart import MAX_PLAIN, front_chart

    points = [_point(n, on_front=n < 5) for n in range(5000)]
    points[4000]["config"] = {"runtime": "tf", "precision": "fp32"}  # the baseline's settings
    plot = {"x": "latency_p95_ms", "y": "accuracy", "baseline": {}, "points": points}
    chart = front_chart(plot, "precision")
    # A fixed sample of the plain trials, the one that ran the baseline's settings kept.
    assert chart.plain == 4995 and len(chart.table) == MAX_PLAIN
    assert 4000 in set(chart.table["trial"])
    assert list(chart.table["trial"]) == list(front_chart(plot, "precision").table["trial"])
    # Only coordinates and numbers for them; the front (few) with its full hover, inline.
    assert list(chart.table.columns) == ["trial", "group", "x", "y"]
    front = next(layer for layer in chart.spec["layer"] if "pick_front" in json.dumps(layer))
    assert sorted(f["trial"] for f in front["data"]["values"]) == [0, 1, 2, 3, 4]
    assert "speed-up (p95) 2.00x" in front["data"]["values"][0]["details"]
    assert len(json.dumps(chart.spec)) < 20_000  # a few points inline, not thousands (>100 KB)
    every = front_chart(plot, "precision", limit=None)
    assert len(every.table) == every.plain == 4995  # on request: all of them


def test_knob_plots_draw_a_fixed_sample_with_the_front(common: Any) -> None:
    points = [_point(n, on_front=n % 1000 == 0) for n in range(6000)]
    drawn = common.sample_points(points)
    assert len(drawn) == common.MAX_SAMPLED
    assert {p["number"] for p in points if p["on_front"]} <= {p["number"] for p in drawn}
    assert drawn == common.sample_points(points)  # the same on every redraw
    assert common.sample_points(points[:10]) == points[:10]
    slices = common.slice_figure(drawn, "latency_p95_ms")
    assert {t.type for t in slices.data} == {"scattergl"}


def test_history_sends_only_the_steps_of_the_best_so_far(common: Any) -> None:
    values = [5.0, 4.0, 4.5, 4.2, 3.0, 3.5, 3.9]
    best = [5.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0]
    series = {"trial": list(range(7)), "value": values, "best": best}
    chart = common.history_figure(series, "latency_p95_ms", "minimize")
    line = next(t for t in chart.data if t.mode == "lines")
    assert list(line.x) == [0, 1, 4, 6] and list(line.y) == [5.0, 4.0, 3.0, 3.0]
    assert list(chart.data[0].y) == values  # every trial still drawn
