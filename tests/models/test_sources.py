from pathlib import Path

import pytest

from infertune.exceptions import InputError
from infertune.models.sources import ModelFormat, check_model_path


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist; pass a \.keras file or a SavedModel"):
        check_model_path(tmp_path / "nope.keras")


def test_legacy_h5_is_refused_for_safety(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n")
    with pytest.raises(InputError, match="legacy HDF5 file, which loads without Keras' safe_mode"):
        check_model_path(path)


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported format '.onnx'"):
        check_model_path(path)


def test_corrupt_keras_file(tmp_path: Path) -> None:
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a valid .keras file"):
        check_model_path(path)


def test_folder_without_saved_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no saved_model.pb"):
        check_model_path(tmp_path)


def test_saved_model_folder(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert check_model_path(tmp_path).format is ModelFormat.SAVED_MODEL
