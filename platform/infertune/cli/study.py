"""Study commands: ``tune`` searches, ``studies``/``show``/``front`` read, ``verify`` re-times."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from infertune.cli._common import (
    DataOption,
    JsonOption,
    ModelArgument,
    StorageOption,
    StudyArgument,
    TrainDataOption,
    XKeyOption,
    YKeyOption,
    check_tracking,
    current_settings,
    platform_db,
    settings_storage,
)
from infertune.cli.bench import OutputOption, TrustOption
from infertune.exceptions import InfertuneError, InputError

__all__ = [
    "SHOW_LIMIT",
    "TRIAL_STATES",
    "default_study_name",
    "front",
    "parse_states",
    "show",
    "studies",
    "tune",
    "verify_command",
]


def tune(
    model: ModelArgument,
    data: DataOption = None,
    train_data: TrainDataOption = None,
    x_key: XKeyOption = "x",
    y_key: YKeyOption = "y",
    output: OutputOption = None,
    trust_saved_model: TrustOption = False,
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
            "(default: the model file's stem and the space, e.g. diabetes_reg-quick).",
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
    heartbeat: Annotated[
        int,
        typer.Option(
            "--heartbeat",
            min=1,
            help="Seconds between heartbeats; a trial silent for 3 heartbeats (its process "
            "died) is failed and retried, and does not count against the budget.",
        ),
    ] = 10,
    as_json: JsonOption = False,
) -> None:
    """Search inference configurations of a model and print the verified Pareto front.

    The baseline (tf, fp32, batch 1, all cores) is measured first; constraints and
    speed-ups refer to it. A trial whose accuracy already breaks a constraint is pruned
    before its timing. Every trial is an MLflow run under the study's parent run.
    Ctrl-C stops cleanly: run the same command again to resume. One live `tune` per
    study: a second is refused (add `infertune worker` processes instead); a killed one's
    study is taken over by the next `tune`, its running trial failed and retried.
    """
    from infertune.cli._display import Reporter, front_table, stdout
    from infertune.measure.accuracy import describe_task, quality_meaning
    from infertune.measure.engine import Engine
    from infertune.space import load_space
    from infertune.tuning import queries
    from infertune.tuning.distributed import finished_count
    from infertune.tuning.lifecycle import StudyRun
    from infertune.tuning.sampling import SAMPLERS, make_sampler
    from infertune.tuning.study import (
        check_measurable,
        check_parallelism,
        open_study,
        study_spec,
    )

    settings = current_settings()
    search_space, space_path = load_space(space)
    if sampler not in SAMPLERS:
        raise InfertuneError(f"Unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}.")
    url = settings_storage(storage)
    check_parallelism(url, jobs)
    db = platform_db()
    check_tracking()
    name = study or default_study_name(model, space_path.stem)
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = engine.resolve(
            model,
            data,
            train_data,
            x_key,
            y_key,
            output=output,
            trust_saved_model=trust_saved_model,
        )
        # Before a study is created or a baseline measured: a space the task cannot score.
        check_measurable(search_space, subject.task)
        task = f"{describe_task(subject.task)}; quality = {quality_meaning(subject.task)}"
        reporter({"event": "step", "task": f"task: {task}"})
        the_sampler = make_sampler(sampler, seed, trials, search_space)
        opened, resumed = open_study(
            name, url, study_spec(subject, search_space), search_space, the_sampler, heartbeat
        )
        done = finished_count(opened)
        reporter(
            {
                "event": "step",
                "task": f"{'resuming' if resumed else 'created'} study "
                f"'{name}' ({done}/{trials} trials done) in {url}",
            }
        )
        run = StudyRun(
            settings,
            db,
            engine,
            opened,
            subject,
            search_space,
            url,
            on_event=reporter,
            heartbeat_s=heartbeat,
        )
        try:
            scenario = search_space.measurement.scenario
            run.execute(
                trials,
                timeout=timeout,
                jobs=jobs,
                verify=verify,
                progress=functools.partial(
                    reporter.trials, scenario=str(scenario.name), slo_p99_ms=scenario.slo_p99_ms
                ),
            )
        except KeyboardInterrupt:
            reporter(
                {
                    "event": "warning",
                    "message": "interrupted: the running trial was "
                    "marked failed; run the same command to resume.",
                }
            )
            raise typer.Exit(130) from None
    shown = queries.front(opened)
    if as_json:
        typer.echo(json.dumps({**shown, "task": subject.task}, indent=2, default=str))
        return
    stdout.print(f"Task: {task}")
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
    it, mlflow = _commands()
    stdout.print(
        f"Study '{name}' in {url}\n"
        f"MLflow: {mlflow} ui --backend-store-uri {settings.tracking_uri}\n"
        f"More: {it} show {name} · {it} front {name}\n"
        f"Dashboard: {it} dashboard (then open http://127.0.0.1:8501) · "
        f"ship one: {it} promote {name} --trial N --name MODEL"
    )


def _commands() -> tuple[str, str]:
    """How to call ``infertune`` and ``mlflow`` again from here, as the user can paste them.

    Their bare names where this ``infertune`` is the one on PATH (an activated venv, a
    global install); else their paths (``make demo`` runs ``.venv/bin/infertune``).
    """
    import shutil
    import sys
    from pathlib import Path

    program = Path(sys.argv[0])
    on_path = shutil.which("infertune")
    if program.name != "infertune" or (
        on_path is not None and Path(on_path).resolve() == program.resolve()
    ):
        return "infertune", "mlflow"
    return str(program), str(program.with_name("mlflow"))


def default_study_name(model: str, space: str) -> str:
    """``STEM-SPACE``: the model file's stem (a folder's name, a demo's name) and the space.

    ``~/models/diabetes_reg.keras`` with ``quick`` is ``diabetes_reg-quick``;
    ``demo:digits-cnn`` is ``digits-cnn-quick``.
    """
    if model.startswith("demo:"):
        stem = model.removeprefix("demo:")
    else:
        path = Path(model).expanduser()
        stem = path.name if path.is_dir() else path.stem
    return f"{stem or 'model'}-{space}"


def studies(storage: StorageOption = None, as_json: JsonOption = False) -> None:
    """List the studies in the storage with their trial counts and best speed-up."""
    from infertune.cli._display import stdout, studies_table
    from infertune.tuning import queries

    rows = queries.all_studies(settings_storage(storage))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    else:
        stdout.print(studies_table(rows))


#: The trial states ``show --state`` takes, as the user types them (any case).
TRIAL_STATES = {
    "complete": "COMPLETE",
    "pruned": "PRUNED",
    "fail": "FAIL",
    "failed": "FAIL",
    "running": "RUNNING",
}
#: Trials ``show`` lists when no ``--limit`` is given: the newest page.
SHOW_LIMIT = 50


def parse_states(values: list[str] | None) -> list[str] | None:
    """``--state`` values (repeated or comma-separated, any case) as Optuna state names.

    Raises:
        InputError: A value that is not a trial state.
    """
    if not values:
        return None
    states: list[str] = []
    for value in values:
        for word in filter(None, (w.strip() for w in value.split(","))):
            state = TRIAL_STATES.get(word.lower())
            if state is None:
                raise InputError(
                    f"Unknown trial state '{word}' for --state; choose from complete, pruned, "
                    "fail, running."
                )
            if state not in states:
                states.append(state)
    return states or None


def show(
    study: StudyArgument,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="STATE",
            help="Only trials in this state: complete, pruned, fail or running (repeat the "
            "flag or separate with commas).",
            show_default=False,
        ),
    ] = None,
    on_front: Annotated[
        bool, typer.Option("--front", help="Only the trials on the shown Pareto front.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=0,
            metavar="N",
            help="Show the newest N matching trials (0: all of them).",
        ),
    ] = SHOW_LIMIT,
    offset: Annotated[
        int,
        typer.Option(
            "--offset",
            min=0,
            metavar="N",
            help="Skip the newest N matching trials (page back with --limit).",
        ),
    ] = 0,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a study's trials: knobs, figures, state and why each failed or was pruned.

    The newest 50 trials by default, listed oldest first; `--limit 0` shows them all.
    Filters run in the database, so a study of thousands of trials answers at once.
    """
    from infertune.cli._display import stdout, trials_table
    from infertune.tuning import queries, summaries
    from infertune.tuning.records import StudyView

    states = parse_states(state)
    opened = queries.load(study, settings_storage(storage))
    about = queries.summary(opened)  # brings the summary rows up to date, once
    matching = queries.count_trials(opened, states=states, front_only=on_front)
    # A page counted from the newest trial, shown in trial order (--limit 0: all of them).
    rows = summaries.rows(
        opened,
        states=states,
        on_front=True if on_front else None,
        limit=limit or None,
        offset=offset,
        newest_first=True,
        synced=True,
    )
    rows.reverse()
    if as_json:
        payload = {
            "study": study,
            "baseline": StudyView(opened).baseline,
            "summary": about,
            "filters": {"states": states, "front": on_front, "limit": limit, "offset": offset},
            "matching": matching,
            "trials": rows,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    stdout.print(trials_table(study, rows))
    note = _paging_note(
        rows, matching, sum(about["trials"].values()), offset, bool(states or on_front)
    )
    if note:
        stdout.print(note)


def _paging_note(
    rows: list[dict[str, Any]], matching: int, total: int, offset: int, filtered: bool
) -> str | None:
    """What part of the study the table shows; ``None`` when it is every trial.

    ``matching`` trials pass the filters, ``total`` are in the study, and the table shows
    ``rows`` after skipping the ``offset`` newest matching ones.
    """
    of = (
        f"{matching:,} matching trials ({total:,} in the study)"
        if filtered
        else f"{total:,} trials"
    )
    if not rows:
        if filtered and not matching:
            return f"[yellow]No trials match[/] ({total:,} in the study)."
        return (
            f"[yellow]No trials to show:[/] --offset {offset} skips all {of}." if offset else None
        )
    if len(rows) == matching:
        return f"[dim]{matching:,} of {total:,} trials match.[/]" if filtered else None
    older = matching - offset - len(rows)
    more = f"; `--offset {offset + len(rows)}` shows the {older:,} before" if older > 0 else ""
    return (
        f"[dim]Showing trials {rows[0]['number']} to {rows[-1]['number']}: {len(rows)} of {of}. "
        f"`--limit 0` shows all{more}.[/]"
    )


def front(study: StudyArgument, storage: StorageOption = None, as_json: JsonOption = False) -> None:
    """Show a study's Pareto front (the verified one when it is current)."""
    from infertune.cli._display import front_table, stdout
    from infertune.tuning import queries

    shown = queries.front(queries.load(study, settings_storage(storage)))
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
    else:
        stdout.print(front_table(shown))


def verify_command(
    study: StudyArgument,
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
    from infertune.cli._display import Reporter, front_table, stdout
    from infertune.measure.engine import Engine
    from infertune.tuning import queries
    from infertune.tuning.records import StudyView
    from infertune.tuning.study import resolve_study_subject, verify_front

    settings = current_settings()
    opened = queries.load(study, settings_storage(storage))
    spec = StudyView(opened).spec
    if spec is None:
        raise InfertuneError(f"Study '{study}' was not created by infertune.")
    space = spec.search_space()
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = resolve_study_subject(engine, opened)
        verify_front(engine, opened, subject, space, repeats, on_event=reporter)
    shown = queries.front(opened)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
    else:
        stdout.print(front_table(shown))
