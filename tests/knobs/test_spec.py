import os

import pytest

from infertune.config import Settings
from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import ArtifactFamily, InferenceConfig, Precision, Runtime
from infertune.measure.engine import Engine
from infertune.measure.fingerprint import check_threads, usable_cores
from infertune.measure.window import MeasurementWindow


def test_defaults_are_the_baseline() -> None:
    config = InferenceConfig()
    assert (config.runtime, config.precision, config.prune_ratio) == (Runtime.TF, Precision.FP32, 0)
    assert (config.batch_size, config.threads) == (1, None)
    assert config.family is ArtifactFamily.KERAS


@pytest.mark.parametrize("precision", ["fp16", "int8_dynamic", "int8"])
@pytest.mark.parametrize("runtime", ["tf", "tf_xla"])
def test_reduced_precision_needs_tflite(runtime: str, precision: str) -> None:
    with pytest.raises(ConfigurationError, match=f"precision '{precision}' needs runtime 'tflite'"):
        InferenceConfig.parse(runtime=runtime, precision=precision)
    assert (
        InferenceConfig.parse(runtime="tflite", precision=precision).family is ArtifactFamily.TFLITE
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"runtime": "onnx"},
            "runtime: Input should be 'tf', 'tf_xla', 'tflite', 'openvino' or 'onnxruntime'",
        ),
        ({"precision": "int4"}, "precision: Input should be"),
        ({"prune_ratio": 1.0}, "prune_ratio: Input should be less than 1"),
        ({"prune_ratio": -0.1}, "prune_ratio: Input should be greater than or equal to 0"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"threads": 0}, "threads: Input should be greater than or equal to 1"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_values_get_one_clear_message(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match="^Invalid inference configuration: ") as err:
        InferenceConfig.parse(**values)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_label_names_every_knob() -> None:
    config = InferenceConfig.parse(
        runtime="tflite", precision="int8", prune_ratio=0.5, batch_size=4, threads=1
    )
    assert config.label() == "tflite/int8/prune0.50/bs4/threads=1"


def test_more_threads_than_this_host_has_parse_and_fail_where_measured(
    settings: Settings,
) -> None:
    # A configuration stored on a bigger machine still parses here (host facts are not
    # checked while parsing); the measurement refuses it with one clear line.
    threads = (os.cpu_count() or 1) + 1
    config = InferenceConfig.parse(runtime="tflite", threads=threads)
    assert config.threads == threads
    check_threads(usable_cores())
    with pytest.raises(ConfigurationError, match=f"^threads={threads} exceeds the ") as err:
        check_threads(threads)
    assert f"between 1 and {usable_cores()}" in str(err.value)
    assert "\n" not in str(err.value)
    with Engine(settings) as engine:
        with pytest.raises(ConfigurationError, match="exceeds the"):
            engine.time(None, None, config, MeasurementWindow())  # type: ignore[arg-type]
        assert not engine._measure  # refused before any measurement worker started
