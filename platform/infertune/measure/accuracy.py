"""Score predictions against the targets and against the fp32 reference model."""

from __future__ import annotations

from typing import Any

import numpy as np

from infertune.exceptions import InputError


def detect_task(
    output_shape: list[int | None], final_activation: str | None, y: np.ndarray
) -> dict[str, Any]:
    """Decide how to score a model from its output width and the targets.

    An output wider than one with integer labels (or one-hot rows of the same width) is a
    classification; anything else is a regression.
    """
    width = output_shape[-1] if len(output_shape) >= 2 and output_shape[-1] else 1
    if width > 1:
        probabilities = final_activation == "softmax"
        if y.ndim == 1:
            if not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= width:
                raise InputError(
                    f"The targets must be class labels 0..{width - 1} for a model with {width} "
                    f"outputs; they range from {y.min()} to {y.max()}."
                )
            return {
                "kind": "classification",
                "classes": width,
                "one_hot": False,
                "probabilities": probabilities,
            }
        if y.ndim == 2 and y.shape[1] == width:
            return {
                "kind": "classification",
                "classes": width,
                "one_hot": True,
                "probabilities": probabilities,
            }
        raise InputError(
            f"The targets have shape {y.shape[1:]} per sample but the model has {width} "
            "outputs; pass class labels (one integer per sample) or one-hot rows."
        )
    return {"kind": "regression"}


def score(
    predictions: np.ndarray, y: np.ndarray, reference: np.ndarray | None, task: dict[str, Any]
) -> dict[str, float | None]:
    """Accuracy (classification) or MAE (regression), plus agreement with the reference.

    ``agreement`` is the share of samples whose predicted class equals the fp32 reference
    model's: an easy evaluation set can hide precision loss that agreement shows.
    """
    if task["kind"] == "classification":
        labels = y.argmax(axis=1) if task.get("one_hot") else y.astype(np.int64)
        predicted = predictions.reshape(len(predictions), -1).argmax(axis=1)
        result: dict[str, float | None] = {
            "accuracy": float(np.mean(predicted == labels)),
            "mae": None,
            "agreement": None,
            "reference_mae": None,
        }
        if reference is not None:
            ref_classes = reference.reshape(len(reference), -1).argmax(axis=1)
            result["agreement"] = float(np.mean(predicted == ref_classes))
        return result
    flat = predictions.reshape(y.shape) if predictions.size == y.size else predictions
    result = {
        "accuracy": None,
        "mae": float(np.mean(np.abs(flat - y))),
        "agreement": None,
        "reference_mae": None,
    }
    if reference is not None:
        ref = (
            reference.reshape(predictions.shape)
            if reference.size == predictions.size
            else reference
        )
        result["reference_mae"] = float(np.mean(np.abs(predictions - ref)))
    return result
