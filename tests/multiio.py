"""Tiny models with several inputs or outputs, trained on sklearn's digits (fixed seed).

``two_input.keras``: an 8x8x1 image branch (convolutions) and a 16-feature branch (the
image's row and column sums), concatenated, 10 softmax classes (output ``digit``).
``two_output.keras``: the same trunk with two heads, ``digit`` (classes) and ``ink`` (the
mean intensity, a regression). Data files: ``eval_named.npz`` / ``train_named.npz`` (arrays
named after the inputs: ``image``, ``features``, ``y``) and ``eval_positional.npz`` (``x0``,
``x1``, ``y``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: Samples of the training split (the rest of the 1797 digits is the evaluation split).
TRAIN = 1400
INPUTS = ("image", "features")


@dataclass(frozen=True)
class MultiIO:
    """Paths of the built models and data files."""

    two_input: Path
    two_output: Path
    eval_named: Path
    eval_positional: Path
    train_named: Path


def _arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    features = np.concatenate([images.sum(axis=1)[..., 0], images.sum(axis=2)[..., 0]], axis=1)
    features = (features / 8.0).astype("float32")
    ink = images.mean(axis=(1, 2, 3)).astype("float32")[:, None]
    return images, features, digits.target.astype("int64"), ink


def _trunk(keras: Any) -> tuple[list[Any], Any]:
    layers = keras.layers
    image = keras.Input((8, 8, 1), name="image")
    features = keras.Input((16,), name="features")
    a = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(image)
    a = layers.MaxPooling2D(name="pool")(a)
    a = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(a)
    a = layers.Flatten(name="flat")(a)
    b = layers.Dense(16, activation="relu", name="dense_features")(features)
    joined = layers.Concatenate(name="join")([a, b])
    return [image, features], layers.Dense(32, activation="relu", name="hidden")(joined)


def build(directory: Path, epochs: int = 5) -> MultiIO:
    """Train both models and write them and the data files into ``directory``."""
    import keras

    keras.utils.set_random_seed(0)
    images, features, y, ink = _arrays()
    inputs, hidden = _trunk(keras)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")
    model = keras.Model(inputs, digit(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    train = [images[:TRAIN], features[:TRAIN]]
    model.fit(train, y[:TRAIN], epochs=epochs, batch_size=32, verbose=0)
    model.save(directory / "two_input.keras")

    keras.utils.set_random_seed(0)
    inputs, hidden = _trunk(keras)
    heads = [
        keras.layers.Dense(10, activation="softmax", name="digit")(hidden),
        keras.layers.Dense(1, name="ink")(hidden),
    ]
    two = keras.Model(inputs, heads)
    two.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"])
    two.fit(train, [y[:TRAIN], ink[:TRAIN]], epochs=epochs, batch_size=32, verbose=0)
    two.save(directory / "two_output.keras")

    ev = slice(TRAIN, None)
    np.savez(directory / "eval_named.npz", image=images[ev], features=features[ev], y=y[ev])
    np.savez(directory / "eval_positional.npz", x0=images[ev], x1=features[ev], y=y[ev])
    np.savez(
        directory / "train_named.npz", image=images[:TRAIN], features=features[:TRAIN], y=y[:TRAIN]
    )
    return paths(directory)


def paths(directory: Path) -> MultiIO:
    """The files :func:`build` writes into ``directory``."""
    return MultiIO(
        two_input=directory / "two_input.keras",
        two_output=directory / "two_output.keras",
        eval_named=directory / "eval_named.npz",
        eval_positional=directory / "eval_positional.npz",
        train_named=directory / "train_named.npz",
    )


@pytest.fixture(scope="session")
def multiio(tmp_path_factory: pytest.TempPathFactory) -> MultiIO:
    """The models and data files, built once per test session (a few seconds)."""
    directory = tmp_path_factory.getbasetemp() / "multiio"
    if not (directory / "done").is_file():
        directory.mkdir(exist_ok=True)
        build(directory)
        (directory / "done").touch()
    return paths(directory)
