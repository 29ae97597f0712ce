"""The search-space schema (validated from YAML; unknown keys are errors).

A space names a range for each knob it searches (knobs it leaves out stay at their
defaults), the objectives with their directions, and the constraints a configuration must
meet. Example (``search_spaces/quick.yaml``)::

    knobs:
      runtime:    {type: categorical, choices: [tf, tflite]}
      precision:  {type: categorical, choices: [fp32, int8], when: {runtime: [tflite]}}
      prune_ratio: {type: float, low: 0.0, high: 0.5, step: 0.25}
      batch_size: {type: pow2, low: 1, high: 8}
      threads:    {type: int, low: 1, high: cores}
    objectives: {latency_p95_ms: minimize, quality: maximize}
    constraints: {max_quality_drop: 0.03}

``when`` makes a knob conditional: it is searched only in trials where the named knobs take
one of the listed values, and stays at its default otherwise (so ``precision`` is ``fp32``
whenever ``runtime`` is not ``tflite``).

``quality`` and ``max_quality_drop`` serve every task: ``quality`` is the accuracy of a
classifier and the MAE skill (``1 - MAE / MAE of predicting the median target``) of a
regression model; the quality drop is in accuracy points for a classifier and the relative
MAE increase for a regression model, both against the baseline. Figures that only one task
has (``accuracy``, ``agreement``; ``mae``, ``rmse``, ``r2``, ``rel_mae_vs_fp32``) are refused
before the baseline when the model's task lacks them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import Precision, Runtime


class Direction(StrEnum):
    """Whether an objective is minimized or maximized."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Figure(StrEnum):
    """Measured figures that may serve as objectives.

    ``quality`` exists for every task; ``accuracy`` and ``agreement`` for classifiers only;
    ``mae``, ``rmse``, ``r2`` and ``rel_mae_vs_fp32`` for regression models only.
    """

    LATENCY_P50_MS = "latency_p50_ms"
    LATENCY_P90_MS = "latency_p90_ms"
    LATENCY_P95_MS = "latency_p95_ms"
    LATENCY_P99_MS = "latency_p99_ms"
    LATENCY_MEAN_MS = "latency_mean_ms"
    THROUGHPUT_SPS = "throughput_sps"
    ACCURACY = "accuracy"
    AGREEMENT = "agreement"
    MAE = "mae"
    RMSE = "rmse"
    R2 = "r2"
    REL_MAE_VS_FP32 = "rel_mae_vs_fp32"
    QUALITY = "quality"
    MODEL_SIZE_MB = "model_size_mb"
    PEAK_MEMORY_MB = "peak_memory_mb"


class _Knob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, list[Any]] | None = Field(
        default=None,
        description="Search this knob only when each named knob takes one of the listed values.",
    )


class Categorical(_Knob):
    """One of a list of values."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class IntRange(_Knob):
    """Integers from ``low`` to ``high`` (``high: cores`` means the measuring host's cores).

    ``cores`` is resolved when the space is sampled, on the host that measures, not when
    it parses: a space written on one machine loads on any other.
    """

    type: Literal["int"]
    low: int
    high: int | Literal["cores"]
    step: int = Field(default=1, ge=1)

    def resolved_high(self, cores: int) -> int:
        """``high``, with ``cores`` replaced by ``cores`` (the measuring host's usable cores).

        Raises:
            ConfigurationError: ``high: cores`` is below ``low`` on this host.
        """
        if self.high != "cores":
            return int(self.high)
        if cores < self.low:
            raise ConfigurationError(
                f"The range {self.low}..cores is empty on this machine, which has {cores} "
                f"usable cores: lower 'low' to at most {cores} in the search space."
            )
        return cores

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.high != "cores" and int(self.high) < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class FloatRange(_Knob):
    """Floats from ``low`` to ``high``, on a grid of ``step`` if given."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class Pow2Range(_Knob):
    """Powers of two from ``low`` to ``high`` (both powers of two), e.g. batch sizes."""

    type: Literal["pow2"]
    low: int = Field(ge=1)
    high: int = Field(ge=1)

    @model_validator(mode="after")
    def _check(self) -> Pow2Range:
        for name, value in (("low", self.low), ("high", self.high)):
            if value & (value - 1):
                raise ValueError(f"{name} ({value}) is not a power of two")
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self

    def values(self) -> list[int]:
        """Every power of two in the range."""
        out, value = [], self.low
        while value <= self.high:
            out.append(value)
            value *= 2
        return out


KnobRange = Annotated[Categorical | IntRange | FloatRange | Pow2Range, Field(discriminator="type")]

_CATEGORICAL_VALUES: dict[str, set[str]] = {
    "runtime": {r.value for r in Runtime},
    "precision": {p.value for p in Precision},
}
_NUMERIC_KNOBS = {
    "prune_ratio": ("float",),
    "batch_size": ("int", "pow2", "categorical"),
    "threads": ("int", "categorical"),
}


class Knobs(BaseModel):
    """Ranges of the knobs a study searches; a knob left out keeps its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: KnobRange | None = None
    precision: KnobRange | None = None
    prune_ratio: KnobRange | None = None
    batch_size: KnobRange | None = None
    threads: KnobRange | None = None

    @model_validator(mode="after")
    def _check(self) -> Knobs:
        names = list(type(self).model_fields)
        for name in names:
            rng = getattr(self, name)
            if rng is None:
                continue
            if name in _CATEGORICAL_VALUES:
                if not isinstance(rng, Categorical):
                    raise ValueError(f"{name} must be of type categorical")
                bad = [c for c in rng.choices if str(c) not in _CATEGORICAL_VALUES[name]]
                if bad:
                    allowed = ", ".join(sorted(_CATEGORICAL_VALUES[name]))
                    raise ValueError(f"{name} has unknown choices {bad}; allowed: {allowed}")
            elif rng.type not in _NUMERIC_KNOBS[name]:
                allowed = ", ".join(_NUMERIC_KNOBS[name])
                raise ValueError(f"{name} must be of type {allowed}, not {rng.type}")
            if (
                isinstance(rng, FloatRange)
                and name == "prune_ratio"
                and not (rng.low >= 0 and rng.high < 1)
            ):
                raise ValueError("prune_ratio must lie in [0, 1)")
            for other, values in (rng.when or {}).items():
                if other not in names or other == name:
                    raise ValueError(f"{name}.when names unknown knob '{other}'")
                if names.index(other) > names.index(name):
                    raise ValueError(
                        f"{name}.when may only name knobs sampled before it "
                        f"({', '.join(names[: names.index(name)]) or 'none'})"
                    )
                if not values:
                    raise ValueError(f"{name}.when.{other} lists no values")
        return self


class Constraints(BaseModel):
    """What a configuration must meet to count (infeasible ones stay visible, greyed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_quality_drop: float | None = Field(
        default=None,
        ge=0,
        description="Largest quality loss vs the baseline, any task: accuracy points (0-1) "
        "for a classifier, relative MAE increase (0.03 = 3% higher) for a regression model.",
    )
    max_accuracy_drop: float | None = Field(
        default=None,
        ge=0,
        description="Largest accuracy loss vs the baseline (absolute, 0-1; classifiers).",
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Smallest top-1 agreement with the fp32 model (classifiers).",
    )
    max_rel_mae_vs_fp32: float | None = Field(
        default=None,
        ge=0,
        description="Largest MAE against the fp32 model, relative to the fp32 model's MAE "
        "(regression models).",
    )
    max_latency_p95_ms: float | None = Field(default=None, gt=0, description="Latency budget.")
    max_model_size_mb: float | None = Field(default=None, gt=0, description="Size budget.")


class WindowSpec(BaseModel):
    """A measurement window (see ``infertune.measure.window.MeasurementWindow``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_s: float = Field(default=0.3, ge=0)
    min_duration_s: float = Field(default=1.0, gt=0)
    min_calls: int = Field(default=100, ge=1)
    max_duration_s: float = Field(default=60.0, gt=0)


class VerifySpec(WindowSpec):
    """How the Pareto candidates are re-measured after the search."""

    min_duration_s: float = Field(default=2.0, gt=0)
    min_calls: int = Field(default=200, ge=1)
    # Five: on a shared 2-core host a third of the timings can land on a disturbed core and
    # run 2x slow (benchmarks/repeatability.py); a median of five survives two of them.
    repeats: int = Field(default=5, ge=1, le=20, description="Interleaved repeats per candidate.")
    tie_margin: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Relative difference under which two latencies count as a tie.",
    )


class Measurement(BaseModel):
    """Measurement windows of the search and of the verification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search: WindowSpec = WindowSpec()
    verify: VerifySpec = VerifySpec()


class SearchSpace(BaseModel):
    """A complete search-space file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    knobs: Knobs
    objectives: dict[Figure, Direction] = Field(min_length=1)
    constraints: Constraints = Constraints()
    measurement: Measurement = Measurement()
    finetune_epochs: int = Field(default=2, ge=0, description="Fine-tuning after pruning.")

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        expected = {
            Figure.ACCURACY: Direction.MAXIMIZE,
            Figure.AGREEMENT: Direction.MAXIMIZE,
            Figure.QUALITY: Direction.MAXIMIZE,
            Figure.R2: Direction.MAXIMIZE,
            Figure.THROUGHPUT_SPS: Direction.MAXIMIZE,
        }
        for figure, direction in self.objectives.items():
            want = expected.get(figure, Direction.MINIMIZE)
            if direction is not want:
                raise ValueError(f"objective {figure} should be {want}d, not {direction}d")
        return self
