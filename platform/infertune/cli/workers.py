"""Distributed workers: ``worker`` joins a study, ``reconcile`` cleans up after dead ones."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from infertune.cli._common import (
    JsonOption,
    StorageOption,
    StudyArgument,
    check_tracking,
    current_settings,
    platform_db,
    settings_storage,
)

__all__ = ["reconcile", "worker"]


def worker(
    study: StudyArgument,
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
    (run by every worker at start) ends the MLflow runs that no worker will end. A worker
    leaves once the budget is met: it waits for running trials of others to finish (or
    to be failed, if their process died) rather than leave the budget unmet.
    """
    from infertune.cli._display import Reporter
    from infertune.measure.engine import Engine
    from infertune.tuning.lifecycle import StudyRun, join_study
    from infertune.tuning.study import resolve_study_subject

    settings = current_settings()
    url = settings_storage(storage)
    check_tracking()
    opened, space = join_study(settings, study, url, trials, heartbeat, ignore_hardware)
    with Reporter() as reporter, Engine(settings, on_event=reporter) as engine:
        subject = resolve_study_subject(engine, opened)
        run = StudyRun(
            settings, platform_db(), engine, opened, subject, space, url, reporter, heartbeat
        )
        try:
            ran = run.execute(trials, owner=False).trials_run
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    typer.echo(f"worker ran {ran} trial(s) of '{study}'", err=True)


def reconcile(
    study: Annotated[
        str | None,
        typer.Argument(help="Study name (default: every study).", show_default=False),
    ] = None,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fail trials whose process died and end the MLflow runs nobody will end.

    Safe to run at any time. A trial's process is dead when it was on this host and its PID
    ended (known at once), or when its heartbeat stopped for longer than the grace period;
    its trial is failed (and retried; it does not count against the budget) and its MLflow
    run ended as KILLED. A study that no live process works on has its parent run ended too.
    """
    from infertune.tuning import queries
    from infertune.tuning.distributed import heartbeat_storage
    from infertune.tuning.distributed import reconcile as reconcile_study

    settings = current_settings()
    url = settings_storage(storage)
    db = platform_db()
    if study:
        queries.load(study, url)  # an unknown name: one line naming the studies there
        names = [study]
    else:
        names = queries.study_names(url)
    results = {}
    for name in names:
        opened = queries.load(name, heartbeat_storage(url))
        results[name] = reconcile_study(settings, opened, db)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for name, counts in results.items():
        typer.echo(
            f"{name}: {counts['stale_trials_failed']} stale trial(s) failed, "
            f"{counts['runs_killed']} MLflow run(s) ended as KILLED"
            + (", its parent run ended" if counts["parent_runs_ended"] else "")
        )
