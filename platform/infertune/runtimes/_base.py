"""The runtime interface: one small backend per inference runtime (TensorFlow, LiteRT, ...).

A backend tells the engine what a runtime offers and does the three things only the runtime
can do: build its artifact from a (pruned) Keras model, load that artifact in a measurement
worker with a thread setting, and name what a promoted model needs to serve it. The engine
calls the methods below at fixed points of a measurement; each docstring says when.

Loading lives in a *loader module* of the backend: a file that imports only the standard
library, numpy and the runtime, never infertune. The measurement worker loads through it and
a promoted model ships a copy of it (``mlflow.pyfunc.save_model(code_paths=...)``), so the
model serves with exactly the code that was measured and without infertune installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from infertune.models.data import read_inputs


class Precision(StrEnum):
    """Numeric precision of the weights and kernels."""

    FP32 = "fp32"
    FP16 = "fp16"
    """fp16 weights (LiteRT: dequantized at load on CPUs without fp16 kernels, mostly a size
    change) or fp16 kernels (OpenVINO's inference precision)."""
    BF16 = "bf16"
    """bf16 kernels (OpenVINO's inference precision) on CPUs with bf16 units (AMX,
    AVX512_BF16); elsewhere the runtime runs f32 and the measurement's settings say so."""
    INT8_DYNAMIC = "int8_dynamic"
    """int8 weights, activations quantized on the fly (dynamic-range quantization)."""
    INT8 = "int8"
    """Full integer quantization calibrated on a representative sample; float I/O."""


@dataclass(frozen=True)
class Calibration:
    """Representative inputs for a calibrated (full integer) build.

    Attributes:
        path: The ``.npz`` file holding the inputs.
        x_keys: Names of the input arrays in it, one per model input in the model's order.
        samples: How many inputs to take, evenly spaced over the file.
    """

    path: Path
    x_keys: tuple[str, ...]
    samples: int

    @property
    def x_key(self) -> str:
        """The first input's array (all a single-input model has)."""
        return self.x_keys[0]

    def load_inputs(self, dtypes: Sequence[Any]) -> list[np.ndarray]:
        """The evenly spaced, deterministic sample: one array per input (build worker)."""
        xs = read_inputs(self.path, self.x_keys)
        idx = np.linspace(0, len(xs[0]) - 1, num=min(self.samples, len(xs[0]))).astype(int)
        return [np.ascontiguousarray(x[idx], dtype=d) for x, d in zip(xs, dtypes, strict=True)]

    def load(self, dtype: Any) -> np.ndarray:
        """The sample of the first input (all a single-input model has)."""
        return self.load_inputs([dtype] * len(self.x_keys))[0]

    def feeds(self, names: Sequence[str], dtypes: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        """The sample as single-sample batches keyed by input name (model order of names)."""
        xs = self.load_inputs(dtypes)
        return [
            {name: x[i : i + 1] for name, x in zip(names, xs, strict=True)}
            for i in range(len(xs[0]))
        ]


#: One call's inputs: an array (single-input models), or one array per input in the
#: model's input order (:attr:`Runner.input_names`).
Batch = np.ndarray | Sequence[np.ndarray]


class Runner(Protocol):
    """A loaded artifact, ready to run batches (what a loader module's ``load`` returns)."""

    input_names: list[str]
    """The model's inputs, in its order (the order of a :data:`Batch`'s arrays)."""
    input_dtypes: list[np.dtype[Any]]
    """The dtype each input expects; callers cast batches to them before timing."""
    input_dtype: np.dtype[Any]
    """The first input's dtype (all a single-input model has)."""

    def predict(self, batch: Batch) -> np.ndarray:
        """Run one call on one batch (first axis: samples) and return the output."""
        ...

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses (threads, delegate, compilation), for the record."""
        ...


#: Reports one step of a long build to the user (a short description).
Progress = Callable[[str], None]


class RuntimeBackend(ABC):
    """One inference runtime as the engine sees it.

    Subclasses set the class attributes and implement :meth:`build` and :meth:`load`, then
    add one line to :data:`infertune.runtimes.registry.BACKENDS`. The contract test
    (``tests/runtimes/test_contract.py``) checks every registered backend.
    """

    name: ClassVar[str]
    """The value of the ``runtime`` knob, e.g. ``"tflite"``."""
    title: ClassVar[str]
    """The runtime's name for people, e.g. ``"LiteRT"`` (progress messages)."""
    precisions: ClassVar[tuple[Precision, ...]]
    """The precisions this runtime offers; ``fp32`` first."""
    family: ClassVar[str]
    """The kind of artifact it runs; backends of one family run the same built file.
    ``"keras"`` means the (pruned) Keras model itself, with nothing to build."""
    artifact_file: ClassVar[str | None]
    """File name of the built artifact in its cache folder; ``None`` where nothing is built."""
    worker_group: ClassVar[str]
    """Backends of one group share measurement workers: they import the same runtime."""
    loader_module: ClassVar[str]
    """The self-contained module that loads the artifact (no infertune imports)."""
    runtime_modules: ClassVar[tuple[str, ...]]
    """Top-level modules a worker of this runtime may import to time it (and no other
    runtime's): an OpenVINO or LiteRT worker never imports ``tensorflow``."""
    threads_setting: ClassVar[str]
    """The key of :meth:`Runner.effective_settings` that reports the threads in use."""
    libraries: ClassVar[tuple[str, ...]]
    """Distributions a promoted model needs besides numpy and MLflow (first installed wins
    where several name one runtime, e.g. ``tensorflow-cpu`` or ``tensorflow``)."""
    build_libraries: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "tensorflow", "keras")
    """Distributions whose versions decide a built artifact's content (part of its cache key)."""

    @property
    def builds(self) -> bool:
        """Whether the runtime needs an artifact built from the Keras model."""
        return self.artifact_file is not None

    def needs_calibration(self, precision: Precision) -> bool:
        """Whether building at ``precision`` reads calibration data.

        Called by the engine before a build, to pick the calibration data and to put it in
        the artifact's cache key (only data that shapes the artifact belongs there).
        """
        return False

    def check_precision(self, precision: Precision) -> None:
        """Raise ``ValueError`` if this runtime does not offer ``precision``.

        Called when a configuration is validated (before anything is built).
        """
        if precision not in self.precisions:
            offered = ", ".join(str(p) for p in self.precisions)
            raise ValueError(f"runtime '{self.name}' runs {offered} only")

    def build(
        self,
        source: Path,
        source_format: str,
        out_path: Path,
        precision: Precision,
        calibration: Calibration | None,
        progress: Progress,
    ) -> dict[str, Any]:
        """Write the artifact for ``precision`` to ``out_path``; return facts about it.

        The facts hold ``size_bytes`` (the artifact's size) and anything else worth keeping
        in the cache entry's ``meta.json``.

        Called in the build worker (``variant.build``), once per cache key: when the variant
        cache has no artifact for this parent model, family, precision, calibration data and
        library versions. ``out_path`` lies in a private folder that the cache publishes
        atomically. Never called for a backend whose :attr:`builds` is false.

        Args:
            source: The (pruned) ``.keras`` file or SavedModel folder.
            source_format: ``"keras"`` or ``"savedmodel"``.
            out_path: Where the artifact goes (named :attr:`artifact_file`).
            precision: One of :attr:`precisions`.
            calibration: Representative inputs where :meth:`needs_calibration` says so.
            progress: Reports a step to the user.

        Raises:
            BuildError: The runtime cannot build this model at this precision.
        """
        raise NotImplementedError(f"runtime '{self.name}' runs the Keras model as it is")

    @abstractmethod
    def load(self, artifact: str, threads: int | None) -> Runner:
        """Load an artifact for timing and predictions, with ``threads`` honoured.

        Called in a measurement worker of :attr:`worker_group` started for ``threads``
        (``None``: the runtime's default), when a request names an artifact the worker has
        not loaded (the previous one is dropped first). Imports only the runtime, through
        :attr:`loader_module`: a LiteRT worker never imports TensorFlow.

        Raises:
            InputError: The artifact has several outputs (a model is cut to its scored
                output before it is built).
        """

    def loader(self) -> Any:
        """The loader module (imported on first use)."""
        return importlib.import_module(self.loader_module)

    def loader_file(self) -> Path:
        """The loader module's file, which a promoted model ships as its code.

        Called by the promotion when it saves the pyfunc model (``code_paths``).
        """
        spec = importlib.util.find_spec(self.loader_module)
        if spec is None or spec.origin is None:  # pragma: no cover - a packaging error
            raise RuntimeError(f"Cannot find the loader module {self.loader_module}.")
        return Path(spec.origin)

    def pip_requirements(self) -> list[str]:
        """Pinned requirements of a promoted model: MLflow, numpy and this runtime.

        Called by the promotion when it saves the pyfunc model; pins the installed versions
        (those that measured it). Of :attr:`libraries`, only the installed ones are pinned.
        """
        pins = []
        for lib in ("mlflow", "numpy", *self.libraries):
            try:
                pins.append(f"{lib}=={metadata.version(lib)}")
            except metadata.PackageNotFoundError:
                continue
        return pins

    def pyfunc_options(
        self, precision: Precision, threads: int | None, batch_size: int
    ) -> dict[str, Any]:
        """Arguments of ``mlflow.pyfunc.save_model`` for a model served by this runtime.

        Called by the promotion when it saves the pyfunc model (``python_model`` is the
        promotion's model file, ``artifacts`` its variant). The model carries the tuned
        settings in ``model_config`` and this backend's loader module as its code, so it
        serves with ``mlflow models serve`` needing only its runtime, numpy and MLflow.
        """
        return {
            "model_config": {
                "runtime": self.name,
                "precision": str(precision),
                "threads": threads,
                "batch_size": batch_size,
                "loader": self.loader_module.rsplit(".", 1)[-1],
            },
            "code_paths": [str(self.loader_file())],
            "pip_requirements": self.pip_requirements(),
        }
