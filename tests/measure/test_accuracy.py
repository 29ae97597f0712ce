import numpy as np
import pytest

from infertune.exceptions import InputError
from infertune.measure.accuracy import detect_task, score


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
    assert detect_task([None, 1], None, np.array([0.5, 1.5])) == {"kind": "regression"}


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
        {"kind": "regression"},
    )
    assert result["accuracy"] is None
    assert result["mae"] == pytest.approx(0.25)
    assert result["reference_mae"] == pytest.approx(0.5)
