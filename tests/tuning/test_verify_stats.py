"""The statistically verified front on crafted repeats: intervals, ties, coverage, display.

``retime_interleaved`` is replaced by one that returns chosen timings, so each case is exact
and no model is built or timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import optuna
import pytest

from infertune.measure.engine import Engine, Subject
from infertune.space.schema import SearchSpace
from infertune.tuning import queries
from infertune.tuning import study as study_module
from infertune.tuning.front import pareto_front
from infertune.tuning.records import StudyView, trial_rows
from infertune.tuning.study import verified_summary, verify_front
from infertune.workers.protocol import Timing

CONFIGS = {
    0: {"runtime": "tflite", "precision": "int8", "prune_ratio": 0.0},
    1: {"runtime": "tflite", "precision": "int8", "prune_ratio": 0.5},
    2: {"runtime": "tflite", "precision": "fp32", "prune_ratio": 0.5},
    3: {"runtime": "tflite", "precision": "fp32", "prune_ratio": 0.0},
}

#: What the search measured: all four on its front. #0 and #1 measured alike; #2 fast but
#: less accurate; #3 slow and most accurate.
SEARCH = {
    0: (1.00, 0.95),
    1: (1.00, 0.95),
    2: (0.90, 0.94),
    3: (2.00, 0.99),
}

#: The p95 of each interleaved repeat, in round order.
REPEATS: dict[int | str, list[float]] = {
    # #1 is 10% slower than #0 by the medians, but their intervals overlap: a tie.
    0: [1.00, 0.96, 1.04, 0.98, 1.02],
    1: [1.10, 1.03, 1.18, 1.06, 1.14],
    # #2 was lucky in the search: surely slower than #0 and #1, and less accurate.
    2: [1.60, 1.55, 1.70, 1.50, 1.65],
    3: [2.00, 1.95, 2.10, 1.90, 2.05],
    "baseline": [5.00, 4.90, 5.20, 4.80, 5.10],
}


def _space() -> SearchSpace:
    return SearchSpace.model_validate(
        {
            "knobs": {"runtime": {"type": "categorical", "choices": ["tflite"]}},
            "objectives": {"latency_p95_ms": "minimize", "accuracy": "maximize"},
            "measurement": {"verify": {"repeats": 5, "min_duration_s": 0.1, "min_calls": 10}},
        }
    )


def _figures(p95: float, accuracy: float) -> dict[str, Any]:
    return {
        "latency_p50_ms": 0.9 * p95,
        "latency_p90_ms": 0.97 * p95,
        "latency_p95_ms": p95,
        "latency_p99_ms": 1.1 * p95,
        "latency_mean_ms": 0.92 * p95,
        "throughput_sps": 1000 / (0.92 * p95),
        "peak_memory_mb": 200.0,
        "accuracy": accuracy,
        "agreement": accuracy,
        "quality": accuracy,
        "model_size_mb": 1.5,
    }


def _timing(p95: float) -> Timing:
    fig = _figures(p95, 0.0)
    return Timing(
        valid=True,
        invalid_reason=None,
        timed_calls=100,
        timed_s=1.0,
        batch_size=1,
        latency_std_ms=0.01,
        latency_min_ms=0.8 * p95,
        latency_max_ms=1.3 * p95,
        runtime_settings={},
        worker_pid=1,
        **{k: fig[k] for k in Timing.model_fields if k in fig},
    )


def _config(knobs: Mapping[str, Any]) -> dict[str, Any]:
    return {"batch_size": 1, "threads": None, **knobs}


@pytest.fixture()
def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture()
def study(storage: str) -> optuna.Study:
    """A study whose search put four candidates on its front (as records store them)."""
    created = optuna.create_study(
        study_name="stats", storage=storage, directions=["minimize", "maximize"]
    )
    view = StudyView(created)
    view.set_objectives(_space().objectives)
    view.set_baseline(_figures(5.0, 0.96))
    for number, (p95, accuracy) in SEARCH.items():
        created.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE,
                values=[p95, accuracy],
                user_attrs={
                    "config": _config(CONFIGS[number]),
                    "figures": _figures(p95, accuracy),
                    "feasible": True,
                    "violations": [],
                    "speedup_p95": 5.0 / p95,
                },
            )
        )
    return created


@pytest.fixture()
def retimed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Verification gets the crafted repeats (the first ``repeats`` of each); the counts asked."""
    asked: list[int] = []

    def fake(
        engine: Engine,
        subject: Subject,
        configs: Mapping[int | str, Any],
        window: Any,
        repeats: int,
        finetune_epochs: int,
        on_progress: Callable[[int, int], None] | None = None,
        on_timing: Callable[[Any, Timing], None] | None = None,
        scenario: Any = None,
    ) -> dict[int | str, list[Timing]]:
        asked.append(repeats)
        return {key: [_timing(v) for v in REPEATS[key][:repeats]] for key in configs}

    monkeypatch.setattr(study_module, "retime_interleaved", fake)
    return asked


def _verify(study: optuna.Study, repeats: int | None = None) -> dict[str, Any]:
    engine, subject = cast(Engine, None), cast(Subject, None)  # unused by the fake timing
    return verify_front(engine, study, subject, _space(), repeats)


def _by_number(payload: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["number"]: c for c in payload["candidates"]}


def test_overlapping_intervals_keep_a_slower_candidate_as_a_tie(
    study: optuna.Study, retimed: list[int]
) -> None:
    payload = _verify(study)
    assert retimed == [5]
    got = _by_number(payload)
    # The old rule (5% tie margin on the medians) dropped #1; its interval overlaps #0's.
    assert got[1]["figures"]["latency_p95_ms"] == pytest.approx(1.10)
    assert got[0]["intervals"]["latency_p95_ms"] == [0.96, 1.04]
    assert got[1]["intervals"]["latency_p95_ms"] == [1.03, 1.18]
    assert got[0]["kept"] and got[1]["kept"]
    assert got[0]["ties_with"] == [1] and got[1]["ties_with"] == [0]
    assert got[3]["kept"] and got[3]["ties_with"] == []
    # Every timing figure carries its interval and the spread stays; quality has none.
    for figure in ("latency_p50_ms", "latency_p99_ms", "throughput_sps", "peak_memory_mb"):
        low, high = got[0]["intervals"][figure]
        assert low <= got[0]["figures"][figure] <= high
    assert "accuracy" not in got[0]["intervals"]
    assert got[0]["spread"]["latency_p95_ms"] == [0.96, 1.04]
    assert got[0]["coverage"] == pytest.approx(0.9375) and got[0]["repeats"] == 5
    assert payload["coverage"] == pytest.approx(0.9375) and payload["warning"] is None
    assert payload["method"] == (
        "order-statistic interval of the median over 5 repeats, coverage 93.8%"
    )
    assert payload["baseline"]["intervals"]["latency_p95_ms"] == [4.8, 5.2]
    low, high = got[0]["speedup_p95_interval"]
    assert low == pytest.approx(4.8 / 1.04) and high == pytest.approx(5.2 / 0.96)
    assert "tie_margin" not in payload


def test_a_surely_slower_candidate_no_better_anywhere_is_dropped(
    study: optuna.Study, retimed: list[int]
) -> None:
    got = _by_number(_verify(study))
    assert not got[2]["kept"]
    assert got[2]["dominated_by"] == [0, 1] and got[2]["ties_with"] == []
    shown = queries.front(study)
    assert [p["number"] for p in shown["points"]] == [0, 1, 3]
    assert [p["number"] for p in shown["dropped_by_verification"]] == [2]
    assert shown["verification"]["coverage"] == pytest.approx(0.9375)


def test_fewer_repeats_report_their_lower_coverage(study: optuna.Study, retimed: list[int]) -> None:
    payload = _verify(study, repeats=3)
    assert retimed == [3]
    assert payload["coverage"] == pytest.approx(0.75)
    assert "over 3 repeats, coverage 75.0%" in payload["method"]
    assert "short of 90%" in payload["warning"] and "--repeats 5" in payload["warning"]
    got = _by_number(payload)
    # [min, max] of the first three repeats.
    assert got[0]["intervals"]["latency_p95_ms"] == [0.96, 1.04]
    assert got[0]["coverage"] == pytest.approx(0.75)
    assert queries.front(study)["verification"]["warning"] == payload["warning"]


def test_front_plot_data_draws_intervals_and_ties(study: optuna.Study, retimed: list[int]) -> None:
    _verify(study)
    plot = queries.front_plot_data(study)
    points = {p["number"]: p for p in plot["points"]}
    assert points[0]["error"]["latency_p95_ms"] == [0.96, 1.04]
    assert points[0]["ties_with"] == [1] and points[2]["dominated_by"] == [0, 1]
    assert plot["verification"]["method"].startswith("order-statistic interval")


def test_a_verification_stored_before_intervals_reads_its_spreads(
    study: optuna.Study, retimed: list[int]
) -> None:
    payload = _verify(study)
    old = {k: v for k, v in payload.items() if k not in ("coverage", "method", "confidence")}
    old["candidates"] = [
        {k: v for k, v in c.items() if k not in ("intervals", "ties_with", "dominated_by")}
        for c in payload["candidates"]
    ]
    StudyView(study).set_verified(old)
    shown = queries.front(study)
    # [min, max] of five repeats: coverage 1 - 2/32; ties worked out from the spreads.
    assert shown["verification"]["coverage"] == pytest.approx(0.9375)
    points = {p["number"]: p for p in shown["points"]}
    assert points[0]["intervals"]["latency_p95_ms"] == [0.96, 1.04]
    assert points[0]["ties_with"] == [1]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infertune", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INFERTUNE_HOME": str(home)},
        timeout=300,
    )


def test_cli_front_shows_intervals_ties_and_coverage(
    study: optuna.Study, retimed: list[int], storage: str, tmp_path: Path
) -> None:
    _verify(study, repeats=3)
    proc = _cli("front", "stats", "--storage", storage, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "p95 ms [interval]" in out and "tied with" in out
    assert "1.000 [0.960\u20131.040]" in out  # #0's p95 with its interval
    assert "tie: #1" in out and "tie: #0" in out
    assert "over 3 repeats, coverage 75.0%" in out
    assert "short of 90%" in out
    assert "dropped by verification: #2 (surely dominated by #0, #1)" in out
    proc = _cli("front", "stats", "--storage", storage, "--json", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["verification"]["coverage"] == pytest.approx(0.75)
    first = next(p for p in shown["points"] if p["number"] == 0)
    assert first["intervals"]["latency_p95_ms"] == [0.96, 1.04] and first["ties_with"] == [1]


def test_verified_summary_for_the_parent_run(study: optuna.Study, retimed: list[int]) -> None:
    search_front = pareto_front(trial_rows(study), study_module.objectives_of(study))
    assert verified_summary(study, search_front) == {"metrics": {}, "tags": {}}
    _verify(study)
    summary = verified_summary(study, search_front)
    assert summary["metrics"] == {
        "verified_front_size": 3,
        "verified_dropped": 1,
        "verified_ties": 1,
        "verify_coverage": pytest.approx(0.9375),
        "verified_best_speedup_p95": pytest.approx(5.0),
    }
    lines = summary["tags"]["infertune.verified_front"].splitlines()
    assert lines[0] == "#0 p95 1 [0.96, 1.04] ms, tied with #1"
    assert summary["tags"]["infertune.verify_method"].endswith("coverage 93.8%")
    # A front that moved on since (another trial finished) has no verified summary.
    assert verified_summary(study, search_front[:2]) == {"metrics": {}, "tags": {}}
