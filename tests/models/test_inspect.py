"""Model inspection answers "can this be pruned?" the way pruning does."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

keras = pytest.importorskip("keras")

from infertune.models.inspect import inspect_model_op  # noqa: E402
from infertune.workers.protocol import InspectRequest, ModelInfo  # noqa: E402
from infertune.workers.server import WorkerContext  # noqa: E402


def _inspect(model: Any, tmp_path: Path) -> ModelInfo:
    path = tmp_path / "model.keras"
    model.save(path)
    return inspect_model_op(
        WorkerContext(io.StringIO()), InspectRequest(path=str(path), format="keras")
    )


def test_a_residual_model_is_prunable(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    info = _inspect(keras.Model(inputs, keras.layers.Dense(4)(x)), tmp_path)
    assert info.prunable and info.not_prunable_reason is None
    assert info.macs == 64 * (27 * 8 + 72 * 8) + 8 * 4


def test_an_unsupported_layer_makes_it_not_prunable_with_the_layer_named(tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((6, 3)), keras.layers.LSTM(4, name="rnn"), keras.layers.Dense(2)]
    )
    info = _inspect(model, tmp_path)
    assert not info.prunable
    assert info.not_prunable_reason is not None
    assert "Layer 'rnn' of type LSTM is not supported" in info.not_prunable_reason
    assert info.macs == 4 * 2  # the Dense layer; the LSTM is not counted
