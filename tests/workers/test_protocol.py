"""The typed worker protocol: requests are validated on both sides, answers are typed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infertune.exceptions import WorkerError
from infertune.workers import WorkerProcess, WorkerRole
from infertune.workers.protocol import REQUESTS, PingRequest, PingResult, PruneRequest
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
