"""Inspect a model inside a worker: its inputs and outputs and whether it can be pruned.

A model may have several inputs (each fed its own array of the data file) and several
outputs; of the latter, one is scored. A model with several outputs is cut to the scored one
(:func:`select_output`) before anything else, so every runtime, the pruning and a promoted
model serve that output alone.
"""

from __future__ import annotations

from typing import Any

from infertune.exceptions import InputError, PruningError
from infertune.models.graph import check_prunable, count_macs
from infertune.workers.protocol import (
    Done,
    InspectRequest,
    ModelInfo,
    SelectOutputRequest,
    TensorInfo,
)
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


def input_infos(model: Any) -> list[TensorInfo]:
    """A Keras model's inputs, in its order (names are the ``Input`` layers' names)."""
    return [
        TensorInfo(name=str(t.name), shape=_shape(t.shape), dtype=str(t.dtype))
        for t in model.inputs
    ]


def output_names(model: Any) -> list[str]:
    """The names of a Keras model's outputs (the layers that produce them), in its order."""
    # What Keras' functional models call ``output_names`` (Sequential ones have none).
    return [str(t._keras_history[0].name) for t in model.outputs]


def select_output(model: Any, output: str | None, path: str) -> tuple[Any, str | None]:
    """The model cut to its output ``output``, and the output's name.

    A single-output model is returned as it is (``output`` may name its output). The cut
    model keeps every input, so the data file feeds it as it fed the whole model.

    Raises:
        InputError: Several outputs and none named, or an unknown name (the message lists the
            model's output names).
    """
    names = output_names(model)
    listed = ", ".join(f"'{n}'" for n in names)
    if output is None:
        if len(names) > 1:
            raise InputError(
                f"Model {path} has {len(names)} outputs ({listed}); choose the scored one "
                "with --output NAME."
            )
        return model, None
    if output not in names:
        raise InputError(f"Model {path} has no output named '{output}'; its outputs are {listed}.")
    if len(names) == 1:
        return model, output
    import keras

    tensor = model.outputs[names.index(output)]
    inputs = model.inputs[0] if len(model.inputs) == 1 else list(model.inputs)
    return keras.Model(inputs, tensor, name=model.name), output


def _savedmodel_info(path: str) -> ModelInfo:
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
            "serving_default signature; infertune runs several inputs or outputs from a "
            ".keras model only: pass the .keras file."
        )
    ((in_name, in_spec),) = inputs.items()
    ((out_name, out_spec),) = outputs.items()
    shape = _shape(in_spec.shape)
    return ModelInfo(
        input_shape=shape,
        input_dtype=in_spec.dtype.name,
        inputs=[TensorInfo(name=str(in_name), shape=shape, dtype=in_spec.dtype.name)],
        output_shape=_shape(out_spec.shape),
        outputs=[str(out_name)],
        output=None,
        final_activation=None,
        params=None,
        macs=None,
        prunable=False,
        not_prunable_reason=(
            f"Model {path} is a SavedModel, which has no Keras layers to prune; pass the "
            ".keras file or use a prune ratio of 0."
        ),
    )


def inspect_model_op(ctx: WorkerContext, request: InspectRequest) -> ModelInfo:
    """Worker operation ``model.inspect``."""
    path = request.path
    if request.format == "savedmodel":
        info = _savedmodel_info(path)
        if request.output is not None and request.output not in info.outputs:
            raise InputError(
                f"Model {path} has no output named '{request.output}'; its output is "
                f"'{info.outputs[0]}'."
            )
        return info
    model = load_keras_model(path)
    names = output_names(model)
    model, output = select_output(model, request.output, path)
    reason = None
    try:
        check_prunable(model)
    except PruningError as exc:
        reason = str(exc)
    # The layer that computes the (scored) output: its activation tells the task.
    last = model.outputs[0]._keras_history[0]
    activation = getattr(last, "activation", None)
    inputs = input_infos(model)
    return ModelInfo(
        input_shape=inputs[0].shape,
        input_dtype=inputs[0].dtype,
        inputs=inputs,
        output_shape=_shape(model.outputs[0].shape),
        outputs=names,
        output=output,
        final_activation=getattr(activation, "__name__", None),
        params=int(model.count_params()),
        macs=count_macs(model),
        prunable=reason is None,
        not_prunable_reason=reason,
    )


def select_output_op(ctx: WorkerContext, request: SelectOutputRequest) -> Done:
    """Worker operation ``model.select_output``: save the model cut to the scored output."""
    model = load_keras_model(request.source)
    cut, _ = select_output(model, request.output, request.source)
    cut.save(request.out_path)
    return Done()
