"""Load and run a Keras model or SavedModel with TensorFlow: the one place that does it.

Self-contained on purpose (standard library, numpy and TensorFlow/Keras only, never
infertune): measurement workers load variants through it, and a promoted model ships a copy
of this file and loads its variant with it under ``mlflow models serve``.

The model runs behind one ``tf.function`` (graph mode; XLA-compiled for ``tf_xla``): never
``model.predict`` (a fixed cost of tens of milliseconds per call) nor eager calls.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def usable_cores() -> int:
    """Cores this process may use (its CPU affinity), as when the model was measured."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def configure_threads(tf: Any, threads: int | None) -> bool:
    """Give TensorFlow ``threads`` intra-op threads and one inter-op thread.

    TensorFlow freezes its thread settings when its runtime starts, so this must run before
    the first op. Returns whether the setting is in force (``False``: TensorFlow had already
    started with another one in this process).
    """
    if threads is None:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process
        return bool(tf.config.threading.get_intra_op_parallelism_threads() == threads)
    return True


class TensorFlowRunner:
    """A Keras model or SavedModel behind one ``tf.function`` (optionally XLA-compiled).

    A Keras model may have several inputs: a batch is then one array per input, in the
    model's input order (:attr:`input_names`).

    Args:
        path: A ``.keras`` file (loaded with ``safe_mode=True``) or a SavedModel folder.
        xla: Compile with XLA (``jit_compile=True``).
    """

    def __init__(self, path: str, xla: bool) -> None:
        import tensorflow as tf

        self._tf = tf
        self.xla = xla
        if os.path.isdir(path):
            loaded = tf.saved_model.load(path)
            signature = loaded.signatures["serving_default"]
            ((name, spec),) = signature.structured_input_signature[1].items()

            def call(*xs: Any) -> Any:
                (out,) = signature(**{name: xs[0]}).values()
                return out

            self._keep_alive: Any = loaded
            names = [str(name)]
            specs = [tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)]
        else:
            import keras

            model = keras.saving.load_model(path, safe_mode=True, compile=False)
            self._keep_alive = model
            names = [str(t.name) for t in model.inputs]
            several = len(model.inputs) > 1

            def call(*xs: Any) -> Any:
                return model(list(xs) if several else xs[0], training=False)

            specs = [tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in model.inputs]
        self._fn = tf.function(call, input_signature=specs, jit_compile=xla)
        self.input_names: list[str] = names
        self.input_dtypes: list[np.dtype[Any]] = [np.dtype(s.dtype.as_numpy_dtype) for s in specs]
        self.input_dtype: np.dtype[Any] = self.input_dtypes[0]

    def predict(self, batch: Any) -> np.ndarray:
        """Run one call: numpy in (an array, or one per input), numpy out."""
        xs = (batch,) if isinstance(batch, np.ndarray) else batch
        out: np.ndarray = self._fn(*xs).numpy()
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses."""
        threading = self._tf.config.threading
        return {
            "intra_op_threads": threading.get_intra_op_parallelism_threads() or usable_cores(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads() or "default",
            "xla": self.xla,
        }


def load(artifact: str, runtime: str, threads: int | None) -> TensorFlowRunner:
    """Load ``artifact`` for ``runtime`` (``tf`` or ``tf_xla``) with ``threads``."""
    import tensorflow as tf

    configure_threads(tf, threads)
    return TensorFlowRunner(artifact, xla=runtime == "tf_xla")
