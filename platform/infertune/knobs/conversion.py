"""Conversion to LiteRT (TFLite) at a given precision.

Runs inside a worker process: the TFLite converter leaks memory on every call in
TensorFlow 2.21, and a worker is cheap to replace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import BuildError
from infertune.models.inspect import load_keras_model
from infertune.workers.server import WorkerContext, one_line
from infertune.workers.tfsetup import import_tensorflow


def representative_samples(path: str, x_key: str, count: int, dtype: Any) -> np.ndarray:
    """An evenly spaced, deterministic sample of inputs for int8 calibration."""
    with np.load(path) as data:
        x = data[x_key]
    idx = np.linspace(0, len(x) - 1, num=min(count, len(x))).astype(int)
    return np.ascontiguousarray(x[idx], dtype=dtype)


def convert_op(
    ctx: WorkerContext,
    source: str,
    source_format: str,
    out_path: str,
    precision: str,
    calibration_path: str | None = None,
    x_key: str = "x",
    calibration_samples: int = 200,
) -> dict[str, Any]:
    """Worker operation ``variant.convert``: write a ``.tflite`` file for one precision."""
    tf = import_tensorflow()
    ctx.progress(f"converting to LiteRT ({precision})", 0, None)
    if source_format == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(source)
        input_dtype = np.float32
    else:
        model = load_keras_model(source)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        input_dtype = np.dtype(model.inputs[0].dtype)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8_dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8":
        if calibration_path is None:
            raise BuildError("Full int8 quantization needs calibration data.")
        samples = representative_samples(calibration_path, x_key, calibration_samples, input_dtype)

        def representative() -> Iterator[list[np.ndarray]]:
            for sample in samples:
                yield [sample[None, ...]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif precision != "fp32":
        raise BuildError(f"Unknown precision '{precision}'.")
    try:
        flatbuffer = converter.convert()
    except Exception as exc:
        raise BuildError(
            f"LiteRT conversion at precision {precision} failed: {one_line(exc)}"
        ) from exc
    # out_path lies in the cache's private build folder, published atomically as a whole.
    Path(out_path).write_bytes(flatbuffer)
    return {"size_bytes": len(flatbuffer)}
