"""Graph-aware structured pruning: residual, depthwise, concatenating, squeeze-excite models.

Every fixture is built here with random weights (``weights=None``: nothing is downloaded)
at the smallest input each architecture accepts, so the file runs in CI without training.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from infertune.exceptions import PruningError  # noqa: E402
from infertune.knobs.pruning import prune_model, prune_op  # noqa: E402
from infertune.models.graph import (  # noqa: E402
    check_prunable,
    choose_units,
    count_macs,
    dependency_graph,
)
from infertune.workers.protocol import PruneRequest, TrainingData  # noqa: E402
from infertune.workers.server import WorkerContext  # noqa: E402

L = keras.layers


def _inception() -> Any:
    """Inception-style block: parallel branches joined by a Concatenate."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    b1 = L.Conv2D(8, 1, activation="relu")(x)
    b2 = L.Conv2D(6, 1, activation="relu")(x)
    b2 = L.Conv2D(8, 3, padding="same", activation="relu")(b2)
    b3 = L.MaxPooling2D(3, strides=1, padding="same")(x)
    b3 = L.Conv2D(8, 1)(b3)
    x = L.Concatenate()([b1, b2, b3])
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.Conv2D(16, 3, strides=2)(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="inception")


def _squeeze_excite() -> Any:
    """Squeeze-excite (GAP -> Dense -> Dense -> Multiply) in a residual block, Flatten head."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    x = L.Activation("swish")(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Dense(4, activation="relu")(s)
    s = L.Dense(16, activation="sigmoid")(s)
    y = L.Multiply()([x, s])
    y = L.Conv2D(16, 1)(y)
    y = L.Add()([y, x])
    y = L.MaxPooling2D(4)(y)
    y = L.Flatten()(y)
    y = L.Dense(12, activation="relu")(y)
    return keras.Model(inputs, L.Dense(10)(y), name="squeeze_excite")


def _zoo() -> Any:
    """Many supported layers, inside a nested functional model wrapped by a Sequential."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.Rescaling(scale=np.linspace(0.5, 1.5, 8).tolist(), offset=0.1)(x)
    x = L.Normalization(mean=np.linspace(-1, 1, 8).tolist(), variance=[2.0] * 8)(x)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = L.LayerNormalization()(x)
    y = L.SeparableConv2D(16, 3, padding="same", activation="relu")(x)
    z = L.Subtract()([x, y])
    z = L.Average()([L.Maximum()([z, x]), L.Minimum()([z, y])])
    z = L.ZeroPadding2D(1)(z)
    z = L.Cropping2D(1)(z)
    z = L.AveragePooling2D(2)(z)
    z = L.UpSampling2D()(z)
    z = L.SpatialDropout2D(0.1)(z)
    z = L.Conv2D(8, 2, strides=2)(z)
    r = L.Reshape((64, 8))(z)
    r = L.Conv1D(6, 1, activation="elu")(r)
    r = L.GlobalMaxPooling1D()(r)
    base = keras.Model(inputs, r, name="base")
    return keras.Sequential([keras.Input((16, 16, 3)), base, L.Dense(10)], name="zoo")


def _depthwise() -> Any:
    """Depth multipliers, separable convolutions and per-channel layers that map 0 to 0."""
    inputs = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.Rescaling(scale=np.linspace(0.5, 1.5, 8).tolist())(x)
    x = L.Normalization(mean=[0.0] * 8, variance=np.linspace(0.5, 2.0, 8).tolist())(x)
    x = L.PReLU()(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.SeparableConv2D(12, 3, depth_multiplier=2, strides=2, activation="relu")(x)
    x = L.Reshape((-1, 12))(x)
    x = L.Conv1D(6, 3, activation="relu")(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(10)(x), name="depthwise")


def _app(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        return getattr(keras.applications, name)(
            weights=None, input_shape=(32, 32, 3), classes=10, **kwargs
        )

    return build


FIXTURES: dict[str, Callable[[], Any]] = {
    "inception": _inception,
    "squeeze_excite": _squeeze_excite,
    "zoo": _zoo,
    "depthwise": _depthwise,
    "MobileNetV2": _app("MobileNetV2"),
    "ResNet50V2": _app("ResNet50V2"),
    "EfficientNetB0": _app("EfficientNetB0"),
    "DenseNet121": _app("DenseNet121"),
}
_built: dict[str, Any] = {}


def _randomize(model: Any, seed: int = 0) -> Any:
    """Non-trivial normalization statistics and biases, so a misplaced slice would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomize(layer, seed + 1)
        for var in layer.weights:
            if var.name == "moving_variance":
                var.assign(rng.uniform(0.5, 2.0, var.shape).astype("float32"))
            elif var.name in ("moving_mean", "beta", "bias"):
                var.assign(rng.normal(0.0, 0.1, var.shape).astype("float32"))
            elif var.name == "gamma":
                var.assign(rng.uniform(0.5, 1.5, var.shape).astype("float32"))
    return model


def _model(name: str) -> Any:
    """One randomized copy per fixture for the tests that do not change weights."""
    if name not in _built:
        keras.utils.set_random_seed(0)
        _built[name] = _randomize(FIXTURES[name]())
    return _built[name]


def _sample(model: Any) -> np.ndarray:
    shape = (2, *model.inputs[0].shape[1:])
    return np.random.default_rng(1).random(shape, dtype=np.float32) * 2.0


@pytest.mark.parametrize("name", list(FIXTURES))
def test_ratio_zero_keeps_the_outputs(name: str) -> None:
    model = _model(name)
    pruned, _ = prune_model(model, 0.0)
    x = _sample(model)
    np.testing.assert_allclose(pruned(x, training=False), model(x, training=False), atol=1e-5)
    assert count_macs(pruned) == count_macs(model)


@pytest.mark.parametrize("name", list(FIXTURES))
def test_half_ratio_builds_a_smaller_model_with_the_same_output_shape(name: str) -> None:
    model = _model(name)
    pruned, changes = prune_model(model, 0.5)
    assert count_macs(pruned) <= 0.6 * count_macs(model)
    assert pruned.count_params() < model.count_params()
    assert pruned.output_shape == model.output_shape
    assert np.asarray(pruned(_sample(model), training=False)).shape == (2, 10)
    # The classifier's units are the model's output: never pruned.
    assert changes[-1]["channels_after"] == changes[-1]["channels_before"] == 10


def _zero_removed_channels(model: Any, ratio: float) -> None:
    """Make every channel that pruning at ``ratio`` removes exactly zero everywhere.

    Removing such channels cannot change the outputs, so comparing the pruned model with
    this one checks that every coupled slice (residual adds, concatenation offsets,
    depthwise channels, squeeze-excite scales, flatten positions) lines up.
    """
    dep = dependency_graph(model)
    keep = choose_units(dep, ratio)[dep.unit_of]
    for call in dep.graph.calls:
        gone = ~keep[dep.maps[call.outputs[0]]]
        if not gone.any():
            continue
        layer, kind = call.layer, dep.kinds[call.name]
        for var in layer.weights:
            value = np.array(var.numpy())
            if kind in ("producer", "depthwise") and var.name in (
                "kernel",
                "pointwise_kernel",
            ):
                flat = value.reshape(*value.shape[:-2], -1) if kind == "depthwise" else value
                flat[..., gone] = 0.0
                value = flat.reshape(value.shape)
            elif var.name in ("bias", "beta", "moving_mean"):
                value[gone] = 0.0
            else:
                continue
            var.assign(value)


@pytest.mark.parametrize(
    "name",
    ["inception", "squeeze_excite", "depthwise", "MobileNetV2", "EfficientNetB0", "DenseNet121"],
)
def test_removing_zeroed_channels_keeps_the_outputs(name: str) -> None:
    """Coupled channels are removed together: the same channels everywhere they appear."""
    keras.utils.set_random_seed(0)
    model = _randomize(FIXTURES[name]())
    _zero_removed_channels(model, 0.5)
    pruned, _ = prune_model(model, 0.5)
    assert count_macs(pruned) < 0.6 * count_macs(model)
    x = _sample(model)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(pruned(x, training=False), expected, rtol=1e-4, atol=1e-5)


def test_residual_inputs_keep_the_same_channels() -> None:
    inputs = keras.Input((8, 8, 2))
    a = L.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(8, 3, padding="same", name="b")(L.ReLU()(a))
    x = L.Add(name="skip")([a, b])
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    kernel_a, bias_a = model.get_layer("a").get_weights()
    kernel_a[..., :4] *= 1e-3  # a's first four filters are weak, b's last four
    model.get_layer("a").set_weights([kernel_a, bias_a])
    kernel_b, bias_b = model.get_layer("b").get_weights()
    kernel_b[..., 4:] *= 1e-3
    model.get_layer("b").set_weights([kernel_b, bias_b])
    pruned, _ = prune_model(model, 0.5)
    # One importance for each coupled pair: both layers keep the same four channels.
    new_a = pruned.get_layer("a").get_weights()[0]
    new_b = pruned.get_layer("b").get_weights()[0]
    summed = np.abs(kernel_a).reshape(-1, 8).sum(0) + np.abs(kernel_b).reshape(-1, 8).sum(0)
    kept = np.sort(np.argsort(-summed, kind="stable")[:4])
    np.testing.assert_allclose(new_a, kernel_a[..., kept])
    np.testing.assert_allclose(new_b, np.take(kernel_b, kept, axis=-2)[..., kept])


def test_nested_models_are_inlined() -> None:
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35
    )
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), base, L.GlobalAveragePooling2D(), L.Dense(3)]
    )
    pruned, _ = prune_model(model, 0.5)
    assert not any(isinstance(layer, keras.Model) for layer in pruned.layers)
    assert pruned.get_layer("Conv_1").filters == 640  # the last 1x1 conv of the base
    assert count_macs(pruned) < 0.6 * count_macs(model)


def test_pruned_model_saves_and_loads_safely(tmp_path: Path) -> None:
    pruned, _ = prune_model(_model("squeeze_excite"), 0.5)
    path = tmp_path / "pruned.keras"
    pruned.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    x = _sample(pruned)
    np.testing.assert_allclose(loaded(x), pruned(x), atol=1e-6)


#: A subclass may treat channels differently: not trusted as a Conv2D.
_MyConv = type("_MyConv", (L.Conv2D,), {})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: L.Lambda(lambda t: t * 2.0, name="double"), "'double' of type Lambda"),
        (lambda: _MyConv(4, 1, name="mine"), "'mine' of type _MyConv"),
        (lambda: L.Permute((2, 1, 3), name="perm"), "'perm' of type Permute"),
    ],
)
def test_an_unknown_layer_in_a_branch_is_named(make: Callable[[], Any], expected: str) -> None:
    inputs = keras.Input((8, 8, 4))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    y = make()(x)
    x = L.Add()([x, y])
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling2D()(x)))
    with pytest.raises(PruningError, match=f"Layer {expected} is not supported"):
        check_prunable(model)
    with pytest.raises(PruningError, match=f"Layer {expected} is not supported"):
        prune_model(model, 0.5)


def test_channels_needed_whole_are_kept() -> None:
    """A softmax across channels and the model's output keep every channel they see."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="soft")(inputs)
    x = L.Softmax()(x)
    x = L.Conv2D(8, 3, padding="same", name="free")(x)
    model = keras.Model(inputs, L.Conv2D(4, 1, name="head")(x))
    _, changes = prune_model(model, 0.5)
    after = {c["layer"]: c["channels_after"] for c in changes}
    assert after == {"soft": 6, "free": 4, "head": 4}


@pytest.mark.slow
def test_prune_op_fine_tunes_a_residual_model(tmp_path: Path) -> None:
    """A trained residual CNN on the digits, pruned by half: fine-tuning restores it."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target.astype("int64")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    a = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    b = L.Conv2D(32, 3, padding="same")(a)
    b = L.BatchNormalization()(b)
    x1 = L.ReLU()(L.Add()([a, b]))
    x1 = L.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x1)
    out = L.Dense(10)(L.GlobalAveragePooling2D()(x1))
    model = keras.Model(inputs, out)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[:1400], y[:1400], epochs=15, batch_size=32, verbose=0)
    baseline = model.evaluate(x[1400:], y[1400:], verbose=0)[1]
    source, data = tmp_path / "model.keras", tmp_path / "train.npz"
    model.save(source)
    np.savez(data, x=x[:1400], y=y[:1400])
    request = PruneRequest(
        source=str(source),
        out_path=str(tmp_path / "pruned.keras"),
        ratio=0.5,
        task={"kind": "classification"},
        train=TrainingData(path=str(data)),
        epochs=5,
    )
    result = prune_op(WorkerContext(io.StringIO()), request)
    assert result.params_after < 0.5 * result.params_before
    assert result.finetune_epochs == 5
    pruned = keras.saving.load_model(request.out_path, safe_mode=True, compile=False)
    predicted = np.argmax(pruned.predict(x[1400:], verbose=0), axis=-1)
    accuracy = float(np.mean(predicted == y[1400:]))
    assert baseline > 0.9
    assert accuracy > baseline - 0.05
