"""Short training runs inside a worker (demo models, fine-tuning after pruning)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow


def fit(
    ctx: WorkerContext,
    model: Any,
    x: np.ndarray | list[np.ndarray],
    y: np.ndarray,
    *,
    loss: Any,
    epochs: int,
    learning_rate: float,
    label: str,
    batch_size: int = 32,
    metrics: list[str] | None = None,
) -> Any:
    """Compile and train with Adam and a cosine decay to zero, reporting progress.

    The decay matters for short runs: the last, small steps settle the weights and the
    batch-norm statistics, which a constant rate leaves noisy after a few epochs.
    """
    import_tensorflow()
    import keras

    # A model with several inputs trains on a list of arrays, one per input.
    samples = len(x[0]) if isinstance(x, list) else len(x)
    total = epochs * -(-samples // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, total)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)

    class _Progress(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.done = 0
            self.last = 0.0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.done += 1
            now = time.monotonic()
            if now - self.last > 0.25 or self.done == total:
                self.last = now
                ctx.progress(label, self.done, total)

    return model.fit(
        x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[_Progress()]
    )


def save_for_inference(model: Any, path: str | Path) -> None:
    """Save a trained model without its optimizer state.

    Keras stores the optimizer's slots in the ``.keras`` file (Adam: twice the weights), so a
    trained model would look about three times larger than the same weights converted to
    LiteRT; an inference artifact carries the weights only.
    """
    model.optimizer = None
    model.save(path)
