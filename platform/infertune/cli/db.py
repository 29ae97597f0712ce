"""The ``db`` commands: Alembic migrations of infertune's own tables in the platform database."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from infertune.cli._common import JsonOption, current_settings
from infertune.exceptions import InfertuneError

__all__ = ["db_app", "db_current", "db_downgrade", "db_upgrade"]

db_app = typer.Typer(
    help="The platform database's schema (Alembic migrations of infertune's own tables).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option("--revision", help="Target schema revision.")] = "head",
) -> None:
    """Create or upgrade infertune's tables in the platform database (--db-url).

    Optuna's and MLflow's tables are left alone: the platform's migrations keep their own
    version table, infertune_alembic_version. Back up a production database first. Several
    processes upgrading at once take turns; a database already at the revision is a success.
    Studies made before the summary tables existed get their summary rows written (lists and
    pages read them instead of every trial).
    """
    from infertune.storage.db import Database, head_revision, safe_url

    db = Database(current_settings().database_url)
    before = db.upgrade(revision)  # read in its turn: several upgrades may run at once
    after = db.current_revision()
    where = safe_url(db.url)
    if before == after:
        typer.echo(f"{where}: already at revision {after}.")
    else:
        typer.echo(f"{where}: upgraded from {before or 'base'} to {after}.")
    if after == head_revision():
        from infertune.storage.db import prepare_optuna_storage
        from infertune.tuning.summaries import backfill

        prepare_optuna_storage(db.url)
        written = backfill(db.url)
        if written:
            typer.echo(
                f"Summaries of {len(written)} stud{'y' if len(written) == 1 else 'ies'} "
                f"({sum(written.values())} trials) are up to date."
            )


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

    db = Database(current_settings().database_url)
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

    db = Database(current_settings().database_url)
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
    if current is None:
        state = "not created yet: `infertune db upgrade` (or any command) creates it"
    typer.echo(f"{payload['url']}: revision {current or 'base'} (head {head}), {state}.")
