"""The MLflow pyfunc model of a promoted configuration (logged as *model from code*).

MLflow copies this file into the model and runs it on load, so a promoted model needs
only numpy, MLflow and its runtime (``ai-edge-litert`` or TensorFlow), not infertune.
The tuned settings travel in the model's ``model_config``: ``runtime`` (tflite, tf,
tf_xla), ``precision``, ``threads`` (``None``: the runtime's default) and ``batch_size``
(inputs are run in chunks of that size).
"""

from __future__ import annotations

import os
from typing import Any

import mlflow.models
import mlflow.pyfunc
import numpy as np


class TunedModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Runs the variant file with its tuned runtime settings."""

    # The input schema is the signature recorded from real outputs at promotion, not type
    # hints: this tells MLflow not to look for hints on predict (and not to warn).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Load the variant into its runtime with the tuned thread setting."""
        config = dict(context.model_config or {})
        artifact = context.artifacts["variant"]
        self.runtime = str(config.get("runtime", "tflite"))
        self.batch_size = max(1, int(config.get("batch_size") or 1))
        threads = config.get("threads")
        self.threads = int(threads) if threads else None
        if self.runtime == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(
                model_path=artifact, num_threads=self.threads or _usable_cores()
            )
            (self._input,) = self._interpreter.get_input_details()
            (output,) = self._interpreter.get_output_details()
            self._output_index = output["index"]
            self.input_dtype = np.dtype(self._input["dtype"])
            self._shape: tuple[int, ...] | None = None
        else:
            self._load_tensorflow(artifact, xla=self.runtime == "tf_xla")

    def _load_tensorflow(self, artifact: str, xla: bool) -> None:
        import tensorflow as tf

        if self.threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already started in this process
                pass
        if os.path.isdir(artifact):
            loaded = tf.saved_model.load(artifact)
            signature = loaded.signatures["serving_default"]
            ((name, spec),) = signature.structured_input_signature[1].items()

            def call(x: Any) -> Any:
                (out,) = signature(**{name: x}).values()
                return out

            self._keep_alive: Any = loaded
            input_spec = tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)
        else:
            import keras

            model = keras.saving.load_model(artifact, safe_mode=True, compile=False)
            self._keep_alive = model

            def call(x: Any) -> Any:
                return model(x, training=False)

            input_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        self._fn = tf.function(call, input_signature=[input_spec], jit_compile=xla)
        self.input_dtype = np.dtype(input_spec.dtype.as_numpy_dtype)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.runtime != "tflite":
            return np.asarray(self._fn(batch).numpy())
        if batch.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output_index))

    # No type hints on predict: MLflow would try to read them as the input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predict a batch of inputs (array-like, first axis = samples)."""
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame
            model_input = model_input.to_numpy()
        x = np.ascontiguousarray(model_input, dtype=self.input_dtype)
        if len(x) == 0:
            raise ValueError("No input samples were given.")
        chunks = [
            self._run(np.ascontiguousarray(x[i : i + self.batch_size]))
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(chunks)


def _usable_cores() -> int:
    """Cores this process may use (its CPU affinity), as when the model was measured."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


mlflow.models.set_model(TunedModel())
