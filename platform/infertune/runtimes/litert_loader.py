"""Load and run a LiteRT (``.tflite``) artifact: the one place that does it.

Self-contained on purpose (standard library, numpy and ``ai_edge_litert`` only, never
infertune or TensorFlow): measurement workers load variants through it, and a promoted model
ships a copy of this file and loads its variant with it under ``mlflow models serve``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


class UnsupportedModel(ValueError):
    """The artifact is not a single-input, single-output model."""


def usable_cores() -> int:
    """Cores this process may use (its CPU affinity), as when the model was measured."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LiteRTRunner:
    """A LiteRT interpreter (XNNPACK on, the default delegate) for one batch size at a time.

    Args:
        path: The ``.tflite`` file.
        threads: Interpreter threads; ``None``: the cores this process may use.
    """

    def __init__(self, path: str, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.threads = threads if threads is not None else usable_cores()
        self._interpreter = Interpreter(model_path=path, num_threads=self.threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedModel(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; infertune "
                "runs single-input, single-output models."
            )
        self._input = inputs[0]
        self._output_index = outputs[0]["index"]
        self.input_dtype: np.dtype[Any] = np.dtype(self._input["dtype"])
        self._shape: tuple[int, ...] | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one call: copy in, invoke, copy out."""
        if batch.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        out: np.ndarray = self._interpreter.get_tensor(self._output_index)  # a copy
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses."""
        return {"num_threads": self.threads, "delegate": "xnnpack (default)"}


def load(artifact: str, runtime: str, threads: int | None) -> LiteRTRunner:
    """Load ``artifact`` for ``runtime`` (``tflite``) with ``threads``."""
    return LiteRTRunner(artifact, threads)
