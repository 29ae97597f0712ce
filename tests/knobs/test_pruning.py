"""Structured pruning on small Keras models (built in the test process)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from infertune.exceptions import PruningError  # noqa: E402
from infertune.knobs.pruning import prune_model, prune_op  # noqa: E402
from infertune.models.graph import check_prunable  # noqa: E402
from infertune.workers.protocol import PruneRequest, TrainingData  # noqa: E402
from infertune.workers.server import WorkerContext  # noqa: E402
from tests.multiio import MultiIO  # noqa: E402


def _cnn(head: str = "flatten") -> Any:
    keras.utils.set_random_seed(1)
    layers = [
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
    ]
    layers += (
        [keras.layers.Flatten(), keras.layers.Dense(5, activation="relu")]
        if head == "flatten"
        else [keras.layers.GlobalAveragePooling2D()]
    )
    layers += [keras.layers.Dense(3, activation="softmax")]
    model = keras.Sequential(layers)
    # Non-trivial BN statistics, so slicing them wrongly would show.
    bn = model.layers[1]
    bn.set_weights([w + np.linspace(0.1, 0.8, w.shape[0]) for w in bn.get_weights()])
    return model


@pytest.mark.parametrize("head", ["flatten", "gap"])
def test_pruning_removes_channels_and_keeps_the_output(head: str) -> None:
    model = _cnn(head)
    pruned, changes = prune_model(model, 0.5)
    convs = [layer for layer in pruned.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 3]
    assert pruned.output_shape == model.output_shape
    assert pruned.count_params() < model.count_params()
    assert changes[0] == {"layer": model.layers[0].name, "channels_before": 8, "channels_after": 4}
    assert changes[-1]["channels_after"] == 3  # the output layer is never pruned
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    assert pruned.predict(x, verbose=0).shape == (4, 3)


def test_ratio_zero_is_an_exact_copy() -> None:
    model = _cnn()
    pruned, _ = prune_model(model, 0.0)
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(pruned(x, training=False), model(x, training=False), atol=1e-6)


def test_removed_channels_are_the_lowest_l1_and_the_rest_is_unchanged() -> None:
    """The weakest filters go; the kept ones and their BN statistics are copied exactly."""
    model = _cnn("gap")
    conv = model.layers[0]
    kernel, bias = conv.get_weights()
    weak = np.argsort(np.abs(kernel).reshape(-1, 8).sum(axis=0))[:4]
    kernel[..., weak] *= 1e-4  # make them clearly the weakest
    conv.set_weights([kernel, bias])
    pruned, _ = prune_model(model, 0.5)
    layers = [layer for layer in pruned.layers if not isinstance(layer, keras.layers.InputLayer)]
    kept_kernel = layers[0].get_weights()[0]
    expected = np.delete(kernel, weak, axis=-1)
    np.testing.assert_allclose(kept_kernel, expected)
    bn_gamma = layers[1].get_weights()[0]
    np.testing.assert_allclose(bn_gamma, np.delete(model.layers[1].get_weights()[0], weak))


def test_residual_model_is_pruned_with_the_add_inputs_coupled() -> None:
    inputs = keras.Input((8, 8, 2))
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(keras.layers.ReLU()(a))
    x = keras.layers.Add(name="skip")([a, b])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    pruned, changes = prune_model(model, 0.5)
    assert [c["channels_after"] for c in changes] == [4, 4, 2]
    assert pruned.get_layer("skip").output.shape[-1] == 4


def test_residual_on_the_input_leaves_nothing_to_prune() -> None:
    """The skip ties the convolution to the model's input channels, which never change."""
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Add(name="skip")([x, inputs])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(PruningError, match="no channels that structured pruning can remove"):
        check_prunable(model)


def test_unsupported_layer_is_named() -> None:
    model = keras.Sequential(
        [keras.Input((4, 3)), keras.layers.LSTM(4, name="rnn"), keras.layers.Dense(2)]
    )
    with pytest.raises(PruningError, match="Layer 'rnn' of type LSTM is not supported"):
        prune_model(model, 0.5)


def test_a_two_input_model_is_pruned_and_fine_tuned_on_both_inputs(
    multiio: MultiIO, tmp_path: Path
) -> None:
    out = tmp_path / "pruned.keras"
    events = io.StringIO()
    result = prune_op(
        WorkerContext(events),
        PruneRequest(
            source=str(multiio.two_input),
            out_path=str(out),
            ratio=0.5,
            task={"kind": "classification", "classes": 10, "one_hot": False, "probabilities": True},
            train=TrainingData(path=str(multiio.train_named), x_keys=["image", "features"]),
            epochs=1,
        ),
    )
    pruned = keras.saving.load_model(out, compile=False)
    # Each input keeps its name, shape and channels; the hidden layers lose half their units.
    assert [(t.name, tuple(t.shape)) for t in pruned.inputs] == [
        ("image", (None, 8, 8, 1)),
        ("features", (None, 16)),
    ]
    assert pruned.get_layer("conv1").filters == 8 and pruned.get_layer("dense_features").units == 8
    assert pruned.get_layer("digit").units == 10
    assert result.params_after < result.params_before / 2
    assert result.finetune_epochs == 1 and result.finetune_loss is not None
    with np.load(multiio.eval_named) as data:
        x, y = [data["image"], data["features"]], data["y"]
    accuracy = float(np.mean(np.argmax(pruned(x), axis=1) == y))
    assert accuracy > 0.6, accuracy  # fine-tuned on both inputs (unrecovered: ~0.1-0.5)
