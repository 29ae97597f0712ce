"""Knob importance (issue 17): fANOVA on knob names, on log latency, with a reliability flag."""

from __future__ import annotations

import random
from typing import Any

import optuna
import pytest

from infertune.tuning import queries, summaries


def _rows(count: int) -> list[dict[str, Any]]:
    """Trials where the runtime is the 50x factor and threads shave a few percent."""
    rng = random.Random(1)
    rows = []
    for number in range(count):
        runtime = rng.choice(["tf", "openvino"])
        threads = rng.choice([1, 2, 4])
        config: dict[str, Any] = {"runtime": runtime, "threads": threads}
        if runtime == "openvino":  # a conditional knob, as Optuna's precision_openvino
            config["precision"] = rng.choice(["fp32", "int8"])
        latency = (50.0 if runtime == "tf" else 1.0) * (1 + 0.02 * threads) * rng.uniform(1, 1.05)
        figures = {"latency_p95_ms": latency, "accuracy": 0.9 + rng.uniform(0, 0.01)}
        rows.append({"number": number, "state": "COMPLETE", "config": config, "figures": figures})
    return rows


@pytest.fixture()
def study(monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    study = optuna.create_study()
    study.set_user_attr(
        "infertune.objectives", {"latency_p95_ms": "minimize", "accuracy": "maximize"}
    )
    return study


def test_runtime_that_multiplies_latency_by_50_dominates(
    study: optuna.Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summaries, "rows", lambda _study, **_: _rows(40))
    result = queries.knob_importance(study)
    latency = result["latency_p95_ms"]
    assert latency["reliable"] and latency["log_scale"] and latency["method"] == "fANOVA"
    assert set(latency["scores"]) == {"runtime", "threads", "precision"}  # knob names
    assert max(latency["scores"], key=latency["scores"].get) == "runtime"
    assert latency["scores"]["runtime"] > 0.5
    assert sum(latency["scores"].values()) == pytest.approx(1.0)


def test_too_few_trials_are_flagged_unreliable(
    study: optuna.Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summaries, "rows", lambda _study, **_: _rows(8))
    latency = queries.knob_importance(study)["latency_p95_ms"]
    assert latency["trials"] == 8 and not latency["reliable"]
    monkeypatch.setattr(summaries, "rows", lambda _study, **_: _rows(1))
    assert queries.knob_importance(study)["latency_p95_ms"]["scores"] == {}


def test_related_studies_are_a_study_and_its_retunes(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for name in ("a", "a-retune-20260101T000000", "a-retune-20260201T000000", "ab", "b"):
        optuna.create_study(study_name=name, storage=url)
    study = queries.load("a-retune-20260201T000000", url)
    assert queries.related_studies(study, url) == [
        "a",
        "a-retune-20260101T000000",
        "a-retune-20260201T000000",
    ]


def test_compare_figure_draws_each_study_front(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import APP

    monkeypatch.syspath_prepend(str(APP.parent))
    from common import compare_figure

    def plot(latency: float) -> dict[str, Any]:
        point = {"number": 0, "figures": {"latency_p95_ms": latency, "accuracy": 0.9}}
        return {"points": [point | {"on_front": True, "kept": False}]}

    figure = compare_figure({"a": plot(1.0), "a-retune-1": plot(0.5)}, "latency_p95_ms", "accuracy")
    fronts = {t.name: list(t.x) for t in figure.data if t.name.endswith("front")}
    assert fronts == {"a · front": [1.0], "a-retune-1 · front": [0.5]}
