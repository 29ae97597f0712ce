"""OpenVINO specifics beyond the contract: what each precision really runs, and batch shapes.

The artifacts come from the engine (built in the tools worker, cached for the session); the
loader runs here, which imports only ``openvino``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from infertune.exceptions import InputError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine, Subject
from infertune.measure.variants import CALIBRATION_SAMPLES
from infertune.runtimes import Precision, get_backend
from infertune.runtimes.openvino_loader import IR_FILE, PRECISION_RT_INFO, OpenVINORunner


def _variant_path(engine: Engine, cnn: Subject, precision: Precision) -> Path:
    config = InferenceConfig.parse(runtime="openvino", precision=str(precision))
    return engine.variant(cnn, config).path


def test_fp32_runs_f32_kernels_even_where_the_cpu_defaults_to_bf16(
    engine: Engine, cnn: Subject
) -> None:
    path = _variant_path(engine, cnn, Precision.FP32)
    assert sorted(p.name for p in path.iterdir()) == ["model.bin", IR_FILE]
    model = ov.Core().read_model(str(path / IR_FILE))
    assert model.get_rt_info(PRECISION_RT_INFO).astype(str) == "fp32"
    runner = OpenVINORunner(str(path), threads=1)
    runner.predict(cnn.eval_data.load_x(limit=1))
    settings = runner.effective_settings()
    assert settings["inference_precision"] == "f32"
    assert settings["inference_num_threads"] == 1
    assert settings["performance_hint"] == "LATENCY"


def test_fp16_is_a_kernel_precision_of_the_same_weights(engine: Engine, cnn: Subject) -> None:
    fp32 = _variant_path(engine, cnn, Precision.FP32)
    fp16 = _variant_path(engine, cnn, Precision.FP16)
    assert fp16 != fp32
    # The weights file is the fp32 one; only the recorded precision differs.
    assert (fp16 / "model.bin").read_bytes() == (fp32 / "model.bin").read_bytes()
    runner = OpenVINORunner(str(fp16), threads=None)
    x = cnn.eval_data.load_x(limit=32)
    out = runner.predict(x)
    has_fp16 = "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert runner.effective_settings()["inference_precision"] == ("f16" if has_fp16 else "f32")
    reference = OpenVINORunner(str(fp32), threads=None).predict(x)
    assert np.mean(out.argmax(axis=1) == reference.argmax(axis=1)) >= 0.95


def test_int8_is_quantized_by_nncf_on_the_calibration_samples(engine: Engine, cnn: Subject) -> None:
    config = InferenceConfig.parse(runtime="openvino", precision="int8")
    variant = engine.variant(cnn, config)
    assert cnn.train_data is not None  # a demo model brings its training data
    assert variant.meta["calibration_samples"] == min(CALIBRATION_SAMPLES, cnn.train_data.size)
    model = ov.Core().read_model(str(variant.path / IR_FILE))
    ops = {op.get_type_name() for op in model.get_ops()}
    assert "FakeQuantize" in ops
    fp32 = _variant_path(engine, cnn, Precision.FP32)
    assert variant.meta["size_bytes"] < 0.5 * (fp32 / "model.bin").stat().st_size


def test_each_batch_shape_runs_static_and_agrees_with_one_big_batch(
    engine: Engine, cnn: Subject
) -> None:
    runner = OpenVINORunner(str(_variant_path(engine, cnn, Precision.FP32)), threads=1)
    x = cnn.eval_data.load_x(limit=7)
    whole = runner.predict(x)
    parts = np.concatenate([runner.predict(x[:1]), runner.predict(x[1:5]), runner.predict(x[5:])])
    np.testing.assert_allclose(parts, whole, rtol=1e-4, atol=1e-5)
    # Every shape stays compiled: a dynamic batcher's mix of sizes must not recompile.
    assert [shape[0][0] for shape in runner._compiled] == [7, 1, 4, 2]
    compiled = dict(runner._compiled)
    runner.predict(x[:1])
    assert runner._compiled[((1, *x.shape[1:]),)] is compiled[((1, *x.shape[1:]),)]
    # Up to a bound: the least recently used beyond the last eight go.
    for size in range(1, 11):
        runner.predict(np.repeat(x[:1], size, axis=0))
    assert [shape[0][0] for shape in runner._compiled] == list(range(3, 11))


def test_a_two_output_model_is_refused_with_one_line(tmp_path: Path) -> None:
    opset = ov.opset13
    x = opset.parameter([1, 4], np.float32, name="x")
    model = ov.Model([opset.relu(x), opset.sigmoid(x)], [x], "two_outputs")
    folder = tmp_path / "openvino"
    ov.save_model(model, str(folder / IR_FILE))
    with pytest.raises(InputError, match="2 outputs; infertune runs models cut to one output"):
        get_backend("openvino").load(str(folder), threads=1)
