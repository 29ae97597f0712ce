"""Task detection and the figures of each task."""

from __future__ import annotations

import numpy as np
import pytest

from infertune.exceptions import InputError
from infertune.measure.accuracy import (
    SCORE_FIGURES,
    TASK_FIGURES,
    describe_task,
    detect_task,
    quality_drop,
    score,
    task_measures,
)

REGRESSION = {"kind": "regression", "outputs": 1}


def test_classification_with_labels_and_one_hot() -> None:
    labels = np.array([0, 1, 2, 1])
    task = detect_task([None, 3], "softmax", labels)
    assert task == {"kind": "classification", "classes": 3, "one_hot": False, "probabilities": True}
    one_hot = detect_task([None, 3], None, np.eye(3)[labels])
    assert one_hot["one_hot"] and not one_hot["probabilities"]


def test_labels_out_of_range_are_refused() -> None:
    with pytest.raises(InputError, match="class labels 0..2"):
        detect_task([None, 3], "softmax", np.array([0, 5]))
    with pytest.raises(InputError, match="has 3 outputs"):
        detect_task([None, 3], "softmax", np.zeros((2, 4)))


def test_regression_for_single_output() -> None:
    assert detect_task([None, 1], None, np.array([0.5, 1.5])) == REGRESSION


def test_score_accuracy_and_agreement() -> None:
    task = detect_task([None, 3], "softmax", np.array([0, 1, 2, 1]))
    predictions = np.array([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0, 1, 0]])
    reference = np.array([[0.9, 0.1, 0], [0.1, 0.8, 0.1], [0, 0, 1], [1, 0, 0]])
    result = score(predictions, np.array([0, 1, 2, 1]), reference, task)
    assert result["accuracy"] == 0.75
    assert result["agreement"] == 0.5


def test_score_regression() -> None:
    result = score(
        np.array([[1.0], [2.0]]),
        np.array([1.5, 2.0]),
        np.array([[1.0], [3.0]]),
        REGRESSION,
    )
    assert result["accuracy"] is None
    assert result["mae"] == pytest.approx(0.25)
    assert result["reference_mae"] == pytest.approx(0.5)


def test_one_sigmoid_output_with_zero_one_targets_is_a_binary_classifier() -> None:
    y = np.array([0, 1, 1, 0])
    task = detect_task([None, 1], "sigmoid", y)
    assert task == {
        "kind": "classification",
        "classes": 2,
        "binary": True,
        "one_hot": False,
        "probabilities": True,
    }
    assert detect_task([None, 1], "linear", y[:, None])["probabilities"] is False
    assert detect_task([None, 1], None, y)["probabilities"] is None  # a SavedModel
    assert describe_task(task) == "binary classification (one sigmoid output, 0/1 targets)"


def test_continuous_targets_are_a_regression_whatever_the_activation() -> None:
    assert detect_task([None, 1], "sigmoid", np.array([0.2, 0.7])) == {
        "kind": "regression",
        "outputs": 1,
    }
    assert detect_task([None, 1], None, np.array([0, 1, 2, 5])) == REGRESSION  # counts
    two = detect_task([None, 2], None, np.array([[0.5, -1.0], [2.0, 3.0]]))
    assert two == {"kind": "regression", "outputs": 2}
    assert describe_task(two) == "regression (2 outputs, continuous targets)"
    soft = detect_task([None, 2], "softmax", np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert soft["kind"] == "classification" and soft["one_hot"]
    with pytest.raises(InputError, match="has 1 output"):
        detect_task([None, 1], None, np.zeros((3, 2)))
    assert describe_task(detect_task([None, 3], "softmax", np.array([0, 2]))) == (
        "3-class classification (class labels)"
    )


def test_score_binary_thresholds_probabilities_and_logits() -> None:
    y = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.2], [0.7], [0.4], [0.1]])
    sigmoid = detect_task([None, 1], "sigmoid", y)
    result = score(probabilities, y, np.array([[0.6], [0.7], [0.4], [0.1]]), sigmoid)
    assert result["accuracy"] == result["quality"] == 0.75
    assert result["agreement"] == 0.75
    assert result["mae"] is None and result["rel_mae_vs_fp32"] is None
    logits = detect_task([None, 1], "linear", y)
    assert score(np.array([[-1.0], [2.0], [0.5], [-3.0]]), y, None, logits)["accuracy"] == 1.0
    # Unknown activation: outputs in [0, 1] are probabilities, others logits.
    unknown = detect_task([None, 1], None, y)
    assert score(probabilities, y, None, unknown)["accuracy"] == 0.75
    assert score(np.array([[-1.0], [2.0], [0.5], [-3.0]]), y, None, unknown)["accuracy"] == 1.0


def test_score_regression_figures() -> None:
    y = np.array([1.0, 2.0, 3.0, 6.0])
    predictions = np.array([[1.5], [2.0], [2.0], [6.0]])
    reference = np.array([[1.0], [2.0], [2.5], [6.0]])
    result = score(predictions, y, reference, REGRESSION)
    assert result["mae"] == pytest.approx(0.375)
    assert result["rmse"] == pytest.approx(np.sqrt((0.25 + 1.0) / 4))
    assert result["r2"] == pytest.approx(1 - 1.25 / np.sum((y - y.mean()) ** 2))
    # MAE of the best constant (the median, 2.5) is 1.5.
    assert result["quality"] == pytest.approx(1 - 0.375 / 1.5)
    assert result["reference_mae"] == pytest.approx(0.25)
    assert result["rel_mae_vs_fp32"] == pytest.approx(0.25 / 0.125)
    assert result["accuracy"] is None and result["agreement"] is None
    same = score(reference, y, reference, REGRESSION)
    assert same["rel_mae_vs_fp32"] == 0.0
    # A constant target: R² as scikit-learn's (1 when exact, else 0); ratios stay finite.
    constant = np.array([2.0, 2.0])
    assert score(constant[:, None], constant, None, REGRESSION)["r2"] == 1.0
    flat = score(np.array([[2.0], [2.5]]), constant, constant[:, None], REGRESSION)
    assert flat["r2"] == 0.0
    assert flat["rel_mae_vs_fp32"] is not None and 1 < flat["rel_mae_vs_fp32"] < float("inf")


def test_quality_drop_per_task() -> None:
    multiclass = detect_task([None, 3], "softmax", np.array([0, 1, 2]))
    assert quality_drop(multiclass, {"accuracy": 0.9}, {"accuracy": 0.88}) == pytest.approx(0.02)
    assert quality_drop(REGRESSION, {"mae": 2.0}, {"mae": 2.1}) == pytest.approx(0.05)
    assert quality_drop(REGRESSION, {"mae": 2.0}, {"mae": None}) is None
    assert quality_drop(REGRESSION, {"mae": 0.0}, {"mae": 0.0}) == 0.0


def test_which_figures_a_task_measures() -> None:
    multiclass = detect_task([None, 3], "softmax", np.array([0, 1, 2]))
    for figure in ("quality", "latency_p95_ms", "model_size_mb"):
        assert task_measures(multiclass, figure) and task_measures(REGRESSION, figure)
    assert task_measures(multiclass, "agreement") and not task_measures(REGRESSION, "agreement")
    assert task_measures(REGRESSION, "r2") and not task_measures(multiclass, "r2")
    # Every task-specific figure is a figure of the score.
    assert {f for names in TASK_FIGURES.values() for f in names} <= set(SCORE_FIGURES)
