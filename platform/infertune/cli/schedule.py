"""Scheduled re-tuning: the ``schedule`` commands and the ``scheduler`` service."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from infertune.cli._common import (
    AliasOption,
    JsonOption,
    StudyArgument,
    current_settings,
    platform_db,
    settings_storage,
)

__all__ = [
    "schedule_add",
    "schedule_app",
    "schedule_list",
    "schedule_pause",
    "schedule_remove",
    "schedule_resume",
    "schedule_run_now",
    "scheduler",
]

schedule_app = typer.Typer(
    help="Re-tune studies on a schedule (run the service with `infertune scheduler`).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


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
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace the study's existing schedule (shows what changes)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-tune STUDY on a schedule: a new study warm-started from its last front.

    Give exactly one of --cron or --every. With --auto-promote MODEL, a re-tune promotes its
    best verified configuration only if it beats the production one (re-timed in the same
    run) by more than --min-gain. A study has one schedule: adding another is refused, with
    what would change, unless --replace is given.
    """
    from infertune.exceptions import InputError
    from infertune.scheduling.schedules import add_schedule, overview, parse_cron, parse_every
    from infertune.tuning import queries

    if cron is not None:  # a bad expression is the first thing to say
        parse_cron(cron)
    if every is not None:
        parse_every(every)
    db = platform_db()
    queries.load(study, settings_storage(None))  # the study must exist
    existing = next((r for r in overview(db) if r["study"] == study), None)
    changes: list[str] = []
    if existing is not None:
        every_s = parse_every(every) if every is not None else None
        wanted = {"cron": cron, "every_s": every_s, "trials": trials}
        wanted.update(auto_promote=auto_promote, alias=alias, min_gain=min_gain)
        changes = schedule_changes(existing, wanted)
        if not replace:
            raise InputError(
                f"'{study}' already has a schedule ({_settings_text(existing)}); add --replace "
                "to replace it"
                + (f" ({'; '.join(changes)})." if changes else " (nothing would change).")
            )
    added = add_schedule(db, study, cron, every, trials, auto_promote, alias, min_gain)
    if as_json:
        typer.echo(
            json.dumps({**added, "replaced": existing is not None, "changes": changes}, indent=2)
        )
    else:
        when = (added["next_run"] or "")[:16].replace("T", " ")
        if existing is not None:
            typer.echo(
                f"Replaced the schedule of '{study}': "
                + ("; ".join(changes) if changes else "nothing changed")
                + "."
            )
        typer.echo(
            f"Scheduled re-tuning of '{study}'; next run {when} UTC while `infertune scheduler` "
            "runs."
        )


def _when(cron: str | None, every_s: float | None) -> str:
    from infertune.cli._display import format_every

    return f"cron '{cron}'" if cron else f"every {format_every(every_s or 0)}"


def _settings_text(row: dict[str, Any]) -> str:
    """A schedule in a few words: ``every 6h, 15 trials, auto-promote m@production``."""
    text = f"{_when(row['cron'], row['every_s'])}, {row['trials']} trials"
    if row["auto_promote"]:
        text += f", auto-promote {row['auto_promote']}@{row['alias']}"
    return text


def schedule_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What replacing schedule ``old`` by ``new`` changes, one ``what: before -> after`` each.

    Both hold ``cron``, ``every_s``, ``trials``, ``auto_promote``, ``alias`` and
    ``min_gain`` (as ``schedule_dict`` returns them).
    """
    changes = []
    before = _when(old["cron"], old["every_s"])
    after = _when(new["cron"], new["every_s"])
    if before != after:
        changes.append(f"when: {before} -> {after}")
    if old["trials"] != new["trials"]:
        changes.append(f"trials: {old['trials']} -> {new['trials']}")
    if old["auto_promote"] != new["auto_promote"]:
        changes.append(
            f"auto-promote: {old['auto_promote'] or 'off'} -> {new['auto_promote'] or 'off'}"
        )
    elif new["auto_promote"]:
        if old["alias"] != new["alias"]:
            changes.append(f"alias: {old['alias']} -> {new['alias']}")
        if old["min_gain"] != new["min_gain"]:
            changes.append(f"min gain: {old['min_gain']:g} -> {new['min_gain']:g}")
    return changes


@schedule_app.command("list")
def schedule_list(as_json: JsonOption = False) -> None:
    """Show every schedule with its next run and its last run's outcome."""
    from infertune.cli._display import schedules_table, stdout
    from infertune.scheduling.schedules import overview

    rows = overview(platform_db())
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

    set_paused(platform_db(), study, True)
    typer.echo(f"Paused the schedule of '{study}'.")


@schedule_app.command("resume")
def schedule_resume(study: StudyArgument) -> None:
    """Let a paused schedule fire again."""
    from infertune.scheduling.schedules import set_paused

    set_paused(platform_db(), study, False)
    typer.echo(f"Resumed the schedule of '{study}'.")


@schedule_app.command("remove")
def schedule_remove(study: StudyArgument) -> None:
    """Delete a schedule (its run history stays)."""
    from infertune.scheduling.schedules import remove_schedule

    remove_schedule(platform_db(), study)
    typer.echo(f"Removed the schedule of '{study}'.")


@schedule_app.command("run-now")
def schedule_run_now(
    study: StudyArgument,
    trigger: Annotated[str, typer.Option("--trigger", hidden=True)] = "run-now",
    as_json: JsonOption = False,
) -> None:
    """Run one re-tune of a schedule now, in this process, and record it like the service does."""
    from infertune.scheduling.retune import run_retune

    platform_db()
    outcome = run_retune(current_settings(), study, trigger)
    if as_json:
        typer.echo(json.dumps(outcome, indent=2, default=str))
    else:
        typer.echo(f"{outcome['study']}: {outcome['decision']}. {outcome['detail']}")


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
    service = SchedulerService(current_settings(), sync_s=sync, stale_after_s=stale_after)
    service.start()
    typer.echo(f"infertune scheduler running as {service.lock.name} (Ctrl-C stops it)", err=True)
    service.run_forever()
    typer.echo("infertune scheduler stopped", err=True)
