import os
import subprocess
import sys
import textwrap
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


def test_saved_model_folder_needs_trust(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(InputError, match="is a SavedModel.*pass --trust-saved-model"):
        check_model_path(tmp_path)
    assert check_model_path(tmp_path, trust_saved_model=True).format is ModelFormat.SAVED_MODEL


def _tf(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_a_saved_model_that_writes_a_file_is_refused_unless_trusted(tmp_path: Path) -> None:
    """The reported exploit: a SavedModel whose serving function runs tf.io.write_file."""
    folder, marker = tmp_path / "writer", tmp_path / "written-by-the-model.txt"
    _tf(
        f"""
        import tensorflow as tf

        class Writer(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def serve(self, x):
                tf.io.write_file({str(marker)!r}, "the model ran")
                return {{"y": x * 2.0}}

        module = Writer()
        tf.saved_model.save(module, {str(folder)!r}, signatures={{"serving_default": module.serve}})
        """
    )
    assert not marker.exists()  # saving did not run it
    with pytest.raises(InputError, match="--trust-saved-model") as refused:
        check_model_path(folder)
    assert len(str(refused.value).splitlines()) == 1
    assert not marker.exists()
    # Trusted, it is accepted and loads (and, being a program, does what its author wrote).
    source = check_model_path(folder, trust_saved_model=True)
    assert source.format is ModelFormat.SAVED_MODEL
    out = _tf(
        f"""
        import tensorflow as tf
        loaded = tf.saved_model.load({str(source.path)!r})
        y = loaded.signatures["serving_default"](tf.ones([1, 4]))["y"]
        print(float(tf.reduce_sum(y)))
        """
    )
    assert float(out.split()[-1]) == 8.0
    assert marker.read_text() == "the model ran"
