"""The command line as a user runs it: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infertune.config import Settings
from infertune.measure.engine import Subject


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERTUNE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


#: Six configurations of demo:digits-cnn with an accuracy objective (tests of what follows a
#: study: registry, dashboard).
TINY_SPACE = """
knobs:
  runtime: {type: categorical, choices: [tf, tflite]}
  precision: {type: categorical, choices: [fp32, int8], when: {runtime: [tflite]}}
  prune_ratio: {type: float, low: 0.0, high: 0.5, step: 0.5}
objectives: {latency_p95_ms: minimize, accuracy: maximize}
constraints: {max_accuracy_drop: 0.05}
measurement:
  search: {warmup_s: 0.05, min_duration_s: 0.1, min_calls: 10}
  verify: {warmup_s: 0.05, min_duration_s: 0.1, min_calls: 20, repeats: 2}
finetune_epochs: 1
"""


def tune_tiny(home: Path, study: str) -> dict[str, Any]:
    """Tune all of TINY_SPACE on demo:digits-cnn through the CLI; the printed front."""
    space = home / "tiny.yaml"
    space.write_text(TINY_SPACE)
    proc = run(
        "tune", "demo:digits-cnn", "--space", str(space), "--study", study,
        "--trials", "6", "--sampler", "grid", "--json", home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    front: dict[str, Any] = json.loads(proc.stdout)
    return front


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("infertune: error: ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


QUICK_FLAGS = ("--warmup", "0.05", "--min-duration", "0.1", "--min-calls", "10")


def test_bench_json_has_the_documented_figures(settings: Settings, cnn: Subject) -> None:
    proc = run(
        "bench",
        "demo:digits-cnn",
        "--runtime",
        "tflite",
        "--precision",
        "int8",
        *QUICK_FLAGS,
        "--json",
        home=settings.home,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in (
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "throughput_sps",
        "accuracy",
        "agreement",
        "model_size_mb",
        "valid",
    ):
        assert key in result
    assert result["valid"] is True and result["accuracy"] > 0.8
    assert result["config"]["precision"] == "int8"
    assert result["warnings"] == []  # the demo brings training data for calibration


def test_bench_table(settings: Settings, cnn: Subject) -> None:
    proc = run("bench", "demo:digits-cnn", *QUICK_FLAGS, home=settings.home)
    assert proc.returncode == 0, proc.stderr
    assert "latency p50 / p90 / p95 / p99" in proc.stdout
    assert "accuracy (top-1)" in proc.stdout


def test_invalid_measurement_exits_3(settings: Settings, cnn: Subject) -> None:
    proc = run(
        "bench",
        "demo:digits-cnn",
        "--runtime",
        "tflite",
        "--min-calls",
        "1000000000",
        "--min-duration",
        "0.1",
        "--max-duration",
        "0.3",
        "--json",
        home=settings.home,
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["valid"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bench", "missing.keras", "--data", "x.npz"), "missing.keras does not exist"),
        (("bench", "demo:nope"), "Unknown demo model 'demo:nope'; choose one of demo:digits-cnn"),
        (
            ("bench", "demo:digits-cnn", "--runtime", "tf", "--precision", "int8"),
            "precision 'int8' needs runtime 'tflite'",
        ),
        (("bench", "demo:digits-cnn", "--prune-ratio", "1.5"), "--prune-ratio: Input should be"),
        (
            ("bench", "demo:digits-cnn", "--min-duration", "5", "--max-duration", "1"),
            "below the minimum duration",
        ),
    ],
)
def test_bad_input_gets_one_line(settings: Settings, args: tuple[str, ...], message: str) -> None:
    assert message in _one_error_line(run(*args, home=settings.home))


def test_wrong_data_shape_shows_both_shapes(
    settings: Settings, cnn: Subject, tmp_path: Path
) -> None:
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.zeros((3, 8, 8), np.float32), y=np.zeros(3, np.int64))
    line = _one_error_line(
        run("bench", str(cnn.source.path), "--data", str(data), home=settings.home)
    )
    assert "shape (8, 8)" in line and "expects (32, 32, 1)" in line


def test_info_and_version(settings: Settings) -> None:
    proc = run("info", "--json", home=settings.home)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["home"] == str(settings.home)
    assert "demo:digits-midcnn" in payload["demos"]
    assert run("--version", home=settings.home).stdout.startswith("infertune ")


def test_an_unexpected_error_is_one_line_with_its_traceback_in_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import infertune.cli as cli
    from infertune.cli._common import State
    from infertune.config import load_settings

    def boom() -> None:
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setattr(State, "settings", load_settings(home=tmp_path))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("infertune: error: unexpected RuntimeError: something nobody foresaw")
    log = Path(err.split("the full traceback is in ")[1].split(";")[0])
    assert log.parent == tmp_path / "logs"
    assert "Traceback" in log.read_text() and "boom" in log.read_text()


def test_a_sqlite_storage_in_a_folder_that_cannot_exist_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(run("studies", "--storage", "sqlite:////proc/nope/x.db", home=tmp_path))
    assert "its folder /proc/nope cannot be created (No such file or directory)" in line


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (OSError(28, "No space left on device"), "the disk is full (ENOSPC): free space"),
        (OSError(30, "Read-only file system", "/h/x"), "the file system is read-only (EROFS)"),
        (OSError(2, "No such file or directory", "/h/x"), "No such file or directory: '/h/x'"),
    ],
)
def test_an_operating_system_error_is_one_line_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: OSError,
    says: str,
) -> None:
    import infertune.cli as cli

    def fails() -> None:
        raise error

    monkeypatch.setattr(cli, "app", fails)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"infertune: error: {error}")
    assert says in err
