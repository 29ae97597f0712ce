"""Training of the built-in demo models, inside a worker (operation ``demo.train``).

The catalogue (names, architectures, the cache layout) is :mod:`infertune.models.demo`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from infertune.models.demo import DEMO_FORMAT, DEMOS, DemoSpec
from infertune.models.training import fit, save_for_inference
from infertune.workers.protocol import DemoInfo, DemoTrainRequest
from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow


def digits_splits(size: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's digits, scaled to [0, 1], resized to ``size``x``size``, split 80/20."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    factor = size / images.shape[1]
    resized = zoom(images, (1, factor, factor), order=1).clip(0.0, 1.0)[..., None]
    x_train, x_eval, y_train, y_eval = train_test_split(
        resized.astype(np.float32),
        digits.target.astype(np.int64),
        test_size=0.2,
        random_state=seed,
        stratify=digits.target,
    )
    return x_train, x_eval, y_train, y_eval


def build_model(spec: DemoSpec) -> Any:
    """The demo's Keras architecture (untrained)."""
    import_tensorflow()
    import keras

    layers: list[Any] = [keras.Input((spec.size, spec.size, 1), name="image")]
    for block in spec.blocks:
        if block == "pool":
            layers.append(keras.layers.MaxPooling2D())
        else:
            layers += [
                keras.layers.Conv2D(int(block), 3, padding="same", use_bias=False),
                # Momentum 0.9: the default 0.99 leaves the moving statistics far from the
                # data after a short training run, and eval accuracy collapses.
                keras.layers.BatchNormalization(momentum=0.9),
                keras.layers.ReLU(),
            ]
    if spec.head == "gap":
        layers.append(keras.layers.GlobalAveragePooling2D())
    else:
        layers += [
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
        ]
    layers.append(keras.layers.Dense(10, activation="softmax", name="digit"))
    return keras.Sequential(layers, name=spec.name.replace("-", "_"))


def train_op(ctx: WorkerContext, request: DemoTrainRequest) -> DemoInfo:
    """Worker operation ``demo.train``: train a demo model and write its files."""
    name, out_dir, seed = request.name, request.out_dir, request.seed
    import_tensorflow()
    import keras

    spec = DEMOS[name]
    keras.utils.set_random_seed(seed)
    x_train, x_eval, y_train, y_eval = digits_splits(spec.size, seed)
    model = build_model(spec)
    started = time.monotonic()
    fit(
        ctx,
        model,
        x_train,
        y_train,
        loss="sparse_categorical_crossentropy",
        epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        label=f"training demo:{name}",
        metrics=["accuracy"],
    )
    train_s = time.monotonic() - started
    _, eval_accuracy = model.evaluate(x_eval, y_eval, verbose=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_for_inference(model, out / "model.keras")
    np.savez(out / "train.npz", x=x_train, y=y_train)
    np.savez(out / "eval.npz", x=x_eval, y=y_eval)
    info = {
        "format": DEMO_FORMAT,
        "name": name,
        "description": spec.description,
        "eval_accuracy": float(eval_accuracy),
        "train_seconds": round(train_s, 1),
        "train_samples": len(x_train),
        "eval_samples": len(x_eval),
        "seed": seed,
    }
    (out / "info.json").write_text(json.dumps(info, indent=2))
    return DemoInfo.model_validate(info)
