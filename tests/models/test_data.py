from pathlib import Path

import numpy as np
import pytest

from infertune.exceptions import InputError
from infertune.models.data import check_compatible, load_dataset


def test_good_file(npz) -> None:  # type: ignore[no-untyped-def]
    data = load_dataset(npz(x=np.zeros((5, 4, 4, 1), np.float32), y=np.arange(5)))
    assert (data.size, data.x_shape, data.y_shape) == (5, (5, 4, 4, 1), (5,))
    assert len(data.sha256) == 64
    assert data.load_x(limit=2).shape == (2, 4, 4, 1)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="evaluation data file .* does not exist"):
        load_dataset(tmp_path / "eval.npz", role="evaluation data")


def test_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("1,2")
    with pytest.raises(InputError, match=r"is not an \.npz file; save arrays with numpy.savez"):
        load_dataset(path)


def test_corrupt_npz(tmp_path: Path) -> None:
    path = tmp_path / "eval.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(
        InputError,
        match="Cannot read the data file .*: it is not a valid "
        r"\.npz \(zip\) file; save it with numpy\.savez",
    ):
        load_dataset(path)


def test_object_arrays_are_refused_without_unpickling(npz) -> None:  # type: ignore[no-untyped-def]
    path = npz(x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(InputError, match="not a valid .npz of numeric arrays"):
        load_dataset(path)


def test_non_finite_inputs_are_refused(npz) -> None:  # type: ignore[no-untyped-def]
    x = np.ones((4, 3), np.float32)
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    with pytest.raises(InputError, match="'x' .* NaN or infinite values in 2 sample"):
        load_dataset(npz(x=x, y=np.zeros(4)))


def test_missing_key_names_the_keys(npz) -> None:  # type: ignore[no-untyped-def]
    path = npz(images=np.zeros((2, 3)), labels=np.zeros(2))
    with pytest.raises(InputError, match="no array named 'x', 'y' \\(it has 'images', 'labels'\\)"):
        load_dataset(path)
    assert load_dataset(path, x_key="images", y_key="labels").size == 2


def test_length_mismatch(npz) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="has 3 inputs \\('x'\\) but 2 targets"):
        load_dataset(npz(x=np.zeros((3, 2)), y=np.zeros(2)))


def test_non_numeric(npz) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="dtype <U1; a numeric array is needed"):
        load_dataset(npz(x=np.array(["a", "b"]), y=np.zeros(2)))


def test_shape_mismatch_shows_both_shapes(npz) -> None:  # type: ignore[no-untyped-def]
    data = load_dataset(npz(x=np.zeros((3, 28, 28), np.float32), y=np.zeros(3)))
    with pytest.raises(InputError) as err:
        check_compatible(data, [None, 32, 32, 1], "float32")
    assert "shape (28, 28)" in str(err.value)
    assert "expects ('?', 32, 32, 1)" not in str(err.value)
    assert "expects (32, 32, 1)" in str(err.value)


def test_dtype_mismatch(npz) -> None:  # type: ignore[no-untyped-def]
    data = load_dataset(npz(x=np.zeros((3, 4), np.float32), y=np.zeros(3)))
    with pytest.raises(InputError, match="is float32 but the model's input is int32"):
        check_compatible(data, [None, 4], "int32")
    check_compatible(data, [None, None], "float32")
