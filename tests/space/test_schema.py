from pathlib import Path

import pytest

from infertune.exceptions import InputError
from infertune.space.loader import BUILTIN_DIR, load_space


@pytest.mark.parametrize("name", ["quick", "default", "tflite-cpu"])
def test_shipped_spaces_are_valid(name: str) -> None:
    space, path = load_space(name)
    assert path == BUILTIN_DIR / f"{name}.yaml"
    assert space.objectives


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


GOOD = """
knobs:
  runtime: {type: categorical, choices: [tf, tflite]}
objectives: {latency_p95_ms: minimize, accuracy: maximize}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "colour: red\n", "colour: unknown key"),
        (GOOD.replace("[tf, tflite]", "[tf, onnx]"), "runtime has unknown choices ['onnx']"),
        (
            GOOD.replace("knobs:\n", "knobs:\n  batch_size: {type: pow2, low: 1, high: 12}\n"),
            "high (12) is not a power of two",
        ),
        (
            GOOD.replace("runtime: {", "runtime: {when: {precision: [int8]}, "),
            "runtime.when may only name knobs sampled before it",
        ),
        (
            GOOD.replace("accuracy: maximize", "accuracy: minimize"),
            "objective accuracy should be maximized",
        ),
        (GOOD.replace("latency_p95_ms", "latency_p42_ms"), "objectives.latency_p42_ms"),
        (GOOD + "constraints: {max_accuracy_drop: -1}\n", "constraints.max_accuracy_drop"),
        ("knobs: [1, 2]\n", "knobs"),
        ("- just a list\n", "must be a mapping"),
        ("knobs: {runtime: [\n", "is not valid YAML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_space(_write(tmp_path, text))
    assert message in str(err.value)
    assert str(tmp_path / "space.yaml") in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_space_lists_the_shipped_ones() -> None:
    with pytest.raises(InputError, match="shipped spaces: default, quick, tflite-cpu"):
        load_space("nope.yaml")
