"""Load and run an ONNX artifact with ONNX Runtime on the CPU: the one place that does it.

Self-contained on purpose (standard library, numpy and ``onnxruntime`` only, never infertune
or TensorFlow): measurement workers load variants through it, and a promoted model ships a
copy of this file and loads its variant with it under ``mlflow models serve``. (Named
``ort_loader``, not after the library: a shipped top-level ``onnxruntime.py`` would shadow it.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: ONNX element types ONNX Runtime reports for inputs, as numpy dtypes.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class UnsupportedModel(ValueError):
    """The artifact is not a model infertune can run (several outputs, unknown input types)."""


def usable_cores() -> int:
    """Cores this process may use (its CPU affinity), as when the model was measured."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ORTRunner:
    """An ONNX Runtime session on the CPU execution provider.

    ``threads`` intra-op threads (``None``: the cores this process may use), one inter-op
    thread, sequential execution and every graph optimisation. A batch of a model with
    several inputs is one array per input, in the graph's input order (the model's).

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; ``None``: the cores this process may use.
    """

    def __init__(self, path: str, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads if threads is not None else usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self._options = options
        self._session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(outputs) != 1:
            raise UnsupportedModel(
                f"{path} has {len(outputs)} outputs; infertune runs models cut to one output."
            )
        for port in inputs:
            if port.type not in _DTYPES:
                raise UnsupportedModel(f"{path} has an input of type {port.type}.")
        self.input_names: list[str] = [port.name for port in inputs]
        self._output_names = [outputs[0].name]
        self.input_dtypes: list[np.dtype[Any]] = [np.dtype(_DTYPES[p.type]) for p in inputs]
        self.input_dtype: np.dtype[Any] = self.input_dtypes[0]

    def predict(self, batch: Any) -> np.ndarray:
        """Run one call on the batch (an array, or one per input)."""
        xs = (batch,) if isinstance(batch, np.ndarray) else batch
        feed = dict(zip(self.input_names, xs, strict=True))
        (out,) = self._session.run(self._output_names, feed)
        result: np.ndarray = out
        return result

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses, read back from the session."""
        options = self._session.get_session_options()
        return {
            "providers": self._session.get_providers(),
            "intra_op_num_threads": options.intra_op_num_threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
        }


def load(artifact: str, runtime: str, threads: int | None) -> ORTRunner:
    """Load ``artifact`` for ``runtime`` (``onnxruntime``) with ``threads``."""
    return ORTRunner(artifact, threads)
