"""The ``infertune`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from infertune import __version__
from infertune.config import Settings, load_settings
from infertune.exceptions import InfertuneError

app = typer.Typer(
    name="infertune",
    help="Find the fastest inference configuration of a TensorFlow/Keras model for the "
    "accuracy you can afford.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Exit status of ``bench`` when the measurement missed its minimums (figures withheld).
EXIT_INVALID_MEASUREMENT = 3


class _State:
    settings: Settings | None = None


def _settings() -> Settings:
    if _State.settings is None:
        _State.settings = load_settings()
    return _State.settings


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infertune {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="INFERTUNE_HOME",
            show_envvar=True,
            help="Folder for demo models, built variants and caches (default: ./.infertune).",
        ),
    ] = None,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            envvar="INFERTUNE_DB_URL",
            show_envvar=True,
            help="Platform database URL (default: SQLite inside home).",
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            envvar="MLFLOW_TRACKING_URI",
            show_envvar=True,
            help="MLflow tracking URI (default: SQLite inside home).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Global options apply to every command; flags win over environment variables."""
    _State.settings = load_settings(home=home, db_url=db_url, mlflow_tracking_uri=mlflow_uri)


@app.command()
def bench(
    model: Annotated[
        str,
        typer.Argument(
            help="A .keras file, a SavedModel folder, or a built-in demo: demo:digits-cnn, "
            "demo:digits-midcnn.",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Evaluation set (.npz with arrays x and y). Demo models bring their own.",
            show_default=False,
        ),
    ] = None,
    train_data: Annotated[
        Path | None,
        typer.Option(
            "--train-data",
            help="Training set (.npz): fine-tuning after pruning and int8 "
            "calibration. Without it, calibration uses evaluation samples.",
            show_default=False,
        ),
    ] = None,
    x_key: Annotated[str, typer.Option("--x-key", help="Name of the input array.")] = "x",
    y_key: Annotated[str, typer.Option("--y-key", help="Name of the target array.")] = "y",
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime", help="tf (tf.function), tf_xla (XLA-compiled) or tflite (LiteRT, XNNPACK)."
        ),
    ] = "tf",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="fp32, fp16, int8_dynamic or int8 (full integer, calibrated); "
            "all but fp32 need --runtime tflite.",
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

    from infertune.display import Reporter, bench_table, stdout
    from infertune.engine import Engine
    from infertune.exceptions import ConfigurationError
    from infertune.knobs.spec import InferenceConfig
    from infertune.measure.window import MeasurementWindow

    config = InferenceConfig.parse(
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
        where = "/".join(str(p) for p in first["loc"])
        raise ConfigurationError(
            f"Invalid measurement window {where}: {first['msg'].removeprefix('Value error, ')}."
        ) from None
    with Reporter() as reporter, Engine(_settings(), on_event=reporter) as engine:
        subject = engine.resolve(model, data, train_data, x_key, y_key)
        result = engine.bench(subject, config, window, finetune_epochs=finetune_epochs)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        stdout.print(bench_table(result))
    if not result["valid"]:
        raise typer.Exit(EXIT_INVALID_MEASUREMENT)


@app.command()
def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the resolved settings, this host's fingerprint and the demo models."""
    from infertune.display import stdout
    from infertune.measure.fingerprint import fingerprint
    from infertune.models.demo import DEMOS, cached_demo

    settings = _settings()
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


def main() -> None:
    """Console entry point: infertune errors become one line on stderr and exit status 1."""
    try:
        app()
    except InfertuneError as exc:
        print(f"infertune: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
