"""Models with several inputs or outputs through the command line, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.multiio import MultiIO


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERTUNE_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


@pytest.mark.slow
def test_bench_scores_the_output_named_with_output(multiio: MultiIO, tmp_path: Path) -> None:
    args = ("bench", str(multiio.two_output), "--data", str(multiio.eval_positional))
    refused = run(*args, home=tmp_path)
    assert refused.returncode == 1
    (line,) = [ln for ln in refused.stderr.splitlines() if "error" in ln]  # one line
    assert "has 2 outputs ('digit', 'ink'); choose the scored one with --output NAME" in line
    unknown = run(*args, "--output", "score", home=tmp_path)
    assert unknown.returncode == 1
    assert "no output named 'score'; its outputs are 'digit', 'ink'" in unknown.stderr
    proc = run(
        *args, "--output", "ink", "--runtime", "tflite", "--min-duration", "0.1", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["task"]["kind"] == "regression" and record["rel_mae_vs_fp32"] < 1e-3


@pytest.mark.slow
def test_tune_a_two_input_model_reaches_a_verified_front(multiio: MultiIO, tmp_path: Path) -> None:
    proc = run(
        "tune", str(multiio.two_input), "--data", str(multiio.eval_positional),
        "--space", "quick", "--trials", "4", "--study", "two-inputs", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    front = json.loads(proc.stdout)
    assert front["verified"] is True and front["points"], front
    # The study remembers how its data feeds the model, and resumes with it.
    shown = run("show", "two-inputs", "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    again = run(
        "tune", str(multiio.two_input), "--data", str(multiio.eval_positional),
        "--space", "quick", "--trials", "4", "--study", "two-inputs", "--json",
        home=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
