"""The model's serving function: what converters that read TensorFlow graphs start from.

OpenVINO and tf2onnx both convert a ``tf.function`` with a fixed input signature. Built from
the Keras model's call (or a SavedModel's ``serving_default`` signature), it works with
Keras 3, where ``tf2onnx.convert.from_keras`` does not (it looks up Keras 2 tensor names).
Runs in the build worker only (it imports TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import InputError


@dataclass(frozen=True)
class ServingFunction:
    """A model's inference call as one ``tf.function``.

    Attributes:
        function: The ``tf.function``: one batch per input in (first axis ``None``), one
            tensor out.
        input_specs: Its input signature: one ``tf.TensorSpec`` per input, in the model's
            order, named after the model's inputs (``input`` for a SavedModel's one input),
            which the converted models' inputs are then named after.
        input_dtypes: The inputs' numpy dtypes (calibration samples are cast to them).
        keep_alive: The loaded model, which the function's variables belong to.
    """

    function: Any
    input_specs: list[Any]
    input_dtypes: list[np.dtype[Any]]
    keep_alive: Any

    @property
    def input_names(self) -> list[str]:
        """The inputs' names, in the model's order."""
        return [str(spec.name) for spec in self.input_specs]


def serving_function(source: Path, source_format: str) -> ServingFunction:
    """The inference call of a ``.keras`` file or SavedModel folder as a ``tf.function``.

    Args:
        source: The ``.keras`` file or SavedModel folder.
        source_format: ``"keras"`` or ``"savedmodel"``.

    Raises:
        InputError: The model has several outputs (it is cut to the scored one first), or is
            a SavedModel with several inputs.
    """
    from infertune.models.inspect import load_keras_model
    from infertune.workers.tfsetup import import_tensorflow

    tf = import_tensorflow()
    if source_format == "savedmodel":
        loaded = tf.saved_model.load(str(source))
        signature = loaded.signatures["serving_default"]
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1 or len(signature.structured_outputs) != 1:
            raise InputError(
                f"{source} has {len(inputs)} inputs and {len(signature.structured_outputs)} "
                "outputs; infertune runs a SavedModel with one input and one output."
            )
        ((name, spec),) = inputs.items()

        def call(*xs: Any) -> Any:
            (out,) = signature(**{name: xs[0]}).values()
            return out

        keep_alive: Any = loaded
        specs = [tf.TensorSpec([None, *spec.shape[1:]], spec.dtype, name="input")]
    else:
        model = load_keras_model(str(source))
        if len(model.outputs) != 1:
            raise InputError(
                f"{source} has {len(model.outputs)} outputs; infertune runs a model cut to "
                "its scored output."
            )
        several = len(model.inputs) > 1

        def call(*xs: Any) -> Any:
            return model(list(xs) if several else xs[0], training=False)

        keep_alive = model
        specs = [
            tf.TensorSpec(
                [None, *t.shape[1:]], tf.as_dtype(t.dtype), name=t.name if several else "input"
            )
            for t in model.inputs
        ]
    return ServingFunction(
        function=tf.function(call, input_signature=specs),
        input_specs=specs,
        input_dtypes=[np.dtype(s.dtype.as_numpy_dtype) for s in specs],
        keep_alive=keep_alive,
    )
