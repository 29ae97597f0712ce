"""The inference configuration: one value per knob, and the rules between knobs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from infertune.exceptions import ConfigurationError
from infertune.measure.fingerprint import usable_cores


class Runtime(StrEnum):
    """Engine that runs the model."""

    TF = "tf"
    """TensorFlow, the Keras model wrapped in a ``tf.function`` (graph mode)."""
    TF_XLA = "tf_xla"
    """TensorFlow with XLA compilation (``jit_compile=True``)."""
    TFLITE = "tflite"
    """LiteRT (TFLite) interpreter with the XNNPACK delegate."""


class Precision(StrEnum):
    """Numeric precision of the weights and kernels."""

    FP32 = "fp32"
    FP16 = "fp16"
    """fp16 weights (dequantized at load on CPUs without fp16 kernels: mostly a size change)."""
    INT8_DYNAMIC = "int8_dynamic"
    """int8 weights, activations quantized on the fly (dynamic-range quantization)."""
    INT8 = "int8"
    """Full integer quantization calibrated on a representative sample; float I/O."""


class ArtifactFamily(StrEnum):
    """What kind of file a variant is; runtimes of one family share the artifact."""

    KERAS = "keras"
    TFLITE = "tflite"


_TF_RUNTIMES = (Runtime.TF, Runtime.TF_XLA)


class InferenceConfig(BaseModel):
    """One inference configuration: the value of every knob.

    ``threads=None`` means the runtime's default (TensorFlow: all cores; LiteRT: its own
    default). Knobs that change the built artifact are ``runtime`` (its family),
    ``precision`` and ``prune_ratio``; ``batch_size`` and ``threads`` only change how the
    artifact is run.
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

    @model_validator(mode="after")
    def _check_combination(self) -> InferenceConfig:
        if self.runtime in _TF_RUNTIMES and self.precision is not Precision.FP32:
            raise ValueError(
                f"precision '{self.precision}' needs runtime 'tflite'; runtime "
                f"'{self.runtime}' runs fp32 only"
            )
        cores = usable_cores()
        if self.threads is not None and self.threads > cores:
            raise ValueError(
                f"threads={self.threads} exceeds the {cores} cores of this machine (use 1..{cores})"
            )
        return self

    @property
    def family(self) -> ArtifactFamily:
        """The artifact family this configuration runs."""
        return ArtifactFamily.TFLITE if self.runtime is Runtime.TFLITE else ArtifactFamily.KERAS

    def label(self) -> str:
        """A short human-readable name, e.g. ``tflite/int8/prune0.50/bs1/t2``."""
        threads = "default" if self.threads is None else str(self.threads)
        return (
            f"{self.runtime}/{self.precision}/prune{self.prune_ratio:.2f}/"
            f"bs{self.batch_size}/threads={threads}"
        )

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
