"""ONNX Runtime on the CPU: fp32, dynamic int8, and static int8 (QDQ, per-channel).

Conversion (tf2onnx from the model's serving ``tf.function``: ``from_keras`` fails on Keras 3
models) and quantization (``onnxruntime.quantization``) run in the build worker, where
TensorFlow is; timing imports only ``onnxruntime``, never TensorFlow.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infertune.exceptions import BuildError, InputError
from infertune.runtimes._base import Calibration, Precision, Progress, Runner, RuntimeBackend

#: ONNX opset of the converted model (per-channel QDQ needs 13 or later).
OPSET = 17
#: Operators that dynamic int8 quantizes: those with fast dynamic kernels in ONNX Runtime's
#: CPU provider. Convolutions stay float: its ConvInteger ran the demo CNN 4x slower than
#: fp32 (9.5 ms against 2.3 ms); static ``int8`` is the precision that speeds up convolutions.
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")


class _CalibrationReader:
    """Feeds calibration samples to ``quantize_static``, one single-sample feed per call.

    A feed maps each of the model's inputs to its batch of one. (``onnxruntime.quantization.
    CalibrationDataReader`` accepts any object with ``get_next``.)
    """

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or ``None`` when the samples are used up."""
        return next(self._feeds, None)


class ONNXRuntimeBackend(RuntimeBackend):
    """``onnxruntime``: an ONNX model in ONNX Runtime's CPU execution provider.

    Precisions:
        ``fp32``: the converted model as it is.
        ``int8_dynamic``: int8 weights, activations quantized on the fly
        (``quantize_dynamic``) for the matrix products (``MatMul``, ``Gemm``: dense layers,
        attention); convolutions stay fp32 (see :data:`DYNAMIC_OP_TYPES`). No calibration.
        ``int8``: static QDQ quantization, int8 weights (per channel) and activations,
        calibrated on representative inputs (``quantize_static``); float I/O.
    """

    name: ClassVar[str] = "onnxruntime"
    title: ClassVar[str] = "ONNX Runtime"
    precisions: ClassVar[tuple[Precision, ...]] = (
        Precision.FP32,
        Precision.INT8_DYNAMIC,
        Precision.INT8,
    )
    family: ClassVar[str] = "onnx"
    artifact_file: ClassVar[str | None] = "model.onnx"
    worker_group: ClassVar[str] = "onnxruntime"
    loader_module: ClassVar[str] = "infertune.runtimes.ort_loader"
    runtime_modules: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    threads_setting: ClassVar[str] = "intra_op_num_threads"
    libraries: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    build_libraries: ClassVar[tuple[str, ...]] = (
        "tensorflow-cpu",
        "tensorflow",
        "keras",
        "tf2onnx",
        "onnx",
        "onnxruntime",
    )

    def needs_calibration(self, precision: Precision) -> bool:
        """Static int8 is calibrated on representative inputs; the others are not."""
        return precision is Precision.INT8

    def build(
        self,
        source: Path,
        source_format: str,
        out_path: Path,
        precision: Precision,
        calibration: Calibration | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Convert with tf2onnx, then quantize for the int8 precisions.

        See :meth:`RuntimeBackend.build`.
        """
        from infertune.runtimes._tfgraph import serving_function
        from infertune.workers.server import one_line
        from infertune.workers.startup import timed_import

        serving = serving_function(source, source_format)
        tf2onnx = timed_import("tf2onnx")
        progress(f"converting to ONNX ({precision})")
        try:
            model_proto, _ = tf2onnx.convert.from_function(
                serving.function, input_signature=serving.input_specs, opset=OPSET
            )
        except Exception as exc:
            raise BuildError(f"ONNX conversion (tf2onnx) failed: {one_line(exc)}") from exc
        onnx = timed_import("onnx")
        if precision is Precision.FP32:
            onnx.save(model_proto, str(out_path))
            return {"size_bytes": out_path.stat().st_size, "opset": OPSET}
        details: dict[str, Any] = {"opset": OPSET}
        reader = None
        if precision is Precision.INT8:
            if calibration is None:
                raise BuildError("ONNX Runtime static int8 quantization needs calibration data.")
            # The graph's inputs are the serving function's, in the model's order.
            names = [port.name for port in model_proto.graph.input]
            feeds = calibration.feeds(names, serving.input_dtypes)
            reader = _CalibrationReader(feeds)
            details["calibration_samples"] = len(feeds)
        quantization = timed_import("onnxruntime.quantization")
        # Intermediate models go to a folder of their own: out_path's folder is published.
        with tempfile.TemporaryDirectory(prefix="infertune-onnx-") as tmp:
            fp32_path, prepared_path = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
            onnx.save(model_proto, str(fp32_path))
            try:
                # Shape inference and graph cleanup first, as ONNX Runtime recommends (ONNX's
                # own shape inference: the symbolic one needs sympy, and only the batch axis
                # is dynamic here).
                quantization.shape_inference.quant_pre_process(
                    str(fp32_path), str(prepared_path), skip_symbolic_shape=True
                )
                if precision is Precision.INT8_DYNAMIC:
                    progress("quantizing with ONNX Runtime (dynamic int8)")
                    quantization.quantize_dynamic(
                        str(prepared_path),
                        str(out_path),
                        weight_type=quantization.QuantType.QInt8,
                        op_types_to_quantize=list(DYNAMIC_OP_TYPES),
                    )
                else:
                    progress("quantizing with ONNX Runtime (static int8, calibrated)")
                    quantization.quantize_static(
                        str(prepared_path),
                        str(out_path),
                        reader,
                        quant_format=quantization.QuantFormat.QDQ,
                        per_channel=True,
                        activation_type=quantization.QuantType.QInt8,
                        weight_type=quantization.QuantType.QInt8,
                    )
            except Exception as exc:
                raise BuildError(
                    f"ONNX Runtime {precision} quantization failed: {one_line(exc)}"
                ) from exc
        return {"size_bytes": out_path.stat().st_size, **details}

    def load(self, artifact: str, threads: int | None) -> Runner:
        """Open an ONNX Runtime session with ``threads`` intra-op threads.

        Called in an ONNX Runtime measurement worker (see :meth:`RuntimeBackend.load`);
        imports ``onnxruntime`` only.
        """
        from infertune.workers.startup import timed_import

        timed_import("onnxruntime")  # counted as start-up
        loader = self.loader()
        try:
            runner: Runner = loader.load(artifact, self.name, threads)
        except loader.UnsupportedModel as exc:
            raise InputError(str(exc)) from exc
        return runner
