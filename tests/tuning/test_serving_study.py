"""A server-scenario study end to end: the rate search per trial, verification under the same
load, the speed-up in rates, the curves for the dashboard, the promoted version's tags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from infertune.tuning import queries

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
SPACE = {
    "knobs": {
        "runtime": {"type": "categorical", "choices": ["tflite"]},
        "batch_size": {"type": "categorical", "choices": [1, 8]},
        "max_queue_delay_ms": {"type": "categorical", "choices": [0.0, 2.0]},
        "threads": {"type": "categorical", "choices": [1]},
    },
    "objectives": {"max_qps_at_slo": "maximize", "quality": "maximize"},
    "measurement": {
        "scenario": {"name": "server", "slo_p99_ms": 20, "min_duration_s": 0.3},
        "verify": {"repeats": 2},
    },
}


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INFERTUNE_HOME": str(home)}
    env.pop("INFERTUNE_DB_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args], env=env, capture_output=True, text=True,
        check=False, timeout=1200,
    )  # fmt: skip


def test_server_study_tunes_verifies_draws_and_promotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = tmp_path / "server.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    tuned = _run(
        tmp_path, "tune", "demo:digits-cnn", "--space", str(space), "--trials", "4",
        "--study", "load", "--json",
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    front = json.loads(tuned.stdout)
    assert front["verified"] and front["points"]
    for point in front["points"]:
        assert point["figures"]["max_qps_at_slo"] > 0
        # The speed-up of a server study is the ratio of the rates that meet the objective.
        base = front["baseline"]["max_qps_at_slo"]
        assert point["speedup_p95"] == pytest.approx(point["figures"]["max_qps_at_slo"] / base)

    study = optuna.load_study(study_name="load", storage=f"sqlite:///{tmp_path / 'infertune.db'}")
    curves = queries.serving_curves(study)
    assert curves is not None and curves["slo_p99_ms"] == 20
    assert curves["curves"] and all(len(c["points"]) >= 2 for c in curves["curves"])

    monkeypatch.setenv("INFERTUNE_HOME", str(tmp_path))
    for key in [k for k in os.environ if k.startswith(("INFERTUNE_DASHBOARD", "INFERTUNE_DB"))]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.switch_page("views/study.py")
    app.query_params.update({"study": "load"})
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Under load: rate vs p99" in [s.value for s in app.subheader]

    best = max(front["points"], key=lambda p: p["figures"]["max_qps_at_slo"])
    promoted = _run(
        tmp_path, "promote", "load", "--trial", str(best["number"]), "--name", "digits-load",
        "--json",
    )  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    shown = json.loads(_run(tmp_path, "registry", "digits-load", "--json").stdout)
    assert shown["versions"][0]["scenario"] == "server"
