"""The measurement engine: resolve inputs, build variants, score and time them.

Everything that runs a model happens in worker processes; this module (the caller side)
never imports TensorFlow, so it starts fast and survives a crashing model.

Order of a bench, and why:

1. resolve the model and data (format and shape checks, cached model inspection);
2. build the variant through the content-addressed cache;
3. load it in a measurement worker keyed by (engine, threads) - outside the host lock;
4. time it under the host lock (one timing per host at a time);
5. predict the evaluation set with the same loaded variant and score it against the
   targets and the fp32 reference model's predictions (cached per model and data).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infertune.config import Settings
from infertune.exceptions import InputError, PruningError
from infertune.hashing import json_sha256
from infertune.knobs.spec import InferenceConfig, Runtime
from infertune.measure.accuracy import SCORE_FIGURES, SCORING_VERSION, detect_task, score
from infertune.measure.efficiency import efficiency
from infertune.measure.fingerprint import (
    check_threads,
    fingerprint,
    library_versions,
    usable_cores,
)
from infertune.measure.hostlock import host_timing_lock, host_work_lock
from infertune.measure.records import Measurement, MeasurementDetails, Scores, VariantFacts
from infertune.measure.variants import (
    CALIBRATION_SAMPLES,
    Variant,
    VariantCache,
    artifact_key,
    output_key,
    pruned_key,
)
from infertune.measure.window import DISTURBED_RETRIES, MeasurementWindow
from infertune.models import demo as demos
from infertune.models.data import (
    Dataset,
    check_data_file,
    check_inputs,
    input_keys,
    load_dataset,
)
from infertune.models.sources import ModelFormat, ModelSource, check_model_path
from infertune.runtimes import get_backend
from infertune.space.schema import Scenario, ScenarioSpec
from infertune.workers import WorkerProcess, WorkerRole
from infertune.workers.protocol import (
    BuildRequest,
    CalibrationData,
    DemoTrainRequest,
    InspectRequest,
    LatencyRequest,
    LoadRequest,
    PredictRequest,
    PruneRequest,
    SelectOutputRequest,
    ServeRequest,
    Timing,
    TrainingData,
)

EventHandler = Callable[[dict[str, Any]], None]

#: Bump when the inspection result's fields change.
_INSPECT_FORMAT = 3

#: What a converted variant inherits from the .keras variant it was converted from.
_INHERITED_FACTS = (
    "params",
    "macs",
    "params_before",
    "params_after",
    "layers",
    "finetune_epochs",
    "finetune_loss",
)

#: Figures of a record that come from the timing and from the scoring.
TIMING_FIGURES = (
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "throughput_sps",
)
_MEASUREMENT_DETAILS = (
    "timed_calls",
    "timed_s",
    "latency_std_ms",
    "latency_min_ms",
    "latency_max_ms",
    "load_s",
    "runtime_settings",
    "waited_for_lock_s",
    "latency_histogram",
    "worker_pid",
)
_PRUNING_FACTS = ("params_before", "params_after", "layers", "finetune_epochs")

# Time limits (seconds) for worker operations that are not timings.
INSPECT_TIMEOUT = 300.0
DEMO_TIMEOUT = 3600.0
BUILD_TIMEOUT = 3600.0
PREDICT_TIMEOUT = 900.0
LOAD_TIMEOUT = 300.0


@dataclass(frozen=True)
class Subject:
    """A model with its data, checked and inspected: what configurations are applied to.

    Attributes:
        output: The scored output named with ``--output`` (``None``: the model's only one).
        cut: The model cut to the scored output, where the source has several outputs:
            every variant, reference prediction and promoted model starts from it.
    """

    label: str
    source: ModelSource
    eval_data: Dataset
    train_data: Dataset | None
    info: dict[str, Any]
    task: dict[str, Any]
    output: str | None = None
    cut: Path | None = None
    trusted: bool = False
    """A SavedModel the user trusted (``--trust-saved-model``); the study remembers it."""

    @property
    def model_path(self) -> Path:
        """The model every variant is built from (the source, or its cut to the output)."""
        return self.cut if self.cut is not None else self.source.path

    @property
    def model_key(self) -> str:
        """The identity of :attr:`model_path` in cache keys (the source's hash if uncut)."""
        if self.cut is None:
            return self.source.sha256
        return json_sha256({"model": self.source.sha256, "output": self.output})

    @property
    def input_names(self) -> list[str]:
        """The model's inputs, in its order."""
        return [str(spec["name"]) for spec in self.info["inputs"]]

    @property
    def x_keys(self) -> list[str]:
        """The data's input arrays, one per model input in the model's order."""
        return list(self.eval_data.x_keys)

    def data_fields(self) -> dict[str, Any]:
        """How the study's data feeds the model (spec entries; a study resumes with them).

        ``x_keys`` and ``output`` appear only where they say more than ``x_key``: a
        single-input, single-output model's spec is what it always was.
        """
        fields: dict[str, Any] = {"x_key": self.eval_data.x_key, "y_key": self.eval_data.y_key}
        if len(self.x_keys) > 1:
            fields["x_keys"] = self.x_keys
        if self.output is not None:
            fields["output"] = self.output
        if self.trusted:
            fields["trust_saved_model"] = True
        return fields

    def serving_sample(self, limit: int) -> np.ndarray | dict[str, np.ndarray]:
        """Evaluation inputs as a promoted model takes them: an array, or a dict by input name."""
        xs = self.eval_data.load_inputs(limit)
        if len(xs) == 1:
            return xs[0]
        return dict(zip(self.input_names, xs, strict=True))


class Engine:
    """Builds, times and scores configurations of one or more models.

    Use as a context manager: worker processes are closed on exit.

    Args:
        settings: Where caches live.
        on_event: Receives ``progress``, ``step`` and ``warning`` events (for a display).
    """

    def __init__(self, settings: Settings, on_event: EventHandler | None = None) -> None:
        self.settings = settings
        self.on_event: EventHandler = on_event or (lambda event: None)
        self.cache = VariantCache(settings.variants_dir)
        self._tools: WorkerProcess | None = None
        # Measurement workers by (the backend's worker group, thread setting).
        self._measure: dict[tuple[str, int | None], WorkerProcess] = {}
        self._closed_startup_s = 0.0
        self.warnings: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker process."""
        workers = list(self._measure.values()) + ([self._tools] if self._tools else [])
        for worker in workers:
            worker.close()
        self._closed_startup_s += sum(w.startup_s for w in workers)
        self._measure.clear()
        self._tools = None

    @property
    def startup_s(self) -> float:
        """Seconds this engine's workers spent starting up (processes, runtime imports)."""
        workers = list(self._measure.values()) + ([self._tools] if self._tools else [])
        return self._closed_startup_s + sum(w.startup_s for w in workers)

    def warn(self, message: str) -> None:
        """Record a warning for the user (shown by the CLI, kept in the result)."""
        if message not in self.warnings:
            self.warnings.append(message)
            self.on_event({"event": "warning", "message": message})

    def _step(self, task: str) -> None:
        self.on_event({"event": "step", "task": task})

    def tools(self) -> WorkerProcess:
        """The worker for inspection, builds and demo training (started on first use)."""
        if self._tools is None:
            self._tools = WorkerProcess(WorkerRole.TOOLS)
        return self._tools

    def measure_worker(self, runtime: Runtime | str, threads: int | None) -> WorkerProcess:
        """The measurement worker for a runtime's worker group and a thread setting.

        Backends of one group (``tf`` and ``tf_xla``) share workers; a worker imports only
        its group's runtime.
        """
        key = (get_backend(runtime).worker_group, threads)
        if key not in self._measure:
            self._measure[key] = WorkerProcess(WorkerRole.MEASURE, threads=threads)
        return self._measure[key]

    # -- inputs --------------------------------------------------------------------------

    def resolve(
        self,
        model: str,
        data: Path | None = None,
        train_data: Path | None = None,
        x_key: str = "x",
        y_key: str = "y",
        output: str | None = None,
        x_keys: list[str] | None = None,
        trust_saved_model: bool = False,
    ) -> Subject:
        """Check a model and its data and inspect the model (cached by content).

        Args:
            model: A path (``.keras`` or SavedModel folder) or ``demo:NAME``.
            data: Evaluation ``.npz``; a demo model brings its own.
            train_data: Optional training ``.npz`` (fine-tuning after pruning, calibration);
                a demo model brings its own.
            x_key: Name of the input array in the data files; for a model with several
                inputs, the prefix of the positional names (``x0``, ``x1``, ...) used where no
                array is named after an input.
            y_key: Name of the target array in the data files.
            output: The scored output of a model with several (cut to it before anything).
            x_keys: The input arrays as resolved before (a resumed study's), one per input.
            trust_saved_model: Accept a SavedModel folder: a TensorFlow program whose ops
                run on this host (refused otherwise).

        Raises:
            InputError: Bad files, missing or ambiguous input arrays, several outputs and no
                ``output`` (or an unknown one), data that does not fit the model.
        """
        if model.startswith("demo:"):
            trained = self.ensure_demo(model)
            source = check_model_path(trained.model_path)
            data = data or trained.eval_path
            train_data = train_data or trained.train_path
        else:
            source = check_model_path(Path(model), trust_saved_model)
            if data is None:
                raise InputError(
                    "No evaluation data: pass --data FILE.npz with arrays 'x' (inputs) and "
                    "'y' (targets)."
                )
        # Cheap checks first: a wrong path fails before a worker starts.
        check_data_file(data, "evaluation data")
        if train_data is not None:
            check_data_file(train_data, "training data")
        info = self.inspect(source, output)
        names = [str(spec["name"]) for spec in info["inputs"]]
        # The arrays are chosen once, on the evaluation file; training data names them alike.
        keys = tuple(x_keys) if x_keys else input_keys(data, names, x_key)
        if train_data is not None and len(names) > 1 and not x_keys:
            train_keys = input_keys(train_data, names, x_key)
            if train_keys != keys:
                raise InputError(
                    f"The training data {train_data} names the model's inputs "
                    f"{', '.join(map(repr, train_keys))} but the evaluation data {data} "
                    f"{', '.join(map(repr, keys))}; name the arrays alike in both files."
                )
        eval_set = load_dataset(data, keys, y_key, role="evaluation data")
        train_set = (
            load_dataset(train_data, keys, y_key, role="training data") if train_data else None
        )
        check_inputs(eval_set, info["inputs"])
        if train_set is not None:
            check_inputs(train_set, info["inputs"])
        cut = self._cut_to_output(source, output) if len(info["outputs"]) > 1 else None
        task = detect_task(info["output_shape"], info["final_activation"], eval_set.load_y())
        trusted = trust_saved_model and source.format is ModelFormat.SAVED_MODEL
        return Subject(model, source, eval_set, train_set, info, task, info["output"], cut, trusted)

    def ensure_demo(self, name: str) -> demos.DemoModel:
        """Train a demo model on first use (cached under home)."""
        spec = demos.parse_demo(name)
        cached = demos.cached_demo(self.settings.demo_dir, spec)
        if cached is not None:
            return cached
        self._step(f"training demo:{spec.name} (first use only)")
        self.settings.demo_dir.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(prefix=f".tmp-{spec.name}-", dir=self.settings.demo_dir))
        try:
            self.tools().request(
                DemoTrainRequest(name=spec.name, out_dir=str(build_dir)),
                timeout=DEMO_TIMEOUT,
                on_event=self.on_event,
            )
            return demos.publish_demo(self.settings.demo_dir, spec, build_dir)
        finally:
            if build_dir.exists():
                import shutil

                shutil.rmtree(build_dir, ignore_errors=True)

    def inspect(self, source: ModelSource, output: str | None = None) -> dict[str, Any]:
        """Inputs, outputs and prunability of a model (cached by content hash and output).

        A model with several outputs is described as cut to ``output``; the worker refuses
        one without ``output`` or with an unknown one (the message lists its outputs).
        """
        name = source.sha256[:24] + (f"-{json_sha256(output)[:12]}" if output else "")
        path = self.settings.cache_dir / "models" / f"{name}.json"
        if path.is_file():
            info: dict[str, Any] = json.loads(path.read_text())
            if info.get("format") == _INSPECT_FORMAT:
                return info
        self._step("inspecting the model")
        answer = self.tools().request(
            InspectRequest(path=str(source.path), format=str(source.format), output=output),
            timeout=INSPECT_TIMEOUT,
            on_event=self.on_event,
        )
        info = answer.model_dump() | {"format": _INSPECT_FORMAT}
        _write_json(path, info)
        return info

    def _cut_to_output(self, source: ModelSource, output: str | None) -> Path:
        """The source model cut to its scored output (built once, cached by content)."""
        if output is None:  # pragma: no cover - inspection refuses it first
            raise InputError(f"Model {source.path} has several outputs; pass --output NAME.")
        key = output_key(source.sha256, output)

        def build(out: Path) -> dict[str, Any]:
            self._step(f"cutting the model to its output '{output}'")
            self.tools().request(
                SelectOutputRequest(source=str(source.path), out_path=str(out), output=output),
                timeout=INSPECT_TIMEOUT,
                on_event=self.on_event,
            )
            return {"output": output}

        facts = {"prune_ratio": 0.0, "precision": "fp32"}
        return self.cache.get_or_build(key, "keras", "model.keras", facts, build).path

    # -- variants ------------------------------------------------------------------------

    def variant(
        self, subject: Subject, config: InferenceConfig, finetune_epochs: int = 2
    ) -> Variant:
        """The artifact for ``config``, from the cache or built now."""
        if config.prune_ratio > 0 and not subject.info["prunable"]:
            raise PruningError(subject.info["not_prunable_reason"])
        base = self._keras_variant(subject, config, finetune_epochs)
        backend = get_backend(config.runtime)
        if backend.artifact_file is None:  # runs the Keras model as it is
            return base
        artifact_file = backend.artifact_file
        calibration = (
            self._calibration_data(subject) if backend.needs_calibration(config.precision) else None
        )
        key = artifact_key(
            backend,
            base.key,
            config.precision,
            {"data": calibration.sha256, **_keys(calibration)} if calibration else None,
        )

        def build(out: Path) -> dict[str, Any]:
            self._step(f"converting to {backend.title} ({config.precision})")
            request = BuildRequest(
                runtime=backend.name,
                source=str(base.path),
                source_format="savedmodel" if base.path.is_dir() else "keras",
                out_path=str(out),
                precision=str(config.precision),
                calibration=(
                    CalibrationData(
                        path=str(calibration.path),
                        x_keys=list(calibration.x_keys),
                        samples=CALIBRATION_SAMPLES,
                    )
                    if calibration is not None
                    else None
                ),
            )
            built = self.tools().request(request, timeout=BUILD_TIMEOUT, on_event=self.on_event)
            facts: dict[str, Any] = {
                "size_bytes": built.size_bytes,
                **built.details,
                "parent_key": base.key,
            }
            # A built pruned model keeps the facts of its pruning.
            facts.update({k: v for k, v in base.meta.items() if k in _INHERITED_FACTS})
            return facts

        facts = {"prune_ratio": config.prune_ratio, "precision": str(config.precision)}
        converted = self.cache.get_or_build(key, backend.family, artifact_file, facts, build)
        # Report the whole build: pruning and fine-tuning of the parent included.
        return dataclasses.replace(converted, build_s=converted.build_s + base.build_s)

    def _keras_variant(
        self, subject: Subject, config: InferenceConfig, finetune_epochs: int
    ) -> Variant:
        if config.prune_ratio == 0:
            return Variant(
                f"source-{subject.model_key}",
                "keras",
                subject.model_path,
                {
                    "params": subject.info.get("params"),
                    "macs": subject.info.get("macs"),
                    "source": True,
                },
            )
        train = subject.train_data
        if train is None:
            self.warn(
                "No training data: the pruned model is not fine-tuned, so expect a large "
                "accuracy drop (pass --train-data to fine-tune after pruning)."
            )
        epochs = finetune_epochs if train is not None else 0
        finetune = (
            {
                "data": train.sha256,
                **_keys(train),
                "y_key": train.y_key,
                "epochs": epochs,
                "seed": 0,
                "task": subject.task,
                # Part of the key: variants fine-tuned at another rate are not reused.
                "learning_rate": PruneRequest.model_fields["learning_rate"].default,
            }
            if train is not None and epochs > 0
            else None
        )
        key = pruned_key(subject.model_key, config.prune_ratio, finetune)

        def build(out: Path) -> dict[str, Any]:
            tuning = f", then fine-tuning {epochs} epochs" if epochs else ""
            self._step(f"pruning {config.prune_ratio:.0%} of the channels{tuning}")
            request = PruneRequest(
                source=str(subject.model_path),
                out_path=str(out),
                ratio=config.prune_ratio,
                task=subject.task,
                epochs=epochs,
                train=(
                    TrainingData(path=str(train.path), x_keys=list(train.x_keys), y_key=train.y_key)
                    if train is not None
                    else None
                ),
            )
            pruned = self.tools().request(request, timeout=BUILD_TIMEOUT, on_event=self.on_event)
            return pruned.model_dump() | {"params": pruned.params_after}

        facts = {"prune_ratio": config.prune_ratio, "precision": "fp32"}
        return self.cache.get_or_build(key, "keras", "model.keras", facts, build)

    def _calibration_data(self, subject: Subject) -> Dataset:
        if subject.train_data is not None:
            return subject.train_data
        self.warn(
            f"No training data: int8 calibration uses {CALIBRATION_SAMPLES} samples of "
            "the evaluation data (pass --train-data to calibrate on training data)."
        )
        return subject.eval_data

    # -- measuring -----------------------------------------------------------------------

    @staticmethod
    def _accuracy_key(subject: Subject, variant: Variant, config: InferenceConfig) -> Any:
        # Runtime and its library version can change numerics (int8 kernels especially).
        return {
            "variant": variant.key,
            "runtime": str(config.runtime),
            "data": subject.eval_data.sha256,
            **_keys(subject.eval_data),
            "y_key": subject.eval_data.y_key,
            "task": subject.task,
            "scoring": SCORING_VERSION,
            "libraries": library_versions(),
        }

    def reference_predictions(self, subject: Subject) -> np.ndarray:
        """The source model's fp32 predictions on the evaluation set (cached)."""
        data = subject.eval_data
        key = json_sha256(
            [subject.model_key, data.sha256, data.x_key]
            + ([list(data.x_keys)] if len(data.x_keys) > 1 else [])
        )
        path = self.settings.cache_dir / "reference" / f"{key[:32]}.npy"
        if not path.is_file():
            self._step("computing reference (fp32) predictions")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.measure_worker(Runtime.TF, None).request(
                PredictRequest(
                    artifact=str(subject.model_path),
                    runtime=str(Runtime.TF),
                    data_path=str(subject.eval_data.path),
                    x_keys=subject.x_keys,
                    out_path=str(path),
                ),
                timeout=PREDICT_TIMEOUT,
                on_event=self.on_event,
            )
        predictions: np.ndarray = np.load(path)
        return predictions

    def evaluate(self, subject: Subject, variant: Variant, config: InferenceConfig) -> Scores:
        """Score the variant on the whole evaluation set (cached per variant and data)."""
        path = (
            self.settings.cache_dir
            / "accuracy"
            / f"{json_sha256(self._accuracy_key(subject, variant, config))[:32]}.json"
        )
        if path.is_file():
            return Scores.model_validate_json(path.read_text())
        reference = self.reference_predictions(subject)
        self._step("scoring on the evaluation set")
        worker = self.measure_worker(config.runtime, config.threads)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "predictions.npy"
            worker.request(
                PredictRequest(
                    artifact=str(variant.path),
                    runtime=str(config.runtime),
                    data_path=str(subject.eval_data.path),
                    x_keys=subject.x_keys,
                    out_path=str(out),
                ),
                timeout=PREDICT_TIMEOUT,
                on_event=self.on_event,
            )
            predictions = np.load(out)
        figures = score(predictions, subject.eval_data.load_y(), reference, subject.task)
        result = Scores(**figures, eval_samples=subject.eval_data.size)
        _write_json(path, result.to_json())
        return result

    def time(
        self,
        subject: Subject,
        variant: Variant,
        config: InferenceConfig,
        window: MeasurementWindow,
        scenario: ScenarioSpec | None = None,
    ) -> Timing:
        """Time the variant under a scenario (default: single stream).

        One timing per host at a time (the host's timing lock).
        """
        # Host facts: checked here, not when a configuration parses.
        check_threads(config.threads, config.instances)
        if scenario is not None and scenario.name is not Scenario.SINGLE_STREAM:
            return self._serve(subject, variant, config, scenario)
        worker = self.measure_worker(config.runtime, config.threads)
        load = LoadRequest(
            artifact=str(variant.path),
            runtime=str(config.runtime),
            batch_size=config.batch_size,
            data_path=str(subject.eval_data.path),
            x_keys=subject.x_keys,
        )
        self._step(f"timing {config.label()}")
        loaded = worker.request(load, timeout=LOAD_TIMEOUT, on_event=self.on_event)

        def waiting() -> None:
            self._step(f"timing {config.label()}: waiting for another timing on this host")

        with host_timing_lock(on_wait=waiting) as waited:
            timing = worker.request(
                LatencyRequest(**load.model_dump(), window=window.model_dump()),
                timeout=window.timeout_s(),
                on_event=self.on_event,
            )
        return timing.model_copy(
            update={"waited_for_lock_s": round(waited, 3), "load_s": loaded.load_s}
        )

    def _serve(
        self, subject: Subject, variant: Variant, config: InferenceConfig, scenario: ScenarioSpec
    ) -> Timing:
        """The offline or server scenario, in one worker with ``instances`` model copies."""
        worker = self.measure_worker(config.runtime, config.threads)
        request = ServeRequest(
            artifact=str(variant.path),
            runtime=str(config.runtime),
            data_path=str(subject.eval_data.path),
            x_keys=subject.x_keys,
            scenario=str(scenario.name),  # type: ignore[arg-type]
            batch_size=config.batch_size,
            instances=config.instances,
            threads=config.threads,
            max_queue_delay_ms=config.max_queue_delay_ms,
            target_qps=scenario.target_qps,
            slo_p99_ms=scenario.slo_p99_ms,
            min_duration_s=scenario.min_duration_s,
        )
        self._step(f"serving {config.label()} ({scenario.name})")

        def waiting() -> None:
            self._step(f"serving {config.label()}: waiting for another timing on this host")

        # A rate search runs up to 9 runs of at least 662 queries each, plus loads; a run the
        # rest of the machine disturbed is run again.
        runs = (10 if scenario.slo_p99_ms is not None else 2) * (1 + DISTURBED_RETRIES)
        timeout = LOAD_TIMEOUT + runs * (scenario.min_duration_s * 4 + 60)
        with host_timing_lock(on_wait=waiting) as waited:
            timing = worker.request(request, timeout=timeout, on_event=self.on_event)
        return timing.model_copy(update={"waited_for_lock_s": round(waited, 3)})

    def bench(
        self,
        subject: Subject,
        config: InferenceConfig,
        window: MeasurementWindow,
        finetune_epochs: int = 2,
        scenario: ScenarioSpec | None = None,
    ) -> Measurement:
        """Build, time and score one configuration; the figures as one record.

        The build and the scoring hold the host's work lock (shared): they never run beside
        another process's timing.
        """
        with host_work_lock():
            variant = self.variant(subject, config, finetune_epochs)
        timing = self.time(subject, variant, config, window, scenario)
        with host_work_lock():
            scores = self.evaluate(subject, variant, config)
        return self.record(subject, config, variant, timing, scores, window, scenario)

    def record(
        self,
        subject: Subject,
        config: InferenceConfig,
        variant: Variant,
        timing: Timing,
        scores: Scores,
        window: MeasurementWindow,
        scenario: ScenarioSpec | None = None,
    ) -> Measurement:
        """Combine a timing and a scoring of one variant into the documented record."""
        price = (scenario or ScenarioSpec()).price_per_core_hour
        return Measurement(
            model=subject.label,
            model_sha256=subject.source.sha256,
            config=config,
            **{key: getattr(timing, key) for key in TIMING_FIGURES},
            **{key: getattr(scores, key) for key in SCORE_FIGURES},
            model_size_mb=round(variant.size_mb, 4),
            peak_memory_mb=timing.peak_memory_mb,
            macs=variant.meta.get("macs"),
            **efficiency(
                variant.meta.get("macs"),
                config.batch_size,
                timing.latency_mean_ms,
                str(config.precision),
                config.threads,
            ),
            valid=timing.valid,
            invalid_reason=timing.invalid_reason,
            scenario=timing.scenario,
            target_qps=timing.target_qps,
            achieved_qps=timing.achieved_qps,
            max_qps_at_slo=timing.max_qps_at_slo,
            slo_p99_ms=timing.slo_p99_ms,
            cost_per_million=cost_per_million(timing, config, price),
            task=subject.task,
            eval_samples=scores.eval_samples,
            measurement=MeasurementDetails(
                **{key: getattr(timing, key) for key in _MEASUREMENT_DETAILS},
                window=window,
                serving=timing.serving,
                contention=timing.contention,
                latency_p95_bound_ms=timing.latency_p95_bound_ms,
                latency_p99_bound_ms=timing.latency_p99_bound_ms,
            ),
            variant=VariantFacts(
                key=variant.key,
                path=str(variant.path),
                cache_hit=variant.cache_hit,
                build_s=round(variant.build_s, 2),
                params=variant.meta.get("params"),
                pruning={k: variant.meta[k] for k in _PRUNING_FACTS if k in variant.meta} or None,
            ),
            fingerprint=fingerprint(),
            warnings=list(self.warnings),
        )


def _keys(data: Dataset) -> dict[str, Any]:
    """A data set's input arrays in a cache key (as they always were for a single input)."""
    keys: dict[str, Any] = {"x_key": data.x_key}
    if len(data.x_keys) > 1:
        keys["x_keys"] = list(data.x_keys)
    return keys


def cost_per_million(
    timing: Timing, config: InferenceConfig, price_per_core_hour: float
) -> float | None:
    """USD for a million inferences at the measured rate on the cores the configuration uses.

    The rate is the server scenario's ``max_qps_at_slo`` (else its achieved rate), or the
    samples per second of the other scenarios; cores are instances x threads (all usable
    cores for the runtime's default). ``None`` without a valid rate.
    """
    rate = timing.max_qps_at_slo or timing.throughput_sps
    if not timing.valid or not rate:
        return None
    cores = config.cores(usable_cores())
    return round(price_per_core_hour * cores / (rate * 3600.0) * 1e6, 6)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)
