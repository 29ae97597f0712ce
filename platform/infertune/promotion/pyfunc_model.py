"""The MLflow pyfunc model of a promoted configuration (logged as *model from code*).

MLflow copies this file into the model and runs it on load, so it never imports infertune:
a promoted model needs only numpy, MLflow and its runtime (``ai-edge-litert`` or
TensorFlow). The variant is loaded by its runtime backend's *loader module*, the same code
that loaded it for measurement, shipped with the model as code (``code_paths``). The tuned
settings travel in the model's ``model_config``: ``runtime`` (tflite, tf, tf_xla),
``precision``, ``threads`` (``None``: the runtime's default), ``batch_size`` (inputs are run
in chunks of that size) and ``loader`` (the loader module's name).
"""

from __future__ import annotations

import importlib
from typing import Any

import mlflow.models
import mlflow.pyfunc
import numpy as np

#: Loader modules of models promoted before the loader travelled in ``model_config``.
_FORMER_LOADERS = {"tflite": "litert_loader", "tf": "tf_loader", "tf_xla": "tf_loader"}


def import_loader(name: str) -> Any:
    """The loader module ``name``: the copy shipped with the model, else infertune's.

    The shipped copy comes first: it is the code the configuration was measured with. A
    model promoted without one (an older promotion) loads with the installed infertune's.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        return importlib.import_module(f"infertune.runtimes.{name}")


class TunedModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Runs the variant file with its tuned runtime settings."""

    # The input schema is the signature recorded from real outputs at promotion, not type
    # hints: this tells MLflow not to look for hints on predict (and not to warn).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Load the variant into its runtime with the tuned thread setting."""
        config = dict(context.model_config or {})
        self.runtime = str(config.get("runtime", "tflite"))
        self.batch_size = max(1, int(config.get("batch_size") or 1))
        threads = config.get("threads")
        self.threads = int(threads) if threads else None
        loader = import_loader(str(config.get("loader") or _FORMER_LOADERS[self.runtime]))
        self._runner = loader.load(context.artifacts["variant"], self.runtime, self.threads)
        self.input_dtype = self._runner.input_dtype

    # No type hints on predict: MLflow would try to read them as the input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predict a batch of inputs (array-like, first axis = samples)."""
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame
            model_input = model_input.to_numpy()
        x = np.ascontiguousarray(model_input, dtype=self.input_dtype)
        if len(x) == 0:
            raise ValueError("No input samples were given.")
        chunks = [
            np.asarray(self._runner.predict(np.ascontiguousarray(x[i : i + self.batch_size])))
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(chunks)


mlflow.models.set_model(TunedModel())
