"""LiteRT specifics: a model with several inputs is fed in the model's order, not LiteRT's."""

from __future__ import annotations

import numpy as np
import pytest

from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.runtimes import litert_loader
from tests.multiio import MultiIO

pytest.importorskip("ai_edge_litert")


def test_inputs_follow_the_model_order_recorded_at_conversion(
    engine: Engine, multiio: MultiIO
) -> None:
    from ai_edge_litert.interpreter import Interpreter

    subject = engine.resolve(str(multiio.two_input), multiio.eval_named)
    variant = engine.variant(subject, InferenceConfig.parse(runtime="tflite"))
    # LiteRT sorts a signature's inputs by name: "features" comes before "image".
    signature = Interpreter(model_path=str(variant.path)).get_signature_list()
    assert signature["serving_default"]["inputs"] == ["features", "image"]
    assert litert_loader.input_order(str(variant.path)) == ["image", "features"]
    runner = litert_loader.load(str(variant.path), "tflite", 1)
    assert runner.input_names == ["image", "features"]
    xs = subject.eval_data.load_inputs(limit=4)
    out = runner.predict(xs)
    reference = engine.reference_predictions(subject)[:4]
    np.testing.assert_allclose(out, reference, atol=1e-5)
