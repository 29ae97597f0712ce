"""Load and run an OpenVINO IR artifact on the CPU: the one place that does it.

Self-contained on purpose (standard library, numpy and ``openvino`` only, never infertune or
TensorFlow): measurement workers load variants through it, and a promoted model ships a copy
of this file and loads its variant with it under ``mlflow models serve``.

The artifact is a folder holding ``model.xml`` and ``model.bin``. The precision it was built
for is recorded in the IR's runtime info (``infertune/precision``) and decides the CPU
plugin's inference precision: ``fp32`` and ``int8`` run their float parts in f32 (the plugin
would otherwise pick bf16 on CPUs with bf16 units), ``fp16`` (and ``bf16``) run f16 (bf16)
kernels where the CPU has them and fall back to f32 where it does not (reported by
:meth:`OpenVINORunner.effective_settings`).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

import numpy as np

#: The IR file inside an artifact folder (its weights are ``model.bin`` beside it).
IR_FILE = "model.xml"
#: Where the IR's runtime info records the precision the artifact was built for.
PRECISION_RT_INFO = ["infertune", "precision"]
#: Inference precision hint per built precision, and the CPU capability it needs.
_INFERENCE_PRECISION = {
    "fp32": ("f32", "FP32"),
    "fp16": ("f16", "FP16"),
    "bf16": ("bf16", "BF16"),
    "int8": ("f32", "FP32"),
}
#: Compiled shapes kept at once: every shape a dynamic batcher pads to (the powers of two up
#: to 64) and a last, smaller chunk. With fewer, a batcher's mix of sizes recompiled the model
#: on most calls (tens of milliseconds each): a server run at batch 8 met its p99 objective
#: at 44 queries/s instead of some 3,000.
_COMPILED_SHAPES = 8


class UnsupportedModel(ValueError):
    """The artifact is not a model infertune can run (several outputs)."""


def ir_path(artifact: str) -> str:
    """The ``.xml`` file of an artifact given as its folder or as the file itself."""
    return os.path.join(artifact, IR_FILE) if os.path.isdir(artifact) else artifact


class OpenVINORunner:
    """An OpenVINO model compiled for the CPU with the latency hint, one batch shape at a time.

    The IR has a dynamic batch axis; each batch shape is compiled static on first use (static
    shapes run faster), and the last eight compiled shapes are kept. A batch of a model with
    several inputs is one array per input, in the IR's input order (the model's).

    Args:
        path: The artifact folder (or its ``model.xml``).
        threads: ``INFERENCE_NUM_THREADS``; ``None``: the plugin's default for this process.
    """

    def __init__(self, path: str, threads: int | None) -> None:
        import openvino as ov

        self._ov = ov
        self._core = ov.Core()
        self._model = self._core.read_model(ir_path(path))
        inputs, outputs = self._model.inputs, self._model.outputs
        if len(outputs) != 1:
            raise UnsupportedModel(
                f"{path} has {len(outputs)} outputs; infertune runs models cut to one output."
            )
        self.precision = (
            str(self._model.get_rt_info(PRECISION_RT_INFO).astype(str))
            if self._model.has_rt_info(PRECISION_RT_INFO)
            else "fp32"
        )
        hint, capability = _INFERENCE_PRECISION.get(self.precision, ("f32", "FP32"))
        capabilities = self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if capability not in capabilities:
            hint = "f32"  # no such kernels on this CPU: run (and report) f32
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": hint,
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self.input_names: list[str] = [port.get_any_name() for port in inputs]
        self.input_dtypes: list[np.dtype[Any]] = [
            np.dtype(port.get_element_type().to_dtype()) for port in inputs
        ]
        self.input_dtype: np.dtype[Any] = self.input_dtypes[0]
        self._input_shapes = [port.get_partial_shape() for port in inputs]
        self._compiled: OrderedDict[tuple[tuple[int, ...], ...], tuple[Any, Any]] = OrderedDict()
        self._shape: tuple[tuple[int, ...], ...] | None = None
        self._request: Any = None
        self._last: Any = None

    def _compile(self, shape: tuple[tuple[int, ...], ...]) -> None:
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
        else:
            model = self._model.clone()
            dynamic = {
                i: self._ov.PartialShape(list(s))
                for i, (s, declared) in enumerate(zip(shape, self._input_shapes, strict=True))
                if declared.is_dynamic
            }
            if dynamic:
                model.reshape(dynamic)
            compiled = self._core.compile_model(model, "CPU", self._config)
            self._compiled[shape] = (compiled, compiled.create_infer_request())
            while len(self._compiled) > _COMPILED_SHAPES:
                self._compiled.popitem(last=False)
        self._last, self._request = self._compiled[shape]
        self._shape = shape

    def predict(self, batch: Any) -> np.ndarray:
        """Run one call: infer on the batch (shared, not copied), copy the output out."""
        xs = (batch,) if isinstance(batch, np.ndarray) else batch
        shape = tuple(x.shape for x in xs)
        if shape != self._shape:
            self._compile(shape)
        self._request.infer(dict(enumerate(xs)), share_inputs=True)
        out: np.ndarray = self._request.get_output_tensor(0).data.copy()
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses, read back from the compiled model."""
        if self._last is None:  # nothing compiled yet: compile for one sample
            self._compile(
                tuple(
                    (1, *(int(d) for d in list(s.get_min_shape())[1:])) for s in self._input_shapes
                )
            )
        compiled = self._last
        return {
            "device": "CPU",
            "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
            "num_streams": int(compiled.get_property("NUM_STREAMS")),
            "built_precision": self.precision,
        }


def load(artifact: str, runtime: str, threads: int | None) -> OpenVINORunner:
    """Load ``artifact`` for ``runtime`` (``openvino``) with ``threads``."""
    return OpenVINORunner(artifact, threads)
