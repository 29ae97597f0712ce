import os

import pytest

from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import ArtifactFamily, InferenceConfig, Precision, Runtime


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
        ({"runtime": "onnx"}, "runtime: Input should be 'tf', 'tf_xla' or 'tflite'"),
        ({"precision": "int4"}, "precision: Input should be"),
        ({"prune_ratio": 1.0}, "prune_ratio: Input should be less than 1"),
        ({"prune_ratio": -0.1}, "prune_ratio: Input should be greater than or equal to 0"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"threads": 0}, "threads: Input should be greater than or equal to 1"),
        ({"threads": (os.cpu_count() or 1) + 1}, "exceeds the"),
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
