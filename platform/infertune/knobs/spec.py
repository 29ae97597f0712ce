"""The inference configuration: one value per knob, and the rules between knobs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from infertune.exceptions import ConfigurationError
from infertune.runtimes import Precision as Precision  # re-exported: a knob value
from infertune.runtimes import backend_names, get_backend


class Runtime(StrEnum):
    """Engine that runs the model: one member per backend in :mod:`infertune.runtimes`."""

    TF = "tf"
    """TensorFlow, the Keras model wrapped in a ``tf.function`` (graph mode)."""
    TF_XLA = "tf_xla"
    """TensorFlow with XLA compilation (``jit_compile=True``)."""
    TFLITE = "tflite"
    """LiteRT (TFLite) interpreter with the XNNPACK delegate."""
    OPENVINO = "openvino"
    """OpenVINO's CPU plugin running an IR (NNCF for int8)."""
    ONNXRUNTIME = "onnxruntime"
    """ONNX Runtime's CPU provider running a tf2onnx-converted model."""


class ArtifactFamily(StrEnum):
    """What kind of file a variant is; runtimes of one family share the artifact."""

    KERAS = "keras"
    TFLITE = "tflite"
    OPENVINO = "openvino"
    ONNX = "onnx"


#: Serving knobs and the defaults that leave them out of a stored configuration.
_SERVING_DEFAULTS: dict[str, Any] = {"instances": 1, "max_queue_delay_ms": 0.0}


class InferenceConfig(BaseModel):
    """One inference configuration: the value of every knob.

    ``threads=None`` means the runtime's default (TensorFlow: all cores; LiteRT: its own
    default). Whether ``threads`` fits this machine is a host fact, checked where the
    configuration is measured (:func:`infertune.measure.fingerprint.check_threads`), not here:
    a configuration stored on a bigger machine still parses on a smaller one.

    Knobs that change the built artifact are ``runtime`` (its family), ``precision`` and
    ``prune_ratio``; ``batch_size`` and ``threads`` only change how the artifact is run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: Runtime = Field(default=Runtime.TF, description="Engine that runs the model.")
    precision: Precision = Field(default=Precision.FP32, description="Numeric precision.")
    prune_ratio: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of filters/units removed from each prunable layer (structured).",
    )
    batch_size: int = Field(default=1, ge=1, le=4096, description="Samples per call.")
    threads: int | None = Field(
        default=None, ge=1, description="Threads for the runtime; None for its default."
    )
    instances: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Model instances serving requests side by side (offline and server "
        "scenarios), each with `threads` threads.",
    )
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=1000.0,
        description="Server scenario: how long the dynamic batcher may hold a request to fill "
        "a batch of up to `batch_size`.",
    )

    @model_serializer(mode="wrap")
    def _omit_default_serving(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Serving knobs at their defaults are left out, so configurations stored before
        # they existed keep their identity (config keys, MLflow params, cached artifacts).
        data: dict[str, Any] = handler(self)
        for knob, default in _SERVING_DEFAULTS.items():
            if knob in data and data[knob] == default:
                del data[knob]
        return data

    @model_validator(mode="after")
    def _check_combination(self) -> InferenceConfig:
        # What each runtime offers is its backend's declaration (infertune.runtimes).
        backend = get_backend(self.runtime)
        if self.precision not in backend.precisions:
            offering = " or ".join(
                f"'{name}'"
                for name in backend_names()
                if self.precision in get_backend(name).precisions
            )
            offered = ", ".join(str(p) for p in backend.precisions)
            raise ValueError(
                f"precision '{self.precision}' needs runtime {offering}; runtime "
                f"'{self.runtime}' runs {offered} only"
            )
        return self

    @property
    def family(self) -> ArtifactFamily:
        """The artifact family this configuration runs."""
        return ArtifactFamily(get_backend(self.runtime).family)

    def label(self) -> str:
        """A short human-readable name, e.g. ``tflite/int8/prune0.50/bs1/threads=2``.

        Serving knobs appear only when set: ``.../x2/delay=2ms`` (two instances).
        """
        threads = "default" if self.threads is None else str(self.threads)
        serving = f"/x{self.instances}" if self.instances != 1 else ""
        if self.max_queue_delay_ms:
            serving += f"/delay={self.max_queue_delay_ms:g}ms"
        return (
            f"{self.runtime}/{self.precision}/prune{self.prune_ratio:.2f}/"
            f"bs{self.batch_size}/threads={threads}{serving}"
        )

    def cores(self, default_threads: int) -> int:
        """Cores this configuration asks for: instances x threads.

        ``None`` threads (the runtime's default) count as ``default_threads``.
        """
        return self.instances * (self.threads or default_threads)

    @classmethod
    def parse(cls, names: dict[str, str] | None = None, **values: Any) -> InferenceConfig:
        """Validate knob values, raising one clear :class:`ConfigurationError`.

        ``names`` maps knob names to what the user typed (e.g. ``--batch-size``).
        """
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                where = (names or {}).get(where, where)
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{where}: {msg}" if where else msg)
            raise ConfigurationError(
                "Invalid inference configuration: " + "; ".join(problems) + "."
            ) from None
