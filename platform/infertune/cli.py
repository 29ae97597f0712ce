"""The ``infertune`` command line."""

from __future__ import annotations

import contextlib
import json
import signal
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
    # Markdown: docstring paragraphs re-flow instead of keeping source line breaks.
    rich_markup_mode="markdown",
    add_completion=False,
)

#: Knob and window fields as the user types them, for error messages.
_FLAG_NAMES = {
    "runtime": "--runtime",
    "precision": "--precision",
    "prune_ratio": "--prune-ratio",
    "batch_size": "--batch-size",
    "threads": "--threads",
    "warmup_s": "--warmup",
    "min_duration_s": "--min-duration",
    "min_calls": "--min-calls",
    "max_duration_s": "--max-duration",
}

#: Exit status of ``bench`` when the measurement missed its minimums (figures withheld).
EXIT_INVALID_MEASUREMENT = 3


class _State:
    settings: Settings | None = None
    db: Any = None


def _settings() -> Settings:
    if _State.settings is None:
        _State.settings = load_settings()
    return _State.settings


def _platform_db() -> Any:
    """The platform database, its schema checked (a fresh one is created), once per command."""
    from infertune.storage.db import Database

    if _State.db is None:
        db = Database(_settings().database_url)
        db.ensure_schema()
        _State.db = db
    return _State.db


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
    _State.db = None


# Inputs shared by the commands that take a model.
ModelArgument = Annotated[
    str,
    typer.Argument(
        help="A .keras file, a SavedModel folder, or a built-in demo: demo:digits-cnn, "
        "demo:digits-midcnn.",
        metavar="MODEL",
        show_default=False,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Evaluation set (.npz with arrays x and y). Demo models bring their own.",
        show_default=False,
    ),
]
TrainDataOption = Annotated[
    Path | None,
    typer.Option(
        "--train-data",
        help="Training set (.npz): fine-tuning after pruning and int8 calibration. Without "
        "it, pruned models are not fine-tuned and calibration uses evaluation samples.",
        show_default=False,
    ),
]
XKeyOption = Annotated[str, typer.Option("--x-key", help="Name of the input array.")]
YKeyOption = Annotated[str, typer.Option("--y-key", help="Name of the target array.")]


@app.command()
def bench(
    model: ModelArgument,
    data: DataOption = None,
    train_data: TrainDataOption = None,
    x_key: XKeyOption = "x",
    y_key: YKeyOption = "y",
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
    from infertune.exceptions import ConfigurationError
    from infertune.knobs.spec import InferenceConfig
    from infertune.measure.engine import Engine
    from infertune.measure.window import MeasurementWindow

    config = InferenceConfig.parse(
        names=_FLAG_NAMES,
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
        where = "/".join(_FLAG_NAMES.get(str(p), str(p)) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigurationError(
            f"Invalid measurement window: {where + ': ' if where else ''}{message}."
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


StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (default: the platform database, --db-url).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command()
def tune(
    model: ModelArgument,
    data: DataOption = None,
    train_data: TrainDataOption = None,
    x_key: XKeyOption = "x",
    y_key: YKeyOption = "y",
    space: Annotated[
        str,
        typer.Option(
            "--space",
            help="Search-space YAML file, or a shipped space: quick, default, tflite-cpu.",
        ),
    ] = "quick",
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="Study name; an existing study with the same spec is resumed "
            "(default: MODEL-SPACE).",
            show_default=False,
        ),
    ] = None,
    trials: Annotated[
        int,
        typer.Option("--trials", min=1, help="Trial budget of the whole study (not per process)."),
    ] = 15,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Stop starting new trials after this many seconds.",
            show_default=False,
        ),
    ] = None,
    sampler: Annotated[
        str,
        typer.Option(
            "--sampler",
            help="auto (grid when the trial budget covers the space, else tpe), tpe, nsga2, "
            "random or grid (every configuration once).",
        ),
    ] = "auto",
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed.")] = 0,
    storage: StorageOption = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            help="Parallel trials in this process (needs PostgreSQL storage); "
            "builds overlap, timings never do.",
        ),
    ] = 1,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Re-measure the front after the search.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Search inference configurations of a model and print the verified Pareto front.

    The baseline (tf, fp32, batch 1, all cores) is measured first; constraints and
    speed-ups refer to it. A trial whose accuracy already breaks a constraint is pruned
    before its timing. Every trial is an MLflow run under the study's parent run.
    Ctrl-C stops cleanly: run the same command again to resume.
    """
    import optuna

    from infertune.display import Reporter, front_table, stdout
    from infertune.measure.engine import Engine
    from infertune.space import load_space
    from infertune.storage.repository import save_study
    from infertune.tracking.tracker import Tracker
    from infertune.tuning import queries
    from infertune.tuning.front import study_attr
    from infertune.tuning.sampling import SAMPLERS, make_sampler
    from infertune.tuning.study import (
        FINISHED_STATES,
        Tuner,
        check_parallelism,
        open_study,
        storage_url,
        study_spec,
        verify_front,
    )

    settings = _settings()
    search_space, space_path = load_space(space)
    if sampler not in SAMPLERS:
        raise InfertuneError(f"Unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}.")
    url = storage_url(settings, storage)
    check_parallelism(url, jobs)
    db = _platform_db()
    name = study or f"{model.removeprefix('demo:').replace('/', '_')}-{space_path.stem}"
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = engine.resolve(model, data, train_data, x_key, y_key)
        the_sampler = make_sampler(sampler, seed, trials, search_space)
        opened, resumed = open_study(
            name, url, study_spec(subject, search_space), search_space, the_sampler
        )
        done = len(opened.get_trials(deepcopy=False, states=FINISHED_STATES))
        reporter(
            {
                "event": "step",
                "task": f"{'resuming' if resumed else 'created'} study "
                f"'{name}' ({done}/{trials} trials done) in {url}",
            }
        )
        tuner = Tuner(
            settings, opened, subject, search_space, Tracker(settings), engine, on_event=reporter
        )
        status = "FAILED"

        def record(state: str) -> None:
            save_study(
                db,
                name,
                study_attr(opened, "spec"),
                study_attr(opened, "fingerprint") or {},
                url,
                state,
                tuner.experiment_id or None,
                tuner.parent_run_id or None,
            )

        try:
            tuner.start()
            record("running")
            progress = reporter.trials(trials, done)

            def on_trial(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                progress(trial)

            tuner.run(trials, timeout, jobs, on_trial)
            if verify:
                verify_front(engine, opened, subject, search_space, on_event=reporter)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            reporter(
                {
                    "event": "warning",
                    "message": "interrupted: the running trial was "
                    "marked failed; run the same command to resume.",
                }
            )
            raise typer.Exit(130) from None
        finally:
            tuner.close()
            tuner.finish(status)
            with contextlib.suppress(InfertuneError):  # never hide the run's own error
                record({"FINISHED": "finished", "KILLED": "interrupted"}.get(status, "failed"))
    shown = queries.front(opened)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    stdout.print(front_table(shown))
    if not shown["points"]:
        stdout.print(
            "[yellow]No configuration meets the constraints.[/] Nearest infeasible "
            "trials: "
            + ", ".join(
                f"#{r['number']} ({'; '.join(r['violations'])})"
                for r in shown["nearest_infeasible"]
            )
        )
    stdout.print(
        f"Study '{name}' in {url}\n"
        f"MLflow: mlflow ui --backend-store-uri {settings.tracking_uri}\n"
        f"More: infertune show {name} · infertune front {name}\n"
        f"Dashboard: infertune dashboard (then open http://127.0.0.1:8501) · "
        f"ship one: infertune promote {name} --trial N --name MODEL"
    )


@app.command()
def studies(storage: StorageOption = None, as_json: JsonOption = False) -> None:
    """List the studies in the storage with their trial counts and best speed-up."""
    from infertune.display import stdout, studies_table
    from infertune.tuning import queries
    from infertune.tuning.study import storage_url

    _platform_db()
    rows = queries.all_studies(storage_url(_settings(), storage))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        stdout.print(studies_table(rows))


@app.command()
def show(
    study: Annotated[str, typer.Argument(help="Study name.", show_default=False)],
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every trial of a study: knobs, figures, state and why it failed or was pruned."""
    from infertune.display import stdout, trials_table
    from infertune.tuning import queries
    from infertune.tuning.front import study_attr, trial_rows

    opened = queries.load(study, _settings_storage(storage))
    rows = trial_rows(opened)
    if as_json:
        typer.echo(
            json.dumps(
                {"study": study, "baseline": study_attr(opened, "baseline"), "trials": rows},
                indent=2,
                default=str,
            )
        )
    else:
        stdout.print(trials_table(study, rows))


@app.command()
def front(
    study: Annotated[str, typer.Argument(help="Study name.", show_default=False)],
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a study's Pareto front (the verified one when it is current)."""
    from infertune.display import front_table, stdout
    from infertune.tuning import queries

    shown = queries.front(queries.load(study, _settings_storage(storage)))
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
    else:
        stdout.print(front_table(shown))


@app.command("verify")
def verify_command(
    study: Annotated[str, typer.Argument(help="Study name.", show_default=False)],
    repeats: Annotated[
        int | None,
        typer.Option(
            "--repeats",
            min=1,
            help="Interleaved repeats per candidate (default: the space's).",
            show_default=False,
        ),
    ] = None,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-measure a study's Pareto candidates longer and interleaved; keep the robust ones."""
    from infertune.display import Reporter, front_table, stdout
    from infertune.measure.engine import Engine
    from infertune.space.schema import SearchSpace
    from infertune.tuning import queries
    from infertune.tuning.front import study_attr
    from infertune.tuning.study import resolve_study_subject, verify_front

    settings = _settings()
    opened = queries.load(study, _settings_storage(storage))
    space = SearchSpace.model_validate(study_attr(opened, "spec")["space"])
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = resolve_study_subject(engine, opened)
        verify_front(engine, opened, subject, space, repeats, on_event=reporter)
    shown = queries.front(opened)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
    else:
        stdout.print(front_table(shown))


def _settings_storage(storage: str | None) -> str:
    from infertune.tuning.study import storage_url

    _platform_db()
    return storage_url(_settings(), storage)


# -- platform database -------------------------------------------------------------------

db_app = typer.Typer(
    help="The platform database's schema (Alembic migrations of infertune's own tables).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="Target schema revision.")] = "head",
) -> None:
    """Create or upgrade infertune's tables in the platform database (--db-url).

    Optuna's and MLflow's tables are left alone: the platform's migrations keep their own
    version table, infertune_alembic_version. Back up a production database first.
    """
    from infertune.storage.db import Database, safe_url

    db = Database(_settings().database_url)
    before = db.current_revision()
    db.upgrade(revision)
    after = db.current_revision()
    where = safe_url(db.url)
    if before == after:
        typer.echo(f"{where}: already at revision {after}.")
    else:
        typer.echo(f"{where}: upgraded from {before or 'base'} to {after}.")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str,
        typer.Argument(
            help="Target revision; 'base' drops every infertune table.", show_default=False
        ),
    ],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: tables of later revisions are dropped.")
    ] = False,
) -> None:
    """Migrate infertune's tables down to REVISION (data in dropped tables is lost)."""
    from infertune.storage.db import Database, safe_url

    db = Database(_settings().database_url)
    if not yes:
        raise InfertuneError(
            f"Downgrading {safe_url(db.url)} to {revision} drops data; add --yes to confirm."
        )
    before = db.current_revision()
    db.downgrade(revision)
    typer.echo(
        f"{safe_url(db.url)}: downgraded from {before or 'base'} to "
        f"{db.current_revision() or 'base'}."
    )


@db_app.command("current")
def db_current(as_json: JsonOption = False) -> None:
    """Show the platform database's schema revision and the one this infertune needs."""
    from infertune.storage.db import Database, head_revision, safe_url

    db = Database(_settings().database_url)
    current, head = db.current_revision(), head_revision()
    payload = {
        "url": safe_url(db.url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    state = "up to date" if current == head else "behind: run `infertune db upgrade`"
    if current is None and db.is_fresh():
        state = "not created yet: `infertune db upgrade` (or any command) creates it"
    typer.echo(f"{payload['url']}: revision {current or 'base'} (head {head}), {state}.")


# -- registry ----------------------------------------------------------------------------

ModelNameOption = Annotated[
    str, typer.Option("--name", help="Registered model name in the MLflow Model Registry.")
]
AliasOption = Annotated[str, typer.Option("--alias", help="Registry alias to move.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the promotion history.")]


def _print_promotion(result: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(result.message)


@app.command()
def promote(
    study: Annotated[str, typer.Argument(help="Study name.", show_default=False)],
    trial: Annotated[
        int, typer.Option("--trial", help="Trial number to promote.", show_default=False)
    ],
    name: ModelNameOption,
    alias: AliasOption = "production",
    reason: ReasonOption = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote a trial that failed, was pruned, breaks a constraint or is off the "
            "front.",
        ),
    ] = False,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a trial's configuration in the MLflow Model Registry and move an alias to it.

    The version is an MLflow pyfunc model carrying the variant file and its runtime settings
    (runtime, precision, threads, batch size), tagged with the study, trial, knobs, figures
    and hardware. Load it with `mlflow.pyfunc.load_model("models:/NAME@production")`.
    Promoting the same trial again is a no-op.
    """
    from infertune.promotion.registry import Registry
    from infertune.tuning import queries

    registry = Registry(_settings(), _platform_db())
    opened = queries.load(study, _settings_storage(storage))
    _print_promotion(registry.promote(opened, trial, name, alias, reason, force), as_json)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    alias: AliasOption = "production",
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Move the alias back to the version that was promoted before the current one."""
    from infertune.promotion.registry import Registry

    registry = Registry(_settings(), _platform_db())
    _print_promotion(registry.rollback(name, alias, reason), as_json)


@app.command()
def registry(
    name: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Show a registered model's versions, where its aliases point, and the promotion history."""
    from infertune.display import registry_tables, stdout
    from infertune.promotion.registry import Registry

    shown = Registry(_settings(), _platform_db()).view(name)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    for table in registry_tables(shown):
        stdout.print(table)


# -- scheduled re-tuning -----------------------------------------------------------------

schedule_app = typer.Typer(
    help="Re-tune studies on a schedule (run the service with `infertune scheduler`).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(schedule_app, name="schedule")
StudyArgument = Annotated[str, typer.Argument(help="Study name.", show_default=False)]


@schedule_app.command("add")
def schedule_add(
    study: StudyArgument,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", help="Crontab expression in UTC, e.g. '0 2 * * *'.", show_default=False
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Interval: 90s, 30m, 6h, 1d.", show_default=False),
    ] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials per re-tune.")] = 15,
    auto_promote: Annotated[
        str | None,
        typer.Option(
            "--auto-promote",
            help="Registered model to promote a better configuration to.",
            show_default=False,
        ),
    ] = None,
    alias: AliasOption = "production",
    min_gain: Annotated[
        float,
        typer.Option(
            "--min-gain",
            help="Promote only when p95 is faster than production by more than this fraction.",
        ),
    ] = 0.05,
    as_json: JsonOption = False,
) -> None:
    """Re-tune STUDY on a schedule: a new study warm-started from its last front.

    Give exactly one of --cron or --every. With --auto-promote MODEL, a re-tune promotes its
    best verified configuration only if it beats the production one (re-timed in the same
    run) by more than --min-gain. Adding a schedule for a study that has one replaces it.
    """
    from infertune.scheduling.schedules import add_schedule, parse_cron, parse_every
    from infertune.tuning import queries

    if cron is not None:  # a bad expression is the first thing to say
        parse_cron(cron)
    if every is not None:
        parse_every(every)
    db = _platform_db()
    queries.load(study, _settings_storage(None))  # the study must exist
    added = add_schedule(db, study, cron, every, trials, auto_promote, alias, min_gain)
    if as_json:
        typer.echo(json.dumps(added, indent=2))
    else:
        when = (added["next_run"] or "")[:16].replace("T", " ")
        typer.echo(
            f"Scheduled re-tuning of '{study}'; next run {when} UTC while `infertune scheduler` "
            "runs."
        )


@schedule_app.command("list")
def schedule_list(as_json: JsonOption = False) -> None:
    """Show every schedule with its next run and its last run's outcome."""
    from infertune.display import schedules_table, stdout
    from infertune.scheduling.schedules import overview

    rows = overview(_platform_db())
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    elif not rows:
        typer.echo("No schedules yet: infertune schedule add STUDY --every 6h (or --cron ...).")
    else:
        stdout.print(schedules_table(rows))


@schedule_app.command("pause")
def schedule_pause(study: StudyArgument) -> None:
    """Stop a schedule from firing (it keeps its settings)."""
    from infertune.scheduling.schedules import set_paused

    set_paused(_platform_db(), study, True)
    typer.echo(f"Paused the schedule of '{study}'.")


@schedule_app.command("resume")
def schedule_resume(study: StudyArgument) -> None:
    """Let a paused schedule fire again."""
    from infertune.scheduling.schedules import set_paused

    set_paused(_platform_db(), study, False)
    typer.echo(f"Resumed the schedule of '{study}'.")


@schedule_app.command("remove")
def schedule_remove(study: StudyArgument) -> None:
    """Delete a schedule (its run history stays)."""
    from infertune.scheduling.schedules import remove_schedule

    remove_schedule(_platform_db(), study)
    typer.echo(f"Removed the schedule of '{study}'.")


@schedule_app.command("run-now")
def schedule_run_now(
    study: StudyArgument,
    trigger: Annotated[str, typer.Option("--trigger", hidden=True)] = "run-now",
    as_json: JsonOption = False,
) -> None:
    """Run one re-tune of a schedule now, in this process, and record it like the service does."""
    from infertune.scheduling.retune import run_retune

    _platform_db()
    outcome = run_retune(_settings(), study, trigger)
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
    else:
        typer.echo(f"{outcome['study']}: {outcome['decision']}. {outcome['detail']}")


@app.command()
def scheduler(
    sync: Annotated[
        float, typer.Option("--sync", min=0.5, help="Seconds between reads of the schedules.")
    ] = 5.0,
    stale_after: Annotated[
        float,
        typer.Option("--stale-after", min=1.0, help="Seconds after which a silent lock is free."),
    ] = 60.0,
) -> None:
    """Run the scheduler service: fire re-tunes on their schedules until SIGTERM or Ctrl-C.

    One service per platform database: a second one refuses to start and names the holder
    (the lock frees itself --stale-after seconds after its holder dies). Each re-tune runs in
    its own process with its log under HOME/scheduler/.
    """
    import logging

    from infertune.scheduling.service import SchedulerService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    service = SchedulerService(_settings(), sync_s=sync, stale_after_s=stale_after)
    service.start()
    typer.echo(f"infertune scheduler running as {service.lock.name} (Ctrl-C stops it)", err=True)
    service.run_forever()
    typer.echo("infertune scheduler stopped", err=True)


# -- distributed workers -----------------------------------------------------------------


@app.command()
def worker(
    study: Annotated[str, typer.Argument(help="Study name.", show_default=False)],
    trials: Annotated[
        int,
        typer.Option(
            "--trials",
            min=1,
            help="Trial budget of the whole study, shared by every worker (not per worker).",
            show_default=False,
        ),
    ],
    storage: StorageOption = None,
    heartbeat: Annotated[
        int,
        typer.Option(
            "--heartbeat",
            min=1,
            help="Seconds between heartbeats; a trial silent for 3 heartbeats is failed and "
            "retried.",
        ),
    ] = 10,
    ignore_hardware: Annotated[
        bool,
        typer.Option("--ignore-hardware", help="Join although this machine's hardware differs."),
    ] = False,
) -> None:
    """Join an existing study from this machine and run trials until its budget is spent.

    Workers on many machines share the study through its storage (PostgreSQL; the MLflow
    server must be reachable too). The hardware fingerprint must match the study's. A trial
    whose worker dies is failed after the grace period and retried; `infertune reconcile`
    (run by every worker at start) ends the MLflow runs that no worker will end.
    """
    import optuna

    from infertune.display import Reporter
    from infertune.measure.engine import Engine
    from infertune.space.schema import SearchSpace
    from infertune.tracking.tracker import Tracker
    from infertune.tuning import queries
    from infertune.tuning.distributed import check_hardware, heartbeat_storage, reconcile
    from infertune.tuning.front import study_attr
    from infertune.tuning.sampling import make_sampler
    from infertune.tuning.study import Tuner, resolve_study_subject

    settings = _settings()
    url = _settings_storage(storage)
    spec = study_attr(queries.load(study, url), "spec")
    if spec is None:
        raise InfertuneError(f"Study '{study}' was not created by infertune.")
    space = SearchSpace.model_validate(spec["space"])
    opened = optuna.load_study(
        study_name=study,
        storage=heartbeat_storage(url, heartbeat),
        sampler=make_sampler("auto", None, trials, space),
    )
    check_hardware(opened, ignore_hardware)
    reconcile(settings, opened)
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = resolve_study_subject(engine, opened)
        tuner = Tuner(settings, opened, subject, space, Tracker(settings), engine, reporter)
        try:
            tuner.start()
            ran = tuner.run(trials, None)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            tuner.close()
    typer.echo(f"worker ran {ran} trial(s) of '{study}'", err=True)


@app.command()
def reconcile(
    study: Annotated[
        str | None,
        typer.Argument(help="Study name (default: every study).", show_default=False),
    ] = None,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fail trials whose worker died and end their MLflow runs as KILLED.

    Safe to run at any time: a trial is stale only when its heartbeat stopped (studies run
    with `infertune worker` record heartbeats).
    """
    import optuna

    from infertune.tuning.distributed import heartbeat_storage
    from infertune.tuning.distributed import reconcile as reconcile_study

    settings = _settings()
    url = _settings_storage(storage)
    names = [study] if study else [s.study_name for s in optuna.get_all_study_summaries(url)]
    results = {}
    for name in names:
        opened = optuna.load_study(study_name=name, storage=heartbeat_storage(url))
        results[name] = reconcile_study(settings, opened)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for name, counts in results.items():
        typer.echo(
            f"{name}: {counts['stale_trials_failed']} stale trial(s) failed, "
            f"{counts['runs_killed']} MLflow run(s) ended as KILLED"
        )


# -- dashboard ---------------------------------------------------------------------------

#: ``dashboards/app.py`` at the top of the source tree.
DASHBOARD_APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


@app.command()
def dashboard(
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on (0.0.0.0 for every interface; no login!)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Open the web dashboard: studies, Pareto fronts, trials, promotion, registry, launch.

    It reads the same platform database and MLflow store as the other commands (the global
    --home, --db-url and --mlflow-uri apply). Stop it with Ctrl-C.
    """
    import os

    settings = _settings()
    if not DASHBOARD_APP.is_file():
        raise InfertuneError(
            f"The dashboard app {DASHBOARD_APP} is missing; run infertune from its source tree "
            "(pip install -e .)."
        )
    _platform_db()  # schema check (and a fresh database created) before the server starts
    env = settings.child_env()
    command = [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    typer.echo(f"infertune dashboard on http://{host}:{port} (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    os.execve(sys.executable, command, env)


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


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM ends the command like Ctrl-C does, so cleanup (workers, runs) happens.
    raise KeyboardInterrupt


def main() -> None:
    """Console entry point: infertune errors become one line on stderr and exit status 1."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except InfertuneError as exc:
        print(f"infertune: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        # Disk full, permissions, a vanished file: the system's words, on one line.
        print(f"infertune: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
