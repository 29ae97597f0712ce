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
        function: The ``tf.function``: one batch in (first axis ``None``), one tensor out.
        input_spec: Its input signature's ``tf.TensorSpec`` (named ``input``).
        input_dtype: The input's numpy dtype (calibration samples are cast to it).
        keep_alive: The loaded model, which the function's variables belong to.
    """

    function: Any
    input_spec: Any
    input_dtype: np.dtype[Any]
    keep_alive: Any


def serving_function(source: Path, source_format: str) -> ServingFunction:
    """The inference call of a ``.keras`` file or SavedModel folder as a ``tf.function``.

    Args:
        source: The ``.keras`` file or SavedModel folder.
        source_format: ``"keras"`` or ``"savedmodel"``.

    Raises:
        InputError: The model is not a single-input, single-output model.
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
                "outputs; infertune runs single-input, single-output models."
            )
        ((name, spec),) = inputs.items()

        def call(x: Any) -> Any:
            (out,) = signature(**{name: x}).values()
            return out

        keep_alive: Any = loaded
        shape, dtype = spec.shape[1:], spec.dtype
    else:
        model = load_keras_model(str(source))
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise InputError(
                f"{source} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                "infertune runs single-input, single-output models."
            )

        def call(x: Any) -> Any:
            return model(x, training=False)

        keep_alive = model
        shape, dtype = model.inputs[0].shape[1:], tf.as_dtype(model.inputs[0].dtype)
    input_spec = tf.TensorSpec([None, *shape], dtype, name="input")
    return ServingFunction(
        function=tf.function(call, input_signature=[input_spec]),
        input_spec=input_spec,
        input_dtype=np.dtype(dtype.as_numpy_dtype),
        keep_alive=keep_alive,
    )
