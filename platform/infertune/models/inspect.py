"""Inspect a model inside a worker: its input/output signature and whether it can be pruned."""

from __future__ import annotations

from typing import Any

from infertune.exceptions import InputError, PruningError
from infertune.models.graph import check_prunable, count_macs
from infertune.workers.protocol import InspectRequest, ModelInfo
from infertune.workers.server import WorkerContext, one_line
from infertune.workers.tfsetup import import_tensorflow


def _shape(shape: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


def load_keras_model(path: str) -> Any:
    """Load a ``.keras`` file with ``safe_mode=True``; any failure is an :class:`InputError`."""
    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        if "safe_mode" in str(exc):
            raise InputError(
                f"Cannot load the Keras model {path}: it holds Python code (e.g. a Lambda layer) "
                "that Keras' safe_mode refuses to load; rebuild it with standard or registered "
                "layers."
            ) from exc
        raise InputError(f"Cannot load the Keras model {path}: {one_line(exc)}") from exc


def inspect_model_op(ctx: WorkerContext, request: InspectRequest) -> ModelInfo:
    """Worker operation ``model.inspect``."""
    path = request.path
    if request.format == "savedmodel":
        tf = import_tensorflow()
        try:
            loaded = tf.saved_model.load(path)
            signature = loaded.signatures["serving_default"]
        except Exception as exc:
            raise InputError(f"Cannot load the SavedModel {path}: {one_line(exc)}") from exc
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(
                f"SavedModel {path} has {len(inputs)} inputs and {len(outputs)} outputs in its "
                "serving_default signature; infertune handles single-input, single-output models."
            )
        (in_spec,) = inputs.values()
        (out_spec,) = outputs.values()
        return ModelInfo(
            input_shape=_shape(in_spec.shape),
            input_dtype=in_spec.dtype.name,
            output_shape=_shape(out_spec.shape),
            final_activation=None,
            params=None,
            macs=None,
            prunable=False,
            not_prunable_reason=(
                f"Model {path} is a SavedModel, which has no Keras layers to prune; pass the "
                ".keras file or use a prune ratio of 0."
            ),
        )
    model = load_keras_model(path)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(
            f"Model {path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "infertune handles single-input, single-output models."
        )
    reason = None
    try:
        check_prunable(model)
    except PruningError as exc:
        reason = str(exc)
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return ModelInfo(
        input_shape=_shape(model.inputs[0].shape),
        input_dtype=str(model.inputs[0].dtype),
        output_shape=_shape(model.outputs[0].shape),
        final_activation=getattr(activation, "__name__", None),
        params=int(model.count_params()),
        macs=count_macs(model),
        prunable=reason is None,
        not_prunable_reason=reason,
    )
