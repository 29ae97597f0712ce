"""``infertune bench`` and ``infertune info``: one configuration timed, the resolved setup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infertune import __version__
from infertune.cli._common import (
    EXIT_INVALID_MEASUREMENT,
    FLAG_NAMES,
    DataOption,
    ModelArgument,
    TrainDataOption,
    XKeyOption,
    YKeyOption,
    current_settings,
)

if TYPE_CHECKING:
    from infertune.space.schema import ScenarioSpec

__all__ = ["OutputOption", "TrustOption", "bench", "info", "scenario_spec"]

#: ``space.schema.DEFAULT_PRICE_PER_CORE_HOUR``, repeated so ``--help`` imports no schema.
DEFAULT_PRICE_PER_CORE_HOUR = 0.05

#: ``--output``: the scored output of a model with several outputs (``tune`` takes it too).
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        help="The output to score, for a model with several outputs (their names are listed "
        "when it is missing); the tuned model serves that output only.",
        show_default=False,
    ),
]

#: ``--trust-saved-model``: let a SavedModel (a TensorFlow program) run (``tune`` takes it too).
TrustOption = Annotated[
    bool,
    typer.Option(
        "--trust-saved-model",
        help="Accept a SavedModel folder: its ops run on this host, so pass this only for a "
        "model whose author you trust (.keras files need no flag).",
    ),
]


def bench(
    model: ModelArgument,
    data: DataOption = None,
    train_data: TrainDataOption = None,
    x_key: XKeyOption = "x",
    y_key: YKeyOption = "y",
    output: OutputOption = None,
    trust_saved_model: TrustOption = False,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="tf (tf.function), tf_xla (XLA-compiled), tflite (LiteRT, XNNPACK), "
            "openvino (OpenVINO CPU) or onnxruntime (ONNX Runtime CPU).",
        ),
    ] = "tf",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="fp32, fp16, bf16, int8_dynamic or int8 (full integer, calibrated). "
            "tflite: all but bf16; openvino: fp32, fp16, bf16, int8; onnxruntime: fp32, "
            "int8_dynamic, int8; tf, tf_xla: fp32.",
        ),
    ] = "fp32",
    prune_ratio: Annotated[
        float,
        typer.Option(
            "--prune-ratio",
            help="Share of filters/units removed from each prunable layer (structured), 0 to <1.",
        ),
    ] = 0.0,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="Samples per call (offline); the dynamic batcher's largest batch (server).",
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="Threads for the runtime (default: all cores).", show_default=False
        ),
    ] = None,
    instances: Annotated[
        int,
        typer.Option(
            "--instances",
            help="Model instances serving side by side, each with --threads threads "
            "(offline and server; instances x threads <= cores).",
        ),
    ] = 1,
    max_queue_delay_ms: Annotated[
        float,
        typer.Option(
            "--max-queue-delay-ms",
            help="Server: how long the dynamic batcher may hold a request to fill a batch.",
        ),
    ] = 0.0,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="single_stream (one call at a time: latency), offline (all samples at "
            "once: throughput) or server (Poisson arrivals at --qps, or the highest rate "
            "meeting --slo-p99-ms).",
        ),
    ] = "single_stream",
    qps: Annotated[
        float | None,
        typer.Option("--qps", help="Server: the arrival rate to time at.", show_default=False),
    ] = None,
    slo_p99_ms: Annotated[
        float | None,
        typer.Option(
            "--slo-p99-ms",
            help="Server: find the highest rate whose p99 latency meets this (max_qps_at_slo).",
            show_default=False,
        ),
    ] = None,
    serving_duration: Annotated[
        float,
        typer.Option(
            "--serving-duration",
            help="Offline/server: the shortest run in seconds (server runs are also at least "
            "662 queries, for a p99).",
        ),
    ] = 2.0,
    price_per_core_hour: Annotated[
        float,
        typer.Option(
            "--price-per-core-hour",
            help="USD per core-hour, for cost_per_million.",
        ),
    ] = DEFAULT_PRICE_PER_CORE_HOUR,
    finetune_epochs: Annotated[
        int,
        typer.Option(
            "--finetune-epochs",
            min=0,
            help="Fine-tuning epochs after pruning (needs training data).",
        ),
    ] = 2,
    warmup: Annotated[
        float, typer.Option("--warmup", min=0.0, help="Warm-up seconds before timing (not timed).")
    ] = 0.5,
    min_duration: Annotated[
        float, typer.Option("--min-duration", help="Minimum timed seconds.")
    ] = 1.0,
    min_calls: Annotated[
        int, typer.Option("--min-calls", help="Minimum count of timed calls.")
    ] = 100,
    max_duration: Annotated[
        float,
        typer.Option(
            "--max-duration", help="Give up (result marked invalid) after this many timed seconds."
        ),
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build one inference configuration of a model, then time it and score it.

    Latency is timed in an isolated worker process after a warm-up, one timing per host at
    a time, until both minimums are met; a run that reaches --max-duration first is marked
    invalid (exit status 3) and its latency figures are withheld. Accuracy is measured on
    the whole evaluation set, with agreement against the fp32 model's predictions. Built
    variants are cached under the home folder.

    Under load (--scenario offline or server, MLPerf's rules) the variant serves from
    --instances copies: offline reports samples per second; server sends Poisson arrivals
    through a dynamic batcher and reports latency from each request's scheduled arrival
    (queueing included) at --qps, or searches the highest rate whose p99 meets
    --slo-p99-ms (max_qps_at_slo). Every result has cost_per_million at
    --price-per-core-hour.
    """
    from pydantic import ValidationError

    from infertune.cli._display import Reporter, bench_table, stdout
    from infertune.exceptions import ConfigurationError
    from infertune.knobs.spec import InferenceConfig
    from infertune.measure.engine import Engine
    from infertune.measure.window import MeasurementWindow

    names = FLAG_NAMES | {"instances": "--instances", "max_queue_delay_ms": "--max-queue-delay-ms"}
    config = InferenceConfig.parse(
        names=names,
        runtime=runtime,
        precision=precision,
        prune_ratio=prune_ratio,
        batch_size=batch_size,
        threads=threads,
        instances=instances,
        max_queue_delay_ms=max_queue_delay_ms,
    )
    spec = scenario_spec(scenario, qps, slo_p99_ms, serving_duration, price_per_core_hour)
    try:
        window = MeasurementWindow(
            warmup_s=warmup,
            min_duration_s=min_duration,
            min_calls=min_calls,
            max_duration_s=max_duration,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(FLAG_NAMES.get(str(p), str(p)) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(
            f"Invalid measurement window: {where + ': ' if where else ''}{message}."
        ) from None
    with Reporter() as reporter, Engine(current_settings(), on_event=reporter) as engine:
        subject = engine.resolve(
            model,
            data,
            train_data,
            x_key,
            y_key,
            output=output,
            trust_saved_model=trust_saved_model,
        )
        result = engine.bench(
            subject, config, window, finetune_epochs=finetune_epochs, scenario=spec
        )
    record = result.to_json()
    contention = result.measurement.contention
    if contention and contention.get("disturbed"):
        from infertune.measure.contention import Contention

        seen = Contention.from_json(contention)
        typer.echo(f"infertune: warning: {seen.warning(contention.get('attempts'))}", err=True)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        stdout.print(bench_table(record))
    if not result.valid:
        raise typer.Exit(EXIT_INVALID_MEASUREMENT)


def scenario_spec(
    scenario: str,
    qps: float | None,
    slo_p99_ms: float | None,
    duration: float,
    price: float,
) -> ScenarioSpec:
    """The scenario from ``bench``'s flags, refused in one line when they do not fit."""
    from pydantic import ValidationError

    from infertune.exceptions import ConfigurationError
    from infertune.space.schema import Scenario, ScenarioSpec

    if scenario not in {s.value for s in Scenario}:
        raise ConfigurationError(
            f"--scenario {scenario!r} is not a scenario; use single_stream, offline or server."
        )
    try:
        return ScenarioSpec(
            name=Scenario(scenario),
            target_qps=qps,
            slo_p99_ms=slo_p99_ms,
            min_duration_s=duration,
            price_per_core_hour=price,
        )
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        flags = message.replace("target_qps", "--qps").replace("slo_p99_ms", "--slo-p99-ms")
        raise ConfigurationError(f"Invalid scenario: {flags}.") from None


def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the resolved settings, this host's fingerprint and the demo models."""
    from infertune.cli._display import stdout
    from infertune.measure.fingerprint import fingerprint
    from infertune.models.demo import DEMOS, cached_demo

    settings = current_settings()
    demos: dict[str, Any] = {}
    for name, spec in DEMOS.items():
        cached = cached_demo(settings.demo_dir, spec)
        demos[f"demo:{name}"] = {
            "description": spec.description,
            "trained": cached is not None,
            "eval_accuracy": cached.info["eval_accuracy"] if cached else None,
        }
    payload: dict[str, Any] = {
        "version": __version__,
        "home": str(settings.home),
        "db_url": settings.database_url,
        "mlflow_tracking_uri": settings.tracking_uri,
        "fingerprint": fingerprint(),
        "demos": demos,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    fp = payload["fingerprint"]
    stdout.print(f"[bold]infertune {__version__}[/]")
    stdout.print(f"home           {payload['home']}")
    stdout.print(f"database       {payload['db_url']}")
    stdout.print(f"mlflow         {payload['mlflow_tracking_uri']}")
    hw = fp["hardware"]
    stdout.print(
        f"host           {hw['cpu_model']} · {hw['usable_cores']} usable cores · "
        f"flags {' '.join(hw['cpu_flags']) or '—'} · hardware id {fp['hardware_id']}"
    )
    libs = ", ".join(f"{k} {v}" for k, v in fp["software"]["libraries"].items())
    stdout.print(f"software       Python {fp['software']['python']} · {libs}")
    for name, demo in demos.items():
        state = (
            f"trained, eval accuracy {demo['eval_accuracy']:.3f}"
            if demo["trained"]
            else "trained on first use"
        )
        stdout.print(f"{name:<22} {demo['description']} ({state})")
