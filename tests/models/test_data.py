from pathlib import Path

import numpy as np
import pytest

from infertune.exceptions import InputError
from infertune.models.data import check_compatible, check_inputs, input_keys, load_dataset


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


# -- several inputs ---------------------------------------------------------------------------


def _two(npz, **arrays):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    defaults = {"y": np.arange(4)}
    return npz(**{**defaults, **{k: rng.random(v) for k, v in arrays.items()}})


def test_inputs_are_matched_by_name_first(npz) -> None:  # type: ignore[no-untyped-def]
    path = _two(npz, image=(4, 8, 8, 1), features=(4, 16), x0=(4, 3))
    assert input_keys(path, ["image", "features"]) == ("image", "features")


def test_inputs_fall_back_to_positional_names(npz) -> None:  # type: ignore[no-untyped-def]
    path = _two(npz, x0=(4, 8, 8, 1), x1=(4, 16))
    assert input_keys(path, ["image", "features"]) == ("x0", "x1")
    # --x-key is the prefix of the positional names; one input keeps --x-key itself.
    path = _two(npz, in0=(4, 8, 8, 1), features=(4, 16))
    assert input_keys(path, ["image", "features"], x_key="in") == ("in0", "features")
    assert input_keys(path, ["image"], x_key="in0") == ("in0",)


def test_a_missing_input_array_lists_inputs_and_arrays(npz) -> None:  # type: ignore[no-untyped-def]
    path = _two(npz, image=(4, 8, 8, 1), other=(4, 16))
    with pytest.raises(InputError) as info:
        input_keys(path, ["image", "features"])
    message = str(info.value)
    assert "no array for the model's input(s) 'features'" in message
    assert "'image' (or 'x0'), 'features' (or 'x1')" in message
    assert "the file has 'y', 'image', 'other'" in message
    assert "\n" not in message


def test_two_inputs_reading_one_array_are_ambiguous(npz) -> None:  # type: ignore[no-untyped-def]
    # "image" is missing, so it would read x0 by position: the array of the input named x0.
    path = _two(npz, x0=(4, 16), x1=(4, 3))
    with pytest.raises(InputError, match=r"ambiguous: .*'image' <- 'x0', 'x0' <- 'x0'"):
        input_keys(path, ["image", "x0"])


def test_every_input_array_must_hold_every_sample(npz) -> None:  # type: ignore[no-untyped-def]
    path = npz(a=np.zeros((4, 2)), b=np.zeros((3, 5)), y=np.arange(4))
    with pytest.raises(InputError, match=r"has 3 inputs \('b'\) but 4 targets"):
        load_dataset(path, ("a", "b"))
    data = load_dataset(
        npz("ok.npz", a=np.zeros((4, 2)), b=np.ones((4, 5)), y=np.arange(4)), ("a", "b")
    )
    assert data.x_keys == ("a", "b") and data.x_key == "a"
    assert data.x_shapes == ((4, 2), (4, 5)) and data.size == 4
    assert [x.shape for x in data.load_inputs(limit=2)] == [(2, 2), (2, 5)]


def test_each_input_is_checked_against_its_array(npz) -> None:  # type: ignore[no-untyped-def]
    data = load_dataset(
        npz(a=np.zeros((4, 2)), b=np.zeros((4, 5), dtype="float32"), y=np.arange(4)), ("a", "b")
    )
    inputs = [
        {"name": "first", "shape": [None, 2], "dtype": "float32"},
        {"name": "second", "shape": [None, 6], "dtype": "float32"},
    ]
    with pytest.raises(InputError, match=r"but the model's input 'second' expects \(6,\)"):
        check_inputs(data, inputs)
    with pytest.raises(InputError, match="The model has 1 input"):
        check_inputs(data, inputs[:1])
    check_inputs(data, [inputs[0], {**inputs[1], "shape": [None, 5]}])
