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
    ACHIEVED_QPS = "achieved_qps"
    MAX_QPS_AT_SLO = "max_qps_at_slo"
    COST_PER_MILLION = "cost_per_million"


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
    "instances": ("int", "pow2", "categorical"),
    "max_queue_delay_ms": ("float", "categorical"),
}


class Knobs(BaseModel):
    """Ranges of the knobs a study searches; a knob left out keeps its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runtime: KnobRange | None = None
    precision: KnobRange | None = None
    prune_ratio: KnobRange | None = None
    batch_size: KnobRange | None = None
    threads: KnobRange | None = None
    instances: KnobRange | None = None
    max_queue_delay_ms: KnobRange | None = None

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
        description="Unused: verification compares confidence intervals of the medians "
        "(issue 16); accepted so older spaces still load.",
    )


class Scenario(StrEnum):
    """How requests reach the model while it is timed (MLPerf Inference's scenarios)."""

    SINGLE_STREAM = "single_stream"
    """One call at a time, the next when the last returns: latency per call."""
    OFFLINE = "offline"
    """Every sample there at the start, in batches: samples per second."""
    SERVER = "server"
    """Poisson arrivals at a rate, a dynamic batcher, model instances: latency under load."""


#: Default price of one core for one hour (USD): about an on-demand cloud vCPU-hour.
DEFAULT_PRICE_PER_CORE_HOUR = 0.05

#: Knobs each scenario can use (the others are refused when a space searches them).
SCENARIO_KNOBS: dict[Scenario, frozenset[str]] = {
    Scenario.SINGLE_STREAM: frozenset(),
    Scenario.OFFLINE: frozenset({"batch_size", "instances"}),
    Scenario.SERVER: frozenset({"batch_size", "instances", "max_queue_delay_ms"}),
}
_SERVING_KNOB_WHY = {
    "batch_size": "one call at a time can only get slower with bigger batches",
    "instances": "one call at a time runs on one instance",
    "max_queue_delay_ms": "only the server scenario's dynamic batcher queues requests",
}


class ScenarioSpec(BaseModel):
    """The load a study or ``bench`` measures under, and the price of a core.

    In a space: ``measurement: {scenario: {name: server, slo_p99_ms: 10}}`` (or just
    ``scenario: offline``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Scenario = Scenario.SINGLE_STREAM
    target_qps: float | None = Field(
        default=None, gt=0, description="Server: time at this arrival rate (queries/s)."
    )
    slo_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="Server: find the highest rate whose p99 latency meets this (max_qps_at_slo).",
    )
    min_duration_s: float = Field(
        default=2.0, gt=0, description="Offline/server: the shortest run (and 662 queries)."
    )
    price_per_core_hour: float = Field(
        default=DEFAULT_PRICE_PER_CORE_HOUR,
        gt=0,
        description="USD per core-hour, for cost_per_million (default: about an on-demand "
        "cloud vCPU).",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> ScenarioSpec:
        if self.name is Scenario.SERVER:
            if (self.target_qps is None) == (self.slo_p99_ms is None):
                raise ValueError(
                    "the server scenario needs exactly one of target_qps (time at a rate) "
                    "and slo_p99_ms (find the highest rate that meets it)"
                )
        elif self.target_qps is not None or self.slo_p99_ms is not None:
            raise ValueError("target_qps and slo_p99_ms apply to the server scenario only")
        return self


class Measurement(BaseModel):
    """Measurement windows of the search and of the verification, and the scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    search: WindowSpec = WindowSpec()
    verify: VerifySpec = VerifySpec()
    scenario: ScenarioSpec = ScenarioSpec()


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
            Figure.ACHIEVED_QPS: Direction.MAXIMIZE,
            Figure.MAX_QPS_AT_SLO: Direction.MAXIMIZE,
        }
        for figure, direction in self.objectives.items():
            want = expected.get(figure, Direction.MINIMIZE)
            if direction is not want:
                raise ValueError(f"objective {figure} should be {want}d, not {direction}d")
        scenario = self.measurement.scenario
        usable = SCENARIO_KNOBS[scenario.name]
        for knob, why in _SERVING_KNOB_WHY.items():
            if getattr(self.knobs, knob) is not None and knob not in usable:
                raise ValueError(
                    f"knob {knob} cannot matter under the {scenario.name} scenario ({why}); "
                    "remove it, or measure under a scenario that uses it "
                    "(measurement.scenario: offline or server)"
                )
        if Figure.MAX_QPS_AT_SLO in self.objectives and scenario.slo_p99_ms is None:
            raise ValueError(
                "objective max_qps_at_slo needs the server scenario with slo_p99_ms "
                "(measurement.scenario: {name: server, slo_p99_ms: 10})"
            )
        if Figure.ACHIEVED_QPS in self.objectives and scenario.name is not Scenario.SERVER:
            raise ValueError("objective achieved_qps needs the server scenario")
        return self
