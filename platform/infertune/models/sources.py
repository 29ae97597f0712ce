"""Which model files infertune accepts, checked before any runtime is started."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path

from infertune.exceptions import InputError
from infertune.hashing import file_sha256

ACCEPTED = "a .keras file or a SavedModel folder (one holding saved_model.pb)"
#: The command-line flag that lets a SavedModel in (named in the refusal).
TRUST_FLAG = "--trust-saved-model"


class ModelFormat(StrEnum):
    """On-disk format of a source model."""

    KERAS = "keras"
    SAVED_MODEL = "savedmodel"


@dataclass(frozen=True)
class ModelSource:
    """A user's model, checked for format; its content hash is computed on first use."""

    path: Path
    format: ModelFormat

    @cached_property
    def sha256(self) -> str:
        """Content hash (part of every cache key derived from this model)."""
        return file_sha256(self.path)


def check_model_path(path: Path, trust_saved_model: bool = False) -> ModelSource:
    """Accept a ``.keras`` file or a SavedModel folder; refuse everything else clearly.

    Models are programs. Legacy ``.h5`` files are refused: Keras loads them without
    ``safe_mode``, so they can run arbitrary code; re-save such a model as ``.keras`` with
    a trusted Keras. A SavedModel is a TensorFlow graph whose ops run when it is called
    (``tf.io.write_file`` writes files, ``tf.py_function`` runs Python): it is refused
    unless the user says it is trusted (``trust_saved_model``, the ``--trust-saved-model``
    flag).

    Args:
        path: The model file or folder.
        trust_saved_model: Accept a SavedModel folder (its ops will run on this host).

    Raises:
        InputError: Missing, of an unsupported or unsafe format, or a SavedModel that was
            not trusted; the message names the path, never the file's content.
    """
    if not path.exists():
        raise InputError(f"Model {path} does not exist; pass {ACCEPTED}.")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise InputError(f"Model folder {path} holds no saved_model.pb; pass {ACCEPTED}.")
        if not trust_saved_model:
            raise InputError(
                f"Model {path} is a SavedModel, a TensorFlow program whose ops (file writes "
                f"included) run on this host; pass {TRUST_FLAG} if you trust its author, or "
                "re-save it as .keras (loaded with safe_mode)."
            )
        return ModelSource(path.resolve(), ModelFormat.SAVED_MODEL)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise InputError(
            f"Model {path} is a legacy HDF5 file, which loads without Keras' safe_mode; "
            "re-save it with model.save('model.keras') and pass that."
        )
    if suffix != ".keras":
        raise InputError(
            f"Model {path} has an unsupported format '{suffix or path.name}'; pass {ACCEPTED}."
        )
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"Model {path} is not a valid .keras file (not a zip archive); "
            "it may be truncated or corrupt."
        )
    return ModelSource(path.resolve(), ModelFormat.KERAS)
