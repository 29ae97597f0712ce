"""The typed worker protocol: one request and one response model per worker operation.

The caller builds a request (never a string-keyed dict), :meth:`WorkerProcess.request`
sends it and validates the answer into the operation's response; the worker validates the
request before its handler runs, so a malformed one fails with one clear line.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    """Base of every request and response: strict fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ResponseT = TypeVar("ResponseT", bound=Message)


class Request(Message, Generic[ResponseT]):
    """A worker request; ``op`` names its handler, ``response`` the model of its answer."""

    op: ClassVar[str]
    response: ClassVar[type[Message]]


# -- diagnostics -----------------------------------------------------------------------------


class PingResult(Message):
    """The worker's identity and what it has imported."""

    pid: int
    threads: str | None = Field(description="INFERTUNE_WORKER_THREADS, as the worker read it.")
    imported: list[str] = Field(description="Those of the asked modules the worker imported.")


class PingRequest(Request[PingResult]):
    """Health check; ``modules`` asks which of these modules the worker has imported."""

    op: ClassVar[str] = "ping"
    response: ClassVar[type[Message]] = PingResult
    modules: list[str] = Field(default_factory=list)


class Done(Message):
    """The answer of an operation that returns nothing."""


class SleepRequest(Request[Done]):
    """Sleep (diagnostics, tests of the hang/kill path)."""

    op: ClassVar[str] = "sleep"
    response: ClassVar[type[Message]] = Done
    seconds: float


# -- models ----------------------------------------------------------------------------------


class TensorInfo(Message):
    """One input of a model: its name, shape (first axis: samples) and dtype."""

    name: str
    shape: list[int | None]
    dtype: str


class ModelInfo(Message):
    """A model's signature and prunability (``model.inspect``).

    For a model with several outputs, everything but ``outputs`` describes the model cut to
    the scored ``output``.
    """

    input_shape: list[int | None] = Field(description="The first input's shape.")
    input_dtype: str = Field(description="The first input's dtype.")
    inputs: list[TensorInfo] = Field(description="Every input, in the model's order.")
    output_shape: list[int | None] = Field(description="The scored output's shape.")
    outputs: list[str] = Field(description="The names of all the model's outputs.")
    output: str | None = Field(
        description="The scored output (``None``: the model's only one, not named)."
    )
    final_activation: str | None
    params: int | None
    macs: int | None
    prunable: bool
    not_prunable_reason: str | None


class InspectRequest(Request[ModelInfo]):
    """Inspect the model at ``path``, cut to its output ``output`` if one is named."""

    op: ClassVar[str] = "model.inspect"
    response: ClassVar[type[Message]] = ModelInfo
    path: str
    format: str = Field(description="'keras' or 'savedmodel'.")
    output: str | None = Field(
        default=None, description="The scored output; required where the model has several."
    )


class SelectOutputRequest(Request[Done]):
    """Save the ``.keras`` model at ``source`` cut to its output ``output`` as ``out_path``."""

    op: ClassVar[str] = "model.select_output"
    response: ClassVar[type[Message]] = Done
    source: str
    out_path: str
    output: str


class DemoInfo(Message):
    """A trained demo model (the demo's ``info.json``)."""

    format: int
    name: str
    description: str
    eval_accuracy: float
    train_seconds: float
    train_samples: int
    eval_samples: int
    seed: int


class DemoTrainRequest(Request[DemoInfo]):
    """Train demo ``name`` and write its model and data files into ``out_dir``."""

    op: ClassVar[str] = "demo.train"
    response: ClassVar[type[Message]] = DemoInfo
    name: str
    out_dir: str
    seed: int = 0


# -- variants --------------------------------------------------------------------------------


class _Inputs(Message):
    """A message that names the model's input arrays in a data file."""

    x_keys: list[str] = Field(
        default_factory=lambda: ["x"],
        min_length=1,
        description="The arrays of the model's inputs, one per input in the model's order.",
    )

    @property
    def x_key(self) -> str:
        """The first input's array (all a single-input model has)."""
        return self.x_keys[0]


class TrainingData(_Inputs):
    """Where fine-tuning reads its samples."""

    path: str
    y_key: str = "y"


class PruneResult(Message):
    """Facts of a pruned (and maybe fine-tuned) model."""

    params_before: int
    params_after: int
    macs: int | None
    layers: list[dict[str, Any]]
    finetune_epochs: int
    finetune_loss: float | None


class PruneRequest(Request[PruneResult]):
    """Prune ``source`` structurally by ``ratio``, fine-tune, save to ``out_path``."""

    op: ClassVar[str] = "variant.prune"
    response: ClassVar[type[Message]] = PruneResult
    source: str
    out_path: str
    ratio: float = Field(ge=0.0, lt=1.0, description="Fraction of channels removed.")
    task: dict[str, Any] = Field(description="The task (picks the fine-tuning loss).")
    train: TrainingData | None = None
    epochs: int = Field(default=2, ge=0)
    learning_rate: float = Field(
        default=2e-3,
        gt=0,
        description="Peak rate of the fine-tuning's cosine schedule. 2e-3: on MobileNetV2 "
        "pruned by half, 3 epochs recovered to within a point of the unpruned accuracy, where "
        "1e-3 stayed 5 points below (benchmarks/pruning_mobilenet.py).",
    )
    seed: int = 0


class CalibrationData(_Inputs):
    """Representative inputs for a calibrated build."""

    path: str
    samples: int = Field(ge=1)


class BuildResult(Message):
    """Facts of a built artifact."""

    size_bytes: int
    details: dict[str, Any] = Field(
        default_factory=dict, description="Further facts the runtime reports about its build."
    )


class BuildRequest(Request[BuildResult]):
    """Build ``runtime``'s artifact of ``source`` at ``precision`` into ``out_path``."""

    op: ClassVar[str] = "variant.build"
    response: ClassVar[type[Message]] = BuildResult
    runtime: str
    source: str
    source_format: str = Field(description="'keras' or 'savedmodel'.")
    out_path: str
    precision: str
    calibration: CalibrationData | None = None


# -- measurement -----------------------------------------------------------------------------


class LoadResult(Message):
    """How long loading took."""

    load_s: float


class LoadRequest(_Inputs, Request[LoadResult]):
    """Load an artifact and its timing batches before timing (outside the host lock)."""

    op: ClassVar[str] = "measure.load"
    response: ClassVar[type[Message]] = LoadResult
    artifact: str
    runtime: str
    data_path: str
    batch_size: int = Field(ge=1)


class Timing(Message):
    """One timing run of one variant (``measure.latency``), caller-side facts included.

    The latency figures are ``None`` when the run is invalid (``invalid_reason`` says why).
    """

    valid: bool
    invalid_reason: str | None
    timed_calls: int
    timed_s: float
    batch_size: int
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None
    latency_std_ms: float | None
    latency_min_ms: float | None
    latency_max_ms: float | None
    throughput_sps: float | None
    latency_histogram: dict[str, list[float] | list[int]] | None = None
    latency_p95_bound_ms: float | None = Field(
        default=None,
        description="The latency p95 is under with 99% confidence (MLPerf's early-stopping "
        "estimate); None below the 130 calls it needs.",
    )
    latency_p99_bound_ms: float | None = Field(
        default=None,
        description="Likewise for p99; None below the 662 calls it needs.",
    )
    peak_memory_mb: float
    runtime_settings: dict[str, Any]
    worker_pid: int
    waited_for_lock_s: float | None = Field(
        default=None, description="Set by the caller: seconds spent waiting for the host lock."
    )
    load_s: float | None = Field(default=None, description="Set by the caller: load seconds.")
    scenario: str = Field(
        default="single_stream", description="single_stream, offline or server (MLPerf's)."
    )
    target_qps: float | None = Field(default=None, description="Server: the offered rate.")
    achieved_qps: float | None = Field(
        default=None, description="Server: the rate the system kept up with."
    )
    max_qps_at_slo: float | None = Field(
        default=None, description="Server: the highest rate whose p99 met the objective."
    )
    slo_p99_ms: float | None = Field(default=None, description="Server: the p99 objective.")
    serving: dict[str, Any] | None = Field(
        default=None,
        description="Offline/server details: instances, batching, queries, the early-stopping "
        "p99 bound, and (server with an objective) the rate-vs-p99 curve.",
    )
    contention: dict[str, Any] | None = Field(
        default=None,
        description="How busy the rest of the machine was during the timing "
        "(infertune.measure.contention): other processes' cores, steal, iowait, the busiest "
        "processes, whether the window was disturbed, and the attempts it took.",
    )


class LatencyRequest(_Inputs, Request[Timing]):
    """Time the loaded artifact over ``window``."""

    op: ClassVar[str] = "measure.latency"
    response: ClassVar[type[Message]] = Timing
    artifact: str
    runtime: str
    data_path: str
    batch_size: int = Field(ge=1)
    window: dict[str, float | int] = Field(
        description="The measurement window's fields (MeasurementWindow.model_dump()); the "
        "worker validates them into infertune.measure.window.MeasurementWindow (a measure "
        "type, which this lower layer does not import)."
    )


class ServeRequest(_Inputs, Request[Timing]):
    """Serve the artifact under a load (offline or server scenario) and time it."""

    op: ClassVar[str] = "measure.serve"
    response: ClassVar[type[Message]] = Timing
    artifact: str
    runtime: str
    data_path: str
    scenario: Literal["offline", "server"]
    batch_size: int = Field(ge=1, description="Offline: per call; server: the batcher's most.")
    instances: int = Field(default=1, ge=1)
    threads: int | None = Field(default=None, ge=1, description="Per instance.")
    max_queue_delay_ms: float = Field(default=0.0, ge=0)
    target_qps: float | None = Field(default=None, gt=0)
    slo_p99_ms: float | None = Field(default=None, gt=0)
    min_duration_s: float = Field(default=2.0, gt=0)
    seed: int = 0


class PredictResult(Message):
    """The shape of the saved predictions."""

    shape: list[int]


class PredictRequest(_Inputs, Request[PredictResult]):
    """Predict the whole data set with an artifact; save the outputs as ``.npy``."""

    op: ClassVar[str] = "model.predict"
    response: ClassVar[type[Message]] = PredictResult
    artifact: str
    runtime: str
    data_path: str
    out_path: str
    batch_size: int = Field(default=64, ge=1)


#: Every operation's request model, by operation name.
REQUESTS: dict[str, type[Request[Any]]] = {
    cls.op: cls
    for cls in (
        PingRequest,
        SleepRequest,
        InspectRequest,
        SelectOutputRequest,
        DemoTrainRequest,
        PruneRequest,
        BuildRequest,
        LoadRequest,
        LatencyRequest,
        ServeRequest,
        PredictRequest,
    )
}
