"""LiteRT (TFLite) with the XNNPACK delegate: fp32, fp16, dynamic-range int8, full int8.

Conversion uses TensorFlow's ``TFLiteConverter`` in the build worker (it leaks memory on
every call in TensorFlow 2.21, and a worker is cheap to replace); timing imports only
``ai_edge_litert``, never TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from infertune.exceptions import BuildError, InputError
from infertune.runtimes._base import Calibration, Precision, Progress, Runner, RuntimeBackend


def _with_input_order(flatbuffer: bytes, names: list[str]) -> bytes:
    """The ``.tflite`` file with the model's input order in its metadata.

    LiteRT keeps a signature's inputs in name order; the loader reads this entry
    (:data:`~infertune.runtimes.litert_loader.INPUT_ORDER_METADATA`) to take a batch's arrays
    in the model's order.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from infertune.runtimes.litert_loader import INPUT_ORDER_METADATA

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(names).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = INPUT_ORDER_METADATA
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


class LiteRTBackend(RuntimeBackend):
    """``tflite``: the LiteRT interpreter running a converted ``.tflite`` file."""

    name: ClassVar[str] = "tflite"
    title: ClassVar[str] = "LiteRT"
    precisions: ClassVar[tuple[Precision, ...]] = (
        Precision.FP32,
        Precision.FP16,
        Precision.INT8_DYNAMIC,
        Precision.INT8,
    )
    family: ClassVar[str] = "tflite"
    artifact_file: ClassVar[str | None] = "model.tflite"
    worker_group: ClassVar[str] = "tflite"
    loader_module: ClassVar[str] = "infertune.runtimes.litert_loader"
    runtime_modules: ClassVar[tuple[str, ...]] = ("ai_edge_litert",)
    threads_setting: ClassVar[str] = "num_threads"
    libraries: ClassVar[tuple[str, ...]] = ("ai-edge-litert",)

    def needs_calibration(self, precision: Precision) -> bool:
        """Full int8 is calibrated on representative inputs; other precisions are not."""
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
        """Convert with ``TFLiteConverter`` (see :meth:`RuntimeBackend.build`)."""
        from infertune.models.inspect import load_keras_model
        from infertune.workers.server import one_line
        from infertune.workers.tfsetup import import_tensorflow

        tf = import_tensorflow()
        progress(f"converting to LiteRT ({precision})")
        names: list[str] = []
        if source_format == "savedmodel":
            converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
            input_dtypes: list[Any] = [np.float32]
        else:
            model = load_keras_model(str(source))
            if len(model.outputs) != 1:
                raise InputError(
                    f"{source} has {len(model.outputs)} outputs; infertune converts a model "
                    "cut to its scored output."
                )
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            input_dtypes = [np.dtype(t.dtype) for t in model.inputs]
            names = [str(t.name) for t in model.inputs] if len(model.inputs) > 1 else []
        if precision is Precision.FP16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision is Precision.INT8_DYNAMIC:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision is Precision.INT8:
            if calibration is None:
                raise BuildError("Full int8 quantization needs calibration data.")
            if names:
                # By name: the converter orders a signature's inputs by name, not as the model.
                feeds: list[Any] = calibration.feeds(names, input_dtypes)
            else:
                feeds = [[sample[None, ...]] for sample in calibration.load(input_dtypes[0])]

            def representative() -> Iterator[Any]:
                yield from feeds

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            flatbuffer = converter.convert()
        except Exception as exc:
            raise BuildError(
                f"LiteRT conversion at precision {precision} failed: {one_line(exc)}"
            ) from exc
        if names:
            flatbuffer = _with_input_order(flatbuffer, names)
        out_path.write_bytes(flatbuffer)
        return {"size_bytes": len(flatbuffer)}

    def load(self, artifact: str, threads: int | None) -> Runner:
        """Load the ``.tflite`` file in a LiteRT interpreter with ``threads`` threads.

        Called in a LiteRT measurement worker (see :meth:`RuntimeBackend.load`); imports
        ``ai_edge_litert`` only.
        """
        from infertune.workers.startup import timed_import

        timed_import("ai_edge_litert.interpreter")  # counted as start-up
        loader = self.loader()
        try:
            runner: Runner = loader.load(artifact, self.name, threads)
        except loader.UnsupportedModel as exc:
            raise InputError(str(exc)) from exc
        return runner
