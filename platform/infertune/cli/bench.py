"""``infertune bench`` and ``infertune info``: one configuration timed, the resolved setup."""

from __future__ import annotations

import json
from typing import Annotated, Any

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

__all__ = ["bench", "info"]


def bench(
    model: ModelArgument,
    data: DataOption = None,
    train_data: TrainDataOption = None,
    x_key: XKeyOption = "x",
    y_key: YKeyOption = "y",
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
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per call.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="Threads for the runtime (default: all cores).", show_default=False
        ),
    ] = None,
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
    """
    from pydantic import ValidationError

    from infertune.cli._display import Reporter, bench_table, stdout
    from infertune.exceptions import ConfigurationError
    from infertune.knobs.spec import InferenceConfig
    from infertune.measure.engine import Engine
    from infertune.measure.window import MeasurementWindow

    config = InferenceConfig.parse(
        names=FLAG_NAMES,
        runtime=runtime,
        precision=precision,
        prune_ratio=prune_ratio,
        batch_size=batch_size,
        threads=threads,
    )
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
        subject = engine.resolve(model, data, train_data, x_key, y_key)
        result = engine.bench(subject, config, window, finetune_epochs=finetune_epochs)
    record = result.to_json()
    if as_json:
        typer.echo(json.dumps(record, indent=2))
    else:
        stdout.print(bench_table(record))
    if not result.valid:
        raise typer.Exit(EXIT_INVALID_MEASUREMENT)


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
