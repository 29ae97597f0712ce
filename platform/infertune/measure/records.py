"""Typed records of a measurement: the scores of a variant and the full measurement record.

:class:`Measurement` is what :meth:`Engine.bench` and :meth:`Engine.record` return. Its
:meth:`~Measurement.to_json` is the documented flat JSON record (``bench --json``, the MLflow
``measurement.json`` artifact, stored trial attributes), unchanged from the untyped dict
it replaces.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from infertune.knobs.spec import InferenceConfig
from infertune.measure.window import MeasurementWindow


class _Record(BaseModel):
    """Strict and immutable; :meth:`to_json` gives the documented JSON form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready values."""
        return self.model_dump(mode="json")


class Scores(_Record):
    """A variant scored on the whole evaluation set (cached per variant and data)."""

    accuracy: float | None = Field(description="Top-1 accuracy (classification).")
    agreement: float | None = Field(description="Top-1 agreement with the fp32 model.")
    mae: float | None = Field(description="Mean absolute error (regression).")
    reference_mae: float | None = Field(description="MAE against the fp32 model (regression).")
    rmse: float | None = Field(description="Root mean squared error (regression).")
    r2: float | None = Field(description="Coefficient of determination R² (regression).")
    rel_mae_vs_fp32: float | None = Field(
        description="MAE against the fp32 model over the fp32 model's MAE (regression)."
    )
    quality: float | None = Field(
        description="Higher is better: accuracy (classification), MAE skill (regression)."
    )
    eval_samples: int


class MeasurementDetails(_Record):
    """How the timing ran: its counts, spread, settings and window."""

    timed_calls: int | None
    timed_s: float | None
    latency_std_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None
    load_s: float | None
    runtime_settings: dict[str, Any] | None
    waited_for_lock_s: float | None
    latency_histogram: dict[str, list[float] | list[int]] | None
    latency_p95_bound_ms: float | None = Field(
        default=None, description="p95 is under this with 99% confidence (early stopping)."
    )
    latency_p99_bound_ms: float | None = Field(
        default=None,
        description="p99 is under this with 99% confidence; None below 662 timed calls.",
    )
    worker_pid: int | None
    window: MeasurementWindow
    serving: dict[str, Any] | None = Field(
        default=None,
        description="Offline/server: instances, batching, queries, the early-stopping p99 "
        "bound and (with a p99 objective) the rate-vs-p99 curve.",
    )
    contention: dict[str, Any] | None = Field(
        default=None,
        description="How busy the rest of the machine was while timing; ``disturbed`` if over "
        "the threshold after the retries.",
    )


class VariantFacts(_Record):
    """The artifact that was measured."""

    key: str
    path: str
    cache_hit: bool
    build_s: float
    params: int | None
    pruning: dict[str, Any] | None


class Measurement(_Record):
    """One configuration of one model, built, timed and scored: the documented record.

    Latency and throughput figures are ``None`` when ``valid`` is false.
    """

    model: str
    model_sha256: str
    config: InferenceConfig
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    throughput_sps: float | None
    accuracy: float | None
    agreement: float | None
    mae: float | None
    reference_mae: float | None
    rmse: float | None
    r2: float | None
    rel_mae_vs_fp32: float | None
    quality: float | None
    model_size_mb: float
    peak_memory_mb: float
    macs: int | None
    gflops: float | None
    peak_pct: float | None
    valid: bool
    invalid_reason: str | None
    scenario: str = "single_stream"
    target_qps: float | None = None
    achieved_qps: float | None = None
    max_qps_at_slo: float | None = None
    slo_p99_ms: float | None = None
    cost_per_million: float | None = Field(
        default=None,
        description="USD per million inferences at the measured rate on the cores used.",
    )
    task: dict[str, Any]
    eval_samples: int
    measurement: MeasurementDetails
    variant: VariantFacts
    fingerprint: dict[str, Any]
    warnings: list[str]
