"""How long a latency measurement runs, and when its result counts as valid."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Times a timing that the rest of the machine disturbed is run again before it is recorded
#: as disturbed (single-stream windows and each serving run alike).
DISTURBED_RETRIES = 2


class MeasurementWindow(BaseModel):
    """Warm-up and the minimums a timing run must reach (after MLPerf LoadGen).

    The timed loop runs until both ``min_duration_s`` and ``min_calls`` are reached. If
    ``max_duration_s`` passes first, the run is *invalid*: its figures are not reported as
    clean numbers. Defaults suit a quick look; verification of a front uses a longer window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_s: float = Field(default=0.5, ge=0.0, description="Warm-up time, not timed.")
    warmup_calls: int = Field(default=10, ge=1, description="Minimum warm-up calls.")
    min_duration_s: float = Field(default=1.0, gt=0.0, description="Minimum timed duration.")
    min_calls: int = Field(default=100, ge=1, description="Minimum count of timed calls.")
    max_duration_s: float = Field(
        default=60.0, gt=0.0, description="Stop (and mark invalid) past this timed duration."
    )
    disturbed_retries: int = Field(
        default=DISTURBED_RETRIES,
        ge=0,
        le=5,
        description="Re-time a window the rest of the machine disturbed this many times (with "
        "back-off) before recording it as disturbed.",
    )

    @model_validator(mode="after")
    def _check_order(self) -> MeasurementWindow:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(
                f"max duration ({self.max_duration_s} s) is below the minimum duration "
                f"({self.min_duration_s} s)"
            )
        return self

    def timeout_s(self, load_allowance_s: float = 120.0) -> float:
        """A hard time limit for the whole measurement, start-up and warm-up included."""
        attempts = 1 + self.disturbed_retries
        return load_allowance_s + attempts * (2 * self.warmup_s + 1.5 * self.max_duration_s + 2)
