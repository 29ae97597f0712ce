"""Structured pruning: remove whole filters/units, rebuild a smaller model, fine-tune it.

Zeroing weights (unstructured pruning) does not make dense CPU kernels faster; removing the
lowest-L1 output channels of each Conv/Dense layer shrinks every following layer too, so
latency really drops. Supported topologies are chains (each layer feeds the next) of
convolutions, dense layers, batch normalization, activations, pooling, dropout and
flatten. Anything else (residual adds, concatenations, nested models, shared layers) is
refused with the layer that stops it: pruning there would need to keep channels aligned
across branches.

Runs inside a worker process (TensorFlow is imported there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from infertune.exceptions import PruningError
from infertune.measure.efficiency import count_macs
from infertune.models.inspect import load_keras_model
from infertune.models.training import fit, save_for_inference
from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow


def _keras() -> Any:
    import_tensorflow()
    import keras

    return keras


def _layer_groups(keras: Any) -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(prunable, per-channel-normalization, channel-preserving) layer classes."""
    L = keras.layers
    prunable = (L.Conv1D, L.Conv2D, L.Conv3D, L.Dense)
    per_channel = (L.BatchNormalization,)
    passthrough = (
        L.ReLU,
        L.LeakyReLU,
        L.ELU,
        L.Activation,
        L.Dropout,
        L.SpatialDropout1D,
        L.SpatialDropout2D,
        L.SpatialDropout3D,
        L.GaussianNoise,
        L.GaussianDropout,
        L.MaxPooling1D,
        L.MaxPooling2D,
        L.MaxPooling3D,
        L.AveragePooling1D,
        L.AveragePooling2D,
        L.AveragePooling3D,
        L.GlobalAveragePooling1D,
        L.GlobalAveragePooling2D,
        L.GlobalAveragePooling3D,
        L.GlobalMaxPooling1D,
        L.GlobalMaxPooling2D,
        L.GlobalMaxPooling3D,
        L.ZeroPadding1D,
        L.ZeroPadding2D,
        L.ZeroPadding3D,
        L.Cropping1D,
        L.Cropping2D,
        L.Cropping3D,
        L.UpSampling1D,
        L.UpSampling2D,
        L.UpSampling3D,
    )
    return prunable, per_channel, passthrough


def layer_chain(model: Any) -> list[Any]:
    """The model's layers in order if it is a chain, else a :class:`PruningError`."""
    keras = _keras()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise PruningError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; structured pruning supports single-input, single-output chains. "
            "Use a prune ratio of 0."
        )
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if isinstance(model, keras.Sequential):
        # A chain by construction. (Keras rebuilds a loaded Sequential once per added layer,
        # leaving stale inbound nodes, so the node check below would misread it.)
        return layers
    previous = model.inputs[0]
    for layer in layers:
        nodes = layer._inbound_nodes
        if len(nodes) != 1:
            raise PruningError(
                f"Layer '{layer.name}' is used {len(nodes)} times (a shared layer); structured "
                "pruning supports chains only. Use a prune ratio of 0."
            )
        inputs, outputs = nodes[0].input_tensors, nodes[0].output_tensors
        if len(inputs) != 1 or inputs[0] is not previous or len(outputs) != 1:
            raise PruningError(
                f"Layer '{layer.name}' ({type(layer).__name__}) takes {len(inputs)} input(s) "
                "that are not just the previous layer's output: the model has branches or "
                "merges (e.g. residual connections), which structured pruning does not "
                "support. Use a prune ratio of 0."
            )
        previous = outputs[0]
    return layers


@dataclass
class _Step:
    layer: Any
    weights: list[np.ndarray]
    config: dict[str, Any]
    before: int
    after: int


def _check_channels_last(layer: Any) -> None:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        raise PruningError(
            f"Layer '{layer.name}' uses data_format={fmt!r}; structured pruning supports "
            "channels_last models only. Use a prune ratio of 0."
        )


def plan(model: Any, ratio: float) -> list[_Step]:
    """Decide which channels each layer keeps, and slice the weights accordingly.

    Output channels of every prunable layer but the last are ranked by the L1 norm of their
    weights; the lowest ``ratio`` of them are removed (at least one channel stays). The
    layers that consume a pruned activation have the matching input slices removed.
    """
    keras = _keras()
    prunable, per_channel, passthrough = _layer_groups(keras)
    chain = layer_chain(model)
    prunable_idx = [i for i, layer in enumerate(chain) if type(layer) in prunable]
    if not prunable_idx:
        raise PruningError(
            f"Model '{model.name}' has no Conv or Dense layer to prune. Use a prune ratio of 0."
        )
    last_prunable = prunable_idx[-1]
    kept: np.ndarray | None = None  # channels of the current activation that remain
    steps: list[_Step] = []
    for i, layer in enumerate(chain):
        weights = [np.asarray(w) for w in layer.get_weights()]
        config = layer.get_config()
        before = after = 0
        if type(layer) in prunable:
            _check_channels_last(layer)
            if getattr(layer, "groups", 1) != 1:
                raise PruningError(
                    f"Layer '{layer.name}' is a grouped convolution, which "
                    "structured pruning does not support. Use a prune ratio of 0."
                )
            kernel = weights[0]
            if kept is not None:
                kernel = np.take(kernel, kept, axis=-2)
            before = kernel.shape[-1]
            if i != last_prunable and ratio > 0:
                n_keep = max(1, round(before * (1.0 - ratio)))
                l1 = np.abs(kernel).reshape(-1, before).sum(axis=0)
                kept = np.sort(np.argsort(-l1, kind="stable")[:n_keep])
                kernel = np.take(kernel, kept, axis=-1)
                weights = [kernel] + [np.take(w, kept, axis=-1) for w in weights[1:]]
                config["filters" if "filters" in config else "units"] = int(n_keep)
            else:
                kept = None
                weights = [kernel, *weights[1:]]
            after = kernel.shape[-1]
        elif type(layer) in per_channel:
            axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
            if kept is not None:
                if axis not in (-1, len(layer.input.shape) - 1):
                    raise PruningError(
                        f"Layer '{layer.name}' normalizes axis {axis}, not the "
                        "channel axis. Use a prune ratio of 0."
                    )
                weights = [np.take(w, kept, axis=-1) for w in weights]
        elif type(layer) in passthrough:
            _check_channels_last(layer)
            activation = config.get("activation")
            if kept is not None and activation in ("softmax", "log_softmax"):
                raise PruningError(
                    f"Layer '{layer.name}' applies {activation} across channels; "
                    "pruning would change it. Use a prune ratio of 0."
                )
        elif type(layer) is keras.layers.Flatten:
            _check_channels_last(layer)
            if kept is not None:
                shape = layer.input.shape
                positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
                channels = shape[-1]
                kept = (np.arange(positions)[:, None] * channels + kept[None, :]).reshape(-1)
        else:
            raise PruningError(
                f"Layer '{layer.name}' of type {type(layer).__name__} is not supported by "
                "structured pruning (supported: Conv1D/2D/3D, Dense, BatchNormalization, "
                "activations, pooling, dropout, padding, Flatten). Use a prune ratio of 0."
            )
        steps.append(_Step(layer, weights, config, before, after))
    return steps


def prune_model(model: Any, ratio: float) -> tuple[Any, list[dict[str, Any]]]:
    """Return a new, smaller model with the lowest-L1 channels removed, and what changed."""
    keras = _keras()
    steps = plan(model, ratio)
    spec = model.inputs[0]
    inputs = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name)
    x = inputs
    for step in steps:
        layer = step.layer.__class__.from_config(step.config)
        x = layer(x)
        layer.set_weights(step.weights)
    pruned = keras.Model(inputs, x, name=model.name)
    changes = [
        {"layer": s.layer.name, "channels_before": s.before, "channels_after": s.after}
        for s in steps
        if s.before
    ]
    return pruned, changes


def _loss_for_task(keras: Any, task: dict[str, Any]) -> Any:
    if task["kind"] == "classification":
        from_logits = not task.get("probabilities", False)
        if task.get("one_hot"):
            return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.MeanSquaredError()


def finetune(
    ctx: WorkerContext,
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    task: dict[str, Any],
    epochs: int,
    learning_rate: float = 1e-3,
) -> float:
    """Train briefly after pruning (accuracy collapses without it); returns the last loss."""
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


def prune_op(
    ctx: WorkerContext,
    source: str,
    out_path: str,
    ratio: float,
    task: dict[str, Any],
    train_path: str | None = None,
    x_key: str = "x",
    y_key: str = "y",
    epochs: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """Worker operation ``variant.prune``: prune a ``.keras`` model, fine-tune, save."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = load_keras_model(source)
    params_before = int(model.count_params())
    pruned, changes = prune_model(model, ratio)
    result: dict[str, Any] = {
        "params_before": params_before,
        "params_after": int(pruned.count_params()),
        "macs": count_macs(pruned),
        "layers": changes,
        "finetune_epochs": 0,
        "finetune_loss": None,
    }
    if train_path and epochs > 0:
        with np.load(train_path) as data:
            x, y = data[x_key].astype(pruned.inputs[0].dtype), data[y_key]
        result["finetune_loss"] = finetune(ctx, pruned, x, y, task, epochs)
        result["finetune_epochs"] = epochs
    save_for_inference(pruned, out_path)
    return result
