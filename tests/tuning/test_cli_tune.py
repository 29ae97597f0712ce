"""`infertune tune` and the read commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from infertune.cli.study import default_study_name
from infertune.config import Settings
from infertune.exceptions import ConfigurationError
from infertune.measure.engine import Subject
from infertune.space import load_space
from infertune.tuning.study import open_study

from ..test_cli import _one_error_line, run

SPACE = """
knobs:
  runtime: {type: categorical, choices: [tf, tflite]}
  precision: {type: categorical, choices: [fp32, fp16], when: {runtime: [tflite]}}
objectives: {latency_p95_ms: minimize, model_size_mb: minimize}
measurement:
  search: {warmup_s: 0.05, min_duration_s: 0.1, min_calls: 10}
  verify: {warmup_s: 0.05, min_duration_s: 0.1, min_calls: 20, repeats: 2}
"""


def test_tune_then_read_the_study(settings: Settings, cnn: Subject, tmp_path: Path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(SPACE)
    tune = (
        "tune",
        "demo:digits-cnn",
        "--space",
        str(space),
        "--study",
        "cli-study",
        "--trials",
        "3",
        "--json",
    )
    proc = run(*tune, "--sampler", "grid", home=settings.home)
    assert proc.returncode == 0, proc.stderr
    front = json.loads(proc.stdout)
    assert front["verified"] is True and front["points"]
    assert front["baseline"]["latency_p95_ms"] > 0
    studies = json.loads(run("studies", "--json", home=settings.home).stdout)
    (mine,) = [s for s in studies if s["study"] == "cli-study"]
    assert mine["trials"]["COMPLETE"] == 3 and mine["verified"]
    shown = json.loads(run("show", "cli-study", "--json", home=settings.home).stdout)
    assert [t["number"] for t in shown["trials"]] == [0, 1, 2]
    again = json.loads(run("front", "cli-study", "--json", home=settings.home).stdout)
    assert again["points"] == front["points"]
    table = run("front", "cli-study", home=settings.home)
    assert "Pareto front" in table.stdout and "tf fp32 (baseline)" in table.stdout
    # Resuming with the budget already spent runs nothing new.
    proc = run(*tune, "--no-verify", home=settings.home)
    assert proc.returncode == 0, proc.stderr


def test_tune_input_errors(settings: Settings, tmp_path: Path) -> None:
    assert "need a server database" in _one_error_line(
        run("tune", "demo:digits-cnn", "--jobs", "2", home=settings.home)
    )
    assert "Unknown sampler 'annealing'" in _one_error_line(
        run("tune", "demo:digits-cnn", "--sampler", "annealing", home=settings.home)
    )
    assert "shipped spaces: default, offline, quick, serving, tflite-cpu" in _one_error_line(
        run("tune", "demo:digits-cnn", "--space", "missing", home=settings.home)
    )
    assert "No study named 'nope'" in _one_error_line(run("front", "nope", home=settings.home))


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("~/models/diabetes_reg.keras", "diabetes_reg-quick"),
        ("/work/a/b/diabetes_reg.keras", "diabetes_reg-quick"),
        ("demo:digits-cnn", "digits-cnn-quick"),
        ("saved_model_dir/", "saved_model_dir-quick"),
    ],
)
def test_the_default_study_name_is_the_model_stem_and_the_space(model: str, name: str) -> None:
    assert default_study_name(model, "quick") == name


def test_a_study_name_taken_by_another_model_says_how_to_name_a_new_one(tmp_path: Path) -> None:
    space, _ = load_space("quick")
    url = f"sqlite:///{tmp_path / 'studies.db'}"

    def spec(model: str) -> dict[str, Any]:
        return {
            "model": model,
            "model_path": model,
            "model_sha256": model,
            "data_sha256": "data",
            "train_data_sha256": None,
            "space": space.model_dump(mode="json"),
        }

    sampler = optuna.samplers.RandomSampler(seed=0)
    for name in ("diabetes_reg-quick", "diabetes_reg-quick-2"):
        open_study(name, url, spec("/old/diabetes_reg.keras"), space, sampler)
    _, resumed = open_study(
        "diabetes_reg-quick", url, spec("/old/diabetes_reg.keras"), space, sampler
    )
    assert resumed
    with pytest.raises(ConfigurationError) as err:
        open_study("diabetes_reg-quick", url, spec("/new/diabetes_reg.keras"), space, sampler)
    message = str(err.value)
    assert "Study 'diabetes_reg-quick' exists with a different model" in message
    assert "(it tunes /old/diabetes_reg.keras)" in message
    assert "start a new study with --study diabetes_reg-quick-3" in message
    assert "\n" not in message
