"""The MLflow pyfunc model of a promoted configuration (logged as *model from code*).

MLflow copies this file into the model and runs it on load, so it never imports infertune:
a promoted model needs only numpy, MLflow and its runtime (``ai-edge-litert`` or
TensorFlow). The variant is loaded by its runtime backend's *loader module*, the same code
that loaded it for measurement, shipped with the model as code (``code_paths``). The tuned
settings travel in the model's ``model_config``: ``runtime`` (tflite, tf, tf_xla),
``precision``, ``threads`` (``None``: the runtime's default), ``batch_size`` (inputs are run
in chunks of that size) and ``loader`` (the loader module's name).

A model with one input takes an array (or a DataFrame) of samples. A model with several
inputs takes a dict of arrays keyed by input name (the Keras ``Input`` names, which its
signature lists), or a list of arrays in the model's input order; every array holds the
same samples. A model tuned from a multi-output model serves its scored output only.
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
        # Loaders of older promotions know one input only.
        self.input_names = list(getattr(self._runner, "input_names", None) or ["input"])
        self.input_dtypes = list(getattr(self._runner, "input_dtypes", None) or [self.input_dtype])

    def _inputs(self, model_input: Any) -> list[np.ndarray]:
        """One contiguous array per input, in the model's order."""
        names, dtypes = self.input_names, self.input_dtypes
        if len(names) == 1:
            if isinstance(model_input, dict):
                if len(model_input) != 1:
                    raise ValueError(
                        f"This model takes one input; got {len(model_input)} named inputs."
                    )
                (model_input,) = model_input.values()
            if hasattr(model_input, "to_numpy"):  # a pandas DataFrame
                model_input = model_input.to_numpy()
            return [np.ascontiguousarray(model_input, dtype=self.input_dtype)]
        if isinstance(model_input, dict):
            missing = [n for n in names if n not in model_input]
            if missing:
                raise ValueError(
                    f"Missing input(s) {', '.join(missing)}: this model takes a dict of arrays "
                    f"keyed by {', '.join(names)}."
                )
            arrays = [model_input[n] for n in names]
        elif isinstance(model_input, list | tuple) and len(model_input) == len(names):
            arrays = list(model_input)
        else:
            raise ValueError(
                f"This model has {len(names)} inputs: pass a dict of arrays keyed by "
                f"{', '.join(names)}."
            )
        xs = [np.ascontiguousarray(a, dtype=d) for a, d in zip(arrays, dtypes, strict=True)]
        if len({len(x) for x in xs}) != 1:
            sizes = ", ".join(f"{n}: {len(x)}" for n, x in zip(names, xs, strict=True))
            raise ValueError(f"The inputs hold different numbers of samples ({sizes}).")
        return xs

    # No type hints on predict: MLflow would try to read them as the input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predict a batch of inputs (first axis = samples): an array, or a dict by input name."""
        xs = self._inputs(model_input)
        if len(xs[0]) == 0:
            raise ValueError("No input samples were given.")
        size = self.batch_size
        chunks = []
        for i in range(0, len(xs[0]), size):
            batch = [np.ascontiguousarray(x[i : i + size]) for x in xs]
            chunks.append(np.asarray(self._runner.predict(batch[0] if len(xs) == 1 else batch)))
        return np.concatenate(chunks)


mlflow.models.set_model(TunedModel())
