"""Create or resume a study, measure the baseline, run trials, verify the front.

A study is a plain Optuna study (``optuna.load_study`` and optuna-dashboard read it); what
infertune adds lives in its user attributes under ``infertune.*``: the spec it was created
with, the baseline figures, the MLflow ids, and the verified front.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from infertune.config import Settings
from infertune.exceptions import ConfigurationError, InfertuneError, InputError, MeasurementError
from infertune.hashing import json_sha256
from infertune.knobs.spec import InferenceConfig
from infertune.locks import url_lock
from infertune.measure.accuracy import (
    SCORE_FIGURES,
    describe_task,
    quality_drop,
    task_measures,
)
from infertune.measure.engine import TIMING_FIGURES, Engine, Subject
from infertune.measure.fingerprint import check_threads, fingerprint
from infertune.measure.hostlock import host_work_lock
from infertune.measure.records import Measurement
from infertune.measure.window import MeasurementWindow
from infertune.space.schema import (
    Direction,
    Figure,
    Scenario,
    ScenarioSpec,
    SearchSpace,
    WindowSpec,
)
from infertune.storage.db import normalize_url
from infertune.tracking.tracker import Tracker
from infertune.tuning import summaries
from infertune.tuning.distributed import (
    UNCOUNTED,
    BudgetGate,
    GlobalBudget,
    counted_trials,
    finished_count,
    heartbeat_storage,
)
from infertune.tuning.front import (
    VERIFY_CONFIDENCE,
    coverage_warning,
    median_interval,
    pareto_front,
    sift,
    verify_method,
)
from infertune.tuning.phases import PhaseClock
from infertune.tuning.records import StudyView, TrialRecord, TrialWriter, trial_rows
from infertune.tuning.retime import retime_interleaved
from infertune.tuning.sampling import (
    config_params,
    enumerate_configs,
    suggest_config,
)
from infertune.workers.protocol import Timing

EventHandler = Callable[[dict[str, Any]], None]
FINISHED_STATES = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)

# Optuna logs each failed trial with its traceback: the display shows its reason instead.
optuna.logging.set_verbosity(optuna.logging.ERROR)

#: This process as recorded on the trials it runs (host:pid).
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def storage_url(settings: Settings, storage: str | None) -> str:
    """The Optuna storage: ``--storage`` or the platform database."""
    return normalize_url(storage or settings.database_url)


def check_parallelism(url: str, jobs: int) -> None:
    """SQLite serves one writer process well; parallel workers need PostgreSQL."""
    if jobs > 1 and url.startswith("sqlite"):
        raise ConfigurationError(
            f"{jobs} parallel workers need a server database, and {url} is SQLite; pass "
            "--storage postgresql://USER@HOST/DB (or set INFERTUNE_DB_URL), or use --jobs 1."
        )


def window(spec: WindowSpec) -> MeasurementWindow:
    """A measurement window from its spec."""
    return MeasurementWindow(
        warmup_s=spec.warmup_s,
        min_duration_s=spec.min_duration_s,
        min_calls=spec.min_calls,
        max_duration_s=spec.max_duration_s,
    )


def study_spec(subject: Subject, space: SearchSpace) -> dict[str, Any]:
    """What defines a study's problem: model and data (by content) and the space."""
    return {
        "model": subject.label,
        "model_path": str(subject.source.path),
        "model_sha256": subject.source.sha256,
        "data": str(subject.eval_data.path),
        "data_sha256": subject.eval_data.sha256,
        "train_data": str(subject.train_data.path) if subject.train_data else None,
        "train_data_sha256": subject.train_data.sha256 if subject.train_data else None,
        # x_key and y_key; x_keys and output where the model has several inputs/outputs.
        **subject.data_fields(),
        "space": space.model_dump(mode="json"),
    }


def _spec_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = ("model_sha256", "data_sha256", "train_data_sha256", "x_keys", "output", "space")
    names = {
        "model_sha256": "model",
        "data_sha256": "evaluation data",
        "train_data_sha256": "training data",
        "x_keys": "input arrays",
        "output": "scored output",
        "space": "search space",
    }
    return [names[k] for k in keys if old.get(k) != new.get(k)]


def _problem_hash(spec: dict[str, Any]) -> str:
    """The spec's hash without the measurement settings (they do not change the problem)."""
    space = {
        k: v for k, v in spec.get("space", {}).items() if k not in ("measurement", "description")
    }
    return json_sha256({**spec, "space": space})


def _free_name(name: str, url: str) -> str:
    """``NAME-2``, ``NAME-3``, ...: the first that no study in the storage has."""
    taken = set(optuna.get_all_study_names(storage=url))
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"


def open_study(
    name: str,
    url: str,
    spec: dict[str, Any],
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
    heartbeat_s: int | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study, or resume it if it exists with the same spec.

    Returns the study and whether it already existed. With ``heartbeat_s``, its trials
    record heartbeats: a trial whose process dies is failed and retried (see
    :mod:`infertune.tuning.distributed`).

    Raises:
        ConfigurationError: A study of that name exists for another model, data or space (or
            was not made by infertune); the message names an unused name to start a new one.
    """
    directions = [
        optuna.study.StudyDirection.MINIMIZE
        if d is Direction.MINIMIZE
        else optuna.study.StudyDirection.MAXIMIZE
        for d in space.objectives.values()
    ]
    spec_hash = json_sha256(spec)
    storage: str | optuna.storages.BaseStorage = (
        heartbeat_storage(url, heartbeat_s) if heartbeat_s else url
    )
    # One process at a time creates or checks a study: a second `tune` started at the
    # same moment (a double-clicked Launch) sees the spec the first one wrote.
    with url_lock(url, "open-study"):
        try:
            existing = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        except KeyError:
            existing = None
        if existing is not None:
            view = StudyView(existing)
            old = view.raw_spec
            if old is None:
                raise ConfigurationError(
                    f"Study '{name}' exists in {url} but was not created by "
                    "infertune; choose another --study name."
                )
            if view.spec_hash != spec_hash and _problem_hash(old) == _problem_hash(spec):
                # Only how figures are measured changed (windows, repeats): same problem, the
                # study goes on, and later trials and verifications use the new settings.
                view.set_spec(spec, spec_hash)
            elif view.spec_hash != spec_hash:
                differs = ", ".join(_spec_differences(old, spec)) or "settings"
                raise ConfigurationError(
                    f"Study '{name}' exists with a different {differs} (it tunes "
                    f"{old.get('model_path') or old.get('model')}); start a new study with "
                    f"--study {_free_name(name, url)} (or any unused name), or resume '{name}' "
                    "with its own model, data and space."
                )
            return existing, True
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            directions=directions,
            load_if_exists=True,
        )
        view = StudyView(study)
        if view.spec_hash is None:
            view.set_spec(spec, spec_hash)
            view.set_objectives(dict(space.objectives))
            view.set_created(fingerprint())
        return study, False


def objectives_of(study: optuna.Study) -> dict[Figure, Direction]:
    """The study's objectives, in order."""
    return StudyView(study).objectives


#: (figure, constraint field, sign, violation text): sign +1 keeps the figure below the
#: limit, -1 above it. ``{what}`` names the quality drop in the task's terms.
_CONSTRAINTS = (
    ("quality_drop", "max_quality_drop", 1, "{what} {v:.4f} > {lim}"),
    ("accuracy_drop", "max_accuracy_drop", 1, "accuracy drop {v:.4f} > {lim}"),
    ("agreement", "min_agreement", -1, "agreement {v:.4f} < {lim}"),
    ("rel_mae_vs_fp32", "max_rel_mae_vs_fp32", 1, "MAE vs fp32 (relative) {v:.4f} > {lim}"),
    ("latency_p95_ms", "max_latency_p95_ms", 1, "p95 {v:.3f} ms > {lim} ms"),
    ("model_size_mb", "max_model_size_mb", 1, "size {v:.3f} MiB > {lim} MiB"),
)

#: The figure each constraint needs (constraints not named need figures every model has).
_CONSTRAINT_FIGURES = {
    "max_quality_drop": "quality",
    "max_accuracy_drop": "accuracy",
    "min_agreement": "agreement",
    "max_rel_mae_vs_fp32": "rel_mae_vs_fp32",
}

#: What to use instead, per task, when a space asks for a figure the task lacks.
_TASK_ALTERNATIVES = {
    "classification": "use the objective 'quality' (or accuracy, agreement) and the "
    "constraints max_quality_drop, max_accuracy_drop or min_agreement",
    "regression": "use the objective 'quality' (MAE skill; or mae, rmse, r2, rel_mae_vs_fp32) "
    "and the constraints max_quality_drop (relative MAE increase) or max_rel_mae_vs_fp32",
}


def check_measurable(space: SearchSpace, task: dict[str, Any]) -> None:
    """Refuse, before anything is measured, objectives and constraints the task lacks.

    Raises:
        ConfigurationError: One line naming each such objective or constraint, the task,
            and what to use instead.
    """
    unmeasured = [
        f"objective '{figure}'" for figure in space.objectives if not task_measures(task, figure)
    ] + [
        f"constraint '{field}'"
        for field, figure in _CONSTRAINT_FIGURES.items()
        if getattr(space.constraints, field) is not None and not task_measures(task, figure)
    ]
    if unmeasured:
        raise ConfigurationError(
            f"The search space's {' and '.join(unmeasured)} cannot be measured for this "
            f"model's task, {describe_task(task)}: {_TASK_ALTERNATIVES[task['kind']]}."
        )


def constraint_check(
    space: SearchSpace,
    baseline: dict[str, Any],
    figures: dict[str, Any],
    task: dict[str, Any],
) -> tuple[dict[str, float], list[str]]:
    """Constraint values by name (<= 0 satisfied, as Optuna expects), violations in words.

    Figures not measured yet (latency before timing) count as satisfied. The accuracy drop
    is absolute, against the baseline's accuracy; the quality drop is the task's
    (:func:`~infertune.measure.accuracy.quality_drop`: accuracy points for a classifier,
    relative MAE increase for a regression model).
    """
    values = dict(figures)
    if figures.get("accuracy") is not None and baseline.get("accuracy") is not None:
        values["accuracy_drop"] = baseline["accuracy"] - figures["accuracy"]
    values["quality_drop"] = quality_drop(task, baseline, figures)
    what = "accuracy drop" if task["kind"] == "classification" else "relative MAE increase"
    excesses: dict[str, float] = {}
    violations: list[str] = []
    for name, field, sign, text in _CONSTRAINTS:
        limit = getattr(space.constraints, field)
        if limit is None:
            continue
        value = values.get(name)
        excesses[name] = 0.0 if value is None else sign * (value - limit)
        if excesses[name] > 0:
            violations.append(text.format(v=value, lim=limit, what=what))
    return excesses, violations


#: Trial attribute: the rate-vs-p99 curve of a server trial with a p99 objective.
SERVING_CURVE = "serving_curve"


def missed_slo(measured: Timing | Measurement) -> bool:
    """Whether a server run with a p99 objective found no rate that met it.

    That is a result (0 queries/s), not an error: the configuration is measured and simply
    never wins on that objective.
    """
    return measured.slo_p99_ms is not None and measured.max_qps_at_slo == 0


def speedup_over(
    baseline: dict[str, Any], figures: dict[str, Any], scenario: ScenarioSpec
) -> float | None:
    """How many times better than the baseline, in the scenario's own terms.

    Single stream (and a server at a fixed rate): the p95 latency ratio. A server with a p99
    objective: the ratio of the highest rates that meet it. Offline: the throughput ratio.
    (Stored as ``speedup_p95``, its name from when only single-stream existed.)
    """

    def ratio(numerator: Any, denominator: Any) -> float | None:
        if not numerator or not denominator:
            return None
        return float(numerator) / float(denominator)

    if scenario.name is Scenario.OFFLINE:
        return ratio(figures.get("throughput_sps"), baseline.get("throughput_sps"))
    if scenario.name is Scenario.SERVER and scenario.slo_p99_ms is not None:
        return ratio(figures.get("max_qps_at_slo"), baseline.get("max_qps_at_slo"))
    return ratio(baseline.get("latency_p95_ms"), figures.get("latency_p95_ms"))


def _contention_metrics(record: Measurement) -> dict[str, float]:
    """How busy the rest of the machine was while this trial was timed (MLflow metrics)."""
    seen = record.measurement.contention
    if not seen:
        return {}
    return {
        "contention_other_cores": float(seen["other_cores"]),
        "contention_steal_pct": float(seen["steal_pct"]),
        "contention_attempts": float(seen.get("attempts", 1)),
    }


def _contention_tags(record: Measurement) -> dict[str, str]:
    seen = record.measurement.contention
    if not seen or not seen.get("disturbed"):
        return {}
    return {"infertune.disturbed": str(seen.get("reason") or "yes")}


def _figures(record: Measurement) -> dict[str, Any]:
    # Objective-capable figures, plus how far from the hardware limit the run was.
    return {
        name: getattr(record, name)
        for name in (*(f.value for f in Figure), "macs", "gflops", "peak_pct")
    }


class Tuner:
    """Runs one study: baseline, trials, verification, with MLflow records.

    With ``jobs > 1`` each Optuna thread gets its own engine (its own worker processes), so
    builds run in parallel; timings still take the host lock one at a time, and no build,
    accuracy pass or baseline runs beside a timing (they hold the host's work lock,
    :func:`~infertune.measure.hostlock.host_work_lock`).
    """

    def __init__(
        self,
        settings: Settings,
        study: optuna.Study,
        subject: Subject,
        space: SearchSpace,
        tracker: Tracker,
        engine: Engine,
        on_event: EventHandler | None = None,
    ) -> None:
        self.settings = settings
        self.study = study
        self.subject = subject
        self.space = space
        self.tracker = tracker
        self.engine = engine
        self.on_event: EventHandler = on_event or (lambda e: None)
        self.objectives = objectives_of(study)
        self.search_window = window(space.measurement.search)
        self._local = threading.local()
        self._engines: list[Engine] = []
        self._lock = threading.Lock()
        self.experiment_id = ""
        self.parent_run_id = ""
        self.reaper: Callable[[], object] | None = None
        """Fails the trials of dead processes (set by the lifecycle; default: heartbeats)."""

    # -- set-up --------------------------------------------------------------------------

    def start(self) -> None:
        """Open the MLflow experiment and parent run; measure the baseline if needed.

        Raises:
            ConfigurationError: An objective or constraint the model's task cannot measure
                (before anything is recorded or measured).
        """
        check_measurable(self.space, self.subject.task)
        name = self.study.study_name
        view = StudyView(self.study)
        spec = view.spec
        if spec is None:
            raise InputError(f"Study '{name}' was not created by infertune.")
        self.experiment_id = view.experiment_id or self.tracker.experiment(name)
        self.parent_run_id = self.tracker.start_parent(
            self.experiment_id,
            name,
            view.parent_run_id,
            params={
                "model": spec.model,
                "space": spec.space["knobs"],
                "objectives": {str(k): str(v) for k, v in view.objectives.items()},
            },
            tags={
                "infertune.model_sha256": spec.model_sha256,
                "infertune.hardware_id": fingerprint()["hardware_id"],
            },
        )
        view.set_mlflow(self.experiment_id, self.parent_run_id)
        self.baseline()

    def baseline(self) -> dict[str, Any]:
        """The baseline's figures (tf, fp32, batch 1, default threads), measured once."""
        stored = StudyView(self.study).baseline
        if stored is not None:
            return stored
        self.on_event({"event": "step", "task": "measuring the baseline (tf, fp32, batch 1)"})
        config = InferenceConfig()
        # Engine.bench, with the build and the accuracy pass under the host's work lock.
        with host_work_lock():
            variant = self.engine.variant(self.subject, config, self.space.finetune_epochs)
        scenario = self.space.measurement.scenario
        timing = self.engine.time(self.subject, variant, config, self.search_window, scenario)
        with host_work_lock():
            scores = self.engine.evaluate(self.subject, variant, config)
        record = self.engine.record(
            self.subject, config, variant, timing, scores, self.search_window, scenario
        )
        if not record.valid and not missed_slo(record):
            raise MeasurementError(f"The baseline measurement is invalid: {record.invalid_reason}")
        baseline = _figures(record)
        StudyView(self.study).set_baseline(baseline)
        self.tracker.log(self.parent_run_id, metrics={"baseline": baseline})
        self.tracker.log_json(self.parent_run_id, "baseline.json", record.to_json())
        return baseline

    # -- trials --------------------------------------------------------------------------

    def _engine(self) -> Engine:
        if threading.current_thread() is threading.main_thread():
            return self.engine
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = Engine(self.settings, on_event=self.on_event)
            self._local.engine = engine
            with self._lock:
                self._engines.append(engine)
        return engine

    def close(self) -> None:
        """Stop the worker processes of extra threads."""
        for engine in self._engines:
            engine.close()

    def objective(self, trial: optuna.Trial) -> list[float]:
        """Sample, build, score (prune early if accuracy already fails), time, record."""
        release = getattr(self._local, "release_gate", None)
        if release is not None:
            release()  # this trial is RUNNING in the storage now: others count it
        engine = self._engine()
        last_exit = getattr(self._local, "last_exit", None)
        clock = PhaseClock(
            lambda: engine.startup_s,
            gap_s=time.perf_counter() - last_exit if last_exit is not None else 0.0,
        )
        config = suggest_config(trial, self.space)
        writer = TrialWriter(trial)
        writer.started(config.model_dump(mode="json"), WORKER_NAME)
        with clock.phase("tracking"):
            run_id = self.tracker.start_trial(
                self.experiment_id,
                self.parent_run_id,
                self.study.study_name,
                trial.number,
                params=config.model_dump(mode="json"),
                tags={
                    "optuna.study": self.study.study_name,
                    "optuna.trial": str(trial.number),
                    "infertune.hardware_id": fingerprint()["hardware_id"],
                },
            )
        writer.mlflow_run(run_id)
        status = "FAILED"
        try:
            values = self._evaluate_trial(trial, config, run_id, engine, clock)
            status = "FINISHED"
            return values
        except (optuna.TrialPruned, KeyboardInterrupt):
            # Pruned (stopped early) or interrupted by the user: KILLED in MLflow terms.
            status = "KILLED"
            raise
        except Exception as exc:
            # Every failure stores its reason (an unexpected one with its type); only
            # infertune's errors let the study go on (Optuna's catch).
            reason = str(exc) if isinstance(exc, InfertuneError) else _describe(exc)
            with contextlib.suppress(Exception):
                writer.failed(reason)
            with clock.phase("tracking"), contextlib.suppress(Exception):
                self.tracker.log(run_id, tags={"infertune.fail_reason": reason[:5000]})
            raise
        finally:
            with clock.phase("tracking"):
                self.tracker.log(
                    run_id,
                    tags={
                        "infertune.trial_state": {
                            "FINISHED": "COMPLETE",
                            "FAILED": "FAIL",
                            "KILLED": "PRUNED",
                        }[status]
                    },
                )
                self.tracker.end(run_id, status)
            with contextlib.suppress(Exception):  # accounting must never fail a trial
                writer.phases(clock.result())
            self._local.last_exit = time.perf_counter()

    def _evaluate_trial(
        self,
        trial: optuna.Trial,
        config: InferenceConfig,
        run_id: str,
        engine: Engine,
        clock: PhaseClock,
    ) -> list[float]:
        baseline = self.baseline()
        writer = TrialWriter(trial)
        earlier = self._same_config(trial, config)
        if earlier is not None:
            # A sampler may propose a configuration again; its figures are known.
            writer.duplicate(TrialRecord.from_trial(earlier))
            for name, value in (earlier.constraints or {}).items():
                trial.set_constraint(name, value)
            # It does not count against the budget when the next trial is sure to measure
            # something new (an unmeasured configuration is queued); otherwise it counts.
            if self._enqueue_unmeasured():
                trial.set_user_attr(UNCOUNTED, True)
            with clock.phase("tracking"):
                self.tracker.log(
                    run_id,
                    metrics=earlier.user_attrs["figures"],
                    tags={"infertune.duplicate_of": str(earlier.number)},
                )
            return list(earlier.values)
        try:  # instances x threads beyond this machine's cores: a constraint, not a crash
            check_threads(config.threads, config.instances)
        except ConfigurationError as exc:
            if config.instances == 1:
                raise  # threads alone beyond the cores: the space does not fit this machine
            writer.pruned(str(exc), {})
            raise optuna.TrialPruned(str(exc)) from None
        with clock.phase("build"), host_work_lock():
            variant = engine.variant(self.subject, config, self.space.finetune_epochs)
        # The source model itself is never built: no cache hit to report.
        writer.variant(variant.key, None if variant.meta.get("source") else variant.cache_hit)
        with clock.phase("accuracy"), host_work_lock():
            scores = engine.evaluate(self.subject, variant, config)
        early = {k: getattr(scores, k) for k in SCORE_FIGURES} | {"model_size_mb": variant.size_mb}
        _, violations = constraint_check(self.space, baseline, early, self.subject.task)
        if violations:
            # Pruned before the long timing: the accuracy constraint already fails.
            reason = "; ".join(violations)
            writer.pruned(reason, {k: v for k, v in early.items() if v is not None})
            with clock.phase("tracking"):
                self.tracker.log(run_id, metrics=early, tags={"infertune.pruned_reason": reason})
            raise optuna.TrialPruned(reason)
        scenario = self.space.measurement.scenario
        with clock.phase("timing"):
            timing = engine.time(self.subject, variant, config, self.search_window, scenario)
        if not timing.valid and not missed_slo(timing):
            raise MeasurementError(f"Invalid measurement: {timing.invalid_reason}")
        record = engine.record(
            self.subject, config, variant, timing, scores, self.search_window, scenario
        )
        figures = _figures(record)
        constraints, violations = constraint_check(self.space, baseline, figures, self.subject.task)
        speedup = speedup_over(baseline, figures, scenario)
        writer.measured(figures, violations, speedup)
        curve = (record.measurement.serving or {}).get("curve")
        if curve:  # server with a p99 objective: the rate-vs-p99 curve, for the dashboard
            trial.set_user_attr(SERVING_CURVE, curve)
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        with clock.phase("tracking"):
            self.tracker.log(
                run_id,
                metrics={**figures, "speedup_p95": speedup, **_contention_metrics(record)},
                tags={
                    "infertune.variant_key": variant.key,
                    "infertune.feasible": str(not violations),
                    "infertune.scenario": record.scenario,
                    **_contention_tags(record),
                },
            )
            self.tracker.log_json(run_id, "measurement.json", record.to_json())
            self._log_variant_once(run_id, variant.key, variant.path)
        missing = [str(f) for f in self.objectives if figures.get(str(f)) is None]
        if missing:
            raise MeasurementError(
                f"Objective(s) {', '.join(missing)} not measured for this configuration "
                f"(the model's task: {describe_task(self.subject.task)})."
            )
        return [float(figures[str(f)]) for f in self.objectives]

    def _same_config(
        self, trial: optuna.Trial, config: InferenceConfig
    ) -> optuna.trial.FrozenTrial | None:
        wanted = config_key(config.model_dump(mode="json"))
        for other in self.study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        ):
            known = other.user_attrs.get("config")
            if other.number != trial.number and known and config_key(known) == wanted:
                return other
        return None

    def _measured(self) -> set[str]:
        """Keys (:func:`config_key`) of the configurations counted trials measured."""
        return {
            config_key(t.user_attrs["config"])
            for t in counted_trials(self.study)
            if t.user_attrs.get("config") is not None
        }

    def _unmeasured(self) -> list[InferenceConfig] | None:
        """The space's configurations no trial measured (``None``: not enumerable)."""
        try:
            configs = enumerate_configs(self.space)
        except ConfigurationError:
            return None
        measured = self._measured()
        return [c for c in configs if config_key(c.model_dump(mode="json")) not in measured]

    def _enqueue_unmeasured(self) -> bool:
        """Make sure the next trial measures something new; whether that is assured.

        Queues an unmeasured configuration of an enumerable space (unless one is queued
        already); false where the space is not enumerable or fully measured.
        """
        with self._lock:
            if self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                return True
            unmeasured = self._unmeasured()
            if not unmeasured:
                return False
            self.study.enqueue_trial(config_params(unmeasured[0], self.space))
            return True

    def exhausted(self) -> bool:
        """Whether every configuration of an enumerable space has been measured."""
        return self._unmeasured() == []

    def _log_variant_once(self, run_id: str, key: str, path: Path) -> None:
        with self._lock:
            view = StudyView(self.study)
            logged = view.variant_runs
            if key in logged:
                self.tracker.log(run_id, tags={"infertune.variant_run_id": logged[key]})
                return
            self.tracker.log_file(run_id, path, "variant")
            logged[key] = run_id
            view.set_variant_runs(logged)

    def run(
        self,
        n_trials: int,
        timeout: float | None,
        jobs: int = 1,
        on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> int:
        """Run trials until the study holds ``n_trials`` finished ones (global budget).

        A trial that repeats a measured configuration does not count (its figures are reused
        and the next trial is given an unmeasured configuration); the run ends early, saying
        so, once every configuration of an enumerable space has been measured.

        Returns the count of trials this call ran.
        """
        # Trials killed with their worker and retried count once (infertune.tuning.distributed).
        remaining = n_trials - finished_count(self.study)
        if remaining <= 0 or self._stop_if_exhausted():
            return 0
        callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = [
            GlobalBudget(n_trials),
            summaries.on_trial_end,
        ]
        if on_trial is not None:
            callbacks.append(on_trial)
        before = len(self.study.get_trials(deepcopy=False))
        self._local.last_exit = time.perf_counter()  # the first ask is charged to trial 1
        if jobs > 1:
            # Threads of one process: Optuna shares n_trials between them exactly; repeated
            # configurations do not count, so the shortfall runs in the next round.
            deadline = time.monotonic() + timeout if timeout is not None else None
            while remaining > 0 and not self._stop_if_exhausted():
                left = deadline - time.monotonic() if deadline is not None else None
                if left is not None and left <= 0:
                    break
                self.study.optimize(
                    self.objective,
                    n_trials=remaining,
                    timeout=left,
                    n_jobs=jobs,
                    catch=(InfertuneError,),
                    callbacks=callbacks,
                )
                remaining = n_trials - finished_count(self.study)
        else:
            self._run_gated(n_trials, timeout, callbacks)
        return len(self.study.get_trials(deepcopy=False)) - before

    def _run_gated(
        self,
        n_trials: int,
        timeout: float | None,
        callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]],
    ) -> None:
        """One trial at a time, each started only if the study's budget still has room.

        Other processes may work on the same study (``infertune worker``): the check and the
        start of the trial happen under :class:`BudgetGate`, so the budget is never
        overshot.
        """
        deadline = time.monotonic() + timeout if timeout is not None else None

        def waiting(running: int) -> None:
            self.on_event(
                {
                    "event": "step",
                    "task": f"waiting for {running} running trial(s) of other processes: they "
                    "finish, or are failed and retried if their process died",
                }
            )

        gate = BudgetGate(self.study, n_trials, reaper=self.reaper, on_wait=waiting)
        try:
            while deadline is None or time.monotonic() < deadline:
                if self._stop_if_exhausted() or not gate.reserve(deadline):
                    break
                self._local.release_gate = gate.release
                try:
                    self.study.optimize(
                        self.objective, n_trials=1, catch=(InfertuneError,), callbacks=callbacks
                    )
                finally:
                    gate.release()
                    self._local.release_gate = None
        finally:
            gate.close()

    def _stop_if_exhausted(self) -> bool:
        if not self.exhausted():
            return False
        self.on_event(
            {
                "event": "step",
                "task": "every configuration of the space has been measured: the search ends "
                "before its budget",
            }
        )
        return True

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run with a summary of the front."""
        rows = trial_rows(self.study)
        front = pareto_front(rows, self.objectives)
        verified = verified_summary(self.study, front)
        counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
        self.tracker.log(
            self.parent_run_id,
            metrics={
                "trials_complete": counts["COMPLETE"],
                "trials_pruned": counts["PRUNED"],
                "trials_failed": counts["FAIL"],
                "front_size": len(front),
                "best_speedup_p95": max((r["speedup_p95"] or 0.0 for r in front), default=0.0),
                **verified["metrics"],
            },
            tags=verified["tags"],
        )
        self.tracker.end(self.parent_run_id, status)


def verify_front(
    engine: Engine,
    study: optuna.Study,
    subject: Subject,
    space: SearchSpace,
    repeats: int | None = None,
    on_event: EventHandler | None = None,
) -> dict[str, Any]:
    """Re-measure the Pareto candidates longer, interleaved, and keep the robust ones.

    Every candidate is timed ``repeats`` times in rounds (A, B, C, A, B, C, ...), so drifts
    of a shared machine hit all alike. Each measured figure's median, its spread (the lowest
    and highest repeat) and a confidence interval of the median (order statistics,
    :func:`~infertune.tuning.front.median_interval`) are stored. A candidate is dropped only
    when another dominates it beyond both intervals; kept candidates that no objective tells
    apart are listed as ties (:func:`~infertune.tuning.front.sift`). The measured intervals
    replace the space's fixed ``tie_margin``, which verification no longer uses. The baseline
    configuration is timed in the same rounds, so the verified speed-ups compare like with
    like (the search measured the baseline once, in its short window, at another moment).
    The result is stored in the study.
    """
    report = on_event or (lambda e: None)
    spec = space.measurement.verify
    repeats = repeats or spec.repeats
    objectives = objectives_of(study)
    candidates = pareto_front(trial_rows(study), objectives)
    verify_window = window(spec)

    def progress(done: int, total: int) -> None:
        report(
            {"event": "progress", "task": "verifying the front", "completed": done, "total": total}
        )

    def check(number: int | str, result: Timing) -> None:
        # The baseline is the slowest configuration: an invalid timing of it is left out
        # (the search's baseline stands in if none is valid), not a failed verification.
        if not result.valid and number != _BASELINE and not missed_slo(result):
            raise MeasurementError(
                f"Verification of trial {number} is invalid: {result.invalid_reason}"
            )

    configs: dict[int | str, InferenceConfig] = {
        c["number"]: InferenceConfig(**c["config"]) for c in candidates
    }
    if candidates:
        configs[_BASELINE] = InferenceConfig()
    timings = retime_interleaved(
        engine,
        subject,
        configs,
        verify_window,
        repeats,
        space.finetune_epochs,
        on_progress=progress,
        on_timing=check,
        scenario=space.measurement.scenario,
    )
    baseline = dict(StudyView(study).baseline or {})
    baseline_stats: dict[str, Any] = {"spread": {}, "intervals": {}}
    baseline_runs = [r for r in timings.get(_BASELINE, []) if r.valid]
    if baseline_runs:
        baseline, baseline_stats = _medians(baseline_runs, baseline, objectives)
    verified = []
    for c in candidates:
        figures, stats = _medians(timings[c["number"]], c["figures"], objectives)
        verified.append(
            {
                "number": c["number"],
                "config": c["config"],
                "figures": figures,
                **stats,
                "search_figures": c["figures"],
                "speedup_p95": speedup_over(baseline, figures, space.measurement.scenario),
                "speedup_p95_interval": (
                    _speedup_interval(baseline, baseline_stats["intervals"], stats["intervals"])
                    if space.measurement.scenario.name is Scenario.SINGLE_STREAM
                    else None
                ),
            }
        )
    verdicts = sift(verified, objectives)
    for v in verified:
        verdict = verdicts[v["number"]]
        v.update(kept=verdict.kept, ties_with=verdict.ties_with, dominated_by=verdict.dominated_by)
    coverage = interval_coverage_of(repeats)
    payload = {
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": repeats,
        "window": verify_window.model_dump(),
        "confidence": VERIFY_CONFIDENCE,
        "coverage": coverage,
        "method": verify_method(repeats, coverage),
        "warning": coverage_warning(repeats, coverage, VERIFY_CONFIDENCE),
        "hardware_id": fingerprint()["hardware_id"],
        "baseline": {"figures": baseline, **baseline_stats},
        "candidates": verified,
    }
    StudyView(study).set_verified(payload)
    summaries.on_trial_end(study, None)
    return payload


def verified_summary(study: optuna.Study, search_front: list[dict[str, Any]]) -> dict[str, Any]:
    """The verified front for the parent MLflow run: ``metrics`` and ``tags`` to log.

    Empty dicts when the study has no verification of ``search_front`` (the search's
    current front). The tag ``infertune.verified_front`` lists the kept points with the
    interval of their p95 and their ties, one per line.
    """
    verified = StudyView(study).verified
    if verified is None or {c["number"] for c in verified["candidates"]} != {
        r["number"] for r in search_front
    }:
        return {"metrics": {}, "tags": {}}
    kept = [c for c in verified["candidates"] if c["kept"]]
    coverage = verified.get("coverage")
    lines = []
    for c in kept:
        low, high = (c.get("intervals") or c.get("spread") or {}).get("latency_p95_ms", [0, 0])
        ties = c.get("ties_with") or []
        lines.append(
            f"#{c['number']} p95 {c['figures']['latency_p95_ms']:.4g} [{low:.4g}, {high:.4g}] ms"
            + (f", tied with {', '.join(f'#{n}' for n in ties)}" if ties else "")
        )
    tags = {"infertune.verified_front": "\n".join(lines)}
    if verified.get("method"):
        tags["infertune.verify_method"] = str(verified["method"])
    metrics: dict[str, Any] = {
        "verified_front_size": len(kept),
        "verified_dropped": len(verified["candidates"]) - len(kept),
        "verified_ties": sum(len(c.get("ties_with") or []) for c in kept) // 2,
        "verify_coverage": coverage,
        "verified_best_speedup_p95": max(
            (c["speedup_p95"] for c in kept if c["speedup_p95"]), default=None
        ),
    }
    return {"metrics": metrics, "tags": tags}


def interval_coverage_of(repeats: int) -> float:
    """The coverage of the interval :func:`median_interval` gives over ``repeats`` values."""
    return median_interval([float(i) for i in range(repeats)], VERIFY_CONFIDENCE)[1]


def _speedup_interval(
    baseline: dict[str, Any],
    baseline_intervals: dict[str, list[float]],
    intervals: dict[str, list[float]],
) -> list[float] | None:
    """The p95 speed-up's range from the ends of both intervals (baseline / candidate)."""
    base = baseline.get("latency_p95_ms")
    own = intervals.get("latency_p95_ms")
    if not base or own is None or own[0] <= 0:
        return None
    low, high = baseline_intervals.get("latency_p95_ms", [base, base])
    return [low / own[1], high / own[0]]


def _describe(exc: BaseException) -> str:
    """An unexpected error in one line: its type and first line."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def config_key(config: dict[str, Any]) -> str:
    """A configuration's identity, float knobs rounded as the space enumerates them.

    A sampler may return 0.30000000000000004 for a step of 0.1.
    """
    return json_sha256({**config, "prune_ratio": round(float(config["prune_ratio"]), 6)})


#: The baseline's key among the configurations verification times.
_BASELINE = "baseline"


def _medians(
    runs: list[Timing], figures: dict[str, Any], objectives: dict[Figure, Direction]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``figures`` with each measured figure replaced by its median over ``runs``.

    Measured figures are the timing ones, peak memory and any other objective a timing
    reports; quality and size are exact and stay as they are.

    Returns:
        The figures, and their statistics: ``spread`` (lowest and highest repeat),
        ``intervals`` (the median's confidence interval), ``coverage`` of those intervals
        and ``repeats`` (how many runs they stand on).
    """
    figures = dict(figures)
    measured = dict.fromkeys((*TIMING_FIGURES, "peak_memory_mb", *(str(f) for f in objectives)))
    spread: dict[str, list[float]] = {}
    intervals: dict[str, list[float]] = {}
    coverage = 0.0
    for key in measured:
        raw = [getattr(r, key, None) for r in runs]
        values = [float(v) for v in raw if v is not None]
        if key not in Timing.model_fields or not values or len(values) < len(raw):
            continue
        figures[key] = statistics.median(values)
        spread[key] = [min(values), max(values)]
        (low, high), coverage = median_interval(values, VERIFY_CONFIDENCE)
        intervals[key] = [low, high]
    # Repeats the rest of the machine disturbed even after re-timing: said, never hidden.
    disturbed = sum(bool((r.contention or {}).get("disturbed")) for r in runs)
    stats = {
        "spread": spread,
        "intervals": intervals,
        "coverage": coverage,
        "repeats": len(runs),
        "disturbed_repeats": disturbed,
    }
    return figures, stats


def resolve_study_subject(engine: Engine, study: optuna.Study) -> Subject:
    """Re-open a study's model and data, refusing if their content changed."""
    spec = StudyView(study).spec
    if spec is None:
        raise InputError(f"Study '{study.study_name}' was not created by infertune.")
    subject = engine.resolve(
        spec.model,
        Path(spec.data),
        Path(spec.train_data) if spec.train_data else None,
        spec.x_key,
        spec.y_key,
        output=spec.output,
        x_keys=spec.x_keys,
        trust_saved_model=spec.trust_saved_model,
    )
    if subject.source.sha256 != spec.model_sha256 or subject.eval_data.sha256 != spec.data_sha256:
        raise InputError(
            f"The model or data of study '{study.study_name}' changed since it ran "
            "(content hash differs); verify needs the same files."
        )
    return subject
