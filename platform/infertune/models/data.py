"""Evaluation and training data: ``.npz`` files with input arrays and a target array.

A single-input model reads one input array (``x``, or the name given with ``--x-key``). A
model with several inputs reads one array per input: the array named after the input (its
Keras ``Input`` name), else ``x0``, ``x1``, ... (``--x-key`` is the prefix) in the model's
input order; :func:`input_keys` picks them once, and the chosen names travel with the study.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import InputError
from infertune.hashing import file_sha256


@dataclass(frozen=True)
class Dataset:
    """A checked ``.npz`` data file (arrays are loaded on demand, not kept open).

    Attributes:
        x_keys: The input arrays, one per model input in the model's order.
        x_shapes: Their shapes.
        x_dtypes: Their dtypes.
    """

    path: Path
    x_keys: tuple[str, ...]
    y_key: str
    size: int
    x_shapes: tuple[tuple[int, ...], ...]
    x_dtypes: tuple[str, ...]
    y_shape: tuple[int, ...]

    @property
    def x_key(self) -> str:
        """The first input array (all a single-input model has)."""
        return self.x_keys[0]

    @property
    def x_shape(self) -> tuple[int, ...]:
        """The first input array's shape."""
        return self.x_shapes[0]

    @property
    def x_dtype(self) -> str:
        """The first input array's dtype."""
        return self.x_dtypes[0]

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
        """The first input array (its first ``limit`` rows if given)."""
        return self.load_inputs(limit)[0]

    def load_inputs(self, limit: int | None = None) -> list[np.ndarray]:
        """Every input array, in the model's input order (first ``limit`` rows if given)."""
        with np.load(self.path) as data:
            xs = [data[key] for key in self.x_keys]
        return xs if limit is None else [x[:limit] for x in xs]


def read_inputs(
    path: str | Path, x_keys: Sequence[str], dtypes: Sequence[Any] | None = None
) -> list[np.ndarray]:
    """The input arrays ``x_keys`` of an ``.npz`` file, contiguous and cast to ``dtypes``.

    Worker side too (numpy only): measurement, calibration and fine-tuning read through it.
    """
    with np.load(path) as data:
        return [
            np.ascontiguousarray(data[key], dtype=None if dtypes is None else dtypes[i])
            for i, key in enumerate(x_keys)
        ]


def input_keys(path: Path, input_names: Sequence[str], x_key: str = "x") -> tuple[str, ...]:
    """The arrays of ``path`` that feed a model's inputs, in the model's input order.

    One input: ``x_key``. Several: per input, the array named after it, else
    ``{x_key}0``, ``{x_key}1``, ... by position. Only the array names are read.

    Raises:
        InputError: An input has no array, or two inputs would read one array; the message
            lists the model's inputs and the file's arrays. (A missing or unreadable file is
            left to :func:`load_dataset`, which says so.)
    """
    if len(input_names) <= 1:
        return (x_key,)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
    except (OSError, ValueError, zipfile.BadZipFile):
        return tuple(f"{x_key}{i}" for i in range(len(input_names)))  # load_dataset reports it
    chosen = [
        name if name in keys else f"{x_key}{i}" if f"{x_key}{i}" in keys else None
        for i, name in enumerate(input_names)
    ]
    wanted = ", ".join(f"'{n}' (or '{x_key}{i}')" for i, n in enumerate(input_names))
    have = ", ".join(f"'{k}'" for k in keys) or "no arrays"
    missing = [n for n, key in zip(input_names, chosen, strict=True) if key is None]
    if missing:
        raise InputError(
            f"The data file {path} has no array for the model's input(s) "
            f"{', '.join(map(repr, missing))}: the model's {len(input_names)} inputs read "
            f"{wanted}; the file has {have}."
        )
    found = [key for key in chosen if key is not None]
    if len(set(found)) != len(found):
        pairs = ", ".join(f"{n!r} <- {k!r}" for n, k in zip(input_names, found, strict=True))
        raise InputError(
            f"The data file {path} is ambiguous: two of the model's inputs would read the same "
            f"array ({pairs}); "
            f"name one array per input: {wanted}."
        )
    return tuple(found)


def check_data_file(path: Path, role: str = "data", hint: str | None = None) -> None:
    """Refuse a data path that does not exist or is not an ``.npz`` file (nothing is read).

    Raises:
        InputError: The path is missing, a folder, or not named ``.npz``.
    """
    if not path.exists():
        raise InputError(f"The {role} file {path} does not exist; pass an .npz file.")
    if path.is_dir() or path.suffix != ".npz":
        hint = hint or _save_hint(("x",), "y")
        raise InputError(f"The {role} {path} is not an .npz file; save arrays with {hint}.")


def _save_hint(x_keys: Sequence[str], y_key: str) -> str:
    if len(x_keys) == 1:
        return f"numpy.savez(path, {x_keys[0]}=inputs, {y_key}=targets)"
    arrays = ", ".join(f"{k}=..." for k in x_keys)
    return f"numpy.savez(path, {arrays}, {y_key}=targets)"


def load_dataset(
    path: Path,
    x_key: str | Sequence[str] = "x",
    y_key: str = "y",
    role: str = "data",
) -> Dataset:
    """Open and check an ``.npz`` data file.

    Args:
        path: The file.
        x_key: Name of the input array, or the names of the input arrays (one per model
            input, in the model's order; see :func:`input_keys`).
        y_key: Name of the target array.
        role: What the file is for ("evaluation data", "training data"), used in messages.

    Raises:
        InputError: Missing or unreadable file, missing keys, mismatched lengths, or arrays
            that are not numeric.
    """
    x_keys = (x_key,) if isinstance(x_key, str) else tuple(x_key)
    if not x_keys:
        raise InputError("No input array names were given.")
    hint = _save_hint(x_keys, y_key)
    check_data_file(path, role, hint)
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            missing = [k for k in (*x_keys, y_key) if k not in keys]
            if missing:
                raise InputError(
                    f"The {role} file {path} has no array named {', '.join(map(repr, missing))} "
                    f"(it has {', '.join(map(repr, keys)) or 'no arrays'}); name the arrays "
                    "with --x-key/--y-key."
                )
            xs, y = [data[k] for k in x_keys], data[y_key]
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if not zipfile.is_zipfile(path):
            reason = "it is not a valid .npz (zip) file"
        elif "pickle" in str(exc) or "Object arrays" in str(exc):
            reason = "it is not a valid .npz of numeric arrays (pickled or object data)"
        else:  # numpy's message may quote the file's header: name the kind of error only
            reason = f"it is not a readable .npz of numeric arrays ({type(exc).__name__})"
        raise InputError(
            f"Cannot read the {role} file {path}: {reason}; save it with {hint}."
        ) from exc
    arrays = [*zip(x_keys, xs, strict=True), (y_key, y)]
    for name, arr in arrays:
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"Array '{name}' in {path} has dtype {arr.dtype}; a numeric array is needed."
            )
        if arr.ndim == 0:
            raise InputError(f"Array '{name}' in {path} is a scalar; a batch of samples is needed.")
    for name, x in zip(x_keys, xs, strict=True):
        if len(x) != len(y):
            raise InputError(
                f"The {role} file {path} has {len(x)} inputs ('{name}') but {len(y)} targets "
                f"('{y_key}'); they must match one to one."
            )
    if len(y) == 0:
        raise InputError(f"The {role} file {path} holds no samples; it needs at least one.")
    for name, arr in arrays:
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
            raise InputError(
                f"Array '{name}' in {path} holds NaN or infinite values in {bad} sample(s); "
                "clean or drop them first."
            )
    return Dataset(
        path=path.resolve(),
        x_keys=x_keys,
        y_key=y_key,
        size=len(y),
        x_shapes=tuple(tuple(x.shape) for x in xs),
        x_dtypes=tuple(str(x.dtype) for x in xs),
        y_shape=tuple(y.shape),
    )


def check_inputs(data: Dataset, inputs: Sequence[Mapping[str, Any]]) -> None:
    """Check that the data fits every model input (``name``, ``shape``, ``dtype`` each).

    Raises:
        InputError: The arrays do not match the inputs in number, shape or dtype.
    """
    if len(inputs) != len(data.x_keys):
        raise InputError(
            f"The model has {len(inputs)} input(s) but {len(data.x_keys)} input array(s) "
            f"were chosen in {data.path} ({', '.join(data.x_keys)})."
        )
    for i, spec in enumerate(inputs):
        name = str(spec["name"]) if len(inputs) > 1 else None
        check_compatible(data, spec["shape"], str(spec["dtype"]), name=name, index=i)


def check_compatible(
    data: Dataset,
    input_shape: Sequence[int | None],
    input_dtype: str,
    name: str | None = None,
    index: int = 0,
) -> None:
    """Check that input array ``index`` fits a model input; raise one clear error if not.

    Args:
        data: The checked data file.
        input_shape: The input's shape (first axis: samples).
        input_dtype: The input's dtype.
        name: The input's name, for messages about a model with several inputs.
        index: Which of the data's input arrays feeds it.
    """
    key, got_shape, got_dtype = data.x_keys[index], data.x_shapes[index], data.x_dtypes[index]
    target = f"the model's input '{name}'" if name else ""
    expected = tuple(input_shape[1:])
    got = got_shape[1:]
    fits = len(expected) == len(got) and all(
        e is None or e == g for e, g in zip(expected, got, strict=True)
    )
    if not fits:
        shown = tuple("?" if e is None else e for e in expected)
        raise InputError(
            f"The data in {data.path} has samples of shape {got} but "
            f"{target or 'the model'} expects {shown} (array '{key}' is {got_shape}); "
            "reshape the data or pass the matching model."
        )
    model_kind, data_kind = np.dtype(input_dtype).kind, np.dtype(got_dtype).kind
    if (model_kind == "f" and data_kind not in "biuf") or (model_kind in "iu" and data_kind == "f"):
        array = f" (array '{key}')" if name else ""
        what = target or "the model's input"
        raise InputError(
            f"The data in {data.path} is {got_dtype}{array} but {what} is {input_dtype}."
        )
