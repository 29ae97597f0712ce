"""Score predictions against the targets and against the fp32 reference model.

A model's **task** is detected once from its output and the targets (:func:`detect_task`):

* ``{"kind": "classification", "classes": N, "one_hot": ..., "probabilities": ...}``: several
  outputs (one per class) with class labels or one-hot rows;
* ``{"kind": "classification", "classes": 2, "binary": True, "one_hot": False,
  "probabilities": ...}``: one output (a sigmoid, or a logit) with 0/1 targets;
* ``{"kind": "regression", "outputs": N}``: continuous targets.

Each task has its quality figures (:data:`TASK_FIGURES`): accuracy and agreement with the
fp32 model for classifiers; MAE, RMSE, R² and ``rel_mae_vs_fp32`` for regression. Every task
has ``quality`` (higher is better) and a quality drop against the baseline
(:func:`quality_drop`), so one search space serves every task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infertune.exceptions import InputError

#: Bumped when a figure's definition changes: cached scores of older definitions are not read.
SCORING_VERSION = 2

#: Figures of a scoring, in the order of the measurement record.
SCORE_FIGURES = (
    "accuracy",
    "agreement",
    "mae",
    "reference_mae",
    "rmse",
    "r2",
    "rel_mae_vs_fp32",
    "quality",
)

#: Figures that only some tasks measure (every other figure is measured for any model).
TASK_FIGURES: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "agreement", "quality"),
    "regression": ("mae", "rmse", "r2", "rel_mae_vs_fp32", "reference_mae", "quality"),
}

#: What ``quality`` and the quality drop mean, per task (for users).
QUALITY_MEANING: dict[str, tuple[str, str]] = {
    "classification": ("top-1 accuracy", "accuracy points lost"),
    "regression": ("MAE skill, 1 - MAE / MAE of the median target", "relative MAE increase"),
}


def quality_meaning(task: dict[str, Any]) -> str:
    """What ``quality`` and the quality drop mean for this task, in words."""
    quality, drop = QUALITY_MEANING[task["kind"]]
    return f"{quality}; quality drop = {drop} vs the baseline"


def task_measures(task: dict[str, Any], figure: str) -> bool:
    """Whether a model of this task has the figure (latency, size and the like: always)."""
    specific = {name for names in TASK_FIGURES.values() for name in names}
    return figure not in specific or figure in TASK_FIGURES[task["kind"]]


def describe_task(task: dict[str, Any]) -> str:
    """The task in a few words, e.g. ``regression (1 output, continuous targets)``."""
    if task["kind"] == "regression":
        outputs = task.get("outputs", 1)
        return f"regression ({outputs} output{'s' if outputs != 1 else ''}, continuous targets)"
    if task.get("binary"):
        kind = "sigmoid" if task.get("probabilities") else "logit"
        return f"binary classification (one {kind} output, 0/1 targets)"
    labels = "one-hot rows" if task.get("one_hot") else "class labels"
    return f"{task['classes']}-class classification ({labels})"


def _is_binary(y: np.ndarray) -> bool:
    values = np.unique(y)
    return values.size > 0 and bool(np.all(np.isin(values, (0, 1))))


def detect_task(
    output_shape: list[int | None], final_activation: str | None, y: np.ndarray
) -> dict[str, Any]:
    """Decide how to score a model from its output width, final activation and targets.

    * several outputs with integer labels, or rows of the same width that look like class
      probabilities (non-negative, summing to one): a multi-class classification;
    * one output and targets that are all 0 or 1: a binary classification (a ``sigmoid``
      output is read as a probability, a linear one as a logit);
    * anything else with as many targets per sample as outputs: a regression.

    Raises:
        InputError: The targets do not fit the model's output.
    """
    width = output_shape[-1] if len(output_shape) >= 2 and output_shape[-1] else 1
    if width == 1:
        flat = y.reshape(len(y), -1)
        if flat.shape[1] != 1:
            raise InputError(
                f"The targets have shape {y.shape[1:]} per sample but the model has 1 output; "
                "pass one target per sample."
            )
        if _is_binary(flat):
            return {
                "kind": "classification",
                "classes": 2,
                "binary": True,
                "one_hot": False,
                # A linear output is a logit; unknown (a SavedModel) is decided by the range.
                "probabilities": (
                    None if final_activation is None else final_activation == "sigmoid"
                ),
            }
        return {"kind": "regression", "outputs": 1}
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
        if np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            return {
                "kind": "classification",
                "classes": width,
                "one_hot": True,
                "probabilities": probabilities,
            }
        return {"kind": "regression", "outputs": width}
    raise InputError(
        f"The targets have shape {y.shape[1:]} per sample but the model has {width} "
        "outputs; pass class labels (one integer per sample), one-hot rows, or one "
        "continuous target per output."
    )


def _binary_classes(predictions: np.ndarray, probabilities: bool | None) -> np.ndarray:
    flat = predictions.reshape(len(predictions))
    if probabilities is None:  # unknown activation: probabilities if they look like ones
        probabilities = bool(np.all((flat >= 0) & (flat <= 1)))
    return (flat > (0.5 if probabilities else 0.0)).astype(np.int64)


def _classes(predictions: np.ndarray, task: dict[str, Any]) -> np.ndarray:
    if task.get("binary"):
        return _binary_classes(predictions, task.get("probabilities"))
    classes: np.ndarray = predictions.reshape(len(predictions), -1).argmax(axis=1)
    return classes


def _floor(scale: float) -> float:
    """A denominator's floor: keeps ratios finite when an error is exactly zero."""
    return 1e-12 * max(1.0, scale)


def score(
    predictions: np.ndarray, y: np.ndarray, reference: np.ndarray | None, task: dict[str, Any]
) -> dict[str, float | None]:
    """The task's figures; the others are ``None``.

    Classification: ``accuracy`` (top-1) and ``agreement``, the share of samples whose
    predicted class equals the fp32 reference model's (an easy evaluation set can hide
    precision loss that agreement shows); ``quality`` is the accuracy.

    Regression: ``mae``, ``rmse`` and ``r2`` against the targets (averaged over outputs);
    ``reference_mae``, the MAE against the fp32 model's predictions, and
    ``rel_mae_vs_fp32``, that MAE relative to the fp32 model's own MAE (0: the same
    predictions; 0.01: a disagreement of 1% of the model's error); ``quality`` is the MAE
    skill ``1 - MAE / MAE of predicting the median target`` (1: perfect, 0: no better than
    a constant).
    """
    result: dict[str, float | None] = dict.fromkeys(SCORE_FIGURES)
    if task["kind"] == "classification":
        if task.get("binary"):
            labels = y.reshape(len(y)).astype(np.int64)
        else:
            labels = y.argmax(axis=1) if task.get("one_hot") else y.astype(np.int64)
        predicted = _classes(predictions, task)
        result["accuracy"] = result["quality"] = float(np.mean(predicted == labels))
        if reference is not None:
            result["agreement"] = float(np.mean(predicted == _classes(reference, task)))
        return result
    targets = y.reshape(len(y), -1).astype(np.float64)
    flat = predictions.reshape(targets.shape).astype(np.float64)
    errors = flat - targets
    mae = float(np.mean(np.abs(errors)))
    residual = np.sum(errors**2, axis=0)
    spread = np.sum((targets - targets.mean(axis=0)) ** 2, axis=0)
    # As scikit-learn's r2_score: a constant target scores 1 when predicted exactly, else 0.
    r2 = np.where(spread > 0, 1 - residual / np.where(spread > 0, spread, 1), residual == 0)
    constant_mae = float(np.mean(np.abs(targets - np.median(targets, axis=0))))
    scale = float(np.mean(np.abs(targets)))
    result |= {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "r2": float(np.mean(r2)),
        "quality": 1.0 - mae / max(constant_mae, _floor(scale)),
    }
    if reference is not None:
        ref = reference.reshape(targets.shape).astype(np.float64)
        versus_fp32 = float(np.mean(np.abs(flat - ref)))
        ref_mae = float(np.mean(np.abs(ref - targets)))
        result["reference_mae"] = versus_fp32
        result["rel_mae_vs_fp32"] = versus_fp32 / max(ref_mae, _floor(scale))
    return result


def quality_drop(
    task: dict[str, Any], baseline: dict[str, Any], figures: dict[str, Any]
) -> float | None:
    """How much quality a configuration lost against the baseline (``None``: not scored yet).

    Classification: accuracy points (``0.01`` is one point lost). Regression: the relative
    increase of the MAE (``0.03``: an MAE 3% above the baseline's). Negative is a gain.
    """
    if task["kind"] == "classification":
        if figures.get("accuracy") is None or baseline.get("accuracy") is None:
            return None
        return float(baseline["accuracy"] - figures["accuracy"])
    if figures.get("mae") is None or baseline.get("mae") is None:
        return None
    base = float(baseline["mae"])
    return (float(figures["mae"]) - base) / max(base, _floor(base))
