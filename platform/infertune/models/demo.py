"""Built-in demo models, trained locally from scikit-learn's digits (no download).

``demo:digits-cnn``     a small CNN at 32x32 (a few M MACs): trains in seconds; for tests.
``demo:digits-midcnn``  a VGG-style CNN at 96x96 (~235M MACs): trains in about a minute or
                        two on two cores; latency differences between configurations are large.

Each is trained once with fixed seeds and cached under ``<home>/demo/<name>/`` with its
``train.npz`` and ``eval.npz`` splits.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import InputError
from infertune.models.training import fit, save_for_inference
from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow

#: Bump when a demo's architecture, data or training changes: cached copies are rebuilt.
DEMO_FORMAT = 2


@dataclass(frozen=True)
class DemoSpec:
    """How a demo model is built and trained."""

    name: str
    size: int
    blocks: tuple[int | str, ...]
    head: str
    epochs: int
    learning_rate: float
    description: str


DEMOS: dict[str, DemoSpec] = {
    spec.name: spec
    for spec in (
        DemoSpec(
            name="digits-cnn",
            size=32,
            blocks=(16, "pool", 32, "pool"),
            head="flatten-dense",
            epochs=8,
            learning_rate=2e-3,
            description="small CNN on 32x32 digits (~1.5M MACs), trains in seconds",
        ),
        DemoSpec(
            name="digits-midcnn",
            size=96,
            blocks=(16, 32, "pool", 64, 64, "pool", 128, "pool", 128),
            head="gap",
            epochs=3,
            learning_rate=3e-3,
            description="VGG-style CNN on 96x96 digits (~235M MACs), trains in a minute or two",
        ),
    )
}


@dataclass(frozen=True)
class DemoModel:
    """Files of a trained demo model."""

    name: str
    model_path: Path
    eval_path: Path
    train_path: Path
    info: dict[str, Any]


def demo_names() -> list[str]:
    """The demo model names, as accepted after ``demo:``."""
    return sorted(DEMOS)


def parse_demo(spec: str) -> DemoSpec:
    """Resolve ``demo:NAME`` to its spec, or a clear error listing the choices."""
    name = spec.removeprefix("demo:")
    if name not in DEMOS:
        choices = ", ".join(f"demo:{n}" for n in demo_names())
        raise InputError(f"Unknown demo model '{spec}'; choose one of {choices}.")
    return DEMOS[name]


def cached_demo(demo_dir: Path, spec: DemoSpec) -> DemoModel | None:
    """The trained demo if it is cached and current, else ``None``."""
    folder = demo_dir / spec.name
    info_path = folder / "info.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    if info.get("format") != DEMO_FORMAT:
        return None
    return DemoModel(
        spec.name, folder / "model.keras", folder / "eval.npz", folder / "train.npz", info
    )


def publish_demo(demo_dir: Path, spec: DemoSpec, build_dir: Path) -> DemoModel:
    """Move a freshly trained demo into place (atomic: a half-written demo is never seen)."""
    final = demo_dir / spec.name
    if final.exists():
        shutil.rmtree(final)
    os.replace(build_dir, final)
    demo = cached_demo(demo_dir, spec)
    assert demo is not None
    return demo


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


def train_op(ctx: WorkerContext, name: str, out_dir: str, seed: int = 0) -> dict[str, Any]:
    """Worker operation ``demo.train``: train a demo model and write its files."""
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
    return info
