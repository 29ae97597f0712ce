"""ONNX Runtime specifics beyond the contract: what each precision quantizes, and the session.

The artifacts come from the engine (built in the tools worker, cached for the session); the
loader runs here, which imports only ``onnxruntime``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from infertune.exceptions import InputError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.runtimes import Precision, get_backend
from infertune.runtimes.ort_loader import ORTRunner, usable_cores


def _model(engine: Engine, cnn: Subject, precision: Precision) -> tuple[Path, onnx.ModelProto]:
    config = InferenceConfig.parse(runtime="onnxruntime", precision=str(precision))
    path = engine.variant(cnn, config).path
    return path, onnx.load(str(path))


def _op_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}


def test_fp32_is_the_converted_graph_with_convolutions(engine: Engine, cnn: Subject) -> None:
    _, model = _model(engine, cnn, Precision.FP32)
    ops = _op_types(model)
    assert "Conv" in ops
    assert not ops & {"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger"}


def test_dynamic_int8_quantizes_matrix_products_and_leaves_convolutions_float(
    engine: Engine, cnn: Subject
) -> None:
    _, model = _model(engine, cnn, Precision.INT8_DYNAMIC)
    ops = _op_types(model)
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops
    assert "Conv" in ops and "ConvInteger" not in ops


def test_static_int8_is_qdq_with_per_channel_weight_scales(engine: Engine, cnn: Subject) -> None:
    _, model = _model(engine, cnn, Precision.INT8)
    ops = _op_types(model)
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    initializers = {t.name: t for t in model.graph.initializer}
    conv_weights = {node.input[1] for node in model.graph.node if node.op_type == "Conv"}
    dequantized = [
        node
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.output[0] in conv_weights
    ]
    assert dequantized, "the convolutions' weights are not quantized"
    for node in dequantized:
        scale = initializers[node.input[1]]
        assert len(scale.dims) == 1 and scale.dims[0] > 1  # one scale per output channel


def test_session_settings_are_read_back(engine: Engine, cnn: Subject) -> None:
    path, _ = _model(engine, cnn, Precision.FP32)
    one = ORTRunner(str(path), threads=1).effective_settings()
    assert one == {
        "providers": ["CPUExecutionProvider"],
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "execution_mode": "ORT_SEQUENTIAL",
        "graph_optimization_level": "ORT_ENABLE_ALL",
    }
    default = ORTRunner(str(path), threads=None)
    assert default.effective_settings()["intra_op_num_threads"] == usable_cores()
    x = cnn.eval_data.load_x(limit=3)
    assert default.predict(x).shape == (3, 10)
    assert default.input_dtype == np.float32


def test_a_two_output_model_is_refused_with_one_line(tmp_path: Path) -> None:
    helper = onnx.helper
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])
    outputs = [
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, 4])
        for name in ("a", "b")
    ]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"])],
        "two_outputs",
        [x],
        outputs,
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(InputError, match="2 outputs; infertune runs models cut to one output"):
        get_backend("onnxruntime").load(str(path), threads=1)
