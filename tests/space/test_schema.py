from pathlib import Path

import pytest

from infertune.exceptions import ConfigurationError, InputError
from infertune.space.loader import BUILTIN_DIR, load_space
from infertune.space.schema import IntRange


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
    with pytest.raises(
        InputError, match="shipped spaces: default, offline, quick, serving, tflite-cpu"
    ):
        load_space("nope.yaml")


def test_high_cores_resolves_on_the_measuring_host_not_while_parsing(tmp_path: Path) -> None:
    # A space asking for at least 512 threads parses on any machine ...
    text = GOOD.replace("knobs:\n", "knobs:\n  threads: {type: int, low: 512, high: cores}\n")
    space, _ = load_space(_write(tmp_path, text))
    threads = space.knobs.threads
    assert isinstance(threads, IntRange)
    # ... and resolves against the core count of the host that samples and measures.
    assert threads.model_copy(update={"low": 1}).resolved_high(cores=3) == 3
    empty = "512..cores is empty on this machine, which has 2 usable cores"
    with pytest.raises(ConfigurationError, match=empty):
        threads.resolved_high(cores=2)
    fixed = IntRange(type="int", low=1, high=64)
    assert fixed.resolved_high(cores=2) == 64
    with pytest.raises(ValueError, match=r"high \(1\) is below low \(2\)"):
        IntRange(type="int", low=2, high=1)


def test_quality_figures_and_constraints_of_every_task(tmp_path: Path) -> None:
    text = GOOD.replace("accuracy: maximize", "quality: maximize, r2: maximize, mae: minimize")
    text += "constraints: {max_quality_drop: 0.03, max_rel_mae_vs_fp32: 0.1, min_agreement: 0.9}\n"
    space, _ = load_space(_write(tmp_path, text))
    assert [str(f) for f in space.objectives] == ["latency_p95_ms", "quality", "r2", "mae"]
    assert space.constraints.max_quality_drop == 0.03
    assert space.constraints.max_rel_mae_vs_fp32 == 0.1
    for wrong, message in [
        ("quality: minimize", "objective quality should be maximized"),
        ("rel_mae_vs_fp32: maximize", "objective rel_mae_vs_fp32 should be minimized"),
    ]:
        with pytest.raises(InputError, match=message):
            load_space(_write(tmp_path, GOOD.replace("accuracy: maximize", wrong)))
    with pytest.raises(InputError, match="constraints.max_quality_drop"):
        load_space(_write(tmp_path, GOOD + "constraints: {max_quality_drop: -0.1}\n"))


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # An AWS credentials file (the reported leak: its second line was quoted).
        (
            f"[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {SECRET}\n",
            "is not valid YAML: expected '<document start>', but found '<scalar>' at line 2",
        ),
        # /etc/shadow: each line parses as a key.
        (f"root:$6$salt${SECRET}:19000:0:99999:7:::\n", "is not a search space"),
        ("a: *AKIAEXAMPLESECRETALIAS\n", "found undefined alias (text not shown) at line 1"),
        (f"x: !!python/object:os.system {SECRET}\n", "could not determine a constructor"),
        (f'objectives: "{SECRET}\n', "found unexpected end of stream at line 2"),
        (GOOD + f"'{SECRET}': 1\n", "(a key not shown): unknown key"),
        (GOOD.replace("knobs:\n", f"knobs:\n  '{SECRET}': 1\n"), "knobs.(a key not shown)"),
    ],
)
def test_errors_never_quote_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_space(_write(tmp_path, text))
    assert message in str(err.value)
    assert SECRET not in str(err.value) and "AKIA" not in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_binary_and_huge_files_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + SECRET.encode())
    with pytest.raises(InputError, match="is not a UTF-8 text"):
        load_space(str(binary))
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(InputError, match="larger than 1 MiB"):
        load_space(str(huge))
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(InputError, match="does not exist"):
        load_space(str(folder))
