"""The engine end to end on the tiny demo model: variants, cache, timing, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from infertune.exceptions import InputError, PruningError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.measure.window import MeasurementWindow
from tests.conftest import QUICK
from tests.multiio import MultiIO


def _config(**values: object) -> InferenceConfig:
    return InferenceConfig.parse(**values)


def _tensor_types(path: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}


def test_demo_is_trained_once_and_scores_well(engine: Engine, cnn: Subject) -> None:
    info = engine.ensure_demo("demo:digits-cnn").info
    assert info["eval_accuracy"] > 0.9
    assert cnn.task["kind"] == "classification" and cnn.task["classes"] == 10
    assert cnn.info["prunable"] is True
    assert cnn.train_data is not None and cnn.eval_data.size == info["eval_samples"]


def test_baseline_bench_is_valid_and_matches_the_reference(engine: Engine, cnn: Subject) -> None:
    result = engine.bench(cnn, _config(), QUICK)
    assert result.valid is True
    assert result.latency_p50_ms <= result.latency_p95_ms <= result.latency_p99_ms
    assert result.throughput_sps > 0
    assert result.agreement == 1.0  # the baseline *is* the reference
    assert result.accuracy == pytest.approx(
        engine.ensure_demo("demo:digits-cnn").info["eval_accuracy"], abs=1e-6
    )
    assert result.measurement.timed_calls >= QUICK.min_calls
    assert result.model_size_mb > 0 and result.peak_memory_mb > 0
    assert len(result.fingerprint["hardware_id"]) == 12
    # Conv 32x32x(3*3*1*16) + conv 16x16x(3*3*16*32) + dense 2048x64 + dense 64x10
    assert result.macs == 1024 * 144 + 256 * 4608 + 2048 * 64 + 640
    assert result.gflops == pytest.approx(2 * result.macs / (result.latency_mean_ms / 1e3) / 1e9)


def test_precision_changes_the_artifact(engine: Engine, cnn: Subject) -> None:
    variants = {
        p: engine.variant(cnn, _config(runtime="tflite", precision=p))
        for p in ("fp32", "fp16", "int8_dynamic", "int8")
    }
    sizes = {p: v.size_mb for p, v in variants.items()}
    assert sizes["fp16"] < 0.6 * sizes["fp32"]
    assert sizes["int8_dynamic"] < 0.35 * sizes["fp32"]
    assert sizes["int8"] < 0.35 * sizes["fp32"]
    assert "int8" not in _tensor_types(variants["fp32"].path)
    assert "float16" in _tensor_types(variants["fp16"].path)
    assert "int8" in _tensor_types(variants["int8_dynamic"].path)
    # Full integer: activations are int8 too, so far more int8 tensors than weights alone.
    int8_full = _tensor_types(variants["int8"].path)
    assert {"int8", "int32"} <= int8_full


def test_variants_are_cached_by_content(engine: Engine, cnn: Subject) -> None:
    first = engine.variant(cnn, _config(runtime="tflite", precision="fp16"))
    again = engine.variant(
        cnn, _config(runtime="tflite", precision="fp16", batch_size=8, threads=1)
    )
    assert again.cache_hit and again.key == first.key and again.path == first.path
    other = engine.variant(cnn, _config(runtime="tflite", precision="fp32"))
    assert other.key != first.key


def test_pruning_shrinks_the_model_and_fine_tuning_recovers(engine: Engine, cnn: Subject) -> None:
    config = _config(runtime="tflite", precision="fp32", prune_ratio=0.5)
    result = engine.bench(cnn, config, QUICK, finetune_epochs=2)
    pruning = result.variant.pruning
    assert pruning["params_after"] < 0.5 * pruning["params_before"]
    assert pruning["finetune_epochs"] == 2
    assert result.accuracy > 0.85
    full = engine.variant(cnn, _config(runtime="tflite", precision="fp32"))
    assert result.model_size_mb < 0.5 * full.size_mb


def test_threads_and_batch_size_reach_the_runtime(engine: Engine, cnn: Subject) -> None:
    tf1 = engine.bench(cnn, _config(threads=1, batch_size=4), QUICK)
    assert tf1.measurement.runtime_settings["intra_op_threads"] == 1
    lite = engine.bench(cnn, _config(runtime="tflite", threads=1, batch_size=4), QUICK)
    assert lite.measurement.runtime_settings["num_threads"] == 1
    assert lite.config.batch_size == 4
    # throughput counts samples: 4 per call
    assert lite.throughput_sps == pytest.approx(
        4 * lite.measurement.timed_calls / lite.measurement.timed_s, rel=0.01
    )


def test_run_that_misses_its_minimums_is_invalid(engine: Engine, cnn: Subject) -> None:
    window = MeasurementWindow(
        warmup_s=0, warmup_calls=1, min_duration_s=0.1, min_calls=10**9, max_duration_s=0.3
    )
    result = engine.bench(cnn, _config(runtime="tflite"), window)
    assert result.valid is False
    assert "fewer than the minimum 1000000000" in result.invalid_reason
    assert result.latency_p50_ms is None and result.throughput_sps is None


def test_data_that_does_not_fit_the_model(engine: Engine, cnn: Subject, npz) -> None:  # type: ignore[no-untyped-def]
    bad = npz(x=np.zeros((4, 28, 28, 1), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(
        InputError,
        match=r"shape \(28, 28, 1\) but the model expects "
        r"\(32, 32, 1\)",
    ):
        engine.resolve(str(cnn.source.path), data=bad)
    with pytest.raises(InputError, match="No evaluation data: pass --data"):
        engine.resolve(str(cnn.source.path))


def test_unprunable_model_is_refused_before_any_build(engine: Engine, tmp_path: Path, npz) -> None:  # type: ignore[no-untyped-def]
    import keras

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4)(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Add()([hidden, inputs]))
    path = tmp_path / "residual.keras"
    keras.Model(inputs, outputs).save(path)
    data = npz(x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.array([0, 1] * 4))
    subject = engine.resolve(str(path), data=data)
    assert subject.info["prunable"] is False
    # The skip from the input ties every channel to the input, which keeps its channels.
    with pytest.raises(PruningError, match="no channels that structured pruning can remove"):
        engine.variant(subject, _config(prune_ratio=0.5))
    # The unpruned model still benches.
    assert engine.bench(subject, _config(runtime="tflite"), QUICK).valid


def test_saved_model_runs_but_cannot_be_pruned(
    engine: Engine, cnn: Subject, tmp_path: Path
) -> None:
    import keras

    exported = tmp_path / "saved"
    keras.saving.load_model(cnn.source.path, compile=False).export(str(exported), verbose=False)
    with pytest.raises(InputError, match="--trust-saved-model"):
        engine.resolve(str(exported), data=cnn.eval_data.path)
    subject = engine.resolve(str(exported), data=cnn.eval_data.path, trust_saved_model=True)
    assert subject.data_fields()["trust_saved_model"] is True
    assert subject.source.format == "savedmodel"
    for config in (_config(), _config(runtime="tflite", precision="int8_dynamic")):
        result = engine.bench(subject, config, QUICK)
        assert result.valid and result.agreement > 0.95
    with pytest.raises(PruningError, match="SavedModel, which has no Keras layers to prune"):
        engine.variant(subject, _config(prune_ratio=0.25))


def test_unsafe_keras_model_is_refused(engine: Engine, tmp_path: Path, npz) -> None:  # type: ignore[no-untyped-def]
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)]
    )
    path = tmp_path / "lambda.keras"
    model.save(path)
    data = npz(x=np.zeros((2, 4), np.float32), y=np.array([0, 1]))
    with pytest.raises(InputError, match="Cannot load the Keras model .*safe_mode"):
        engine.resolve(str(path), data=data)


def test_measurement_json_is_the_documented_flat_record(engine: Engine, cnn: Subject) -> None:
    record = engine.bench(cnn, _config(runtime="tflite", threads=1), QUICK)
    data = record.to_json()
    assert list(data) == [
        "model", "model_sha256", "config",
        "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
        "latency_mean_ms", "throughput_sps",
        "accuracy", "agreement", "mae", "reference_mae", "rmse", "r2", "rel_mae_vs_fp32", "quality",
        "model_size_mb", "peak_memory_mb", "macs", "gflops", "peak_pct",
        "valid", "invalid_reason",
        "scenario", "target_qps", "achieved_qps", "max_qps_at_slo", "slo_p99_ms",
        "cost_per_million",
        "task", "eval_samples",
        "measurement", "variant", "fingerprint", "warnings",
    ]  # fmt: skip
    assert data["config"] == record.config.model_dump(mode="json")
    assert data["measurement"]["window"] == QUICK.model_dump()
    assert json.loads(json.dumps(data)) == data
    assert data["config"]["runtime"] == "tflite" and data["valid"] is record.valid


# -- several inputs and outputs ---------------------------------------------------------------


def test_a_two_input_model_reads_arrays_by_name_or_position(
    engine: Engine, multiio: MultiIO
) -> None:
    named = engine.resolve(str(multiio.two_input), multiio.eval_named, multiio.train_named)
    assert named.x_keys == ["image", "features"] and named.input_names == ["image", "features"]
    assert named.train_data is not None and named.train_data.x_keys == ("image", "features")
    assert named.cut is None and named.model_path == named.source.path
    assert named.data_fields() == {"x_key": "image", "y_key": "y", "x_keys": ["image", "features"]}
    positional = engine.resolve(str(multiio.two_input), multiio.eval_positional)
    assert positional.x_keys == ["x0", "x1"]
    # Both files hold the same samples: the same predictions, the same scores.
    config = InferenceConfig.parse(runtime="tflite", threads=1)
    first = engine.evaluate(named, engine.variant(named, config), config)
    second = engine.evaluate(positional, engine.variant(positional, config), config)
    assert first.accuracy == second.accuracy and first.accuracy is not None
    assert first.accuracy > 0.8 and first.agreement == 1.0
    sample = named.serving_sample(3)
    assert isinstance(sample, dict) and list(sample) == ["image", "features"]
    assert sample["features"].shape == (3, 16)


def test_a_single_input_study_keeps_its_spec_fields(cnn: Subject) -> None:
    # Old studies resume only if a single-input, single-output spec is unchanged.
    assert cnn.data_fields() == {"x_key": "x", "y_key": "y"}
    assert cnn.model_key == cnn.source.sha256


def test_missing_input_arrays_are_one_clear_line(engine: Engine, multiio: MultiIO, npz) -> None:  # type: ignore[no-untyped-def]
    with np.load(multiio.eval_named) as data:
        path = npz(image=data["image"], y=data["y"])
    with pytest.raises(InputError) as info:
        engine.resolve(str(multiio.two_input), path)
    assert "no array for the model's input(s) 'features'" in str(info.value)
    assert "the file has 'image', 'y'" in str(info.value)
    with np.load(multiio.eval_named) as data:
        wrong = npz("wrong.npz", image=data["image"], features=data["features"][:, :8], y=data["y"])
    with pytest.raises(InputError, match=r"but the model's input 'features' expects \(16,\)"):
        engine.resolve(str(multiio.two_input), wrong)


def test_several_outputs_need_output_and_a_known_name(engine: Engine, multiio: MultiIO) -> None:
    with pytest.raises(InputError, match=r"has 2 outputs \('digit', 'ink'\); .*--output NAME"):
        engine.resolve(str(multiio.two_output), multiio.eval_named)
    with pytest.raises(InputError, match=r"no output named 'class'; its outputs are 'digit'"):
        engine.resolve(str(multiio.two_output), multiio.eval_named, output="class")


def test_the_scored_output_is_what_every_variant_serves(engine: Engine, multiio: MultiIO) -> None:
    with pytest.raises(InputError, match=r"names the model's inputs 'image', 'features' but "):
        engine.resolve(
            str(multiio.two_output), multiio.eval_positional, multiio.train_named, output="digit"
        )
    subject = engine.resolve(
        str(multiio.two_output), multiio.eval_named, multiio.train_named, output="digit"
    )
    assert subject.cut is not None and subject.model_path == subject.cut
    assert subject.model_key != subject.source.sha256
    assert subject.task["kind"] == "classification" and subject.task["classes"] == 10
    assert subject.data_fields()["output"] == "digit"
    assert engine.reference_predictions(subject).shape == (subject.eval_data.size, 10)
    base = engine.variant(subject, InferenceConfig.parse())
    assert base.path == subject.cut
    result = engine.bench(subject, InferenceConfig.parse(runtime="onnxruntime", threads=1), QUICK)
    assert result.valid and result.agreement == 1.0
    assert result.accuracy is not None and result.accuracy > 0.8
    # The other output makes another subject: a regression, its own cut model and cache keys.
    ink = engine.resolve(str(multiio.two_output), multiio.eval_named, output="ink")
    assert ink.cut != subject.cut and ink.model_key != subject.model_key
    assert ink.info["output_shape"] == [None, 1]


def test_a_two_input_model_is_pruned_by_half_and_converted(
    engine: Engine, multiio: MultiIO
) -> None:
    subject = engine.resolve(str(multiio.two_input), multiio.eval_named, multiio.train_named)
    config = InferenceConfig.parse(runtime="tflite", precision="int8", prune_ratio=0.5, threads=1)
    result = engine.bench(subject, config, QUICK)
    assert result.valid
    assert result.variant.pruning is not None
    assert result.variant.pruning["params_after"] < result.variant.pruning["params_before"] / 2
    assert result.accuracy is not None and result.accuracy > 0.6


def test_a_study_spec_carries_the_arrays_and_output_to_a_resume(
    engine: Engine, multiio: MultiIO
) -> None:
    from infertune.tuning.records import StudySpec

    subject = engine.resolve(str(multiio.two_output), multiio.eval_positional, output="ink")
    stored = {
        "model": subject.label,
        "model_path": str(subject.source.path),
        "model_sha256": subject.source.sha256,
        "data": str(subject.eval_data.path),
        "data_sha256": subject.eval_data.sha256,
        **subject.data_fields(),
        "space": {},
    }
    spec = StudySpec.model_validate(stored)
    assert spec.x_keys == ["x0", "x1"] and spec.output == "ink"
    assert spec.as_json() == {**stored, "train_data": None, "train_data_sha256": None}
    resumed = engine.resolve(
        spec.model, Path(spec.data), None, spec.x_key, spec.y_key, spec.output, spec.x_keys
    )
    assert resumed.x_keys == ["x0", "x1"] and resumed.cut == subject.cut
    # An old single-input spec has neither field, and stores none.
    old = StudySpec.model_validate({**stored, "x_key": "x", "x_keys": None, "output": None})
    assert "x_keys" not in old.as_json() and "output" not in old.as_json()
