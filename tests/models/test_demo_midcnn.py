"""The compute-heavier demo: trains to a useful accuracy, and pruning keeps most of it."""

from __future__ import annotations

import pytest

from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine

from ..conftest import QUICK

pytestmark = pytest.mark.slow


def test_midcnn_trains_and_survives_pruning_with_fine_tuning(engine: Engine) -> None:
    subject = engine.resolve("demo:digits-midcnn")
    trained = engine.ensure_demo("demo:digits-midcnn").info
    assert trained["eval_accuracy"] > 0.95
    assert subject.info["input_shape"] == [None, 96, 96, 1]
    config = InferenceConfig.parse(runtime="tflite", precision="int8", prune_ratio=0.5)
    result = engine.bench(subject, config, QUICK)
    assert result.valid
    pruning = result.variant.pruning
    assert pruning is not None
    assert pruning["params_after"] < 0.3 * pruning["params_before"]
    assert result.accuracy is not None and result.accuracy > 0.9
    assert result.agreement is not None and result.agreement > 0.9
