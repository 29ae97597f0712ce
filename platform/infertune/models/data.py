"""Evaluation and training data: ``.npz`` files with an input array and a target array."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from infertune.exceptions import InputError
from infertune.hashing import file_sha256


@dataclass(frozen=True)
class Dataset:
    """A checked ``.npz`` data file (arrays are loaded on demand, not kept open)."""

    path: Path
    x_key: str
    y_key: str
    size: int
    x_shape: tuple[int, ...]
    x_dtype: str
    y_shape: tuple[int, ...]

    @cached_property
    def sha256(self) -> str:
        """Content hash of the file (part of cache keys)."""
        return file_sha256(self.path)

    def load_y(self) -> np.ndarray:
        """The target array."""
        with np.load(self.path) as data:
            y: np.ndarray = data[self.y_key]
        return y

    def load_x(self, limit: int | None = None) -> np.ndarray:
        """The input array (its first ``limit`` rows if given)."""
        with np.load(self.path) as data:
            x: np.ndarray = data[self.x_key]
        return x if limit is None else x[:limit]


def load_dataset(path: Path, x_key: str = "x", y_key: str = "y", role: str = "data") -> Dataset:
    """Open and check an ``.npz`` data file.

    Args:
        path: The file.
        x_key: Name of the input array.
        y_key: Name of the target array.
        role: What the file is for ("evaluation data", "training data"), used in messages.

    Raises:
        InputError: Missing or unreadable file, missing keys, mismatched lengths, or arrays
            that are not numeric.
    """
    if not path.exists():
        raise InputError(f"The {role} file {path} does not exist; pass an .npz file.")
    if path.is_dir() or path.suffix != ".npz":
        raise InputError(
            f"The {role} {path} is not an .npz file; save arrays with "
            f"numpy.savez(path, {x_key}=inputs, {y_key}=targets)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            missing = [k for k in (x_key, y_key) if k not in keys]
            if missing:
                raise InputError(
                    f"The {role} file {path} has no array named {', '.join(map(repr, missing))} "
                    f"(it has {', '.join(map(repr, keys)) or 'no arrays'}); name the arrays "
                    "with --x-key/--y-key."
                )
            x, y = data[x_key], data[y_key]
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if not zipfile.is_zipfile(path):
            reason = "it is not a valid .npz (zip) file"
        elif "pickle" in str(exc) or "Object arrays" in str(exc):
            reason = "it is not a valid .npz of numeric arrays (pickled or object data)"
        else:
            reason = str(exc).rstrip(".")
        raise InputError(
            f"Cannot read the {role} file {path}: {reason}; save it with "
            f"numpy.savez(path, {x_key}=inputs, {y_key}=targets)."
        ) from exc
    for name, arr in ((x_key, x), (y_key, y)):
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"Array '{name}' in {path} has dtype {arr.dtype}; a numeric array is needed."
            )
        if arr.ndim == 0:
            raise InputError(f"Array '{name}' in {path} is a scalar; a batch of samples is needed.")
    if len(x) != len(y):
        raise InputError(
            f"The {role} file {path} has {len(x)} inputs ('{x_key}') but {len(y)} targets "
            f"('{y_key}'); they must match one to one."
        )
    if len(x) == 0:
        raise InputError(f"The {role} file {path} holds no samples; it needs at least one.")
    for name, arr in ((x_key, x), (y_key, y)):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
            raise InputError(
                f"Array '{name}' in {path} holds NaN or infinite values in {bad} sample(s); "
                "clean or drop them first."
            )
    return Dataset(
        path=path.resolve(),
        x_key=x_key,
        y_key=y_key,
        size=len(x),
        x_shape=tuple(x.shape),
        x_dtype=str(x.dtype),
        y_shape=tuple(y.shape),
    )


def check_compatible(data: Dataset, input_shape: list[int | None], input_dtype: str) -> None:
    """Check that the data fits the model's input; raise one clear error if not."""
    expected = tuple(input_shape[1:])
    got = data.x_shape[1:]
    fits = len(expected) == len(got) and all(
        e is None or e == g for e, g in zip(expected, got, strict=True)
    )
    if not fits:
        shown = tuple("?" if e is None else e for e in expected)
        raise InputError(
            f"The data in {data.path} has samples of shape {got} but the model expects "
            f"{shown} (array '{data.x_key}' is {data.x_shape}); reshape the data or pass "
            "the matching model."
        )
    model_kind, data_kind = np.dtype(input_dtype).kind, np.dtype(data.x_dtype).kind
    if (model_kind == "f" and data_kind not in "biuf") or (model_kind in "iu" and data_kind == "f"):
        raise InputError(
            f"The data in {data.path} is {data.x_dtype} but the model's input is {input_dtype}."
        )
