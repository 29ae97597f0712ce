"""Load and run a LiteRT (``.tflite``) artifact: the one place that does it.

Self-contained on purpose (standard library, numpy and ``ai_edge_litert`` only, never
infertune or TensorFlow): measurement workers load variants through it, and a promoted model
ships a copy of this file and loads its variant with it under ``mlflow models serve``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

#: Metadata entry of a ``.tflite`` file that lists the model's inputs in the model's order
#: (LiteRT orders a signature's inputs by name, not as the Keras model did).
INPUT_ORDER_METADATA = "infertune.input_names"


class UnsupportedModel(ValueError):
    """The artifact is not a model infertune can run (several outputs, unnamed inputs)."""


def usable_cores() -> int:
    """Cores this process may use (its CPU affinity), as when the model was measured."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def input_order(path: str) -> list[str] | None:
    """The model's input names in its order, as recorded at conversion (else ``None``)."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as file:
        buffer = file.read()
    model = schema.Model.GetRootAs(buffer, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == INPUT_ORDER_METADATA.encode():
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            names: list[str] = json.loads(bytes(data).decode())
            return names
    return None


class LiteRTRunner:
    """A LiteRT interpreter (XNNPACK on, the default delegate) for one batch shape at a time.

    Inputs are matched by name through the serving signature: a batch of a model with
    several inputs is one array per input in the model's order (:attr:`input_names`, read
    from the file's metadata), whatever order LiteRT keeps its input tensors in.

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
        if len(outputs) != 1:
            raise UnsupportedModel(
                f"{path} has {len(outputs)} outputs; infertune runs models cut to one output."
            )
        if len(inputs) == 1:
            self._inputs = [inputs[0]]
            names = [str(inputs[0]["name"])]
        else:
            by_name = self._interpreter.get_signature_runner().get_input_details()
            names = input_order(path) or []
            if sorted(names) != sorted(by_name):
                raise UnsupportedModel(
                    f"{path} has {len(inputs)} inputs but no record of their order; convert "
                    "it with infertune."
                )
            index = {d["index"]: d for d in inputs}
            self._inputs = [index[by_name[name]["index"]] for name in names]
        self.input_names: list[str] = names
        self._indices = [d["index"] for d in self._inputs]
        self._output_index = outputs[0]["index"]
        self.input_dtypes: list[np.dtype[Any]] = [np.dtype(d["dtype"]) for d in self._inputs]
        self.input_dtype: np.dtype[Any] = self.input_dtypes[0]
        self._shapes: list[tuple[int, ...]] = []

    def predict(self, batch: Any) -> np.ndarray:
        """Run one call: copy in (an array, or one per input), invoke, copy out."""
        xs = (batch,) if isinstance(batch, np.ndarray) else batch
        shapes = [x.shape for x in xs]
        interpreter = self._interpreter
        if shapes != self._shapes:
            for index, shape in zip(self._indices, shapes, strict=True):
                interpreter.resize_tensor_input(index, list(shape))
            interpreter.allocate_tensors()
            self._shapes = shapes
        for index, x in zip(self._indices, xs, strict=True):
            interpreter.set_tensor(index, x)
        interpreter.invoke()
        out: np.ndarray = interpreter.get_tensor(self._output_index)  # a copy
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses."""
        return {"num_threads": self.threads, "delegate": "xnnpack (default)"}


def load(artifact: str, runtime: str, threads: int | None) -> LiteRTRunner:
    """Load ``artifact`` for ``runtime`` (``tflite``) with ``threads``."""
    return LiteRTRunner(artifact, threads)
