"""Structured pruning: remove whole filters/units, rebuild a smaller model, fine-tune it.

Zeroing weights (unstructured pruning) does not make dense CPU kernels faster; removing
whole output channels of each Conv/Dense layer shrinks every following layer too, so latency
really drops. The model's dependency graph (:mod:`infertune.models.graph`) says which
channels are coupled (residual merges, concatenations, depthwise/separable convolutions,
squeeze-excite blocks) and must go together, and which channels each layer keeps; this
module replays the model's graph with smaller layers and the kept slices of the weights.
Nested models are inlined, so the pruned model is one flat functional model. Model
inspection asks the same graph whether the model can be pruned at all.

Runs inside a worker process (TensorFlow is imported there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infertune.models.data import read_inputs
from infertune.models.graph import count_macs, plan
from infertune.models.inspect import load_keras_model
from infertune.models.training import fit, save_for_inference
from infertune.workers.protocol import PruneRequest, PruneResult
from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow


def _keras() -> Any:
    import_tensorflow()
    import keras

    return keras


def prune_model(model: Any, ratio: float) -> tuple[Any, list[dict[str, Any]]]:
    """Return a new, smaller model with the least important channels removed, and what changed.

    At ``ratio`` 0 the result is a copy (nested models inlined) whose outputs equal the
    original's.
    """
    keras = _keras()
    pruned_plan = plan(model, ratio)
    graph = pruned_plan.graph
    values: dict[int, Any] = {}
    inputs = []
    for key in graph.inputs:
        spec = graph.tensors[key]
        values[key] = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name)
        inputs.append(values[key])
    built: dict[str, Any] = {}
    for call in graph.calls:
        step = pruned_plan.layers[call.name]
        layer = built.get(call.name)
        first = layer is None
        if layer is None:
            layer = built[call.name] = type(call.layer).from_config(step.config)
        originals = call.node.input_tensors
        args, kwargs = call.node.arguments.fill_in(
            {id(t): values[k] for t, k in zip(originals, call.inputs, strict=True)}
        )
        outputs = keras.tree.flatten(layer(*args, **kwargs))
        for key, tensor in zip(call.outputs, outputs, strict=True):
            values[key] = tensor
        if first:
            layer.set_weights(step.weights)
    outputs = [values[k] for k in graph.outputs]
    pruned = keras.Model(
        inputs[0] if len(inputs) == 1 else inputs,
        outputs[0] if len(outputs) == 1 else outputs,
        name=model.name,
    )
    return pruned, pruned_plan.changes


def _loss_for_task(keras: Any, task: dict[str, Any]) -> Any:
    if task["kind"] == "classification":
        from_logits = not task.get("probabilities", False)
        if task.get("binary"):  # one output: a sigmoid (or unknown: read as one) or a logit
            return keras.losses.BinaryCrossentropy(from_logits=task.get("probabilities") is False)
        if task.get("one_hot"):
            return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.MeanSquaredError()


def finetune(
    ctx: WorkerContext,
    model: Any,
    x: np.ndarray | list[np.ndarray],
    y: np.ndarray,
    task: dict[str, Any],
    epochs: int,
    learning_rate: float = 2e-3,
) -> float:
    """Train briefly after pruning (accuracy collapses without it); returns the last loss.

    ``x`` is the input array, or one array per input (model order) for several inputs.
    """
    history = fit(
        ctx,
        model,
        x,
        y,
        loss=_loss_for_task(_keras(), task),
        epochs=epochs,
        learning_rate=learning_rate,
        label="fine-tuning the pruned model",
    )
    return float(history.history["loss"][-1])


def prune_op(ctx: WorkerContext, request: PruneRequest) -> PruneResult:
    """Worker operation ``variant.prune``: prune a ``.keras`` model, fine-tune, save."""
    keras = _keras()
    keras.utils.set_random_seed(request.seed)
    model = load_keras_model(request.source)
    params_before = int(model.count_params())
    pruned, changes = prune_model(model, request.ratio)
    finetune_epochs, finetune_loss = 0, None
    train = request.train
    if train is not None and request.epochs > 0:
        xs = read_inputs(train.path, train.x_keys, [t.dtype for t in pruned.inputs])
        with np.load(train.path) as data:
            y = data[train.y_key]
        # A model with several inputs trains on the list of its input arrays (model order).
        x = xs[0] if len(xs) == 1 else xs
        finetune_loss = finetune(
            ctx, pruned, x, y, request.task, request.epochs, request.learning_rate
        )
        finetune_epochs = request.epochs
    save_for_inference(pruned, request.out_path)
    return PruneResult(
        params_before=params_before,
        params_after=int(pruned.count_params()),
        macs=count_macs(pruned),
        layers=changes,
        finetune_epochs=finetune_epochs,
        finetune_loss=finetune_loss,
    )
