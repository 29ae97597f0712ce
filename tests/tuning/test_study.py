"""Studies end to end on the tiny demo model: budget, resume, fail/prune paths, MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from infertune.config import Settings
from infertune.exceptions import BuildError, ConfigurationError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.space.schema import SearchSpace
from infertune.tracking.tracker import Tracker
from infertune.tuning import queries
from infertune.tuning.distributed import counted_trials, finished_count
from infertune.tuning.records import StudyView
from infertune.tuning.sampling import make_sampler
from infertune.tuning.study import (
    Tuner,
    check_parallelism,
    config_key,
    open_study,
    study_spec,
    verify_front,
)

TINY_WINDOW = {"warmup_s": 0.05, "min_duration_s": 0.1, "min_calls": 10, "max_duration_s": 20}


def tiny_space(**overrides: Any) -> SearchSpace:
    raw: dict[str, Any] = {
        "knobs": {
            "runtime": {"type": "categorical", "choices": ["tf", "tflite"]},
            "precision": {
                "type": "categorical",
                "choices": ["fp32", "int8"],
                "when": {"runtime": ["tflite"]},
            },
            "prune_ratio": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.5},
        },
        "objectives": {"latency_p95_ms": "minimize", "accuracy": "maximize"},
        "constraints": {"max_accuracy_drop": 0.05},
        "measurement": {
            "search": TINY_WINDOW,
            "verify": {**TINY_WINDOW, "min_calls": 20, "repeats": 2},
        },
        "finetune_epochs": 1,
    }
    raw.update(overrides)
    return SearchSpace.model_validate(raw)


@pytest.fixture()
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _tuner(
    name: str,
    storage: str,
    space: SearchSpace,
    subject: Subject,
    engine: Engine,
    tracker: Tracker,
    settings: Settings,
    sampler: str = "grid",
) -> Tuner:
    study, _ = open_study(
        name, storage, study_spec(subject, space), space, make_sampler(sampler, 0, 10, space)
    )
    tuner = Tuner(settings, study, subject, space, tracker, engine)
    tuner.start()
    return tuner


def _runs(tracker: Tracker, tuner: Tuner) -> list[Any]:
    return tracker.children(tuner.experiment_id, tuner.parent_run_id)


def test_study_runs_records_and_verifies(
    engine: Engine, cnn: Subject, tracker: Tracker, settings: Settings, storage: str
) -> None:
    space = tiny_space()
    tuner = _tuner("full", storage, space, cnn, engine, tracker, settings)
    assert tuner.run(n_trials=4, timeout=None) == 4
    study = tuner.study
    baseline = StudyView(study).baseline
    assert baseline["latency_p95_ms"] > 0 and baseline["accuracy"] > 0.9
    states = [t.state for t in study.trials]
    assert len(states) == 4 and optuna.trial.TrialState.COMPLETE in states
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        assert trial.user_attrs["figures"]["latency_p95_ms"] > 0
        assert trial.user_attrs["speedup_p95"] == pytest.approx(
            baseline["latency_p95_ms"] / trial.user_attrs["figures"]["latency_p95_ms"]
        )
    # MLflow: one child run per trial under the parent, none left RUNNING, params + metrics.
    runs = _runs(tracker, tuner)
    assert len(runs) == 4
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED", "KILLED"}
    by_id = {r.info.run_id: r for r in runs}
    for trial in complete:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        assert run.data.params["runtime"] == trial.user_attrs["config"]["runtime"]
        assert run.data.metrics["latency_p95_ms"] == trial.user_attrs["figures"]["latency_p95_ms"]
        assert run.data.tags["optuna.trial"] == str(trial.number)
    verified = verify_front(engine, study, cnn, space)
    assert verified["repeats"] == 2 and verified["candidates"]
    shown = queries.front(study)
    assert shown["verified"] is True and shown["points"]
    for point in shown["points"]:
        lo, hi = point["spread"]["latency_p95_ms"]
        assert lo <= point["figures"]["latency_p95_ms"] <= hi
    # The baseline was timed in the same rounds, and the verified speed-ups refer to it.
    verified_base = verified["baseline"]["figures"]
    lo, hi = verified["baseline"]["spread"]["latency_p95_ms"]
    assert lo <= verified_base["latency_p95_ms"] <= hi
    assert verified_base["accuracy"] == baseline["accuracy"]
    assert shown["baseline"] == verified_base
    for point in shown["points"]:
        assert point["speedup_p95"] == pytest.approx(
            verified_base["latency_p95_ms"] / point["figures"]["latency_p95_ms"]
        )
    tuner.finish()
    parent = tracker.client.get_run(tuner.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_complete"] == len(complete)
    # The study is a normal Optuna study.
    assert len(optuna.load_study(study_name="full", storage=storage).trials) == 4


def test_budget_is_global_and_resume_needs_the_same_spec(
    engine: Engine, cnn: Subject, tracker: Tracker, settings: Settings, storage: str
) -> None:
    space = tiny_space()
    first = _tuner("budget", storage, space, cnn, engine, tracker, settings)
    first.run(n_trials=2, timeout=None)
    first.finish()
    again = _tuner("budget", storage, space, cnn, engine, tracker, settings)
    assert again.parent_run_id == first.parent_run_id  # resumed, same parent run
    assert again.run(n_trials=3, timeout=None) == 1  # 2 done, budget 3: one more
    assert again.run(n_trials=3, timeout=None) == 0
    again.finish()
    assert len(_runs(tracker, again)) == 3
    changed = tiny_space(constraints={"max_accuracy_drop": 0.5})
    with pytest.raises(ConfigurationError, match="exists with a different search space"):
        open_study(
            "budget",
            storage,
            study_spec(cnn, changed),
            changed,
            make_sampler("grid", 0, 3, changed),
        )
    # New measurement settings are not a new problem: the study resumes with them.
    longer = tiny_space(
        measurement={"search": {**TINY_WINDOW, "min_calls": 30}, "verify": {"repeats": 4}}
    )
    resumed, existed = open_study(
        "budget", storage, study_spec(cnn, longer), longer, make_sampler("grid", 0, 3, longer)
    )
    assert existed
    assert StudyView(resumed).spec.space["measurement"]["verify"]["repeats"] == 4


def test_failed_and_pruned_trials_are_recorded_and_do_not_stop_the_study(
    engine: Engine,
    cnn: Subject,
    tracker: Tracker,
    settings: Settings,
    storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No fine-tuning: pruning half the channels breaks a 0-drop accuracy constraint.
    space = tiny_space(constraints={"max_accuracy_drop": 0.0}, finetune_epochs=0)
    tuner = _tuner("paths", storage, space, cnn, engine, tracker, settings)
    real_variant = engine.variant

    def failing_int8(subject: Subject, config: Any, epochs: int = 2) -> Any:
        if config.precision == "int8":
            raise BuildError("LiteRT conversion at precision int8 failed: simulated")
        return real_variant(subject, config, epochs)

    monkeypatch.setattr(engine, "variant", failing_int8)
    tuner.run(n_trials=6, timeout=None)  # the whole grid of this space
    tuner.finish()
    trials = tuner.study.trials
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert failed and all("simulated" in t.user_attrs["fail_reason"] for t in failed)
    assert pruned and all("accuracy drop" in t.user_attrs["pruned_reason"] for t in pruned)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    status = {r.info.run_id: r.info.status for r in _runs(tracker, tuner)}
    assert all(status[t.user_attrs["mlflow_run_id"]] == "FAILED" for t in failed)
    assert all(status[t.user_attrs["mlflow_run_id"]] == "KILLED" for t in pruned)
    assert "RUNNING" not in status.values()


def test_interrupt_leaves_nothing_running(
    engine: Engine,
    cnn: Subject,
    tracker: Tracker,
    settings: Settings,
    storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = tiny_space()
    tuner = _tuner("interrupted", storage, space, cnn, engine, tracker, settings)

    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "time", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tuner.run(n_trials=3, timeout=None)
    tuner.finish("KILLED")
    assert [t.state for t in tuner.study.trials] == [optuna.trial.TrialState.FAIL]
    statuses = [r.info.status for r in _runs(tracker, tuner)]
    assert statuses == ["KILLED"]
    assert tracker.client.get_run(tuner.parent_run_id).info.status == "KILLED"


def test_parallel_workers_on_sqlite_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="need a server database.*PostgreSQL|postgresql"):
        check_parallelism("sqlite:///x.db", 2)
    check_parallelism("sqlite:///x.db", 1)
    check_parallelism("postgresql://u@127.0.0.1/db", 4)


@pytest.fixture(scope="module", autouse=True)
def _close(engine: Engine) -> Iterator[None]:
    yield


def test_a_repeated_configuration_reuses_its_figures(
    engine: Engine, cnn: Subject, tracker: Tracker, settings: Settings, storage: str
) -> None:
    space = tiny_space(
        knobs={
            "runtime": {"type": "categorical", "choices": ["tflite"]},
            "precision": {"type": "categorical", "choices": ["fp32", "int8_dynamic"]},
        }
    )
    tuner = _tuner("repeat", storage, space, cnn, engine, tracker, settings, sampler="random")
    for _ in range(2):  # a sampler proposing the same configuration twice
        tuner.study.enqueue_trial({"runtime": "tflite", "precision": "fp32"})
    tuner.run(n_trials=2, timeout=None)
    tuner.finish()
    first, second, third = tuner.study.trials
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.values == first.values
    # The repeat did not use the budget: an unmeasured configuration was measured next.
    assert third.user_attrs.get("duplicate_of") is None
    assert third.user_attrs["config"] != first.user_attrs["config"]
    assert finished_count(tuner.study) == 2


def test_a_study_ends_when_every_configuration_is_measured(
    engine: Engine, cnn: Subject, tracker: Tracker, settings: Settings, storage: str
) -> None:
    space = tiny_space(
        knobs={
            "runtime": {"type": "categorical", "choices": ["tflite"]},
            "precision": {"type": "categorical", "choices": ["fp32", "int8_dynamic"]},
        }
    )
    tuner = _tuner("small", storage, space, cnn, engine, tracker, settings, sampler="random")
    events: list[dict[str, Any]] = []
    tuner.on_event = events.append
    tuner.run(n_trials=50, timeout=None)
    tuner.finish()
    measured = {str(t.user_attrs["config"]) for t in counted_trials(tuner.study)}
    assert len(measured) == 2 and tuner.exhausted()
    assert len(tuner.study.trials) <= 4  # repeats are followed by an unmeasured configuration
    assert any("every configuration" in e.get("task", "") for e in events)
    assert tuner.run(n_trials=50, timeout=None) == 0


def test_a_configuration_s_identity_ignores_float_noise() -> None:
    base = InferenceConfig.parse(runtime="tflite", prune_ratio=0.3).model_dump(mode="json")
    noisy = {**base, "prune_ratio": 0.1 + 0.2}  # 0.30000000000000004, as samplers return
    assert noisy != base and config_key(noisy) == config_key(base)
    assert config_key({**base, "prune_ratio": 0.25}) != config_key(base)
