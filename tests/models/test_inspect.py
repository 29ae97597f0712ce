"""Model inspection answers "can this be pruned?" the way pruning does."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

keras = pytest.importorskip("keras")

import numpy as np  # noqa: E402

from infertune.exceptions import InputError  # noqa: E402
from infertune.models.inspect import inspect_model_op, select_output_op  # noqa: E402
from infertune.workers.protocol import InspectRequest, ModelInfo, SelectOutputRequest  # noqa: E402
from infertune.workers.server import WorkerContext  # noqa: E402
from tests.multiio import MultiIO  # noqa: E402


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


# -- several inputs and outputs ---------------------------------------------------------------


def _request(path: Path, output: str | None = None) -> InspectRequest:
    return InspectRequest(path=str(path), format="keras", output=output)


def test_every_input_is_listed_in_the_model_order(multiio: MultiIO) -> None:
    info = inspect_model_op(WorkerContext(io.StringIO()), _request(multiio.two_input))
    assert [(i.name, i.shape) for i in info.inputs] == [
        ("image", [None, 8, 8, 1]),
        ("features", [None, 16]),
    ]
    assert info.input_shape == [None, 8, 8, 1] and info.outputs == ["digit"]
    assert info.output is None and info.final_activation == "softmax" and info.prunable


def test_several_outputs_need_the_scored_one_named(multiio: MultiIO) -> None:
    ctx = WorkerContext(io.StringIO())
    with pytest.raises(InputError, match=r"has 2 outputs \('digit', 'ink'\); choose the scored "):
        inspect_model_op(ctx, _request(multiio.two_output))
    with pytest.raises(InputError, match=r"no output named 'nope'; its outputs are 'digit', 'ink'"):
        inspect_model_op(ctx, _request(multiio.two_output, "nope"))
    ink = inspect_model_op(ctx, _request(multiio.two_output, "ink"))
    assert ink.output == "ink" and ink.outputs == ["digit", "ink"]
    assert ink.output_shape == [None, 1] and ink.final_activation == "linear"
    digit = inspect_model_op(ctx, _request(multiio.two_output, "digit"))
    assert digit.output_shape == [None, 10] and digit.final_activation == "softmax"
    assert digit.params is not None and ink.params is not None and digit.params > ink.params


def test_the_cut_model_serves_the_scored_output_alone(multiio: MultiIO, tmp_path: Path) -> None:
    out = tmp_path / "cut.keras"
    select_output_op(
        WorkerContext(io.StringIO()),
        SelectOutputRequest(source=str(multiio.two_output), out_path=str(out), output="digit"),
    )
    whole = keras.saving.load_model(multiio.two_output, compile=False)
    cut = keras.saving.load_model(out, compile=False)
    assert cut.output_names == ["digit"] and [t.name for t in cut.inputs] == ["image", "features"]
    with np.load(multiio.eval_named) as data:
        x = [data["image"][:5], data["features"][:5]]
    np.testing.assert_allclose(cut(x), whole(x)[0], rtol=1e-6)
