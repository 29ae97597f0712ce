"""The read-side queries the CLI and the dashboard share, on a small real study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from infertune.config import Settings
from infertune.exceptions import InputError
from infertune.measure.engine import Engine, Subject
from infertune.tracking.tracker import Tracker
from infertune.tuning import queries
from infertune.tuning.phases import PHASES
from infertune.tuning.study import verify_front

from .test_study import _tuner, tiny_space


@pytest.fixture(scope="module")
def study(
    engine: Engine,
    cnn: Subject,
    tracker: Tracker,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> optuna.Study:
    storage = f"sqlite:///{tmp_path_factory.mktemp('queries') / 'studies.db'}"
    space = tiny_space()
    tuner = _tuner("queries", storage, space, cnn, engine, tracker, settings)
    tuner.run(n_trials=6, timeout=None)  # the whole grid
    verify_front(engine, tuner.study, cnn, space)
    tuner.finish()
    return tuner.study


def test_front_plot_data_places_every_completed_trial(study: optuna.Study) -> None:
    plot = queries.front_plot_data(study)
    assert (plot["x"], plot["y"], plot["z"]) == ("latency_p95_ms", "accuracy", None)
    complete = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(p["number"] for p in plot["points"]) == complete
    front = {p["number"] for p in queries.front(study)["points"]}
    assert {p["number"] for p in plot["points"] if p["kept"]} == front
    for point in plot["points"]:
        assert point["runtime"] in ("tf", "tflite")
        if point["verified"]:  # verified points carry the spread of their latency
            low, high = point["error"]["latency_p95_ms"]
            assert low <= point["figures"]["latency_p95_ms"] <= high
        else:
            assert point["error"] == {}
    assert plot["baseline"]["latency_p95_ms"] > 0


def test_trials_table_and_history(study: optuna.Study) -> None:
    rows = queries.trials_table(study)
    assert [r["trial"] for r in rows] == list(range(len(study.trials)))
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert all(r["latency_p95_ms"] > 0 and "runtime" in r for r in done)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert all(r["why"] for r in pruned)
    hist = queries.history(study)
    series = hist["series"]["latency_p95_ms"]
    assert len(series["trial"]) == len(done)
    assert series["best"] == [min(series["value"][: i + 1]) for i in range(len(series["value"]))]
    accuracy = hist["series"]["accuracy"]
    assert accuracy["best"][-1] == max(accuracy["value"])


def test_importance_names_the_knobs(study: optuna.Study) -> None:
    scores = queries.importance(study)
    assert set(scores) == {"latency_p95_ms", "accuracy"}
    latency = scores["latency_p95_ms"]
    assert latency and set(latency) <= {"runtime", "precision", "prune_ratio"}
    assert sum(latency.values()) == pytest.approx(1.0)


def test_trial_detail_and_overhead(study: optuna.Study) -> None:
    number = queries.front(study)["points"][0]["number"]
    detail = queries.trial_detail(study, number)
    assert detail["on_front"] and detail["mlflow_run_id"] and detail["baseline"]
    phases: dict[str, Any] = detail["phases_s"]
    assert set(PHASES) <= set(phases)
    assert sum(phases[p] for p in PHASES) == pytest.approx(phases["total"], abs=0.01)
    with pytest.raises(InputError, match="no trial 99"):
        queries.trial_detail(study, 99)
    overhead = queries.overhead(study)
    assert overhead["trials"] == len(study.trials)
    assert 0 < overhead["share"]["timing"] < 1
    assert overhead["variant_cache_hit_rate"] is not None


def test_load_names_the_studies_that_exist(tmp_path: Path, study: optuna.Study) -> None:
    with pytest.raises(InputError, match="studies there: none"):
        queries.load("missing", f"sqlite:///{tmp_path / 'empty.db'}")
