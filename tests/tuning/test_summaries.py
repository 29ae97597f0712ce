"""Trial and study summaries (issue 17): kept up to date with Optuna, equal to what it says."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from infertune.cli import app
from infertune.storage.db import Database
from infertune.tuning import queries, summaries

RUNTIMES = ("tf", "tflite", "openvino")
PRECISIONS = ("fp32", "int8")


def _trial(rng: random.Random, state: str = "COMPLETE") -> optuna.trial.FrozenTrial:
    config = {
        "runtime": rng.choice(RUNTIMES),
        "precision": rng.choice(PRECISIONS),
        "prune_ratio": round(rng.random(), 4),  # one configuration per trial
    }
    latency = rng.uniform(0.2, 5.0)
    accuracy = rng.uniform(0.9, 0.99)
    feasible = accuracy > 0.91
    attrs: dict[str, Any] = {
        "config": config,
        "figures": {"latency_p95_ms": latency, "accuracy": accuracy},
        "feasible": feasible,
        "violations": [] if feasible else ["accuracy drop 0.0800 > 0.05"],
        "speedup_p95": 5.0 / latency,
        "mlflow_run_id": f"{rng.getrandbits(64):016x}",
    }
    if state == "PRUNED":
        attrs = {"config": config, "pruned_reason": "threads > cores", "figures": {}}
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState[state],
        values=[latency, accuracy] if state == "COMPLETE" else None,
        user_attrs=attrs,
    )


def _study(url: str, name: str, count: int, seed: int = 0) -> optuna.Study:
    study = optuna.create_study(
        study_name=name, storage=url, directions=["minimize", "maximize"], load_if_exists=True
    )
    study.set_user_attr("infertune.spec", {"model": "demo:digits-cnn"})
    study.set_user_attr("infertune.spec_hash", "h")
    study.set_user_attr(
        "infertune.objectives", {"latency_p95_ms": "minimize", "accuracy": "maximize"}
    )
    study.set_user_attr("infertune.baseline", {"latency_p95_ms": 5.0, "accuracy": 0.95})
    study.set_user_attr("infertune.fingerprint", {"hardware_id": "hw1"})
    rng = random.Random(seed)
    study.add_trials([_trial(rng, "PRUNED" if i % 7 == 3 else "COMPLETE") for i in range(count)])
    return study


@pytest.fixture()
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    Database(url).ensure_schema()  # the platform's tables, summaries included, and Optuna's
    return url


def _unstored(study: optuna.Study) -> summaries.Summary:
    return summaries._unstored(study, study.user_attrs)


def test_stored_summary_equals_the_one_computed_from_optuna(url: str) -> None:
    study = _study(url, "s", 60)
    stored = summaries.sync(study)
    assert stored.stored
    computed = _unstored(study)
    assert stored.summary == computed.summary
    assert stored.front == computed.front
    assert stored.summary["trials"] == {"COMPLETE": 51, "PRUNED": 9, "FAIL": 0, "RUNNING": 0}
    assert stored.front["points"] and stored.summary["front_size"] == len(stored.front["points"])
    rows = summaries.rows(study)
    assert [r["number"] for r in rows] == list(range(60))
    on_front = {r["number"] for r in rows if r["on_front"]}
    assert on_front == {p["number"] for p in stored.front["points"]}
    assert queries.trial_detail(study, 5)["figures"] == rows[5]["figures"]
    runs = queries.trial_runs(study)["runs"]
    assert runs == {r["number"]: r["mlflow_run_id"] for r in rows if r["mlflow_run_id"]}
    assert len(runs) == 51  # the completed trials carry one


def test_trials_added_by_another_client_are_caught_up_one_by_one(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(url, "s", 30)
    first = summaries.sync(study)
    assert summaries.sync(study).version == first.version  # nothing changed
    fetched: list[int] = []
    fetch = summaries._fetch

    def counting(study_: optuna.Study, wanted: list[tuple[int, int]]) -> Any:
        fetched.extend(n for n, _ in wanted)
        return fetch(study_, wanted)

    monkeypatch.setattr(summaries, "_fetch", counting)
    rng = random.Random(9)
    # A trial far better than any: it must become the front's fastest point.
    best = _trial(rng)
    best.user_attrs.update(
        figures={"latency_p95_ms": 0.01, "accuracy": 0.99}, feasible=True, violations=[]
    )
    best.values = [0.01, 0.99]
    study.add_trial(best)
    later = summaries.sync(study)
    assert fetched == [30]  # only the new trial was read from Optuna
    assert later.version != first.version
    assert later.summary["trials"]["COMPLETE"] == first.summary["trials"]["COMPLETE"] + 1
    assert 30 in {p["number"] for p in later.front["points"]}
    assert later.front == _unstored(study).front


def test_a_running_trial_is_counted_and_its_end_moves_the_front(url: str) -> None:
    study = _study(url, "s", 10)
    before = summaries.sync(study)
    trial = study.ask()
    running = summaries.sync(study)
    assert running.summary["trials"]["RUNNING"] == 1 and running.version != before.version
    trial.set_user_attr("config", {"runtime": "tflite", "precision": "int8", "threads": 1})
    trial.set_user_attr("figures", {"latency_p95_ms": 0.001, "accuracy": 0.999})
    trial.set_user_attr("feasible", True)
    trial.set_user_attr("violations", [])
    study.tell(trial, [0.001, 0.999])
    done = summaries.sync(study)
    assert done.summary["trials"]["RUNNING"] == 0
    assert trial.number in {p["number"] for p in done.front["points"]}
    assert summaries.rows(study, on_front=True)[-1]["number"] == trial.number


def test_an_unchanged_study_is_checked_without_reading_its_trials(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(url, "s", 30)
    first = summaries.sync(study)
    real = summaries._optuna_states
    reads: list[int] = []

    def counted(conn: Any, study_id: int) -> Any:
        reads.append(study_id)
        return real(conn, study_id)

    monkeypatch.setattr(summaries, "_optuna_states", counted)
    again = summaries.sync(study)
    assert reads == [] and again.version == first.version and again.summary == first.summary
    study.enqueue_trial({})  # a waiting trial has not started: nothing to catch up
    assert summaries.sync(study).version == first.version and reads == []
    trial = study.ask()  # it starts: caught up
    assert summaries.sync(study).summary["trials"]["RUNNING"] == 1 and len(reads) == 1
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert summaries.sync(study).summary["trials"]["FAIL"] == 1 and len(reads) == 2


def test_a_verification_changes_the_shown_front(url: str) -> None:
    study = _study(url, "s", 20)
    search = summaries.sync(study)
    assert not search.front["verified"]
    candidates = [
        {**p, "kept": i == 0, "intervals": {}, "ties_with": [], "dominated_by": []}
        for i, p in enumerate(search.front["points"])
    ]
    study.set_user_attr(
        "infertune.verified",
        {"verified_at": "2026-11-25T12:00:00Z", "repeats": 5, "coverage": 0.94,
         "candidates": candidates},
    )  # fmt: skip
    verified = summaries.sync(study)
    assert verified.front["verified"] and len(verified.front["points"]) == 1
    assert verified.version != search.version
    assert verified.summary["verified"] and verified.summary["front_size"] == 1
    assert {r["number"] for r in summaries.rows(study, on_front=True)} == {candidates[0]["number"]}


def test_filters_and_pages_run_in_the_database(url: str) -> None:
    study = _study(url, "s", 100)
    everything = summaries.rows(study)
    pruned = summaries.rows(study, states=["PRUNED"])
    assert pruned and all(r["state"] == "PRUNED" for r in pruned)
    assert summaries.count_trials(study, states=["PRUNED"]) == len(pruned)
    tflite = summaries.rows(study, runtime=["tflite"], precision=["int8"])
    assert tflite == [
        r
        for r in everything
        if (r["config"]["runtime"], r["config"]["precision"]) == ("tflite", "int8")
    ]
    page2 = queries.trials_table(study, limit=10, offset=10)
    assert [r["trial"] for r in page2] == list(range(10, 20))
    newest = queries.trials_table(study, limit=3, newest_first=True)
    assert [r["trial"] for r in newest] == [99, 98, 97]
    front_rows = queries.trials_table(study, front_only=True)
    assert {r["trial"] for r in front_rows} == {p["number"] for p in queries.front(study)["points"]}
    assert queries.count_trials(study, front_only=True) == len(front_rows)
    assert queries.knob_choices(study) == {
        "runtime": sorted(RUNTIMES),
        "precision": sorted(PRECISIONS),
    }


def test_a_study_made_again_under_its_name_starts_afresh(url: str) -> None:
    _study(url, "s", 20)
    summaries.sync(optuna.load_study(study_name="s", storage=url))
    optuna.delete_study(study_name="s", storage=url)
    again = _study(url, "s", 5, seed=3)
    summary = summaries.sync(again)
    assert sum(summary.summary["trials"].values()) == 5
    assert len(summaries.rows(again)) == 5
    assert summary.front == _unstored(again).front


def test_a_study_without_summary_tables_is_read_from_optuna() -> None:
    study = _study("sqlite://", "memory", 12)  # in memory: no platform tables
    summary = summaries.sync(study)
    assert not summary.stored and summary.summary["trials"]["COMPLETE"] == 10
    assert len(summaries.rows(study, states=["COMPLETE"])) == 10
    assert summaries.count_trials(study, states=["PRUNED"]) == 2


def test_a_read_only_database_still_answers(url: str, tmp_path: Path) -> None:
    study = _study(url, "s", 15)
    path = tmp_path / "studies.db"

    def read_only() -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    storage = optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"creator": read_only}, skip_table_creation=True
    )
    ro = optuna.load_study(study_name="s", storage=storage)
    summary = summaries.sync(ro)
    assert not summary.stored  # nothing could be written
    assert summary.front == _unstored(study).front


def test_importance_is_kept_per_study_size(url: str) -> None:
    study = _study(url, "s", 40)
    summaries.sync(study)
    assert summaries.stored_importance(study, 35) is None
    summaries.store_importance(study, 35, {"seed": 0, "objectives": {"a": {}}})
    assert summaries.stored_importance(study, 35) == {"seed": 0, "objectives": {"a": {}}}
    assert summaries.stored_importance(study, 36) is None  # a trial more: computed again


def test_syncs_at_once_agree(url: str) -> None:
    _study(url, "s", 50)
    errors: list[BaseException] = []
    results: list[summaries.Summary] = []

    def read() -> None:
        try:
            results.append(summaries.sync(optuna.load_study(study_name="s", storage=url)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len({r.version for r in results}) == 1
    assert len(summaries.rows(optuna.load_study(study_name="s", storage=url))) == 50


def test_db_upgrade_writes_the_summaries_of_existing_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    db = Database(url)
    db.upgrade("0003")  # a database of the previous release, with a study in it
    _study(url, "old", 25)
    result = CliRunner().invoke(app, ["--db-url", url, "--home", str(tmp_path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "upgraded from 0003" in result.output
    assert "Summaries of 1 study (25 trials)" in result.output
    study = optuna.load_study(study_name="old", storage=url)
    engine = summaries._engine(study)
    assert engine is not None
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT count(*) FROM infertune_trial_summaries WHERE study = 'old'"
        ).scalar_one()
    assert stored == 25


@pytest.mark.postgres
def test_summaries_on_postgres(pg_url: str) -> None:
    Database(pg_url).ensure_schema()
    study = _study(pg_url, "pg", 40)
    stored = summaries.sync(study)
    assert stored.stored and stored.front == _unstored(study).front
    assert summaries.count_trials(study, on_front=True) == len(stored.front["points"])
    assert [r["trial"] for r in queries.trials_table(study, limit=5, offset=5)] == [5, 6, 7, 8, 9]
