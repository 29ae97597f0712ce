"""The typed worker protocol: requests are validated on both sides, answers are typed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infertune.exceptions import WorkerError
from infertune.workers import WorkerProcess, WorkerRole
from infertune.workers.protocol import (
    REQUESTS,
    CalibrationData,
    LoadRequest,
    PingRequest,
    PingResult,
    PredictRequest,
    PruneRequest,
    TrainingData,
)
from infertune.workers.server import HANDLERS


def test_every_operation_has_a_request_model_and_a_handler() -> None:
    assert set(REQUESTS) == set(HANDLERS)
    assert all(REQUESTS[op].op == op for op in REQUESTS)


def test_a_request_is_checked_where_it_is_built() -> None:
    with pytest.raises(ValidationError, match="less than 1"):
        PruneRequest(source="m.keras", out_path="o.keras", ratio=1.0, task={})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PruneRequest.model_validate(
            {"source": "m.keras", "out_path": "o", "ratio": 0.5, "task": {}, "train_path": "x"}
        )


def test_typed_answer_and_worker_side_validation() -> None:
    with WorkerProcess(WorkerRole.MEASURE, threads=1) as worker:
        answer = worker.request(PingRequest(modules=["json", "tensorflow"]), timeout=60)
        assert isinstance(answer, PingResult) and answer.pid == worker.pid
        assert answer.threads == "1" and answer.imported == ["json"]
        # A string-keyed request that does not fit its model fails in the worker, one line.
        with pytest.raises(WorkerError, match="invalid request for 'variant.prune': ratio"):
            worker.call(
                "variant.prune",
                {"source": "m.keras", "out_path": "o.keras", "ratio": "half", "task": {}},
                timeout=60,
            )


def test_requests_name_one_array_per_model_input() -> None:
    request = PredictRequest(
        artifact="a", runtime="tf", data_path="d.npz", x_keys=["image", "features"], out_path="o"
    )
    assert request.x_keys == ["image", "features"] and request.x_key == "image"
    assert "x_key" not in request.model_dump()  # derived, never sent
    assert TrainingData(path="t.npz").x_keys == ["x"]
    with pytest.raises(ValidationError, match="at least 1 item"):
        CalibrationData(path="c.npz", x_keys=[], samples=10)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        LoadRequest.model_validate(
            {"artifact": "a", "runtime": "tf", "data_path": "d", "x_key": "x", "batch_size": 1}
        )
